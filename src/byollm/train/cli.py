"""`byollm train`: train a GPT from a preset, with `--key value` overrides.

byollm train                                   # the default preset, shakespeare-char
byollm train --config shakespeare-bpe --max_steps 500
byollm train --config my.toml --resume
torchrun --standalone --nproc_per_node=2 -m byollm train --batch_size 32
"""

from __future__ import annotations

import argparse
import os
import sys

from byollm.config import parse_override_args, to_toml
from byollm.errors import ByollmError
from byollm.paths import user_path
from byollm.train import distributed


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train",
        help="train a GPT (default: a char-level model on Tiny Shakespeare)",
        description=(
            "Train a GPT end to end: fetch and prepare the corpus, train, write checkpoints, "
            "metrics.jsonl, loss.png, samples.txt and report.md under runs/<name>/. Any config "
            "key can be overridden with --key value (e.g. --max_steps 500 --model.n_layer 6)."
        ),
        epilog=(
            "presets: shakespeare-char (default), shakespeare-bpe, nanogpt-cpu, nanogpt-gpu,\n"
            "  python-code, shakespeare-large, gpt2-fineweb\n\n"
            "speed:\n"
            "  --dtype auto   bf16 autocast where the hardware runs it natively (CUDA Ampere+,\n"
            "                 CPUs with AVX-512 BF16 or AMX: 1.33x float32 measured on a 2-core\n"
            "                 EPYC), else float32 (AVX2-only CPUs emulate bf16 ~100x slower).\n"
            "                 Losses differ slightly between dtypes: compare runs of one dtype.\n"
            "  --threads N    torch's CPU threads (0 = one per core). Train or benchmark one job\n"
            "                 at a time: two jobs sharing the cores oversubscribe them and run\n"
            "                 10x slower or worse (measured 350-730 against 13,000-17,000\n"
            "                 tokens/s); give each concurrent job its own cores and --threads.\n"
            "  details: docs/03-training.md, section 6"
        ),
        allow_abbrev=False,  # `--res` must not silently mean --resume, nor clash with a config key
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--config",
        metavar="PRESET|FILE",
        default=None,
        help="a preset name (looked up in ./configs and byollm's configs/) or a TOML file",
    )
    group = p.add_mutually_exclusive_group()
    group.add_argument("--resume", action="store_true", help="continue the run from its checkpoint")
    group.add_argument(
        "--overwrite", action="store_true", help="delete an existing run of this name, start over"
    )
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument(
        "--fsdp",
        action="store_true",
        help="under torchrun, shard weights, gradients and optimizer state over the processes "
        "(FSDP2; same as --fsdp true; needs optimizer = adamw)",
    )
    p.add_argument(
        "--print-config", action="store_true", help="print the resolved config as TOML and exit"
    )
    p.add_argument(
        "--report",
        metavar="RUN_DIR",
        type=user_path,
        default=None,
        help="rebuild report.md of the run in RUN_DIR from its files and exit (trains nothing)",
    )
    p.set_defaults(func=run_train, accepts_overrides=True)


def run_train(args) -> int:
    from byollm.train import load_train_config, train

    if args.report is not None:
        from byollm.train.report import save_report

        if args.config or args.overrides or args.resume or args.overwrite or args.fsdp:
            raise ByollmError(
                "--report RUN_DIR rebuilds a report and trains nothing; give it alone"
            )
        print(save_report(args.report))
        return 0
    overrides = parse_override_args(args.overrides)
    if args.fsdp:
        overrides["fsdp"] = "true"
    config = load_train_config(args.config, overrides)
    if args.print_config:
        print(to_toml(config))  # reads back as the same config (a test checks)
        return 0
    main_process = int(os.environ.get("RANK", "0")) == 0
    try:
        summary = train(
            config,
            resume=args.resume,
            overwrite=args.overwrite,
            progress=not args.no_progress and sys.stderr.isatty(),
        )
    except ByollmError:
        if main_process:
            raise  # printed on one line by byollm.cli
        raise SystemExit(2) from None  # every rank stops together; rank 0 says why, once
    if main_process:
        print_summary(summary)
    distributed.shutdown(0)
    return 0


def print_summary(summary: dict) -> None:
    from byollm.train.metrics import format_mfu

    if summary.get("already_finished"):  # the trainer has said why; where to find the model
        print(f"checkpoint: {summary['checkpoint']}\nnext: byollm sample {summary['checkpoint']}")
        return
    minutes, seconds = divmod(summary["elapsed_s"], 60)
    lines = [
        "",
        f"done: {summary['steps']} steps, {summary['tokens_seen']:,} tokens in "
        f"{int(minutes)}m{seconds:04.1f}s ({summary['tokens_per_s']:,.0f} tok/s, "
        f"{format_mfu(summary['mfu'])})",
        f"best val loss {summary['best_val_loss']:.4f}, final val loss "
        f"{summary['final_val_loss']:.4f} ({summary['final_val_bpb']:.3f} bits/byte)",
        f"checkpoint: {summary['checkpoint']} (best: {summary['best']})",
    ]
    if "loss_plot" in summary:
        lines.append(f"loss curve: {summary['loss_plot']}, samples: {summary['samples']}")
    if "report" in summary:
        lines.append(f"report: {summary['report']}")
    if summary.get("sample"):
        lines += ["", "sample:", summary["sample"][:400]]
    lines.append(f"\nnext: byollm sample {summary['checkpoint']}")
    print("\n".join(lines))
