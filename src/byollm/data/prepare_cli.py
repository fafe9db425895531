"""`byollm prepare`: tokenize a corpus into train.bin / val.bin / meta.json + its tokenizer."""

from __future__ import annotations

import json
import sys


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "prepare",
        help="tokenize a corpus into token files for training",
        description=(
            "Tokenize a corpus (a registered name or a file/folder path) in parallel, streaming, "
            "into OUT/train.bin and OUT/val.bin (numpy uint16/uint32 memmaps), OUT/meta.json and "
            "OUT/byollm-tokenizer.json. Re-running with the same inputs does nothing."
        ),
    )
    p.add_argument("--corpus", required=True, help="corpus name (see `byollm data list`) or path")
    p.add_argument(
        "--tokenizer",
        default="char",
        help="char (the corpus' characters) | bpe:N (train our BPE with N ids) | gpt2 | "
        "cl100k_base | ... | a byollm tokenizer file",
    )
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--val-fraction", type=float, default=0.1, help="share held out (default 0.1)")
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="processes (default: one per CPU, at most one per 8 MiB of text)",
    )
    p.add_argument("--mirror", default=None, help="download mirror for a registered corpus")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=run_prepare)


def run_prepare(args) -> int:
    from byollm.data.prepare import prepare

    meta = prepare(
        args.corpus,
        args.tokenizer,
        args.out,
        val_fraction=args.val_fraction,
        workers=args.workers,
        progress=not args.no_progress and sys.stderr.isatty(),
        mirror=args.mirror,
    )
    splits = meta["splits"]
    print(
        f"{args.out}: {splits['train']['tokens']:,} train + {splits['val']['tokens']:,} val tokens "
        f"({meta['dtype']}, vocab {meta['vocab_size']:,})"
    )
    print(json.dumps(meta, indent=2))
    return 0
