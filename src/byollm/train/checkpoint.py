"""Checkpoints: everything needed to sample from a model, and to resume training exactly.

A checkpoint is a folder:

    model.safetensors   the weights (safetensors: plain tensors, no code can hide in them)
    config.json         {"format": "byollm-model", "version": 1, "model": {...}, "train": {...},
                         "data": {...}, "sha256": {file: digest}}
    tokenizer.json      the tokenizer, so the folder alone can turn text into ids and back
    train_state.pt      optimizer moments, step, RNG states, data position, best val loss

`train` is the run's config, `data` what the run was trained on (the corpus actually used, its
sha256, the tokenizer's hash, the split): `--resume` compares both with the new command.

Design choices:
- **Atomic.** A new checkpoint is written into a temporary folder beside the target and swapped in
  with renames, so a crash (or SIGKILL) during a save never destroys the previous good checkpoint.
  If a crash falls between the two renames, the previous checkpoint is still there under
  `<name>.old` and `load_train_state`/`resolve_checkpoint` pick it up.
- **A failed save costs nothing.** A save that fails (disk full, permissions) removes its
  temporary folder and raises one line; the previous checkpoint is untouched. Temporary folders
  of crashed saves are removed by the next save, but never one whose process is still alive.
- **Checksummed.** config.json records the sha256 of the other three files (see
  `byollm.model.io`); loading the weights or the training state verifies them.
- **No pickled code.** `train_state.pt` holds only tensors, numbers, strings, lists and dicts, and
  is read with `torch.load(weights_only=True)`; every field is type-checked before use.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from pathlib import Path

import torch
from safetensors import SafetensorError

from byollm.download import sha256_file
from byollm.errors import ByollmError
from byollm.model.io import CONFIG_FILE, TOKENIZER_FILE, verify_checksums

STATE_FORMAT = "byollm-train-state"
STATE_VERSION = 1
STATE_FILE = "train_state.pt"


def save_checkpoint(
    directory: str | Path,
    model: torch.nn.Module,
    tokenizer,
    train_state: dict,
    *,
    train_config: dict | None = None,
    data: dict | None = None,
) -> Path:
    """Write a checkpoint folder atomically; returns its path.

    Raises ByollmError (with the previous checkpoint intact and no temporary folder left) when
    the files cannot be written, e.g. on a full disk.
    """
    from byollm.model import save_model

    directory = Path(directory)
    tmp = directory.with_name(f".{directory.name}.tmp-{os.getpid()}")
    old = directory.with_name(f"{directory.name}.old")
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temporaries(directory)
        tmp.mkdir()
        tokenizer.save(tmp / TOKENIZER_FILE)
        state = {"format": STATE_FORMAT, "version": STATE_VERSION, **train_state}
        torch.save(state, tmp / STATE_FILE)
        checksums = {name: sha256_file(tmp / name) for name in (TOKENIZER_FILE, STATE_FILE)}
        extra = {"train": train_config or {}, **({"data": data} if data else {})}
        save_model(model, tmp, extra=extra, checksums=checksums)  # weights, then config.json
        _fsync_dir(tmp)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        # torch's writer reports a failed write as RuntimeError, safetensors as SafetensorError
        if isinstance(e, (OSError, RuntimeError, SafetensorError)):
            reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            raise ByollmError(
                f"{directory}: cannot write the checkpoint ({reason.splitlines()[0]}; "
                f"{_free_space(directory.parent)}); the previous checkpoint is kept"
            ) from None
        raise
    # Swap: current -> .old, tmp -> current, drop .old. At every instant one whole checkpoint exists.
    if directory.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(directory, old)
    os.replace(tmp, directory)
    shutil.rmtree(old, ignore_errors=True)
    return directory


def _remove_stale_temporaries(directory: Path) -> None:
    """Delete `.<name>.tmp-<pid>` folders left by crashed saves (never a live process's)."""
    for stale in directory.parent.glob(f".{directory.name}.tmp-*"):
        pid = stale.name.rsplit("-", 1)[-1]
        if pid.isdigit() and int(pid) != os.getpid() and _process_alive(int(pid)):
            continue  # another process is writing it right now
        shutil.rmtree(stale, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)  # signal 0: no signal sent, only the existence check
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, it is someone else's
    except (OverflowError, OSError):
        return False
    return True


def _free_space(folder: Path) -> str:
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return "free space unknown"
    return f"{free / 2**20:,.0f} MiB free there"


def resolve_checkpoint(directory: str | Path) -> Path | None:
    """The checkpoint folder to read: `directory`, or its `.old` twin after a crash mid-swap."""
    directory = Path(directory)
    if (directory / "train_state.pt").exists():
        return directory
    old = directory.with_name(f"{directory.name}.old")
    if (old / "train_state.pt").exists():
        return old
    return None


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
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise ByollmError(f"{path}: not a byollm training state")
    if state.get("version") != STATE_VERSION:
        raise ByollmError(
            f"{path}: training state version {state.get('version')!r}, "
            f"this byollm reads {STATE_VERSION}"
        )
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


def read_checkpoint_config(directory: str | Path) -> dict:
    """config.json of a checkpoint as a dict (model and train sections)."""
    path = Path(directory) / "config.json"
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise ByollmError(f"{path}: missing; not a checkpoint folder") from None
    except (OSError, json.JSONDecodeError) as e:
        raise ByollmError(f"{path}: not readable ({e})") from None


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


def _fsync_dir(directory: Path) -> None:
    """Flush the files of `directory` to disk before they replace a good checkpoint."""
    for path in directory.iterdir():
        with path.open("rb") as f:
            os.fsync(f.fileno())
