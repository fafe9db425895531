"""Time to a target val loss for several `byollm train` variants: quick tuning probes.

    BYOLLM_MIRROR=file:///path/to/shared/data python benchmarks/time_to_loss.py \
        "base:" "wide:--model.n_embd 192" "fast:--model.n_embd 128 --muon_lr 0.04"

Each argument is NAME:OVERRIDES. Every variant starts from the default preset, evaluates 64
windows every 20 steps (no samples) and is stopped at the first evaluation at or below
--target (default 1.88) or after --limit seconds. Prints one JSON line per variant: the step
and elapsed seconds of that evaluation and the training tokens/s. The schedule is the preset's,
so as long as the target is reached before the decay phase the time equals the full run's.
Run one variant at a time on a quiet machine: the numbers are wall-clock times.
"""

from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from byollm.train.metrics import read_metrics
from byollm.train.rundir import METRICS_FILE


def read(metrics: Path, kind: str) -> list[dict]:
    """The records of one kind so far (the file is still being written: a torn line is skipped)."""
    return [r for r in read_metrics(metrics) if r.get("kind") == kind] if metrics.exists() else []


def probe(name: str, overrides: list[str], target: float, limit: float, out: Path) -> dict:
    command = [sys.executable, "-m", "byollm", "train", "--overwrite", "--out_dir", str(out)]
    command += ["--name", name, "--eval_interval", "20", "--eval_rows", "64"]
    command += ["--sample_tokens", "0", *overrides]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    metrics, started, hit = out / name / METRICS_FILE, time.time(), None
    while process.poll() is None and time.time() - started < limit:
        time.sleep(1)
        hit = next((e for e in read(metrics, "eval") if e["val_loss"] <= target), None)
        if hit:
            break
    process.kill()
    process.wait()
    evals, trains = read(metrics, "eval"), read(metrics, "train")
    return {
        "name": name,
        "overrides": shlex.join(overrides),
        "step": hit and hit["step"],
        "seconds": hit and hit["elapsed"],
        "last_eval": evals and [evals[-1]["step"], round(evals[-1]["val_loss"], 4)],
        "tokens_per_s": trains and trains[-1]["tokens_per_s"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("variants", nargs="+", metavar="NAME:OVERRIDES")
    parser.add_argument("--target", type=float, default=1.88)
    parser.add_argument("--limit", type=float, default=300.0, help="seconds per variant")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="byollm-probe-") as tmp:
        for spec in args.variants:
            name, _, overrides = spec.partition(":")
            result = probe(name, shlex.split(overrides), args.target, args.limit, Path(tmp))
            print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
