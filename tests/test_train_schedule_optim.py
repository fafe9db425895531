"""Learning-rate schedules and optimizers (AdamW param groups, Muon)."""

from __future__ import annotations

import math

import pytest
import torch
import train_helpers
from hypothesis import given
from hypothesis import strategies as st

from byollm.errors import ByollmError
from byollm.train.optim import (
    Muon,
    adamw_param_groups,
    build_optimizers,
    hidden_matrices,
    set_lr,
    zeropower_newton_schulz,
)
from byollm.train.schedule import lr_multiplier


def test_warmup_is_linear_and_never_zero():
    values = [lr_multiplier(s, total_steps=100, warmup_steps=10) for s in range(10)]
    assert values[0] == pytest.approx(0.1)
    assert values[-1] == pytest.approx(1.0)
    assert all(b > a for a, b in zip(values, values[1:]))


def test_cosine_decays_to_min_ratio():
    total = 200
    values = [
        lr_multiplier(s, total_steps=total, warmup_steps=20, min_lr_ratio=0.1)
        for s in range(total + 5)
    ]
    assert values[20] == pytest.approx(1.0)
    assert values[total] == pytest.approx(0.1)
    assert values[-1] == pytest.approx(0.1)  # stays at the floor past the end
    assert all(b <= a + 1e-12 for a, b in zip(values[20:], values[21:]))


def test_wsd_holds_then_decays_linearly():
    total, kw = (
        100,
        dict(
            total_steps=100, warmup_steps=10, schedule="wsd", decay_fraction=0.2, min_lr_ratio=0.0
        ),
    )
    values = [lr_multiplier(s, **kw) for s in range(total)]
    assert values[10:80] == [1.0] * 70
    steps = [values[i] - values[i + 1] for i in range(80, 99)]
    assert all(d == pytest.approx(0.05) for d in steps)
    assert values[99] == pytest.approx(0.05)


@given(
    step=st.integers(0, 10_000),
    total=st.integers(1, 5_000),
    warmup=st.integers(0, 500),
    schedule=st.sampled_from(["cosine", "wsd", "constant"]),
    floor=st.floats(0.0, 1.0),
)
def test_schedule_is_a_fraction_of_the_peak(step, total, warmup, schedule, floor):
    value = lr_multiplier(
        step, total_steps=total, warmup_steps=warmup, schedule=schedule, min_lr_ratio=floor
    )
    assert 0.0 <= value <= 1.0
    if step >= warmup:
        assert value >= floor - 1e-9
    assert math.isfinite(value)


def test_unknown_schedule_is_a_clear_error():
    with pytest.raises(ByollmError, match="unknown schedule 'linear'"):
        lr_multiplier(0, total_steps=10, warmup_steps=0, schedule="linear")


class Tiny(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.wte = torch.nn.Embedding(11, 8)
        self.block = torch.nn.Linear(8, 8)
        self.norm = torch.nn.LayerNorm(8)
        self.lm_head = torch.nn.Linear(8, 11, bias=False)

    def forward(self, idx):
        return self.lm_head(self.norm(torch.relu(self.block(self.wte(idx)))))


def test_weight_decay_only_on_matrices():
    model = Tiny()
    decay, no_decay = adamw_param_groups(model, weight_decay=0.1)
    assert {p.dim() for p in decay["params"]} == {2}
    assert {p.dim() for p in no_decay["params"]} == {1}
    assert decay["weight_decay"] == 0.1 and no_decay["weight_decay"] == 0.0
    assert len(decay["params"]) + len(no_decay["params"]) == len(list(model.parameters()))


def test_muon_takes_hidden_matrices_adamw_the_rest():
    model = Tiny()
    assert [id(p) for p in hidden_matrices(model)] == [id(model.block.weight)]
    muon, adamw = build_optimizers(
        model, optimizer="muon", lr=1e-3, weight_decay=0.1, betas=(0.9, 0.99)
    )
    assert isinstance(muon, Muon)
    in_adamw = {id(p) for g in adamw.param_groups for p in g["params"]}
    assert id(model.block.weight) not in in_adamw
    assert len(in_adamw) + 1 == len(list(model.parameters()))
    set_lr([muon, adamw], 0.5)
    assert muon.param_groups[0]["lr"] == pytest.approx(0.01)
    assert adamw.param_groups[0]["lr"] == pytest.approx(5e-4)


def test_newton_schulz_orthogonalizes_tall_and_wide():
    torch.manual_seed(0)
    for shape in [(16, 32), (32, 16), (24, 24)]:
        s = torch.linalg.svdvals(zeropower_newton_schulz(torch.randn(*shape)))
        assert s.min() > 0.5 and s.max() < 1.5, shape


def test_newton_schulz_on_a_stack_equals_one_matrix_at_a_time():
    torch.manual_seed(0)
    for shape in [(3, 16, 32), (3, 32, 16)]:
        stack = torch.randn(*shape)
        one_by_one = torch.stack([zeropower_newton_schulz(m) for m in stack])
        torch.testing.assert_close(zeropower_newton_schulz(stack), one_by_one)


def test_muon_step_follows_its_formula_for_every_matrix():
    """Two matrices of one shape (orthogonalized as a batch) and a tall one (scaled up)."""
    torch.manual_seed(0)
    params = [torch.nn.Parameter(torch.randn(*shape)) for shape in [(8, 16), (8, 16), (32, 8)]]
    before = [p.detach().clone() for p in params]
    grads = [torch.randn_like(p) for p in params]
    for p, g in zip(params, grads):
        p.grad = g.clone()
    lr, momentum, decay = 0.1, 0.9, 0.01
    Muon(params, lr=lr, momentum=momentum, weight_decay=decay).step()
    for p, p0, g in zip(params, before, grads):
        buffer = (1 - momentum) * g  # the first step's momentum, from zero
        nesterov = g + momentum * (buffer - g)
        scale = max(1.0, p.size(0) / p.size(1)) ** 0.5  # 2 for the (32, 8) matrix
        expected = p0 * (1 - lr * decay) - lr * scale * zeropower_newton_schulz(nesterov)
        torch.testing.assert_close(p.detach(), expected)


@pytest.mark.parametrize("name", ["adamw", "muon"])
def test_optimizers_fit_a_toy_problem(name):
    torch.manual_seed(0)
    model = Tiny()
    idx = torch.randint(0, 11, (64,))
    target = (idx * 3 + 1) % 11  # a deterministic mapping to learn
    opts = build_optimizers(model, optimizer=name, lr=1e-2, weight_decay=0.0, betas=(0.9, 0.99))
    first = None
    for _ in range(60):
        loss = torch.nn.functional.cross_entropy(model(idx), target)
        first = first or loss.item()
        loss.backward()
        for opt in opts:
            opt.step()
            opt.zero_grad()
    assert loss.item() < 0.2 * first


def test_unknown_optimizer_is_a_clear_error():
    with pytest.raises(ByollmError, match="unknown optimizer 'sgd'"):
        build_optimizers(Tiny(), optimizer="sgd", lr=1e-3, weight_decay=0.0, betas=(0.9, 0.99))


@pytest.fixture(autouse=True)
def _one_thread():
    with train_helpers.single_thread():
        yield
