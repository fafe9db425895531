"""What trains, and the fine-tuning loop shared by the classifier and instruction tuning.

    >>> choose_trainable(model, "last:2", head=classifier_head)   # blocks 2 from the end, ln_f, head  # doctest: +SKIP
    >>> history = fit(model, loss_of, batches, epochs=3, lr=5e-5, evaluate=val_accuracy)  # doctest: +SKIP

Design choices:
- **What trains is one word**: `head` (the new head only), `last:N` (the last N blocks, the final
  norm and the head: the book's best, N = 1 or 2), `all`, or `lora` (low-rank adapters beside
  frozen matrices, see lora.py; the new head trains in full). Frozen parameters get no gradient
  and no optimizer state, so the smaller choices also save memory.
- **A plain loop**: AdamW (the book's lr 5e-5, weight decay 0.1), the gradient norm clipped at
  1.0, one pass per epoch over freshly shuffled batches (the shuffle is a function of seed and
  epoch), evaluation after each epoch. The loop reports examples and tokens per second and the
  process's peak resident memory, so the benchmark can set it beside a bare PyTorch loop.
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable, Iterable

import torch
from torch import nn

from byollm.config import check_number, check_seed
from byollm.errors import ByollmError
from byollm.finetune.lora import LoRAConfig, apply_lora, count_parameters
from byollm.train.config import MAX_LR

TRAINABLE_CHOICES = "head, last:N (e.g. last:1), all or lora"
MAX_EPOCHS = 100_000  # fine-tuning sets are small; more passes than this is a typo
MAX_BATCH_SIZE = 2**16  # examples per step
SCHEDULES = ("constant", "linear")  # the learning rate over the run (`fit`'s decay_steps)


def check_settings(*, epochs, batch_size, lr, weight_decay, seed, schedule="constant") -> None:
    """The settings every fine-tuning run shares, checked before any data or model is loaded;
    a ByollmError naming the setting, its value and the range otherwise."""
    check_number("epochs", epochs, 1, MAX_EPOCHS, integer=True)
    check_number("batch_size", batch_size, 1, MAX_BATCH_SIZE, integer=True)
    check_number("lr", lr, 0, MAX_LR, low_open=True)
    # AdamW's decoupled decay multiplies the weights by 1 - lr * weight_decay every step
    check_number(
        "weight_decay",
        weight_decay,
        0,
        1 / lr,
        high_open=True,
        hint="lr * weight_decay must stay below 1, or the decay wipes the weights",
    )
    check_seed("seed", seed)
    if schedule not in SCHEDULES:
        raise ByollmError(
            f"schedule {schedule!r}: choose constant (the book's) or linear (decay to zero)"
        )


def total_steps(schedule: str, epochs: int, examples: int, batch_size: int) -> int | None:
    """The optimizer steps a linear schedule decays over (None: a constant learning rate)."""
    return epochs * -(-examples // batch_size) if schedule == "linear" else None


def parse_trainable(text: str) -> tuple[str, int]:
    """'head' -> ('head', 0); 'last:2' -> ('last', 2); 'last' means last:1."""
    kind, _, count = text.partition(":")
    if kind == "last":
        try:
            n = int(count or 1)
        except ValueError:
            n = 0
        if n < 1:
            raise ByollmError(f"--train {text!r}: the number of blocks must be >= 1, e.g. last:2")
        return kind, n
    if kind in ("head", "all", "lora") and not count:
        return kind, 0
    raise ByollmError(f"--train {text!r}: choose {TRAINABLE_CHOICES}")


def choose_trainable(
    gpt: nn.Module,
    trainable: str,
    *,
    head: nn.Module | None = None,
    lora: LoRAConfig | None = None,
    root: nn.Module | None = None,
) -> dict:
    """Freeze and unfreeze `gpt` (and `head`) for `trainable`; returns what trains, counted.

    `head` is the part that always trains (a classifier's new head; for instruction tuning the
    language-model head). `root` is the module LoRA wraps (default `gpt`), so that the adapter's
    names match the model that is saved.
    """
    kind, n_blocks = parse_trainable(trainable)
    blocks = gpt.transformer.h
    if kind == "last" and n_blocks > len(blocks):
        raise ByollmError(f"--train last:{n_blocks}: the model has only {len(blocks)} blocks")
    wrapped = []
    if kind == "lora":
        wrapped = apply_lora(root or gpt, lora or LoRAConfig())
    else:
        for p in gpt.parameters():
            p.requires_grad_(kind == "all")
        if kind == "last":
            for module in [*blocks[-n_blocks:], gpt.transformer.ln_f]:
                for p in module.parameters():
                    p.requires_grad_(True)
    if head is not None:
        for p in head.parameters():
            p.requires_grad_(True)
    trainable_params, total = count_parameters(root or gpt)
    if head is not None and root is None:
        head_trainable, head_total = count_parameters(head)
        trainable_params, total = trainable_params + head_trainable, total + head_total
    return {"trainable": trainable_params, "total": total, "lora_modules": len(wrapped)}


def fit(
    model: nn.Module,
    loss_of: Callable[[nn.Module, tuple], tuple[torch.Tensor, int]],
    batches: Callable[[int], Iterable[tuple]],
    *,
    epochs: int,
    lr: float,
    weight_decay: float = 0.1,
    decay_steps: int | None = None,
    evaluate: Callable[[], dict] | None = None,
    log=print,
) -> dict:
    """Train the parameters of `model` that require grad; returns the history and timings.

    `batches(epoch)` yields the batches of one epoch; `loss_of(model, batch)` returns the mean
    loss of a batch and the number of tokens it processed. The learning rate is `lr` throughout
    (the book's choice), or with `decay_steps` (the run's total optimizer steps) it falls
    linearly to zero (Hugging Face Trainer's default): the last epochs take ever smaller steps,
    so the model the run ends with depends less on its last few batches.
    """
    if epochs < 1:
        raise ByollmError(f"epochs must be >= 1, got {epochs}")
    if lr <= 0:
        raise ByollmError(f"lr must be positive, got {lr}")
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ByollmError("nothing to train: every parameter is frozen")
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
    history = []
    train_seconds, examples, tokens, step = 0.0, 0, 0, 0
    for epoch in range(epochs):
        model.train()
        started = time.perf_counter()
        total, count = 0.0, 0
        for batch in batches(epoch):
            if decay_steps:
                for group in optimizer.param_groups:
                    group["lr"] = lr * max(0.0, 1 - step / decay_steps)
            step += 1
            loss, n_tokens = loss_of(model, batch)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
            total += loss.item()
            count += 1
            examples += len(batch[0])
            tokens += n_tokens
        train_seconds += time.perf_counter() - started
        record = {"epoch": epoch + 1, "train_loss": total / max(1, count)}
        if decay_steps:
            record["lr"] = optimizer.param_groups[0]["lr"]  # the epoch's last step's
        if evaluate is not None:
            model.eval()
            with torch.no_grad():
                record.update(evaluate())
        history.append(record)
        log(
            "epoch "
            + ", ".join(
                f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in record.items()
            )
        )
    model.eval()
    return {
        "history": history,
        "train_seconds": train_seconds,
        "examples_per_s": examples / max(train_seconds, 1e-9),
        "tokens_per_s": tokens / max(train_seconds, 1e-9),
        "peak_memory_mb": peak_memory_mb(),
    }


def peak_memory_mb() -> float:
    """The process's peak resident memory so far, in MiB (kilobytes on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1 << 20) if sys.platform == "darwin" else peak / 1024
