"""Toy models for the generate/evaluate tests: a bigram table whose answers we know by hand."""

from __future__ import annotations

import math

import torch
from torch import nn


class BigramToy(nn.Module):
    """`logits[b, t] = table[idx[b, t]]`: the next token depends only on the current one.

    Follows the model interface the engine drives: `forward(idx, targets=None, *, kv_cache=None)
    -> (logits, loss)`, `new_kv_cache`, `config.block_size`. Its "cache" only counts positions,
    and records every call so tests can see what was fed.
    """

    def __init__(self, probs: list[list[float]], block_size: int | None = None):
        super().__init__()
        table = torch.tensor([[math.log(p) if p > 0 else -1e9 for p in row] for row in probs])
        self.table = nn.Parameter(table)
        self.config = type("Config", (), {"block_size": block_size})()
        self.calls: list[tuple[int, bool]] = []  # (tokens fed, with cache)

    def forward(self, idx, targets=None, *, kv_cache=None):
        if self.config.block_size is not None:
            assert idx.shape[1] <= self.config.block_size
        self.calls.append((idx.shape[1], kv_cache is not None))
        if kv_cache is not None:
            kv_cache.pos += idx.shape[1]
            assert kv_cache.pos <= kv_cache.max_seq_len
        logits = self.table[idx]
        loss = None
        if targets is not None:
            loss = nn.functional.cross_entropy(
                logits.flatten(0, 1), targets.flatten(), ignore_index=-1
            )
        return logits, loss

    def new_kv_cache(self, batch_size, max_seq_len=None):
        return PositionCache(max_seq_len or 10**9)


class PositionCache:
    def __init__(self, max_seq_len):
        self.pos = 0
        self.max_seq_len = max_seq_len

    def reset(self):
        self.pos = 0


# The beam-search toy: 0=start 1=A 2=B 3=C 4=D 5=eos.
# Greedy: start->A (0.6) -> C (0.36) -> eos: 0.216; best: start->B (0.4) -> C (0.9) -> eos: 0.36.
BEAM_PROBS = [
    [0.0, 0.6, 0.4, 0.0, 0.0, 0.0],
    [0.0, 0.0, 0.0, 0.36, 0.34, 0.30],
    [0.0, 0.0, 0.0, 0.9, 0.05, 0.05],
    [0.0, 0.0, 0.0, 0.0, 0.0, 1.0],
    [0.0, 0.0, 0.0, 0.0, 0.0, 1.0],
    [1 / 6] * 6,
]


def test_beam_toy_rows_are_distributions():
    for row in BEAM_PROBS:
        assert abs(sum(row) - 1.0) < 1e-9
