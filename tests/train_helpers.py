"""Helpers shared by the train stage's tests (not a test file itself)."""

from __future__ import annotations

import contextlib

import torch
from conftest import shared_file

# A model and run small enough for a test: 2 layers, 32 wide, 20 steps of 8 x 32 tokens.
TINY = {
    "batch_size": "8",
    "max_steps": "20",
    "eval_interval": "10",
    "eval_rows": "16",
    "log_interval": "5",
    "warmup_steps": "5",
    "sample_tokens": "20",
    "model.block_size": "32",
    "model.n_layer": "2",
    "model.n_head": "2",
    "model.n_embd": "32",
    "threads": "1",
}


def tiny_config(corpus, tmp_path, **extra):
    """A TrainConfig of TINY on `corpus`, writing under tmp_path/runs, with `extra` overrides."""
    from byollm.train import load_train_config

    overrides = {**TINY, "corpus": str(corpus), "out_dir": str(tmp_path / "runs"), **extra}
    return load_train_config(None, {k: str(v) for k, v in overrides.items()})


@contextlib.contextmanager
def single_thread():
    """Tiny models on a shared 2-core box run fastest (and steadiest) on one thread."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def shakespeare_excerpt(folder, chars: int):
    """The first `chars` characters of Tiny Shakespeare as a local file (skips without it)."""
    text = shared_file("tinyshakespeare.txt").read_text(encoding="utf-8")[:chars]
    path = folder / f"shakespeare-{chars // 1000}k.txt"
    path.write_text(text, encoding="utf-8")
    return path


def one_line_error(capsys, *words):
    """The CLI printed one line, `byollm train: error: ...`, holding each of `words`."""
    err = capsys.readouterr().err
    assert err.startswith("byollm train: error:") and err.count("\n") == 1, err
    for word in words:
        assert word in err, err
