"""Size, compute and memory of a model, computed from its config by hand (no weights needed).

    >>> info = model_info(GPTConfig.from_preset("gpt2"))
    >>> info["params"]
    124439808

Parameter arithmetic for one block (C = n_embd, F = MLP hidden width, Hkv*D = key/value width):
  attention: C x (C + 2 Hkv D) for q, k, v  +  C x C for the output projection
  MLP:       C x F (x2 for SwiGLU's gate and up)  +  F x C back
  norms:     C weights (+ C biases for LayerNorm with bias), twice per block
plus biases when `bias`, the token table vocab x C, the position table block_size x C (learned
positions only), the final norm, and an untied head vocab x C.

FLOPs per token (the PaLM / nanoGPT convention, counting a multiply-add as 2 FLOPs):
  forward  = 2 x (weights used in matrix multiplies, the head included, embeddings lookups not)
           + 4 x n_layer x seq_len x n_head x D   (Q K^T and the weighted sum of V, full matrix)
  training = 3 x forward (the backward pass costs about twice the forward).
"""

from __future__ import annotations

from byollm.config import check_number
from byollm.model.config import GPTConfig

MAX_SEQ_LEN = 2**31  # tokens of context: far past any model, still exact in the arithmetic


def _param_breakdown(c: GPTConfig) -> dict[str, int]:
    C, F, D = c.n_embd, c.hidden_dim, c.head_dim
    kv = c.kv_heads * D
    qkv_out = C + 2 * kv
    fc_out = 2 * F if c.mlp == "swiglu" else F
    norm = C * (2 if (c.norm == "layernorm" and c.bias) else 1)
    head_norm = D * (2 if (c.norm == "layernorm" and c.bias) else 1)
    attn_matmul = C * qkv_out + C * C
    mlp_matmul = C * fc_out + F * C
    biases = (qkv_out + C + fc_out + C) if c.bias else 0
    qk_norms = 2 * head_norm if c.qk_norm else 0
    block = attn_matmul + mlp_matmul + biases + 2 * norm + qk_norms
    return {
        "token_embedding": c.vocab_size * C,
        "position_embedding": c.block_size * C if c.pos == "learned" else 0,
        "blocks": c.n_layer * block,
        "block_matmul": c.n_layer * (attn_matmul + mlp_matmul),
        "final_norm": norm,
        "lm_head": 0 if c.tie_embeddings else c.vocab_size * C,
    }


def model_info(config: GPTConfig, seq_len: int | None = None, bytes_per_param: int = 4) -> dict:
    """Parameters, FLOPs per token and memory of `config` at context length `seq_len`.

    seq_len defaults to block_size (it only affects the attention FLOPs). Memory figures are for
    `bytes_per_param`-byte numbers (4 = float32); AdamW keeps two moments per parameter.
    """
    c = config
    seq_len = c.block_size if seq_len is None else seq_len
    check_number("seq_len", seq_len, 1, MAX_SEQ_LEN, integer=True)
    check_number("bytes_per_param", bytes_per_param, 1, 8, integer=True, hint="4 = float32")
    parts = _param_breakdown(c)
    params = (
        parts["token_embedding"]
        + parts["position_embedding"]
        + parts["blocks"]
        + parts["final_norm"]
        + parts["lm_head"]
    )
    embeddings = parts["token_embedding"] + parts["position_embedding"]
    head_matmul = c.vocab_size * c.n_embd  # tied or not, the head is a vocab x C multiply
    matmul_params = parts["block_matmul"] + head_matmul
    attention_flops = 4 * c.n_layer * seq_len * c.n_head * c.head_dim
    forward = 2 * matmul_params + attention_flops
    kv_bytes = 2 * c.n_layer * c.kv_heads * c.head_dim * bytes_per_param
    return {
        "params": params,
        "params_non_embedding": params - embeddings,
        "params_breakdown": parts,
        "seq_len": seq_len,
        "flops_per_token_forward": forward,
        "flops_per_token_train": 3 * forward,
        "bytes_per_param": bytes_per_param,
        "weights_bytes": params * bytes_per_param,
        "grads_bytes": params * bytes_per_param,
        "adamw_state_bytes": 2 * params * bytes_per_param,
        "training_state_bytes": 4 * params * bytes_per_param,
        "kv_cache_bytes_per_token": kv_bytes,
    }


def format_info(info: dict, name: str = "model") -> str:
    """A human-readable table of `model_info`'s numbers."""
    rows = [
        ("parameters", f"{info['params']:,}", _human(info["params"])),
        (
            "parameters without embeddings",
            f"{info['params_non_embedding']:,}",
            _human(info["params_non_embedding"]),
        ),
    ]
    for part, n in info["params_breakdown"].items():
        if part != "block_matmul":
            rows.append((f"  {part}", f"{n:,}", _human(n)))
    rows += [
        (
            f"FLOPs/token forward (seq {info['seq_len']})",
            f"{info['flops_per_token_forward']:,}",
            _human(info["flops_per_token_forward"]),
        ),
        (
            "FLOPs/token training (3x forward)",
            f"{info['flops_per_token_train']:,}",
            _human(info["flops_per_token_train"]),
        ),
    ]
    b = info["bytes_per_param"]
    for label, key in (
        ("weights", "weights_bytes"),
        ("gradients", "grads_bytes"),
        ("AdamW state (2 moments)", "adamw_state_bytes"),
        ("training total (w + g + AdamW)", "training_state_bytes"),
    ):
        rows.append((f"memory: {label}, {b} B/param", f"{info[key]:,} B", _human_bytes(info[key])))
    kv = info["kv_cache_bytes_per_token"]
    rows.append(("KV cache per token", f"{kv:,} B", _human_bytes(kv)))
    width = max(len(r[0]) for r in rows)
    num_width = max(len(r[1]) for r in rows)
    lines = [name]
    lines += [f"  {a:<{width}}  {b:>{num_width}}  {c}" for a, b, c in rows]
    return "\n".join(lines)


def _human(n: float) -> str:
    for unit, scale in (("T", 1e12), ("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:.2f}{unit}"
    return str(n)


def _human_bytes(n: float) -> str:
    for unit, scale in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if n >= scale:
            return f"{n / scale:.2f} {unit}"
    return f"{n} B"
