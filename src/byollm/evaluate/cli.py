"""`byollm eval`: loss, perplexity and bits per byte of a checkpoint on a corpus.

byollm eval --checkpoint runs/shakespeare --corpus wikitext-2-valid --stride 128
byollm eval --checkpoint runs/shakespeare --corpus notes.txt --json
"""

from __future__ import annotations

import json

from byollm.errors import ByollmError
from byollm.generate.cli import (
    add_checkpoint_arguments,
    add_quantize_argument,
    checkpoint_from_args,
    load_model_and_tokenizer,
)


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


def read_eval_text(corpus: str, split: str = "all", val_fraction: float = 0.1) -> str:
    """The text to score: a corpus (name or path), or its last `val_fraction` for split='val'."""
    from byollm.data.corpora import read_corpus_text

    text = read_corpus_text(corpus)
    if split == "val":
        if not 0.0 < val_fraction < 1.0:
            raise ByollmError(f"--val-fraction {val_fraction} is invalid: must be in (0, 1)")
        text = text[int(len(text) * (1 - val_fraction)) :]
    if not text:
        raise ByollmError(f"corpus {corpus!r} is empty: nothing to evaluate")
    return text


def run_eval(args) -> int:
    from byollm.evaluate.perplexity import check_eval_args, evaluate_text

    check_eval_args(stride=args.stride, batch_size=args.batch_size, max_tokens=args.max_tokens)
    checkpoint = checkpoint_from_args(args)
    text = read_eval_text(args.corpus, args.split, args.val_fraction)
    model, tokenizer = load_model_and_tokenizer(args)
    result = evaluate_text(model, tokenizer, text, stride=args.stride,
                           batch_size=args.batch_size, max_tokens=args.max_tokens,
                           progress=not args.json)  # fmt: skip
    result = {"checkpoint": str(checkpoint), "corpus": args.corpus, "split": args.split,
              "quantize": args.quantize, **result}  # fmt: skip
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
