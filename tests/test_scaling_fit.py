"""The scaling-law fits on synthetic sweeps drawn from a known law: they must find it again."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.optimize import check_grad

from byollm.errors import ByollmError
from byollm.scaling import fit as scaling_fit
from byollm.scaling.fit import (
    CONSTANTS,
    compute_optimal,
    fit_isoflop,
    fit_parametric,
    fit_sweep,
    format_fit,
    frontier_loss,
    frontier_with_floor,
    load_fit,
    near_optimal,
    parametric_loss,
    power_law,
    save_fit,
)
from byollm.scaling.predict import backtest, backtest_details, predicted_loss
from byollm.scaling.sweep import SweepConfig

# A law of the size our CPU sweeps see (losses of 1-3 nats, N from 1e3 to 1e6).
LAW = {"E": 0.9, "A": 60.0, "B": 300.0, "alpha": 0.35, "beta": 0.32}
BUDGETS = (3e11, 1e12, 3e12, 1e13)


def synthetic_records(law=LAW, budgets=BUDGETS, noise=0.0, seed=0, k=6.0) -> list[dict]:
    """An isoFLOP sweep drawn from `law`: 5 sizes per budget around its optimum, D = C / (k N),
    each loss multiplied by exp(noise x a standard normal)."""
    rng = np.random.default_rng(seed)
    records = []
    for budget in budgets:
        n_opt = compute_optimal(law, budget, k)["n_opt"]
        for i, factor in enumerate(np.geomspace(1 / 8, 8, 5)):
            n = n_opt * factor
            d = budget / (k * n)
            loss = float(parametric_loss(law, n, d)) * math.exp(noise * rng.standard_normal())
            records.append(
                {
                    "point": f"C{budget:.0e}-{i}",
                    "budget": budget,
                    "params_non_embedding_head": n,
                    "tokens": d,
                    "val_loss": loss,
                    "val_bytes_per_token": 1.0,
                    "flops_exact": budget,
                }
            )
    return records


def arrays(records):
    return (
        [r["params_non_embedding_head"] for r in records],
        [r["tokens"] for r in records],
        [r["val_loss"] for r in records],
    )


@pytest.mark.parametrize("seed", [0, 1])
def test_parametric_fit_recovers_the_law_within_its_intervals(seed):
    records = synthetic_records(noise=0.005, seed=seed)
    law = fit_parametric(*arrays(records), bootstrap=100, seed=seed)
    assert len(law["bootstrap"]) == 100 and law["confidence"] == 0.95
    for name in CONSTANTS:
        low, high = law["intervals"][name]
        assert low <= LAW[name] <= high, (name, LAW[name], low, high)
        assert low <= law[name] <= high
    # the exponents are pinned down well, not merely "somewhere in a wide interval"
    for name in ("alpha", "beta"):
        assert abs(law[name] - LAW[name]) < 0.03
        assert law["intervals"][name][1] - law["intervals"][name][0] < 0.1


def test_parametric_fit_is_exact_on_noiseless_data():
    law = fit_parametric(*arrays(synthetic_records()), bootstrap=0)
    for name in CONSTANTS:
        assert law[name] == pytest.approx(LAW[name], rel=1e-3), name
    assert "intervals" not in law and law["objective"] < 1e-10


def test_isoflop_minima_follow_the_laws_exponents():
    """With C = 6ND, N_opt grows as C^(beta/(alpha+beta)) and D_opt as C^(alpha/(alpha+beta))."""
    fit = fit_sweep(synthetic_records(), bootstrap=0)
    alpha, beta = LAW["alpha"], LAW["beta"]
    assert all(f["has_minimum"] for f in fit["isoflops"])
    assert fit["n_opt_law"]["exponent"] == pytest.approx(beta / (alpha + beta), abs=0.01)
    assert fit["d_opt_law"]["exponent"] == pytest.approx(alpha / (alpha + beta), abs=0.01)
    for entry in fit["isoflops"]:
        exact = compute_optimal(LAW, entry["budget"])
        assert entry["n_opt"] == pytest.approx(exact["n_opt"], rel=0.1)
        assert entry["d_opt"] == pytest.approx(exact["d_opt"], rel=0.1)
        assert entry["loss_opt"] == pytest.approx(exact["loss"], rel=0.01)
    assert fit["flops_per_param_token"] == pytest.approx(6.0)
    report = format_fit(
        {**fit, "parametric": fit_parametric(*arrays(synthetic_records()), bootstrap=5)}
    )
    assert "N_opt =" in report and "Chinchilla" in report and "Epoch AI" in report


def test_loss_frontier_runs_through_the_floors_and_rises_off_them():
    fit = fit_sweep(synthetic_records(), bootstrap=0)
    assert -0.2 < fit["loss_opt_law"]["exponent"] < 0  # loss falls slowly with compute
    for entry in fit["isoflops"]:
        n_opt, budget = entry["n_opt"], entry["budget"]
        assert frontier_loss(fit, n_opt, budget) == pytest.approx(entry["loss_opt"], rel=0.01)
        # off the floor the valley's curvature takes over, as the law itself says
        for factor in (1 / 3, 3):
            n = n_opt * factor
            exact = float(parametric_loss(LAW, n, budget / (6 * n)))
            assert frontier_loss(fit, n, budget) > frontier_loss(fit, n_opt, budget)
            assert frontier_loss(fit, n, budget) == pytest.approx(exact, rel=0.01)
    assert "(c) loss frontier: L_opt =" in format_fit(fit)


def test_near_optimal_keeps_each_budgets_valley_floor():
    records = synthetic_records()
    kept = near_optimal(records, "params_non_embedding_head")
    assert len(kept) == 3 * len(BUDGETS)  # the 5 sizes are centred on N_opt: the middle 3
    assert {r["point"][-1] for r in kept} == {"1", "2", "3"}
    fit = fit_sweep(records, bootstrap=0)
    near = fit["parametric_near_optimal"]
    assert near["runs"] == 12 and near["alpha"] == pytest.approx(LAW["alpha"], rel=0.01)


def test_backtest_scores_each_predictor_on_the_largest_budget():
    exact = backtest(synthetic_records())  # drawn from the law: (b) extrapolates it exactly
    assert set(exact) == {
        "parametric",
        "parametric_near_optimal",
        "frontier",
        "blend",
        "frontier_e",
    }
    assert exact["parametric"] < 0.01 and exact["frontier"] < 2
    # Starved runs: the models far above N_opt get too few steps and end 15% worse than the
    # law (what a tiny sweep's right-hand walls do). Fitted to every run, (b) bends towards
    # them; the predictors that look at the valley floors only are not fooled.
    starved = [
        {**r, "val_loss": r["val_loss"] * 1.15} if r["point"].endswith("-4") else r
        for r in synthetic_records()
    ]
    scores = backtest(starved)
    assert scores["parametric"] > 1 > 1e-3 > scores["parametric_near_optimal"]
    assert scores["frontier"] == pytest.approx(exact["frontier"])  # the walls are not its floors
    assert backtest(synthetic_records(budgets=BUDGETS[:2])) == {}  # nothing left to hold out
    fit = fit_sweep(starved, bootstrap=0)
    assert predicted_loss(fit, "frontier", 1e5, 1e6, 1e13) == frontier_loss(fit, 1e5, 1e13)


def test_backtest_holds_out_two_budgets_when_the_rest_still_has_two_floors():
    records = synthetic_records()  # 4 budgets, each with a floor among its sizes
    details = backtest_details(records)
    assert (
        details["fitted_budgets"] == list(BUDGETS[:2]) and details["scored_budget"] == BUDGETS[-1]
    )
    three = [r for r in records if r["budget"] != BUDGETS[1]]  # 2 floors only if 1 is left out
    assert backtest_details(three)["fitted_budgets"] == [BUDGETS[0], BUDGETS[2]]
    # The signed error says which way a predictor errs: losses 3% above the law at the scored
    # budget make every predictor 3% low there, which |error| alone would not say.
    raised = [
        {**r, "val_loss": r["val_loss"] * 1.03} if r["budget"] == BUDGETS[-1] else r
        for r in records
    ]
    bias = backtest_details(raised)["bias_pct"]
    assert bias["parametric"] == pytest.approx(100 * (1 / 1.03 - 1), abs=0.05)
    assert all(b < 0 for b in bias.values())


def test_blend_is_the_geometric_mean_of_the_frontier_and_the_near_optimal_law():
    fit = fit_sweep(synthetic_records(noise=0.02, seed=3), bootstrap=0)
    n, d, c = 3e5, 2e7, 1e14
    frontier = predicted_loss(fit, "frontier", n, d, c)
    law = predicted_loss(fit, "parametric_near_optimal", n, d, c)
    assert predicted_loss(fit, "blend", n, d, c) == pytest.approx(math.sqrt(frontier * law))
    assert min(frontier, law) <= predicted_loss(fit, "blend", n, d, c) <= max(frontier, law)


def test_the_bent_frontier_goes_through_floors_that_approach_e():
    """L_opt = E + K C^-gamma: on floors drawn from such a curve the straight frontier
    extrapolates too low, the bent one exactly; the prediction prefers the bent one."""
    from byollm.scaling.predict import predict

    records = synthetic_records()
    fit = fit_sweep(records, bootstrap=0)
    bent = fit["loss_opt_e_law"]
    assert bent["E"] == fit["parametric_near_optimal"]["E"]
    floors = [f for f in fit["isoflops"] if f["has_minimum"]]
    for f in floors:  # through the floors it was fitted to (they follow E + K C^-gamma closely)
        assert bent["E"] + power_law(bent, f["budget"]) == pytest.approx(f["loss_opt"], rel=0.02)
    far = BUDGETS[-1] * 1e3
    n = power_law(fit["n_opt_law"], far)
    straight = predicted_loss(fit, "frontier", n, 1e9, far)
    assert predicted_loss(fit, "frontier_e", n, 1e9, far) > straight  # it bends: higher far out
    # a fit from before the bent frontier (no loss_opt_e_law): the best backtest chooses
    config = SweepConfig()
    older = {k: v for k, v in fit.items() if k != "loss_opt_e_law"}
    chosen = predict(older, config, BUDGETS[-1] * 10, 222, records)
    assert chosen["method_rule"] == "backtest" and chosen["method"] != "frontier_e"
    assert predict(fit, config, BUDGETS[-1] * 10, 222, records)["method"] == "frontier_e"
    # floors below E (the law's E is too high for them): no bent frontier
    assert frontier_with_floor(floors, 10.0) is None


def test_isoflop_without_a_minimum_says_so():
    falling = fit_isoflop([1e3, 1e4, 1e5], [3.0, 2.5, 2.2], [1e6, 1e5, 1e4])
    assert falling["has_minimum"] is False and falling["n_opt"] is None
    assert falling["note"].startswith("minimum outside the sizes trained")  # convex, but beyond
    hill = fit_isoflop([1e3, 1e4, 1e5], [3.0, 2.0, 2.2])
    assert hill["has_minimum"] is True and 1e3 < hill["n_opt"] < 1e5
    cap = fit_isoflop([1e3, 1e4, 1e5], [2.0, 2.5, 2.1])
    assert cap["has_minimum"] is False and "does not bend upwards" in cap["note"]
    with pytest.raises(ByollmError, match="at least 3 sizes"):
        fit_isoflop([1e3, 1e4], [3.0, 2.5])
    fit = fit_sweep(synthetic_records(budgets=(1e12,)), bootstrap=0)
    assert "n_opt_law" not in fit  # one budget: no power law
    # a budget whose smallest size wins has no floor among its sizes (a parabola through its
    # best three would put one outside them: an extrapolation)
    edge = [{**r, "val_loss": 1.0} if r["point"].endswith("-0") else r for r in synthetic_records()]
    entry = fit_sweep(edge, bootstrap=0)["isoflops"][0]
    assert entry["has_minimum"] is False and "smallest size is best" in entry["note"]
    assert "power laws need minima at 2 budgets" in format_fit(fit)


@settings(max_examples=25, deadline=None)
@given(
    theta=st.tuples(
        st.floats(0, 10), st.floats(0, 10), st.floats(-1, 1), st.floats(0.1, 1), st.floats(0.1, 1)
    ),
    delta=st.sampled_from([1e-3, 0.1, 10.0]),
)
def test_objective_gradient_matches_finite_differences(theta, delta):
    records = synthetic_records(noise=0.05)
    log_n, log_d, log_loss = (np.log(a) for a in arrays(records))

    def value(t):
        return scaling_fit._objective(t, log_n, log_d, log_loss, delta)[0]

    def grad(t):
        return scaling_fit._objective(t, log_n, log_d, log_loss, delta)[1]

    point = np.array(theta)
    scale = max(1.0, float(np.abs(grad(point)).max()))
    assert check_grad(value, grad, point, epsilon=1e-7) / scale < 1e-4


@settings(max_examples=25, deadline=None)
@given(
    budget=st.floats(1e9, 1e20),
    alpha=st.floats(0.1, 0.8),
    beta=st.floats(0.1, 0.8),
)
def test_compute_optimal_is_the_minimum_along_the_isoflop_line(budget, alpha, beta):
    law = {**LAW, "alpha": alpha, "beta": beta}
    best = compute_optimal(law, budget)
    assert best["n_opt"] * best["d_opt"] * 6 == pytest.approx(budget)
    for factor in (0.8, 1.25):
        n = best["n_opt"] * factor
        assert parametric_loss(law, n, budget / (6 * n)) >= best["loss"]


def test_fit_file_round_trip_and_errors(tmp_path):
    fit = fit_sweep(synthetic_records(), bootstrap=3)
    path = save_fit(fit, tmp_path / "fit.json")
    assert load_fit(path) == fit
    (tmp_path / "bad.json").write_text('{"format": "something-else"}')
    with pytest.raises(ByollmError, match="bad.json: not a byollm-scaling-fit"):
        load_fit(tmp_path / "bad.json")
    with pytest.raises(ByollmError, match="missing"):
        load_fit(tmp_path / "nope.json")
    with pytest.raises(ByollmError, match="params_total"):
        fit_sweep(synthetic_records(), params="total")
    with pytest.raises(ByollmError, match="at least 5 runs"):
        fit_parametric([1, 2], [1, 2], [1, 2])
