"""The GPT: token ids in, next-token logits out. Read it top to bottom.

    token ids (B, T)
      -> token embedding (+ learned position embedding, unless RoPE)   (B, T, C)
      -> n_layer x Block: x + attn(norm(x)); x + mlp(norm(x))          (B, T, C)
      -> final norm -> linear head                                     (B, T, vocab)

Design choices (all switched by `GPTConfig`, one module for GPT-2 and Llama-style models):
- pre-norm residual blocks (GPT-2): the residual stream is a clean sum, gradients flow straight
  from the loss to the embeddings, and training is stable without warm-up tricks;
- attention through `F.scaled_dot_product_attention` (fused kernels on CPU and GPU), with the
  explicit softmax path kept in `layers.attention_explicit` for reading and testing;
- GPT-2's initialisation: N(0, 0.02) everywhere, and the two projections that write into the
  residual stream scaled by 1/sqrt(2 * n_layer) so its variance does not grow with depth;
- the loss is the mean cross-entropy over all positions with targets != -1 (-1 = ignore);
- a KV cache for decoding (`new_kv_cache`; `new_batch_kv_cache` for a server's batch of
  sequences of different lengths), and nanoGPT's simple `generate` sampler;
- `attention_maps(idx)`, an explicit slower pass that returns every head's attention weights
  (for looking inside; the fast path never materialises them);
- the linear layers are plain `nn.Linear`; the last line of `__init__` lets them take a faster
  CPU path for the few rows of decoding (`byollm/cpu_fast_paths.py`: same products, measured).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from byollm.config import check_temperature, check_top_k
from byollm.cpu_fast_paths import use_few_rows_linear
from byollm.errors import ByollmError
from byollm.model.config import GPTConfig
from byollm.model.kv_cache import BatchKVCache, KVCache
from byollm.model.layers import Block, Rotary, make_norm


class GPT(nn.Module):
    """A decoder-only transformer language model.

    >>> model = GPT(GPTConfig.from_preset("nanogpt-cpu"))
    >>> logits, loss = model(torch.zeros(2, 8, dtype=torch.long), targets=torch.ones(2, 8, dtype=torch.long))
    >>> logits.shape, loss.item() > 0
    (torch.Size([2, 8, 65]), True)
    """

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        self.transformer = nn.ModuleDict({"wte": nn.Embedding(config.vocab_size, config.n_embd)})
        if config.pos == "learned":  # GPT-2: a learned vector per position, added to the token's
            self.transformer["wpe"] = nn.Embedding(config.block_size, config.n_embd)
            self.rotary = None
        else:  # RoPE: positions rotate queries and keys inside attention instead
            self.rotary = Rotary(config.head_dim, config.block_size, config.rope_theta)
        self.transformer["drop"] = nn.Dropout(config.dropout)
        self.transformer["h"] = nn.ModuleList(Block(config, i) for i in range(config.n_layer))
        self.transformer["ln_f"] = make_norm(config)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_embeddings:
            # One matrix both reads tokens in and scores them out (saves vocab x C parameters).
            self.lm_head.weight = self.transformer.wte.weight
        self.apply(self._init_weights)
        use_few_rows_linear(self)  # decoding speed on the CPU only; see cpu_fast_paths.py

    def _init_weights(self, module: nn.Module) -> None:
        """GPT-2 init: N(0, 0.02), zero biases, residual projections N(0, 0.02/sqrt(2L))."""
        std = 0.02
        if isinstance(module, nn.Linear):
            if getattr(module, "is_residual_projection", False):
                std = 0.02 / math.sqrt(2 * self.config.n_layer)  # two residual adds per block
            nn.init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=std)

    def forward(
        self,
        idx: torch.Tensor,
        targets: torch.Tensor | None = None,
        *,
        kv_cache: KVCache | None = None,
        last_only: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Logits (B, T, vocab) for token ids `idx` (B, T); the mean loss if `targets` given.

        With `kv_cache`, the tokens of `idx` sit at positions cache.pos .. cache.pos+T-1, attend
        to everything cached before them, and the cache advances by T. `last_only` returns the
        logits of the last position only, (B, 1, vocab): all that generation needs, and it
        skips the output head (often the largest matrix) for the other T - 1 positions.
        """
        x = self.hidden_states(idx, kv_cache=kv_cache)  # (B, T, C)
        if last_only:
            if targets is not None:
                raise ByollmError("last_only=True gives no loss: the targets need every position")
            x = x[:, -1:, :]
        logits = self.lm_head(x).float()  # (B, T, vocab); float even under bf16 autocast
        loss = None
        if targets is not None:
            loss = F.cross_entropy(
                logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1
            )
        return logits, loss

    def hidden_states(self, idx: torch.Tensor, *, kv_cache: KVCache | None = None) -> torch.Tensor:
        """The residual stream after the final norm, (B, T, C): what the head reads.

        `forward` is this plus the linear head; a classifier reads these vectors with a head of
        its own (`byollm.finetune.classify`).
        """
        B, T = idx.shape
        longest = 0  # positions already cached (in the longest row, for a BatchKVCache)
        if kv_cache is not None:
            kv_cache.check_room(B, T)
            longest = kv_cache.pos
        if longest + T > self.config.block_size:
            raise ByollmError(
                f"sequence of {longest + T} positions is longer than the model's block_size "
                f"{self.config.block_size}"
            )
        x = self.embed(idx, 0 if kv_cache is None else kv_cache.start)
        for block in self.transformer.h:
            x = block(x, self.rotary, kv_cache)
        if kv_cache is not None:
            kv_cache.advance(T)
        x = self.transformer.ln_f(x)
        return x

    def embed(self, idx: torch.Tensor, start: int | torch.Tensor = 0) -> torch.Tensor:
        """Token ids (B, T) -> the residual stream (B, T, C) entering the first block.

        `start` is the position of idx's first token: an int, or (B, 1) when rows differ.
        """
        x = self.transformer.wte(idx)  # (B, T, C)
        if self.rotary is None:  # learned absolute positions are added once, here
            positions = start + torch.arange(idx.size(1), device=idx.device)  # (T,) or (B, T)
            x = x + self.transformer.wpe(positions)
        return self.transformer.drop(x)

    @torch.no_grad()
    def attention_maps(self, idx: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """Logits (B, T, vocab) and every layer's attention weights, each (B, H, T, T).

        weights[layer][b, h, i, j] is how much token i (the query) attends to token j <= i in
        head h. An explicit, slower pass for looking inside; `forward` never computes these.
        """
        x = self.embed(idx)
        maps = []
        for block in self.transformer.h:
            maps.append(block.attn.attention_weights(block.ln_1(x), self.rotary))
            x = block(x, self.rotary)
        logits = self.lm_head(self.transformer.ln_f(x)).float()
        return logits, maps

    def new_kv_cache(self, batch_size: int, max_seq_len: int | None = None) -> KVCache:
        """An empty cache for `batch_size` sequences, on this model's device and dtype."""
        return self._new_cache(KVCache, batch_size, max_seq_len)

    def new_batch_kv_cache(self, n_slots: int, max_seq_len: int | None = None) -> BatchKVCache:
        """An empty cache for `n_slots` sequences of independent lengths (a server's batch)."""
        return self._new_cache(BatchKVCache, n_slots, max_seq_len)

    def _new_cache(self, kind, rows: int, max_seq_len: int | None):
        max_seq_len = self.config.block_size if max_seq_len is None else max_seq_len
        if not 0 < max_seq_len <= self.config.block_size:
            raise ByollmError(
                f"max_seq_len={max_seq_len} must be between 1 and block_size "
                f"{self.config.block_size}"
            )
        weight = self.transformer.wte.weight
        c = self.config
        return kind(
            c.n_layer,
            rows,
            c.kv_heads,
            max_seq_len,
            c.head_dim,
            device=weight.device,
            dtype=weight.dtype,
        )

    @torch.no_grad()
    def generate(
        self,
        idx: torch.Tensor,
        max_new_tokens: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        use_cache: bool = True,
    ) -> torch.Tensor:
        """Append `max_new_tokens` sampled tokens to `idx` (B, T) and return the longer tensor.

        temperature 0 means greedy; top_k keeps only the k most likely tokens (0 or None: all);
        both are checked as `byollm.generate.SamplingConfig` checks them (`byollm.config`'s
        `check_temperature`, `check_top_k`). With the cache, a
        context that outgrows block_size is cropped to the last block_size tokens and
        re-prefilled, exactly what the uncached path computes.
        """
        check_temperature("temperature", temperature)
        top_k = check_top_k("top_k", top_k)
        block = self.config.block_size
        cache = self.new_kv_cache(idx.size(0)) if use_cache else None
        for _ in range(max_new_tokens):
            if cache is None:
                logits, _ = self(idx[:, -block:])
            elif cache.pos == 0 or cache.pos >= block:  # (re)fill the cache with the context
                cache.reset()
                logits, _ = self(idx[:, -block:], kv_cache=cache)
            else:  # the cache holds all but the newest token
                logits, _ = self(idx[:, -1:], kv_cache=cache)
            logits = logits[:, -1, :]
            if temperature == 0:
                next_id = logits.argmax(dim=-1, keepdim=True)
            else:
                logits = logits / temperature
                if top_k is not None:
                    kth = torch.topk(logits, min(top_k, logits.size(-1))).values[:, [-1]]
                    logits = logits.masked_fill(logits < kth, float("-inf"))
                next_id = torch.multinomial(torch.softmax(logits, dim=-1), num_samples=1)
            idx = torch.cat((idx, next_id), dim=1)
        return idx

    def num_params(self, include_embeddings: bool = True) -> int:
        """Parameter count, a tied head counted once.

        Without embeddings: minus the token and position tables (Kaplan et al.'s N). An untied
        head stays in: it is an ordinary matrix multiply.
        """
        n = sum(p.numel() for p in self.parameters())  # parameters() yields shared tensors once
        if not include_embeddings:
            n -= self.transformer.wte.weight.numel()
            if "wpe" in self.transformer:
                n -= self.transformer.wpe.weight.numel()
        return n
