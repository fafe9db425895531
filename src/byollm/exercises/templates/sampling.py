"""Exercise: from logits to the next token (statement: `byollm exercise show sampling`).

Fill in each function, top to bottom, then run `byollm exercise check sampling`. Every
function takes logits of shape (B, V), one row per sequence, and must not change its input.
The checker compares your answers with byollm's processors (`byollm.generate.processors`).
"""

from __future__ import annotations

import torch


def apply_temperature(logits: torch.Tensor, temperature: float) -> torch.Tensor:
    """Step 1. Divide the logits by `temperature` (> 0): below 1 sharpens, above 1 flattens."""
    raise NotImplementedError


def top_k_filter(logits: torch.Tensor, k: int) -> torch.Tensor:
    """Step 2. Keep the k largest logits of each row (and any equal to the k-th); set the
    others to -inf. With k >= V, return the logits unchanged.

    >>> top_k_filter(torch.tensor([[1.0, 3.0, 3.0, 0.0]]), 1)
    tensor([[-inf, 3., 3., -inf]])
    """
    raise NotImplementedError


def top_p_filter(logits: torch.Tensor, p: float) -> torch.Tensor:
    """Step 3. Nucleus filtering: keep the smallest set of most likely tokens whose
    probabilities sum to at least p (and any token as likely as the last one kept); set the
    others to -inf. p >= 1 keeps everything; the most likely token is always kept.

    With probabilities [0.5, 0.3, 0.2] and p = 0.7 the first two survive (0.8 >= 0.7).
    """
    raise NotImplementedError


def next_token_probs(
    logits: torch.Tensor, *, temperature: float = 1.0, top_k: int | None = None, top_p: float = 1.0
) -> torch.Tensor:
    """Step 4. The distribution to draw from: temperature, then top-k (if given), then top-p,
    then softmax. Returns probabilities (B, V), each row summing to 1."""
    raise NotImplementedError


def sample_next(
    logits: torch.Tensor,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float = 1.0,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Step 5. One token id per row, shape (B,). temperature == 0 means greedy (argmax);
    otherwise draw from `next_token_probs` with
    torch.multinomial(probs, num_samples=1, generator=generator)."""
    raise NotImplementedError
