"""Checks for the training exercise, against byollm's training stage: the loss of
`byollm.model.GPT`, `byollm.train.schedule.lr_multiplier` (cosine), `byollm.train.optim`'s
parameter groups and optimizers, and the step of `Trainer.train_step` (forward, backward,
`clip_grad_norm_`, `optimizer.step`, zero the gradients) without its mixed precision and
gradient accumulation.
"""

from __future__ import annotations

import copy
import math

import torch

from byollm.exercises.checking import Step, StepFailed, expect_close, expect_equal, learner, show
from byollm.model import GPT, GPTConfig
from byollm.train.optim import adamw_param_groups, build_optimizers
from byollm.train.schedule import lr_multiplier


def tiny_gpt(seed: int) -> GPT:
    torch.manual_seed(seed)
    config = GPTConfig(vocab_size=40, block_size=16, n_layer=2, n_head=2, n_embd=16, dropout=0.0)
    return GPT(config)


def batch(seed: int, vocab_size: int = 40, shape=(4, 16)):
    generator = torch.Generator().manual_seed(seed)
    x = torch.randint(0, vocab_size, shape, generator=generator)
    y = torch.randint(0, vocab_size, shape, generator=generator)
    return x, y


def check_cross_entropy(module) -> None:
    cross_entropy = learner(module, "cross_entropy")
    model = tiny_gpt(0)
    x, y = batch(1)
    y[0, :5] = -1  # ignored positions (padding, or a prompt not to be learned)
    with torch.no_grad():
        logits, loss = model(x, y)
    expect_close(
        "cross_entropy(logits, targets) with logits (4, 16, 40), 5 targets = -1",
        cross_entropy(logits, y),
        loss,
        "log_softmax over the vocabulary (last dim); pick each target's log-probability "
        "(gather, or fancy indexing); average minus that over the positions whose target "
        "is not -1",
    )
    uniform = torch.zeros(1, 3, 40)
    targets = torch.tensor([[0, 7, 39]])
    expect_close(
        "cross_entropy(zeros(1, 3, 40), targets) (a uniform guess)",
        cross_entropy(uniform, targets),
        torch.tensor(math.log(40)),
        "a uniform guess over V tokens costs ln V = 3.689 nats",
    )


def check_lr_at(module) -> None:
    lr_at = learner(module, "lr_at")
    for peak, total, warmup, min_lr in ((6e-4, 100, 10, 6e-5), (1e-3, 50, 0, 0.0)):
        for step in range(total + 20):
            got = lr_at(step, peak_lr=peak, total_steps=total, warmup_steps=warmup, min_lr=min_lr)
            expected = peak * lr_multiplier(
                step,
                total_steps=total,
                warmup_steps=warmup,
                schedule="cosine",
                min_lr_ratio=min_lr / peak,
            )
            if not isinstance(got, (int, float)) or not math.isclose(
                got, expected, rel_tol=1e-9, abs_tol=1e-15
            ):
                if step < warmup:
                    hint = "during warmup: peak_lr * (step + 1) / warmup_steps"
                elif step >= total:
                    hint = "after total_steps the rate stays at min_lr"
                else:
                    hint = (
                        "progress = (step - warmup_steps) / (total_steps - warmup_steps); "
                        "min_lr + (peak_lr - min_lr) * 0.5 * (1 + cos(pi * progress))"
                    )
                raise StepFailed(
                    f"lr_at({step}, peak_lr={peak}, total_steps={total}, warmup_steps={warmup}, "
                    f"min_lr={min_lr})\n  expected {expected!r}\n  got      {show(got)}\n"
                    f"hint: {hint}"
                )


def _group_summary(groups, names: dict[int, str]):
    return [
        (sorted(names.get(id(p), "?") for p in group["params"]), group.get("weight_decay"))
        for group in groups
    ]


def check_decay_groups(module) -> None:
    decay_groups = learner(module, "decay_groups")
    model = tiny_gpt(2)
    model.transformer.wpe.weight.requires_grad_(False)  # frozen: no group at all
    names = {id(p): n for n, p in model.named_parameters()}
    got = decay_groups(model, 0.1)
    if not isinstance(got, list) or not all(isinstance(g, dict) for g in got):
        raise StepFailed(f"decay_groups(model, 0.1) returned {show(got)}; expected a list of dicts")
    expect_equal(
        "decay_groups(model, 0.1) as ([parameter names], weight_decay) per group",
        _group_summary(got, names),
        _group_summary(adamw_param_groups(model, 0.1), names),
        "matrices (p.dim() >= 2: linear weights, embeddings) decay; vectors (biases, "
        "LayerNorm gains) do not; leave out parameters with requires_grad False; "
        "the tied head weight is the embedding, listed once",
    )


def _with_gradients(seed: int, scale: float) -> GPT:
    model = tiny_gpt(seed)
    generator = torch.Generator().manual_seed(seed)
    for p in model.parameters():
        p.grad = scale * torch.randn(p.shape, generator=generator)
    return model


def check_clip_grad_norm(module) -> None:
    clip_grad_norm = learner(module, "clip_grad_norm")
    for scale, max_norm in ((1.0, 1.0), (0.001, 1.0), (1.0, 50.0)):
        mine, reference = _with_gradients(3, scale), _with_gradients(3, scale)
        mine.transformer.ln_f.bias.grad = reference.transformer.ln_f.bias.grad = None
        expected = torch.nn.utils.clip_grad_norm_(list(reference.parameters()), max_norm)
        got = clip_grad_norm(list(mine.parameters()), max_norm)
        call = (
            f"clip_grad_norm(parameters, max_norm={max_norm}) with gradients of norm {expected:.4g}"
        )
        got_value = got.item() if isinstance(got, torch.Tensor) else got
        if not isinstance(got_value, (int, float)) or not math.isclose(
            got_value, expected.item(), rel_tol=1e-4
        ):
            raise StepFailed(
                f"{call}: returned {show(got)}, expected the norm before clipping, "
                f"{expected.item():.6g}\nhint: sqrt(sum over all gradients of (g ** 2).sum())"
            )
        for (name, p), q in zip(mine.named_parameters(), reference.parameters()):
            if q.grad is None:
                continue
            expect_close(
                f"{call}: the gradient of {name} afterwards",
                p.grad,
                q.grad,
                "multiply every gradient in place (g.mul_) by max_norm / (norm + 1e-6), "
                "only when that factor is below 1",
                atol=1e-7,
            )


def check_adamw(module) -> None:
    adamw_update = learner(module, "adamw_update")
    settings = [
        dict(lr=1e-2, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.01),
        dict(lr=3e-3, betas=(0.8, 0.95), eps=1e-6, weight_decay=0.1),
    ]
    for hyper in settings:
        torch.manual_seed(4)
        start = torch.randn(5, 3)
        param, reference = start.clone(), start.clone().requires_grad_(True)
        optimizer = torch.optim.AdamW([reference], foreach=False, **hyper)
        state: dict = {}
        for step in range(1, 5):
            grad = torch.randn(5, 3)
            reference.grad = grad.clone()
            optimizer.step()
            adamw_update(param, grad.clone(), state, **hyper)
            args = ", ".join(f"{k}={v}" for k, v in hyper.items())
            expect_close(
                f"the parameter after {step} call(s) of adamw_update(param, grad, state, {args})",
                param,
                reference.detach(),
                "count the steps from 1; p *= 1 - lr * weight_decay first; m = beta1 m + "
                "(1 - beta1) g; v = beta2 v + (1 - beta2) g^2; m_hat = m / (1 - beta1^t), "
                "v_hat = v / (1 - beta2^t); p -= lr * m_hat / (sqrt(v_hat) + eps)",
                atol=1e-6,
            )


def reference_step(model, optimizer, x, y, lr: float, grad_clip: float) -> float:
    """What `Trainer.train_step` does for one micro-batch in float32."""
    for group in optimizer.param_groups:
        group["lr"] = lr
    _, loss = model(x, y)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.item()


def check_train_step(module) -> None:
    train_step = learner(module, "train_step")
    mine = tiny_gpt(5)
    reference = copy.deepcopy(mine)
    options = dict(optimizer="adamw", lr=1e-3, weight_decay=0.1, betas=(0.9, 0.95))
    [my_optimizer] = build_optimizers(mine, **options)
    [reference_optimizer] = build_optimizers(reference, **options)
    for step, lr in enumerate((1e-3, 3e-3, 2e-3), start=1):
        x, y = batch(10 + step)
        expected = reference_step(reference, reference_optimizer, x, y, lr, grad_clip=0.5)
        got = train_step(mine, my_optimizer, x, y, lr=lr, grad_clip=0.5)
        call = f"train_step call {step} (lr={lr}, grad_clip=0.5) on a 2-layer GPT"
        if not isinstance(got, float) or not math.isclose(got, expected, rel_tol=1e-5):
            raise StepFailed(
                f"{call} returned {show(got)}; expected the loss before the update, "
                f"{expected!r}, as a Python float\nhint: return loss.item()"
            )
        leftover = [n for n, p in mine.named_parameters() if p.grad is not None and p.grad.any()]
        if leftover:
            raise StepFailed(
                f"{call}: gradients are left in {leftover[:3]} after the step\nhint: "
                "optimizer.zero_grad(set_to_none=True) after optimizer.step(), or the next "
                "backward() adds to them"
            )
        for (name, p), q in zip(mine.named_parameters(), reference.parameters()):
            expect_close(
                f"{call}: parameter {name} afterwards",
                p,
                q,
                "set group['lr'] = lr in every group of optimizer.param_groups; "
                "backward, then clip (clip_grad_norm), then optimizer.step()",
                atol=1e-6,
            )


STEPS = [
    Step("cross_entropy", check_cross_entropy),
    Step("lr_at", check_lr_at),
    Step("decay_groups", check_decay_groups),
    Step("clip_grad_norm", check_clip_grad_norm),
    Step("adamw_update", check_adamw),
    Step("train_step", check_train_step, needs=("clip_grad_norm",)),
]
