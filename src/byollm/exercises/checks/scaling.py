"""Checks for the scaling exercise, against `byollm.scaling.fit` (`fit_power_law`, `fit_isoflop`,
`parametric_loss`, `compute_optimal`, `frontier_with_floor`).

The inputs are small sets of numbers shaped like a sweep's: sizes of 1e4-1e6 parameters, losses of
1-3 nats, budgets of 1e11-1e13 FLOPs, and a law of the size byollm's CPU sweep fits. Exact laws and
noisy ones both: a sign slip or a log10/ln mix-up shows on either.
"""

from __future__ import annotations

from byollm.exercises.checking import Step, expect_equal, expect_numbers, learner
from byollm.scaling import fit as reference

LAW = {"E": 0.63, "A": 19.8, "B": 425.0, "alpha": 0.33, "beta": 0.49}  # our CPU sweep's, roughly
BUDGETS = [2e11, 5e11, 1e12, 2e12, 5e12]
FLOORS = [1.7848, 1.6138, 1.4502, 1.3405, 1.2200]  # the CPU sweep's floors at those budgets


def check_power_law(module) -> None:
    fit = learner(module, "fit_power_law")
    x = [1e11, 1e12, 1e13]
    expect_numbers(
        "fit_power_law([1e11, 1e12, 1e13], [2e3, 2e3 * 10**0.5, 2e4])",
        fit(x, [2e3, 2e3 * 10**0.5, 2e4]),
        (2e3 / 1e11**0.5, 0.5),
        "an exact law: log y = log(coefficient) + exponent * log x, so the slope of "
        "np.polyfit(np.log(x), np.log(y), 1) is the exponent and exp(its intercept) the "
        "coefficient",
    )
    law = reference.fit_power_law(BUDGETS, FLOORS)
    expect_numbers(
        f"fit_power_law({BUDGETS}, {FLOORS})",
        fit(BUDGETS, FLOORS),
        (law["coefficient"], law["exponent"]),
        "points off a line: least squares in log-log (natural log or log10 give the same "
        "exponent, but the coefficient is exp(intercept) only with np.log)",
    )


def check_floor(module) -> None:
    floor = learner(module, "isoflop_floor")
    sizes, losses = [3.2e4, 9.4e4, 2.1e5], [1.485, 1.478, 1.636]  # the CPU sweep at 1e12
    expected = reference.fit_isoflop(sizes, losses)
    expect_numbers(
        f"isoflop_floor({sizes}, {losses})",
        floor(sizes, losses),
        (expected["n_opt"], expected["loss_opt"]),
        "a parabola in x = log10 N (np.polyfit(x, losses, 2) gives c2, c1, c0); its floor is "
        "at x* = -c1 / (2 c2), N_opt = 10**x*, loss c0 - c1**2 / (4 c2)",
    )
    for case, no_floor in (
        ("the losses rise with N: the floor lies below the smallest size", [1.6, 1.8, 2.1]),
        ("a hill: the curve bends downwards", [1.6, 1.9, 1.7]),
    ):
        expect_equal(
            f"isoflop_floor({sizes}, {no_floor}) ({case})",
            floor(sizes, no_floor),
            None,
            "no floor among the sizes: return None when c2 <= 0 or when x* lies outside "
            "[min log10 N, max log10 N]",
        )


def check_parametric(module) -> None:
    loss = learner(module, "parametric_loss")
    for law, n, d in ((reference.CHINCHILLA, 70e9, 1.4e12), (LAW, 1.4e5, 4.5e6)):
        expect_numbers(
            f"parametric_loss({law}, {n:g}, {d:g})",
            loss(law, n, d),
            float(reference.parametric_loss(law, n, d)),
            "E + A / N**alpha + B / D**beta",
        )


def check_optimal(module) -> None:
    optimal = learner(module, "compute_optimal")
    for law, budget, k in ((reference.CHINCHILLA, 5.76e23, 6.0), (LAW, 5e13, 8.32)):
        expected = reference.compute_optimal(law, budget, k)
        expect_numbers(
            f"compute_optimal({law}, {budget:g}, k={k})",
            optimal(law, budget, k),
            (expected["n_opt"], expected["d_opt"]),
            "with D = C / (k N): N_opt = G (C/k)**(beta/(alpha+beta)), "
            "G = (alpha A / (beta B))**(1/(alpha+beta)), D_opt = (C/k) / N_opt",
        )


def check_bent(module) -> None:
    bent = learner(module, "bent_frontier")
    minima = [{"budget": c, "loss_opt": loss} for c, loss in zip(BUDGETS, FLOORS)]
    expected = reference.frontier_with_floor(minima, LAW["E"])
    expect_numbers(
        f"bent_frontier({BUDGETS}, {FLOORS}, e={LAW['E']})",
        bent(BUDGETS, FLOORS, LAW["E"]),
        (expected["coefficient"], -expected["exponent"]),
        "fit_power_law through (budget, loss - e); gamma is minus its exponent (positive: the "
        "loss falls with compute)",
    )


STEPS = [
    Step("fit_power_law", check_power_law),
    Step("isoflop_floor", check_floor),
    Step("parametric_loss", check_parametric),
    Step("compute_optimal", check_optimal, needs=("parametric_loss",)),
    Step("bent_frontier", check_bent, needs=("fit_power_law",)),
]
