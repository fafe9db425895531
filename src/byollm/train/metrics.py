"""What the user sees of a run: the metrics log, the loss plot, MFU, optional loggers.

Design choices:
- **JSONL**, one JSON object per line: `{"kind": "train", "step": 10, "loss": ..., "tokens": ...}`
  or `{"kind": "eval", "step": 250, "train_loss": ..., "val_loss": ..., "val_bpb": ...}` (plus
  benchmark accuracies such as `"blimp_acc"` when the config's `eval_tasks` asks). Any tool
  can read it (`pandas.read_json(path, lines=True)`), it survives a crash (each line is flushed),
  and on resume the lines after the checkpoint's step are dropped so the log tells one story.
- **MFU** (model FLOPs utilisation) = FLOPs the model needs per second at the measured speed,
  divided by the device's *theoretical* peak (`peak_flops`): NVIDIA's datasheet number for the
  GPU and dtype, or for a CPU cores x clock x the FLOPs its vector units can do per cycle. A
  peak is an upper bound, so MFU stays below 100% however busy the machine is; a peak measured
  in the run (as byollm once did) moved with the load and let MFU read 115%. Where byollm knows
  no such bound (an unlisted GPU, Apple silicon) MFU is reported as null, not guessed.
- TensorBoard and Weights & Biases are used only when asked for and importable.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import platform
import re
import time
from pathlib import Path

import torch

from byollm.errors import ByollmError
from byollm.train.rundir import TENSORBOARD_DIR


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
        try:
            with self.path.open("a") as f:
                f.write(json.dumps(record) + "\n")
        except OSError as e:  # a full disk: one line, the checkpoints are untouched
            raise ByollmError(f"{self.path}: cannot write ({e.strerror})") from None


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
    try:
        fig.savefig(out_png)
    except OSError as e:  # a full disk: one line
        raise ByollmError(f"{out_png}: cannot write ({e.strerror})") from None
    return Path(out_png)


# Dense (no sparsity) peak TFLOP/s of NVIDIA GPUs from NVIDIA's datasheets and whitepapers:
# (fp32 on CUDA cores, tf32 tensor cores, bf16 and fp16 tensor cores with fp32 accumulation).
# The first name fragment found in torch.cuda.get_device_name() wins, so longer names come first;
# a variant not listed gets its family's fastest numbers (an upper bound, e.g. A10G -> A10).
GPU_PEAK_TFLOPS: list[tuple[str, tuple[float, float, float, float]]] = [
    ("GB200", (80.0, 1250.0, 2500.0, 2500.0)),
    ("B200", (80.0, 1125.0, 2250.0, 2250.0)),
    ("H100 PCIe", (51.2, 378.0, 756.0, 756.0)),
    ("H100 NVL", (60.0, 417.5, 835.5, 835.5)),
    ("H200 NVL", (60.0, 417.5, 835.5, 835.5)),
    ("H100", (66.9, 494.7, 989.4, 989.4)),  # SXM
    ("H200", (66.9, 494.7, 989.4, 989.4)),  # SXM, and GH200
    ("A100", (19.5, 156.0, 312.0, 312.0)),
    ("A30", (10.3, 82.0, 165.0, 165.0)),
    ("A40", (37.4, 74.8, 149.7, 149.7)),
    ("A10", (31.2, 62.5, 125.0, 125.0)),  # A10G is slower
    ("L40S", (91.6, 183.0, 362.0, 362.0)),
    ("L40", (90.5, 90.5, 181.0, 181.0)),
    ("L4", (30.3, 60.0, 121.0, 121.0)),
    ("RTX 4090", (82.6, 82.6, 165.2, 330.3)),  # GeForce: fp16 may accumulate in fp16, 2x
    ("RTX 4080", (48.7, 48.7, 97.5, 194.9)),
    ("RTX 3090", (35.6, 35.6, 71.0, 142.0)),
    ("V100", (16.4, 16.4, 16.4, 130.0)),  # no tf32 or bf16 tensor cores
    ("T4", (8.1, 8.1, 8.1, 65.0)),
]

# FLOPs per cycle of one CPU core at most, in fp32: 2 (a fused multiply-add) x SIMD lanes x
# FMA units, taking the widest cores of each kind (two FMA units on x86, four 128-bit pipes on Arm).
CPU_FLOPS_PER_CYCLE = {"avx512f": 2 * 16 * 2, "avx2": 2 * 8 * 2, "x86": 2 * 4 * 2, "arm": 2 * 4 * 4}
# In bf16 or fp16, with the instructions for it (a /proc/cpuinfo flag): dot-product instructions
# do 2x fp32 (AVX-512 BF16/FP16, Arm's half-precision vectors), Arm's BFMMLA 4x, Intel's AMX
# tiles 1024 per cycle. Without them half precision is computed in fp32.
CPU_HALF_FLOPS_PER_CYCLE = {
    torch.bfloat16: {"avx512_bf16": 128, "amx_bf16": 1024, "bf16": 128},
    torch.float16: {"avx512_fp16": 128, "amx_fp16": 1024, "asimdhp": 64},
}


def peak_flops(device: torch.device, dtype: torch.dtype) -> float | None:
    """An upper bound on `device`'s FLOP/s in `dtype` (the MFU denominator), or None if unknown."""
    if device.type == "cuda":
        tf32 = torch.get_float32_matmul_precision() != "highest"
        return gpu_peak_flops(torch.cuda.get_device_name(device), dtype, tf32=tf32)
    if device.type == "cpu":
        return cpu_peak_flops(dtype)
    return None  # Apple's GPU (and its CPU's AMX units) publish no peak we could rely on


def gpu_peak_flops(name: str, dtype: torch.dtype, *, tf32: bool = False) -> float | None:
    """The datasheet peak of the NVIDIA GPU called `name` in `dtype`; None for an unlisted GPU.

    >>> gpu_peak_flops("NVIDIA H100 80GB HBM3", torch.bfloat16) / 1e12
    989.4
    """
    for fragment, (fp32, tf32_peak, bf16, fp16) in GPU_PEAK_TFLOPS:
        if fragment in name:
            if dtype == torch.bfloat16:
                return bf16 * 1e12
            if dtype == torch.float16:
                return fp16 * 1e12
            return (tf32_peak if tf32 else fp32) * 1e12
    return None


def cpu_peak_flops(
    dtype: torch.dtype,
    *,
    cores: int | None = None,
    ghz: float | None = None,
    flags: set[str] | None = None,
) -> float | None:
    """cores x clock x FLOPs per cycle: the most this CPU's vector units can do, or None.

    `cores` defaults to the threads torch uses (at most the CPUs this process may run on), `ghz`
    to the highest clock Linux reports (cpufreq's maximum, else /proc/cpuinfo), `flags` to the
    instruction-set flags of /proc/cpuinfo (plus "arm" on Arm). None off Linux, or when Linux
    reports no clock.

    >>> cpu_peak_flops(torch.float32, cores=2, ghz=2.5, flags={"avx2", "avx512f"}) / 1e9
    320.0
    """
    cores = cores or _usable_cores()
    ghz = ghz or _cpu_max_ghz()
    flags = _cpu_flags() if flags is None else flags
    kind = next((k for k in CPU_FLOPS_PER_CYCLE if k in flags), None)
    if kind is None and platform.machine() in ("x86_64", "AMD64"):
        kind = "x86"
    if not ghz or kind is None:
        return None
    per_cycle = CPU_FLOPS_PER_CYCLE[kind]
    for flag, half in CPU_HALF_FLOPS_PER_CYCLE.get(dtype, {}).items():
        if flag in flags:
            per_cycle = max(per_cycle, half)
    return cores * ghz * 1e9 * per_cycle


def _usable_cores() -> int:
    try:
        available = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        available = os.cpu_count() or 1
    return max(1, min(torch.get_num_threads(), available))


@functools.lru_cache(maxsize=1)
def _cpuinfo() -> str:
    try:
        return Path("/proc/cpuinfo").read_text(errors="replace")
    except OSError:
        return ""


def _cpu_flags() -> set[str]:
    """/proc/cpuinfo's "flags" (x86) or "Features" (Arm) of the first CPU, plus "arm" on Arm."""
    match = re.search(r"^(?:flags|Features)\s*:(.*)$", _cpuinfo(), re.MULTILINE)
    flags = set(match.group(1).split()) if match else set()
    if match and platform.machine() in ("aarch64", "arm64"):
        flags.add("arm")
    return flags


def _cpu_max_ghz() -> float | None:
    """The highest clock Linux reports: cpufreq's maximum (kHz), else /proc/cpuinfo's MHz."""
    khz = []
    for path in Path("/sys/devices/system/cpu").glob("cpu[0-9]*/cpufreq/cpuinfo_max_freq"):
        with contextlib.suppress(OSError, ValueError):
            khz.append(int(path.read_text()))
    if khz:
        return max(khz) / 1e6
    mhz = [float(m) for m in re.findall(r"^cpu MHz\s*:\s*([\d.]+)", _cpuinfo(), re.MULTILINE)]
    return max(mhz) / 1e3 if mhz else None


class Throughput:
    """Tokens per second and MFU, measured over the steps since the last measurement.

    `restart()` after evaluating and saving, so that only training time counts; `add(tokens)`
    after each step; `measure()` at each log line updates `tokens_per_second` and `mfu` (None
    when the device's peak is unknown).
    """

    def __init__(self, flops_per_token: float, peak_flops: float | None):
        self.flops_per_token = flops_per_token
        self.peak_flops = peak_flops
        self.tokens_per_second = 0.0
        self.mfu: float | None = None
        self.restart()

    def restart(self) -> None:
        self._start, self._tokens = time.perf_counter(), 0

    def add(self, tokens: int) -> None:
        self._tokens += tokens

    def measure(self) -> None:
        now = time.perf_counter()
        self.tokens_per_second = self._tokens / max(1e-9, now - self._start)
        if self.peak_flops:  # None where the device's peak is unknown
            self.mfu = self.tokens_per_second * self.flops_per_token / self.peak_flops
        self._start, self._tokens = now, 0


def format_mfu(mfu: float | None) -> str:
    """ "MFU 4.2%", or "MFU n/a" where the device's peak is unknown."""
    return "MFU n/a" if mfu is None else f"MFU {100 * mfu:.1f}%"


def measure_peak_flops(device: torch.device, dtype: torch.dtype, size: int = 1024) -> float:
    """FLOP/s of a square matrix product on `device` in `dtype`, as measured now.

    A benchmark figure (it moves with the machine's load), not the MFU denominator; see
    `peak_flops`. Its inputs come from a private generator: the global RNG is left alone.
    """
    if device.type == "cuda":
        size = 4096
    generator = torch.Generator(device=device).manual_seed(0)
    a = torch.randn(size, size, device=device, dtype=dtype, generator=generator)
    b = torch.randn(size, size, device=device, dtype=dtype, generator=generator)
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
            self.tb = SummaryWriter(str(run_dir / TENSORBOARD_DIR))
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
