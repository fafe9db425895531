"""`byollm eval`: loss, perplexity and bits per byte on a corpus, or benchmark tasks.

byollm eval --checkpoint runs/shakespeare --corpus wikitext-2-valid --stride 128
byollm eval --checkpoint runs/shakespeare --corpus notes.txt --json
byollm eval --checkpoint runs/shakespeare --task blimp --limit 2000
byollm eval --checkpoint runs/gpt2 --task hellaswag --task my_questions.jsonl --json
byollm eval --checkpoint runs/python-code/checkpoint --task python-code
"""

from __future__ import annotations

import json

from byollm.config import check_number
from byollm.errors import ByollmError
from byollm.model.cli import add_checkpoint_arguments, add_quantize_argument, checkpoint_from_args


def register(subparsers) -> None:
    from byollm.evaluate.tasks.scoring import DEFAULT_BATCH_TOKENS

    p = subparsers.add_parser(
        "eval",
        help="loss, perplexity and bits per byte on a corpus, or benchmark tasks",
        description="--corpus: score a held-out text with a sliding window; every token is "
        "predicted once, with up to block_size tokens of context. Bits per byte does not depend "
        "on the tokenizer, so a char model and a BPE model compare fairly. --task: run a "
        "benchmark (BLiMP minimal pairs, multiple choice, LAMBADA cloze) scored as "
        "lm-evaluation-harness and nanochat's CORE score it.",
    )
    add_checkpoint_arguments(p)
    p.add_argument("--corpus", help="a registered corpus name or a text file")
    p.add_argument(
        "--task",
        action="append",
        default=[],
        metavar="NAME|FILE",
        help="a benchmark (blimp, hellaswag, arc-easy, arc-challenge, piqa, lambada, "
        "python-code) "
        "or a task file (.jsonl, a folder of them, or a zip); repeatable",
    )
    p.add_argument(
        "--limit",
        type=int,
        default=None,
        help="--task: at most N items per task, spread evenly over the file (python-code: N "
        "next lines and N function bodies)",
    )
    p.add_argument(
        "--batch-tokens",
        type=int,
        default=DEFAULT_BATCH_TOKENS,
        help="--task: at most this many tokens per forward pass",
    )
    p.add_argument(
        "--dtype",
        default="float32",
        help="--task: float32 (exact, default), bfloat16 (1.5-1.8x faster on CPUs with "
        "bf16 instructions; ~0.5%% of BLiMP pairs flip), float16, or auto (bf16 where fast)",
    )
    p.add_argument(
        "--mirror",
        default=None,
        metavar="URL",
        help="--task: download mirror for the benchmark files (default: $BYOLLM_MIRROR)",
    )
    p.add_argument(
        "--stride",
        type=int,
        default=None,
        help="tokens between window starts (default block_size/2)",
    )
    p.add_argument("--batch-size", type=int, default=8, help="windows per forward pass")
    p.add_argument("--max-tokens", type=int, default=None, help="score only the first N tokens")
    p.add_argument(
        "--split",
        choices=("all", "val"),
        default="all",
        help="val: only the text `byollm prepare` holds out with --val-fraction (whole "
        "documents: plays, modules, stories; the tail of a corpus of few documents)",
    )
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--device", default="auto")
    add_quantize_argument(p)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run_eval)


def run_eval(args) -> int:
    # every number is checked, whichever mode it applies to: a bad value is never ignored
    check_number("val_fraction", args.val_fraction, 0, 1, low_open=True, high_open=True)
    if args.limit is not None:
        check_number("limit", args.limit, 1, None, integer=True, hint="items per task")
    check_number("batch_tokens", args.batch_tokens, 1, None, integer=True)
    if bool(args.corpus) == bool(args.task):
        both = ", not both" if args.corpus else ""
        raise ByollmError(f"give --corpus (perplexity) or --task (benchmarks){both}")
    if args.task:
        return run_tasks(args)
    from byollm.evaluate.perplexity import evaluate_checkpoint

    result = evaluate_checkpoint(
        checkpoint_from_args(args),
        args.corpus,
        split=args.split,
        val_fraction=args.val_fraction,
        stride=args.stride,
        batch_size=args.batch_size,
        max_tokens=args.max_tokens,
        device=args.device,
        quantize=args.quantize,
        progress=not args.json,
    )
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"loss {result['loss']:.4f} nats/token | perplexity {result['perplexity']:.3f} | "
            f"bits per byte {result['bits_per_byte']:.4f}\n"
            f"{result['tokens']:,} tokens, {result['bytes']:,} bytes scored in "
            f"{result['windows']:,} windows (block {result['block_size']}, "
            f"stride {result['stride']})"
        )
    return 0


def run_tasks(args) -> int:
    from byollm.evaluate.tasks import ScoringOptions, check_task_name, format_result, run_task

    if args.limit is not None and args.limit < 1:
        raise ByollmError(f"--limit {args.limit} is invalid: must be >= 1")
    for task in args.task:  # a typo fails before the model is loaded
        check_task_name(task)
    options = ScoringOptions(args.batch_tokens, args.dtype, progress=not args.json)
    from byollm.model.checkpoint import load_for_inference

    checkpoint = checkpoint_from_args(args)
    model, tokenizer = load_for_inference(checkpoint, device=args.device, quantize=args.quantize)
    results = []
    for task in args.task:
        result = run_task(
            model, tokenizer, task, limit=args.limit, mirror=args.mirror, options=options
        )
        results.append({"checkpoint": str(checkpoint), "quantize": args.quantize, **result})
        if not args.json:
            print(format_result(result))
    if args.json:
        print(json.dumps(results[0] if len(results) == 1 else results, indent=2))
    return 0
