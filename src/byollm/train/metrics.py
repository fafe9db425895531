"""What the user sees of a run: the metrics log, the loss plot, MFU, optional loggers.

Design choices:
- **JSONL**, one JSON object per line: `{"kind": "train", "step": 10, "loss": ..., "tokens": ...}`
  or `{"kind": "eval", "step": 250, "train_loss": ..., "val_loss": ..., "val_bpb": ...}` (plus
  benchmark accuracies such as `"blimp_acc"` when the config's `eval_tasks` asks). Any tool
  can read it (`pandas.read_json(path, lines=True)`), it survives a crash (each line is flushed),
  and on resume the lines after the checkpoint's step are dropped so the log tells one story.
- **MFU** (model FLOPs utilisation) = FLOPs the model needs per second at the measured speed,
  divided by the device's peak. We *measure* the peak at start-up with a large matrix product in
  the training dtype (CPUs have no published peak that means anything), so MFU answers "how much
  of what this machine's matmuls can do are we using?".
- TensorBoard and Weights & Biases are used only when asked for and importable.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import torch

from byollm.errors import ByollmError


class MetricsLog:
    """Append-only JSONL log; `truncate_after(step)` rewinds it on resume."""

    def __init__(self, path: str | Path, enabled: bool = True):
        self.path = Path(path)
        self.enabled = enabled

    def truncate_after(self, step: int) -> None:
        if not self.enabled or not self.path.exists():
            return
        kept = [r for r in read_metrics(self.path) if r.get("step", 0) <= step]
        self.path.write_text("".join(json.dumps(r) + "\n" for r in kept))

    def write(self, record: dict) -> None:
        if not self.enabled:
            return
        with self.path.open("a") as f:
            f.write(json.dumps(record) + "\n")


def read_metrics(path: str | Path) -> list[dict]:
    """The records of a metrics.jsonl (a partly written last line is ignored)."""
    records = []
    for line in Path(path).read_text().splitlines():
        try:
            records.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return records


def plot_losses(metrics_path: str | Path, out_png: str | Path, title: str = "") -> Path:
    """Train and val loss against tokens seen, as a PNG (with any task accuracies)."""
    # A bare Figure drawn by the Agg canvas: no display needed, and unlike matplotlib.use("Agg")
    # it does not switch the backend of the whole process (inline plots in a notebook keep working).
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    records = read_metrics(metrics_path)
    train = [(r["tokens"], r["loss"]) for r in records if r.get("kind") == "train"]
    evals = [r for r in records if r.get("kind") == "eval"]
    fig = Figure(figsize=(7, 4.5), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if train:
        ax.plot(*zip(*train), label="train (batch)", color="tab:blue", alpha=0.35, lw=1)
    if evals:
        tokens = [r["tokens"] for r in evals]
        ax.plot(tokens, [r["train_loss"] for r in evals], "o-", color="tab:blue", label="train")
        ax.plot(tokens, [r["val_loss"] for r in evals], "o-", color="tab:orange", label="val")
    ax.set_xlabel("tokens seen")
    ax.set_ylabel("cross-entropy loss (nats/token)")
    ax.set_title(title or Path(metrics_path).parent.name)
    ax.grid(alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    # Benchmark accuracies of `eval_tasks` (blimp_acc, ...) on a second axis: grammar emerging
    # as the loss falls.
    task_keys = sorted({k for r in evals for k in r if "_acc" in k})
    if task_keys:
        acc_ax = ax.twinx()
        colors = ["tab:green", "tab:red", "tab:purple", "tab:brown", "tab:olive", "tab:cyan"]
        for key, color in zip(task_keys, colors * len(task_keys)):
            points = [(r["tokens"], r[key]) for r in evals if key in r]
            acc_ax.plot(*zip(*points), "s--", color=color, label=key)
        acc_ax.set_ylim(0, 1)
        acc_ax.set_ylabel("task accuracy")
        more_handles, more_labels = acc_ax.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    ax.legend(handles, labels)
    fig.tight_layout()
    fig.savefig(out_png)
    return Path(out_png)


def measure_peak_flops(device: torch.device, dtype: torch.dtype, size: int = 1024) -> float:
    """FLOP/s of a square matrix product on `device` in `dtype`: our MFU denominator."""
    if device.type == "cuda":
        size = 4096
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    _sync(device)
    a @ b  # warm-up
    _sync(device)
    repeats, start = 0, time.perf_counter()
    while time.perf_counter() - start < 0.2 or repeats < 3:
        a @ b
        repeats += 1
        _sync(device)
    return 2 * size**3 * repeats / (time.perf_counter() - start)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()
    elif device.type == "mps":
        torch.mps.synchronize()


class ExternalLoggers:
    """TensorBoard / W&B, when the config asks for them and they are installed."""

    def __init__(self, run_dir: Path, config: dict, tensorboard: bool, wandb: bool, name: str):
        self.tb = None
        self.wandb = None
        if tensorboard:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise ByollmError(
                    "tensorboard = true but the tensorboard package is not installed "
                    "(pip install tensorboard)"
                ) from None
            self.tb = SummaryWriter(str(run_dir / "tensorboard"))
        if wandb:
            try:
                import wandb as wandb_module
            except ImportError:
                raise ByollmError(
                    "wandb = true but the wandb package is not installed (pip install wandb)"
                ) from None
            self.wandb = wandb_module.init(project="byollm", name=name, config=config)

    def log(self, record: dict) -> None:
        step = record.get("step", 0)
        values = {
            f"{record['kind']}/{k}": v
            for k, v in record.items()
            if isinstance(v, (int, float)) and k not in ("step", "kind")
        }
        if self.tb is not None:
            for key, value in values.items():
                self.tb.add_scalar(key, value, step)
        if self.wandb is not None:
            self.wandb.log(values, step=step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()
