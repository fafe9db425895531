"""Learning-rate schedules: a multiplier in [0, 1] for the peak learning rate at each step.

Design choices:
- A schedule is a pure function of the step, so resuming at step 1234 gives exactly the
  learning rate an uninterrupted run would have had (no scheduler object with hidden state).
- Every schedule starts with a linear warmup: the first updates of Adam are noisy (its second
  moment estimate is still tiny), and small steps let it settle.
- `cosine` (GPT-2, nanoGPT) decays smoothly to `min_lr_ratio` of the peak over the whole run.
- `wsd`, warmup-stable-decay (MiniCPM, modded-nanogpt), holds the peak for most of the run and
  decays linearly over the last `decay_fraction` of the steps. It reaches a lower loss than cosine
  in the same number of steps on small models, and the loss drops sharply during the decay.
- `constant` is for experiments.

    >>> round(lr_multiplier(0, total_steps=100, warmup_steps=10), 3)
    0.1
    >>> lr_multiplier(50, total_steps=100, warmup_steps=10, schedule="wsd")
    1.0
    >>> round(lr_multiplier(99, total_steps=100, warmup_steps=10, schedule="wsd", min_lr_ratio=0.0), 3)
    0.05
"""

from __future__ import annotations

import math

from byollm.errors import ByollmError

SCHEDULES = ("cosine", "wsd", "constant")


def lr_multiplier(
    step: int,
    *,
    total_steps: int,
    warmup_steps: int,
    schedule: str = "cosine",
    min_lr_ratio: float = 0.1,
    decay_fraction: float = 0.2,
) -> float:
    """How much of the peak learning rate to use at optimizer step `step` (0-based)."""
    if schedule not in SCHEDULES:
        raise ByollmError(f"unknown schedule {schedule!r}; choose one of {', '.join(SCHEDULES)}")
    if step < warmup_steps:
        return (step + 1) / warmup_steps  # never exactly 0: step 0 already learns a little
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        span = max(1, total_steps - warmup_steps)
        progress = min(1.0, (step - warmup_steps) / span)
        cosine = 0.5 * (1.0 + math.cos(math.pi * progress))  # 1 -> 0
        return min_lr_ratio + (1.0 - min_lr_ratio) * cosine
    # wsd: stable at 1.0, then a linear ramp down to min_lr_ratio over the last steps
    decay_steps = max(1, round(decay_fraction * total_steps))
    decay_start = max(warmup_steps, total_steps - decay_steps)
    if step < decay_start:
        return 1.0
    progress = min(1.0, (step - decay_start) / max(1, total_steps - decay_start))
    return 1.0 - (1.0 - min_lr_ratio) * progress
