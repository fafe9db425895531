"""The engine's token loop, beam search and stop strings, on toy models with known answers."""

from __future__ import annotations

import pytest
import torch
from test_generate_toys import BEAM_PROBS, BigramToy

from byollm.errors import ByollmError
from byollm.generate.beam import beam_search
from byollm.generate.engine import generate_ids
from byollm.generate.processors import SamplingConfig
from byollm.generate.stopping import StopStrings

GREEDY = SamplingConfig(temperature=0)

# A cycle 0 -> 1 -> 2 -> 3 -> 0 with probability 0.9.
CYCLE = [[0.9 if j == (i + 1) % 4 else 0.1 / 3 for j in range(4)] for i in range(4)]


def run(model, prompt, n, sampling=GREEDY, **kwargs):
    steps = generate_ids(model, torch.tensor(prompt), n, sampling, **kwargs)
    return torch.stack(list(steps), dim=1).tolist()


def test_greedy_follows_the_cycle_with_and_without_cache():
    model = BigramToy(CYCLE)
    assert run(model, [[0]], 6) == [[1, 2, 3, 0, 1, 2]]
    assert run(model, [[0]], 6, use_cache=False) == [[1, 2, 3, 0, 1, 2]]


def test_prefill_once_then_one_token_per_step():
    model = BigramToy(CYCLE)
    run(model, [[0, 1, 2]], 4)
    # prefill 3 tokens, then 3 single-token steps (the 4th token is never fed back)
    assert model.calls == [(3, True), (1, True), (1, True), (1, True)]
    model.calls.clear()
    run(model, [[0, 1, 2]], 4, use_cache=False)
    assert model.calls == [(3, False), (4, False), (5, False), (6, False)]


def test_batched_rows_are_independent():
    model = BigramToy(CYCLE)
    assert run(model, [[0], [2]], 3) == [[1, 2, 3], [3, 0, 1]]


def test_seed_reproduces_samples_and_batch_rows_differ():
    model = BigramToy([[0.25] * 4] * 4)
    prompt = [[0]] * 4

    def sample(seed):
        return run(
            model, prompt, 20, SamplingConfig(), generator=torch.Generator().manual_seed(seed)
        )

    first = sample(7)
    assert first == sample(7)
    assert first != sample(8)
    assert len({tuple(row) for row in first}) > 1


def test_context_window_policies():
    model = BigramToy(CYCLE, block_size=8)
    with pytest.raises(ByollmError, match="context window"):
        run(model, [[0] * 9], 1)
    with pytest.raises(ByollmError, match="exceed"):
        run(model, [[0] * 4], 6, context="error")
    assert len(run(model, [[0] * 4], 5, context="error")[0]) == 5  # 4 + 5 - 1 = 8 fits exactly
    # Slide: both paths go past the window and agree on this Markov toy.
    assert run(model, [[0]], 30) == run(model, [[0]], 30, use_cache=False)
    fed = [n for n, _ in model.calls]
    assert max(fed) <= 8


def test_slide_rebuilds_the_cache_from_three_quarters_of_the_window():
    model = BigramToy(CYCLE, block_size=8)
    run(model, [[0] * 8], 3)
    assert model.calls == [(8, True), (6, True), (1, True)]


def test_bad_lengths():
    model = BigramToy(CYCLE)
    with pytest.raises(ByollmError, match="empty"):
        run(model, [[]], 3)
    with pytest.raises(ByollmError, match="max_new_tokens"):
        run(model, [[0]], -1)


def test_beam_search_finds_the_best_sequence_greedy_misses():
    model = BigramToy(BEAM_PROBS)
    assert run(model, [[0]], 3) == [[1, 3, 5]]  # greedy: 0.6 * 0.36 = 0.216
    best = beam_search(model, [0], num_beams=2, max_new_tokens=5, eos_id=5, length_penalty=0)
    assert best[0].tokens == [2, 3, 5]
    assert best[0].logprob == pytest.approx(torch.log(torch.tensor(0.36)).item(), abs=1e-5)
    assert best[1].tokens == [1, 3, 5]
    # One beam is greedy.
    assert beam_search(model, [0], num_beams=1, max_new_tokens=5, eos_id=5)[0].tokens == [1, 3, 5]


def test_beam_length_penalty_and_early_stopping():
    # From start: eos at once (0.5) or A (0.5) then eos (1.0) -- equal probability 0.5, but
    # length 1 vs 2. A positive length penalty prefers the longer one, a negative the shorter.
    probs = [[0.0, 0.5, 0.5], [0.0, 0.0, 1.0], [1 / 3] * 3]
    model = BigramToy(probs)
    long_first = beam_search(
        model, [0], num_beams=2, max_new_tokens=4, eos_id=2, length_penalty=1.0
    )
    assert [h.tokens for h in long_first] == [[1, 2], [2]]
    short_first = beam_search(
        model, [0], num_beams=2, max_new_tokens=4, eos_id=2, length_penalty=-1.0
    )
    assert [h.tokens for h in short_first] == [[2], [1, 2]]
    lazy = beam_search(model, [0], num_beams=2, max_new_tokens=4, eos_id=2, early_stopping=False)
    assert [h.tokens for h in lazy] == [[1, 2], [2]]


def test_beam_without_eos_returns_running_beams():
    model = BigramToy(CYCLE)
    out = beam_search(model, [0], num_beams=3, max_new_tokens=3)
    assert out[0].tokens == [1, 2, 3] and len(out) == 3
    with pytest.raises(ByollmError, match="num_beams"):
        beam_search(model, [0], num_beams=0)


def test_stop_strings_across_pieces():
    stop = StopStrings(["\n\n", "END"])
    assert stop.push("Hello\n") == "Hello"
    assert stop.push("world") == "\nworld"
    assert stop.push(" E") == " "
    assert stop.push("N") == ""
    assert stop.push("Dxyz") == "" and stop.stopped
    assert stop.push("more") == ""
    other = StopStrings(["END"])
    assert other.push("the E") == "the " and other.flush() == "E"
    with pytest.raises(ByollmError):
        StopStrings([""])
