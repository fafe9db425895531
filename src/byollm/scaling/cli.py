"""`byollm scaling run|fit|plot|predict`: a scaling-law study from the command line.

byollm scaling run --plan                                   # the default CPU sweep's runs
byollm scaling run --config cpu-smoke --out_dir runs        # train them (skips finished ones)
byollm scaling run --budgets 1e12,3e12,1e13,3e13 --sizes 5  # any sweep key as --key value
byollm scaling fit runs/scaling-cpu                          # isoFLOP + L(N, D) -> fit.json
byollm scaling plot runs/scaling-cpu                         # four PNGs beside it
byollm scaling predict runs/scaling-cpu --budget 10x        # predict a 10x bigger run
byollm scaling predict runs/scaling-cpu --budget 10x --run  # ... then train it and compare
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from byollm.config import parse_override_args
from byollm.paths import user_path


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "scaling",
        help="sweep model sizes at fixed compute, fit scaling laws, predict a bigger run",
        description="A scaling-law study: train several model sizes at each compute budget, fit "
        "isoFLOP curves and L(N, D) = E + A/N^alpha + B/D^beta, draw them, and predict a "
        "larger run before training it. See docs/08-scaling-laws.md.",
    )
    verbs = parser.add_subparsers(dest="scaling_verb", metavar="<command>", required=True)

    p = verbs.add_parser(
        "run",
        help="train the sweep's runs (finished ones are skipped, interrupted ones resumed)",
        description="Train every point of a sweep: for each budget, several depths, each to "
        "exactly that many training FLOPs. Any sweep key can be overridden with --key value "
        "(e.g. --budgets 1e12,3e12 --sizes 5 --threads 2). Results: <out_dir>/<name>/results.jsonl.",
        allow_abbrev=False,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--config",
        metavar="PRESET|FILE",
        default=None,
        help="a sweep preset (cpu [default], cpu-smoke, gpu) or a TOML file",
    )
    p.add_argument(
        "--plan",
        action="store_true",
        help="print the runs and exit, training nothing (the data is prepared, for its vocabulary)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="train every point again from scratch (after a change of rules)",
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_run, accepts_overrides=True)

    p = verbs.add_parser(
        "fit",
        help="fit isoFLOP curves, power laws and L(N, D) to a sweep",
        description="Fit a sweep's results; prints a report, writes fit.json.",
    )
    _sweep_argument(p)
    p.add_argument(
        "--params",
        default="non_embedding_head",
        choices=("total", "non_embedding", "non_embedding_head"),
        help="which parameter count is N (default: non_embedding_head)",
    )
    p.add_argument("--bootstrap", type=int, default=200, help="resamples for the intervals")
    p.add_argument("--seed", type=int, default=0, help="seed of the bootstrap resamples")
    p.add_argument("--out", type=user_path, help="where to write fit.json (default: the sweep's)")
    p.add_argument("--json", action="store_true", help="print the fit as JSON, not a report")
    p.set_defaults(func=_fit)

    p = verbs.add_parser(
        "plot",
        help="draw a sweep's fits as PNGs",
        description="isoflops.png, optimal.png, surface.png, residuals.png.",
    )
    _sweep_argument(p)
    p.add_argument("--out", type=user_path, help="folder for the PNGs (default: the sweep's)")
    p.set_defaults(func=_plot)

    p = verbs.add_parser(
        "predict",
        help="predict a bigger run's bits per byte from the fits (and --run it)",
        description="From fit.json: the compute-optimal model at --budget and its predicted val "
        "bits per byte; with --run, train that run and report the prediction's error.",
    )
    _sweep_argument(p)
    p.add_argument(
        "--budget",
        default="10x",
        help="training FLOPs (3e14) or a multiple of the largest budget (default 10x)",
    )
    p.add_argument("--run", action="store_true", help="train the predicted run and compare")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.set_defaults(func=_predict)


def _sweep_argument(p) -> None:
    p.add_argument("sweep", type=user_path, help="a sweep folder (holding results.jsonl)")


def _progress(args) -> bool:
    return not args.no_progress and sys.stderr.isatty()


def _run(args) -> int:
    from byollm.scaling.sweep import (
        describe_point,
        format_plan,
        load_sweep_config,
        plan_sweep,
        prepare_sweep_data,
        run_sweep,
    )

    config = load_sweep_config(args.config, parse_override_args(args.overrides))
    if args.plan:
        _, meta = prepare_sweep_data(config, progress=_progress(args))
        points = plan_sweep(config, meta["vocab_size"])
        print(format_plan([describe_point(p, config) for p in points]))
        total = sum(p.budget for p in points)
        print(f"{len(points)} runs, {total:.3g} training FLOPs in all, in {config.sweep_dir()}")
        return 0
    records = run_sweep(config, overwrite=args.overwrite, progress=_progress(args))
    hours = sum(r["wall_s"] for r in records) / 3600
    print(
        f"\n{len(records)} runs done ({hours:.2f} h of training in all): "
        f"{config.sweep_dir() / 'results.jsonl'}"
    )
    print(f"next: byollm scaling fit {config.sweep_dir()}")
    return 0


def _fit(args) -> int:
    from byollm.formats import check_replaceable
    from byollm.scaling.fit import FIT_FILE, FIT_FORMAT, fit_sweep, format_fit, save_fit
    from byollm.scaling.sweep import sweep_records

    out = args.out or (args.sweep if args.sweep.is_dir() else args.sweep.parent) / FIT_FILE
    check_replaceable(out, format=FIT_FORMAT, what="fit")
    fit = fit_sweep(
        sweep_records(args.sweep), params=args.params, bootstrap=args.bootstrap, seed=args.seed
    )
    save_fit(fit, out)
    if args.json:
        print(json.dumps(fit, indent=1))
    else:
        print(format_fit(fit))
        print(f"\nwrote {out}")
    return 0


def _plot(args) -> int:
    from byollm.scaling.plot import plot_sweep

    for path in plot_sweep(args.sweep, args.out):
        print(path)
    return 0


def _predict(args) -> int:
    from byollm.scaling.predict import format_prediction, predict_run, run_prediction

    if args.run:
        outcome = run_prediction(args.sweep, args.budget, progress=_progress(args))
    else:
        outcome = predict_run(args.sweep, args.budget)
    print(format_prediction(outcome))
    if not args.run:
        print(
            f"\nto train it: byollm scaling predict {Path(args.sweep)} --budget {args.budget} --run"
        )
    return 0
