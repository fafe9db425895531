"""What generation and evaluation ask of a model: its window, its device, its logits.

Sampling, beam search, speculative decoding and perplexity drive any causal LM, not only
`byollm.model.GPT`: anything callable as `model(idx)` (or `model(idx, kv_cache=cache)`) that
returns logits `(B, T, V)`, or a `(logits, loss)` tuple as GPT does. These three helpers are the
whole of that interface, in one place, so every caller reads the model the same way.
"""

from __future__ import annotations

import torch

from byollm.model.gpt import GPT


def model_block_size(model) -> int | None:
    """The model's context window, or None for a model without one (e.g. a toy bigram)."""
    config = getattr(model, "config", None)
    return getattr(config, "block_size", None)


def model_device(model) -> torch.device:
    """Where the model's weights live (the CPU for a model without parameters)."""
    try:
        return next(model.parameters()).device
    except (AttributeError, StopIteration):
        return torch.device("cpu")


def forward_logits(model, idx: torch.Tensor, kv_cache=None, *, last_only=False) -> torch.Tensor:
    """The logits `(B, T, V)` of `model` on `idx` (`T` = 1 when `last_only`, for a GPT).

    `last_only` lets our GPT skip the output head for every position but the last; another
    model computes them all.
    """
    kwargs = {} if kv_cache is None else {"kv_cache": kv_cache}
    if last_only and isinstance(model, GPT):
        kwargs["last_only"] = True
    out = model(idx, **kwargs)
    return out[0] if isinstance(out, tuple) else out


def next_token_logits(model, idx: torch.Tensor, kv_cache=None) -> torch.Tensor:
    """Logits for the position after the last one of `idx`: (B, T) -> (B, V) float."""
    return forward_logits(model, idx, kv_cache, last_only=True)[:, -1, :].float()
