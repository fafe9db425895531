"""Learning BPE merges fast: count pieces once, then update pair counts incrementally.

The naive algorithm (minbpe's) recounts every adjacent pair of the whole corpus for every merge:
O(merges x corpus). Here:

1. **Count each distinct piece once.** The regex split of a corpus repeats itself (" the" occurs
   thousands of times), so we keep `piece -> frequency`, a few tens of thousands of entries for
   megabytes of text. Large inputs are streamed in blocks cut at safe points and counted on all
   cores.
2. **Pair counts, kept up to date.** `pair_counts[(a, b)]` is the number of times the pair
   occurs, weighted by piece frequency, and `pieces_with[(a, b)]` the pieces that contain it.
   A merge touches only those pieces, and in them only the pairs beside each occurrence.
3. **A priority queue** (heap) of `(-count, a, b)` finds the most frequent pair in O(log n).
   Entries are not removed when a count changes; a fresh entry is pushed instead, and a popped
   entry whose count is out of date is skipped ("lazy deletion").

**Tie-breaking rule** (deterministic, documented): the pair with the highest count wins; among
equal counts, the smallest `(left id, right id)`. Ids 0..255 are bytes, so early ties go to
the lowest byte values. `naive_merges` in the tests applies the same rule by brute force and
must produce identical merges.

    >>> learn_merges({b"aaab": 1, b"ab": 2}, 2, progress=False)
    [(97, 98), (97, 97)]
"""

from __future__ import annotations

import heapq
import sys
from collections import Counter, defaultdict
from collections.abc import Iterable, Iterator
from pathlib import Path

import regex

from byollm.errors import ByollmError
from byollm.tokenizer.patterns import compile_pattern, safe_split_points
from byollm.workers import worker_pool

BLOCK_CHARS = 4 << 20  # characters per block when streaming files / counting in parallel
PARALLEL_MIN_CHARS = 8 << 20  # below this, one process counts faster than starting workers


def merge_pair(ids: list[int], pair: tuple[int, int], new_id: int) -> list[int]:
    """Replace each non-overlapping occurrence of `pair`, left to right, by `new_id`.

    >>> merge_pair([1, 1, 1, 2], (1, 1), 9)
    [9, 1, 2]
    """
    out = []
    i, n = 0, len(ids)
    a, b = pair
    while i < n:
        if ids[i] == a and i + 1 < n and ids[i + 1] == b:
            out.append(new_id)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def learn_merges(
    piece_counts: dict[bytes, int], n_merges: int, *, progress: bool = True
) -> list[tuple[int, int]]:
    """The merges, in order; merge k creates id 256 + k. Stops early if no pair is left."""
    words = [list(piece) for piece in piece_counts]
    freqs = list(piece_counts.values())
    pair_counts: dict[tuple[int, int], int] = defaultdict(int)
    pieces_with: dict[tuple[int, int], set[int]] = defaultdict(set)
    for w, (ids, freq) in enumerate(zip(words, freqs)):
        for pair in zip(ids, ids[1:]):
            pair_counts[pair] += freq
            pieces_with[pair].add(w)
    heap = [(-count, pair) for pair, count in pair_counts.items()]
    heapq.heapify(heap)

    merges: list[tuple[int, int]] = []
    bar = _progress_bar(n_merges, "merges", progress)
    while len(merges) < n_merges and heap:
        negative_count, pair = heapq.heappop(heap)
        if pair_counts.get(pair, 0) != -negative_count:
            continue  # stale entry: the count changed after it was pushed
        new_id = 256 + len(merges)
        merges.append(pair)
        del pair_counts[pair]
        delta: dict[tuple[int, int], int] = defaultdict(int)
        for w in pieces_with.pop(pair):
            new = _merge_counting(words[w], pair, new_id, freqs[w], delta, pieces_with, w)
            if new is not None:
                words[w] = new
        delta.pop(pair, None)
        for p, change in delta.items():
            if change:
                count = pair_counts[p] + change
                if count > 0:
                    pair_counts[p] = count
                    heapq.heappush(heap, (-count, p))
                else:
                    del pair_counts[p]
                    pieces_with.pop(p, None)
        bar.update(1)
    bar.close()
    return merges


def _merge_counting(old, pair, new_id, freq, delta, pieces_with, w):
    """`merge_pair`, and also record how the pair counts change around each occurrence.

    An occurrence `x a b y` becomes `x N y`: pairs (x, a) and (b, y) lose `freq`, (x, N) and
    (N, y) gain it. Back-to-back occurrences (`a b a b`) share the middle pair (b, a), which is
    counted once. Returns None if the piece no longer holds the pair (a stale index entry).
    """
    a, b = pair
    n = len(old)
    new: list[int] = []
    i = 0
    while i < n:
        if old[i] == a and i + 1 < n and old[i + 1] == b:
            if new:
                left = new[-1]
                if left != new_id:  # else the previous occurrence already removed (b, a)
                    delta[(left, a)] -= freq
                delta[(left, new_id)] += freq
                pieces_with[(left, new_id)].add(w)
            if i + 2 < n:
                right = old[i + 2]
                delta[(b, right)] -= freq
                if not (right == a and i + 3 < n and old[i + 3] == b):
                    delta[(new_id, right)] += freq
                    pieces_with[(new_id, right)].add(w)
            new.append(new_id)
            i += 2
        else:
            new.append(old[i])
            i += 1
    return new if len(new) < n else None


# ---- counting pieces --------------------------------------------------------------------------


def count_pieces(
    text_or_files: str | Path | Iterable[Path],
    pattern: str,
    special_tokens: Iterable[str] = (),
    *,
    workers: int | None = None,
    progress: bool = True,
) -> dict[bytes, int]:
    """piece (UTF-8 bytes) -> frequency, over a text or files. Special-token strings are cut out
    first, so they never take part in merges."""
    blocks = _blocks(text_or_files, pattern)
    specials = sorted(set(special_tokens), key=len, reverse=True)
    args = (pattern, "|".join(regex.escape(s) for s in specials))
    total = _total_chars(text_or_files)
    counts: Counter[str] = Counter()
    bar = _progress_bar(total, "counting pieces", progress, unit="char", unit_scale=True)
    workers = None if workers is None else max(1, workers)
    pool = worker_pool(workers, work=total, min_work=PARALLEL_MIN_CHARS)
    if pool is not None:
        with pool:
            for block_counts, n_chars in pool.imap_unordered(
                _count_block_star, ((block, *args) for block in blocks)
            ):
                counts.update(block_counts)
                bar.update(n_chars)
    else:
        for block in blocks:
            block_counts, n_chars = _count_block(block, *args)
            counts.update(block_counts)
            bar.update(n_chars)
    bar.close()
    result: dict[bytes, int] = {}
    for piece, freq in counts.items():
        key = piece.encode("utf-8", errors="surrogatepass")
        result[key] = result.get(key, 0) + freq
    return result


def _count_block(block: str, pattern: str, specials_regex: str) -> tuple[Counter, int]:
    texts = regex.split(specials_regex, block) if specials_regex else [block]
    counts: Counter[str] = Counter()
    for text in texts:
        if not pattern:
            if text:
                counts[text] += 1
        else:
            counts.update(compile_pattern(pattern).findall(text))
    return counts, len(block)


def _count_block_star(args):
    return _count_block(*args)


def _blocks(text_or_files, pattern: str) -> Iterator[str]:
    """Yield the input as text blocks cut only at safe points (no cut at all without a pattern)."""
    if isinstance(text_or_files, str):
        yield from _cut(text_or_files, pattern)
        return
    files = [text_or_files] if isinstance(text_or_files, Path) else list(text_or_files)
    for path in files:
        try:
            with open(path, encoding="utf-8", errors="replace", newline="") as f:
                carry = ""
                while block := f.read(BLOCK_CHARS):
                    text = carry + block
                    cuts = safe_split_points(text, BLOCK_CHARS // 2) if pattern else []
                    if not cuts:
                        carry = text
                        continue
                    yield from _cut(text[: cuts[-1]], pattern)
                    carry = text[cuts[-1] :]
                if carry:
                    yield carry
        except OSError as e:
            raise ByollmError(f"cannot read corpus file {path}: {e.strerror or e}") from None


def _cut(text: str, pattern: str) -> Iterator[str]:
    if not pattern or len(text) <= BLOCK_CHARS:
        if text:
            yield text
        return
    start = 0
    for cut in safe_split_points(text, BLOCK_CHARS):
        yield text[start:cut]
        start = cut
    yield text[start:]


def _total_chars(text_or_files) -> int:
    if isinstance(text_or_files, str):
        return len(text_or_files)
    files = [text_or_files] if isinstance(text_or_files, Path) else list(text_or_files)
    total = 0
    for path in files:
        try:
            total += Path(path).stat().st_size
        except OSError as e:
            raise ByollmError(f"cannot read corpus file {path}: {e.strerror or e}") from None
    return total


def _progress_bar(total: int, desc: str, progress: bool, **kwargs):
    from tqdm import tqdm

    enabled = progress and sys.stderr.isatty()
    return tqdm(total=total, desc=desc, disable=not enabled, leave=False, **kwargs)
