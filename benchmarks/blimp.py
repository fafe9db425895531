"""BLiMP for our checkpoints beside the paper's 5-gram, LSTM, Transformer-XL and GPT-2 rows.

    BYOLLM_MIRROR=/path/to/shared/data python benchmarks/blimp.py --checkpoint runs/shakespeare-char
    python benchmarks/blimp.py --checkpoint runs/a --checkpoint runs/b --limit 6700 --threads 2

Prints one markdown table (overall accuracy and the four fields) and the speed of each run:
pairs per second and the fp32 matmul peak measured just before (on a shared machine the peak
says how much of the CPU the run got, which is what makes two runs comparable).

The paper's rows come from its results file (`blimp-paper-results`, models_summary.jsonl): the
mean of its per-paradigm accuracies, overall and over each field's paradigms (the fields are
read from BLiMP's own files, with `LABEL_FIXES`). Ours: `byollm.evaluate.tasks.run_task`, with
1,000 pairs in every paradigm, so the accuracy over all pairs is the same mean.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict

import torch

from byollm.corpora import get_asset
from byollm.device import pick_dtype
from byollm.evaluate.tasks import ScoringOptions, load_task, run_task
from byollm.model.checkpoint import load_for_inference
from byollm.train.metrics import measure_peak_flops

FIELDS = ("morphology", "syntax", "semantics", "syntax_semantics")
PAPER_MODELS = {
    "ngram": "5-gram (paper)",
    "lstm": "LSTM (paper)",
    "txl": "Transformer-XL (paper)",
    "gpt2": "GPT-2 (paper)",
}


def paper_rows() -> list[tuple[str, float, dict[str, float]]]:
    """(model, overall, {field: accuracy}) from the paper's per-paradigm results."""
    _, _, pairs = load_task("blimp", progress=False)
    field_of = {pair.paradigm: pair.field for pair in pairs}
    lines = get_asset("blimp-paper-results", progress=False).read_text().splitlines()
    paradigms = [r for r in map(json.loads, lines) if r["UID"] in field_of]
    assert len(paradigms) == 67, len(paradigms)
    rows = []
    for key, name in PAPER_MODELS.items():
        by_field = defaultdict(list)
        for r in paradigms:
            by_field[field_of[r["UID"]]].append(r[key])
        overall = sum(r[key] for r in paradigms) / len(paradigms)
        rows.append((name, overall, {f: sum(v) / len(v) for f, v in by_field.items()}))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--checkpoint", action="append", default=[], help="repeatable")
    parser.add_argument("--limit", type=int, default=None, help="pairs, spread over paradigms")
    parser.add_argument("--dtype", default="float32", help="float32, bfloat16 or auto")
    parser.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's own)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rows = [(name, overall, fields, "") for name, overall, fields in paper_rows()]
    dtype_name = str(pick_dtype(torch.device("cpu"), args.dtype)).removeprefix("torch.")
    if args.dtype == "auto":
        dtype_name = f"auto: {dtype_name}"
    for checkpoint in args.checkpoint:
        model, tokenizer = load_for_inference(checkpoint, device="cpu")
        peak = measure_peak_flops(torch.device("cpu"), torch.float32)
        began = time.perf_counter()
        result = run_task(
            model, tokenizer, "blimp", limit=args.limit, options=ScoringOptions(dtype=args.dtype)
        )
        speed = (
            f"{result['items']:,} pairs in {time.perf_counter() - began:.0f} s: "
            f"{result['items_per_s']:.0f} pairs/s ({dtype_name}, {torch.get_num_threads()} "
            f"thread(s), fp32 peak {peak / 1e9:.0f} GFLOP/s)"
        )
        rows.append((f"`{checkpoint}`", result["acc"], result["by_field"], speed))
    print("| model | overall | " + " | ".join(FIELDS) + " | speed |")
    print("|---" * (len(FIELDS) + 3) + "|")
    for name, overall, fields, speed in rows:
        cells = " | ".join(f"{fields.get(f, float('nan')):.3f}" for f in FIELDS)
        print(f"| {name} | {overall:.3f} | {cells} | {speed} |")


if __name__ == "__main__":
    main()
