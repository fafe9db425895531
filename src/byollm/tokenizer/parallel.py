"""Encoding on several cores: one process per core, each with its own copy of the tokenizer.

Python threads cannot run the merge loop in parallel (the GIL), so we use processes. A large
text is first cut at points where every split pattern starts a new piece anyway (see
`patterns.safe_split_points`), so the concatenated ids are exactly those of one `encode` call.

    >>> from byollm.tokenizer import BPETokenizer
    >>> tok = BPETokenizer.train("a b c\\n" * 100, 260, progress=False)
    >>> encode_large(tok, "ab\\ncd\\n" * 1000, workers=2) == tok.encode("ab\\ncd\\n" * 1000)
    True

Design choices:
- Workers are forked on Linux, so the tokenizer is inherited, not pickled; elsewhere they are
  spawned and receive a pickled copy once (its piece cache is left behind).
- Small inputs stay in this process: starting workers costs more than it saves below ~1 MB.
- Without a split pattern there is no safe cut, so a single text is encoded in one process.
"""

from __future__ import annotations

import os
from pathlib import Path

from byollm.errors import ByollmError
from byollm.workers import worker_pool

PARALLEL_MIN_CHARS = 1 << 20  # below ~1 MB of text, one process is faster
PIECES_PER_WORKER = 4  # more pieces than workers evens out the load

_worker_tokenizer = None
_worker_allowed = frozenset()


def _init_worker(tokenizer, allowed_special) -> None:
    global _worker_tokenizer, _worker_allowed
    _worker_tokenizer, _worker_allowed = tokenizer, allowed_special


def _encode_in_worker(text: str) -> list[int]:
    return _worker_tokenizer.encode(text, allowed_special=_worker_allowed)


def resolve_workers(workers: int | None) -> int:
    if workers is None:
        return os.cpu_count() or 1
    if workers < 1:
        raise ByollmError(f"workers must be >= 1 (or None for all cores), got {workers}")
    return workers


def encode_batch(tokenizer, texts: list[str], *, allowed_special=frozenset(), workers=1):
    """Encode each text; across `workers` processes when there is enough text."""
    workers = resolve_workers(workers)
    allowed = tokenizer._allowed(allowed_special)  # validate here, not in a worker
    total = sum(len(t) for t in texts)
    pool = worker_pool(
        workers,
        tasks=len(texts),
        work=total,
        min_work=PARALLEL_MIN_CHARS,
        initializer=_init_worker,
        initargs=(tokenizer, frozenset(allowed)),
    )
    if pool is None:
        return [tokenizer.encode(t, allowed_special=allowed) for t in texts]
    chunksize = max(1, len(texts) // (workers * PIECES_PER_WORKER))
    with pool:
        return pool.map(_encode_in_worker, texts, chunksize=chunksize)


def encode_large(tokenizer, text: str, *, allowed_special=frozenset(), workers=None) -> list[int]:
    """Encode one large text, cut at safe points and spread over processes."""
    from byollm.tokenizer.patterns import safe_split_points

    workers = resolve_workers(workers)
    pattern = getattr(tokenizer, "pattern", None)
    # Only BPE's known patterns have safe cuts; a char tokenizer can be cut anywhere.
    if pattern == "" or workers == 1 or len(text) < PARALLEL_MIN_CHARS:
        return tokenizer.encode(text, allowed_special=allowed_special)
    cuts = safe_split_points(text, len(text) // (workers * PIECES_PER_WORKER) + 1)
    bounds = [0, *cuts, len(text)]
    pieces = [text[a:b] for a, b in zip(bounds, bounds[1:])]
    ids: list[int] = []
    for part in encode_batch(tokenizer, pieces, allowed_special=allowed_special, workers=workers):
        ids += part
    return ids


def encode_file(tokenizer, path, *, allowed_special=frozenset(), workers=None) -> list[int]:
    """Read a UTF-8 text file (invalid bytes become U+FFFD, newlines kept as they are) and encode."""
    path = Path(path)
    try:
        with open(path, encoding="utf-8", errors="replace", newline="") as f:
            text = f.read()
    except OSError as e:
        raise ByollmError(f"cannot read {path}: {e.strerror or e}") from None
    return encode_large(tokenizer, text, allowed_special=allowed_special, workers=workers)
