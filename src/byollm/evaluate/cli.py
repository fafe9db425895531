"""`byollm eval`: loss, perplexity and bits per byte of a checkpoint on a corpus.

byollm eval --checkpoint runs/shakespeare --corpus wikitext-2-valid --stride 128
byollm eval --checkpoint runs/shakespeare --corpus notes.txt --json
"""

from __future__ import annotations

import json

from byollm.model.cli import add_checkpoint_arguments, add_quantize_argument, checkpoint_from_args


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "eval",
        help="loss, perplexity and bits per byte on a corpus",
        description="Score a held-out text with a sliding window: every token is predicted "
        "once, with up to block_size tokens of context. Bits per byte does not depend on the "
        "tokenizer, so a char model and a BPE model compare fairly.",
    )
    add_checkpoint_arguments(p)
    p.add_argument("--corpus", required=True, help="a registered corpus name or a text file")
    p.add_argument("--stride", type=int, default=None,
                   help="tokens between window starts (default block_size/2)")  # fmt: skip
    p.add_argument("--batch-size", type=int, default=8, help="windows per forward pass")
    p.add_argument("--max-tokens", type=int, default=None, help="score only the first N tokens")
    p.add_argument("--split", choices=("all", "val"), default="all",
                   help="val: only the last --val-fraction of the text (the held-out part "
                   "`byollm prepare` sets aside)")  # fmt: skip
    p.add_argument("--val-fraction", type=float, default=0.1)
    p.add_argument("--device", default="auto")
    add_quantize_argument(p)
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.set_defaults(func=run_eval)


def run_eval(args) -> int:
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
