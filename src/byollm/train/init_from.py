"""`init_from`: start a training run from the weights of an existing checkpoint.

    byollm train --init-from runs/shakespeare-char/best --corpus my-notes.txt --max_steps 300

Continued pretraining and domain adaptation (nanoGPT's `init_from`): the new run takes the
checkpoint's weights and nothing else of its training.

Design choices:
- **Weights only.** The optimizer moments, the step counter and the learning-rate schedule start
  fresh: the new run has its own warmup and horizon. (`--resume` is the other thing: continue
  the *same* run exactly.)
- **The model is the checkpoint's.** Its config (width, depth, block size, ...) replaces the
  preset's `[model]` section, since the weights only fit their own shapes.
- **The tokenizer comes with it.** Token ids only mean something to the embedding table they
  were trained with, so the corpus is prepared with the checkpoint's tokenizer file (into a
  data folder named by that tokenizer's hash). Prepared data given with `data_dir` must have
  been made with the same tokenizer: a different one is refused, naming both hashes.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

from byollm.data.tokens import META_FILE, read_meta
from byollm.errors import ByollmError
from byollm.tokenizer import find_tokenizer_file


def init_checkpoint(path: str | Path) -> Path:
    """The checkpoint folder `path` names, checked to hold a model and its tokenizer."""
    from byollm.model.checkpoint import CONFIG_FILE, RUN_CHECKPOINTS, read_checkpoint_config

    directory = Path(path).expanduser()
    if directory.is_dir() and not (directory / CONFIG_FILE).exists():
        hint = [sub for sub in RUN_CHECKPOINTS if (directory / sub / CONFIG_FILE).exists()]
        if hint:  # a run folder: say which checkpoint inside it to take
            raise ByollmError(
                f"init_from={path} is a run folder; name one of its checkpoints, e.g. "
                f"{directory / hint[0]}"
            )
    try:
        read_checkpoint_config(directory)
    except ByollmError as e:
        raise ByollmError(f"init_from: {e}") from None
    if not (find_tokenizer_file(directory)).is_file():
        raise ByollmError(
            f"init_from: {find_tokenizer_file(directory)} is missing; a checkpoint to start from "
            "needs the tokenizer its weights were trained with"
        )
    return directory


def with_init_tokenizer(config):
    """`config` (a TrainConfig) preparing its corpus with the init checkpoint's tokenizer."""
    from byollm.tokenizer import load_tokenizer

    directory = init_checkpoint(config.init_from)
    tokenizer_path = find_tokenizer_file(directory)
    own_hash = load_tokenizer(tokenizer_path).content_hash
    changes = {"tokenizer": str(tokenizer_path)}
    if not config.data_dir:
        from byollm.train.config import default_data_dir

        changes["data_dir"] = str(default_data_dir(config.corpus, f"tokenizer-{own_hash[:12]}"))
    elif (Path(config.data_dir) / META_FILE).exists():
        # Prepared data is never silently re-tokenized (and so lost) with another vocabulary.
        check_same_tokenizer(directory, own_hash, read_meta(config.data_dir)["tokenizer_hash"])
    return dataclasses.replace(config, **changes)


def check_same_tokenizer(directory: Path, own_hash: str, data_hash: str) -> None:
    if own_hash != data_hash:
        raise ByollmError(
            f"init_from={directory}: its tokenizer (hash {own_hash[:12]}) differs from the "
            f"prepared data's (hash {data_hash[:12]}); prepare the corpus with "
            f"{find_tokenizer_file(directory)} or leave data_dir empty"
        )


def load_init_model(config, data_tokenizer, device):
    """The init checkpoint's model on `device`, refused if `data_tokenizer` is not its own."""
    from byollm.model import load_model
    from byollm.tokenizer import load_tokenizer

    directory = init_checkpoint(config.init_from)
    own = load_tokenizer(find_tokenizer_file(directory))
    check_same_tokenizer(directory, own.content_hash, data_tokenizer.content_hash)
    return load_model(directory, device=str(device))
