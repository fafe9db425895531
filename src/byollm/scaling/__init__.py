"""byollm.scaling: a scaling-law laboratory that runs on a laptop.

    from byollm.scaling import load_sweep_config, run_sweep, fit_sweep, sweep_records
    run_sweep(load_sweep_config("cpu-smoke"))
    fit = fit_sweep(sweep_records("runs/scaling-cpu-smoke"))

Modules, in the order of a study: `sweep` (the plan of runs per compute budget, the runner and
its results.jsonl), `fit` (isoFLOP parabolas, power laws N_opt(C) and D_opt(C), the parametric
law L(N, D) with bootstrap intervals), `plot` (PNG figures), `predict` (a bigger run's loss
before training it, then the run), `cli` (`byollm scaling run|fit|plot|predict`).
"""

from byollm.scaling.fit import compute_optimal, fit_parametric, fit_sweep, load_fit, save_fit
from byollm.scaling.sweep import (
    SweepConfig,
    load_sweep_config,
    plan_sweep,
    run_sweep,
    sweep_records,
)

__all__ = [
    "SweepConfig",
    "compute_optimal",
    "fit_parametric",
    "fit_sweep",
    "load_fit",
    "load_sweep_config",
    "plan_sweep",
    "run_sweep",
    "save_fit",
    "sweep_records",
]
