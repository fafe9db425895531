"""The parts of a transformer block, each small enough to read in one sitting.

- `LayerNorm` (GPT-2) and `RMSNorm` (Llama): keep the residual stream at a sane scale.
- `Rotary`: rotary position embeddings (RoPE), the "rotate_half" convention of Llama/HF, so
  Llama weights load without permuting rows.
- `attention_explicit`: softmax(Q K^T / sqrt(d) + mask) V written out, for teaching; the model
  uses PyTorch's `scaled_dot_product_attention` (fused kernels) and the tests check both agree.
- `CausalSelfAttention`: multi-head attention with optional grouped-query heads (GQA), QK-norm,
  RoPE and a KV cache.
- `MLP`: GELU (tanh approximation, as GPT-2), exact erf GELU (nanoGPT, BERT), SwiGLU (Llama) or
  ReLU^2 (Primer, nanochat).

Shapes use B = batch, T = new tokens, S = all positions attended to (T, or cache.pos + T),
C = n_embd, H = query heads, Hkv = key/value heads, D = head_dim = C / H.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from byollm.model.config import GPTConfig


class LayerNorm(nn.LayerNorm):
    """(x - mean) / sqrt(var + eps) * weight + bias over the last dimension (bias optional)."""

    def __init__(self, dim: int, eps: float, bias: bool):
        super().__init__(dim, eps=eps, bias=bias)


class RMSNorm(nn.Module):
    """x / sqrt(mean(x^2) + eps) * weight: LayerNorm without centring and without bias.

    >>> RMSNorm(2, eps=0.0)(torch.tensor([3.0, 4.0]))  # rms = sqrt((9 + 16) / 2)
    tensor([0.8485, 1.1314], grad_fn=...)
    """

    def __init__(self, dim: int, eps: float):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Under bf16 autocast, q and k arrive in bf16 while the weight stays fp32: a weight of
        # the input's dtype keeps PyTorch's fused kernel (which still accumulates in fp32).
        return F.rms_norm(x, (x.size(-1),), self.weight.to(x.dtype), self.eps)


def make_norm(config: GPTConfig, dim: int | None = None) -> nn.Module:
    dim = config.n_embd if dim is None else dim
    if config.norm == "rmsnorm":
        return RMSNorm(dim, config.norm_eps)
    return LayerNorm(dim, config.norm_eps, config.bias)


class Rotary(nn.Module):
    """Rotary position embedding: rotate each (x_i, x_{i+D/2}) pair by angle pos * theta^(-2i/D).

    A query at position m and a key at position n then have a dot product that depends only on
    m - n, so attention sees relative positions and nothing is added to the residual stream.
    cos/sin tables are computed once for `block_size` positions and are not saved (derived).
    """

    def __init__(self, head_dim: int, block_size: int, theta: float):
        super().__init__()
        inv_freq = 1.0 / theta ** (
            torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim
        )
        angles = torch.outer(torch.arange(block_size, dtype=torch.float32), inv_freq)  # (T, D/2)
        angles = torch.cat((angles, angles), dim=-1)  # (T, D): the same angle for both halves
        self.register_buffer("cos", angles.cos(), persistent=False)
        self.register_buffer("sin", angles.sin(), persistent=False)

    def forward(self, x: torch.Tensor, start: int | torch.Tensor) -> torch.Tensor:
        """Rotate x (B, heads, T, D) as if its tokens sat at positions start .. start+T-1.

        `start` is an int shared by every row, or a (B, 1) tensor when the rows of a batch sit
        at different positions (`BatchKVCache`).
        """
        T = x.size(-2)
        if isinstance(start, int):
            cos, sin = self.cos[start : start + T], self.sin[start : start + T]
        else:  # per row: (B, T) positions -> (B, 1, T, D) tables, broadcast over the heads
            positions = start + torch.arange(T, device=x.device)
            cos, sin = self.cos[positions].unsqueeze(1), self.sin[positions].unsqueeze(1)
        cos, sin = cos.to(x.dtype), sin.to(x.dtype)
        x1, x2 = x.chunk(2, dim=-1)
        rotated_half = torch.cat((-x2, x1), dim=-1)
        return x * cos + rotated_half * sin


def causal_mask(T: int, S: int, device: torch.device | None = None) -> torch.Tensor:
    """Boolean (T, S) mask, True where query i (at position S-T+i) may look at key j (j <= it).

    >>> causal_mask(2, 3).int()   # 2 new tokens after 1 cached one
    tensor([[1, 1, 0],
            [1, 1, 1]], dtype=torch.int32)
    """
    offset = S - T
    rows = torch.arange(T, device=device)[:, None] + offset
    return torch.arange(S, device=device)[None, :] <= rows


def attention_explicit(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None,
    dropout_p: float = 0.0,
) -> torch.Tensor:
    """softmax(Q K^T / sqrt(D) + mask) V, step by step. q (B,H,T,D), k and v (B,H,S,D).

    The teaching twin of `F.scaled_dot_product_attention`, which computes the same thing without
    materialising the (T, S) score matrix on GPU (flash attention).
    """
    scores = q @ k.transpose(-2, -1) / math.sqrt(q.size(-1))  # (B, H, T, S): how much i wants j
    if mask is not None:
        scores = scores.masked_fill(~mask, float("-inf"))  # no peeking at the future
    weights = torch.softmax(scores.float(), dim=-1).to(q.dtype)  # each row sums to 1
    if dropout_p:
        weights = F.dropout(weights, dropout_p)
    return weights @ v  # (B, H, T, D): a weighted average of the values


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with optional GQA, QK-norm, RoPE and a KV cache.

    One fused linear layer `c_attn` computes queries (H heads), keys and values (Hkv heads each)
    in a single matrix multiply; `c_proj` mixes the heads back into the residual stream.
    """

    use_sdpa: bool = True  # False switches to `attention_explicit` (tests check they agree)

    def __init__(self, config: GPTConfig, layer_idx: int):
        super().__init__()
        self.layer_idx = layer_idx
        self.n_head, self.n_kv_head, self.head_dim = config.n_head, config.kv_heads, config.head_dim
        qkv_dim = (self.n_head + 2 * self.n_kv_head) * self.head_dim
        self.c_attn = nn.Linear(config.n_embd, qkv_dim, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.c_proj.is_residual_projection = True  # GPT-2 init scales these down, see gpt.py
        self.q_norm = make_norm(config, self.head_dim) if config.qk_norm else None
        self.k_norm = make_norm(config, self.head_dim) if config.qk_norm else None
        self.dropout = config.dropout
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor, rotary: Rotary | None, kv_cache=None) -> torch.Tensor:
        B, T, C = x.shape
        start = 0 if kv_cache is None else kv_cache.start  # an int, or (B, 1): one per row
        q, k, v = self.queries_keys_values(x, rotary, start)
        if kv_cache is not None:  # append this chunk's keys/values, attend to all so far
            k, v = kv_cache.update(self.layer_idx, k, v)  # (B, Hkv, S, D)
        k, v = self.share_kv_heads(k), self.share_kv_heads(v)
        S = k.size(2)
        # Without a cache (or on the first chunk) the plain causal triangle is right; a chunk of
        # T > 1 new tokens after cached ones needs the offset mask; a single new token sees all.
        # Rows of different lengths (a BatchKVCache) each see only their own past: its mask.
        if isinstance(start, torch.Tensor):
            mask = kv_cache.mask
        else:
            mask = None if (S == T or T == 1) else causal_mask(T, S, x.device)
        dropout_p = self.dropout if self.training else 0.0
        if self.use_sdpa:
            is_causal = mask is None and S == T and T > 1
            y = F.scaled_dot_product_attention(
                q, k, v, attn_mask=mask, dropout_p=dropout_p, is_causal=is_causal
            )
        else:
            if mask is None and S == T and T > 1:
                mask = causal_mask(T, S, x.device)
            y = attention_explicit(q, k, v, mask, dropout_p)
        y = y.transpose(1, 2).reshape(B, T, C)  # re-assemble the heads side by side
        return self.resid_dropout(self.c_proj(y))

    def queries_keys_values(self, x: torch.Tensor, rotary: Rotary | None, start=0):
        """q (B, H, T, D), k and v (B, Hkv, T, D) for x (B, T, C): project, QK-norm, rotate."""
        B, T, C = x.shape
        H, Hkv, D = self.n_head, self.n_kv_head, self.head_dim
        q, k, v = self.c_attn(x).split([H * D, Hkv * D, Hkv * D], dim=-1)
        q = q.view(B, T, H, D).transpose(1, 2)  # (B, H, T, D)
        k = k.view(B, T, Hkv, D).transpose(1, 2)  # (B, Hkv, T, D)
        v = v.view(B, T, Hkv, D).transpose(1, 2)
        if self.q_norm is not None:
            q, k = self.q_norm(q), self.k_norm(k)
        if rotary is not None:
            q, k = rotary(q, start), rotary(k, start)
        return q, k, v

    def share_kv_heads(self, kv: torch.Tensor) -> torch.Tensor:
        """GQA: each key/value head serves n_head / n_kv_head query heads; repeat it for them."""
        if self.n_kv_head == self.n_head:
            return kv
        return kv.repeat_interleave(self.n_head // self.n_kv_head, dim=1)

    @torch.no_grad()
    def attention_weights(self, x: torch.Tensor, rotary: Rotary | None) -> torch.Tensor:
        """softmax(Q K^T / sqrt(D) + causal mask) for x (B, T, C): (B, H, T, T), rows sum to 1.

        For looking inside (the playground's attention maps), not for speed: forward never
        materialises these weights (`F.scaled_dot_product_attention` fuses them away).
        """
        T = x.size(1)
        q, k, _ = self.queries_keys_values(x, rotary)
        scores = q @ self.share_kv_heads(k).transpose(-2, -1) / math.sqrt(self.head_dim)
        scores = scores.masked_fill(~causal_mask(T, T, x.device), float("-inf"))
        return torch.softmax(scores.float(), dim=-1)


class MLP(nn.Module):
    """Position-wise feed-forward: widen, non-linearity, project back.

    gelu:       c_proj(gelu_tanh(c_fc(x)))                 GPT-2
    gelu_exact: c_proj(gelu_erf(c_fc(x)))                  nanoGPT (nn.GELU()), BERT
    relu2:      c_proj(relu(c_fc(x)) ** 2)                 Primer / nanochat
    swiglu:     c_proj(silu(gate(x)) * up(x))              Llama; gate and up fused in c_fc
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.kind = config.mlp
        hidden = config.hidden_dim
        fc_out = 2 * hidden if self.kind == "swiglu" else hidden
        self.c_fc = nn.Linear(config.n_embd, fc_out, bias=config.bias)
        self.c_proj = nn.Linear(hidden, config.n_embd, bias=config.bias)
        self.c_proj.is_residual_projection = True
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.c_fc(x)
        if self.kind == "gelu":
            h = F.gelu(h, approximate="tanh")
        elif self.kind == "gelu_exact":
            h = F.gelu(h)  # 0.5 * h * (1 + erf(h / sqrt(2)))
        elif self.kind == "relu2":
            h = F.relu(h).square()
        else:
            gate, up = h.chunk(2, dim=-1)
            h = F.silu(gate) * up
        return self.dropout(self.c_proj(h))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(norm(x)), then x + mlp(norm(x))."""

    def __init__(self, config: GPTConfig, layer_idx: int):
        super().__init__()
        self.ln_1 = make_norm(config)
        self.attn = CausalSelfAttention(config, layer_idx)
        self.ln_2 = make_norm(config)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor, rotary: Rotary | None, kv_cache=None) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), rotary, kv_cache)
        x = x + self.mlp(self.ln_2(x))
        return x
