"""A key/value cache for incremental decoding.

Generating token t+1 with a plain forward pass recomputes the keys and values of tokens 0..t,
which never change (attention is causal). The cache keeps them: a "prefill" pass over the prompt
fills positions 0..P-1, then each decode step feeds only the newest token, computes its query, key
and value, appends the key/value, and attends over everything cached so far.

    >>> import torch
    >>> from byollm.model import GPT, GPTConfig
    >>> model = GPT(GPTConfig.from_preset("nanogpt-cpu")).eval()
    >>> prompt, next_token = torch.randint(65, (2, 10)), torch.randint(65, (2, 1))
    >>> cache = model.new_kv_cache(batch_size=2)
    >>> logits, _ = model(prompt, kv_cache=cache)       # prefill, cache.pos == prompt length
    >>> logits, _ = model(next_token, kv_cache=cache)   # decode one step, cache.pos += 1
    >>> cache.pos
    11

Memory: 2 (k and v) x n_layer x batch x n_kv_head x max_seq_len x head_dim numbers, which is
why grouped-query attention (fewer key/value heads) matters for long contexts.

Two kinds:
- `KVCache`: every row of the batch holds the same number of positions (`pos`), as when one
  prompt is sampled several times. The model reads `start`, the position of the new tokens.
- `BatchKVCache`: each row (a *slot*) is an independent sequence with its own length, as in a
  server's decode loop where requests join and leave at any step. The model then gets per-row
  positions (`start` is a (B, 1) tensor) and a padding mask (`mask`) so that a row never attends
  to the unused tail of its slot. The caller says which slots a forward pass `feed`s.
"""

from __future__ import annotations

import torch

from byollm.errors import ByollmError


class KVCache:
    """Pre-allocated keys and values for every layer; `pos` is how many positions are filled."""

    def __init__(
        self,
        n_layer: int,
        batch_size: int,
        n_kv_head: int,
        max_seq_len: int,
        head_dim: int,
        *,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ):
        shape = (n_layer, batch_size, n_kv_head, max_seq_len, head_dim)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.batch_size = batch_size
        self.max_seq_len = max_seq_len
        self.pos = 0

    @property
    def start(self) -> int:
        """Position of the next token fed, the same for every row."""
        return self.pos

    def reset(self) -> None:
        """Forget everything (the buffers are reused; stale values are never read)."""
        self.pos = 0

    def check_room(self, batch_size: int, T: int) -> None:
        """Raise a clear error before a chunk of T tokens would overflow the cache."""
        if batch_size != self.batch_size:
            raise ByollmError(
                f"KV cache was made for batch size {self.batch_size}, got a batch of {batch_size}"
            )
        if self.pos + T > self.max_seq_len:
            raise ByollmError(
                f"KV cache is full: {self.pos} positions cached + {T} new > max_seq_len "
                f"{self.max_seq_len}; reset it or make a larger one"
            )

    def update(
        self, layer_idx: int, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Store this layer's new keys/values (B, Hkv, T, D) at pos..pos+T-1; return all so far."""
        T = k.size(2)
        end = self.pos + T
        self.k[layer_idx, :, :, self.pos : end] = k
        self.v[layer_idx, :, :, self.pos : end] = v
        # .to() is a no-op normally; under autocast the new k/v may be bf16 while the cache is not
        return self.k[layer_idx, :, :, :end].to(k.dtype), self.v[layer_idx, :, :, :end].to(v.dtype)

    def advance(self, T: int) -> None:
        """Called by the model once every layer has stored the chunk."""
        self.pos += T

    def select_rows(self, rows: torch.Tensor) -> KVCache:
        """A new cache holding rows `rows` of this one, in that order (a row may repeat).

        Scoring several continuations of one prompt computes the prompt once, then continues
        each copy: `cache.select_rows(torch.tensor([0, 0, 0, 1, 1]))` gives prompt 0 three
        rows and prompt 1 two.
        """
        selected = KVCache.__new__(KVCache)
        selected.k = self.k.index_select(1, rows)
        selected.v = self.v.index_select(1, rows)
        selected.batch_size = len(rows)
        selected.max_seq_len = self.max_seq_len
        selected.pos = self.pos
        return selected

    def truncate(self, pos: int) -> None:
        """Forget every position from `pos` on (speculative decoding drops rejected guesses)."""
        if not 0 <= pos <= self.pos:
            raise ByollmError(f"cannot truncate a KV cache holding {self.pos} positions to {pos}")
        self.pos = pos


class BatchKVCache:
    """Keys and values for `n_slots` independent sequences of different lengths.

    A forward pass feeds a contiguous range of slots (`feed(first, count, T)`): T new tokens
    per fed row. Row b's tokens sit at positions lengths[b] .. lengths[b]+T-1 and attend to
    the keys at positions <= their own in the same row. Keys are read up to the longest fed
    row; the shorter rows' tails are masked out, so what is stored there never matters.

        >>> cache = BatchKVCache(n_layer=2, n_slots=4, n_kv_head=2, max_seq_len=16, head_dim=8)  # doctest: +SKIP
        >>> cache.feed(first=1, count=1, T=5)          # prefill a 5-token prompt into slot 1  # doctest: +SKIP
        >>> logits, _ = model(prompt, kv_cache=cache)  # cache.lengths == [0, 5, 0, 0]  # doctest: +SKIP
        >>> cache.feed(first=0, count=2, T=1)          # one decode step for slots 0 and 1  # doctest: +SKIP

    `move(src, dst)` copies a slot, so that a server can keep its live sequences in slots
    0..n-1 (one contiguous batch) when one in the middle finishes.
    """

    def __init__(
        self,
        n_layer: int,
        n_slots: int,
        n_kv_head: int,
        max_seq_len: int,
        head_dim: int,
        *,
        device: torch.device | str = "cpu",
        dtype: torch.dtype = torch.float32,
    ):
        shape = (n_layer, n_slots, n_kv_head, max_seq_len, head_dim)
        self.k = torch.zeros(shape, device=device, dtype=dtype)
        self.v = torch.zeros(shape, device=device, dtype=dtype)
        self.n_slots = n_slots
        self.max_seq_len = max_seq_len
        self.lengths = [0] * n_slots  # positions filled in each slot (host side: no GPU syncs)
        self.feed(0, 0, 0)

    def feed(self, first: int, count: int, T: int) -> None:
        """Feed slots first .. first+count-1 in the next forward pass, T new tokens each."""
        if first < 0 or first + count > self.n_slots:
            raise ByollmError(
                f"slots {first}..{first + count - 1} are outside 0..{self.n_slots - 1}"
            )
        self.rows = slice(first, first + count)
        self.T = T
        lengths = self.lengths[self.rows]
        self.pos = max(lengths, default=0)  # the longest fed row (for the window check)
        device = self.k.device
        self.start = torch.tensor(lengths, device=device, dtype=torch.long).view(-1, 1)  # (B, 1)
        self.positions = self.start + torch.arange(T, device=device)  # (B, T)
        # Query t of row b sees key j iff j <= its own position: causal within the row, and
        # blind to the slot's unused tail. (B, 1, T, S), broadcast over the heads.
        keys = torch.arange(self.pos + T, device=device)
        self.mask = keys.view(1, 1, 1, -1) <= self.positions[:, None, :, None]

    def check_room(self, batch_size: int, T: int) -> None:
        """Raise a clear error before a pass that does not match `feed` or would overflow."""
        count = self.rows.stop - self.rows.start
        if (batch_size, T) != (count, self.T):
            raise ByollmError(
                f"BatchKVCache: selected {count} slots x {self.T} tokens, "
                f"got a batch of {batch_size} x {T}; call feed() first"
            )
        if self.pos + T > self.max_seq_len:
            raise ByollmError(
                f"BatchKVCache is full: a slot holds {self.pos} positions + {T} new > "
                f"max_seq_len {self.max_seq_len}"
            )

    def update(
        self, layer_idx: int, k: torch.Tensor, v: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Store this layer's new keys/values (B, Hkv, T, D) at each row's own positions."""
        B, H, T, D = k.shape
        index = self.positions[:, None, :, None].expand(B, H, T, D)
        self.k[layer_idx, self.rows].scatter_(2, index, k.to(self.k.dtype))
        self.v[layer_idx, self.rows].scatter_(2, index, v.to(self.v.dtype))
        end = self.pos + T
        keys = self.k[layer_idx, self.rows, :, :end]
        values = self.v[layer_idx, self.rows, :, :end]
        return keys.to(k.dtype), values.to(v.dtype)

    def advance(self, T: int) -> None:
        """Called by the model once every layer has stored the chunk."""
        for slot in range(self.rows.start, self.rows.stop):
            self.lengths[slot] += T
        self.feed(self.rows.start, self.rows.stop - self.rows.start, self.T)

    def clear(self, slot: int) -> None:
        """Free a slot (its stale keys are never read: a new sequence starts at length 0)."""
        self.lengths[slot] = 0

    def move(self, src: int, dst: int) -> None:
        """Copy slot `src`'s sequence into slot `dst` and free `src`."""
        n = self.lengths[src]
        self.k[:, dst, :, :n] = self.k[:, src, :, :n]
        self.v[:, dst, :, :n] = self.v[:, src, :, :n]
        self.lengths[dst], self.lengths[src] = n, 0
