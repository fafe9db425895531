"""Predict before you train: a bigger run's loss from a sweep's fits, then the run itself.

    >>> prediction = predict_run("runs/scaling-cpu", "10x")               # doctest: +SKIP
    >>> prediction["point"], prediction["predicted_val_bpb"]              # doctest: +SKIP
    ('C3e13-d5', 1.52)
    >>> outcome = run_prediction("runs/scaling-cpu", "10x")              # doctest: +SKIP
    >>> outcome["error_pct"]                                              # doctest: +SKIP

Design choices:
- **Which model**: the compute-optimal N at the new budget from the isoFLOP power law
  N_opt(C) (read straight off the data, approach (a)), rounded to the nearest depth under the
  sweep's own size rule, and trained by the sweep's own rules (batch, lr, schedule, budget to
  the step). The run is an ordinary point, only at a budget no sweep run has seen.
- **What loss**: the parametric law L(N, D) of approach (b) at that run's actual N and D (not at
  the ideal N_opt, which no depth hits exactly). Its interval is the spread of the bootstrap
  laws at that same point. Bits per byte = loss / ln 2 / (bytes per token of the val split).
- **Written down first**: the prediction is appended to `predictions.jsonl` before training
  starts; after the run a second line adds what was measured and the error. The run's own
  record goes to `holdout.jsonl`, never to `results.jsonl`, so a later fit cannot peek at it.
"""

from __future__ import annotations

import math
import time
from pathlib import Path

from byollm.errors import ByollmError
from byollm.scaling.fit import (
    CONSTANTS,
    compute_optimal,
    interval,
    load_fit,
    parametric_loss,
    power_law,
)
from byollm.scaling.sweep import (
    SweepConfig,
    append_result,
    describe_point,
    latest_records,
    model_for_depth,
    param_counts,
    plan_point,
    prepare_sweep_data,
    read_records,
    read_sweep_config,
    run_point,
    sweep_data_dir,
)

PREDICTION_FORMAT = "byollm-scaling-prediction"
PREDICTION_VERSION = 1
DEEPEST = 64  # the deepest model `predict` will propose


def parse_budget(text: str | float, fit: dict) -> float:
    """'3e14' -> 3e14 FLOPs; '10x' -> 10 times the sweep's largest budget."""
    value = str(text).strip().lower()
    try:
        budget = float(value[:-1]) * max(fit["budgets"]) if value.endswith("x") else float(value)
    except ValueError:
        raise ByollmError(
            f"budget {text!r}: give training FLOPs (3e14) or a multiple of the sweep's largest "
            "budget (10x)"
        ) from None
    if not budget > 0:
        raise ByollmError(f"budget {text!r} must be positive")
    return budget


def optimal_params(fit: dict, budget: float) -> float:
    """Compute-optimal N at `budget`: the isoFLOP power law, else the parametric law."""
    if "n_opt_law" in fit:
        return float(power_law(fit["n_opt_law"], budget))
    if "parametric" in fit:
        return compute_optimal(fit["parametric"], budget, fit["flops_per_param_token"])["n_opt"]
    raise ByollmError("the fit has neither an N_opt power law nor L(N, D): sweep more budgets")


def nearest_depth(config: SweepConfig, target_params: float, vocab_size: int, params: str) -> int:
    """The depth whose N (under the sweep's size rule) is nearest `target_params`, in log."""

    def distance(depth: int) -> float:
        n = param_counts(model_for_depth(config, depth, vocab_size))[params]
        return abs(math.log(n / target_params))

    return min(range(1, DEEPEST + 1), key=distance)


def predict(fit: dict, config: SweepConfig, budget: float, vocab_size: int) -> dict:
    """The run the fits propose at `budget`, and its predicted val loss and bits per byte."""
    law = fit.get("parametric")
    if law is None:
        raise ByollmError(
            "the fit has no L(N, D) (it needs at least 5 runs): cannot predict a loss"
        )
    target = optimal_params(fit, budget)
    depth = nearest_depth(config, target, vocab_size, fit["params"])
    point = plan_point(config, budget, depth, vocab_size)
    described = describe_point(point, config)
    n, d = described[f"params_{fit['params']}"], point.tokens
    loss = float(parametric_loss(law, n, d))
    per_byte = 1 / (math.log(2) * fit["val_bytes_per_token"])
    prediction = {
        "format": PREDICTION_FORMAT,
        "version": PREDICTION_VERSION,
        **described,
        "params": fit["params"],
        "optimal_params": target,
        "predicted_val_loss": loss,
        "predicted_val_bpb": loss * per_byte,
        "predicted_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    samples = law.get("bootstrap") or []
    if samples:
        losses = [float(parametric_loss(dict(zip(CONSTANTS, s)), n, d)) for s in samples]
        low, high = interval(losses, law["confidence"])
        prediction["predicted_val_bpb_interval"] = [low * per_byte, high * per_byte]
    return prediction


def predict_run(sweep_dir: str | Path, budget: str | float, fit_path: str | Path | None = None):
    """`predict` for a sweep folder: its config, its fit.json and its data's vocabulary."""
    from byollm.data.prepare import read_meta

    config = read_sweep_config(sweep_dir)
    fit = load_fit(fit_path or Path(sweep_dir) / "fit.json")
    vocab_size = read_meta(sweep_data_dir(config))["vocab_size"]
    return predict(fit, config, parse_budget(budget, fit), vocab_size)


def run_prediction(
    sweep_dir: str | Path,
    budget: str | float,
    *,
    fit_path: str | Path | None = None,
    progress: bool = True,
    log=print,
) -> dict:
    """Predict, write the prediction down, train the run, and report the prediction's error."""
    sweep_dir = Path(sweep_dir)
    config = read_sweep_config(sweep_dir)
    prediction = predict_run(sweep_dir, budget, fit_path)
    predictions = sweep_dir / "predictions.jsonl"
    earlier = latest_records(read_predictions(predictions)) if predictions.exists() else {}
    if prediction["point"] in earlier:  # a resumed run keeps the prediction made before it began
        prediction = earlier[prediction["point"]]
    else:
        append_result(predictions, prediction)
    log(
        f"byollm scaling: predicted {prediction['predicted_val_bpb']:.4f} bits/byte for "
        f"{prediction['point']} ({prediction['tokens']:,} tokens); training it now"
    )
    data_dir, meta = prepare_sweep_data(config, progress=progress)
    point = plan_point(config, prediction["budget"], prediction["depth"], meta["vocab_size"])
    record = run_point(
        config, point, data_dir, meta, sweep_dir / "holdout.jsonl", progress=progress, log=log
    )
    measured = record["val_bpb"]
    outcome = {
        **prediction,
        "measured_val_loss": record["val_loss"],
        "measured_val_bpb": measured,
        "error_pct": 100 * (prediction["predicted_val_bpb"] - measured) / measured,
        "wall_s": record["wall_s"],
    }
    append_result(predictions, outcome)
    return outcome


def read_predictions(path: str | Path) -> list[dict]:
    """The lines of a predictions.jsonl (format-checked); the last line of a point is its latest."""
    return read_records(path, PREDICTION_FORMAT, PREDICTION_VERSION)


def format_prediction(p: dict) -> str:
    n = p[f"params_{p['params']}"]
    lines = [
        f"budget {p['budget']:.3g} FLOPs: compute-optimal N ~ {p['optimal_params']:.4g} "
        f"({p['params'].replace('_', '-')}); nearest depth {p['depth']} (width {p['n_embd']}, "
        f"N = {n:,})",
        f"  tokens {p['tokens']:,} ({p['steps']} steps), {p['tokens_per_param']:.1f} tokens per "
        "parameter",
        f"  predicted val loss {p['predicted_val_loss']:.4f}, "
        f"{p['predicted_val_bpb']:.4f} bits/byte",
    ]
    if "predicted_val_bpb_interval" in p:
        low, high = p["predicted_val_bpb_interval"]
        lines[-1] += f" (bootstrap interval {low:.4f} .. {high:.4f})"
    if "measured_val_bpb" in p:
        lines.append(
            f"  measured {p['measured_val_bpb']:.4f} bits/byte: error {p['error_pct']:+.2f}%"
        )
    return "\n".join(lines)
