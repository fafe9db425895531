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
