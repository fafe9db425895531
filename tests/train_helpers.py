"""Helpers shared by the train stage's tests (not a test file itself)."""

from __future__ import annotations

import contextlib

import torch
from conftest import shared_file


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
