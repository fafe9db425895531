"""Training benchmark on Tiny Shakespeare: nanoGPT's CPU configuration, the same model in Hugging
Face transformers with a plain PyTorch loop, and our default preset against the wall clock.

    python benchmarks/train_shakespeare.py                 # everything (~15 minutes on 2 cores)
    python benchmarks/train_shakespeare.py --part nanogpt  # or: hf, default
    python benchmarks/train_shakespeare.py --part default --set max_steps=400 --set lr=0.006

Parts:
- `nanogpt`: configs/nanogpt-cpu.toml through `byollm train` (char-level, 4 layers, 4 heads,
  128 wide, block 64, batch 12, 2000 iterations, lr 1e-3): ms/iteration, tokens/s, MFU, wall
  time, final val loss (nanoGPT reports 1.88).
- `hf`: the same shapes as `GPT2LMHeadModel`, trained by a plain loop (AdamW, same batch), against
  our GPT in the identical loop, for raw ms/iteration.
- `default`: the default preset (shakespeare-char); val loss after 2, 5 and 10 minutes of wall
  clock and the time to reach val loss 1.88 and 1.60, read from its metrics.jsonl.

Record the machine load (`uptime`) with the numbers: on a shared machine they move a lot.
The corpus comes through the normal registry (set BYOLLM_MIRROR=file:///path/to/shared/data to
read a local copy).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import tempfile
import time
from pathlib import Path

import torch

from byollm.config import parse_override_args
from byollm.train import load_train_config, train
from byollm.train.metrics import measure_peak_flops, read_metrics
from byollm.train.rundir import METRICS_FILE

ROOT = Path(__file__).resolve().parents[1]


def load_average() -> str:
    try:
        return " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        return "?"


def run_preset(preset: str, overrides: dict[str, str], out_dir: Path) -> dict:
    overrides = {"out_dir": str(out_dir), **overrides}
    config = load_train_config(ROOT / "configs" / f"{preset}.toml", overrides)
    start = time.perf_counter()
    summary = train(config, overwrite=True, progress=False, log=lambda *a: None)
    summary["wall_s"] = time.perf_counter() - start  # includes evaluation and checkpoints
    summary["metrics"] = read_metrics(Path(summary["run_dir"]) / METRICS_FILE)
    summary["config"] = {"batch_size": config.batch_size, "block_size": config.model.block_size}
    return summary


def part_nanogpt(overrides, out_dir) -> dict:
    s = run_preset("nanogpt-cpu", overrides, out_dir)
    train_lines = [r for r in s["metrics"] if r["kind"] == "train"]
    tok_s = sorted(r["tokens_per_s"] for r in train_lines)[len(train_lines) // 2]  # median
    tokens_per_step = s["config"]["batch_size"] * s["config"]["block_size"]
    return {
        "steps": s["steps"],
        "ms_per_iter": round(1000 * tokens_per_step / tok_s, 1),
        "tokens_per_s": round(tok_s),
        "mfu": sorted(r["mfu"] for r in train_lines)[len(train_lines) // 2],
        "wall_s": round(s["wall_s"], 1),
        "final_val_loss": round(s["final_val_loss"], 4),
        "evals": [
            (r["step"], round(r["val_loss"], 4), r["elapsed"])
            for r in s["metrics"]
            if r["kind"] == "eval"
        ],
    }


def part_hf(rounds: int = 10, iters_per_round: int = 20) -> dict:
    """Raw training-loop speed: Hugging Face GPT-2 vs ours, same shapes, same plain loop.

    Three contenders, run in alternation (`rounds` x `iters_per_round` steps each, after a
    warm-up) so that load changes on a shared machine hit all of them; the median round counts.
    - `hf`: `GPT2LMHeadModel` with the exact GELU (nanoGPT's), biases (GPT-2 always has them),
      `torch.optim.AdamW`;
    - `ours_same_model`: our GPT with the same biases, same loop and optimizer;
    - `ours_nanogpt_config`: our GPT as configs/nanogpt-cpu.toml builds it (no biases, as
      nanoGPT) with the fused AdamW that `byollm train` uses on the CPU.
    """
    from transformers import GPT2Config, GPT2LMHeadModel

    from byollm.model import GPT, GPTConfig

    torch.manual_seed(0)
    vocab, block, batch = 65, 64, 12
    hf = GPT2LMHeadModel(
        GPT2Config(
            vocab_size=vocab,
            n_positions=block,
            n_embd=128,
            n_layer=4,
            n_head=4,
            activation_function="gelu",  # the exact (erf) GELU of nanoGPT and our gelu_exact
            resid_pdrop=0.0,
            embd_pdrop=0.0,
            attn_pdrop=0.0,
        )
    )
    same = GPT(GPTConfig.from_preset("nanogpt-cpu", vocab_size=vocab, bias=True))
    assert same.config.mlp == "gelu_exact"  # the same activation as the HF model above
    toml = load_train_config(ROOT / "configs" / "nanogpt-cpu.toml", {}).model
    nanogpt = GPT(GPTConfig(**{**dataclasses.asdict(toml), "vocab_size": vocab}))
    x = torch.randint(0, vocab, (batch, block))
    contenders = {
        "hf": (lambda: hf(input_ids=x, labels=x).loss, torch.optim.AdamW(hf.parameters(), lr=1e-3)),
        "ours_same_model": (lambda: same(x, x)[1], torch.optim.AdamW(same.parameters(), lr=1e-3)),
        "ours_nanogpt_config": (
            lambda: nanogpt(x, x)[1],
            torch.optim.AdamW(nanogpt.parameters(), lr=1e-3, fused=True),
        ),
    }

    def run(name, iters):
        loss_fn, opt = contenders[name]
        start = time.perf_counter()
        for _ in range(iters):
            loss_fn().backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        return 1000 * (time.perf_counter() - start) / iters

    times = {name: [] for name in contenders}
    for name in contenders:
        run(name, 10)  # warm-up
    for _ in range(rounds):
        for name in contenders:
            times[name].append(run(name, iters_per_round))
    results = {}
    for name, ms_list in times.items():
        ms = sorted(ms_list)[len(ms_list) // 2]
        results[name] = {
            "ms_per_iter": round(ms, 2),
            "best_round_ms": round(min(ms_list), 2),
            "tokens_per_s": round(batch * block / ms * 1000),
        }
    for name in ("ours_same_model", "ours_nanogpt_config"):
        results[f"speedup_{name}_vs_hf"] = round(
            results["hf"]["ms_per_iter"] / results[name]["ms_per_iter"], 2
        )
    return results


def part_default(overrides, out_dir) -> dict:
    overrides = {"eval_interval": "100", **overrides}
    s = run_preset("shakespeare-char", overrides, out_dir)
    evals = [r for r in s["metrics"] if r["kind"] == "eval"]

    def loss_at(seconds):
        before = [r["val_loss"] for r in evals if r["elapsed"] <= seconds]
        return round(min(before), 4) if before else None

    def time_to(loss):
        hits = [r["elapsed"] for r in evals if r["val_loss"] <= loss]
        return round(hits[0], 1) if hits else None

    return {
        "steps": s["steps"],
        "wall_s": round(s["wall_s"], 1),
        "final_val_loss": round(s["final_val_loss"], 4),
        "best_val_loss": round(s["best_val_loss"], 4),
        "val_loss_at_2min": loss_at(120),
        "val_loss_at_5min": loss_at(300),
        "val_loss_at_10min": loss_at(600),
        "seconds_to_1.88": time_to(1.88),
        "seconds_to_1.60": time_to(1.60),
        "tokens_per_s": s["tokens_per_s"],
        "evals": [(r["step"], round(r["val_loss"], 4), r["elapsed"]) for r in evals],
        "sample": s["sample"][:300],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--part", choices=["all", "nanogpt", "hf", "default"], default="all")
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="config override for the trained parts, e.g. --set max_steps=300",
    )
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0 = default)")
    parser.add_argument("--json", type=Path, default=None, help="also write the results here")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    overrides = parse_override_args([f"--{kv}" for kv in args.set])
    results = {
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "fp32_matmul_gflops": round(
            measure_peak_flops(torch.device("cpu"), torch.float32) / 1e9, 1
        ),
        "load_before": load_average(),
    }
    with tempfile.TemporaryDirectory(prefix="byollm-bench-") as tmp:
        if args.part in ("all", "nanogpt"):
            results["nanogpt_cpu"] = part_nanogpt(overrides, Path(tmp))
            print(json.dumps({"nanogpt_cpu": results["nanogpt_cpu"]}), flush=True)
        if args.part in ("all", "hf"):
            results["hf_vs_ours"] = part_hf()
            print(json.dumps({"hf_vs_ours": results["hf_vs_ours"]}), flush=True)
        if args.part in ("all", "default"):
            results["default_preset"] = part_default(overrides, Path(tmp))
            print(json.dumps({"default_preset": results["default_preset"]}), flush=True)
    results["load_after"] = load_average()
    print(json.dumps(results, indent=2))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
