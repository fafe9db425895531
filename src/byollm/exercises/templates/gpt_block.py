"""Exercise: LayerNorm, GELU, the MLP, the block and the GPT (`byollm exercise show gpt_block`).

Fill in each class and function, top to bottom, then run `byollm exercise check gpt_block`.
Keep the names and the attribute names: the checker loads your weights into byollm's modules
(`LayerNorm`, `MLP`, `Block`, `GPT`) and compares the outputs.
"""

from __future__ import annotations

import math  # noqa: F401

import torch
from torch import nn

# byollm's causal multi-head attention, called as attn(x). Your `MultiHeadAttention` from the
# attention exercise has the same attributes (c_attn, c_proj) and can take its place.
from byollm.exercises.given import Attention  # noqa: F401


class LayerNorm(nn.Module):
    """Step 1. (x - mean) / sqrt(var + eps) * weight + bias over the last dimension.

    Attributes: `weight` (ones) and `bias` (zeros), both nn.Parameter of shape (dim,).
    """

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


def gelu(x: torch.Tensor) -> torch.Tensor:
    """Step 2. GPT-2's GELU, the tanh approximation:
    0.5 * x * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 * x^3)))."""
    raise NotImplementedError


class MLP(nn.Module):
    """Step 3. The feed-forward network: c_fc (n_embd -> 4 n_embd), gelu, c_proj (back).

    Attributes: `c_fc = nn.Linear(n_embd, 4 * n_embd)`, `c_proj = nn.Linear(4 * n_embd, n_embd)`.
    """

    def __init__(self, n_embd: int):
        super().__init__()
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class Block(nn.Module):
    """Step 4. A pre-norm transformer block with two shortcut (residual) connections.

    Attributes: `ln_1` (LayerNorm), `attn` (Attention(n_embd, n_head)), `ln_2` (LayerNorm),
    `mlp` (MLP). forward: x (B, T, n_embd) -> (B, T, n_embd).
    """

    def __init__(self, n_embd: int, n_head: int):
        super().__init__()
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class GPTModel(nn.Module):
    """Step 5. The whole GPT: token ids (B, T) -> logits (B, T, vocab_size).

    Attributes: `transformer = nn.ModuleDict({"wte": ..., "wpe": ..., "h": ..., "ln_f": ...})`
    with the token embedding (vocab_size x n_embd), the position embedding (block_size x
    n_embd), an nn.ModuleList of n_layer Blocks and the final LayerNorm; and `lm_head`,
    nn.Linear(n_embd, vocab_size, bias=False), whose weight *is* the token embedding's.
    """

    def __init__(self, vocab_size: int, block_size: int, n_layer: int, n_head: int, n_embd: int):
        super().__init__()
        raise NotImplementedError

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


def generate_greedy(model, idx: torch.Tensor, max_new_tokens: int, block_size: int):
    """Step 6. Append `max_new_tokens` tokens to idx (B, T), each the most likely next token.

    `model(idx)` returns logits (B, T, vocab); feed it at most the last `block_size` tokens.
    """
    raise NotImplementedError
