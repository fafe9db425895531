"""Reference implementations kept for the tokenizer tests (not part of the package).

`naive_merges` is minbpe's training algorithm: recount every adjacent pair of the whole corpus
for every merge. It is slow (O(merges x corpus)) but obviously right, so the fast incremental
trainer must reproduce its merges exactly, including the tie-breaking rule (highest count,
then the smallest (left id, right id)).
"""

from __future__ import annotations

from collections import Counter

from byollm.tokenizer.patterns import split_text
from byollm.tokenizer.training import merge_pair


def naive_merges(text: str, n_merges: int, pattern: str) -> list[tuple[int, int]]:
    words = [list(piece.encode("utf-8")) for piece in split_text(text, pattern)]
    merges = []
    for k in range(n_merges):
        stats: Counter = Counter()
        for ids in words:
            stats.update(zip(ids, ids[1:]))
        if not stats:
            break
        pair = max(stats, key=lambda p: (stats[p], -p[0], -p[1]))
        merges.append(pair)
        words = [merge_pair(ids, pair, 256 + k) for ids in words]
    return merges


def naive_encode(text: str, merges: list[tuple[int, int]], pattern: str) -> list[int]:
    """minbpe's encode: in each piece, merge the pair with the earliest merge, until none."""
    rank = {pair: 256 + k for k, pair in enumerate(merges)}
    ids_out = []
    for piece in split_text(text, pattern):
        ids = list(piece.encode("utf-8"))
        while len(ids) > 1:
            pair = min(zip(ids, ids[1:]), key=lambda p: rank.get(p, float("inf")))
            if pair not in rank:
                break
            ids = merge_pair(ids, pair, rank[pair])
        ids_out += ids
    return ids_out
