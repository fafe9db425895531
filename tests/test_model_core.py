"""The GPT module: shapes, causality, every variant, KV-cache parity, save/load, config errors."""

from __future__ import annotations

import json
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from byollm.errors import ByollmError
from byollm.model import (
    GPT,
    PRESETS,
    GPTConfig,
    load_model,
    model_info,
    read_model_config,
    save_model,
)
from byollm.model.convert import hf_to_gpt_config
from byollm.model.layers import MLP, CausalSelfAttention, attention_explicit, causal_mask

TINY = dict(vocab_size=37, block_size=24, n_layer=2, n_head=4, n_embd=32)
VARIANTS = {
    "gpt2": {},
    "llama": dict(
        n_kv_head=2, mlp="swiglu", norm="rmsnorm", pos="rope", tie_embeddings=False, bias=False
    ),
    "modern": dict(
        n_kv_head=1, mlp="relu2", norm="rmsnorm", pos="rope", qk_norm=True, tie_embeddings=False
    ),
    "gpt2-qknorm-gqa": dict(n_kv_head=2, qk_norm=True, bias=False),
}


def tiny_model(variant: str = "gpt2", seed: int = 0, **overrides) -> GPT:
    torch.manual_seed(seed)
    model = GPT(GPTConfig(**{**TINY, **VARIANTS[variant], **overrides}))
    return model.eval()


def tokens(B: int, T: int, seed: int = 1) -> torch.Tensor:
    return torch.randint(
        0, TINY["vocab_size"], (B, T), generator=torch.Generator().manual_seed(seed)
    )


@pytest.mark.parametrize("variant", VARIANTS)
def test_forward_backward_shapes_every_variant(variant):
    model = tiny_model(variant, dropout=0.1).train()
    idx, targets = tokens(3, 10), tokens(3, 10, seed=2)
    logits, loss = model(idx, targets)
    assert logits.shape == (3, 10, TINY["vocab_size"]) and logits.dtype == torch.float32
    assert loss.ndim == 0 and torch.isfinite(loss)
    # at init the prediction is near uniform, so the loss is near ln(vocab)
    assert abs(loss.item() - torch.log(torch.tensor(37.0)).item()) < 0.5
    loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert model(idx)[1] is None


def test_ignore_index_minus_one():
    model = tiny_model()
    idx, targets = tokens(2, 8), tokens(2, 8, seed=2)
    masked = targets.clone()
    masked[:, :4] = -1
    logits, loss = model(idx, masked)
    expected = torch.nn.functional.cross_entropy(
        logits[:, 4:].reshape(-1, 37), targets[:, 4:].reshape(-1)
    )
    torch.testing.assert_close(loss, expected)


@pytest.mark.parametrize("variant", VARIANTS)
def test_causality_changing_token_t_never_changes_earlier_logits(variant):
    model = tiny_model(variant)
    idx = tokens(1, 16)
    base, _ = model(idx)
    for t in (0, 5, 15):
        changed = idx.clone()
        changed[0, t] = (changed[0, t] + 1) % 37
        logits, _ = model(changed)
        torch.testing.assert_close(logits[:, :t], base[:, :t], rtol=0, atol=1e-6)
        assert not torch.allclose(logits[:, t], base[:, t])


def test_determinism_under_seed():
    a, b = tiny_model("llama", seed=3), tiny_model("llama", seed=3)
    for (na, pa), (_, pb) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(pa, pb), na
    c = tiny_model("llama", seed=4)
    assert not torch.equal(a.lm_head.weight, c.lm_head.weight)
    torch.manual_seed(7)
    s1 = a.generate(tokens(2, 3), 5)
    torch.manual_seed(7)
    s2 = a.generate(tokens(2, 3), 5)
    assert torch.equal(s1, s2)


def test_gpt2_init_scales_residual_projections():
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=64, block_size=8, n_layer=8, n_head=4, n_embd=256))
    proj_std = model.transformer.h[0].mlp.c_proj.weight.std().item()
    fc_std = model.transformer.h[0].mlp.c_fc.weight.std().item()
    assert abs(fc_std - 0.02) < 0.002
    assert abs(proj_std - 0.02 / 4) < 0.001  # 1/sqrt(2 * 8 layers) = 1/4
    assert model.lm_head.weight is model.transformer.wte.weight  # tied


@pytest.mark.parametrize("variant", VARIANTS)
def test_explicit_softmax_attention_equals_sdpa(variant, monkeypatch):
    model = tiny_model(variant)
    idx = tokens(2, 12)
    fused, _ = model(idx)
    monkeypatch.setattr(CausalSelfAttention, "use_sdpa", False)
    explicit, _ = model(idx)
    torch.testing.assert_close(explicit, fused, rtol=1e-5, atol=1e-5)


def test_attention_explicit_on_a_toy_example():
    # one head, two positions: the first query can only see the first key
    q = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
    k = torch.tensor([[[[1.0, 0.0], [0.0, 1.0]]]])
    v = torch.tensor([[[[10.0, 0.0], [0.0, 10.0]]]])
    out = attention_explicit(q, k, v, causal_mask(2, 2))
    torch.testing.assert_close(out[0, 0, 0], torch.tensor([10.0, 0.0]))
    w = torch.softmax(torch.tensor([0.0, 1.0]) / 2**0.5, dim=0)
    torch.testing.assert_close(out[0, 0, 1], w[0] * v[0, 0, 0] + w[1] * v[0, 0, 1])
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v, is_causal=True)
    torch.testing.assert_close(out, ref)


@pytest.mark.parametrize("variant", VARIANTS)
def test_kv_cache_decoding_equals_full_forward_at_every_position(variant):
    model = tiny_model(variant)
    idx = tokens(3, 20)
    full, _ = model(idx)
    cache = model.new_kv_cache(batch_size=3)
    pieces = [model(idx[:, :6], kv_cache=cache)[0]]  # prefill
    assert cache.pos == 6
    pieces.append(model(idx[:, 6:10], kv_cache=cache)[0])  # a chunk after cached tokens
    for t in range(10, 20):  # one token at a time
        pieces.append(model(idx[:, t : t + 1], kv_cache=cache)[0])
    assert cache.pos == 20
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, rtol=1e-5, atol=1e-5)
    cache.reset()
    assert cache.pos == 0
    torch.testing.assert_close(
        model(idx[:, :3], kv_cache=cache)[0], full[:, :3], rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("variant", VARIANTS)
def test_last_only_logits_are_the_last_row_of_the_full_logits(variant):
    model = tiny_model(variant)
    idx = tokens(2, 12)
    full, _ = model(idx)
    last, loss = model(idx, last_only=True)
    assert last.shape == (2, 1, full.size(-1)) and loss is None
    torch.testing.assert_close(last, full[:, -1:], rtol=1e-5, atol=1e-5)
    cache = model.new_kv_cache(batch_size=2)
    model(idx[:, :8], kv_cache=cache)
    step, _ = model(idx[:, 8:], kv_cache=cache, last_only=True)
    torch.testing.assert_close(step, full[:, -1:], rtol=1e-5, atol=1e-5)
    with pytest.raises(ByollmError, match="last_only"):
        model(idx, idx, last_only=True)


def test_kv_cache_errors():
    model = tiny_model()
    cache = model.new_kv_cache(batch_size=1, max_seq_len=4)
    model(tokens(1, 4), kv_cache=cache)
    with pytest.raises(ByollmError, match="full"):
        model(tokens(1, 1), kv_cache=cache)
    with pytest.raises(ByollmError, match="batch size"):
        model(tokens(2, 1), kv_cache=model.new_kv_cache(1))
    with pytest.raises(ByollmError, match="block_size"):
        model.new_kv_cache(1, max_seq_len=25)
    with pytest.raises(ByollmError, match="block_size"):
        model(tokens(1, 25))


@pytest.mark.parametrize("variant", ["gpt2", "llama"])
def test_generate_with_and_without_cache_agree(variant):
    model = tiny_model(variant)
    prompt = tokens(2, 5)
    # greedy, and long enough to slide past block_size (24) so the cache is re-filled
    cached = model.generate(prompt, 30, temperature=0, use_cache=True)
    plain = model.generate(prompt, 30, temperature=0, use_cache=False)
    assert cached.shape == (2, 35)
    assert torch.equal(cached, plain)
    sampled = model.generate(prompt, 4, temperature=0.8, top_k=3)
    assert sampled.shape == (2, 9) and torch.equal(sampled[:, :5], prompt)
    with pytest.raises(ByollmError, match="top_k"):
        model.generate(prompt, 1, top_k=-1)


@pytest.mark.parametrize("variant", VARIANTS)
def test_save_load_round_trip(variant, tmp_path):
    model = tiny_model(variant)
    save_model(model, tmp_path / "ckpt", extra={"train": {"step": 3}})
    meta = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert meta["format"] == "byollm-model" and meta["version"] == 1 and meta["train"]["step"] == 3
    assert read_model_config(tmp_path / "ckpt") == model.config
    loaded = load_model(tmp_path / "ckpt")
    idx = tokens(2, 9)
    assert torch.equal(loaded(idx)[0], model(idx)[0])
    if model.config.tie_embeddings:
        assert loaded.lm_head.weight is loaded.transformer.wte.weight


def test_save_unwraps_compiled_model(tmp_path):
    model = tiny_model()
    wrapper = torch.nn.Module()
    wrapper._orig_mod = model  # what torch.compile returns looks like this
    save_model(wrapper, tmp_path)
    assert torch.equal(load_model(tmp_path).transformer.wte.weight, model.transformer.wte.weight)


def test_load_errors_name_the_file(tmp_path):
    with pytest.raises(ByollmError, match="not found"):
        load_model(tmp_path / "nope")
    with pytest.raises(ByollmError, match="config.json: missing"):
        load_model(tmp_path)
    save_model(tiny_model(), tmp_path / "a")
    weights = tmp_path / "a" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # a partial download
    with pytest.raises(ByollmError, match="model.safetensors"):
        load_model(tmp_path / "a")
    # weights from one config, config of another
    save_model(tiny_model(), tmp_path / "b")
    save_model(tiny_model(n_layer=3), tmp_path / "c")
    (tmp_path / "b" / "config.json").write_text((tmp_path / "c" / "config.json").read_text())
    with pytest.raises(ByollmError, match=r"missing transformer\.h\.2"):
        load_model(tmp_path / "b")
    save_model(tiny_model(n_embd=64), tmp_path / "d")
    save_model(tiny_model(), tmp_path / "e")
    (tmp_path / "d" / "config.json").write_text((tmp_path / "e" / "config.json").read_text())
    with pytest.raises(ByollmError, match="shape"):
        load_model(tmp_path / "d")
    meta = json.loads((tmp_path / "c" / "config.json").read_text())
    (tmp_path / "c" / "config.json").write_text(json.dumps({**meta, "version": 99}))
    with pytest.raises(ByollmError, match="version 99"):
        load_model(tmp_path / "c")
    (tmp_path / "c" / "config.json").write_text(json.dumps({**meta, "model": {"n_lyer": 2}}))
    with pytest.raises(ByollmError, match="n_layer"):
        load_model(tmp_path / "c")


@settings(max_examples=15, deadline=None)
@given(
    n_head=st.sampled_from([1, 2, 4]),
    kv_div=st.sampled_from([1, 2, 4]),
    mlp=st.sampled_from(["gelu", "gelu_exact", "swiglu", "relu2"]),
    norm=st.sampled_from(["layernorm", "rmsnorm"]),
    pos=st.sampled_from(["learned", "rope"]),
    tie=st.booleans(),
)
def test_property_any_config_round_trips_and_counts_params(n_head, kv_div, mlp, norm, pos, tie):
    n_kv = max(1, n_head // kv_div)
    config = GPTConfig(
        vocab_size=11,
        block_size=8,
        n_layer=1,
        n_head=n_head,
        n_kv_head=n_kv,
        n_embd=16,
        mlp=mlp,
        norm=norm,
        pos=pos,
        tie_embeddings=tie,
    )
    model = GPT(config)
    assert model.num_params() == model_info(config)["params"]
    assert model.num_params(include_embeddings=False) == model_info(config)["params_non_embedding"]


@pytest.mark.parametrize(
    "overrides, message",
    [
        (dict(n_embd=30, n_head=4), "n_embd=30 is not divisible by n_head=4"),
        (dict(n_head=4, n_kv_head=3), "n_kv_head=3 must divide n_head=4"),
        (dict(mlp="gelu2"), "mlp='gelu2' is invalid: choose one of gelu, "),
        (dict(norm="batchnorm"), "norm="),
        (dict(pos="alibi"), "pos="),
        (dict(dropout=1.0), "dropout"),
        (dict(n_layer=0), r"n_layer=0 is out of range: must be an integer in \[1, 1024\]"),
        (dict(n_embd=36, n_head=12, pos="rope"), "must be even"),
    ],
)
def test_config_validation_errors(overrides, message):
    with pytest.raises(ByollmError, match=message):
        GPTConfig(**{**TINY, **overrides})


def test_gelu_exact_mlp_is_the_erf_gelu_by_hand():
    torch.manual_seed(0)
    exact, tanh = MLP(GPTConfig(**TINY, mlp="gelu_exact")), MLP(GPTConfig(**TINY, mlp="gelu"))
    tanh.load_state_dict(exact.state_dict())  # same weights, only the non-linearity differs
    x = 2 * torch.randn(3, 5, TINY["n_embd"])
    h = x @ exact.c_fc.weight.T + exact.c_fc.bias
    gelu = 0.5 * h * (1 + torch.erf(h / math.sqrt(2)))  # nanoGPT's nn.GELU()
    expected = gelu @ exact.c_proj.weight.T + exact.c_proj.bias
    with torch.no_grad():
        assert (exact(x) - expected).abs().max().item() <= 1e-5
        assert (tanh(x) - expected).abs().max().item() > 1e-5  # the tanh kind really differs
    assert GPTConfig(**TINY, mlp="gelu_exact").hidden_dim == 4 * TINY["n_embd"]


def test_hf_gpt2_activation_picks_the_mlp_kind():
    """Without transformers: the config translation alone (test_model_hf_parity checks logits)."""
    base = dict(model_type="gpt2", vocab_size=10, n_positions=8, n_layer=1, n_head=2, n_embd=8)
    assert hf_to_gpt_config(base).mlp == "gelu"  # Hugging Face's default is gelu_new (tanh)
    for activation, mlp in [
        ("gelu_new", "gelu"),
        ("gelu_pytorch_tanh", "gelu"),
        ("gelu_fast", "gelu"),
        ("gelu", "gelu_exact"),
        ("gelu_python", "gelu_exact"),
    ]:
        assert hf_to_gpt_config({**base, "activation_function": activation}).mlp == mlp
    with pytest.raises(ByollmError, match="activation_function 'relu' is not supported") as e:
        hf_to_gpt_config({**base, "activation_function": "relu"})
    assert str(e.value).endswith(
        "(supported: gelu_new, gelu_pytorch_tanh, gelu_fast, gelu, gelu_python)"
    )
    assert "\n" not in str(e.value)


def test_presets():
    assert {
        "gpt2",
        "gpt2-medium",
        "gpt2-large",
        "gpt2-xl",
        "nanogpt-cpu",
        "small-10m",
        "llama-tiny",
    } <= set(PRESETS)
    c = GPTConfig.from_preset("nanogpt-cpu")
    assert (c.n_layer, c.n_head, c.n_embd, c.block_size) == (4, 4, 128, 64)
    assert c.mlp == GPTConfig.from_preset("small-10m").mlp == "gelu_exact"  # nanoGPT's nn.GELU()
    assert GPTConfig.from_preset("gpt2", n_layer=2).n_layer == 2
    assert GPTConfig.from_preset("llama-tiny").hidden_dim == 352  # 8/3 * 128 rounded up to 32
    with pytest.raises(ByollmError, match="unknown model preset 'gpt3'"):
        GPTConfig.from_preset("gpt3")
    with pytest.raises(ByollmError, match="unknown key 'layers'"):
        GPTConfig.from_preset("gpt2", layers=3)


@settings(max_examples=10, deadline=None)
@given(
    variant=st.sampled_from(list(VARIANTS)),
    chunks=st.lists(st.integers(min_value=1, max_value=6), min_size=1, max_size=4),
)
def test_property_kv_cache_any_chunking_equals_full_forward(variant, chunks):
    model = tiny_model(variant)
    idx = tokens(2, sum(chunks))
    full, _ = model(idx)
    cache, pieces, start = model.new_kv_cache(batch_size=2), [], 0
    for n in chunks:
        pieces.append(model(idx[:, start : start + n], kv_cache=cache)[0])
        start += n
    torch.testing.assert_close(torch.cat(pieces, dim=1), full, rtol=1e-5, atol=1e-5)
