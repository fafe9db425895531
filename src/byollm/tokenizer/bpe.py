"""Byte-level BPE: text -> UTF-8 bytes -> regex pieces -> merged byte sequences -> ids.

    >>> tok = BPETokenizer.train("low lower lowest " * 50, vocab_size=260, pattern="gpt2",
    ...                          special_tokens=(), progress=False)
    >>> [tok.token_bytes(i) for i in range(256, 260)]
    [b'lo', b'low', b' low', b' lowe']
    >>> tok.encode(" lower")
    [259, 114]

Design choices:
- **Ranks, as in tiktoken.** A vocabulary is `bytes -> rank` and the rank is the id. Encoding a
  piece starts from single bytes and repeatedly merges the adjacent pair whose concatenation has
  the lowest rank (leftmost on ties) until no pair is in the vocabulary. This needs no merge
  list, so GPT-2, r50k/p50k/cl100k/o200k and our own trained vocabularies share one encoder.
  Trained vocabularies also keep their merge list (`merges`), for reading and for export.
- **A piece that is itself a token is taken whole** (tiktoken's shortcut). For vocabularies
  learned by BPE this gives the same ids as merging step by step, and it is much faster.
- **Fast encode = regex split + cache.** Real text repeats its pieces (" the", ","), so each
  distinct piece is merged once and its ids are remembered (`_PieceCache`). The hot loop is C
  code: `findall`, `map(cache.__getitem__)`, `itertools.chain`. The split itself, the largest
  cost, uses Python's faster `re` on ASCII text (`patterns.make_splitter`).
- **Packed ids for token files** (`encode_ordinary_packed`, what `byollm prepare` calls): a
  second cache holds each piece's ids already as uint16/uint32 array bytes, so a text's ids are
  one `b"".join` (a copy per piece) instead of flattening tuples of Python ints and converting
  each int to the array's dtype. Measured on the standard library's sources (12 MB, warm cache,
  one thread): 0.155 s for that step instead of 0.38 s (`list` + `np.asarray`) or 0.31 s
  (`np.fromiter`), which made `byollm prepare` 1.18-1.26x faster (benchmarks/RESULTS.md).
- Long pieces (no pattern, or a run of 10,000 spaces) are merged with a heap and a linked list
  (O(n log n)) instead of rescanning all pairs per merge (O(n^2)). Huge ones (over 64 KiB: a
  50 MB "word") are merged many pairs at a time in int32 arrays (`long_pieces.py`), so memory
  stays at about 30 bytes per byte instead of hundreds.
- Ids 0..255 of a trained vocabulary are the raw bytes, merges get 256, 257, ... in the order
  they were learned, then the special tokens (see `training.py` for how merges are chosen).
"""

from __future__ import annotations

import base64
import heapq
from collections.abc import Iterable, Sequence
from itertools import chain
from pathlib import Path

import numpy as np

from byollm.errors import ByollmError
from byollm.tokenizer.base import (
    ENDOFTEXT,
    MAX_TOKEN_ID,
    Tokenizer,
    as_token_ids,
    check_special_tokens,
    is_token_id,
    payload_field,
    short_repr,
)
from byollm.tokenizer.patterns import make_splitter, pattern_name, resolve_pattern

LONG_PIECE = 256  # bytes: above this, merge with a heap instead of rescanning every pair
HUGE_PIECE = 1 << 16  # bytes: above this, merge in compact numpy arrays (long_pieces.py)
_NEVER = 1 << 62  # the rank of a pair that is not in the vocabulary
CACHE_MAX_ENTRIES = 1 << 20  # distinct pieces remembered before the cache starts over
CACHE_MAX_PIECE = 256  # characters: longer pieces are rare; do not remember them


def byte_pair_merge(piece: bytes, ranks: dict[bytes, int]) -> list[bytes]:
    """Merge a piece's bytes by rank, lowest rank first, leftmost on ties.

    `bounds` holds where the current parts start; `pair_rank[i]` is the rank of parts i and
    i + 1 joined (or "never"). Each step merges at the smallest rank and recomputes only the
    two neighbouring entries; `min` and `list.index` run in C (tiktoken's algorithm).

    >>> ranks = {bytes([b]): b for b in range(256)} | {b"ab": 256, b"abc": 257, b"bc": 258}
    >>> byte_pair_merge(b"abcab", ranks)
    [b'abc', b'ab']
    """
    if len(piece) > LONG_PIECE:
        return _byte_pair_merge_heap(piece, ranks)
    never = _NEVER
    get = ranks.get
    bounds = list(range(len(piece) + 1))
    pair_rank = [get(piece[i : i + 2], never) for i in range(len(piece) - 1)]
    while pair_rank:
        best = min(pair_rank)
        if best == never:
            break
        i = pair_rank.index(best)
        del bounds[i + 1]
        del pair_rank[i]
        if i < len(pair_rank):
            pair_rank[i] = get(piece[bounds[i] : bounds[i + 2]], never)
        if i > 0:
            pair_rank[i - 1] = get(piece[bounds[i - 1] : bounds[i + 1]], never)
    return [piece[a:b] for a, b in zip(bounds, bounds[1:])]


def _byte_pair_merge_heap(piece: bytes, ranks: dict[bytes, int]) -> list[bytes]:
    """Same result as the loop above in O(n log n): candidate merges wait in a heap keyed by
    (rank, position); a popped candidate is used only if its two parts are still neighbours
    holding the same bytes (otherwise an earlier merge made it stale)."""
    n = len(piece)
    parts = [piece[i : i + 1] for i in range(n)]
    next_of = list(range(1, n + 1))
    prev_of = list(range(-1, n - 1))
    alive = [True] * n
    get = ranks.get
    heap = []
    for i in range(n - 1):
        merged = parts[i] + parts[i + 1]
        rank = get(merged)
        if rank is not None:
            heap.append((rank, i, merged))
    heapq.heapify(heap)
    while heap:
        _, i, merged = heapq.heappop(heap)
        j = next_of[i] if alive[i] else n
        if j >= n or parts[i] + parts[j] != merged:
            continue  # stale
        parts[i] = merged
        alive[j] = False
        next_of[i] = next_of[j]
        if next_of[i] < n:
            prev_of[next_of[i]] = i
        for left in (prev_of[i], i):
            right = next_of[left] if left >= 0 else n
            if left >= 0 and right < n:
                candidate = parts[left] + parts[right]
                rank = get(candidate)
                if rank is not None:
                    heapq.heappush(heap, (rank, left, candidate))
    return [parts[i] for i in range(n) if alive[i]]


class _PieceCache(dict):
    """piece (str) -> its ids (a tuple, or packed bytes); a miss runs the merge loop once and
    remembers the answer."""

    def __init__(self, encode_piece):
        super().__init__()
        self.encode_piece = encode_piece

    def __missing__(self, piece: str) -> tuple[int, ...]:
        ids = self.encode_piece(piece)
        if len(piece) <= CACHE_MAX_PIECE:
            self[piece] = ids
        return ids


def _check_merges(merges: list, ranks: dict[bytes, int]) -> None:
    """Merge k must join two existing tokens into token 256 + k (as `train` writes them)."""
    decoded = {rank: token for token, rank in ranks.items()}
    for k, merge in enumerate(merges):
        ok = isinstance(merge, list) and len(merge) == 2 and all(map(is_token_id, merge))
        created = decoded.get(256 + k)
        if not ok or created is None or merge[0] not in decoded or merge[1] not in decoded:
            raise ByollmError(
                f"'merges' entry {k} ({short_repr(merge)}) is not a pair of vocabulary ids "
                f"creating id {256 + k}"
            )
        if decoded[merge[0]] + decoded[merge[1]] != created:
            raise ByollmError(
                f"'merges' entry {k} {merge} does not join into vocab entry {256 + k}"
            )


class BPETokenizer(Tokenizer):
    type_name = "bpe"

    def __init__(
        self,
        ranks: dict[bytes, int],
        *,
        pattern: str = "gpt4",
        special_tokens: dict[str, int] | None = None,
        merges: Sequence[tuple[int, int]] | None = None,
        name: str | None = None,
    ):
        super().__init__(special_tokens)
        self.ranks = ranks
        self.pattern = resolve_pattern(pattern)
        self.merges = [tuple(m) for m in merges] if merges is not None else None
        self.name = name or f"bpe-{pattern_name(self.pattern) or 'custom'}"
        missing = [b for b in range(256) if bytes([b]) not in ranks]
        if missing:
            raise ByollmError(f"BPE vocabulary lacks single-byte tokens for bytes {missing[:8]}...")
        size = max(ranks.values()) + 1
        self._decoder: list[bytes | None] = [None] * size
        for token, rank in ranks.items():
            if self._decoder[rank] is not None:
                raise ByollmError(f"BPE vocabulary gives id {rank} to two tokens")
            self._decoder[rank] = token
        for text, token_id in self.special_tokens.items():
            if token_id < size and self._decoder[token_id] is not None:
                raise ByollmError(f"special token {text!r} id {token_id} collides with a BPE token")
        self._vocab_size = max([size, *(i + 1 for i in self.special_tokens.values())])
        self._split = make_splitter(self.pattern) if self.pattern else None
        self._cache = _PieceCache(self._encode_piece)
        self._packed_caches: dict[np.dtype, _PieceCache] = {}  # dtype -> piece -> ids' bytes
        self._long_pieces = None  # a LongPieceEncoder, built for the first huge piece

    # ---- training ---------------------------------------------------------------------------
    @classmethod
    def train(
        cls,
        text_or_files: str | Path | Iterable[Path],
        vocab_size: int,
        *,
        pattern: str = "gpt4",
        special_tokens: Iterable[str] = (ENDOFTEXT,),
        progress: bool = True,
        workers: int | None = None,
    ) -> BPETokenizer:
        """Learn `vocab_size - 256 - len(special_tokens)` merges from text (a str) or files
        (a Path or a list of Paths, streamed). See `training.py` for the algorithm."""
        from byollm.tokenizer.training import count_pieces, learn_merges

        pattern = resolve_pattern(pattern)
        specials = list(dict.fromkeys(special_tokens))
        n_merges = vocab_size - 256 - len(specials)
        if n_merges < 0:
            raise ByollmError(
                f"vocab_size {vocab_size} is too small: byte-level BPE needs 256 byte tokens "
                f"+ {len(specials)} special token(s) = at least {256 + len(specials)}"
            )
        counts = count_pieces(text_or_files, pattern, specials, workers=workers, progress=progress)
        if not counts:
            raise ByollmError("cannot train a tokenizer on an empty corpus")
        merges = learn_merges(counts, n_merges, progress=progress)
        vocab = [bytes([b]) for b in range(256)]
        for left, right in merges:
            vocab.append(vocab[left] + vocab[right])
        ranks = {token: i for i, token in enumerate(vocab)}
        assert len(ranks) == len(vocab), "BPE training produced a duplicate token (bug)"
        special_ids = {s: len(vocab) + i for i, s in enumerate(specials)}
        return cls(ranks, pattern=pattern, special_tokens=special_ids, merges=merges)

    # ---- encoding ---------------------------------------------------------------------------
    def _encode_piece(self, piece: str) -> Sequence[int]:
        data = piece.encode("utf-8", errors="surrogatepass")
        rank = self.ranks.get(data)
        if rank is not None:
            return (rank,)
        if len(data) > HUGE_PIECE:
            if self._long_pieces is None:
                from byollm.tokenizer.long_pieces import LongPieceEncoder

                self._long_pieces = LongPieceEncoder(self.ranks)
            return self._long_pieces.encode(data)
        ranks = self.ranks
        return tuple(ranks[part] for part in byte_pair_merge(data, ranks))

    def _encode_ordinary(self, text: str) -> list[int]:
        if self._split is None:
            return list(self._encode_piece(text)) if text else []
        if len(self._cache) > CACHE_MAX_ENTRIES:
            self._cache.clear()
        return list(chain.from_iterable(map(self._cache.__getitem__, self._split(text))))

    def encode_ordinary_packed(self, text: str, dtype: np.dtype) -> bytes:
        if self._split is None:
            return super().encode_ordinary_packed(text, dtype)
        dtype = np.dtype(dtype)
        cache = self._packed_caches.get(dtype)
        if cache is None or len(cache) > CACHE_MAX_ENTRIES:

            def packed_piece(piece: str) -> bytes:
                return np.asarray(self._encode_piece(piece), dtype=dtype).tobytes()

            cache = self._packed_caches[dtype] = _PieceCache(packed_piece)
        return b"".join(map(cache.__getitem__, self._split(text)))

    # ---- decoding, identity, files -------------------------------------------------------
    def _token_bytes(self, token_id: int) -> bytes | None:
        if 0 <= token_id < len(self._decoder):
            return self._decoder[token_id]
        return None

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        ids = as_token_ids(ids)
        if ids and min(ids) >= 0:
            try:  # fast path: all ids ordinary and known
                decoder = self._decoder
                return b"".join([decoder[i] for i in ids])  # type: ignore[misc]
            except (TypeError, IndexError):  # a special token, a gap or an unknown id
                pass
        return super().decode_bytes(ids)

    @property
    def vocab_size(self) -> int:
        return self._vocab_size

    def _payload(self) -> dict:
        return {
            "pattern": self.pattern,
            "pattern_name": pattern_name(self.pattern),
            "vocab": [
                None if token is None else base64.b64encode(token).decode("ascii")
                for token in self._decoder
            ],
            "merges": None if self.merges is None else [list(m) for m in self.merges],
        }

    @classmethod
    def from_payload(cls, data: dict) -> BPETokenizer:
        vocab = payload_field(
            data, "vocab", list, "a list of base64 tokens (or null) indexed by id"
        )
        if len(vocab) > MAX_TOKEN_ID:
            raise ByollmError(f"'vocab' has {len(vocab)} entries; at most {MAX_TOKEN_ID}")
        ranks = {}
        for token_id, token in enumerate(vocab):
            if token is None:
                continue
            try:
                token_bytes = base64.b64decode(token, validate=True)
            except (ValueError, TypeError):
                raise ByollmError(
                    f"vocab entry {token_id} ({short_repr(token)}) is not base64"
                ) from None
            if not token_bytes:
                raise ByollmError(f"vocab entry {token_id} is empty; a token has at least 1 byte")
            ranks[token_bytes] = token_id
        if len(ranks) != sum(t is not None for t in vocab):
            raise ByollmError("'vocab' holds the same token twice")
        pattern = payload_field(data, "pattern", str, "a split pattern name or regex")
        merges = payload_field(
            data,
            "merges",
            (list, type(None)),
            "a list of [left id, right id] pairs, or null",
            default=None,
        )
        if merges is not None:
            _check_merges(merges, ranks)
        specials = check_special_tokens(data.get("special_tokens", {}), "bpe tokenizer")
        return cls(ranks, pattern=pattern, special_tokens=specials, merges=merges)

    def __getstate__(self):  # for worker processes started with spawn
        state = self.__dict__.copy()
        state["_cache"] = None
        state["_packed_caches"] = {}
        state["_split"] = None
        state["_long_pieces"] = None
        return state

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._split = make_splitter(self.pattern) if self.pattern else None
        self._cache = _PieceCache(self._encode_piece)
