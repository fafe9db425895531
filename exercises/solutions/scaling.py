"""A solution of the scaling exercise (the checker compares it with `byollm.scaling.fit`)."""

from __future__ import annotations

import math

import numpy as np


def fit_power_law(x, y) -> tuple[float, float]:
    """Step 1: a straight line in log-log."""
    exponent, intercept = np.polyfit(np.log(x), np.log(y), 1)
    return math.exp(intercept), float(exponent)


def isoflop_floor(params, losses) -> tuple[float, float] | None:
    """Step 2: the vertex of a parabola in log10 N, if it lies among the sizes."""
    x = np.log10(params)
    c2, c1, c0 = np.polyfit(x, losses, 2)
    if c2 <= 0:
        return None  # opens downwards: no floor
    x_opt = -c1 / (2 * c2)
    if not x.min() <= x_opt <= x.max():
        return None  # the floor lies beyond the sizes trained
    return float(10**x_opt), float(c0 - c1**2 / (4 * c2))


def parametric_loss(law: dict, n: float, d: float) -> float:
    """Step 3."""
    return law["E"] + law["A"] / n ** law["alpha"] + law["B"] / d ** law["beta"]


def compute_optimal(law: dict, budget: float, k: float = 6.0) -> tuple[float, float]:
    """Step 4: Chinchilla's closed form."""
    alpha, beta = law["alpha"], law["beta"]
    g = (alpha * law["A"] / (beta * law["B"])) ** (1 / (alpha + beta))
    n_opt = g * (budget / k) ** (beta / (alpha + beta))
    return n_opt, budget / k / n_opt


def bent_frontier(budgets, floor_losses, e: float) -> tuple[float, float]:
    """Step 5: a power law through the losses above e."""
    k, exponent = fit_power_law(budgets, [loss - e for loss in floor_losses])
    return k, -exponent
