"""Checkpoints: everything needed to sample from a model, and to resume training exactly.

A checkpoint is a folder:

    model.safetensors   the weights (safetensors: plain tensors, no code can hide in them)
    config.json         {"format": "byollm-model", "version": 1, "model": {...}, "train": {...}}
    tokenizer.json      the tokenizer, so the folder alone can turn text into ids and back
    train_state.pt      optimizer moments, step, RNG states, data position, best val loss

Design choices:
- **Atomic.** A new checkpoint is written into a temporary folder beside the target and swapped in
  with renames, so a crash (or SIGKILL) during a save never destroys the previous good checkpoint.
  If a crash falls between the two renames, the previous checkpoint is still there under
  `<name>.old` and `load_train_state`/`resolve_checkpoint` pick it up.
- **No pickled code.** `train_state.pt` holds only tensors, numbers, strings, lists and dicts, and
  is read with `torch.load(weights_only=True)`.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch

from byollm.errors import ByollmError

STATE_FORMAT = "byollm-train-state"
STATE_VERSION = 1


def save_checkpoint(
    directory: str | Path,
    model: torch.nn.Module,
    tokenizer,
    train_state: dict,
    *,
    train_config: dict | None = None,
) -> Path:
    """Write a checkpoint folder atomically; returns its path."""
    from byollm.model import save_model

    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    tmp = directory.with_name(f".{directory.name}.tmp-{os.getpid()}")
    old = directory.with_name(f"{directory.name}.old")
    for stale in directory.parent.glob(f".{directory.name}.tmp-*"):  # left by a crashed save
        shutil.rmtree(stale, ignore_errors=True)
    tmp.mkdir()
    save_model(model, tmp, extra={"train": train_config or {}})
    tokenizer.save(tmp / "tokenizer.json")
    state = {"format": STATE_FORMAT, "version": STATE_VERSION, **train_state}
    torch.save(state, tmp / "train_state.pt")
    _fsync_dir(tmp)
    # Swap: current -> .old, tmp -> current, drop .old. At every instant one whole checkpoint exists.
    if directory.exists():
        shutil.rmtree(old, ignore_errors=True)
        os.replace(directory, old)
    os.replace(tmp, directory)
    shutil.rmtree(old, ignore_errors=True)
    return directory


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
    """The training state of a checkpoint, read without unpickling code."""
    path = Path(directory) / "train_state.pt"
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except FileNotFoundError:
        raise ByollmError(f"{path}: missing; not a training checkpoint") from None
    except Exception as e:  # a truncated or foreign file: name it, do not crash on it
        raise ByollmError(f"{path}: cannot read the training state ({e})") from None
    if not isinstance(state, dict) or state.get("format") != STATE_FORMAT:
        raise ByollmError(f"{path}: not a byollm training state")
    if state.get("version") != STATE_VERSION:
        raise ByollmError(
            f"{path}: training state version {state.get('version')!r}, "
            f"this byollm reads {STATE_VERSION}"
        )
    return state


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
