"""`model_info` against numbers worked out by hand for GPT-2 124M."""

from __future__ import annotations

from byollm.model import GPTConfig, model_info


def test_gpt2_124m_by_hand():
    info = model_info(GPTConfig.from_preset("gpt2"))
    C, V, P, L = 768, 50257, 1024, 12
    per_block = (
        2 * C  # ln_1 weight + bias
        + C * 3 * C
        + 3 * C  # c_attn: q, k, v
        + C * C
        + C  # attention c_proj
        + 2 * C  # ln_2
        + C * 4 * C
        + 4 * C  # c_fc
        + 4 * C * C
        + C  # mlp c_proj
    )
    assert per_block == 7_087_872
    assert info["params"] == V * C + P * C + L * per_block + 2 * C == 124_439_808
    assert info["params_non_embedding"] == 124_439_808 - V * C - P * C == 85_056_000
    # forward FLOPs: 2 x matmul weights (12 x 12 C^2 + head V x C) + attention 4 L T C
    matmul = L * 12 * C * C + V * C
    assert info["flops_per_token_forward"] == 2 * matmul + 4 * L * 1024 * C == 284_812_800
    assert info["flops_per_token_train"] == 3 * info["flops_per_token_forward"]
    assert info["weights_bytes"] == 4 * 124_439_808
    assert info["adamw_state_bytes"] == 8 * 124_439_808
    assert info["kv_cache_bytes_per_token"] == 2 * L * C * 4 == 73_728  # k and v, fp32
    assert model_info(GPTConfig.from_preset("gpt2"), seq_len=256)["flops_per_token_forward"] == (
        2 * matmul + 4 * L * 256 * C
    )


def test_gpt2_sizes_match_the_published_counts():
    # 124M / 350M / 774M / 1558M as published (tied head, learned positions)
    expected = {
        "gpt2": 124_439_808,
        "gpt2-medium": 354_823_168,
        "gpt2-large": 774_030_080,
        "gpt2-xl": 1_557_611_200,
    }
    for name, n in expected.items():
        assert model_info(GPTConfig.from_preset(name))["params"] == n


def test_gqa_shrinks_the_kv_cache():
    full = model_info(GPTConfig.from_preset("llama-tiny", n_kv_head=4))
    grouped = model_info(GPTConfig.from_preset("llama-tiny", n_kv_head=1))
    assert full["kv_cache_bytes_per_token"] == 4 * grouped["kv_cache_bytes_per_token"]
    assert grouped["params"] < full["params"]
