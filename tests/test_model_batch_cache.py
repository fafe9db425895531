"""BatchKVCache (rows of different lengths in one decode batch) and the attention-maps pass."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from byollm.errors import ByollmError
from byollm.model import GPT, GPTConfig

VARIANTS = {
    "gpt2": {},
    "llama": {"pos": "rope", "norm": "rmsnorm", "mlp": "swiglu", "n_kv_head": 1, "bias": False},
}


def tiny_model(variant: str) -> GPT:
    torch.manual_seed(0)
    config = GPTConfig(
        vocab_size=40, block_size=24, n_layer=2, n_head=2, n_embd=16, **VARIANTS[variant]
    )
    return GPT(config).eval()


MODELS = {name: tiny_model(name) for name in VARIANTS}


def alone(model: GPT, ids: list[int]) -> torch.Tensor:
    """Last-position logits of `ids` from a plain forward pass, (V,)."""
    with torch.no_grad():
        return model(torch.tensor([ids]))[0][0, -1]


@pytest.mark.parametrize("variant", VARIANTS)
def test_rows_of_different_lengths_decode_as_if_alone(variant):
    model = tiny_model(variant)
    prompts = [[1, 2, 3, 4, 5, 6, 7], [8, 9], [10, 11, 12, 13]]
    cache = model.new_batch_kv_cache(n_slots=4)
    seqs = [list(p) for p in prompts]
    with torch.no_grad():
        for slot, prompt in enumerate(prompts):  # prefill each prompt into its own slot
            cache.feed(slot, 1, len(prompt))
            logits, _ = model(torch.tensor([prompt]), kv_cache=cache)
            torch.testing.assert_close(logits[0, -1], alone(model, prompt), atol=1e-5, rtol=1e-5)
        assert cache.lengths == [7, 2, 4, 0]
        for step in range(5):  # decode all three rows together, one token each
            new = [[20 + step + row] for row in range(3)]
            for seq, token in zip(seqs, new):
                seq += token
            cache.feed(0, 3, 1)
            logits, _ = model(torch.tensor(new), kv_cache=cache)
            for row, seq in enumerate(seqs):
                torch.testing.assert_close(logits[row, -1], alone(model, seq), atol=1e-5, rtol=1e-5)
    assert cache.lengths == [12, 7, 9, 0]


def test_moving_a_slot_keeps_its_sequence():
    model = tiny_model("llama")
    cache = model.new_batch_kv_cache(n_slots=3)
    with torch.no_grad():
        cache.feed(2, 1, 3)
        model(torch.tensor([[3, 4, 5]]), kv_cache=cache)
        cache.move(src=2, dst=0)
        assert cache.lengths == [3, 0, 0]
        cache.feed(0, 1, 1)
        logits, _ = model(torch.tensor([[6]]), kv_cache=cache)
    torch.testing.assert_close(logits[0, -1], alone(model, [3, 4, 5, 6]), atol=1e-5, rtol=1e-5)


def test_batch_cache_refuses_a_pass_it_was_not_prepared_for():
    model = tiny_model("gpt2")
    cache = model.new_batch_kv_cache(n_slots=2, max_seq_len=4)
    cache.feed(0, 2, 1)
    with pytest.raises(ByollmError, match="feed"):
        model(torch.tensor([[1, 2]]), kv_cache=cache)
    cache.feed(0, 1, 5)
    with pytest.raises(ByollmError, match="full"):
        model(torch.tensor([[1, 2, 3, 4, 5]]), kv_cache=cache)
    with pytest.raises(ByollmError, match="outside"):
        cache.feed(1, 2, 1)


@pytest.mark.parametrize("variant", VARIANTS)
def test_attention_maps_are_the_weights_the_model_uses(variant):
    model = tiny_model(variant)
    idx = torch.tensor([[5, 1, 7, 7, 2, 9]])
    logits, maps = model.attention_maps(idx)
    torch.testing.assert_close(logits, model(idx)[0], atol=1e-5, rtol=1e-5)
    assert len(maps) == 2 and maps[0].shape == (1, 2, 6, 6)
    for weights in maps:
        torch.testing.assert_close(weights.sum(-1), torch.ones(1, 2, 6))
        assert torch.all(weights.triu(1) == 0)  # causal: no weight on later tokens
    # The weights times the values, through c_proj, are exactly the first block's attention.
    attn = model.transformer.h[0].attn
    x = model.transformer.h[0].ln_1(model.embed(idx))
    with torch.no_grad():
        _, _, v = attn.queries_keys_values(x, model.rotary)
        y = (maps[0] @ attn.share_kv_heads(v)).transpose(1, 2).reshape(1, 6, -1)
        torch.testing.assert_close(attn.c_proj(y), attn(x, model.rotary), atol=1e-5, rtol=1e-5)


@settings(max_examples=8, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(["join", "step", "leave"]), st.integers(1, 6)),
        min_size=1,
        max_size=12,
    )
)
def test_join_step_leave_in_any_order_matches_decoding_alone(program):
    """Sequences join (prefill into the next free slot), step together, and leave (the last
    slot moves into the hole), in any order: every row's logits stay those of its sequence."""
    model = MODELS["llama"]
    cache = model.new_batch_kv_cache(n_slots=3)
    live: list[list[int]] = []  # live[slot] = that slot's tokens so far
    with torch.no_grad():
        for op, n in program:
            if op == "join" and len(live) < 3:
                prompt = [(7 * n + i) % 40 for i in range(n)]
                cache.feed(len(live), 1, n)
                logits, _ = model(torch.tensor([prompt]), kv_cache=cache)
                torch.testing.assert_close(
                    logits[0, -1], alone(model, prompt), atol=1e-5, rtol=1e-5
                )
                live.append(prompt)
            elif op == "step" and live and max(map(len, live)) < 24:
                new = [[(seq[-1] * 3 + n) % 40] for seq in live]
                cache.feed(0, len(live), 1)
                logits, _ = model(torch.tensor(new), kv_cache=cache)
                for row, (seq, token) in enumerate(zip(live, new)):
                    seq += token
                    torch.testing.assert_close(
                        logits[row, -1], alone(model, seq), atol=1e-5, rtol=1e-5
                    )
            elif op == "leave" and live:
                hole, last = n % len(live), len(live) - 1
                if hole != last:
                    cache.move(src=last, dst=hole)
                    live[hole] = live[last]
                else:
                    cache.clear(last)
                live.pop()
    assert cache.lengths[: len(live)] == [len(seq) for seq in live]
