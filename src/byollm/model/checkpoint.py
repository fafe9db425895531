"""The checkpoint folder: the one module that knows its files, reads its config and writes it.

    ckpt/
        model.safetensors   the weights (safetensors: plain tensors, no code can hide in them)
        config.json         {"format": "byollm-model", "version": 1, "model": {...GPTConfig...},
                             "sha256": {file: hex digest}, **extra}
        byollm-tokenizer.json  the tokenizer, so the folder alone turns text into ids and back
                            (`tokenizer.json` in folders written before the rename)
        train_state.pt      (training checkpoints) added by `byollm.train.checkpoint`

    >>> save_checkpoint("ckpt", model, tokenizer, extra={"train": {...}})   # doctest: +SKIP
    >>> model, tokenizer = load_for_inference("runs/shakespeare")           # doctest: +SKIP

Other stages add keys to config.json (`extra`: the trainer's "train" and "data", a fine-tune's
"instruct") and files beside the weights (`files`), never their own reader or writer.

Design choices:
- **One reader.** `read_checkpoint_config` parses config.json and checks its header (format
  and version), its "model" table and its "sha256" table; every stage reads the folder through
  it. `read_model_config` turns the "model" table into a validated `GPTConfig`.
- **One resolver.** `resolve_checkpoint` turns what a user passes into the folder to read: a
  checkpoint folder, a run folder (its `best/`, else `checkpoint/`), or the `.old` twin a crash
  between the two renames of a save leaves behind.
- **Atomic.** `save_checkpoint` (through `write_folder_atomically`) writes a temporary folder
  beside the target, fsyncs it, and swaps it in with renames: a crash or a full disk never
  destroys the previous good checkpoint. Temporary folders of crashed saves are removed by the
  next save, never one whose process is still alive.
- **Checksummed.** config.json lists the sha256 of the weights and of every other file saved
  with them. `load_model` verifies the weights and the tokenizer file, so a bit-flipped file is
  refused with one line instead of being sampled from or trained on. config.json itself is not
  listed: it is the list, checked field by field when parsed. A folder saved before checksums
  existed (no "sha256") loads as before. The sums catch damage (a bad disk, a truncated copy),
  not an attacker who can rewrite config.json too.
- **Nothing is trusted before it is checked**: the config goes through `GPTConfig`'s validation
  (sizes bounded), then the safetensors header is compared with the shapes the config implies
  (`byollm.model.weights`), all before the model is built. A config.json edited to say 10^8
  layers is one line, not an attempt to allocate that model.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from byollm import config as config_lib
from byollm.download import sha256_file
from byollm.errors import ByollmError
from byollm.formats import check_header, read_json_file
from byollm.model.config import GPTConfig
from byollm.model.gpt import GPT
from byollm.model.weights import (
    check_weights_match,
    expected_weight_shapes,
    load_state,
    read_weight_shapes,
    stored_state,
    unwrap,
)
from byollm.paths import process_alive, temporary_path, temporary_target, user_path
from byollm.tokenizer import LEGACY_TOKENIZER_FILE, TOKENIZER_FILE, find_tokenizer_file

FORMAT = "byollm-model"
VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"  # the tokenizer's file name is the tokenizer package's
# A run folder's checkpoints: the latest (what --resume continues) and the best by val loss;
# RUN_CHECKPOINTS in the order a reader prefers them.
LATEST, BEST = "checkpoint", "best"
RUN_CHECKPOINTS = (BEST, LATEST)
OLD_SUFFIX = ".old"  # the previous folder during a swap (`old_twin`)
# Every name a run folder's checkpoint can have: best/, checkpoint/ and their `.old` twins.
RUN_CHECKPOINT_FOLDERS = (*RUN_CHECKPOINTS, *(name + OLD_SUFFIX for name in RUN_CHECKPOINTS))


# --- reading ---------------------------------------------------------------------------------


def read_checkpoint_config(directory: str | Path) -> dict:
    """The parsed config.json of a checkpoint folder: header, "model" and "sha256" checked."""
    directory = Path(directory)
    path = directory / CONFIG_FILE
    if not directory.is_dir():
        raise ByollmError(f"checkpoint directory not found: {directory}")
    meta = read_json_file(
        path, missing=f"missing (a byollm checkpoint has {CONFIG_FILE} + {WEIGHTS_FILE})"
    )
    hint = ""
    if isinstance(meta, dict) and "model_type" in meta:
        hint = "; it looks like a Hugging Face model: use `byollm convert --from-hf`"
    check_header(meta, path, format=FORMAT, version=VERSION, hint=hint)
    if not isinstance(meta.get("model"), dict):
        raise ByollmError(f"{path}: missing the 'model' table")
    if not isinstance(meta.get("sha256", {}), dict):
        raise ByollmError(f"{path}: 'sha256' must be a table of file digests")
    return meta


def read_model_config(directory: str | Path) -> GPTConfig:
    """The `GPTConfig` saved in a checkpoint folder."""
    meta = read_checkpoint_config(directory)
    path = Path(directory) / CONFIG_FILE
    return config_lib.from_dict(GPTConfig, meta["model"], f"{path} [model]")


def read_config_file(path: str | Path) -> GPTConfig:
    """A GPTConfig from a TOML file (model keys at the top or under [model]), a checkpoint's
    config.json, or a checkpoint folder."""
    path = Path(path)
    if path.is_dir():
        return read_model_config(path)
    if path.suffix == ".json":
        if path.name != CONFIG_FILE:
            raise ByollmError(f"{path}: a JSON model config must be a checkpoint's {CONFIG_FILE}")
        return read_model_config(path.parent)
    data = config_lib.load_toml(path)
    table = data.get("model", data)
    return config_lib.from_dict(
        GPTConfig, table, f"{path} [model]" if "model" in data else str(path)
    )


def verify_checksums(directory: str | Path, names: list[str]) -> None:
    """Check the files `names` of a checkpoint folder against the sha256s in its config.json.

    A name without a recorded sha256 (a checkpoint from before checksums, or a file saved by
    another tool) is not checked; a recorded file that is missing or differs is an error.
    """
    directory = Path(directory)
    recorded = read_checkpoint_config(directory).get("sha256", {})
    for name in names:
        expected = recorded.get(name)
        if expected is None:
            continue
        path = directory / name
        try:
            actual = sha256_file(path)
        except OSError as e:
            raise ByollmError(
                f"{path}: cannot read ({e.strerror}); {CONFIG_FILE} lists it as part of the "
                "checkpoint"
            ) from None
        if actual != expected:
            raise ByollmError(
                f"{path}: damaged, its sha256 {actual[:12]}... differs from the "
                f"{str(expected)[:12]}... recorded in {CONFIG_FILE} when it was saved (a changed "
                "file, or not this checkpoint's); use another checkpoint (e.g. best/) or a backup"
            )


def resolve_checkpoint(path: str | Path, *, require: str = CONFIG_FILE) -> Path:
    """The checkpoint folder meant by `path`, one that holds the file `require`.

    Tried in order: `path` itself, then a run folder's `best/` and `checkpoint/`; each of them
    also as its `.old` twin, which is all that is left when a crash fell between the two renames
    of a save. `require` is config.json for reading a model, train_state.pt for resuming.
    """
    path = user_path(path)
    for folder in (path, *(path / name for name in RUN_CHECKPOINTS)):
        for candidate in (folder, old_twin(folder)):
            if (candidate / require).is_file():
                return candidate
    if path.is_file():
        raise ByollmError(f"{path} is a file; expected a checkpoint folder")
    if not path.exists():
        raise ByollmError(f"checkpoint folder not found: {path}")
    raise ByollmError(
        f"{path} is not a checkpoint folder: no {require} (a checkpoint holds {WEIGHTS_FILE}, "
        f"{CONFIG_FILE} and {TOKENIZER_FILE}; a run folder holds best/ or checkpoint/)"
    )


def load_model(
    directory: str | Path, *, device: str | torch.device = "cpu", dtype: torch.dtype | None = None
) -> GPT:
    """Rebuild the model saved by `save_model`; weights must match the config exactly."""
    config = read_model_config(directory)
    path = Path(directory) / WEIGHTS_FILE
    if not path.is_file():
        raise ByollmError(f"{path}: missing (the weights of the checkpoint)")
    try:
        # The header alone first: a config that does not fit the weights is refused before the
        # model it describes is allocated (it might be huge).
        check_weights_match(expected_weight_shapes(config), read_weight_shapes(path), str(path))
        tensors = load_file(str(path))
    except (SafetensorError, OSError) as e:
        raise ByollmError(
            f"{path}: cannot read the weights ({e}); the file may be truncated"
        ) from None
    model = GPT(config)
    load_state(model, tensors, str(path))
    # After the structural checks, which name a mismatch more precisely: weights that fit the
    # config but whose bytes changed since saving are damaged (or not this checkpoint's).
    verify_checksums(directory, [WEIGHTS_FILE, TOKENIZER_FILE, LEGACY_TOKENIZER_FILE])
    return model.to(device=device, dtype=dtype)


def load_for_inference(path: str | Path, device: str = "auto", quantize: str = "none"):
    """`(model, tokenizer)` from a checkpoint or run folder, the model in eval mode on `device`.

    `quantize="int8"` swaps the matrices for weight-only int8 ones (`quantize_int8`): faster
    decoding on the CPU, slightly different outputs.
    """
    from byollm.device import pick_device
    from byollm.model.quantize import quantize_int8
    from byollm.tokenizer import load_tokenizer

    if quantize not in ("none", "int8"):
        raise ByollmError(f"quantize={quantize!r} is invalid: choose 'none' or 'int8'")
    checkpoint = resolve_checkpoint(path)
    tokenizer_path = find_tokenizer_file(checkpoint)
    if not tokenizer_path.exists():
        raise ByollmError(
            f"{tokenizer_path} is missing: a checkpoint folder needs the tokenizer it was "
            "trained with"
        )
    model = load_model(checkpoint, device=str(pick_device(device)))
    tokenizer = load_tokenizer(tokenizer_path)
    if tokenizer.vocab_size > model.config.vocab_size:
        raise ByollmError(
            f"{tokenizer_path} has {tokenizer.vocab_size} tokens but the model in {checkpoint} "
            f"only knows {model.config.vocab_size}: the tokenizer does not belong to this model"
        )
    model.eval()
    if quantize == "int8":
        quantize_int8(model)
    return model, tokenizer


# --- writing ---------------------------------------------------------------------------------


def save_model(
    model: torch.nn.Module,
    directory: str | Path,
    *,
    extra: dict | None = None,
    checksums: dict[str, str] | None = None,
) -> Path:
    """Write `model.safetensors` and `config.json` into `directory` (created if needed).

    `checksums` ({file name: sha256}) lists files the caller already wrote into `directory`;
    they are recorded in config.json next to the weights' own sha256. Other files in the folder
    are left alone; `save_checkpoint` writes a whole folder atomically.
    """
    model = unwrap(model)
    if getattr(model, "quantized", None):
        raise ByollmError(
            f"this model has {model.quantized} weights, which a checkpoint does not store; save "
            "the full-precision model (quantise when loading, e.g. `byollm sample --quantize int8`)"
        )
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in stored_state(model).items()}
    meta = {"format": FORMAT, "version": VERSION, "model": config_lib.to_dict(model.config)}
    for key in extra or {}:
        if key in (*meta, "sha256"):
            raise ByollmError(f"save_model: extra key {key!r} would overwrite a reserved key")
    # Write to temporary names then rename, so a crash never leaves a half-written file.
    tmp_weights = directory / (WEIGHTS_FILE + ".tmp")
    tmp_config = directory / (CONFIG_FILE + ".tmp")
    save_file(tensors, str(tmp_weights), metadata={"format": "pt"})
    meta["sha256"] = {WEIGHTS_FILE: sha256_file(tmp_weights), **(checksums or {})}
    meta.update(extra or {})
    tmp_config.write_text(json.dumps(meta, indent=2) + "\n")
    tmp_weights.replace(directory / WEIGHTS_FILE)
    tmp_config.replace(directory / CONFIG_FILE)
    return directory


def save_checkpoint(
    directory: str | Path,
    model: torch.nn.Module,
    tokenizer=None,
    *,
    extra: dict | None = None,
    files: dict[str, Callable[[Path], None]] | None = None,
) -> Path:
    """Write a whole checkpoint folder atomically; returns its path.

    The weights and config.json (with `extra`), the tokenizer file when a tokenizer is given,
    and `files` ({name: write(path)}, e.g. the trainer's train_state.pt), all checksummed.
    Raises ByollmError, with the previous checkpoint intact and no temporary folder left, when
    the files cannot be written (e.g. a full disk).
    """
    writers = {TOKENIZER_FILE: tokenizer.save} if tokenizer is not None else {}
    writers.update(files or {})
    for name in writers:
        if name in (WEIGHTS_FILE, CONFIG_FILE) or Path(name).name != name:
            raise ByollmError(f"save_checkpoint: cannot add a file named {name!r}")

    def write(folder: Path) -> None:
        for name, write_file in writers.items():
            write_file(folder / name)
        checksums = {name: sha256_file(folder / name) for name in writers}
        save_model(model, folder, extra=extra, checksums=checksums)  # weights, then config.json

    return write_folder_atomically(directory, write, what="checkpoint")


def write_folder_atomically(
    directory: str | Path, write: Callable[[Path], None], *, what: str = "folder"
) -> Path:
    """Run `write(folder)` on a temporary folder beside `directory`, then swap it in.

    Swap: current -> `<name>.old`, temporary -> current, drop `.old`; at every instant one whole
    folder exists. A failure (a full disk included) removes the temporary folder, keeps the
    previous one and raises one line naming `what` was being written.
    """
    directory = Path(directory)
    # through a symlink: replace the folder it names, not the link
    target = directory.resolve() if directory.is_symlink() else directory
    tmp = temporary_path(target)
    old = old_twin(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_temporaries(target)
        tmp.mkdir()
        write(tmp)
        _fsync_files(tmp)
    except BaseException as e:
        shutil.rmtree(tmp, ignore_errors=True)
        # torch's writer reports a failed write as RuntimeError, safetensors as SafetensorError
        if isinstance(e, (OSError, RuntimeError, SafetensorError)):
            reason = e.strerror if isinstance(e, OSError) and e.strerror else str(e)
            kept = f"the previous {what} is kept" if target.exists() else "nothing was written"
            raise ByollmError(
                f"{directory}: cannot write the {what} ({reason.splitlines()[0]}; "
                f"{_free_space(target.parent)}); {kept}"
            ) from None
        raise
    try:
        if target.exists():
            shutil.rmtree(old, ignore_errors=True)
            os.replace(target, old)
        os.replace(tmp, target)
    except OSError as e:
        if old.exists() and not target.exists():
            os.replace(old, target)  # put the previous folder back
        shutil.rmtree(tmp, ignore_errors=True)
        raise ByollmError(
            f"{directory}: cannot replace the {what} ({e.strerror or e}); the previous {what} "
            "is kept"
        ) from None
    shutil.rmtree(old, ignore_errors=True)
    return directory


def old_twin(folder: Path) -> Path:
    """`<name>.old`: where the previous folder waits during a swap (all that is left after a
    crash between its two renames)."""
    return folder.with_name(folder.name + OLD_SUFFIX)


def _remove_stale_temporaries(directory: Path) -> None:
    """Delete `.<name>.tmp-<pid>` folders left by crashed saves (never a live process's)."""
    for stale in directory.parent.glob(f".{directory.name}.tmp-*"):
        _, pid = temporary_target(stale.name) or (None, None)
        if pid is not None and pid != os.getpid() and process_alive(pid):
            continue  # another process is writing it right now
        shutil.rmtree(stale, ignore_errors=True)


def _free_space(folder: Path) -> str:
    try:
        free = shutil.disk_usage(folder).free
    except OSError:
        return "free space unknown"
    return f"{free / 2**20:,.0f} MiB free there"


def _fsync_files(directory: Path) -> None:
    """Flush the files of `directory` to disk before they replace a good folder."""
    for path in directory.iterdir():
        if not path.is_file():
            continue
        with path.open("rb") as f:
            os.fsync(f.fileno())
