"""Speculative decoding (prompt lookup): same greedy tokens, same sampling distribution."""

from __future__ import annotations

import itertools

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from byollm.errors import ByollmError
from byollm.generate.engine import Engine, generate_ids
from byollm.generate.processors import SamplingConfig, apply_processors, build_processors
from byollm.generate.speculative import prompt_lookup, speculative_ids
from byollm.model import GPT, GPTConfig
from byollm.tokenizer import CharTokenizer

GREEDY = SamplingConfig(temperature=0)


def tiny_model(vocab_size=40, block_size=64, seed=0, **overrides):
    torch.manual_seed(seed)
    config = GPTConfig(
        vocab_size=vocab_size,
        block_size=block_size,
        n_layer=2,
        n_head=2,
        n_embd=32,
        dropout=0.0,
        **overrides,
    )
    return GPT(config).eval()


# -- prompt lookup ------------------------------------------------------------------------------
def test_prompt_lookup_takes_what_followed_the_latest_repeat():
    assert prompt_lookup([5, 6, 7, 1, 2, 5, 6], 2) == [7, 1]
    # The longest matching n-gram wins over a more recent shorter one.
    assert prompt_lookup([1, 2, 3, 9, 8, 3, 4, 0, 1, 2, 3], 1, max_ngram=3) == [9]
    assert prompt_lookup([1, 2, 3, 9, 8, 3, 4, 0, 1, 2, 3], 1, max_ngram=1) == [4]
    # A run of one token: guesses as many as asked (from an older occurrence if needed).
    assert prompt_lookup([7, 7, 7, 7, 7, 7], 3) == [7, 7, 7]
    # Near the end only a short continuation exists: the longest one is returned.
    assert prompt_lookup([4, 1, 2, 4], 5) == [1, 2, 4]


@pytest.mark.parametrize("tokens", [[], [3], [1, 2, 3, 4]])
def test_prompt_lookup_without_repeats_guesses_nothing(tokens):
    assert prompt_lookup(tokens, 4) == []
    assert prompt_lookup([1, 1, 1], 0) == []


@given(st.lists(st.integers(0, 3), max_size=40), st.integers(1, 5), st.integers(1, 4))
def test_prompt_lookup_guesses_continue_an_earlier_occurrence(tokens, k, max_ngram):
    guess = prompt_lookup(tokens, k, max_ngram)
    assert len(guess) <= k
    if guess:  # some n >= 1 tokens at the end occurred before and were followed by `guess`
        n = next(
            n
            for n in range(min(max_ngram, len(tokens) - 1), 0, -1)
            if any(tokens[s : s + n] == tokens[-n:] for s in range(len(tokens) - n))
        )
        assert any(
            tokens[s : s + n] == tokens[-n:] and tokens[s + n : s + n + len(guess)] == guess
            for s in range(len(tokens) - n)
        )


# -- greedy: exactly the plain decoder's tokens --------------------------------------------------
@pytest.mark.parametrize(
    "overrides",
    [{}, {"pos": "rope", "norm": "rmsnorm", "mlp": "swiglu", "n_kv_head": 1, "qk_norm": True}],
)
@pytest.mark.parametrize("num_guesses", [1, 3, 6])
def test_greedy_speculative_equals_plain_greedy(overrides, num_guesses):
    model = tiny_model(**overrides)
    prompt = torch.tensor([[1, 2, 3, 4, 1, 2, 3, 4, 1, 2]])  # repeats: lookup has guesses
    plain = torch.cat(list(generate_ids(model, prompt, 50, GREEDY)))
    stats = {}
    fast = torch.cat(
        list(speculative_ids(model, prompt, 50, GREEDY, num_guesses=num_guesses, stats=stats))
    )
    assert torch.equal(plain, fast)
    assert stats["guessed"] > 0 and stats["forward_passes"] <= 50
    assert stats["accepted"] == 50 - stats["forward_passes"]  # every pass gives 1 + accepted


@settings(max_examples=15, deadline=None)
@given(
    st.integers(0, 10_000),
    st.integers(1, 5),
    st.integers(1, 30),
    st.lists(st.integers(0, 5), min_size=1, max_size=12),
)
def test_greedy_speculative_equals_plain_on_random_models(seed, num_guesses, n_new, prompt):
    model = tiny_model(vocab_size=6, block_size=48, seed=seed)
    prompt = torch.tensor([prompt])
    sampling = SamplingConfig(temperature=0, repetition_penalty=1.3)  # context-dependent
    plain = list(generate_ids(model, prompt, n_new, sampling))
    fast = list(speculative_ids(model, prompt, n_new, sampling, num_guesses=num_guesses))
    assert len(fast) == n_new and torch.equal(torch.cat(plain), torch.cat(fast))


# -- sampling: the model's distribution exactly ---------------------------------------------------
def exact_distribution(model, prompt, n_new, sampling):
    """P(every continuation of n_new tokens), from plain forward passes and the processors."""
    processors = build_processors(sampling)
    vocab = model.config.vocab_size
    probs = {}
    with torch.no_grad():
        for seq in itertools.product(range(vocab), repeat=n_new):
            p, context = 1.0, list(prompt)
            for token in seq:
                logits = model(torch.tensor([context]))[0][:, -1]
                logits = apply_processors(logits, torch.tensor([context]), processors)
                p *= torch.softmax(logits, dim=-1)[0, token].item()
                context.append(token)
            probs[seq] = p
    return probs


@pytest.mark.parametrize(
    "sampling",
    [
        SamplingConfig(temperature=1.0),
        SamplingConfig(temperature=0.8, top_k=2, repetition_penalty=1.5),
    ],
)
def test_speculative_sampling_follows_the_model_distribution(sampling):
    model = tiny_model(vocab_size=3, block_size=16, seed=1)
    with torch.no_grad():  # sharpen the random model so that some guesses fail and some pass
        model.lm_head.weight.mul_(3)
    prompt, n_new, n_draws = [0, 1, 2, 0, 1, 2, 0, 1], 3, 2000
    exact = exact_distribution(model, prompt, n_new, sampling)
    generator = torch.Generator().manual_seed(0)
    counts = dict.fromkeys(exact, 0)
    stats = {}
    for _ in range(n_draws):
        steps = speculative_ids(
            model,
            torch.tensor([prompt]),
            n_new,
            sampling,
            num_guesses=2,
            generator=generator,
            stats=stats,
        )
        counts[tuple(int(t) for t in steps)] += 1
    # Pearson's chi-square over the outcomes with an expected count >= 5 (the rest pooled).
    big = [s for s in exact if exact[s] * n_draws >= 5]
    expected = [exact[s] * n_draws for s in big] + [n_draws * (1 - sum(exact[s] for s in big))]
    observed = [counts[s] for s in big] + [n_draws - sum(counts[s] for s in big)]
    chi2 = sum((o - e) ** 2 / e for o, e in zip(observed, expected) if e > 0)
    dof = len(big)
    assert chi2 < dof + 6 * (2 * dof) ** 0.5, (chi2, dof)  # ~6 sigma: fails only on a real bias
    assert 0 < stats["accepted"] < stats["guessed"]  # both branches were exercised


def test_rejecting_a_guess_that_is_always_wrong_never_emits_it():
    model = tiny_model(vocab_size=3, block_size=16, seed=1)
    banned = SamplingConfig(temperature=1.0, banned_tokens=(2,))
    prompt = torch.tensor([[0, 2, 0, 2, 0]])  # lookup guesses 2, which is banned
    out = torch.cat(
        list(
            speculative_ids(
                model, prompt, 10, banned, num_guesses=3, generator=torch.Generator().manual_seed(0)
            )
        )
    )
    assert 2 not in out.tolist()


# -- the engine, the cache and bad input ----------------------------------------------------------
def test_engine_speculative_text_equals_plain_and_falls_back_where_it_cannot_apply():
    text = "to be or not to be, to be or not to be, that is the question. " * 2
    tokenizer = CharTokenizer.train(text)
    model = tiny_model(vocab_size=tokenizer.vocab_size, block_size=64)
    plain, fast = Engine(model, tokenizer), Engine(model, tokenizer, speculative=4)
    prompt = "to be or not to be, to be or"
    assert fast.generate(prompt, max_new_tokens=30, sampling=GREEDY) == plain.generate(
        prompt, max_new_tokens=30, sampling=GREEDY
    )
    # Past the window (slide) and batches decode plainly, with the same results.
    assert fast.generate(prompt, max_new_tokens=80, sampling=GREEDY) == plain.generate(
        prompt, max_new_tokens=80, sampling=GREEDY
    )
    assert fast.generate(prompt, max_new_tokens=10, num_samples=2, seed=1) == plain.generate(
        prompt, max_new_tokens=10, num_samples=2, seed=1
    )
    with pytest.raises(ByollmError, match="speculative=-1"):
        Engine(model, tokenizer, speculative=-1)


def test_bad_arguments_are_one_line_errors():
    model = tiny_model()
    with pytest.raises(ByollmError, match="one sequence"):
        list(speculative_ids(model, torch.zeros(2, 3, dtype=torch.long), 5, GREEDY))
    with pytest.raises(ByollmError, match="num_guesses"):
        list(speculative_ids(model, torch.zeros(1, 3, dtype=torch.long), 5, GREEDY, num_guesses=0))
    with pytest.raises(ByollmError, match="fit the context window"):
        list(speculative_ids(model, torch.zeros(1, 3, dtype=torch.long), 63, GREEDY))
    cache = model.new_kv_cache(1, 8)
    with pytest.raises(ByollmError, match="truncate"):
        cache.truncate(1)  # nothing cached yet
