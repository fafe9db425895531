"""The training state of a checkpoint: what `--resume` needs beyond the model.

A training checkpoint is a checkpoint folder (`byollm.model.checkpoint` owns it: its files,
config.json, checksums, atomic writes, which folder a path means) plus one file of its own:

    train_state.pt      optimizer moments, step, RNG states, data position, best val loss

and two config.json keys: `train` (the run's config) and `data` (what the run was trained on:
the corpus actually used, its sha256, the tokenizer's hash, the split); `--resume` compares both
with the new command.

Design choices:
- **Added through the owner.** `save_train_checkpoint` hands train_state.pt to
  `save_checkpoint` as one more file, so it is written atomically with the weights and
  checksummed in config.json like them; `load_train_state` verifies that checksum.
- **No pickled code.** `train_state.pt` holds only tensors, numbers, strings, lists and dicts, and
  is read with `torch.load(weights_only=True)`; every field is type-checked before use.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

from byollm.errors import ByollmError
from byollm.formats import check_header
from byollm.model.checkpoint import CONFIG_FILE, save_checkpoint, verify_checksums

STATE_FORMAT = "byollm-train-state"
STATE_VERSION = 1
STATE_FILE = "train_state.pt"


def save_train_checkpoint(
    directory: str | Path,
    model: torch.nn.Module,
    tokenizer,
    train_state: dict,
    *,
    train_config: dict | None = None,
    data: dict | None = None,
) -> Path:
    """Write a training checkpoint folder atomically (see `save_checkpoint`); returns its path."""
    state = {"format": STATE_FORMAT, "version": STATE_VERSION, **train_state}
    extra = {"train": train_config or {}, **({"data": data} if data else {})}
    return save_checkpoint(
        directory,
        model,
        tokenizer,
        extra=extra,
        files={STATE_FILE: lambda path: torch.save(state, path)},
    )


def load_train_state(directory: str | Path, map_location="cpu") -> dict:
    """The training state of a checkpoint, checksum-verified, read without unpickling code."""
    path = Path(directory) / STATE_FILE
    if not path.is_file():
        raise ByollmError(f"{path}: missing; not a training checkpoint")
    if (Path(directory) / CONFIG_FILE).exists():
        verify_checksums(directory, [STATE_FILE])
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # a truncated or foreign file: name it, do not crash on it
        raise ByollmError(f"{path}: cannot read the training state ({e})") from None
    check_header(state, path, format=STATE_FORMAT, version=STATE_VERSION)
    check_train_state(state, path)
    return state


def _integer(low: int):
    return lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= low


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


# key: (required, is it valid?, what is valid). What the trainer reads; a tampered or foreign
# value is refused here in one line instead of failing somewhere inside the training loop.
STATE_FIELDS = {
    "step": (True, _integer(0), "an integer >= 0"),
    "tokens_seen": (True, _integer(0), "an integer >= 0"),
    "tokens_per_step": (True, _integer(1), "an integer > 0"),
    "best_val_loss": (True, lambda v: _number(v) and not math.isnan(v), "a number"),
    "optimizers": (
        True,
        lambda v: isinstance(v, list) and all(isinstance(o, dict) for o in v),
        "a list of optimizer states",
    ),
    "rng": (
        True,
        lambda v: (
            isinstance(v, dict)
            and isinstance(v.get("torch"), torch.Tensor)
            and v["torch"].dtype == torch.uint8
        ),
        "RNG states (a dict whose 'torch' is a uint8 tensor)",
    ),
    "tokenizer_hash": (True, lambda v: isinstance(v, str), "a string"),
    "seed": (False, _integer(-(2**63)), "an integer"),
    "elapsed": (False, lambda v: _number(v) and 0 <= v < math.inf, "a number >= 0"),
    "grad_scaler": (False, lambda v: isinstance(v, dict), "a dict"),
}


def check_train_state(state: dict, source) -> None:
    """Raise ByollmError naming the first missing or malformed field of a training state."""
    for key, (required, valid, expected) in STATE_FIELDS.items():
        if key not in state:
            if required:
                raise ByollmError(f"{source}: the training state has no {key!r}; cannot resume")
            continue
        value = state[key]
        if not valid(value):
            shown = type(value).__name__ if isinstance(value, (dict, list)) else repr(value)
            raise ByollmError(
                f"{source}: {key} = {shown[:60]} in the training state; expected {expected}"
            )


def rng_state() -> dict:
    """The random number generators' states (torch CPU, and CUDA when present)."""
    state = {"torch": torch.get_rng_state()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])
