"""Log-likelihoods of continuations: the one computation every benchmark task is built on.

    >>> [[good, bad]] = score_requests(model, [Request([0], [[5, 9, 2], [5, 9, 7, 2]])])  # doctest: +SKIP
    >>> good.logprob, good.n_tokens, good.greedy        # log P(5 9 2 | 0), 3 tokens  # doctest: +SKIP
    (-7.21, 3, False)

A request is a context (token ids, at least one) and one or more continuations. For each
continuation we want log P(continuation | context), the sum over its tokens of
log P(token | all tokens before it), how many tokens it has, and whether greedy decoding from
the context would have produced exactly these tokens (LAMBADA's rule).

Design choices:
- **A shared prompt is computed once.** The context and the longest token prefix that all the
  continuations share (together, "the shared part") go through the model once. The KV cache of
  that pass is then copied for each continuation, so only each continuation's own tokens are
  fed. A 4-way multiple-choice question costs one context plus four endings, not four
  contexts. Where sharing would save under 25% of the tokens (a BLiMP pair shares ~17%: its
  first words; a LAMBADA passage has one continuation), the sequences are fed whole in one pass
  instead: the cached path costs more per token, as much as such a saving (measured).
- **Batched without an attention mask.** Sequences fed whole are scored one row each, sorted
  by length: a batch holds rows of one length (or, where a length has too few rows to fill a
  batch, of a few neighbouring lengths), so it needs no padding at all. On BLiMP, batching
  whole pairs instead (the shorter sentence padded to the longer) fed 15% padding. Requests
  with a shared prompt prefill the same number of tokens L for each of their batch (its
  shortest shared part), so that pass needs no padding either; the rest of every sequence is
  right-padded. Attention is causal, so padding after a token cannot change its prediction,
  and padded positions are never read. Those requests are sorted by length and shared length,
  and a batch grows while at most 20% of its tokens are padding or repeated shared tokens and
  it holds at most `batch_tokens` tokens.
- **Only what is needed**: a continuation's last token is never fed (nothing is predicted from
  it), and when no continuation token lies in the shared part (the usual multiple-choice case)
  the prefill computes the output head for its last position only.
- **Text to ids as lm-evaluation-harness does** (`encode_pair`): the context and the whole
  text are encoded, so a BPE merge across the boundary is tokenized as in the whole text.
  Special-token strings in the text are ordinary text (`tokenizer.encode`'s default).
- **Log-probabilities only where scored**: log P(t) = logit[t] - logsumexp(logits), read at
  the target token, instead of a log-softmax over the whole vocabulary (one (rows, T, V) float
  copy fewer: 50,257 numbers per position for GPT-2).
- float32 logits, sums in float64, the model in eval mode: deterministic.
- On the CPU, freed memory is kept for the next batch (`cpu_fast_paths.keep_freed_cpu_memory`,
  as the trainer does): otherwise every batch page-faults its activations back in, ~20% of
  the time of a one-off BLiMP run.
- The model is a byollm `GPT` (anything with `new_kv_cache(batch, length)` and
  `forward(idx, kv_cache=..., last_only=...)`), as `load_for_inference` returns.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import torch
from tqdm import tqdm

from byollm.cpu_fast_paths import keep_freed_cpu_memory
from byollm.device import autocast, pick_dtype
from byollm.errors import ByollmError
from byollm.model.interface import model_device

DEFAULT_BATCH_TOKENS = 8192
LOGIT_BUDGET = 1 << 25  # at most this many logits (128 MiB of float32) in one forward pass
MAX_WASTE = 0.2  # at most this share of a batch's tokens is padding or repeated shared tokens
# Share a prompt only when that saves at least this share of the tokens: the cached path costs
# more per token (two passes, copied caches, masked attention), about as much as BLiMP's pairs
# save (~17%, measured), while a 4-way multiple-choice question saves far more.
MIN_SHARED_SAVING = 0.25


@dataclass(frozen=True)
class ScoringOptions:
    """How to run the scorer; the results do not depend on these, except through `dtype`."""

    batch_tokens: int = DEFAULT_BATCH_TOKENS  # at most this many tokens per forward pass
    dtype: str = "float32"  # float32 | bfloat16 | float16 | auto (bf16 where fast, as training)
    progress: bool = False  # a progress bar on a terminal


class Request(NamedTuple):
    context: Sequence[int]
    continuations: Sequence[Sequence[int]]


class Score(NamedTuple):
    logprob: float  # sum of log P(token | everything before it) over the continuation
    n_tokens: int
    greedy: bool  # greedy decoding from the context reproduces every continuation token


# --- from text to requests ---------------------------------------------------------------------


def start_ids(tokenizer) -> list[int]:
    """What a text with no context is predicted from: `<|endoftext|>`, else a newline.

    The same convention as generation's empty prompt: GPT-2 saw `<|endoftext|>` before every
    document; a character model trained on plain text saw a newline before every line.
    """
    if tokenizer.eot_id is not None:
        return [tokenizer.eot_id]
    ids = tokenizer.encode("\n")
    if not ids:
        raise ByollmError(
            "this tokenizer has neither <|endoftext|> nor a newline token to start a text from"
        )
    return ids


def encode_pair(tokenizer, context: str, continuation: str) -> tuple[list[int], list[int]]:
    """(context ids, continuation ids) for `context + continuation`, as lm-evaluation-harness.

    Trailing spaces of the context move to the continuation (BPE vocabularies attach a space to
    the word after it); the continuation is the whole text's tokens after the context's, so a
    merge across the boundary is scored as the model would see the whole text. An empty
    context becomes `start_ids(tokenizer)`.
    """
    stripped = context.rstrip(" ")
    continuation = context[len(stripped) :] + continuation
    whole = tokenizer.encode(stripped + continuation)
    context_ids = tokenizer.encode(stripped) if stripped else []
    continuation_ids = whole[len(context_ids) :]
    if not context_ids:
        context_ids = start_ids(tokenizer)
    return context_ids, continuation_ids


def fit_to_window(
    requests: Sequence[Request], block_size: int, where: Sequence[str] | None = None
) -> tuple[list[Request], list[tuple[int, int]]]:
    """The requests cut to fit the model's window, and (index, tokens dropped) for each cut one.

    The model is fed the context and each continuation but its last token, so
    len(context) + len(longest continuation) - 1 tokens must fit; a longer context loses its
    oldest tokens (as lm-evaluation-harness does). A continuation that does not fit even after
    one context token is an error; `where[i]` names request i in messages.
    """
    fitted, truncated = [], []
    for index, request in enumerate(requests):
        name = where[index] if where is not None else f"request {index}"
        if not request.context:
            raise ByollmError(f"{name}: empty context (give at least one token)")
        if not request.continuations or not all(request.continuations):
            raise ByollmError(f"{name}: a continuation has no tokens (nothing to score)")
        longest = max(len(c) for c in request.continuations)
        room = block_size + 1 - longest  # context tokens that fit
        if room < 1:
            raise ByollmError(
                f"{name}: a continuation of {longest} tokens does not fit the model's "
                f"context window of {block_size} tokens"
            )
        if len(request.context) > room:
            truncated.append((index, len(request.context) - room))
            request = Request(request.context[-room:], request.continuations)
        fitted.append(request)
    return fitted, truncated


# --- scoring -----------------------------------------------------------------------------------


def score_requests(
    model,
    requests: Sequence[Request],
    options: ScoringOptions | None = None,
) -> list[list[Score]]:
    """A `Score` per continuation of every request (see the module docstring for the method).

    The requests must fit the window (`fit_to_window`). In float32 (the default) the scores are
    exact to float rounding; bfloat16 runs the matrix products 1.5-1.8x faster on CPUs with bf16
    instructions and moves a sentence's log-likelihood by ~0.1 nat (docs/10).
    """
    options = options or ScoringOptions()
    batch_tokens = options.batch_tokens
    if batch_tokens < 1:
        raise ByollmError(f"batch_tokens={batch_tokens} is invalid: must be >= 1")
    device = model_device(model)
    dtype = pick_dtype(device, options.dtype)
    logit_budget = max(1, LOGIT_BUDGET // model.config.vocab_size)
    if device.type == "cpu":
        keep_freed_cpu_memory()  # no page faults for each batch's activations (as training)
    plans = [_plan(r) for r in requests]
    results: list[list[Score | None]] = [[None] * len(p.sequences) for p in plans]
    # Requests fed whole become one row per sequence, sorted by length (see _row_batches);
    # requests with a shared prompt are sorted by length and shared length (see _batches).
    rows = [(i, j) for i, p in enumerate(plans) if p.shared == 0 for j in range(len(p.sequences))]
    rows.sort(key=lambda row: len(plans[row[0]].sequences[row[1]]))
    shared = sorted(
        (i for i, p in enumerate(plans) if p.shared > 0),
        key=lambda i: (plans[i].longest, plans[i].shared),
    )
    was_training = model.training
    model.eval()
    bar = tqdm(
        total=len(rows) + sum(len(plans[i].sequences) for i in shared),
        desc="score",
        unit="text",
        disable=not options.progress or not sys.stderr.isatty(),
    )
    try:
        for batch in _row_batches(rows, plans, batch_tokens, logit_budget):
            with autocast(device, dtype):
                scores = _score_rows(model, [plans[i] for i, _ in batch], [j for _, j in batch])
            for (i, j), score in zip(batch, scores):
                results[i][j] = score
            bar.update(len(batch))
        for batch in _batches(shared, plans, batch_tokens, logit_budget):
            with autocast(device, dtype):
                scores = _score_batch(model, [plans[i] for i in batch])
            for index, item_scores in zip(batch, scores):
                results[index] = item_scores
            bar.update(sum(len(plans[i].sequences) for i in batch))
    finally:
        bar.close()
        model.train(was_training)
    return results


class _Plan(NamedTuple):
    sequences: list[list[int]]  # context + each continuation
    n_context: int  # tokens from n_context on are scored
    shared: int  # leading tokens all sequences share; each keeps at least one of its own
    longest: int
    needed: int  # tokens fed when the shared part is fed once and nothing is padded


def _plan(request: Request) -> _Plan:
    n_context = len(request.context)
    sequences = [list(request.context) + list(c) for c in request.continuations]
    # Every sequence keeps at least one token after the shared part: the prefill's last
    # position predicts it, which is how identical or single continuations are scored too.
    limit = min(len(s) for s in sequences) - 1
    shared = n_context
    first = sequences[0]
    while shared < limit and all(s[shared] == first[shared] for s in sequences):
        shared += 1
    flat = sum(len(s) - 1 for s in sequences)  # tokens fed without sharing
    if (len(sequences) - 1) * shared < MIN_SHARED_SAVING * flat:
        shared = 0  # not worth a KV cache: the sequences are fed whole (see _score_batch)
    needed = shared + sum(len(s) - 1 - shared for s in sequences)
    return _Plan(sequences, n_context, shared, max(len(s) for s in sequences), needed)


def _row_batches(rows, plans, batch_tokens, logit_budget):
    """Consecutive runs of `rows` (sorted by length) to feed whole, with no padding if possible.

    A batch is cut before the row that would take it past `batch_tokens` (or the logit budget),
    and before a longer row (which would pad every row so far) once the batch holds a quarter
    of `batch_tokens` or that padding would pass `MAX_WASTE`. So a length with many rows fills
    batches of its own, and only the few rows of rare lengths share a batch with their
    neighbours, padded by a token or two.
    """
    batch: list[tuple[int, int]] = []
    longest = needed = 0  # in `batch`: the longest row, and the tokens without padding
    for row in rows:
        n = len(plans[row[0]].sequences[row[1]]) - 1  # the last token is never fed
        if batch:
            fed = (len(batch) + 1) * max(longest, n)  # rows x T, also the logits computed
            too_big = fed > min(batch_tokens, logit_budget)
            pads = n > longest and (
                len(batch) * longest >= batch_tokens // 4 or fed - needed - n > MAX_WASTE * fed
            )
            if too_big or pads:
                yield batch
                batch, longest, needed = [], 0, 0
        batch.append(row)
        longest, needed = max(longest, n), needed + n
    if batch:
        yield batch


def _batches(order, plans, batch_tokens, logit_budget):
    """Consecutive runs of `order` that fit one forward pass and waste little on padding.

    A batch of requests costs n x L tokens of prefill (L: its shortest shared part) plus one
    row per sequence, padded to the longest, after L. A request is added while that stays within
    `batch_tokens` and `MAX_WASTE` of it is padding or repeated shared tokens.
    """
    batch: list[int] = []
    prefix = longest = rows = needed = 0
    for index in order:
        plan = plans[index]
        grown = (
            min(prefix, plan.shared) if batch else plan.shared,
            max(longest, plan.longest),
            rows + len(plan.sequences),
            needed + plan.needed,
        )
        fed = (len(batch) + 1) * grown[0] + grown[2] * (grown[1] - 1 - grown[0])
        too_big = fed > batch_tokens or fed + grown[2] > logit_budget
        if batch and (too_big or fed - grown[3] > MAX_WASTE * fed):
            yield batch
            batch = []
            grown = (plan.shared, plan.longest, len(plan.sequences), plan.needed)
        batch.append(index)
        prefix, longest, rows, needed = grown
    if batch:
        yield batch


@torch.inference_mode()
def _score_rows(model, plans: list[_Plan], which: list[int]) -> list[Score]:
    """Score sequence `which[r]` of `plans[r]` for every row r, each fed whole, in one pass."""
    device = model_device(model)
    sequences = [plan.sequences[j] for plan, j in zip(plans, which)]
    n_context = torch.tensor([plan.n_context for plan in plans], device=device)
    logprob, greedy = _feed_rest(model, sequences, n_context, 0, None)
    return [
        Score(lp, len(s) - plan.n_context, g)
        for plan, s, lp, g in zip(plans, sequences, logprob.tolist(), greedy.tolist())
    ]


@torch.inference_mode()
def _score_batch(model, plans: list[_Plan]) -> list[list[Score]]:
    """Score a batch of requests with shared prompts: their first L tokens once each, then
    every sequence's rest.

    L is the shortest shared part in the batch, so every request can prefill exactly L tokens
    (no padding); a request whose shared part is longer feeds its extra shared tokens with each
    continuation, a few tokens at most when the batch was sorted by shared length.
    """
    device = model_device(model)
    L = min(p.shared for p in plans)
    every = [(i, j) for i, p in enumerate(plans) for j in range(len(p.sequences))]
    sequences = [plans[i].sequences[j] for i, j in every]
    item = torch.tensor([i for i, _ in every], device=device)
    n_context = torch.tensor([plans[i].n_context for i, _ in every], device=device)
    logprob = torch.zeros(len(every), dtype=torch.float64, device=device)
    greedy = torch.ones(len(every), dtype=torch.bool, device=device)
    fed_after = max(len(s) - 1 - L for s in sequences)  # the last token is never fed
    cache = model.new_kv_cache(len(plans), L + fed_after)
    _prefill(model, plans, L, sequences, item, n_context, cache, logprob, greedy)
    if fed_after > 0:  # the rest of every sequence, after a copy of its request's prefix
        rest_logprob, rest_greedy = _feed_rest(
            model, sequences, n_context, L, cache.select_rows(item)
        )
        logprob += rest_logprob
        greedy &= rest_greedy

    results: list[list[Score]] = [[] for _ in plans]
    for (i, _), sequence, lp, g in zip(every, sequences, logprob.tolist(), greedy.tolist()):
        results[i].append(Score(lp, len(sequence) - plans[i].n_context, g))
    return results


def _feed_rest(model, sequences, n_context, L, cache):
    """Feed every sequence from token L on (after its first L tokens in `cache`, if L > 0):
    per row, the summed log-probability of the scored tokens it predicts, and whether each
    was the argmax. Rows are right-padded to the longest; padding and context are not scored.
    """
    device = n_context.device
    T = max(len(s) for s in sequences) - 1 - L  # the last token is never fed
    pad = [T + 1 + L - len(s) for s in sequences]  # none when the rows share one length
    inputs = torch.tensor([s[L:-1] + [0] * n for s, n in zip(sequences, pad)], device=device)
    targets = torch.tensor([s[L + 1 :] + [-1] * n for s, n in zip(sequences, pad)], device=device)
    positions = torch.arange(L + 1, L + 1 + T, device=device)[None, :]  # of the targets
    targets[positions < n_context[:, None]] = -1  # context tokens are not scored
    logits, _ = model(inputs, kv_cache=cache)
    scored = targets >= 0  # neither context nor right padding
    token_logp, token_greedy = _token_logprobs(logits, targets.clamp(min=0))
    return (token_logp.double() * scored).sum(1), (token_greedy | ~scored).all(1)


def _prefill(model, plans, L, sequences, item, n_context, cache, logprob, greedy) -> None:
    """The first L tokens of each request, once, into `cache`; adds what they score in place.

    Position t predicts token t + 1: the shared tokens from n_context on, and, from the last
    position, each sequence's token L (which may differ between the continuations).
    """
    device = item.device
    prefix = torch.tensor([p.sequences[0][:L] for p in plans], device=device)  # (B, L)
    scored_in_prefix = any(p.n_context < L for p in plans)
    logits, _ = model(prefix, kv_cache=cache, last_only=not scored_in_prefix)  # (B, L or 1, V)
    if scored_in_prefix:
        token_logp, token_greedy = _token_logprobs(logits[:, :-1], prefix[:, 1:])  # (B, L - 1)
        scored = torch.arange(1, L, device=device)[None, :] >= n_context[:, None]  # (rows, L-1)
        logprob += (token_logp[item].double() * scored).sum(1)
        greedy &= (token_greedy[item] | ~scored).all(1)
    target = torch.tensor([s[L] for s in sequences], device=device)
    scored = n_context <= L
    last_logp, last_greedy = _token_logprobs(logits[item, -1], target)  # (rows,)
    logprob += last_logp.double() * scored
    greedy &= last_greedy | ~scored


def _token_logprobs(logits: torch.Tensor, targets: torch.Tensor):
    """log P(target) under softmax(logits), and whether the target is the argmax: (..., V) and
    (...) -> (...), (...). Only the targets' entries: logit - logsumexp, no log-softmax copy."""
    logits = logits.float()
    token_logp = logits.gather(-1, targets[..., None])[..., 0] - torch.logsumexp(logits, dim=-1)
    return token_logp, logits.argmax(-1) == targets


# --- from task items to scores -----------------------------------------------------------------


def score_items(
    model,
    items: Sequence,
    to_request,
    *,
    task: str,
    options: ScoringOptions | None = None,
    log=print,
) -> tuple[list, list[list[Score]], dict]:
    """Encode, fit and score task items: (items kept, their scores, facts about the run).

    The facts: how many items were skipped and truncated, the seconds it took (encoding
    included) and the items per second.

    `to_request(item)` builds the item's `Request`. An item is skipped when the tokenizer cannot
    encode it (a character model meeting a character it never saw) or when a continuation alone
    does not fit the model's window (a few BLiMP sentences for a 128-character window); `log`
    gets one line for each reason, saying how many and the first one. Contexts cut to fit the
    window get one line too.
    """
    began = time.perf_counter()
    block_size = model.config.block_size
    kept, requests, unencodable, too_long = [], [], [], []
    for item in items:
        try:
            request = to_request(item)
        except ByollmError as e:
            unencodable.append((item, str(e)))
            continue
        longest = max(len(c) for c in request.continuations)
        if longest > block_size:  # even after a single context token it would not fit
            too_long.append((item, longest))
            continue
        kept.append(item)
        requests.append(request)
    if unencodable:
        first, reason = unencodable[0]
        log(
            f"{task}: skipped {len(unencodable)} of {len(items)} items the tokenizer cannot "
            f"encode (first: {first.where}: {reason})"
        )
    if too_long:
        first, longest = too_long[0]
        log(
            f"{task}: skipped {len(too_long)} of {len(items)} items with a continuation longer "
            f"than the model's {block_size}-token window (first: {first.where}, {longest} tokens)"
        )
    if not requests:
        raise ByollmError(
            f"{task}: no item could be scored ({len(unencodable)} cannot be encoded with this "
            f"tokenizer, {len(too_long)} do not fit the model's window)"
        )
    requests, truncated = fit_to_window(requests, block_size, [k.where for k in kept])
    if truncated:
        examples = ", ".join(f"{kept[i].where} lost {n}" for i, n in truncated[:3])
        log(
            f"{task}: {len(truncated)} of {len(requests)} contexts were longer than the "
            f"model's {block_size}-token window; their oldest tokens were dropped "
            f"({examples}{', ...' if len(truncated) > 3 else ''})"
        )
    scores = score_requests(model, requests, options)
    seconds = time.perf_counter() - began
    return (
        kept,
        scores,
        {
            "skipped": len(unencodable) + len(too_long),
            "truncated": len(truncated),
            "seconds": round(seconds, 2),
            "items_per_s": round(len(kept) / max(seconds, 1e-9), 1),
        },
    )
