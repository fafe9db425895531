"""Exercise: one training step, piece by piece (statement: `byollm exercise show training`).

Fill in each function, top to bottom, then run `byollm exercise check training`. Keep the
names and signatures: the checker compares your answers with byollm's model loss, schedule
(`lr_multiplier`), parameter groups, and with PyTorch's clipping and AdamW, which the trainer uses.
"""

from __future__ import annotations

import math  # noqa: F401

import torch


def cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Step 1. The mean of -log p(target) over every position whose target is not -1.

    logits (B, T, V), targets (B, T) of ids; returns a scalar tensor. Write it with
    log_softmax and indexing (not F.cross_entropy).
    """
    raise NotImplementedError


def lr_at(step: int, *, peak_lr: float, total_steps: int, warmup_steps: int, min_lr: float):
    """Step 2. The learning rate at optimizer step `step` (0-based): linear warmup, then
    cosine decay from peak_lr to min_lr over the remaining steps, then min_lr.

    Warmup: peak_lr * (step + 1) / warmup_steps, so step 0 already learns a little.
    """
    raise NotImplementedError


def decay_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Step 3. Two optimizer parameter groups: the matrices (2 or more dimensions) with
    `weight_decay`, everything else (biases, norm gains) with 0.0. Trainable parameters only.

    Returns [{"params": [...], "weight_decay": weight_decay}, {"params": [...], "weight_decay": 0.0}].
    """
    raise NotImplementedError


def clip_grad_norm(parameters: list[torch.nn.Parameter], max_norm: float) -> float:
    """Step 4. Scale all gradients together so that their global norm is at most max_norm.

    The global norm is sqrt of the sum of the squares of every gradient entry. Scale (in place)
    by max_norm / (norm + 1e-6) when that is below 1. Return the norm before clipping.
    Parameters without a gradient (p.grad is None) are left out.
    """
    raise NotImplementedError


def adamw_update(
    param: torch.Tensor,
    grad: torch.Tensor,
    state: dict,
    *,
    lr: float,
    betas: tuple[float, float] = (0.9, 0.999),
    eps: float = 1e-8,
    weight_decay: float = 0.01,
) -> None:
    """Step 5. One AdamW update of `param`, in place.

    `state` starts empty; keep in it what you need between calls (the step count, the first
    and second moments m and v). Decoupled weight decay, bias-corrected moments.
    """
    raise NotImplementedError


def train_step(model, optimizer, x, y, *, lr: float, grad_clip: float) -> float:
    """Step 6. One optimizer step: set the learning rate of every parameter group, forward
    (`_, loss = model(x, y)`), backward, clip the gradient norm (your `clip_grad_norm`), step,
    zero the gradients. Return the loss as a Python float.
    """
    raise NotImplementedError
