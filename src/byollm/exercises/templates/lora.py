"""Exercise: LoRA from scratch (statement: `byollm exercise show lora`).

Fill in each piece, top to bottom, then run `byollm exercise check lora`. Keep the names the
docstrings give (`base`, `lora_A`, `lora_B`, `scaling`): the checker copies your matrices into
byollm's own `LoRALinear` (`byollm.finetune.lora`) and compares the two on the same input.
"""

from __future__ import annotations

import fnmatch  # noqa: F401 (your apply_lora matches names with it)
import math  # noqa: F401 (your A's initialisation needs it)

import torch
from torch import nn


class LoRALinear(nn.Module):
    def __init__(self, base: nn.Linear, rank: int, alpha: float):
        """Step 1. Keep `base` as self.base and freeze its parameters. Make two trainable
        matrices: self.lora_A (rank x in_features), random, initialised like nn.Linear's weight
        (nn.init.kaiming_uniform_(..., a=math.sqrt(5))), and self.lora_B (out_features x rank),
        all zeros. self.scaling = alpha / rank."""
        super().__init__()
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Step 2. The frozen layer's output plus the low-rank update:
        base(x) + (x @ A^T @ B^T) * scaling."""
        raise NotImplementedError

    @torch.no_grad()
    def merged(self) -> nn.Linear:
        """Step 5. Fold the update into the base weight, W <- W + scaling * (B @ A), and return
        the base layer: it now computes what this layer computed, at no extra cost."""
        raise NotImplementedError


def apply_lora(model: nn.Module, rank: int, alpha: float, targets) -> list[str]:
    """Step 3. Freeze every parameter of `model`, then replace each nn.Linear whose name
    matches one of the shell patterns in `targets` (e.g. "*attn.c_attn") by a LoRALinear
    around it. Return the names of the wrapped layers."""
    raise NotImplementedError


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """Step 4. (trainable, total) numbers of parameters."""
    raise NotImplementedError


def merge_lora(model: nn.Module) -> nn.Module:
    """Step 6. Replace every LoRALinear in `model` by its merged base layer, in place."""
    raise NotImplementedError


def adapter_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """Step 7. What an adapter file holds: the LoRA matrices only, by parameter name
    ("transformer.h.0.attn.c_attn.lora_A", ...)."""
    raise NotImplementedError
