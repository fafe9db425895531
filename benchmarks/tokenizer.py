"""Tokenizer benchmark: our trainer and encoder against Hugging Face tokenizers and tiktoken.

    BYOLLM_MIRROR=file:///path/to/shared/data python benchmarks/tokenizer.py \
        [--quick] [--skip-naive] [--results benchmarks/RESULTS.md]

Training: vocab 512 and 4096 on Tiny Shakespeare, 32768 on the python-stdlib corpus, GPT-4 split
pattern, ours (one process; all cores for counting on inputs over 8 MB) against Hugging Face's
BpeTrainer (one thread and all threads) and, for vocab 512, the naive recount-every-merge
algorithm (minbpe's; the oracle from tests/tokenizer_oracle.py). Encoding: GPT-2's vocabulary on
~10 MB of mixed text (Shakespeare, WikiText-2, TinyStories, Python source) as one string,
one thread and all cores; all three libraries must produce identical ids.

Hugging Face's thread count is fixed when its thread pool starts, so its measurements run in
child processes with RAYON_NUM_THREADS set. Timings are the best of a few runs; the machine's
load average is recorded because the numbers mean little on a busy machine.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
import time
from functools import partial
from itertools import chain
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "tests"))


def best_of(repeats, fn):
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def versus(theirs: float, ours: float) -> str:
    """'1.24x faster' or '1.10x slower': our time against theirs."""
    return f"{theirs / ours:.2f}x faster" if ours <= theirs else f"{ours / theirs:.2f}x slower"


def cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


# ---- Hugging Face, in a child process -----------------------------------------------------------


def hf_child(task: dict) -> dict:
    import tokenizers
    from tokenizers import decoders, models, pre_tokenizers, trainers

    if task["kind"] == "train":
        from byollm.tokenizer.export import huggingface_regex
        from byollm.tokenizer.patterns import GPT4_PATTERN

        tok = tokenizers.Tokenizer(models.BPE())
        tok.pre_tokenizer = pre_tokenizers.Sequence(
            [
                pre_tokenizers.Split(tokenizers.Regex(huggingface_regex(GPT4_PATTERN)), "isolated"),
                pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
            ]
        )
        trainer = trainers.BpeTrainer(
            vocab_size=task["vocab_size"],
            special_tokens=["<|endoftext|>"],
            initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
            show_progress=False,
        )
        seconds, _ = best_of(task["repeats"], lambda: tok.train(task["files"], trainer))
        return {"seconds": seconds, "vocab_size": tok.get_vocab_size()}
    # encode with GPT-2 the way transformers builds it: BPE(encoder.json, vocab.bpe) + ByteLevel
    tok = tokenizers.Tokenizer(models.BPE.from_file(task["encoder"], task["merges"]))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    text = Path(task["text"]).read_text(encoding="utf-8")
    pieces = json.loads(Path(task["pieces"]).read_text())
    one, ids = best_of(task["repeats"], lambda: tok.encode(text).ids)
    batch, batch_ids = best_of(task["repeats"], lambda: tok.encode_batch(pieces))
    same = ids == [i for e in batch_ids for i in e.ids]
    Path(task["ids_out"]).write_text(json.dumps(ids))
    return {"one_string": one, "batch": batch, "batch_equals_one": same}


def run_hf(task: dict, threads: int) -> dict:
    env = {**os.environ, "RAYON_NUM_THREADS": str(threads), "TOKENIZERS_PARALLELISM": "true"}
    out = subprocess.run(
        [sys.executable, __file__, "--hf-child", json.dumps(task)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


# ---- the benchmark ---------------------------------------------------------------------------


def training_benchmark(args, rows: list[str], tmp: Path) -> None:
    from tokenizer_oracle import naive_merges

    from byollm.corpora import corpus_files, read_corpus_text
    from byollm.tokenizer import BPETokenizer

    stdlib = "python-stdlib:4MB" if args.quick else "python-stdlib"
    cases = [("tinyshakespeare", 512), ("tinyshakespeare", 4096), (stdlib, 32768)]
    if args.quick:
        cases[-1] = (stdlib, 8192)
    rows += [
        "| corpus | vocab | ours, 1 process | ours, all cores | HF 1 thread | HF all threads | "
        "naive (minbpe) | ours vs HF 1 thread | ours vs naive |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for corpus, vocab in cases:
        files = corpus_files(corpus)
        size_mb = sum(f.stat().st_size for f in files) / 1e6
        repeats = 2 if size_mb < 5 else 1
        train = partial(BPETokenizer.train, files, vocab, progress=False)
        ours_1, tok = best_of(repeats, partial(train, workers=1))
        ours_all, _ = best_of(repeats, partial(train, workers=None))
        task = {
            "kind": "train",
            "files": [str(f) for f in files],
            "vocab_size": vocab,
            "repeats": repeats,
        }
        hf_1 = run_hf(task, 1)["seconds"]
        hf_all = run_hf(task, cores())["seconds"]
        naive = "-"
        speedup_naive = "-"
        if vocab == 512 and not args.skip_naive:
            text = read_corpus_text(corpus)
            start = time.perf_counter()
            reference = naive_merges(text, vocab - 257, "gpt4")
            seconds = time.perf_counter() - start
            assert reference == tok.merges, "fast trainer differs from the naive oracle"
            naive = f"{seconds:.1f} s"
            speedup_naive = f"{seconds / ours_1:.0f}x"
        name = f"{corpus} ({size_mb:.1f} MB)"
        rows.append(
            f"| {name} | {vocab} | {ours_1:.2f} s | {ours_all:.2f} s | {hf_1:.2f} s | {hf_all:.2f} s "
            f"| {naive} | {versus(hf_1, ours_1)} | {speedup_naive} |"
        )
        print(rows[-1], flush=True)


def encode_benchmark(args, rows: list[str], tmp: Path) -> None:
    import tiktoken

    from byollm.corpora import get_asset, read_corpus_text
    from byollm.tokenizer import load_tokenizer
    from byollm.tokenizer.patterns import safe_split_points

    target = int(args.encode_mb * 1e6)
    parts = [
        read_corpus_text(n)
        for n in ("tinyshakespeare", "wikitext-2-valid", "wikitext-2-test", "tinystories-sample")
    ]
    rest = target - sum(len(p.encode()) for p in parts)
    if rest > 0:
        parts.append(read_corpus_text(f"python-stdlib:{rest}B"))
    text = "".join(parts)
    n_bytes = len(text.encode())
    n = cores()
    cut_points = safe_split_points(text, len(text) // (n * 4) + 1)
    bounds = [0, *cut_points, len(text)]
    pieces = [text[a:b] for a, b in zip(bounds, bounds[1:])]
    (tmp / "text.txt").write_text(text, encoding="utf-8")
    (tmp / "pieces.json").write_text(json.dumps(pieces))
    mb = lambda seconds: n_bytes / 1e6 / seconds

    from byollm.tokenizer import pretrained

    def fresh():  # an empty piece cache each time: we measure cold encoding
        pretrained._load_cached.cache_clear()
        return load_tokenizer("gpt2")

    ours_1 = float("inf")
    for _ in range(args.repeats):
        tok = fresh()
        start = time.perf_counter()
        ids = tok.encode(text)
        ours_1 = min(ours_1, time.perf_counter() - start)
    warm, _ = best_of(args.repeats, lambda: tok.encode(text))
    ours_all = float("inf")
    for _ in range(args.repeats):
        tok_all = fresh()
        start = time.perf_counter()
        ids_all = tok_all.encode_large(text, workers=n)
        ours_all = min(ours_all, time.perf_counter() - start)

    # where our single-thread time goes
    split = tok._split
    t_split, chunks = best_of(1, lambda: split(text))
    t_warm_total, _ = best_of(1, lambda: tok._encode_ordinary(text))
    cache = tok._cache
    t_lookup, _ = best_of(1, lambda: list(chain.from_iterable(map(cache.__getitem__, chunks))))
    distinct = len(set(chunks))
    tok_cold = fresh()
    uniq = list(dict.fromkeys(chunks))
    t_merge, _ = best_of(1, lambda: [tok_cold._encode_piece(c) for c in uniq])

    ranks = pretrained.read_tiktoken_file(get_asset("r50k_base"))
    enc = tiktoken.Encoding(
        name="gpt2-local",
        pat_str=tok.pattern,
        mergeable_ranks=ranks,
        special_tokens=tok.special_tokens,
    )
    tt_1, tt_ids = best_of(args.repeats, lambda: enc.encode_ordinary(text))
    tt_all, tt_batch = best_of(
        args.repeats, lambda: enc.encode_ordinary_batch(pieces, num_threads=n)
    )
    task = {
        "kind": "encode",
        "encoder": str(get_asset("gpt2-encoder")),
        "merges": str(get_asset("gpt2-vocab")),
        "text": str(tmp / "text.txt"),
        "pieces": str(tmp / "pieces.json"),
        "repeats": args.repeats,
        "ids_out": str(tmp / "hf_ids.json"),
    }
    hf_1 = run_hf(task, 1)
    hf_all = run_hf(task, n)
    hf_ids = json.loads((tmp / "hf_ids.json").read_text())
    parity = (
        ids == ids_all == tt_ids == [i for p in tt_batch for i in p] == hf_ids
        and hf_1["batch_equals_one"]
    )
    rows += [
        f"Text: {n_bytes / 1e6:.1f} MB (Tiny Shakespeare, WikiText-2 valid+test, TinyStories sample, "
        f"python-stdlib), {len(ids):,} GPT-2 tokens, {distinct:,} distinct pieces. "
        f"Identical ids from all three libraries and all modes: **{parity}**.",
        "",
        "| encoder | 1 thread | all cores |",
        "|---|---:|---:|",
        f"| byollm (cold piece cache) | {mb(ours_1):.2f} MB/s | {mb(ours_all):.2f} MB/s ({n} processes) |",
        f"| byollm (warm piece cache) | {mb(warm):.2f} MB/s | |",
        f"| tiktoken {tiktoken.__version__} | {mb(tt_1):.2f} MB/s | {mb(tt_all):.2f} MB/s (encode_ordinary_batch, {n} threads) |",
        f"| HF tokenizers (one string / batch) | {mb(hf_1['one_string']):.2f} / {mb(hf_1['batch']):.2f} MB/s | "
        f"{mb(hf_all['one_string']):.2f} / {mb(hf_all['batch']):.2f} MB/s ({n} threads) |",
        "",
        f"Where our one-thread time goes ({ours_1:.2f} s cold): regex split {t_split:.2f} s; "
        f"cache lookups + concatenation {t_lookup:.2f} s (warm total {t_warm_total:.2f} s); "
        f"merging the {distinct:,} distinct pieces once {t_merge:.2f} s.",
    ]
    for row in rows[-9:]:
        print(row, flush=True)


def machine() -> str:
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{model}, {cores()} cores, Python {platform.python_version()}"


def write_section(results: Path, section: str) -> None:
    old = results.read_text(encoding="utf-8") if results.exists() else "# Benchmark results\n"
    start = old.find("\n## Tokenizer\n")
    if start == -1:
        new = old.rstrip("\n") + "\n\n" + section
    else:
        end = old.find("\n## ", start + 1)
        new = old[: start + 1] + section + (old[end:] if end != -1 else "")
    results.write_text(new, encoding="utf-8")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="smaller stdlib case")
    parser.add_argument("--skip-naive", action="store_true", help="skip the ~1 min naive trainer")
    parser.add_argument("--skip-train", action="store_true")
    parser.add_argument("--skip-encode", action="store_true")
    parser.add_argument("--encode-mb", type=float, default=10.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--results", type=Path, help="write the '## Tokenizer' section here")
    parser.add_argument("--hf-child", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.hf_child:
        print(json.dumps(hf_child(json.loads(args.hf_child))))
        return
    import tempfile

    import tiktoken
    import tokenizers

    load_before = os.getloadavg()
    busy = load_before[0] > 0.7  # something else was running when we started
    train_rows: list[str] = []
    encode_rows: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_train:
            training_benchmark(args, train_rows, Path(tmp))
        if not args.skip_encode:
            encode_benchmark(args, encode_rows, Path(tmp))
    load_after = os.getloadavg()
    command = "python benchmarks/tokenizer.py " + " ".join(sys.argv[1:])
    section = "\n".join(
        [
            "## Tokenizer",
            "",
            f"- Command: `{command.strip()}` (BYOLLM_MIRROR pointing at the shared data folder)",
            f"- Machine: {machine()}; tiktoken {tiktoken.__version__}, tokenizers {tokenizers.__version__}",
            f"- Date: {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC; load average "
            f"(1 min) {load_before[0]:.1f} before, {load_after[0]:.1f} after"
            + (" (other jobs shared the cores: treat timings as upper bounds)" if busy else ""),
            "",
            "### Training (GPT-4 split pattern, `<|endoftext|>` special)",
            "",
            *train_rows,
            "",
            "### Encoding with GPT-2's vocabulary",
            "",
            *encode_rows,
            "",
        ]
    )
    print()
    print(section)
    if args.results:
        write_section(args.results, section)


if __name__ == "__main__":
    main()
