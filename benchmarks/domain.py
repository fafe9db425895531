"""What domain data buys: code models side by side on held-out stdlib modules, and Shakespeare
models on the four held-out plays of `shakespeare-complete`.

    python benchmarks/domain.py code --model code=runs/python-code/checkpoint \\
        --model general=runs/shakespeare-bpe/checkpoint \\
        --model continued=runs/shakespeare-bpe-on-code/checkpoint --json runs/domain-code.json
    python benchmarks/domain.py plays --model tiny=runs/shakespeare-bpe/best \\
        --model large=runs/shakespeare-large/best

`code` runs the `python-code` task (`byollm.evaluate.tasks.code`: bits per byte, next-line exact
match, the share of sampled function bodies `ast.parse` accepts) on each model and prints a
markdown table, then the first function headers with every model's body side by side (the
task's own fixed sample, so each model completes the same headers). `plays` prints each model's
bits per byte on Hamlet, Julius Caesar, Macbeth and Twelfth Night, the plays
`shakespeare-complete` holds out and Tiny Shakespeare does not contain. Bits per byte does not
depend on the tokenizer, so models with different vocabularies compare fairly.
Run it with one thread in the background lane; it reports the seconds each model took.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from byollm.corpora.documents import iter_documents, named_val_documents
from byollm.evaluate.perplexity import evaluate_text
from byollm.evaluate.tasks import ScoringOptions, run_task
from byollm.evaluate.tasks.code import format_code
from byollm.model.checkpoint import load_for_inference

PLAYS_CORPUS = "shakespeare-complete"


def parse_models(pairs: list[str]) -> list[tuple[str, str]]:
    models = []
    for pair in pairs:
        name, sep, path = pair.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"--model {pair!r}: write NAME=CHECKPOINT")
        models.append((name, path))
    return models


def run_code(models, limit: int | None) -> list[dict]:
    results = []
    for name, path in models:
        model, tokenizer = load_for_inference(path, device="cpu")
        result = run_task(model, tokenizer, "python-code", limit=limit, options=ScoringOptions())
        result.update(name=name, checkpoint=path, params=sum(p.numel() for p in model.parameters()))
        result["tokenizer_ids"] = tokenizer.vocab_size
        print(f"{name}: {format_code(result)}", flush=True)
        results.append(result)
    return results


def code_table(results: list[dict]) -> str:
    lines = [
        "| model | params | vocabulary | bits/byte | next-line exact | bodies that parse "
        "| hit the limit |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        lines.append(
            f"| {r['name']} | {r['params'] / 1e6:.2f}M | {r['tokenizer_ids']:,} | "
            f"{r['bits_per_byte']:.3f} | {r['acc']:.3f} ({r['lines']}) | "
            f"{r['parse_rate']:.3f} ({r['functions']}) | {r['truncated']:.0%} |"
        )
    return "\n".join(lines)


def side_by_side(results: list[dict], count: int = 3) -> str:
    """The first `count` headers every model completed, with each model's body."""
    blocks = []
    by_model = [{s["where"]: s for s in r["samples"]} for r in results]
    shared = [w for w in by_model[0] if all(w in m for m in by_model)][:count]
    for where in shared:
        header = by_model[0][where]["header"]
        parts = [f"`{where}`\n\n```python\n{header.rstrip()}\n```"]
        for r, samples in zip(results, by_model):
            sample = samples[where]
            verdict = "parses" if sample["ok"] else "does not parse"
            body = sample["body"].rstrip() or "(empty)"
            parts.append(f"{r['name']} ({verdict}):\n\n```python\n{body}\n```")
        blocks.append("\n\n".join(parts))
    return "\n\n".join(blocks)


def held_out_plays() -> dict[str, str]:
    """{play file: text} for the plays `shakespeare-complete` holds out."""
    names = set(named_val_documents(PLAYS_CORPUS))
    return {
        doc.name.rsplit("/", 1)[-1]: "".join(doc.pieces)
        for doc in iter_documents(PLAYS_CORPUS, progress=False)
        if doc.name in names
    }


def run_plays(models) -> list[dict]:
    plays = held_out_plays()
    text = "".join(plays[name] for name in sorted(plays))
    results = []
    for name, path in models:
        started = time.perf_counter()
        model, tokenizer = load_for_inference(path, device="cpu")
        scored = evaluate_text(model, tokenizer, text, progress=False)
        result = {"name": name, "checkpoint": path, "plays": sorted(plays), **scored}
        result["seconds"] = round(time.perf_counter() - started, 1)
        print(
            f"{name}: {scored['bits_per_byte']:.4f} bits/byte on {len(plays)} held-out plays "
            f"({scored['bytes']:,} bytes, {result['seconds']} s)",
            flush=True,
        )
        results.append(result)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("what", choices=("code", "plays"))
    parser.add_argument("--model", action="append", default=[], help="NAME=CHECKPOINT, repeatable")
    parser.add_argument("--limit", type=int, default=None, help="code: lines and bodies asked")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", default=None, help="also write the results to this file")
    parser.add_argument(
        "--include", action="append", default=[], help="code: earlier --json results to show too"
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    models = parse_models(args.model)
    if not models and not args.include:
        raise SystemExit("give at least one --model NAME=CHECKPOINT")
    if args.what == "code":
        earlier = [r for path in args.include for r in json.loads(Path(path).read_text())]
        results = run_code(models, args.limit)
        shown = earlier + results
        print("\n" + code_table(shown) + "\n\n" + side_by_side(shown))
    else:
        results = run_plays(models)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
