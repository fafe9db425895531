"""Load a checkpoint folder for sampling or evaluation: the model plus its tokenizer.

    >>> model, tokenizer = load_for_inference("runs/shakespeare/best")  # doctest: +SKIP

A checkpoint folder holds `model.safetensors` + `config.json` (written by
`byollm.model.save_model`) and `byollm-tokenizer.json` (`tokenizer.json` in older ones). A run folder (`runs/<name>/`, holding
`best/` and `checkpoint/`) is accepted too: its `best/` checkpoint is used, else `checkpoint/`.
"""

from __future__ import annotations

import json
from pathlib import Path

from byollm.device import pick_device
from byollm.errors import ByollmError
from byollm.tokenizer import TOKENIZER_FILE, find_tokenizer_file


def resolve_checkpoint(path: str | Path) -> Path:
    """The checkpoint folder meant by `path` (a checkpoint folder or a run folder)."""
    path = Path(path)
    if not path.exists():
        raise ByollmError(f"checkpoint folder not found: {path}")
    if not path.is_dir():
        raise ByollmError(f"{path} is a file; --checkpoint expects a checkpoint folder")
    if not (path / "config.json").exists():
        for sub in ("best", "checkpoint"):
            if (path / sub / "config.json").exists():
                return path / sub
        raise ByollmError(
            f"{path} is not a checkpoint folder: no config.json (expected model.safetensors, "
            f"config.json and {TOKENIZER_FILE}, or a run folder with best/ or checkpoint/)"
        )
    return path


def read_checkpoint_extras(checkpoint: Path) -> dict:
    """The whole config.json of a checkpoint, for keys other stages add (e.g. "instruct")."""
    try:
        return json.loads((checkpoint / "config.json").read_text())
    except (OSError, ValueError) as e:
        raise ByollmError(f"{checkpoint / 'config.json'}: cannot read ({e})") from None


def load_for_inference(checkpoint_dir: str | Path, device: str = "auto"):
    """`(model, tokenizer)` from a checkpoint folder, the model in eval mode on `device`."""
    checkpoint = resolve_checkpoint(checkpoint_dir)
    from byollm.model import load_model
    from byollm.tokenizer import load_tokenizer

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
    return model, tokenizer
