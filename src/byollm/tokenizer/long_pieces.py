"""Merging one very long piece (a 50 MB "word" with no space in it) in compact numpy arrays.

The split pattern normally cuts text into short pieces, but nothing stops a piece from being
long: a line of 50 million `a`s, a base64 blob, a text with the pattern `none`. Merging such a
piece one pair at a time in Python objects costs hundreds of bytes per input byte (10 GB and a
MemoryError for 50 MB). Here the piece lives in a few int32 arrays (about 30 bytes per input
byte in all) and the merges are done many at a time, with the same result as the one-at-a-time
rule (lowest rank first, leftmost on ties; `bpe.byte_pair_merge`).

    >>> ranks = {bytes([b]): b for b in range(256)} | {b"aa": 256, b"aaaa": 257}
    >>> LongPieceEncoder(ranks).encode(b"aaaaaaaaaaa")
    [257, 257, 256, 97]

How, in rounds:
- The parts of the piece form a linked list over byte positions (`next_of`, `prev_of`); `token`
  holds the id of the part that starts at a position and `pair_rank` the rank of that part
  joined with the next one (or NEVER).
- Each round takes the lowest rank r among the pairs and merges every pair of rank r, left to
  right, skipping a pair whose left part the previous merge took (in `aaaa`, the 1st and 3rd
  `aa`), as the one-at-a-time rule would.
- That is exact as long as no merge of the round creates a pair ranked below r: the rule would
  merge that pair first. In a vocabulary learned by BPE this is rare (a token ranked before
  one of its own parts), so we check it: the round stops after the first merge that creates
  such a pair, and the rest of rank r waits for a later round.
- Pairs wait in a queue of sorted int64 keys `rank << 32 | position` (`_PairQueue`); a key
  whose pair has changed since is stale and skipped. The rank of two joined tokens is looked
  up, many at once, in the sorted table of all (left id, right id) -> id joins of the
  vocabulary (`_JoinTable`), built once per tokenizer on first use.
"""

from __future__ import annotations

import numpy as np

from byollm.errors import ByollmError

NEVER = np.iinfo(np.int32).max  # the rank of a pair that is not a token
GONE = -1  # pair_rank of a position that no longer starts a part (merged into its left)
MAX_PIECE = NEVER  # positions are int32
LOOKUP_SLICE = 1 << 18  # pairs looked up at a time
ROUND_SLICE = 1 << 20  # pairs merged at a time


class _JoinTable:
    """The id of the token that two tokens join into, for every join that is a token."""

    def __init__(self, ranks: dict[bytes, int]):
        self.size = max(ranks.values()) + 1
        keys, joined = [], []
        for token, rank in ranks.items():
            for cut in range(1, len(token)):
                left = ranks.get(token[:cut])
                right = ranks.get(token[cut:]) if left is not None else None
                if right is not None:
                    keys.append(left * self.size + right)
                    joined.append(rank)
        # A sentinel key above every real one keeps searchsorted's answers inside the array.
        order = np.argsort(np.array(keys, dtype=np.int64), kind="stable")
        self.keys = np.append(np.array(keys, dtype=np.int64)[order], np.iinfo(np.int64).max)
        self.joined = np.append(np.array(joined, dtype=np.int32)[order], NEVER)
        self.byte_token = np.array([ranks[bytes([b])] for b in range(256)], dtype=np.int32)
        # Every pair of bytes, for the first round: 256 x 256 ranks indexed by b1 * 256 + b2.
        self.byte_pairs = self.lookup(
            np.repeat(self.byte_token, 256), np.tile(self.byte_token, 256)
        )

    def lookup(self, left, right) -> np.ndarray:
        """Id of each join left[i] + right[i] (either may be a single id), or NEVER where it is
        not a token. Long inputs go in slices, so the int64 temporaries stay small."""
        left, right = np.asarray(left), np.asarray(right)
        count = max(left.size, right.size)
        if count > LOOKUP_SLICE:
            slices = [slice(start, start + LOOKUP_SLICE) for start in range(0, count, LOOKUP_SLICE)]
            return np.concatenate(
                [
                    self.lookup(
                        left[part] if left.ndim else left, right[part] if right.ndim else right
                    )
                    for part in slices
                ]
            )
        query = left.astype(np.int64) * self.size + right
        index = np.searchsorted(self.keys, query)
        found = self.keys[index] == query
        joined = np.full(query.shape, NEVER, dtype=np.int32)
        joined[found] = self.joined[index[found]]
        return joined


class _PairQueue:
    """(rank, position) entries handed out lowest rank first, all positions of a rank at once.

    Entries are int64 keys `rank << 32 | position` in a few sorted runs. A new batch is a new
    run; a run is merged into the one before it when that one is not much larger (a binary
    counter), so there are O(log n) runs and each key is re-sorted O(log n) times.
    """

    def __init__(self):
        self.runs: list[np.ndarray] = []

    def push(self, keys: np.ndarray) -> None:
        """Add keys (an int64 array this queue may sort in place and keep)."""
        keys.sort()
        keys = keys[: np.searchsorted(keys, np.int64(NEVER) << 32)]  # drop "not a token"
        while self.runs and len(self.runs[-1]) <= 2 * len(keys):
            keys = np.concatenate([self.runs.pop(), keys])
            keys.sort(kind="stable")  # two sorted runs: a linear merge
        if len(keys):
            self.runs.append(keys)

    def pop_lowest(self) -> tuple[int, np.ndarray] | None:
        """The lowest queued rank and the sorted distinct positions queued with it."""
        if not self.runs:
            return None
        rank = int(min(run[0] for run in self.runs) >> 32)
        bound = np.int64(rank + 1) << 32
        taken, kept = [], []
        for run in self.runs:
            end = int(np.searchsorted(run, bound)) if run[0] < bound else 0
            if end:
                taken.append(run[:end].astype(np.int32))  # the low 32 bits: the positions
            if end < len(run):
                kept.append(run[end:])
        self.runs = kept
        positions = np.concatenate(taken) if len(taken) > 1 else taken[0]
        if len(taken) > 1:  # several runs: sort and drop duplicates
            positions.sort()
            positions = positions[np.concatenate(([True], positions[1:] != positions[:-1]))]
        return rank, positions


def _keys(ranks: np.ndarray, positions: np.ndarray) -> np.ndarray:
    keys = ranks.astype(np.int64)
    keys <<= 32
    keys |= positions
    return keys


def _every_other_in_runs(positions: np.ndarray, next_of: np.ndarray) -> np.ndarray:
    """Of pairs at sorted `positions`, those merged left to right: where consecutive pairs
    overlap (`aaaa`: pairs at 0, 1, 2), the 1st, 3rd, ... of each such run."""
    count = len(positions)
    run_start = np.ones(count, dtype=bool)
    run_start[1:] = next_of[positions[:-1]] != positions[1:]
    index = np.arange(count, dtype=np.int32)
    first = np.where(run_start, index, 0)
    np.maximum.accumulate(first, out=first)  # where each position's run starts
    index -= first  # the place in the run
    return positions[(index & 1) == 0]


class LongPieceEncoder:
    """Encodes long pieces for one vocabulary (`ranks`: token bytes -> id)."""

    def __init__(self, ranks: dict[bytes, int]):
        self.joins = _JoinTable(ranks)
        # The output as a list of shared int objects: 8 bytes per id instead of 40.
        self._id_objects = np.arange(self.joins.size).astype(object)

    def encode(self, piece: bytes) -> list[int]:
        """The ids of one piece, as `bpe.byte_pair_merge` would give them."""
        if len(piece) > MAX_PIECE:
            raise ByollmError(
                f"a piece of {len(piece):,} bytes with no split point is too long "
                f"to encode (at most {MAX_PIECE:,}); split the text"
            )
        state = _Piece(piece, self.joins)
        while (lowest := state.queue.pop_lowest()) is not None:
            state.merge_round(*lowest)
        return self._id_objects[state.ids()].tolist()


class _Piece:
    """One piece being merged: its parts as a linked list over byte positions."""

    def __init__(self, piece: bytes, joins: _JoinTable):
        self.n = n = len(piece)
        self.joins = joins
        codes = np.frombuffer(piece, dtype=np.uint8)
        self.token = joins.byte_token[codes]  # id of the part starting at each position
        self.pair_rank = np.full(n, NEVER, dtype=np.int32)  # rank of that part + the next
        self.next_of = np.arange(1, n + 1, dtype=np.int32)  # n: no next part
        self.prev_of = np.arange(-1, n - 1, dtype=np.int32)  # -1: no previous part
        keys = np.empty(n, dtype=np.int64)
        for start in range(0, n, ROUND_SLICE):  # in slices, so that temporaries stay small
            stop = min(start + ROUND_SLICE, n)
            left = codes[start : min(stop, n - 1)].astype(np.int32)
            self.pair_rank[start : start + len(left)] = joins.byte_pairs[
                left * 256 + codes[start + 1 : start + 1 + len(left)]
            ]
            positions = np.arange(start, stop, dtype=np.int32)
            keys[start:stop] = _keys(self.pair_rank[start:stop], positions)
        self.queue = _PairQueue()
        self.queue.push(keys)

    def ids(self) -> np.ndarray:
        return self.token[self.pair_rank != GONE]

    def merge_round(self, rank: int, candidates: np.ndarray) -> None:
        """Merge the queued pairs of `rank` (sorted positions), left to right, while that is
        exact; what is left waits in the queue.

        Slices of the candidates are merged one after the other: the same as all at once (a
        pair whose left part the previous slice took is stale by then), with temporaries the
        size of a slice.
        """
        for start in range(0, len(candidates), ROUND_SLICE):
            if not self._merge_slice(rank, candidates[start : start + ROUND_SLICE]):
                waiting = candidates[start:]
                waiting = waiting[self.pair_rank[waiting] == rank]
                self.queue.push(_keys(self.pair_rank[waiting], waiting))
                return

    def _merge_slice(self, rank: int, candidates: np.ndarray) -> bool:
        """Merge these pairs of `rank`; False if it stopped before a pair ranked below."""
        n, token, pair_rank, next_of, prev_of = (
            self.n,
            self.token,
            self.pair_rank,
            self.next_of,
            self.prev_of,
        )
        lookup = self.joins.lookup
        candidates = candidates[pair_rank[candidates] == rank]  # drop stale entries
        if not len(candidates):
            return True
        merge = _every_other_in_runs(candidates, next_of)
        right = next_of[merge]  # the part each merge swallows
        end = next_of[right]  # where the new part ends (n: at the end of the piece)
        # The pairs each merge creates, in left-to-right order: (left neighbour, new part), the
        # left neighbour being the previous merge's new part if that ends here, and (new part,
        # right neighbour as it is before any later merge).
        after_previous = np.zeros(len(merge), dtype=bool)
        after_previous[1:] = end[:-1] == merge[1:]
        left = prev_of[merge]
        left_token = np.where(after_previous, rank, token[np.maximum(left, 0)])
        left_rank = np.where(left >= 0, lookup(left_token, rank), NEVER)
        right_rank = np.where(end < n, lookup(rank, token[np.minimum(end, n - 1)]), NEVER)
        lower = (left_rank < rank) | (right_rank < rank)
        del left_token, left_rank, right_rank  # (a round can hold most of the piece)
        stopped = bool(lower.any())
        if stopped:  # the one-at-a-time rule would merge the lower pair next: stop there
            last = int(np.argmax(lower)) + 1
            merge, right, end = merge[:last], right[:last], end[:last]
            after_previous, left = after_previous[:last], left[:last]
        token[merge] = rank
        pair_rank[right] = GONE
        next_of[merge] = end
        inside = end < n
        prev_of[end[inside]] = merge[inside]
        # Changed pairs, in position order: each left neighbour that is not itself a new part
        # (it lies between the previous new part and this one) with the new part, and each new
        # part with its right neighbour.
        both = np.stack([left, merge], axis=1)
        keep = np.stack([(left >= 0) & ~after_previous, np.ones(len(merge), dtype=bool)], axis=1)
        changed = both[keep]
        del merge, right, end, inside, left, after_previous, lower, both, keep
        following = next_of[changed]
        new_rank = np.full(len(changed), NEVER, dtype=np.int32)
        has_next = following < n
        new_rank[has_next] = lookup(token[changed[has_next]], token[following[has_next]])
        pair_rank[changed] = new_rank
        del following, has_next
        self.queue.push(_keys(new_rank, changed))
        return not stopped
