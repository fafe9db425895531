"""Solution: self-attention in the order of the book's chapter 3.

Check it: byollm exercise check attention --file exercises/solutions/attention.py
"""

from __future__ import annotations

import math

import torch
from torch import nn


def simple_attention(x):
    scores = x @ x.T  # (T, T): dot product of every pair of tokens
    weights = torch.softmax(scores, dim=-1)
    return weights @ x


def causal_mask(T):
    return torch.tril(torch.ones(T, T, dtype=torch.bool))


def attention_weights(q, k, mask=None):
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))
    return torch.softmax(scores, dim=-1)


def attention(q, k, v, mask=None, dropout_p=0.0, training=False):
    weights = attention_weights(q, k, mask)
    weights = torch.nn.functional.dropout(weights, dropout_p, training=training)
    return weights @ v


class CausalAttention(nn.Module):
    def __init__(self, d_in, d_out, dropout=0.0):
        super().__init__()
        self.W_query = nn.Linear(d_in, d_out, bias=False)
        self.W_key = nn.Linear(d_in, d_out, bias=False)
        self.W_value = nn.Linear(d_in, d_out, bias=False)
        self.dropout = dropout

    def forward(self, x):
        q, k, v = self.W_query(x), self.W_key(x), self.W_value(x)
        mask = causal_mask(x.size(1)).to(x.device)
        return attention(q, k, v, mask, self.dropout, self.training)


class MultiHeadAttention(nn.Module):
    def __init__(self, n_embd, n_head, dropout=0.0):
        super().__init__()
        assert n_embd % n_head == 0, "n_embd must be divisible by n_head"
        self.n_head = n_head
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.c_proj = nn.Linear(n_embd, n_embd)
        self.dropout = dropout

    def forward(self, x):
        B, T, C = x.shape
        q, k, v = self.c_attn(x).split(C, dim=-1)
        # (B, T, C) -> (B, n_head, T, head_dim): every head attends on its own
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))
        y = attention(q, k, v, causal_mask(T).to(x.device), self.dropout, self.training)
        y = y.transpose(1, 2).reshape(B, T, C)  # the heads side by side again
        return self.c_proj(y)
