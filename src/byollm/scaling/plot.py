"""The figures of a sweep: isoFLOP curves, optimal N and D against C, the fitted law, residuals.

    >>> paths = plot_sweep("runs/scaling-cpu")                # doctest: +SKIP
    >>> [p.name for p in paths]                               # doctest: +SKIP
    ['isoflops.png', 'optimal.png', 'surface.png', 'residuals.png']

Design choices:
- Each figure is a function of (records, fit) that returns a matplotlib Figure, so a notebook
  shows it inline and `plot_sweep` saves it: no figure reads files itself.
- Bare `Figure`s drawn by the Agg canvas (as `train.metrics.plot_losses`): no display needed, and
  the process's matplotlib backend is left alone.
- One colour per budget in every figure, from a sequential colormap: small budgets light, large
  ones dark, so the eye reads "more compute" the same way everywhere.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from byollm.errors import ByollmError
from byollm.paths import replaced_atomically
from byollm.scaling.fit import FIT_FILE, compute_optimal, load_fit, parametric_loss, power_law
from byollm.scaling.sweep import latest_records, sweep_records

FIGURES = ("isoflops", "optimal", "surface", "residuals")
PREDICTED_RUN = {"marker": "*", "ls": "none", "color": "tab:red", "ms": 14, "mec": "black"}


def _figure(width: float = 7.0, height: float = 4.5, columns: int = 1):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    axes = [fig.add_subplot(1, columns, i + 1) for i in range(columns)]
    return fig, axes


def _budget_colours(budgets) -> dict[float, tuple]:
    from matplotlib import colormaps

    cmap = colormaps["viridis_r"]
    budgets = sorted(budgets)
    steps = np.linspace(0.15, 0.9, len(budgets)) if len(budgets) > 1 else [0.6]
    return {b: cmap(s) for b, s in zip(budgets, steps)}


def _n(fit: dict) -> str:
    return f"params_{fit['params']}"


def isoflop_figure(records: list[dict], fit: dict):
    """Val loss against N at each budget, the fitted parabolas and their minima."""
    fig, (ax,) = _figure()
    colours = _budget_colours(fit["budgets"])
    key = _n(fit)
    for entry in fit["isoflops"]:
        runs = sorted((r for r in records if r["budget"] == entry["budget"]), key=lambda r: r[key])
        colour = colours[entry["budget"]]
        n = np.array([r[key] for r in runs], dtype=float)
        ax.plot(
            n, [r["val_loss"] for r in runs], "o", color=colour, label=f"C = {entry['budget']:.3g}"
        )
        if entry.get("coefficients"):  # drawn across the sizes it was fitted to
            low, high = np.log10(entry["fitted_sizes"])
            x = np.linspace(low - 0.1, high + 0.1, 100)
            ax.plot(10**x, np.polyval(entry["coefficients"], x), "-", color=colour, lw=1)
        if entry["has_minimum"]:
            ax.plot(entry["n_opt"], entry["loss_opt"], "*", color=colour, ms=14, mec="black")
    ax.set_xscale("log")
    ax.set_xlabel(f"N ({fit['params'].replace('_', '-')} parameters)")
    ax.set_ylabel("val loss (nats/token)")
    ax.set_title("isoFLOP curves: loss against size at fixed compute (star = floor)")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return fig


def optimal_figure(records: list[dict], fit: dict, holdout: list[dict] = ()):
    """N_opt, D_opt and the floor's loss L_opt against C (log-log) with the fitted power laws,
    and the predicted runs (predicted and measured) beside the loss frontier."""
    fig, axes = _figure(width=14, height=4.2, columns=3)
    minima = [f for f in fit["isoflops"] if f["has_minimum"]]
    budgets = np.array([f["budget"] for f in minima], dtype=float)
    top = max([max(fit["budgets"]) * 20] + [h["budget"] * 2 for h in holdout])
    span = np.geomspace(min(fit["budgets"]) / 2, top, 50)
    law = fit.get("parametric")
    panels = (
        (axes[0], "n_opt", "n_opt_law", "N_opt (parameters)"),
        (axes[1], "d_opt", "d_opt_law", "D_opt (tokens)"),
        (axes[2], "loss_opt", "loss_opt_law", "val loss at the optimum (nats/token)"),
    )
    for ax, what, law_key, label in panels:
        ax.plot(budgets, [f[what] for f in minima], "o", color="black", label="isoFLOP minima")
        if law_key in fit:
            exponent = fit[law_key]["exponent"]
            ax.plot(
                span,
                power_law(fit[law_key], span),
                "-",
                color="tab:blue",
                label=f"power law, exponent {exponent:.3g}",
            )
        if law is not None:
            key = "loss" if what == "loss_opt" else what  # compute_optimal's name for it
            optimum = [compute_optimal(law, c, fit["flops_per_param_token"])[key] for c in span]
            ax.plot(span, optimum, "--", color="tab:orange", label="from L(N, D)")
        if what == "loss_opt" and "loss_opt_e_law" in fit:
            bent = fit["loss_opt_e_law"]
            ax.plot(
                span,
                bent["E"] + power_law(bent, span),
                ":",
                color="tab:purple",
                label=f"bent towards E = {bent['E']:.2f}",
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("compute C (training FLOPs)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, which="both")
    from matplotlib.ticker import FormatStrFormatter

    for formatter in (axes[2].yaxis.set_major_formatter, axes[2].yaxis.set_minor_formatter):
        formatter(FormatStrFormatter("%.1f"))  # losses span less than a decade: no 10^x labels
    for h in holdout:
        label = f"{h['point']} predicted ({h.get('method', 'parametric')})"
        axes[2].plot(h["budget"], h["predicted_val_loss"], **PREDICTED_RUN, label=label)
        axes[2].plot(
            h["budget"],
            h["measured_val_loss"],
            "D",
            color="tab:green",
            mec="black",
            label=f"{h['point']} measured ({h['error_pct']:+.1f}% in bits/byte)",
        )
    for ax in axes:
        ax.legend(fontsize=7)
    fig.suptitle("compute-optimal model size, data and loss against compute")
    fig.tight_layout()
    return fig


def surface_figure(records: list[dict], fit: dict, holdout: list[dict] = ()):
    """The fitted L(N, D) as contours with the runs on it, and predicted against measured loss."""
    fig, (left, right) = _figure(width=11, height=4.5, columns=2)
    law = fit.get("parametric")
    key = _n(fit)
    n = np.array([r[key] for r in records], dtype=float)
    d = np.array([r["tokens"] for r in records], dtype=float)
    measured = np.array([r["val_loss"] for r in records])
    if law is None:
        left.text(0.5, 0.5, "L(N, D) needs at least 5 runs", ha="center", transform=left.transAxes)
        return fig
    grid_n = np.geomspace(n.min() / 2, n.max() * 2, 80)
    grid_d = np.geomspace(d.min() / 2, d.max() * 2, 80)
    surface = parametric_loss(law, grid_n[None, :], grid_d[:, None])
    levels = np.linspace(measured.min() * 0.97, measured.max() * 1.03, 12)
    contours = left.contour(grid_n, grid_d, surface, levels=levels, cmap="magma_r", linewidths=1)
    left.clabel(contours, fontsize=7, fmt="%.2f")
    left.scatter(
        n,
        d,
        c=measured,
        cmap="magma_r",
        vmin=levels[0],
        vmax=levels[-1],
        edgecolors="black",
        zorder=3,
    )
    left.set_xscale("log")
    left.set_yscale("log")
    left.set_xlabel("N (parameters)")
    left.set_ylabel("D (tokens)")
    left.set_title("fitted L(N, D) (contours) and the runs (dots, same colours)")

    predicted = parametric_loss(law, n, d)
    colours = _budget_colours(fit["budgets"])
    right.scatter(
        measured,
        predicted,
        c=[colours[r["budget"]] for r in records],
        edgecolors="black",
        label="sweep runs",
    )
    for h in holdout:
        label = f"predicted run {h['point']} (by {h.get('method', 'parametric')})"
        right.plot(h["measured_val_loss"], h["predicted_val_loss"], **PREDICTED_RUN, label=label)
    shown = [measured, predicted] + [
        [h["measured_val_loss"], h["predicted_val_loss"]] for h in holdout
    ]
    ends = [min(np.min(v) for v in shown), max(np.max(v) for v in shown)]
    right.plot(ends, ends, "-", color="grey", lw=1, label="prediction = measurement")
    right.set_xlabel("measured val loss")
    right.set_ylabel("predicted val loss (sweep runs: L(N, D) of the fit)")
    right.set_title("fit against measurement")
    right.grid(alpha=0.3)
    right.legend(fontsize=8)
    fig.tight_layout()
    return fig


def residual_figure(records: list[dict], fit: dict):
    """(measured - fitted) / fitted, in percent, against N; one colour per budget."""
    fig, (ax,) = _figure()
    law = fit.get("parametric")
    key = _n(fit)
    colours = _budget_colours(fit["budgets"])
    if law is not None:
        for budget in fit["budgets"]:
            runs = [r for r in records if r["budget"] == budget]
            n = np.array([r[key] for r in runs], dtype=float)
            fitted = parametric_loss(law, n, np.array([r["tokens"] for r in runs], dtype=float))
            residual = 100 * (np.array([r["val_loss"] for r in runs]) - fitted) / fitted
            ax.plot(n, residual, "o-", color=colours[budget], label=f"C = {budget:.3g}")
        ax.legend(fontsize=8)
    ax.axhline(0, color="grey", lw=1)
    ax.set_xscale("log")
    ax.set_xlabel("N (parameters)")
    ax.set_ylabel("residual of L(N, D) (%)")
    ax.set_title("where the law misses: measured minus fitted loss")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    return fig


def plot_sweep(
    sweep_dir: str | Path, out_dir: str | Path | None = None, fit: dict | None = None
) -> list[Path]:
    """Save the four figures of a sweep folder (its results.jsonl and fit.json) as PNGs."""
    from byollm.scaling.predict import PREDICTIONS_FILE, read_predictions

    sweep_dir = Path(sweep_dir)
    out_dir = Path(out_dir) if out_dir else sweep_dir
    out_dir.mkdir(parents=True, exist_ok=True)
    records = sweep_records(sweep_dir)
    fit = fit or load_fit(sweep_dir / FIT_FILE)
    predictions = sweep_dir / PREDICTIONS_FILE
    holdout = []
    if predictions.exists():
        latest = latest_records(read_predictions(predictions)).values()
        holdout = [p for p in latest if "measured_val_loss" in p]
    figures = {
        "isoflops": isoflop_figure(records, fit),
        "optimal": optimal_figure(records, fit, holdout),
        "surface": surface_figure(records, fit, holdout),
        "residuals": residual_figure(records, fit),
    }
    paths = [out_dir / f"{name}.png" for name in FIGURES]
    own_folder = out_dir.resolve() == sweep_dir.resolve()  # a sweep's folder holds its figures
    for path in paths:  # all checked before any is written
        if path.exists() and not own_folder and not _drawn_by_byollm(path):
            raise ByollmError(
                f"{path} exists and is not a plot byollm drew; byollm replaces only its own "
                "files: choose another --out, or move it away"
            )
    for name, path in zip(FIGURES, paths):
        with replaced_atomically(path, what="plot") as tmp:
            figures[name].savefig(tmp, format="png", metadata={"Software": PNG_SOFTWARE})
    return paths


# the PNG text chunk that marks a figure as ours, so a later `plot --out` may replace it
PNG_SOFTWARE = "byollm scaling plot"


def _drawn_by_byollm(path: Path) -> bool:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            return image.info.get("Software") == PNG_SOFTWARE
    except (OSError, UnidentifiedImageError):
        return False
