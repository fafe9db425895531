"""Task heads on a GPT body: the classifier reads the hidden state of each row's last real token
(or, with `pool="mean"`, the average over its real tokens).

Why the last real token: with causal attention it is the only position that has seen the whole
text; a pad after it has seen nothing new, so reading a pad would make the prediction depend on
how much padding the batch needed.

Why offer the mean: every position then reaches the head directly, so a word that marks the
class ("prize", "txt") counts wherever it stands, without the body first learning to carry it
to the last position. docs/05 §5 measures both.
"""

from __future__ import annotations

import torch
from torch import nn

from byollm.errors import ByollmError

POOLS = ("last", "mean")  # what the head reads: the last real token, or all real tokens averaged


def check_pool(pool, where: str = "pool") -> str:
    """`pool` if it is one of POOLS; a ByollmError naming `where` otherwise."""
    if pool not in POOLS:
        raise ByollmError(f"{where} {pool!r}: choose {' or '.join(POOLS)}")
    return pool


class Classifier(nn.Module):
    """A GPT body and a linear head on each row's last real token (or its real tokens' mean)."""

    def __init__(self, gpt: nn.Module, num_classes: int, pool: str = "last"):
        super().__init__()
        self.gpt = gpt
        self.pool = check_pool(pool)
        weight = gpt.transformer.wte.weight
        self.head = nn.Linear(gpt.config.n_embd, num_classes).to(weight.device, weight.dtype)

    def forward(self, idx: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Class logits (B, classes) for right-padded token ids (B, T) of `lengths` (B,)."""
        hidden = self.gpt.hidden_states(idx)  # (B, T, C)
        if self.pool == "mean":
            real = torch.arange(idx.size(1), device=idx.device) < lengths[:, None]  # (B, T)
            summed = (hidden * real[..., None].to(hidden.dtype)).sum(1)
            features = summed / lengths[:, None].to(hidden.dtype)  # (B, C)
        else:
            features = hidden[torch.arange(idx.size(0), device=idx.device), lengths - 1]
        return self.head(features).float()
