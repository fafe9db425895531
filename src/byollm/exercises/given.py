"""Pieces handed to the learner ready-made, so that an exercise can focus on one idea.

>>> attn = Attention(n_embd=16, n_head=4)
>>> attn(torch.zeros(2, 5, 16)).shape
torch.Size([2, 5, 16])
"""

from __future__ import annotations

import torch

from byollm.model import GPTConfig
from byollm.model.layers import CausalSelfAttention


class Attention(CausalSelfAttention):
    """byollm's causal multi-head attention (`c_attn`, `c_proj`, biases) called as `attn(x)`:
    the same interface as the attention exercise's `MultiHeadAttention`, which can replace it."""

    def __init__(self, n_embd: int, n_head: int, dropout: float = 0.0):
        config = GPTConfig(
            vocab_size=1,
            block_size=1,
            n_layer=1,
            n_head=n_head,
            n_embd=n_embd,
            bias=True,
            dropout=dropout,
        )
        super().__init__(config, layer_idx=0)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return super().forward(x, rotary=None)
