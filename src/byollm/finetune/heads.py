"""Task heads on a GPT body: the classifier reads the hidden state of each row's last real token.

Why the last real token: with causal attention it is the only position that has seen the whole
text; a pad after it has seen nothing new, so reading a pad would make the prediction depend on
how much padding the batch needed.
"""

from __future__ import annotations

import torch
from torch import nn


class Classifier(nn.Module):
    """A GPT body and a linear head on the hidden state of each row's last real token."""

    def __init__(self, gpt: nn.Module, num_classes: int):
        super().__init__()
        self.gpt = gpt
        weight = gpt.transformer.wte.weight
        self.head = nn.Linear(gpt.config.n_embd, num_classes).to(weight.device, weight.dtype)

    def forward(self, idx: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Class logits (B, classes) for right-padded token ids (B, T) of `lengths` (B,)."""
        hidden = self.gpt.hidden_states(idx)  # (B, T, C)
        last = hidden[torch.arange(idx.size(0), device=idx.device), lengths - 1]  # (B, C)
        return self.head(last).float()
