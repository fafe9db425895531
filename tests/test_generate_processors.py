"""Each logits processor against a distribution computed by hand."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from byollm.errors import ByollmError
from byollm.generate.processors import (
    BannedTokens,
    FrequencyPresencePenalty,
    MinP,
    RepetitionPenalty,
    SamplingConfig,
    Temperature,
    TopK,
    TopP,
    TypicalP,
    build_processors,
    choose_next_token,
)


def logits_of(probs):
    return torch.log(torch.tensor([probs], dtype=torch.float32))


def kept(logits):
    """Renormalised probabilities after a processor, as a list."""
    return [round(p, 4) for p in torch.softmax(logits, dim=-1)[0].tolist()]


def test_temperature_by_hand():
    out = Temperature(0.5)(torch.tensor([[1.0, 0.0]]), None)
    # softmax([2, 0]) = [e^2, 1] / (e^2 + 1)
    expected = math.exp(2) / (math.exp(2) + 1)
    assert kept(out) == [round(expected, 4), round(1 - expected, 4)]


def test_top_k_keeps_k_and_ties():
    assert kept(TopK(2)(logits_of([0.1, 0.5, 0.3, 0.1]), None)) == [0.0, 0.625, 0.375, 0.0]
    # The 2nd and 3rd tokens tie: both are kept.
    assert kept(TopK(2)(logits_of([0.4, 0.25, 0.25, 0.1]), None)) == [0.4444, 0.2778, 0.2778, 0.0]
    # k >= vocabulary: unchanged.
    assert kept(TopK(10)(logits_of([0.5, 0.5]), None)) == [0.5, 0.5]


def test_top_p_by_hand():
    probs = [0.1, 0.5, 0.3, 0.1]
    # sorted 0.5, 0.3 (0.8 >= 0.7) -> keep two, renormalised to 0.625, 0.375
    assert kept(TopP(0.7)(logits_of(probs), None)) == [0.0, 0.625, 0.375, 0.0]
    # p exactly reached by the first token keeps only it
    assert kept(TopP(0.5)(logits_of(probs), None)) == [0.0, 1.0, 0.0, 0.0]
    # p = 1 keeps everything
    assert kept(TopP(1.0)(logits_of(probs), None)) == [0.1, 0.5, 0.3, 0.1]


def test_top_p_ties_are_all_kept():
    # 0.4 then two tokens at 0.25: reaching p=0.6 needs one of them, so both are kept.
    out = TopP(0.6)(logits_of([0.25, 0.4, 0.25, 0.1]), None)
    assert kept(out) == [0.2778, 0.4444, 0.2778, 0.0]


def test_top_p_all_mass_on_one_token():
    out = TopP(0.9)(torch.tensor([[0.0, 100.0, 0.0]]), None)
    assert torch.isneginf(out[0, [0, 2]]).all() and out[0, 1] == 100.0
    # A tiny p still keeps the most likely token.
    assert kept(TopP(1e-9)(logits_of([0.2, 0.8]), None)) == [0.0, 1.0]


def test_min_p_by_hand():
    probs = [0.5, 0.3, 0.15, 0.05]
    # cut = 0.2 * 0.5 = 0.1: drop 0.05
    assert kept(MinP(0.2)(logits_of(probs), None)) == [0.5263, 0.3158, 0.1579, 0.0]
    assert kept(MinP(0.0)(logits_of(probs), None)) == [0.5, 0.3, 0.15, 0.05]
    # min_p = 1 keeps only the top token -- and every token tied with it
    assert kept(MinP(1.0)(logits_of([0.4, 0.4, 0.2]), None)) == [0.5, 0.5, 0.0]


def test_min_p_all_mass_on_one_token():
    out = MinP(0.1)(torch.tensor([[-50.0, 50.0, -50.0]]), None)
    assert kept(out) == [0.0, 1.0, 0.0]


def test_typical_p_by_hand():
    probs = torch.tensor([0.5, 0.3, 0.15, 0.05])
    entropy = -(probs * probs.log()).sum()  # 1.1412 nats
    distance = (-probs.log() - entropy).abs()  # 0.448, 0.063, 0.756, 1.855
    assert distance.argsort().tolist() == [1, 0, 2, 3]
    # mass 0.7: 0.3 (token 1) then 0.5 (token 0) reaches 0.8 -> keep tokens 1 and 0
    assert kept(TypicalP(0.7)(logits_of(probs.tolist()), None)) == [0.625, 0.375, 0.0, 0.0]
    # mass 0.2: the most typical token alone (which is not the most likely one)
    assert kept(TypicalP(0.2)(logits_of(probs.tolist()), None)) == [0.0, 1.0, 0.0, 0.0]
    assert kept(TypicalP(1.0)(logits_of(probs.tolist()), None)) == [0.5, 0.3, 0.15, 0.05]


def test_penalties_by_hand():
    logits = torch.tensor([[2.0, -2.0, 1.0, 0.5]])
    context = torch.tensor([[0, 1, 0]])
    out = RepetitionPenalty(2.0)(logits, context)
    assert out.tolist() == [[1.0, -4.0, 1.0, 0.5]]
    out = FrequencyPresencePenalty(frequency=0.5, presence=0.25)(logits, context)
    # token 0 seen twice: 2 - 2*0.5 - 0.25; token 1 once: -2 - 0.5 - 0.25
    assert out.tolist() == [[0.75, -2.75, 1.0, 0.5]]
    assert logits.tolist() == [[2.0, -2.0, 1.0, 0.5]], "processors must not modify their input"


def test_penalties_are_per_row():
    logits = torch.zeros(2, 3)
    context = torch.tensor([[0, 0], [2, 1]])
    out = FrequencyPresencePenalty(frequency=1.0)(logits, context)
    assert out.tolist() == [[-2.0, 0.0, 0.0], [0.0, -1.0, -1.0]]


def test_banned_tokens():
    out = BannedTokens([0, 2])(torch.tensor([[5.0, 1.0, 9.0]]), None)
    assert kept(out) == [0.0, 1.0, 0.0]
    with pytest.raises(ByollmError, match="banned"):
        choose_next_token(torch.zeros(1, 2), None, SamplingConfig(banned_tokens=(0, 1)))


def test_greedy_and_seeded_sampling():
    logits = torch.tensor([[0.0, 2.0, 1.0], [3.0, 0.0, 0.0]])
    assert choose_next_token(logits, None, SamplingConfig(temperature=0)).tolist() == [1, 0]
    assert choose_next_token(logits, None, SamplingConfig(top_k=1)).tolist() == [1, 0]
    draws = []
    for _ in range(2):
        generator = torch.Generator().manual_seed(123)
        draws.append(
            [
                choose_next_token(logits, None, SamplingConfig(), generator=generator).tolist()
                for _ in range(20)
            ]
        )
    assert draws[0] == draws[1]


def test_sampling_follows_the_processed_distribution():
    # top-p 0.7 on [0.1, 0.5, 0.3, 0.1] -> tokens 1 and 2 with 0.625 / 0.375
    logits = logits_of([0.1, 0.5, 0.3, 0.1]).expand(4000, 4)
    generator = torch.Generator().manual_seed(0)
    draws = choose_next_token(logits, None, SamplingConfig(top_p=0.7), generator=generator)
    counts = torch.bincount(draws, minlength=4) / 4000
    assert counts[0] == 0 and counts[3] == 0
    assert abs(counts[1].item() - 0.625) < 0.03


@pytest.mark.parametrize(
    "kwargs, name",
    [
        ({"temperature": -1.0}, "temperature"),
        ({"top_p": 1.5}, "top_p"),
        ({"top_p": 0.0}, "top_p"),
        ({"top_k": -1}, "top_k"),
        ({"min_p": -0.1}, "min_p"),
        ({"typical_p": 2.0}, "typical_p"),
        ({"repetition_penalty": 0.0}, "repetition_penalty"),
        ({"temperature": float("nan")}, "temperature"),
    ],
)
def test_nonsense_parameters_are_one_line_errors(kwargs, name):
    with pytest.raises(ByollmError, match=name) as info:
        SamplingConfig(**kwargs)
    assert "\n" not in str(info.value)


def test_build_processors_leaves_out_no_ops():
    assert build_processors(SamplingConfig()) == []
    chain = build_processors(SamplingConfig(temperature=0.8, top_k=5, top_p=0.9, min_p=0.05))
    assert [type(p).__name__ for p in chain] == ["Temperature", "TopK", "TopP", "MinP"]


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.floats(-20, 20), min_size=2, max_size=30),
    st.floats(0.01, 1.0),
    st.floats(0.0, 1.0),
    st.floats(0.01, 1.0),
)
def test_filters_keep_the_top_token_and_only_remove(values, top_p, min_p, typical_p):
    logits = torch.tensor([values])
    top = logits.argmax()
    for processor in (TopP(top_p), MinP(min_p), TypicalP(typical_p), TopK(1)):
        out = processor(logits, None)
        survivors = ~torch.isneginf(out)
        assert survivors.any()
        assert torch.equal(out[survivors], logits[survivors])  # survivors are untouched
        if not isinstance(processor, TypicalP):
            assert survivors[0, top]
