"""Beam search: keep the `num_beams` most likely partial sequences instead of one.

Greedy decoding commits to the best *next* token; beam search keeps several candidates alive and
so can find a sequence whose first token looked worse. With P(A)=0.6, P(B)=0.4, and then
P(end|A)=0.36 but P(end|B)=0.9 (after one more token), greedy picks A (0.216 in all) while a
beam of 2 finds B (0.36).

Design choices (the same as Hugging Face's `num_beams` with `do_sample=False`):
- Scores are sums of log-probabilities. A finished hypothesis is ranked by
  `sum_logprob / generated_length ** length_penalty`: length_penalty > 0 favours longer outputs
  (the sum only falls as tokens are added), 0 ranks by raw probability.
- Each step looks at the best `2 * num_beams` continuations of all beams together, so that
  `num_beams` unfinished beams remain even when some continuations end (produce `eos_id`).
- `early_stopping=True` stops once `num_beams` hypotheses have finished; `False` goes on while
  a running beam could still beat the worst finished one (its best possible score, reached if
  it ended now, is compared).
- No KV cache: every step re-reads each beam's full sequence. That keeps the code short and
  lets any callable `ids -> logits` be searched; beam search is rarely the speed-critical path.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from byollm.config import check_number
from byollm.generate.engine import check_context
from byollm.model.interface import model_block_size, model_device, next_token_logits

# Each step scores num_beams x vocabulary continuations; Hugging Face's usual beams are 2-10.
MAX_BEAMS = 256
# A finished beam is ranked by logprob / length ** length_penalty, a float that overflows for
# penalties far past the usual -2..2 (Python raises OverflowError beyond about 1024 / log2(length)).
MAX_LENGTH_PENALTY = 10.0


def check_beam_args(num_beams: int, length_penalty: float) -> None:
    """Refuse a beam count or length penalty out of range, before any work."""
    check_number("num_beams", num_beams, 1, MAX_BEAMS, integer=True)
    check_number(
        "length_penalty",
        length_penalty,
        -MAX_LENGTH_PENALTY,
        MAX_LENGTH_PENALTY,
        hint="0 ranks by probability alone",
    )


@dataclass
class Hypothesis:
    tokens: list[int]  # the generated tokens (without the prompt), eos included if it ended
    logprob: float  # sum of the log-probabilities of `tokens`
    score: float  # logprob / len(tokens) ** length_penalty: what beams are ranked by


def beam_search(
    model,
    prompt: list[int],
    *,
    num_beams: int = 4,
    max_new_tokens: int = 50,
    length_penalty: float = 1.0,
    eos_id: int | None = None,
    early_stopping: bool = True,
) -> list[Hypothesis]:
    """The best `num_beams` hypotheses, best first.

    >>> best = beam_search(model, [0], num_beams=2, max_new_tokens=3, eos_id=5)[0]  # doctest: +SKIP
    >>> best.tokens  # doctest: +SKIP
    [2, 3, 5]
    """
    check_beam_args(num_beams, length_penalty)
    block_size = model_block_size(model)
    check_context(len(prompt), max_new_tokens, block_size, "error")
    device = model_device(model)

    def rank(logprob: float, n_tokens: int) -> float:
        return logprob / (max(n_tokens, 1) ** length_penalty)

    beams: list[tuple[list[int], float]] = [([], 0.0)]  # (generated tokens, sum of logprobs)
    finished: list[Hypothesis] = []
    for _ in range(max_new_tokens):
        ids = torch.tensor([prompt + tokens for tokens, _ in beams], device=device)
        with torch.inference_mode():
            logprobs = torch.log_softmax(next_token_logits(model, ids), dim=-1)
        totals = logprobs + torch.tensor([s for _, s in beams], device=device)[:, None]
        vocab_size = totals.shape[-1]
        n_candidates = min(2 * num_beams, totals.numel())
        top_totals, top_flat = torch.topk(totals.flatten(), n_candidates)
        next_beams = []
        for total, flat in zip(top_totals.tolist(), top_flat.tolist()):
            if total == float("-inf"):
                break
            beam, token = divmod(flat, vocab_size)
            tokens = beams[beam][0] + [token]
            if eos_id is not None and token == eos_id:
                finished.append(Hypothesis(tokens, total, rank(total, len(tokens))))
            else:
                next_beams.append((tokens, total))
            if len(next_beams) == num_beams:
                break
        beams = next_beams
        finished.sort(key=lambda h: h.score, reverse=True)
        finished = finished[:num_beams]
        if not beams or _done(finished, beams, num_beams, early_stopping, rank):
            break
    if len(finished) < num_beams:  # out of tokens: the running beams count as hypotheses
        finished += [Hypothesis(t, s, rank(s, len(t))) for t, s in beams]
    finished.sort(key=lambda h: h.score, reverse=True)
    return finished[:num_beams]


def _done(finished, beams, num_beams, early_stopping, rank) -> bool:
    if len(finished) < num_beams:
        return False
    if early_stopping:
        return True
    # A running beam's score can only fall as tokens are added (for length_penalty <= 0 it
    # surely does; for > 0 its best chance is to end now): stop when none can still win.
    best_running = max(rank(s, len(t)) for t, s in beams)
    return best_running <= finished[-1].score
