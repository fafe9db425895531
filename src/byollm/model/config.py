"""`GPTConfig`: every shape and choice of the transformer, in one validated dataclass.

GPT-2 and a Llama-style model are the same module with different settings:

    >>> gpt2 = GPTConfig.from_preset("gpt2")                 # LayerNorm, learned positions, GELU
    >>> llama = GPTConfig.from_preset("llama-tiny")          # RMSNorm, RoPE, SwiGLU, GQA
    >>> GPTConfig.from_preset("nanogpt-cpu", vocab_size=65).head_dim
    32

Design choices:
- Fields that default to "derived" (`n_kv_head`, `mlp_hidden`) stay `None` in the dataclass and
  are resolved by properties (`kv_heads`, `hidden_dim`). Storing the derived number would go stale
  when someone later overrides `n_embd` or `n_head`.
- Validation (`validate`, run by `__post_init__`) happens where a config is built (from Python, a
  TOML file, `--n_head 5` on the command line or a checkpoint's config.json), with a message
  naming the key and the valid range, not deep inside a matrix multiply. Sizes have upper
  bounds (`SIZE_LIMITS`) far beyond any real model.
- Presets are plain dicts of overrides on the defaults; the defaults are GPT-2 124M.
"""

from __future__ import annotations

import dataclasses
import typing
from dataclasses import dataclass
from typing import Literal

from byollm.config import check_choice, check_number
from byollm.errors import ByollmError

MLPKind = Literal["gelu", "gelu_exact", "swiglu", "relu2"]
NormKind = Literal["layernorm", "rmsnorm"]
PosKind = Literal["learned", "rope"]

# Upper bounds on the sizes, far beyond any real model (Llama 3 405B: 126 layers, 128 heads,
# width 16,384, a 128,256-token vocabulary, an MLP 53,248 wide). They turn a typo or a tampered
# config.json into one line instead of an attempt to allocate terabytes.
SIZE_LIMITS = {
    "vocab_size": 2**24,
    "block_size": 2**20,
    "n_layer": 1024,
    "n_head": 1024,
    "n_embd": 2**16,
}
MAX_MLP_HIDDEN = 2**18


@dataclass
class GPTConfig:
    """Shapes and architectural choices of a decoder-only transformer (defaults: GPT-2 124M)."""

    vocab_size: int = 50257  # number of token ids the embedding table and the head cover
    block_size: int = 1024  # longest sequence the model sees (positions 0..block_size-1)
    n_layer: int = 12  # number of transformer blocks
    n_head: int = 12  # attention heads for queries
    n_kv_head: int | None = None  # heads for keys/values (grouped-query attention); None = n_head
    n_embd: int = 768  # width of the residual stream
    mlp: MLPKind = "gelu"  # GPT-2 GELU (tanh), erf GELU (nanoGPT), Llama SwiGLU, ReLU^2 (nanochat)
    mlp_hidden: int | None = None  # None = 4 * n_embd, or ~8/3 * n_embd for swiglu
    norm: NormKind = "layernorm"  # GPT-2 LayerNorm or Llama RMSNorm
    norm_eps: float = 1e-5
    pos: PosKind = "learned"  # learned absolute positions (GPT-2) or rotary (RoPE, Llama)
    rope_theta: float = 10000.0  # RoPE base; only used when pos = "rope"
    qk_norm: bool = False  # normalise queries and keys per head before attention
    tie_embeddings: bool = True  # output head shares the token embedding matrix (GPT-2)
    bias: bool = True  # biases in linear layers and LayerNorm (GPT-2 yes, Llama no)
    dropout: float = 0.0  # on embeddings, attention probabilities and residual branches

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Every rule on the values, in one place: each error names the key and the valid range."""
        for name, limit in SIZE_LIMITS.items():
            check_number(f"model config: {name}", getattr(self, name), 1, limit, integer=True)
        for name, kind in (("mlp", MLPKind), ("norm", NormKind), ("pos", PosKind)):
            check_choice(f"model config: {name}", getattr(self, name), typing.get_args(kind))
        for name in ("qk_norm", "tie_embeddings", "bias"):
            if not isinstance(getattr(self, name), bool):
                raise ByollmError(f"model config: {name}={getattr(self, name)!r} is not true/false")
        if self.n_embd % self.n_head:
            raise ByollmError(
                f"model config: n_embd={self.n_embd} is not divisible by n_head={self.n_head}; "
                f"each head gets n_embd / n_head channels (try n_head in "
                f"{_divisors(self.n_embd)})"
            )
        if self.n_kv_head is not None:
            check_number(
                "model config: n_kv_head",
                self.n_kv_head,
                1,
                self.n_head,
                integer=True,
                hint="or None for n_head",
            )
            if self.n_head % self.n_kv_head:
                raise ByollmError(
                    f"model config: n_kv_head={self.n_kv_head} must divide n_head={self.n_head} "
                    f"(each key/value head serves a group of query heads; valid: "
                    f"{_divisors(self.n_head)})"
                )
        if self.mlp_hidden is not None:
            check_number(
                "model config: mlp_hidden",
                self.mlp_hidden,
                1,
                MAX_MLP_HIDDEN,
                integer=True,
                hint="or None for the default width",
            )
        if self.pos == "rope" and self.head_dim % 2:
            raise ByollmError(
                f"model config: RoPE rotates channel pairs, so the head size "
                f"n_embd/n_head={self.head_dim} must be even"
            )
        check_number("model config: dropout", self.dropout, 0, 1, high_open=True)
        check_number("model config: norm_eps", self.norm_eps, 0, 1, low_open=True)
        # theta ** (-2i/D) is computed in float32: a base below 1 or beyond 1e12 gives inf or 0
        check_number("model config: rope_theta", self.rope_theta, 1, 1e12)

    @property
    def head_dim(self) -> int:
        """Channels per attention head: n_embd / n_head (64 for every GPT-2 size)."""
        return self.n_embd // self.n_head

    @property
    def kv_heads(self) -> int:
        """Key/value heads actually used: `n_kv_head`, or `n_head` (plain multi-head attention)."""
        return self.n_head if self.n_kv_head is None else self.n_kv_head

    @property
    def hidden_dim(self) -> int:
        """Width of the MLP's hidden layer.

        4 * n_embd for GELU (tanh or erf)/ReLU^2. SwiGLU has three matrices instead of two, so
        Llama shrinks the hidden width to 2/3 of 4 * n_embd to keep the parameter count, rounded up
        to a multiple of 32 for friendlier matrix shapes: n_embd=768 -> 2048.
        """
        if self.mlp_hidden is not None:
            return self.mlp_hidden
        if self.mlp == "swiglu":
            return _round_up(8 * self.n_embd // 3, 32)
        return 4 * self.n_embd

    @classmethod
    def from_preset(cls, name: str, **overrides) -> GPTConfig:
        """A named preset with some fields replaced: `from_preset("gpt2", n_layer=6)`."""
        if name not in PRESETS:
            raise ByollmError(f"unknown model preset {name!r}; choose one of {', '.join(PRESETS)}")
        fields = {f.name for f in dataclasses.fields(cls)}
        for key in overrides:
            if key not in fields:
                raise ByollmError(
                    f"model preset {name!r}: unknown key {key!r}; valid: {', '.join(sorted(fields))}"
                )
        return cls(**{**PRESETS[name], **overrides})


# Each preset is a dict of the fields that differ from the defaults (GPT-2 124M).
PRESETS: dict[str, dict] = {
    # The four OpenAI GPT-2 sizes: 124M, 350M, 774M and 1558M parameters.
    "gpt2": {},
    "gpt2-medium": {"n_layer": 24, "n_head": 16, "n_embd": 1024},
    "gpt2-large": {"n_layer": 36, "n_head": 20, "n_embd": 1280},
    "gpt2-xl": {"n_layer": 48, "n_head": 25, "n_embd": 1600},
    # nanoGPT's CPU example (shakespeare-char): 4 layers, 4 heads, 128 wide, block 64; ~0.8M params.
    # nanoGPT's MLP is `nn.GELU()`, the exact (erf) GELU, not GPT-2's tanh approximation.
    "nanogpt-cpu": {
        "vocab_size": 65,
        "block_size": 64,
        "n_layer": 4,
        "n_head": 4,
        "n_embd": 128,
        "mlp": "gelu_exact",
    },
    # nanoGPT's shakespeare-char GPU model: 6 layers, 6 heads, 384 wide, ~10.7M parameters;
    # its MLP is nanoGPT's `nn.GELU()` (erf) too.
    "small-10m": {
        "vocab_size": 65,
        "block_size": 256,
        "n_layer": 6,
        "n_head": 6,
        "n_embd": 384,
        "mlp": "gelu_exact",
        "dropout": 0.2,
    },
    # A Llama-style model: RMSNorm, RoPE, SwiGLU, grouped-query attention, untied head, no bias.
    "llama-tiny": {
        "vocab_size": 65,
        "block_size": 256,
        "n_layer": 4,
        "n_head": 4,
        "n_kv_head": 2,
        "n_embd": 128,
        "mlp": "swiglu",
        "norm": "rmsnorm",
        "norm_eps": 1e-6,
        "pos": "rope",
        "tie_embeddings": False,
        "bias": False,
    },
    # nanochat-like choices: RoPE, QK-norm, ReLU^2, untied head, no bias, GQA.
    "modern-tiny": {
        "vocab_size": 65,
        "block_size": 256,
        "n_layer": 4,
        "n_head": 4,
        "n_kv_head": 2,
        "n_embd": 128,
        "mlp": "relu2",
        "norm": "rmsnorm",
        "pos": "rope",
        "qk_norm": True,
        "tie_embeddings": False,
        "bias": False,
    },
}


def _divisors(n: int) -> list[int]:
    return [d for d in range(1, n + 1) if n % d == 0]


def _round_up(x: int, multiple: int) -> int:
    return (x + multiple - 1) // multiple * multiple
