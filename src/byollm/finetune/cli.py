"""`byollm finetune classify|instruct`, `byollm classify` and `byollm merge-lora`.

byollm finetune classify --checkpoint runs/english/best --data sms-spam --train last:1
byollm classify --checkpoint runs/spam "WINNER!! Claim your prize now"
byollm finetune instruct --checkpoint runs/english/best --data instruction-data --lora
byollm merge-lora runs/instruct-lora --out runs/instruct-merged
"""

from __future__ import annotations

import argparse
import json

from byollm.errors import ByollmError
from byollm.paths import user_path


def _common(p: argparse.ArgumentParser, default_train: str, epochs: int) -> None:
    p.add_argument(
        "--checkpoint", required=True, type=user_path, help="the pretrained checkpoint folder"
    )
    p.add_argument(
        "--data",
        required=True,
        help="a .csv/.tsv/.jsonl/.json file, or a registered set (sms-spam, instruction-data)",
    )
    p.add_argument("--out", required=True, type=user_path, help="folder for the fine-tuned model")
    p.add_argument(
        "--train",
        default=default_train,
        metavar="WHAT",
        help=f"what trains: head, last:N, all or lora (default {default_train})",
    )
    p.add_argument("--lora", action="store_true", help="train LoRA adapters (same as --train lora)")
    p.add_argument("--lora-rank", type=int, default=16)
    p.add_argument("--lora-alpha", type=float, default=16.0)
    p.add_argument("--lora-dropout", type=float, default=0.0)
    p.add_argument(
        "--lora-targets",
        default=None,
        help="comma-separated module-name patterns (default: attention and MLP "
        "matrices of every block)",
    )
    p.add_argument("--epochs", type=int, default=epochs)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--lr", type=float, default=5e-5)
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument(
        "--schedule",
        choices=("constant", "linear"),
        default="constant",
        help="the learning rate: constant (the book's) or falling linearly to zero",
    )
    p.add_argument("--seed", type=int, default=123)
    p.add_argument("--device", default="auto")
    p.add_argument("--mirror", default=None, help="download mirror for registered data sets")
    p.add_argument("--json", action="store_true", help="print the summary as JSON")


def register(subparsers) -> None:
    f = subparsers.add_parser(
        "finetune",
        help="fine-tune a checkpoint: classify texts or follow instructions (LoRA optional)",
        description="Train a pretrained checkpoint further on a task; see docs/05-fine-tuning.md.",
    )
    tasks = f.add_subparsers(dest="task", metavar="<task>", required=True)
    c = tasks.add_parser("classify", help="a new head on the last token, trained on labelled text")
    _common(c, "last:1", 5)
    c.add_argument("--text-column", default="text")
    c.add_argument("--label-column", default="label")
    c.add_argument(
        "--split",
        choices=("balanced", "stratified"),
        default="balanced",
        help="balanced: the book's undersampled 70/10/20; stratified: every record, "
        "each class 70/10/20",
    )
    c.add_argument(
        "--split-seed",
        type=int,
        default=123,
        help="the seed that draws the split (123: the book's); --seed draws the head, the batch "
        "order and dropout, so several --seed values score the same test messages",
    )
    c.add_argument("--max-length", type=int, default=None, help="cut texts to this many tokens")
    c.add_argument(
        "--pool",
        choices=("last", "mean"),
        default="last",
        help="what the head reads: the last real token (the book's) or the mean of all real tokens",
    )
    c.add_argument(
        "--lowercase",
        action="store_true",
        help="lowercase every text, in training and in `byollm classify` (measured: docs/05 §5)",
    )
    c.add_argument(
        "--random-init",
        action="store_true",
        help="start from random weights of the same shape (a baseline)",
    )
    c.set_defaults(func=run_finetune_classify)

    i = tasks.add_parser("instruct", help="Alpaca / chat instruction tuning")
    _common(i, "all", 2)
    i.add_argument(
        "--mask-prompt",
        action="store_true",
        help="learn the answers only (the prompt's targets are ignored)",
    )
    i.add_argument("--max-new-tokens", type=int, default=128, help="for the held-out answers")
    i.add_argument(
        "--judge-url",
        default=None,
        help="also score the held-out answers with an LLM judge: an OpenAI-compatible API base "
        "URL (e.g. http://localhost:11434/v1); the key, if any, from $BYOLLM_JUDGE_API_KEY or "
        "$OPENAI_API_KEY",
    )
    i.add_argument("--judge-model", default=None, help="the judge's model name at that endpoint")
    i.add_argument(
        "--eval-examples",
        type=int,
        default=None,
        help="score only the first N test examples (default: all)",
    )
    i.set_defaults(func=run_finetune_instruct)

    k = subparsers.add_parser("classify", help="label texts with a fine-tuned classifier")
    k.add_argument(
        "--checkpoint", required=True, type=user_path, help="folder written by `finetune classify`"
    )
    k.add_argument("texts", nargs="+", help="the texts to classify")
    k.add_argument("--device", default="auto")
    k.set_defaults(func=run_classify)

    m = subparsers.add_parser("merge-lora", help="fold a LoRA adapter into its base's weights")
    m.add_argument(
        "adapter", type=user_path, help="the adapter folder (adapter.json + adapter.safetensors)"
    )
    m.add_argument("--out", required=True, type=user_path, help="folder for the merged checkpoint")
    m.set_defaults(func=run_merge_lora)


def _lora(args):
    from byollm.finetune.lora import DEFAULT_TARGETS, LoRAConfig

    targets = DEFAULT_TARGETS
    if args.lora_targets:
        targets = tuple(t.strip() for t in args.lora_targets.split(",") if t.strip())
    # built (and so checked) even when unused: a bad --lora-* value is reported, not ignored
    lora = LoRAConfig(
        rank=args.lora_rank, alpha=args.lora_alpha, dropout=args.lora_dropout, targets=targets
    )
    return lora if args.lora or args.train == "lora" else None


def _check_out(out: str) -> None:
    from pathlib import Path

    path = Path(out)
    if path.exists() and (not path.is_dir() or any(path.iterdir())):
        raise ByollmError(f"--out {out} already exists and is not empty; choose a new folder")


def run_finetune_classify(args) -> int:
    from byollm.finetune.classify import finetune_classifier
    from byollm.finetune.metrics import format_report

    _check_out(args.out)
    summary = finetune_classifier(
        args.checkpoint,
        args.data,
        out=args.out,
        text_column=args.text_column,
        label_column=args.label_column,
        trainable=args.train,
        lora=_lora(args),
        split=args.split,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        schedule=args.schedule,
        max_length=args.max_length,
        pool=args.pool,
        lowercase=args.lowercase,
        seed=args.seed,
        split_seed=args.split_seed,
        device=args.device,
        random_init=args.random_init,
        mirror=args.mirror,
    )
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(f"\nvalidation: {format_report(summary['val']).splitlines()[0]}")
    print(f"test:\n{format_report(summary['test'])}")
    print(f"\n{summary['train_seconds']:.1f}s of training; model in {summary['out']}")
    print(f'next: byollm classify --checkpoint {summary["out"]} "some text"')
    return 0


def run_finetune_instruct(args) -> int:
    from byollm.finetune.instruct import finetune_instruct
    from byollm.finetune.judge import Judge

    _check_out(args.out)
    if (args.judge_url is None) != (args.judge_model is None):
        raise ByollmError("--judge-url and --judge-model go together: give both or neither")
    judge = Judge(args.judge_url, args.judge_model) if args.judge_url else None
    summary = finetune_instruct(
        args.checkpoint,
        args.data,
        out=args.out,
        trainable=args.train,
        lora=_lora(args),
        mask_prompt=args.mask_prompt,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        weight_decay=args.weight_decay,
        schedule=args.schedule,
        max_new_tokens=args.max_new_tokens,
        eval_examples=args.eval_examples,
        seed=args.seed,
        device=args.device,
        mirror=args.mirror,
        judge=judge,
    )
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    if judge is not None:
        after = summary["after"]
        print(
            f"judge {after['judge_model']}: mean score {after['judge_score']} over "
            f"{after['judge_scored']} answers ({after['judge_unreadable']} replies unreadable)"
        )
    print(f"\n{summary['train_seconds']:.1f}s of training; answers in {summary['answers']}")
    nxt = (
        f"byollm merge-lora {args.out} --out MERGED"
        if summary["trainable"] == "lora"
        else (f"byollm chat --checkpoint {args.out}")
    )
    print(f"next: {nxt}")
    return 0


def run_classify(args) -> int:
    from byollm.finetune.classify import classify

    for text, (label, probability) in zip(
        args.texts, classify(args.checkpoint, args.texts, device=args.device)
    ):
        print(f"{label}\t{probability:.3f}\t{text}")
    return 0


def run_merge_lora(args) -> int:
    from byollm.finetune.lora import merge_lora

    _check_out(args.out)
    from byollm.finetune.checkpoint import load_finetuned, save_finetuned
    from byollm.finetune.lora import is_adapter

    if not is_adapter(args.adapter):
        raise ByollmError(f"{args.adapter}: no adapter.json here; not a LoRA adapter folder")
    root, tokenizer, task = load_finetuned(args.adapter, device="cpu")
    merge_lora(root)
    save_finetuned(args.out, root, tokenizer, task)
    print(f"merged into {args.out}")
    return 0
