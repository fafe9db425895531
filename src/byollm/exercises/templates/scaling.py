"""Exercise: scaling laws from a sweep's numbers (statement: `byollm exercise show scaling`).

Fill in each function, top to bottom, then run `byollm exercise check scaling`. Each is compared
with byollm's own (`byollm.scaling.fit`) on the same numbers. Return plain floats.
"""

from __future__ import annotations

import math  # noqa: F401 (exp and log)

import numpy as np  # noqa: F401 (np.polyfit, np.log)


def fit_power_law(x, y) -> tuple[float, float]:
    """Step 1. (coefficient, exponent) of y = coefficient * x^exponent, by least squares on
    log y against log x."""
    raise NotImplementedError


def isoflop_floor(params, losses) -> tuple[float, float] | None:
    """Step 2. (n_opt, loss_opt): the floor of the parabola in x = log10 N through the sizes
    `params` and their `losses` at one budget; None when it has no floor among the sizes."""
    raise NotImplementedError


def parametric_loss(law: dict, n: float, d: float) -> float:
    """Step 3. L(N, D) = E + A / N^alpha + B / D^beta (law: "E", "A", "B", "alpha", "beta")."""
    raise NotImplementedError


def compute_optimal(law: dict, budget: float, k: float = 6.0) -> tuple[float, float]:
    """Step 4. (n_opt, d_opt) minimising parametric_loss under budget = k * N * D."""
    raise NotImplementedError


def bent_frontier(budgets, floor_losses, e: float) -> tuple[float, float]:
    """Step 5. (K, gamma) of L_opt(C) = e + K * C^-gamma through the floors' losses."""
    raise NotImplementedError
