"""CPU speed tricks, kept out of the teaching code: same numbers, measured to be faster.

The model (`byollm.model`) is written with plain `nn.Linear`, and the trainer with plain PyTorch
memory handling, so that each reads as the idea. This module holds the two places where a CPU
needed help, each measured (benchmarks/RESULTS.md), each switched on by one named call:

- `use_few_rows_linear(model)`, called by `GPT.__init__`: decoding multiplies one row per
  sequence (or a few, when speculative decoding checks its guesses) by every weight matrix.
  For a handful of rows MKL streams the weight matrix far faster as W @ x^T than as x @ W^T:
  over GPT-2 124M's 49 matrices on a 2-core AVX2 CPU, 2 rows took 27 ms instead of 60 and
  4 rows 30 ms instead of 71 (1 row ~33 ms either way), which made batch-8 decoding 1.3-1.6x
  faster and checking 4 guessed tokens cost about one plain step. With AVX-512 the crossover
  comes sooner: on a 2-core AVX-512 EPYC (1 thread) the 48 hidden matrices for 8 rows took
  35 ms as x @ W^T and 71 ms as W @ x^T, and a batch-8 GPT-2 decode step 103-124 ms instead of
  134-154 with the W @ x^T path stopped at 5 rows (5 rows: 82-84 ms against 99-105 with
  `F.linear`, so the few-rows path still wins there). Training (hundreds of rows)
  and GPUs take `nn.Linear`'s usual path, so their numbers are `nn.Linear`'s bit for bit.
- `keep_freed_cpu_memory()`, called by the trainer and the task scorer on the CPU: glibc hands
  big freed blocks back to the kernel, so every training step page-faulted its activations
  back in, zeroed page by page: 8,200-10,100 minor faults per step on the default preset,
  100-130 after this call, and ~6-11% of the step (val loss 1.88 reached in 50.9 s instead of
  56.4, 49.9 instead of 53.1). Scoring 6,700 BLiMP pairs on the default model (1 thread):
  3.0M minor faults and ~6 s of kernel time, 25.7-27.8 s instead of 28.7-35.3.

Both change speed only: a test checks the few-rows product against `F.linear`, another counts
the page faults with and without the memory setting.
"""

from __future__ import annotations

import ctypes

import torch
import torch.nn.functional as F
from torch import nn


class FewRowsLinear(nn.Linear):
    """y = x W^T + b, exactly `nn.Linear`, but a few rows on the CPU are computed as W @ x^T.

    Same product up to float rounding; more rows than `few_rows`, or another device, take
    `nn.Linear`'s own path (`F.linear`).
    """

    # the W @ x^T path won up to 16 rows on an AVX2 CPU, up to 5 with AVX-512 (see above)
    few_rows: int = 5 if torch.backends.cpu.get_cpu_capability().startswith("AVX512") else 16

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.numel() // x.size(-1)
        if x.device.type != "cpu" or not 0 < rows <= self.few_rows:
            return F.linear(x, self.weight, self.bias)
        # Both layouts matter: MKL takes the fast path only for a row-major x (seen transposed),
        # and the next layer needs a row-major y again (so .contiguous(), a copy of a few rows).
        # (A version returning y transposed in memory sent the next layer down MKL's slow path:
        # GPT-2's MLP output projection took 22 ms per pass instead of 8.)
        y = torch.mm(self.weight, x.reshape(rows, -1).contiguous().t()).t().contiguous()
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*x.shape[:-1], -1)


def use_few_rows_linear(model: nn.Module) -> nn.Module:
    """Make every plain `nn.Linear` of `model` a `FewRowsLinear`, in place; returns `model`.

    Only the class changes (which `forward` runs): the parameters, their initialisation, tied
    weights and the state-dict keys stay exactly as they were. Subclasses of `nn.Linear` are
    left alone, since their `forward` may do something else.

    >>> use_few_rows_linear(nn.Sequential(nn.Linear(2, 3)))
    Sequential(
      (0): FewRowsLinear(in_features=2, out_features=3, bias=True)
    )
    """
    for module in model.modules():
        if type(module) is nn.Linear:
            module.__class__ = FewRowsLinear
    return model


# glibc's mallopt parameters (malloc.h): M_TRIM_THRESHOLD = -1, M_MMAP_THRESHOLD = -3.
_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3


def keep_freed_cpu_memory(mmap_threshold: int = 32 << 20, trim_threshold: int = 1 << 30) -> bool:
    """Ask glibc's malloc to keep freed blocks for reuse instead of handing them back to the OS.

    Why: a training step allocates and frees the same few-MB activations every step. By default
    glibc serves big blocks with mmap and returns freed memory to the kernel, so the next step
    page-faults it all back in (numbers above). Blocks up to `mmap_threshold` now come from the
    heap, and up to `trim_threshold` of free heap stays with the process. PyTorch's GPU
    allocator caches memory the same way. The cost: the process keeps its peak memory.

    Process-wide. Returns False (and changes nothing) where the C library is not glibc (macOS,
    musl, Windows).
    """
    try:
        libc = ctypes.CDLL(None)  # the C library this process already runs on
    except (OSError, TypeError):  # Windows has no such handle
        return False
    if not hasattr(libc, "gnu_get_libc_version"):  # mallopt's numbers mean this only in glibc
        return False
    return bool(libc.mallopt(_M_MMAP_THRESHOLD, mmap_threshold)) and bool(
        libc.mallopt(_M_TRIM_THRESHOLD, trim_threshold)
    )
