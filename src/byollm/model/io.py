"""Save and load a model as a directory: `model.safetensors` + `config.json`.

    >>> save_model(model, "ckpt", extra={"train": {"step": 100}})
    >>> model = load_model("ckpt")

`config.json` is `{"format": "byollm-model", "version": 1, "model": {...GPTConfig...},
"sha256": {file: hex digest}, **extra}`; other stages add their own keys (the trainer adds
"train"). Weights are safetensors: no pickle, so loading a stranger's checkpoint cannot run code.
A tied output head is stored once (under `transformer.wte.weight`) and re-tied on load.

Checksums: `sha256` lists the digest of `model.safetensors` and of any other file the caller
wrote beside it (the trainer adds `tokenizer.json` and `train_state.pt`). `load_model` checks the
weights and `tokenizer.json` against it, so a bit-flipped file is refused with one line instead
of being sampled from or trained on. `config.json` itself is not listed: it is the list, readable
and checked field by field when parsed. A folder saved before checksums existed (no `sha256`
key) loads as before. The checksums catch damage (a bad disk, a truncated copy), not an attacker
who can rewrite `config.json` too.

Loading trusts neither file: the config goes through `GPTConfig`'s validation (sizes bounded),
then the names and shapes in the safetensors header are compared with those the config implies
(`expected_weight_shapes`, computed without allocating the model), all before the model is
built. A config.json edited to say 10^8 layers, or 1000 layers beside 4 layers of weights, is
one line, not an attempt to allocate the model it describes.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from byollm import config as config_lib
from byollm.download import sha256_file
from byollm.errors import ByollmError
from byollm.model.config import GPTConfig
from byollm.model.gpt import GPT

FORMAT = "byollm-model"
VERSION = 1
WEIGHTS_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
TOKENIZER_FILE = "tokenizer.json"


def unwrap(model: torch.nn.Module) -> GPT:
    """The plain GPT inside a torch.compile (`_orig_mod`) or DDP (`module`) wrapper."""
    while not isinstance(model, GPT):
        inner = getattr(model, "_orig_mod", None) or getattr(model, "module", None)
        if inner is None:
            raise ByollmError(f"expected a byollm GPT model, got {type(model).__name__}")
        model = inner
    return model


def save_model(
    model: torch.nn.Module,
    directory: str | Path,
    *,
    extra: dict | None = None,
    checksums: dict[str, str] | None = None,
) -> Path:
    """Write `model.safetensors` and `config.json` into `directory` (created if needed).

    `checksums` ({file name: sha256}) lists files the caller already wrote into `directory`;
    they are recorded in config.json next to the weights' own sha256.
    """
    model = unwrap(model)
    if getattr(model, "quantized", None):
        raise ByollmError(
            f"this model has {model.quantized} weights, which a checkpoint does not store; save "
            "the full-precision model (quantise when loading, e.g. `byollm sample --quantize int8`)"
        )
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().contiguous().cpu() for k, v in _stored_state(model).items()}
    meta = {"format": FORMAT, "version": VERSION, "model": config_lib.to_dict(model.config)}
    for key in extra or {}:
        if key in (*meta, "sha256"):
            raise ByollmError(f"save_model: extra key {key!r} would overwrite a reserved key")
    # Write to temporary names then rename, so a crash never leaves a half-written checkpoint.
    tmp_weights = directory / (WEIGHTS_FILE + ".tmp")
    tmp_config = directory / (CONFIG_FILE + ".tmp")
    save_file(tensors, str(tmp_weights), metadata={"format": "pt"})
    meta["sha256"] = {WEIGHTS_FILE: sha256_file(tmp_weights), **(checksums or {})}
    meta.update(extra or {})
    tmp_config.write_text(json.dumps(meta, indent=2) + "\n")
    tmp_weights.replace(directory / WEIGHTS_FILE)
    tmp_config.replace(directory / CONFIG_FILE)
    return directory


def read_checkpoint_meta(directory: str | Path) -> dict:
    """The parsed `config.json` of a checkpoint directory, format and version checked."""
    path = Path(directory) / CONFIG_FILE
    if not Path(directory).is_dir():
        raise ByollmError(f"checkpoint directory not found: {directory}")
    if not path.is_file():
        raise ByollmError(
            f"{path}: missing (a byollm checkpoint has {CONFIG_FILE} + {WEIGHTS_FILE})"
        )
    try:
        meta = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ByollmError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        hint = ""
        if isinstance(meta, dict) and "model_type" in meta:
            hint = " (it looks like a Hugging Face model: use `byollm convert --from-hf`)"
        raise ByollmError(f"{path}: not a byollm model config, expected format {FORMAT!r}{hint}")
    version = meta.get("version")
    if version != VERSION:
        raise ByollmError(
            f"{path}: version {version!r} is not supported (this byollm reads {VERSION})"
        )
    if not isinstance(meta.get("model"), dict):
        raise ByollmError(f"{path}: missing the 'model' table")
    return meta


def read_model_config(directory: str | Path) -> GPTConfig:
    """The `GPTConfig` saved in a checkpoint directory."""
    meta = read_checkpoint_meta(directory)
    path = Path(directory) / CONFIG_FILE
    return config_lib.from_dict(GPTConfig, meta["model"], f"{path} [model]")


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
    verify_checksums(directory, [WEIGHTS_FILE, TOKENIZER_FILE])
    return model.to(device=device, dtype=dtype)


def verify_checksums(directory: str | Path, names: list[str]) -> None:
    """Check the files `names` of a checkpoint folder against the sha256s in its config.json.

    A name without a recorded sha256 (a checkpoint from before checksums, or a file saved by
    another tool) is not checked; a recorded file that is missing or differs is an error.
    """
    directory = Path(directory)
    recorded = read_checkpoint_meta(directory).get("sha256", {})
    if not isinstance(recorded, dict):
        raise ByollmError(f"{directory / CONFIG_FILE}: 'sha256' must be a table of file digests")
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


def read_weight_shapes(path: str | Path) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor in a safetensors file, from its header (no data is read)."""
    with safe_open(str(path), framework="pt") as f:
        names = f.keys()  # a safe_open handle cannot be iterated itself
        return {name: tuple(f.get_slice(name).get_shape()) for name in names}


def expected_weight_shapes(config: GPTConfig) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every stored weight of a model with `config`, without allocating it.

    Blocks are all alike, so a one-block model on the meta device (shapes, no memory) is built
    and its block's weights are repeated for every layer: quick even for 1024 layers.
    """
    with torch.device("meta"):
        skeleton = GPT(dataclasses.replace(config, n_layer=1))
    shapes = {}
    for name, tensor in _stored_state(skeleton).items():
        if name.startswith("transformer.h.0."):
            for layer in range(config.n_layer):
                shapes[name.replace(".h.0.", f".h.{layer}.", 1)] = tuple(tensor.shape)
        else:
            shapes[name] = tuple(tensor.shape)
    return shapes


def check_weights_match(
    expected: dict[str, tuple[int, ...]], found: dict[str, tuple[int, ...]], source: str
) -> None:
    """Name every missing, unexpected or misshapen weight (`found`) against the config's."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {_short_list(missing)}")
        if unexpected:
            parts.append(f"unexpected {_short_list(unexpected)}")
        raise ByollmError(f"{source}: weights do not match the config: {'; '.join(parts)}")
    for name, shape in sorted(found.items()):
        if tuple(shape) != tuple(expected[name]):
            raise ByollmError(
                f"{source}: {name} has shape {tuple(shape)}, the config needs "
                f"{tuple(expected[name])}"
            )


def load_state(model: GPT, tensors: dict[str, torch.Tensor], source: str) -> None:
    """Copy `tensors` into `model`, naming every missing, unexpected or misshapen key."""
    expected = _stored_state(model)
    check_weights_match(
        {k: tuple(v.shape) for k, v in expected.items()},
        {k: tuple(v.shape) for k, v in tensors.items()},
        source,
    )
    with torch.no_grad():
        for name, param in expected.items():
            param.copy_(tensors[name])


def _stored_state(model: GPT) -> dict[str, torch.Tensor]:
    """The state dict as a checkpoint stores it: a tied head is stored once, as the embedding."""
    state = model.state_dict()
    if model.config.tie_embeddings:
        state.pop("lm_head.weight")
    return state


def _short_list(names: list[str], limit: int = 5) -> str:
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more
