"""Speculative decoding with prompt lookup: guess a few tokens, check them all in one pass.

At batch 1 a decode step reads every weight of the model to produce a single token, so its
speed is memory bandwidth, not arithmetic. A forward pass over k + 1 tokens reads the weights
once too: checking k guessed tokens costs little more than generating one (on a 2-core CPU,
with `byollm.cpu_fast_paths.FewRowsLinear`, 2-4 rows even cost less than 1; see
benchmarks/RESULTS.md). Every guess that matches what the model would have produced anyway is a
token for free.

Where the guesses come from: **prompt lookup** (Saxena 2023; `prompt_lookup_num_tokens` in
Hugging Face). Find the most recent earlier occurrence of the last few tokens and propose what
followed it there. No draft model, no training; it pays off where text repeats itself: code
being edited, answers quoting the prompt, lists, names, and the loops small models fall into.

Checking the guesses `g_1..g_k` with the model's next-token distributions `p_0..p_k` from the
one forward pass over `[last, g_1..g_k]`:

- **greedy**: accept `g_i` while it equals the argmax of `p_{i-1}`; at the first mismatch emit
  the argmax instead and drop the rest. The output is exactly plain greedy decoding's (up to
  the float rounding of a many-row matrix product, tested).
- **sampling** (speculative sampling, Leviathan et al. 2023 / Chen et al. 2023, with a draft
  that puts all its probability on its guess): accept `g_i` with probability `p_{i-1}(g_i)`;
  on a rejection draw from `p_{i-1}` with `g_i` removed, renormalised. Each emitted token then
  follows the model's distribution (after all the logits processors) exactly; tested by
  counting. The random stream differs from plain sampling, so a seed gives other (equally
  valid) samples than without speculation.

After a check, the KV cache is cut back to the accepted tokens (`KVCache.truncate`).
One sequence at a time: rows of a batch would accept different numbers of guesses.
"""

from __future__ import annotations

from collections.abc import Iterator

import torch

from byollm.errors import ByollmError
from byollm.generate.processors import SamplingConfig, apply_processors, build_processors
from byollm.model.interface import forward_logits, model_block_size


def prompt_lookup(tokens: list[int], num_guesses: int, max_ngram: int = 3) -> list[int]:
    """Guess the next `num_guesses` tokens from an earlier repeat of the last n tokens.

    Tries n = max_ngram down to 1; for the longest n that occurred before, takes the most recent
    occurrence followed by `num_guesses` tokens (or the longest continuation there is).

    >>> prompt_lookup([5, 6, 7, 1, 2, 5, 6], 2)   # "5 6" was followed by "7 1"
    [7, 1]
    >>> prompt_lookup([1, 2, 3], 2)               # nothing repeats: no guess
    []
    """
    end = len(tokens)
    if num_guesses <= 0:
        return []
    for n in range(min(max_ngram, end - 1), 0, -1):
        tail = tokens[end - n :]
        best: list[int] = []
        for start in range(end - n - 1, -1, -1):  # most recent occurrence first
            if tokens[start : start + n] == tail:
                follow = tokens[start + n : start + n + num_guesses]
                if len(follow) > len(best):
                    best = follow
                if len(best) == num_guesses:
                    break
        if best:
            return best
    return []


def _distribution(logits, context, processors, greedy: bool) -> torch.Tensor:
    """The next-token scores after the processors, (V,): the logits themselves when greedy
    (their argmax is what plain decoding picks, ties included), else probabilities."""
    logits = apply_processors(logits.float()[None], context[None], processors)[0]
    if torch.isneginf(logits).all():
        raise ByollmError("every token is banned or filtered out; ban fewer tokens")
    return logits if greedy else torch.softmax(logits, dim=-1)


def speculative_ids(
    model,
    prompt: torch.Tensor,
    max_new_tokens: int,
    sampling: SamplingConfig | None = None,
    *,
    num_guesses: int = 4,
    max_ngram: int = 3,
    generator: torch.Generator | None = None,
    stats: dict | None = None,
) -> Iterator[torch.Tensor]:
    """Yield the next token, `(1,)` long, `max_new_tokens` times: `generate_ids` for one row.

    The model needs a KV cache (`new_kv_cache`) and the whole sequence must fit its window
    (the caller checks; `Engine` falls back to plain decoding otherwise). `stats`, if given,
    accumulates the numbers of forward passes, guessed tokens and accepted guesses.
    """
    if prompt.shape[0] != 1:
        raise ByollmError(
            f"speculative decoding handles one sequence, got a batch of {prompt.shape[0]}"
        )
    if num_guesses < 1:
        raise ByollmError(f"num_guesses={num_guesses} is invalid: must be >= 1")
    block_size = model_block_size(model)
    if block_size is not None and prompt.shape[1] + max_new_tokens - 1 > block_size:
        raise ByollmError(
            f"speculative decoding needs prompt ({prompt.shape[1]} tokens) + max_new_tokens "
            f"({max_new_tokens}) to fit the context window of {block_size} tokens; ask for "
            "fewer tokens (Engine decodes plainly past the window)"
        )
    sampling = sampling or SamplingConfig()
    processors = build_processors(sampling)
    device = prompt.device
    tokens = prompt[0].tolist()
    stats = {} if stats is None else stats
    for key in ("forward_passes", "guessed", "accepted"):
        stats.setdefault(key, 0)
    if max_new_tokens <= 0:
        return
    # The last token is never fed back, and guesses never go past max_new_tokens.
    cache = model.new_kv_cache(1, len(tokens) + max_new_tokens - 1)

    def draw(probs: torch.Tensor) -> int:
        if sampling.greedy:
            return int(probs.argmax())
        return int(torch.multinomial(probs, 1, generator=generator))

    def accept(probs: torch.Tensor, guess: int) -> bool:
        if sampling.greedy:
            return int(probs.argmax()) == guess
        return bool(torch.rand((), generator=generator, device=device) < probs[guess])

    stats["forward_passes"] += 1
    with torch.inference_mode():
        logits = forward_logits(model, prompt, cache, last_only=True)[0, -1]  # prefill
        context = torch.tensor(tokens, device=device)
        token = draw(_distribution(logits, context, processors, sampling.greedy))
    tokens.append(token)
    yield torch.tensor([token], device=device)
    produced = 1
    while produced < max_new_tokens:
        # Feed the newest token plus the guesses; each position's logits check the next guess.
        guesses = prompt_lookup(tokens, min(num_guesses, max_new_tokens - produced - 1), max_ngram)
        fed = torch.tensor([tokens[-1:] + guesses], device=device)
        start = cache.pos
        with torch.inference_mode():
            logits = forward_logits(model, fed, cache, last_only=not guesses)[0]  # (1 + k, V)
            context = torch.tensor(tokens + guesses, device=device)
            new_tokens = []
            for i, guess in enumerate(guesses + [None]):
                probs = _distribution(
                    logits[i], context[: len(tokens) + i], processors, sampling.greedy
                )
                if guess is None:  # every guess accepted: the pass also gives one more token
                    new_tokens.append(draw(probs))
                elif accept(probs, guess):
                    new_tokens.append(guess)
                else:  # rejected: the model's own choice, never the rejected guess
                    if not sampling.greedy:
                        probs = probs.clone()
                        probs[guess] = 0.0
                        probs /= probs.sum()
                    new_tokens.append(draw(probs))
                    break
        cache.truncate(start + len(new_tokens))  # keep the fed token and the accepted guesses
        stats["forward_passes"] += 1
        stats["guessed"] += len(guesses)
        stats["accepted"] += len(new_tokens) - 1
        for token in new_tokens:
            tokens.append(token)
            produced += 1
            yield torch.tensor([token], device=device)
