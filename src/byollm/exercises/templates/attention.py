"""Exercise: self-attention, step by step (statement: `byollm exercise show attention`).

Fill in each function and class, top to bottom, then run `byollm exercise check attention`.
Keep the names, signatures and attribute names: the checker loads your weights into byollm's
`CausalSelfAttention` and compares the outputs.
"""

from __future__ import annotations

import math  # noqa: F401

import torch
from torch import nn


def simple_attention(x: torch.Tensor) -> torch.Tensor:
    """Step 1. Self-attention without trainable weights: x (T, C) -> context vectors (T, C).

    Score every pair of tokens by the dot product of their vectors, softmax each row into
    weights that sum to 1, and return the weighted sums of the token vectors.
    """
    raise NotImplementedError


def causal_mask(T: int) -> torch.Tensor:
    """Step 2. A (T, T) bool tensor, True where token i may look at token j (j <= i).

    >>> causal_mask(3).int()
    tensor([[1, 0, 0],
            [1, 1, 0],
            [1, 1, 1]], dtype=torch.int32)
    """
    raise NotImplementedError


def attention_weights(
    q: torch.Tensor, k: torch.Tensor, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """Step 3. softmax(q k^T / sqrt(d)) with masked positions at weight 0.

    q (..., T, d) and k (..., S, d), any leading dimensions (batch, heads); returns (..., T, S).
    `mask` (T, S) is True where looking is allowed.
    """
    raise NotImplementedError


def attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None = None,
    dropout_p: float = 0.0,
    training: bool = False,
) -> torch.Tensor:
    """Step 4. The weights of step 3, dropout on them (only when `training`), times v."""
    raise NotImplementedError


class CausalAttention(nn.Module):
    """Step 5. One head of causal self-attention with trainable weights.

    Attributes: `W_query`, `W_key`, `W_value`, each `nn.Linear(d_in, d_out, bias=False)`.
    forward: x (B, T, d_in) -> (B, T, d_out).
    """

    def __init__(self, d_in: int, d_out: int, dropout: float = 0.0):
        super().__init__()
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class MultiHeadAttention(nn.Module):
    """Step 6. Causal multi-head attention, GPT-2's way.

    Attributes: `c_attn = nn.Linear(n_embd, 3 * n_embd)` computes q, k and v (in that order)
    in one product; `c_proj = nn.Linear(n_embd, n_embd)` mixes the heads' outputs.
    forward: x (B, T, n_embd) -> (B, T, n_embd).
    """

    def __init__(self, n_embd: int, n_head: int, dropout: float = 0.0):
        super().__init__()
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError
