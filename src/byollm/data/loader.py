"""Batches of token windows from prepared data, the same on 1 process or N.

Design choices:
- The token files are numpy memmaps (`tokens.open_tokens`): the operating system pages in only
  the windows we read, so a corpus larger than RAM trains fine. A split in several shards comes
  as a `tokens.ShardedTokens`, which reads a window across two shards as one: the loader takes
  anything with `len()` and slices.
- A batch is a set of random windows (as in nanoGPT): inputs `x = tokens[i : i+T]` and targets
  `y = tokens[i+1 : i+T+1]`, the same text shifted by one token.
- **The windows of optimizer step `s` are a pure function of `(seed, s)`.** Resuming at step `s`
  therefore needs no saved iterator state: the data position *is* the step. And the windows of one
  step are drawn as one global batch, then cut into slices for each micro-step and each process,
  so 2 processes with batch 8 see exactly the rows 1 process with batch 16 sees.
- Evaluation uses a fixed set of windows (its own seed), so successive evaluations are comparable.

    >>> import numpy as np
    >>> tokens = np.arange(100, dtype=np.uint16)
    >>> loader = BatchLoader(tokens, block_size=4, batch_size=2, seed=0)
    >>> x, y = loader.batch(step=0)
    >>> x.shape, bool((y[:, :-1] == x[:, 1:]).all())
    (torch.Size([2, 4]), True)
"""

from __future__ import annotations

import numpy as np
import torch

from byollm.errors import ByollmError

__all__ = ["BatchLoader"]


class BatchLoader:
    """Random windows of `block_size + 1` tokens, deterministic per (seed, step).

    `batch_size` is the number of rows one process computes per micro-step; one optimizer step
    draws `batch_size * grad_accum * world_size` rows.
    """

    def __init__(
        self,
        tokens: np.ndarray,
        *,
        block_size: int,
        batch_size: int,
        seed: int,
        grad_accum: int = 1,
        rank: int = 0,
        world_size: int = 1,
        device: torch.device | str = "cpu",
        name: str = "train",
    ):
        if len(tokens) < block_size + 2:
            raise ByollmError(
                f"the {name} split has {len(tokens)} tokens, too few for one window of "
                f"block_size={block_size} (+1 target); use a smaller block_size or more data"
            )
        self.tokens = tokens
        self.block_size = block_size
        self.batch_size = batch_size
        self.seed = seed
        self.grad_accum = grad_accum
        self.rank = rank
        self.world_size = world_size
        self.device = torch.device(device)

    @property
    def rows_per_step(self) -> int:
        return self.batch_size * self.grad_accum * self.world_size

    def offsets(self, step: int) -> torch.Tensor:
        """Start positions of all windows of optimizer step `step`, for all processes."""
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + step)
        high = len(self.tokens) - self.block_size - 1
        return torch.randint(high, (self.rows_per_step,), generator=generator)

    def batch(self, step: int, micro_step: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """(x, y) for this process at `micro_step` of optimizer step `step`."""
        start = (micro_step * self.world_size + self.rank) * self.batch_size
        return self.windows(self.offsets(step)[start : start + self.batch_size])

    def windows(self, offsets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Inputs and targets for windows starting at `offsets`."""
        rows = np.stack([self.tokens[i : i + self.block_size + 1] for i in offsets.tolist()])
        rows = torch.from_numpy(rows.astype(np.int64))
        if self.device.type == "cuda":  # async copy from pinned memory overlaps with compute
            rows = rows.pin_memory().to(self.device, non_blocking=True)
        else:
            rows = rows.to(self.device)
        return rows[:, :-1], rows[:, 1:]

    def eval_batches(
        self, n_rows: int, seed: int = 1234
    ) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """A fixed set of `n_rows` windows, this process's share, in batches of `batch_size`."""
        generator = torch.Generator().manual_seed(seed)
        high = len(self.tokens) - self.block_size - 1
        offsets = torch.randint(high, (n_rows,), generator=generator)[self.rank :: self.world_size]
        return [
            self.windows(offsets[i : i + self.batch_size])
            for i in range(0, len(offsets), self.batch_size)
        ]
