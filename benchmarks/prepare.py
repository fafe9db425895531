"""`byollm prepare` against nanoGPT's prepare method on a large corpus: throughput and peak memory.

    python benchmarks/prepare.py build /tmp/stdlib-1g --size 1GB        # the corpus, once
    flock /tmp/byollm-speed.lock nice -n -5 taskset -c 1 env OMP_NUM_THREADS=1 \\
        python benchmarks/prepare.py run /tmp/stdlib-1g --method byollm --processes 1   # or nanogpt

The corpus is this Python's standard library copied over and over into a folder
(`copy-000/asyncio/tasks.py`, ...) until it holds `--size` bytes: ~61,000 modules for 1 GB, each
a document. Both methods tokenize it with GPT-2's vocabulary, end every document with
`<|endoftext|>` and write uint16 token files with a ~10% validation split by document:

- `byollm`: `byollm.data.prepare.prepare` with byollm's own BPE encoder (pure Python; tiktoken
  is never used by byollm itself), streaming, with `--processes` worker processes (1:
  in-process).
- `nanogpt`: nanoGPT's `data/openwebtext/prepare.py` method without Hugging Face `datasets`:
  tiktoken's `encode_ordinary` on each whole document plus the end-of-text token, in a
  `multiprocessing.Pool` of `--processes` (1: in-process, as `num_proc=1` is), the ids kept on
  disk as they come (as `datasets.map` keeps them in its Arrow cache), then their lengths summed
  and the ids copied into one `np.memmap` per split, as nanoGPT writes train.bin / val.bin.

Each run is a child process, which prints its peak RSS (its own and its workers', from
`resource.getrusage`), its wall time and bytes per second; `--results` appends a JSON line.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import sysconfig
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))


def build(folder: Path, size: int) -> None:
    """Copy the stdlib's .py files (UTF-8 ones) into folder/copy-NNN/ until `size` bytes."""
    from byollm.corpora.registry import stdlib_documents

    modules = [(name, text.encode()) for name, text in stdlib_documents()]
    folder.mkdir(parents=True, exist_ok=True)
    written, copy = 0, 0
    while written < size:
        for name, data in modules:
            path = folder / f"copy-{copy:03d}" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            written += len(data)
            if written >= size:
                break
        copy += 1
    print(f"{folder}: {written:,} bytes in {copy} copies of {len(modules)} modules")


def run_byollm(corpus: Path, out: Path, processes: int) -> dict:
    from byollm.data.prepare import prepare

    meta = prepare(corpus, "gpt2", out, workers=processes, progress=False)
    return {"tokens": sum(meta["splits"][s]["tokens"] for s in ("train", "val"))}


_encoding = None


def _nanogpt_process(path: str):
    """nanoGPT's `process(example)`: encode_ordinary, then the end-of-text token."""
    import numpy as np

    text = Path(path).read_text(encoding="utf-8")
    ids = _encoding.encode_ordinary(text)
    ids.append(_encoding.eot_token)
    return np.array(ids, dtype=np.uint16)


def _nanogpt_init():
    global _encoding
    import tiktoken

    from byollm.tokenizer import load_tokenizer

    # tiktoken.get_encoding("gpt2") needs the network; the same ranks from byollm's mirror
    gpt2 = load_tokenizer("gpt2")
    ranks = {gpt2.token_bytes(i): i for i in range(50256)}
    _encoding = tiktoken.Encoding(
        "gpt2", pat_str=gpt2.pattern, mergeable_ranks=ranks, special_tokens={"<|endoftext|>": 50256}
    )


def run_nanogpt(corpus: Path, out: Path, processes: int) -> dict:
    import multiprocessing

    import numpy as np

    from byollm.data.prepare import document_split

    files = sorted(str(p) for p in corpus.rglob("*.py"))
    out.mkdir(parents=True, exist_ok=True)
    cache = {split: open(out / f"{split}.cache", "wb") for split in ("train", "val")}  # noqa: SIM115
    lengths = {"train": 0, "val": 0}
    splits = [document_split(str(Path(f).relative_to(corpus)), 0.1) for f in files]
    if processes == 1:
        _nanogpt_init()
        results = map(_nanogpt_process, files)
        pool = None
    else:
        pool = multiprocessing.get_context("fork").Pool(processes, _nanogpt_init)
        results = pool.imap(_nanogpt_process, files, chunksize=16)
    for split, ids in zip(splits, results):
        cache[split].write(ids.tobytes())
        lengths[split] += len(ids)
    if pool is not None:
        pool.close()
        pool.join()
    for split, f in cache.items():
        f.close()
        # nanoGPT: arr = np.memmap(filename, dtype=np.uint16, mode='w+', shape=(arr_len,)),
        # then the batches copied in
        arr = np.memmap(out / f"{split}.bin", dtype=np.uint16, mode="w+", shape=(lengths[split],))
        source = np.memmap(out / f"{split}.cache", dtype=np.uint16, mode="r")
        for start in range(0, lengths[split], 1 << 24):
            arr[start : start + (1 << 24)] = source[start : start + (1 << 24)]
        arr.flush()
        del arr, source
        (out / f"{split}.cache").unlink()
    return {"tokens": sum(lengths.values())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    b = sub.add_parser("build")
    b.add_argument("folder", type=Path)
    b.add_argument("--size", default="1GB")
    r = sub.add_parser("run")
    r.add_argument("corpus", type=Path)
    r.add_argument("--method", choices=("byollm", "nanogpt"), required=True)
    r.add_argument("--processes", type=int, default=1)
    r.add_argument("--out", type=Path, default=None, help="default: a folder beside the corpus")
    r.add_argument("--keep", action="store_true", help="keep the token files")
    r.add_argument("--results", type=Path, default=None, help="append a JSON line here")
    args = parser.parse_args()
    if args.command == "build":
        from byollm.corpora.registry import parse_size

        build(args.folder, parse_size(args.size))
        return
    corpus_bytes = sum(p.stat().st_size for p in args.corpus.rglob("*.py"))
    out = args.out or args.corpus.with_name(f"{args.corpus.name}-{args.method}")
    shutil.rmtree(out, ignore_errors=True)
    start = time.perf_counter()
    if args.method == "nanogpt":
        result = run_nanogpt(args.corpus, out, args.processes)
    else:
        result = run_byollm(args.corpus, out, args.processes)
    seconds = time.perf_counter() - start
    # ru_maxrss is in KiB on Linux; RUSAGE_CHILDREN: the largest worker process
    rss_self = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    rss_workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024
    row = {
        "method": args.method,
        "processes": args.processes,
        "corpus_bytes": corpus_bytes,
        "tokens": result["tokens"],
        "seconds": round(seconds, 1),
        "MB_per_s": round(corpus_bytes / seconds / 1e6, 2),
        "peak_rss_MiB": round(rss_self / 2**20, 1),
        "peak_worker_rss_MiB": round(rss_workers / 2**20, 1),
        "cpus": len(os.sched_getaffinity(0)),
        "python": sysconfig.get_python_version(),
        "load_average_1min": os.getloadavg()[0],
    }
    print(json.dumps(row))
    if args.results:
        with open(args.results, "a") as f:
            f.write(json.dumps(row) + "\n")
    if not args.keep:
        shutil.rmtree(out, ignore_errors=True)


if __name__ == "__main__":
    main()
