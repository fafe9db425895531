"""Solution: the pieces of one training step (chapter 5 and appendix D of the book).

Check it: byollm exercise check training --file exercises/solutions/training.py
"""

from __future__ import annotations

import math

import torch


def cross_entropy(logits, targets):
    log_probs = torch.log_softmax(logits.float(), dim=-1)  # (B, T, V)
    keep = targets != -1
    picked = log_probs[keep].gather(-1, targets[keep].unsqueeze(-1))  # (N, 1)
    return -picked.mean()


def lr_at(step, *, peak_lr, total_steps, warmup_steps, min_lr):
    if step < warmup_steps:
        return peak_lr * (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_lr + (peak_lr - min_lr) * 0.5 * (1 + math.cos(math.pi * progress))


def decay_groups(model, weight_decay):
    params = [p for p in model.parameters() if p.requires_grad]
    return [
        {"params": [p for p in params if p.dim() >= 2], "weight_decay": weight_decay},
        {"params": [p for p in params if p.dim() < 2], "weight_decay": 0.0},
    ]


def clip_grad_norm(parameters, max_norm):
    grads = [p.grad for p in parameters if p.grad is not None]
    total = torch.sqrt(sum((g.float() ** 2).sum() for g in grads)).item()
    scale = max_norm / (total + 1e-6)
    if scale < 1:
        for g in grads:
            g.mul_(scale)
    return total


@torch.no_grad()
def adamw_update(param, grad, state, *, lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01):
    beta1, beta2 = betas
    if not state:
        state.update(step=0, m=torch.zeros_like(param), v=torch.zeros_like(param))
    state["step"] += 1
    param.mul_(1 - lr * weight_decay)  # decoupled weight decay: the "W" in AdamW
    state["m"].mul_(beta1).add_(grad, alpha=1 - beta1)
    state["v"].mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    m_hat = state["m"] / (1 - beta1 ** state["step"])
    v_hat = state["v"] / (1 - beta2 ** state["step"])
    param.sub_(lr * m_hat / (v_hat.sqrt() + eps))


def train_step(model, optimizer, x, y, *, lr, grad_clip):
    for group in optimizer.param_groups:
        group["lr"] = lr
    _, loss = model(x, y)
    loss.backward()
    clip_grad_norm(list(model.parameters()), grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.item()
