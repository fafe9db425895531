"""Solution: LoRA from scratch (appendix E of the book).

Check it: byollm exercise check lora --file exercises/solutions/lora.py
"""

from __future__ import annotations

import fnmatch
import math

import torch
from torch import nn


class LoRALinear(nn.Module):
    def __init__(self, base, rank, alpha):
        super().__init__()
        self.base = base
        for p in base.parameters():
            p.requires_grad_(False)
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
        self.scaling = alpha / rank

    def forward(self, x):
        return self.base(x) + (x @ self.lora_A.T @ self.lora_B.T) * self.scaling

    @torch.no_grad()
    def merged(self):
        self.base.weight += self.scaling * (self.lora_B @ self.lora_A)
        return self.base


def _replace(model, name, new):
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name), child, new)


def apply_lora(model, rank, alpha, targets):
    for p in model.parameters():
        p.requires_grad_(False)
    names = [
        name
        for name, m in model.named_modules()
        if isinstance(m, nn.Linear) and any(fnmatch.fnmatchcase(name, t) for t in targets)
    ]
    for name in names:
        _replace(model, name, LoRALinear(model.get_submodule(name), rank, alpha))
    return names


def count_parameters(model):
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def merge_lora(model):
    for name, m in list(model.named_modules()):
        if isinstance(m, LoRALinear):
            _replace(model, name, m.merged())
    return model


def adapter_state(model):
    return {
        name: p.detach()
        for name, p in model.named_parameters()
        if name.endswith((".lora_A", ".lora_B"))
    }
