"""`byollm prepare`: tokenize a corpus into token shards, meta.json and its tokenizer."""

from __future__ import annotations

import json
import sys

from byollm.corpora.cli import add_document_options


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "prepare",
        help="tokenize a corpus into token files for training",
        description=(
            "Tokenize a corpus (a registered name, a file, a folder or a glob of .txt, .jsonl, "
            ".parquet files, optionally .gz/.xz/.zst) in parallel, streaming, into token shards "
            "OUT/train-00000.bin ... and OUT/val-00000.bin ... (numpy uint16/uint32 arrays), "
            "OUT/meta.json and OUT/byollm-tokenizer.json. Documents are held out whole for "
            "validation. Re-running with the same inputs does nothing; an interrupted run resumes."
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
    p.add_argument(
        "--val-fraction",
        type=float,
        default=0.1,
        help="share of the documents held out (default 0.1; by bytes for a one-document corpus)",
    )
    add_document_options(p)
    p.add_argument(
        "--shard-tokens",
        type=int,
        default=None,
        help="tokens per shard, also how often progress is saved for a resume (default 100M)",
    )
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
    from byollm.data.prepare import SHARD_TOKENS, prepare

    meta = prepare(
        args.corpus,
        args.tokenizer,
        args.out,
        val_fraction=args.val_fraction,
        workers=args.workers,
        progress=not args.no_progress and sys.stderr.isatty(),
        mirror=args.mirror,
        text_field=args.text_field,
        separator=args.separator,
        shard_tokens=SHARD_TOKENS if args.shard_tokens is None else args.shard_tokens,
    )
    splits = meta["splits"]
    print(
        f"{args.out}: {splits['train']['tokens']:,} train + {splits['val']['tokens']:,} val tokens "
        f"({meta['dtype']}, vocab {meta['vocab_size']:,})"
    )
    print(json.dumps(meta, indent=2))
    return 0
