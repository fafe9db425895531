"""Checks for the attention exercise, against `byollm.model.layers` (`causal_mask`,
`attention_explicit`, `CausalSelfAttention`).

The learner's modules get random weights from `torch.manual_seed`; the checker copies them into
byollm's `CausalSelfAttention` (`c_attn` holds the query, key and value matrices stacked) and
compares the outputs on the same input.
"""

from __future__ import annotations

import math

import torch

from byollm.exercises.checking import Step, StepFailed, expect_close, expect_equal, learner
from byollm.model import GPTConfig
from byollm.model.layers import CausalSelfAttention, attention_explicit, causal_mask

# The book's six tokens, "Your journey starts with one step", as 3-d embeddings (section 3.3).
INPUTS = torch.tensor(
    [
        [0.43, 0.15, 0.89],  # Your
        [0.55, 0.87, 0.66],  # journey
        [0.57, 0.85, 0.64],  # starts
        [0.22, 0.58, 0.33],  # with
        [0.77, 0.25, 0.10],  # one
        [0.05, 0.80, 0.55],  # step
    ]
)
SCALE_HINT = "divide the scores by sqrt(d), d = q.size(-1), the size of each query vector"
MASK_HINT = "before the softmax, set the scores where the mask is False to -inf (masked_fill)"


def byollm_attention(n_embd: int, n_head: int, bias: bool) -> CausalSelfAttention:
    config = GPTConfig(
        vocab_size=1, block_size=64, n_layer=1, n_head=n_head, n_embd=n_embd, bias=bias, dropout=0.0
    )
    return CausalSelfAttention(config, layer_idx=0).eval()


def weights_of(q, k, mask):
    """byollm's attention weights: attention_explicit with v = identity returns them."""
    S = k.size(-2)
    identity = torch.eye(S).expand(*k.shape[:-2], S, S)
    return attention_explicit(q, k, identity, mask)


def check_simple_attention(module) -> None:
    simple_attention = learner(module, "simple_attention")
    # attention_explicit divides the scores by sqrt(d); scaling q by sqrt(d) cancels that out
    expected = attention_explicit(INPUTS * math.sqrt(3), INPUTS, INPUTS, None)
    expect_close(
        "simple_attention(INPUTS) (the book's 6 tokens x 3 dims)",
        simple_attention(INPUTS.clone()),
        expected,
        "scores = x @ x.T, weights = softmax over the last dim (rows sum to 1), "
        "context = weights @ x; no scaling in this first version",
    )


def check_causal_mask(module) -> None:
    mask_fn = learner(module, "causal_mask")
    for T in (1, 4, 7):
        got = mask_fn(T)
        expected = causal_mask(T, T)
        if not isinstance(got, torch.Tensor) or got.dtype != torch.bool:
            raise StepFailed(
                f"causal_mask({T}) returned {type(got).__name__}"
                + (f" of dtype {got.dtype}" if isinstance(got, torch.Tensor) else "")
                + "; expected a bool tensor\nhint: torch.tril(torch.ones(T, T, dtype=torch.bool))"
            )
        expect_close(
            f"causal_mask({T})",
            got,
            expected,
            "True on and below the diagonal (token i sees tokens 0..i): torch.tril",
        )


def check_attention_weights(module) -> None:
    attention_weights = learner(module, "attention_weights")
    torch.manual_seed(0)
    q, k = torch.randn(5, 4), torch.randn(5, 4)
    expect_close(
        "attention_weights(q, k) with q, k of shape (5, 4)",
        attention_weights(q, k),
        weights_of(q, k, None),
        SCALE_HINT,
    )
    mask = causal_mask(5, 5)
    expect_close(
        "attention_weights(q, k, causal_mask(5))",
        attention_weights(q, k, mask),
        weights_of(q, k, mask),
        MASK_HINT,
    )
    q, k = torch.randn(2, 3, 6, 8), torch.randn(2, 3, 6, 8)  # (batch, heads, T, head_dim)
    mask = causal_mask(6, 6)
    expect_close(
        "attention_weights(q, k, mask) with q, k of shape (2, 3, 6, 8)",
        attention_weights(q, k, mask),
        weights_of(q, k, mask),
        "transpose only the last two dimensions of k: k.transpose(-2, -1), not k.T",
    )


def check_attention(module) -> None:
    attention = learner(module, "attention")
    torch.manual_seed(1)
    q, k, v = torch.randn(2, 3, 6, 8), torch.randn(2, 3, 6, 8), torch.randn(2, 3, 6, 8)
    mask = causal_mask(6, 6)
    expected = attention_explicit(q, k, v, mask)
    expect_close(
        "attention(q, k, v, mask) with shapes (2, 3, 6, 8)",
        attention(q, k, v, mask),
        expected,
        "weights @ v",
    )
    expect_close(
        "attention(q, k, v, mask, dropout_p=0.5, training=False)",
        attention(q, k, v, mask, dropout_p=0.5, training=False),
        expected,
        "dropout is only for training: pass training=... to F.dropout",
    )
    # With v = identity the output *is* the weights: check what dropout did to them.
    T = 64
    q, k = torch.randn(1, T, 8), torch.randn(1, T, 8)
    mask = causal_mask(T, T)
    clean = weights_of(q, k, mask)[0]
    dropped = attention(q, k, torch.eye(T)[None], mask, dropout_p=0.5, training=True)[0]
    allowed = mask & (clean > 0)
    zeroed = (dropped[allowed] == 0).float().mean().item()
    scaled = torch.allclose(dropped[allowed & (dropped != 0)], 2 * clean[allowed & (dropped != 0)])
    if not (0.35 < zeroed < 0.65 and scaled):
        raise StepFailed(
            f"attention(q, k, v=identity, causal mask, dropout_p=0.5, training=True) on {T} "
            f"tokens: {100 * zeroed:.0f}% of the weights were zeroed (expected about 50%), and "
            f"the kept ones were {'' if scaled else 'not '}scaled by 1 / (1 - p) = 2\n"
            "hint: apply dropout to the attention weights (after the softmax), before "
            "multiplying by v: torch.nn.functional.dropout(weights, dropout_p, training)"
        )


def _linear(module, name: str, shape: tuple[int, int], where: str):
    layer = getattr(module, name, None)
    weight = getattr(layer, "weight", None)
    if weight is None or tuple(weight.shape) != shape:
        got = "missing" if weight is None else f"of shape {tuple(weight.shape)}"
        raise StepFailed(
            f"{where}.{name}.weight is {got}; expected shape {shape} "
            f"(nn.Linear(in, out) stores a weight of shape (out, in))"
        )
    return layer


def check_causal_attention(module) -> None:
    CausalAttention = learner(module, "CausalAttention")
    torch.manual_seed(2)
    for d_in, d_out in ((3, 2), (8, 8)):
        head = CausalAttention(d_in, d_out).eval()
        where = f"CausalAttention({d_in}, {d_out})"
        layers = [_linear(head, n, (d_out, d_in), where) for n in ("W_query", "W_key", "W_value")]
        if any(layer.bias is not None for layer in layers):
            raise StepFailed(f"{where}: use nn.Linear(d_in, d_out, bias=False), as in the book")
        x = torch.randn(2, 6, d_in)
        with torch.no_grad():
            got = head(x)
            q, k, v = (layer(x)[:, None] for layer in layers)  # one head: (B, 1, T, d_out)
            expected = attention_explicit(q, k, v, causal_mask(6, 6))[:, 0]
            if d_in == d_out:  # and the same as byollm's module with one head and no bias
                reference = byollm_attention(d_in, 1, bias=False)
                reference.c_attn.weight.copy_(torch.cat([layer.weight for layer in layers]))
                reference.c_proj.weight.copy_(torch.eye(d_out))
                expected = reference(x, None)
        expect_close(
            f"{where}(x) with x of shape (2, 6, {d_in})",
            got,
            expected,
            "queries, keys and values from W_query, W_key, W_value; the causal mask "
            "of size T = x.shape[1]; scaled scores, softmax, dropout, times values",
        )


def check_multi_head(module) -> None:
    MultiHeadAttention = learner(module, "MultiHeadAttention")
    torch.manual_seed(3)
    for n_embd, n_head in ((16, 4), (16, 1), (12, 3)):
        mine = MultiHeadAttention(n_embd, n_head).eval()
        where = f"MultiHeadAttention({n_embd}, {n_head})"
        _linear(mine, "c_attn", (3 * n_embd, n_embd), where)
        _linear(mine, "c_proj", (n_embd, n_embd), where)
        reference = byollm_attention(n_embd, n_head, bias=True)
        keys = sorted(mine.state_dict())
        expect_equal(
            f"sorted({where}.state_dict())",
            keys,
            sorted(reference.state_dict()),
            "only c_attn and c_proj hold weights (both with a bias)",
        )
        reference.load_state_dict(mine.state_dict())
        x = torch.randn(2, 7, n_embd)
        with torch.no_grad():
            got, expected = mine(x), reference(x, None)
        expect_close(
            f"{where}(x) with x of shape (2, 7, {n_embd})",
            got,
            expected,
            "split c_attn(x) into q, k, v (in that order) along the last dim; give each "
            "a head dimension: view(B, T, n_head, n_embd // n_head).transpose(1, 2); "
            "attend with the causal mask; transpose back, reshape to (B, T, n_embd), "
            "then c_proj",
        )


STEPS = [
    Step("simple_attention", check_simple_attention),
    Step("causal_mask", check_causal_mask),
    Step("attention_weights", check_attention_weights),
    Step("attention + dropout", check_attention, needs=("attention_weights",)),
    Step("CausalAttention", check_causal_attention),
    Step("MultiHeadAttention", check_multi_head),
]
