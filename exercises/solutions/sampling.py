"""Solution: from logits to the next token (section 5.3 of the book).

Check it: byollm exercise check sampling --file exercises/solutions/sampling.py
"""

from __future__ import annotations

import torch


def apply_temperature(logits, temperature):
    return logits / temperature


def top_k_filter(logits, k):
    if k >= logits.size(-1):
        return logits
    kth = torch.topk(logits, k, dim=-1).values[..., -1:]  # the k-th largest of each row
    return logits.masked_fill(logits < kth, float("-inf"))


def top_p_filter(logits, p):
    if p >= 1.0:
        return logits
    probs = torch.softmax(logits, dim=-1)
    sorted_probs = torch.sort(probs, dim=-1, descending=True).values
    mass_before = torch.cumsum(sorted_probs, dim=-1) - sorted_probs
    n_needed = (mass_before < p).sum(dim=-1, keepdim=True).clamp(min=1)
    threshold = sorted_probs.gather(-1, n_needed - 1)  # probability of the last token needed
    return logits.masked_fill(probs < threshold, float("-inf"))


def next_token_probs(logits, *, temperature=1.0, top_k=None, top_p=1.0):
    logits = apply_temperature(logits, temperature)
    if top_k is not None:
        logits = top_k_filter(logits, top_k)
    logits = top_p_filter(logits, top_p)
    return torch.softmax(logits, dim=-1)


def sample_next(logits, *, temperature=1.0, top_k=None, top_p=1.0, generator=None):
    if temperature == 0:
        return logits.argmax(dim=-1)
    probs = next_token_probs(logits, temperature=temperature, top_k=top_k, top_p=top_p)
    return torch.multinomial(probs, num_samples=1, generator=generator).squeeze(-1)
