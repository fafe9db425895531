"""Training-step speed of byollm's GPT against Hugging Face's GPT2LMHeadModel, same weights.

    python benchmarks/model.py                 # every row, prints a markdown table
    python benchmarks/model.py --quick         # nanogpt-cpu only
    python benchmarks/model.py --profile       # also where the time goes (torch.profiler)

For each model size (nanoGPT's CPU config at batch 12 x 64, GPT-2 124M at batch 4 x 256), each
precision (float32; bfloat16 autocast) and with/without torch.compile, it times forward +
backward (the loss on the full logits, as in training) for ours and for transformers' GPT-2
loaded from our exported weights (`to_hf`), in the same process, alternating so that a change in
machine load hits both. MFU = model FLOPs per second (`model_info`'s flops_per_token_train x
tokens/s) / the matmul peak measured at the start of the same run in that precision.

A row whose estimated time (FLOPs / measured peak) is over --max-row-seconds is skipped with that
estimate shown: on CPUs without native bf16 (AVX2 only), bf16 matmuls run ~100x slower than
fp32, so GPT-2 124M in bf16 would take many minutes per step there.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "src"))

from byollm.model import GPT, GPTConfig, model_info  # noqa: E402
from byollm.model.convert import to_hf  # noqa: E402

SETUPS = {
    # name: (config, batch size, sequence length, timed fp32 steps by default)
    "nanogpt-cpu": (GPTConfig.from_preset("nanogpt-cpu"), 12, 64, 20),
    "gpt2-124M": (GPTConfig.from_preset("gpt2"), 4, 256, 3),
}


def matmul_peak(dtype: torch.dtype, device: torch.device, seconds: float = 1.0) -> float:
    """Best FLOP/s of square matmuls (n = 256 .. 1024) in `dtype`: the roofline MFU divides by."""
    best = 0.0
    for n in (256, 512, 1024):
        a = torch.randn(n, n, device=device, dtype=dtype)
        b = torch.randn(n, n, device=device, dtype=dtype)
        a @ b  # warm-up
        reps, start = 0, time.perf_counter()
        while True:
            a @ b
            reps += 1
            _sync(device)
            elapsed = time.perf_counter() - start
            if elapsed > seconds / 3:
                break
        best = max(best, 2 * n**3 * reps / elapsed)
    return best


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def make_pair(config: GPTConfig, device: torch.device):
    """Our GPT and transformers' GPT2LMHeadModel with identical weights (via our exporter)."""
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    torch.manual_seed(0)
    ours = GPT(config)
    with tempfile.TemporaryDirectory() as tmp:
        to_hf(ours, tmp)
        hf = transformers.GPT2LMHeadModel.from_pretrained(tmp, attn_implementation="sdpa")
    return ours.to(device).train(), hf.to(device).train()


def ours_step(model, idx, targets):
    _, loss = model(idx, targets)
    return loss


def hf_step(model, idx, targets):
    logits = model(input_ids=idx).logits
    return F.cross_entropy(logits.float().view(-1, logits.size(-1)), targets.view(-1))


def time_steps(step, model, idx, targets, autocast, n_steps: int, device) -> list[float]:
    times = []
    for _ in range(n_steps):
        model.zero_grad(set_to_none=True)
        _sync(device)
        start = time.perf_counter()
        with autocast:
            loss = step(model, idx, targets)
        loss.backward()
        _sync(device)
        times.append(time.perf_counter() - start)
    return times


def bench_setup(name, precision, compiled, args, device, peaks) -> list[dict]:
    config, B, T, default_steps = SETUPS[name]
    dtype = torch.float32 if precision == "fp32" else torch.bfloat16
    flops_per_token = model_info(config, seq_len=T)["flops_per_token_train"]
    tokens = B * T
    est_step = flops_per_token * tokens / peaks[precision]
    # Eager steps to time; compiled runs also pay the compile on the first (warm-up) steps.
    n_steps = (args.steps or default_steps) if precision == "fp32" else args.bf16_steps
    est_row = est_step * (n_steps + args.warmup) * 2  # two models
    base = {
        "setup": f"{name} B={B} T={T}",
        "precision": precision,
        "compile": "yes" if compiled else "no",
    }
    if est_row > args.max_row_seconds:
        note = f"skipped: ~{est_step:.0f} s/step estimated at {peaks[precision] / 1e9:.1f} GFLOP/s"
        return [{**base, "impl": impl, "note": note} for impl in ("byollm", "HF")]
    ours, hf = make_pair(config, device)
    g = torch.Generator().manual_seed(0)
    idx = torch.randint(0, config.vocab_size, (B, T), generator=g).to(device)
    targets = torch.randint(0, config.vocab_size, (B, T), generator=g).to(device)
    autocast = (
        contextlib.nullcontext()
        if precision == "fp32"
        else torch.autocast(device_type=device.type, dtype=dtype)
    )
    runs = {"byollm": (ours_step, ours), "HF": (hf_step, hf)}
    if compiled:
        runs = {k: (torch.compile(step), m) for k, (step, m) in runs.items()}
    times = {k: [] for k in runs}
    compile_s = {}
    for k, (step, model) in runs.items():  # warm-up (and compile)
        start = time.perf_counter()
        time_steps(step, model, idx, targets, autocast, args.warmup, device)
        compile_s[k] = time.perf_counter() - start
    for _ in range(n_steps):  # alternate so load changes hit both
        for k, (step, model) in runs.items():
            times[k] += time_steps(step, model, idx, targets, autocast, 1, device)
    rows = []
    for k in runs:
        # The best step is what the code costs; the median shows how much a busy machine adds.
        step_s = min(times[k])
        tok_s = tokens / step_s
        mfu = flops_per_token * tok_s / peaks[precision]
        note = f"warm-up {compile_s[k]:.0f} s incl. compile" if compiled else ""
        rows.append(
            {
                **base,
                "impl": k,
                "step_ms": 1000 * step_s,
                "tok_s": tok_s,
                "mfu": mfu,
                "median_ms": 1000 * statistics.median(times[k]),
                "steps": n_steps,
                "note": note,
            }
        )
    rows[0]["speedup"] = rows[1]["step_ms"] / rows[0]["step_ms"]
    rows[0]["speedup_median"] = rows[1]["median_ms"] / rows[0]["median_ms"]
    return rows


def profile(name: str, device: torch.device, steps: int = 3) -> str:
    """The top operators of our forward+backward (fp32, eager), by self CPU time."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    config, B, T, _ = SETUPS[name]
    ours, _ = make_pair(config, device)
    idx = torch.randint(0, config.vocab_size, (B, T), device=device)
    time_steps(ours_step, ours, idx, idx, contextlib.nullcontext(), 1, device)
    with torch_profile(activities=[ProfilerActivity.CPU]) as prof:
        time_steps(ours_step, ours, idx, idx, contextlib.nullcontext(), steps, device)
    averages = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in averages)
    groups = {
        "matmul (mm, addmm, bmm)": ("aten::mm", "aten::addmm", "aten::bmm"),
        "attention kernels": ("flash_attention", "scaled_dot_product"),
        "layer norm": ("layer_norm",),
        "GELU": ("gelu",),
        "cross-entropy": ("log_softmax", "nll_loss"),
    }
    shares = []
    for label, needles in groups.items():
        t = sum(e.self_cpu_time_total for e in averages if any(n in e.key for n in needles))
        shares.append(f"{label} {100 * t / total:.0f}%")
    summary = "Self CPU time by kind: " + ", ".join(shares) + ", the rest: copies, adds, sums."
    return summary + "\n\n" + averages.table(sort_by="self_cpu_time_total", row_limit=12)


def markdown(rows: list[dict]) -> str:
    head = (
        "| setup | precision | compile | impl | best ms/step | median ms/step | tokens/s "
        "| MFU | speed vs HF (best / median) | note |"
    )
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        if "step_ms" not in r:
            lines.append(
                f"| {r['setup']} | {r['precision']} | {r['compile']} | {r['impl']} "
                f"| – | – | – | – | | {r['note']} |"
            )
            continue
        speed = f"{r['speedup']:.2f}x / {r['speedup_median']:.2f}x" if "speedup" in r else ""
        lines.append(
            f"| {r['setup']} | {r['precision']} | {r['compile']} | {r['impl']} | "
            f"{r['step_ms']:.1f} | {r['median_ms']:.1f} | {r['tok_s']:,.0f} | "
            f"{100 * r['mfu']:.1f}% | {speed} | {r['steps']} steps. {r['note']} |"
        )
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="only the nanogpt-cpu rows")
    parser.add_argument("--steps", type=int, help="timed fp32 steps per row (default 20 / 3)")
    parser.add_argument("--bf16-steps", type=int, default=2, help="timed steps per bf16 row")
    parser.add_argument(
        "--warmup", type=int, default=1, help="untimed steps (compile happens here)"
    )
    parser.add_argument(
        "--max-row-seconds",
        type=float,
        default=900.0,
        help="skip rows estimated to take longer (bf16 on AVX2 CPUs)",
    )
    parser.add_argument("--no-compile", action="store_true", help="skip the torch.compile rows")
    parser.add_argument("--profile", action="store_true", help="print where our time goes")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    warnings.filterwarnings("ignore")
    device = torch.device(args.device)
    load_before = os.getloadavg()[0]
    peaks = {
        "fp32": matmul_peak(torch.float32, device),
        "bf16": matmul_peak(torch.bfloat16, device),
    }
    rows = []
    for name in ["nanogpt-cpu"] if args.quick else list(SETUPS):
        for precision in ("fp32", "bf16"):
            for compiled in (False,) if args.no_compile else (False, True):
                rows += bench_setup(name, precision, compiled, args, device, peaks)
                print(markdown(rows[-2:]).splitlines()[-2:], file=sys.stderr, flush=True)
    load_after = os.getloadavg()[0]
    cpu = platform.processor() or platform.machine()
    print(
        f"\nMachine: {cpu}, {os.cpu_count()} CPUs, {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}; device {device}. Date {datetime.date.today()}. "
        f"Load average (1 min) {load_before:.2f} at start, {load_after:.2f} at end."
    )
    print(
        f"Matmul peak measured in this run: fp32 {peaks['fp32'] / 1e9:.1f} GFLOP/s, "
        f"bf16 {peaks['bf16'] / 1e9:.1f} GFLOP/s.\n"
    )
    print(markdown(rows))
    if args.profile:
        for name in ["nanogpt-cpu"] if args.quick else list(SETUPS):
            print(f"\nProfile, byollm {name}, fp32 eager, forward + backward:\n")
            print(profile(name, device))


if __name__ == "__main__":
    main()
