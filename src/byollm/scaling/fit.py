"""Scaling-law fits: isoFLOP parabolas and power laws, and the parametric law L(N, D).

Two ways to read a sweep, as in Chinchilla (Hoffmann et al. 2022):

(a) **IsoFLOP profiles** (Chinchilla's approach 2). At each budget C the loss of the sizes trained
    is a valley in log N; a parabola through the best size and its two neighbours gives the
    valley's floor N_opt(C) (and the matching D_opt(C)). Straight lines through log N_opt and
    log D_opt against log C are the power laws N_opt = k_N C^a and D_opt = k_D C^b.

        >>> fit = fit_isoflop([1e4, 3e4, 1e5], [2.1, 1.9, 2.0])
        >>> round(fit["n_opt"])                  # the floor lies between the two best sizes
        38186

(b) **The parametric law** (approach 3): L(N, D) = E + A / N^alpha + B / D^beta, E the loss of a
    perfect model, the two terms what a finite model and finite data cost. Fitted as Chinchilla
    and Epoch AI's replication (Besiroglu et al. 2024) do: minimise the Huber loss (delta = 1e-3)
    between log L and LSE(a - alpha log N, b - beta log D, e), with A = e^a, B = e^b, E = e^e,
    by BFGS from a grid of starting points. Intervals come from refitting bootstrap resamples
    of the runs.

(c) **The loss frontier**: the floors' losses L_opt(C) of (a) against C, a power law
    L_opt = K C^-gamma. It uses only compute-optimal runs, the kind a prediction is made for.
    A second frontier bends towards an irreducible loss, L_opt = E + K C^-gamma, with E the
    near-optimal L(N, D)'s (`frontier_with_floor`).

Which of (b) and (c) extrapolates better is measured, not assumed: `predict.backtest` refits each
on the smaller budgets and scores it on the largest one's near-optimal runs (a 2x extrapolation;
how far that ranking carries to 10x is what docs/08 §6 measured). (b) is also fitted
to the near-optimal runs alone (each budget's best size and its neighbours): the far walls of a
tiny sweep's valleys are runs of a few dozen steps or many epochs, whose losses follow other
laws than E + A/N^alpha + B/D^beta and pull the constants towards them.

Design choices:
- The isoFLOP parabola is local: only the best size and its neighbours. A parabola is the valley's
  second-order expansion about its floor, and a tiny sweep's far walls are not on it: its
  biggest models get a few dozen steps and rise far more steeply than its smallest (the default
  sweep's 5 sizes span 1.8 decades of N). A budget whose best run is its smallest or largest
  size has no floor: it lies beyond the sizes trained.
- Fits in log space: losses of different sizes differ by a factor, and the log makes an error
  of 1% count the same everywhere; logsumexp keeps the sum of three exponentials stable.
- Chinchilla starts L-BFGS at all 4,500 points of its grid. We score every grid point (one
  vectorised pass) and start the optimiser only from the best few: the same basins, a hundred
  times faster. A bootstrap resample starts from the full data's optimum.
- BFGS, not L-BFGS: with 5 unknowns the full 5 x 5 inverse-Hessian estimate costs nothing, and
  scipy's BFGS reached the same optimum as its L-BFGS-B about 40x faster on a synthetic sweep (L-BFGS
  is BFGS's memory-saving variant for problems with many unknowns).
- The gradient is written out by hand (a softmax of the three terms), so scipy needs no finite
  differences.
- The compute-optimal N and D of the parametric law use C = k N D, with k (FLOPs per parameter
  per token) measured from the sweep itself: 6 for the matmuls, plus attention, which is not
  small for tiny models.
"""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np

from byollm.errors import ByollmError
from byollm.formats import read_versioned_file
from byollm.paths import write_file_atomically

FIT_FILE = "fit.json"  # in the sweep folder, unless `byollm scaling fit --out` says otherwise
FIT_FORMAT = "byollm-scaling-fit"
FIT_VERSION = 1
HUBER_DELTA = 1e-3
CONSTANTS = ("E", "A", "B", "alpha", "beta")

# Published fits of L(N, D) = E + A/N^alpha + B/D^beta, for the tables beside ours.
CHINCHILLA = {"E": 1.69, "A": 406.4, "B": 410.7, "alpha": 0.34, "beta": 0.28}
EPOCH_AI = {"E": 1.8172, "A": 482.01, "B": 2085.43, "alpha": 0.3478, "beta": 0.3658}
# Tokens per parameter at the compute optimum, as published.
TOKENS_PER_PARAM = {"Chinchilla": 20.0, "nanochat": 10.5}

# Chinchilla's grid of starting points, in the fitted parametrisation (a, b, e, alpha, beta).
START_GRID = np.array(
    list(
        itertools.product(
            np.arange(0.0, 30.0, 5.0),  # a = log A
            np.arange(0.0, 30.0, 5.0),  # b = log B
            np.arange(-1.0, 1.5, 0.5),  # e = log E
            np.arange(0.0, 2.5, 0.5),  # alpha
            np.arange(0.0, 2.5, 0.5),  # beta
        )
    )
)


# --- (a) isoFLOP profiles and power laws -----------------------------------------------------------


def fit_isoflop(params, losses, tokens=None) -> dict:
    """The parabola L = c2 x^2 + c1 x + c0 in x = log10 N through one budget's runs, and its floor.

    `tokens` (D of each run) gives D_opt too, from a straight line through log D against log N
    (at fixed C, D falls as N grows, exactly so for 6ND). `has_minimum` is True only when the
    parabola opens upwards and its floor lies among the sizes trained; otherwise `n_opt` is None
    and `note` says why (a floor outside them would be an extrapolation).
    """
    x = np.log10(np.asarray(params, dtype=float))
    y = np.asarray(losses, dtype=float)
    if len(x) < 3:
        raise ByollmError(f"an isoFLOP parabola needs at least 3 sizes, got {len(x)}")
    c2, c1, c0 = np.polyfit(x, y, 2)
    fit = {"coefficients": [float(c2), float(c1), float(c0)], "has_minimum": False}
    fit.update(n_opt=None, d_opt=None, loss_opt=None, tokens_per_param=None)
    x_opt = -c1 / (2 * c2) if c2 > 0 else None
    if x_opt is None:
        fit["note"] = "no minimum: the curve does not bend upwards"
    elif not x.min() <= x_opt <= x.max():
        fit["note"] = f"minimum outside the sizes trained (at N ~ {10**x_opt:.3g})"
    else:
        fit["has_minimum"] = True
        fit["n_opt"] = float(10**x_opt)
        fit["loss_opt"] = float(c0 - c1**2 / (4 * c2))
        if tokens is not None:
            slope, intercept = np.polyfit(x, np.log10(np.asarray(tokens, dtype=float)), 1)
            fit["d_opt"] = float(10 ** (slope * x_opt + intercept))
            fit["tokens_per_param"] = fit["d_opt"] / fit["n_opt"]
    return fit


def fit_power_law(x, y) -> dict:
    """y = coefficient * x^exponent, by least squares on log y against log x.

    >>> law = fit_power_law([1e12, 1e14], [1e4, 1e5])
    >>> round(law["exponent"], 3)
    0.5
    """
    log_x, log_y = np.log(np.asarray(x, dtype=float)), np.log(np.asarray(y, dtype=float))
    if len(log_x) < 2:
        raise ByollmError(f"a power law needs at least 2 budgets with a minimum, got {len(log_x)}")
    exponent, intercept = np.polyfit(log_x, log_y, 1)
    return {"exponent": float(exponent), "coefficient": float(math.exp(intercept))}


def power_law(law: dict, x):
    return law["coefficient"] * np.asarray(x, dtype=float) ** law["exponent"]


def by_budget(records: list[dict]) -> dict[float, list[dict]]:
    """Records grouped by budget, budgets in increasing order."""
    groups: dict[float, list[dict]] = {}
    for r in sorted(records, key=lambda r: r["budget"]):
        groups.setdefault(r["budget"], []).append(r)
    return groups


def near_optimal(records: list[dict], key: str, neighbours: int = 1) -> list[dict]:
    """Per budget, the run with the lowest val loss and its `neighbours` nearest sizes each side.

    >>> runs = [{"budget": 1, "n": n, "val_loss": v} for n, v in [(1, 3), (2, 2), (3, 1), (4, 2)]]
    >>> [r["n"] for r in near_optimal(runs, "n")]
    [2, 3, 4]
    """
    kept = []
    for runs in by_budget(records).values():
        runs = sorted(runs, key=lambda r: r[key])
        best = min(range(len(runs)), key=lambda i: runs[i]["val_loss"])
        kept += runs[max(0, best - neighbours) : best + neighbours + 1]
    return kept


def frontier_loss(fit: dict, params, budget, law: dict | None = None):
    """(c) at N = `params`, C = `budget`: the frontier L_opt(C), raised for a size off N_opt(C).

    Off the floor the isoFLOP valley is a parabola in log10 N whose curvature, relative to its
    floor's loss, `isoflop_curvature`, is the median over the sweep's budgets. `law` is the
    straight frontier by default, or `loss_opt_e_law` (with its E) for the bent one.
    """
    law = law or fit["loss_opt_law"]
    off = np.log10(np.asarray(params, dtype=float) / power_law(fit["n_opt_law"], budget))
    floor = law.get("E", 0.0) + power_law(law, budget)
    return floor * (1 + fit["isoflop_curvature"] * off**2)


# --- (b) the parametric law --------------------------------------------------------------------


def huber(residual, delta: float = HUBER_DELTA):
    """Quadratic for |r| <= delta, linear beyond: one outlying run cannot drag the fit."""
    r = np.abs(residual)
    return np.where(r <= delta, 0.5 * r**2, delta * (r - 0.5 * delta))


def _log_terms(theta, log_n, log_d):
    """log(A/N^alpha), log(B/D^beta), log E and log L = their logsumexp; theta = (a, b, e, alpha, beta).

    Each of a, b, e, alpha, beta may be a number or a column (G, 1) of G parameter sets.
    """
    a, b, e, alpha, beta = theta
    model_term, data_term = a - alpha * log_n, b - beta * log_d
    top = np.maximum(np.maximum(model_term, data_term), e)  # logsumexp without overflow
    log_pred = top + np.log(np.exp(model_term - top) + np.exp(data_term - top) + np.exp(e - top))
    return model_term, data_term, e, log_pred


def _objective(theta, log_n, log_d, log_loss, delta):
    """Sum of Huber(log L_predicted - log L) over the runs, and its gradient in theta."""
    model_term, data_term, e, log_pred = _log_terms(theta, log_n, log_d)
    slope = np.clip(log_pred - log_loss, -delta, delta)  # d Huber / d residual
    # d log_pred / d term = that term's share of the predicted loss (a softmax)
    model_share = slope * np.exp(model_term - log_pred)
    data_share = slope * np.exp(data_term - log_pred)
    grad = np.array(
        [
            model_share.sum(),
            data_share.sum(),
            (slope * np.exp(e - log_pred)).sum(),
            -(model_share * log_n).sum(),
            -(data_share * log_d).sum(),
        ]
    )
    return float(huber(log_pred - log_loss, delta).sum()), grad


def _grid_scores(log_n, log_d, log_loss, delta, grid=START_GRID):
    """The objective at every grid point at once (no gradient)."""
    columns = [grid[:, i, None] for i in range(5)]
    log_pred = _log_terms(columns, log_n, log_d)[3]  # (G, runs)
    return huber(log_pred - log_loss, delta).sum(axis=1)


def _minimise(start, log_n, log_d, log_loss, delta):
    from scipy.optimize import minimize

    def scaled(theta):  # in units of delta, so that scipy's default tolerances fit the problem
        value, grad = _objective(theta, log_n, log_d, log_loss, delta)
        return value / delta, grad / delta

    result = minimize(scaled, start, jac=True, method="BFGS")
    return result.x, float(result.fun) * delta


def _best_grid_starts(log_n, log_d, log_loss, delta, count: int) -> np.ndarray:
    scores = _grid_scores(log_n, log_d, log_loss, delta)
    return START_GRID[np.argsort(scores)[:count]]


def _fit_theta(starts, log_n, log_d, log_loss, delta) -> tuple:
    """The best optimum reached from any of `starts`: (theta, objective)."""
    fits = [_minimise(s, log_n, log_d, log_loss, delta) for s in starts]
    return min(fits, key=lambda fit: fit[1])


def _constants(theta) -> dict:
    """E, A, B, alpha, beta from the fitted (a, b, e, alpha, beta).

    A fit that ran off to a huge a or b (too few runs to pin a term down) gives an infinite A or
    B rather than an error: an unbounded interval is the honest answer then.
    """
    a, b, e, alpha, beta = (float(v) for v in theta)
    with np.errstate(over="ignore"):
        big = np.exp([e, a, b])
    return {
        "E": float(big[0]),
        "A": float(big[1]),
        "B": float(big[2]),
        "alpha": alpha,
        "beta": beta,
    }


def parametric_loss(law: dict, params, tokens):
    """L(N, D) = E + A / N^alpha + B / D^beta."""
    n, d = np.asarray(params, dtype=float), np.asarray(tokens, dtype=float)
    with np.errstate(over="ignore", invalid="ignore"):  # a runaway bootstrap law: inf or NaN
        return law["E"] + law["A"] / n ** law["alpha"] + law["B"] / d ** law["beta"]


def fit_parametric(
    params,
    tokens,
    losses,
    *,
    bootstrap: int = 200,
    confidence: float = 0.95,
    starts: int = 8,
    delta: float = HUBER_DELTA,
    seed: int = 0,
) -> dict:
    """Fit L(N, D) = E + A/N^alpha + B/D^beta to runs; constants with bootstrap intervals.

    Returns the constants, the Huber objective at the optimum, the bootstrap samples (one row
    of E, A, B, alpha, beta per resample) and the `confidence` intervals of each constant
    (percentiles of the resamples).
    """
    log_n = np.log(np.asarray(params, dtype=float))
    log_d = np.log(np.asarray(tokens, dtype=float))
    log_loss = np.log(np.asarray(losses, dtype=float))
    if not len(log_n) == len(log_d) == len(log_loss):
        raise ByollmError("params, tokens and losses must have one value per run")
    if len(log_n) < 5:
        raise ByollmError(f"L(N, D) has 5 constants: it needs at least 5 runs, got {len(log_n)}")
    grid_starts = _best_grid_starts(log_n, log_d, log_loss, delta, starts)
    theta, objective = _fit_theta(grid_starts, log_n, log_d, log_loss, delta)
    law = {**_constants(theta), "objective": objective, "huber_delta": delta, "runs": len(log_n)}

    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(bootstrap):
        pick = rng.integers(0, len(log_n), len(log_n))
        # A resample's optimum lies near the full data's: start there. (Adding the best grid
        # point as a second start never found a better optimum in 120 resamples of our
        # synthetic sweeps, and tripled the cost.)
        sample, _ = _minimise(theta, log_n[pick], log_d[pick], log_loss[pick], delta)
        samples.append([_constants(sample)[k] for k in CONSTANTS])
    law["bootstrap"] = samples
    law["confidence"] = confidence
    if samples:
        columns = np.array(samples).T
        law["intervals"] = {
            k: interval(column, confidence) for k, column in zip(CONSTANTS, columns)
        }
    return law


def interval(values, confidence: float = 0.95) -> list[float]:
    """The central `confidence` interval of bootstrap values, rounded outwards.

    The nearest sample below the lower percentile and above the upper one (no interpolation, so
    an infinite value makes the interval unbounded instead of NaN); NaN counts as unbounded too.

    >>> interval(range(201))       # 95%: 2.5% of the 201 values left out on each side
    [5.0, 195.0]
    """
    values = np.nan_to_num(np.asarray(values, dtype=float), nan=np.inf)
    tail = (1 - confidence) / 2
    low = np.quantile(values, tail, method="lower")
    high = np.quantile(values, 1 - tail, method="higher")
    return [float(low), float(high)]


def compute_optimal(law: dict, budget: float, flops_per_param_token: float = 6.0) -> dict:
    """N_opt, D_opt of the parametric law at budget C = k N D (Chinchilla's closed form).

    Minimising E + A/N^alpha + B/D^beta with D = C / (k N) gives
    N_opt = G (C/k)^(beta/(alpha+beta)), D_opt = (C/k) / N_opt, G = (alpha A / (beta B))^(1/(alpha+beta)).
    """
    alpha, beta = law["alpha"], law["beta"]
    scale = budget / flops_per_param_token
    g = (alpha * law["A"] / (beta * law["B"])) ** (1 / (alpha + beta))
    n_opt = g * scale ** (beta / (alpha + beta))
    d_opt = scale / n_opt
    return {
        "n_opt": n_opt,
        "d_opt": d_opt,
        "tokens_per_param": d_opt / n_opt,
        "loss": float(parametric_loss(law, n_opt, d_opt)),
    }


# --- a whole sweep -----------------------------------------------------------------------------


def fit_sweep(
    records: list[dict], *, params: str = "non_embedding_head", bootstrap: int = 200, seed: int = 0
) -> dict:
    """Both fits of a sweep's records (from `results.jsonl`), as one JSON-ready dict."""
    key = f"params_{params}"
    if not records:
        raise ByollmError("no runs to fit")
    if any(key not in r for r in records):
        raise ByollmError(
            f"records have no {key!r}; params must be one of total, "
            "non_embedding, non_embedding_head"
        )
    groups = by_budget(records)
    isoflops = []
    for budget, runs in groups.items():
        runs = sorted(runs, key=lambda r: r[key])
        entry = {"budget": budget, "runs": len(runs), "has_minimum": False, "n_opt": None}
        best = min(range(len(runs)), key=lambda i: runs[i]["val_loss"])
        if len(runs) < 3:
            entry["note"] = "fewer than 3 sizes"
        elif best in (0, len(runs) - 1):
            side = "smallest" if best == 0 else "largest"
            entry["note"] = f"the {side} size is best: the floor lies beyond the sizes trained"
        else:
            floor = runs[best - 1 : best + 2]  # the best size and its neighbours
            entry.update(
                fit_isoflop(
                    [r[key] for r in floor],
                    [r["val_loss"] for r in floor],
                    [r["tokens"] for r in floor],
                ),
                fitted_sizes=[floor[0][key], floor[-1][key]],
            )
        isoflops.append(entry)
    minima = [f for f in isoflops if f["has_minimum"]]
    fit = {
        "format": FIT_FORMAT,
        "version": FIT_VERSION,
        "params": params,
        "runs": len(records),
        "budgets": list(groups),
        "isoflops": isoflops,
        "val_bytes_per_token": float(np.median([r["val_bytes_per_token"] for r in records])),
        # FLOPs per parameter per token, measured: C = k N D
        "flops_per_param_token": float(
            np.median([r["flops_exact"] / (r[key] * r["tokens"]) for r in records])
        ),
    }
    if len(minima) >= 2:
        budgets = [f["budget"] for f in minima]
        fit["n_opt_law"] = fit_power_law(budgets, [f["n_opt"] for f in minima])
        fit["d_opt_law"] = fit_power_law(budgets, [f["d_opt"] for f in minima])
        fit["tokens_per_param"] = float(np.mean([f["tokens_per_param"] for f in minima]))
        fit["loss_opt_law"] = fit_power_law(budgets, [f["loss_opt"] for f in minima])
        fit["isoflop_curvature"] = float(
            np.median([f["coefficients"][0] / f["loss_opt"] for f in minima])
        )
    for name, runs in (
        ("parametric", records),
        ("parametric_near_optimal", near_optimal(records, key)),
    ):
        if len(runs) >= 5:
            fit[name] = fit_parametric(
                [r[key] for r in runs],
                [r["tokens"] for r in runs],
                [r["val_loss"] for r in runs],
                bootstrap=bootstrap,
                seed=seed,
            )
    if "loss_opt_law" in fit and "parametric_near_optimal" in fit:
        law = frontier_with_floor(minima, fit["parametric_near_optimal"]["E"])
        if law is not None:
            fit["loss_opt_e_law"] = law
    return fit


def frontier_with_floor(minima: list[dict], irreducible: float) -> dict | None:
    """(c) bent towards an irreducible loss: L_opt(C) = E + K C^-gamma through the floors.

    A straight line in log-log (`loss_opt_law`) cannot bend as the loss nears what no model can
    remove; twice it predicted a 10x run's loss 7-8% too low (docs/08 §6). E is the near-optimal
    L(N, D)'s: a few floors cannot pin a third constant down, and that law's E is set by the
    same compute-optimal runs. None when fewer than two floors lie above E.

    >>> floors = [{"budget": c, "loss_opt": 1 + 2 * c ** -0.25} for c in (1e10, 1e11, 1e12)]
    >>> law = frontier_with_floor(floors, 1.0)
    >>> round(law["exponent"], 3), round(law["coefficient"], 3)
    (-0.25, 2.0)
    """
    above = [f for f in minima if f["loss_opt"] > irreducible]
    if len(above) < 2:
        return None
    law = fit_power_law([f["budget"] for f in above], [f["loss_opt"] - irreducible for f in above])
    return {**law, "E": float(irreducible)}


def save_fit(fit: dict, path: str | Path) -> Path:
    path = Path(path)
    write_file_atomically(path, (json.dumps(fit, indent=1) + "\n").encode(), what="fit")
    return path


def load_fit(path: str | Path) -> dict:
    """A fit.json written by `save_fit`, checked for format and version."""
    missing = "missing; run `byollm scaling fit` first"
    return read_versioned_file(path, format=FIT_FORMAT, version=FIT_VERSION, missing=missing)


def format_fit(fit: dict) -> str:
    """A report of both fits, with the published numbers beside ours."""
    n_name = fit["params"].replace("_", "-")
    lines = [f"{fit['runs']} runs at {len(fit['budgets'])} budgets; N = {n_name} parameters", ""]
    lines.append("(a) isoFLOP minima")
    lines.append(
        f"  {'budget C':>10}  {'runs':>4}  {'N_opt':>10}  {'D_opt':>12}  {'D/N':>6}  {'loss':>7}"
    )
    for f in fit["isoflops"]:
        if f["has_minimum"]:
            lines.append(
                f"  {f['budget']:>10.3g}  {f['runs']:>4}  {f['n_opt']:>10.4g}  {f['d_opt']:>12.4g}  "
                f"{f['tokens_per_param']:>6.1f}  {f['loss_opt']:>7.4f}"
            )
        else:
            lines.append(f"  {f['budget']:>10.3g}  {f['runs']:>4}  {f['note']}")
    if "n_opt_law" in fit:
        n_law, d_law = fit["n_opt_law"], fit["d_opt_law"]
        lines += [
            f"  N_opt = {n_law['coefficient']:.3g} C^{n_law['exponent']:.3f}   "
            f"D_opt = {d_law['coefficient']:.3g} C^{d_law['exponent']:.3f}   "
            "(Chinchilla: 0.50 and 0.50; Kaplan: 0.73 and 0.27)",
            f"  tokens per parameter at the optimum: {fit['tokens_per_param']:.1f}   "
            + ", ".join(f"{k}: ~{v:g}" for k, v in TOKENS_PER_PARAM.items()),
        ]
    else:
        lines.append("  power laws need minima at 2 budgets or more")
    if "loss_opt_law" in fit:
        frontier = fit["loss_opt_law"]
        lines.append(
            f"(c) loss frontier: L_opt = {frontier['coefficient']:.4g} C^{frontier['exponent']:.4f}"
            f"   (valley curvature {fit['isoflop_curvature']:.3g} x L_opt per decade of N, squared)"
        )
    if "loss_opt_e_law" in fit:
        bent = fit["loss_opt_e_law"]
        lines.append(
            f"    bent towards E: L_opt = {bent['E']:.4g} + {bent['coefficient']:.4g} "
            f"C^{bent['exponent']:.4f}   (E of the near-optimal L(N, D))"
        )
    lines.append("")
    law = fit.get("parametric")
    if law is None:
        lines.append("(b) L(N, D) needs at least 5 runs")
        return "\n".join(lines)
    level = round(100 * law["confidence"])
    lines.append(
        f"(b) L(N, D) = E + A/N^alpha + B/D^beta (Huber on log L, {level}% bootstrap intervals)"
    )
    lines += _law_table(law, "all runs")
    if "parametric_near_optimal" in fit:
        near = fit["parametric_near_optimal"]
        lines += _law_table(near, f"the {near['runs']} near-optimal runs", published=False)
    k = fit["flops_per_param_token"]
    best = compute_optimal(law, max(fit["budgets"]), k)
    lines.append(
        f"  at C = {max(fit['budgets']):.3g} (C = {k:.2f} N D): N_opt {best['n_opt']:.4g}, "
        f"D_opt {best['d_opt']:.4g}, {best['tokens_per_param']:.1f} tokens per parameter"
    )
    return "\n".join(lines)


def _law_table(law: dict, runs: str, published: bool = True) -> list[str]:
    """The constants of one parametric law with their intervals (and the published ones)."""
    head = f"  {runs + ':':<24}  {'ours':>10}  {'interval':>22}"
    lines = [head + (f"  {'Chinchilla':>10}  {'Epoch AI':>10}" if published else "")]
    for k in CONSTANTS:
        low, high = law.get("intervals", {}).get(k, (math.nan, math.nan))
        line = f"  {k:>24}  {law[k]:>10.4g}  {f'[{low:.4g}, {high:.4g}]':>22}"
        if published:
            line += f"  {CHINCHILLA[k]:>10.4g}  {EPOCH_AI[k]:>10.4g}"
        lines.append(line)
    return lines
