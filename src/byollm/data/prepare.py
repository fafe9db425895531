"""Corpus -> token files: `train.bin`, `val.bin` (numpy memmaps) and `meta.json`.

Design choices:
- **Streaming.** The corpus is never held in memory: it is cut into byte ranges of about
  `chunk_bytes`, each ending at a newline, and each range is read, encoded and appended to the
  output file on its own. Memory stays flat however large the corpus is.
- **Parallel.** Ranges are encoded by a pool of worker processes (`workers`, default: one per
  CPU). Workers receive only `(file, start, end)`, read their range themselves, and send back
  token arrays; results are written in order, so the output does not depend on the worker count.
  Small corpora (under 8 MiB per worker) are encoded in-process: starting workers costs more.
- **Cut at newlines**, so that a word is never split between two ranges (a BPE tokenizer would
  encode a split word differently from the whole word).
- **Split.** The last `val_fraction` of the corpus bytes (moved to the next newline) is the
  validation split, as in nanoGPT: validation text is text the model never trains on.
- **Smallest dtype**: uint16 while the vocabulary fits in 65,536 ids, else uint32.
- **Idempotent.** `meta.json` records the corpus sha256, the tokenizer and its hash, and the split;
  re-running with the same inputs returns the existing meta at the cost of one hashing pass, and
  changed inputs are detected and the data re-made. Files are written under temporary names and
  renamed at the end, `meta.json` last, so an interrupted run never leaves data that looks whole.

Tokenizer specs: `char` (trained on the corpus' characters), `bpe:N` (our byte-level BPE trained
on the corpus with N ids), a pretrained name (`gpt2`, `cl100k_base`, ...), or a tokenizer JSON
file. The tokenizer used is saved beside the data as `tokenizer.json`.

    >>> meta = prepare("tinyshakespeare", "char", "data/shakespeare-char")   # doctest: +SKIP
    >>> meta["dtype"], meta["splits"]["train"]["tokens"]                     # doctest: +SKIP
    ('uint16', 1003854)
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import multiprocessing
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from byollm.errors import ByollmError

META_FORMAT = "byollm-tokens"
META_VERSION = 1
CHUNK_BYTES = 1 << 20  # 1 MiB of text per task: big enough to amortise, small enough to stream
READ_BLOCK = 1 << 22
BYTES_PER_AUTO_WORKER = (
    8 << 20
)  # below this much text per worker, start-up costs more than it saves


def prepare(
    corpus: str | Path,
    tokenizer_spec: str | Path,
    out_dir: str | Path,
    *,
    val_fraction: float = 0.1,
    workers: int | None = None,
    progress: bool = True,
    mirror: str | None = None,
    chunk_bytes: int = CHUNK_BYTES,
) -> dict:
    """Tokenize `corpus` into `out_dir` and return its meta (a no-op if already up to date)."""
    from byollm.data.corpora import corpus_files

    if not 0.0 < val_fraction < 1.0:
        raise ByollmError(f"val_fraction must be between 0 and 1 (exclusive), got {val_fraction}")
    out_dir = Path(out_dir)
    files = [Path(f) for f in corpus_files(corpus, mirror=mirror, progress=progress)]
    if not files:
        raise ByollmError(f"corpus {corpus}: no text files found")
    corpus_sha, charset = _hash_and_charset(files, want_charset=str(tokenizer_spec) == "char")
    total_bytes = sum(f.stat().st_size for f in files)
    if total_bytes == 0:
        raise ByollmError(f"corpus {corpus}: is empty")

    existing = _up_to_date(out_dir, corpus_sha, str(tokenizer_spec), val_fraction)
    if existing is not None:
        return existing
    if out_dir.exists() and not out_dir.is_dir():
        raise ByollmError(f"{out_dir}: exists and is not a folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "meta.json").unlink(missing_ok=True)  # from now on the folder is not "whole"

    tokenizer = _make_tokenizer(tokenizer_spec, files, charset, mirror, progress)
    tokenizer_path = out_dir / "tokenizer.json"
    tokenizer.save(tokenizer_path)
    dtype = np.uint16 if tokenizer.vocab_size <= 1 << 16 else np.uint32

    ranges = _split_ranges(files, total_bytes, val_fraction, chunk_bytes)
    counts = {"train": {"tokens": 0, "bytes": 0}, "val": {"tokens": 0, "bytes": 0}}
    eot = tokenizer.eot_id
    bar = tqdm(
        total=total_bytes,
        unit="B",
        unit_scale=True,
        desc=f"tokenizing {Path(str(corpus)).name}",
        disable=not progress,
    )
    with contextlib.ExitStack() as stack:
        stack.callback(bar.close)
        outputs = {
            split: stack.enter_context(open(out_dir / f"{split}.bin.tmp-{os.getpid()}", "wb"))
            for split in counts
        }
        tasks = _encode_ranges(ranges, tokenizer_path, workers)
        for (split, _path, start, end, last_of_file), ids in tasks:
            if last_of_file and eot is not None and len(files) > 1:
                ids = np.append(ids, eot)  # documents end with <|endoftext|>
            outputs[split].write(ids.astype(dtype).tobytes())
            counts[split]["tokens"] += len(ids)
            counts[split]["bytes"] += end - start
            bar.update(end - start)
    for split in counts:
        os.replace(out_dir / f"{split}.bin.tmp-{os.getpid()}", out_dir / f"{split}.bin")

    meta = {
        "format": META_FORMAT,
        "version": META_VERSION,
        "corpus": str(corpus),
        "corpus_sha256": corpus_sha,
        "corpus_bytes": total_bytes,
        "corpus_files": len(files),
        "tokenizer": str(tokenizer_spec),
        "tokenizer_hash": tokenizer.content_hash,
        "vocab_size": tokenizer.vocab_size,
        "dtype": np.dtype(dtype).name,
        "val_fraction": val_fraction,
        "splits": counts,
    }
    tmp = out_dir / f"meta.json.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(meta, indent=2) + "\n")
    os.replace(tmp, out_dir / "meta.json")
    return meta


def read_meta(data_dir: str | Path) -> dict:
    """The `meta.json` of a prepared data folder, checked for format and version."""
    path = Path(data_dir) / "meta.json"
    try:
        meta = json.loads(path.read_text())
    except FileNotFoundError:
        raise ByollmError(
            f"{path}: no prepared data here; run `byollm prepare --out {data_dir}` first"
        ) from None
    except (OSError, json.JSONDecodeError) as e:
        raise ByollmError(f"{path}: not a readable meta.json ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != META_FORMAT:
        raise ByollmError(f"{path}: not a byollm token-data meta.json (format != {META_FORMAT!r})")
    if meta.get("version") != META_VERSION:
        raise ByollmError(
            f"{path}: meta.json version {meta.get('version')!r}, this byollm reads {META_VERSION}"
        )
    return meta


# --- steps ---------------------------------------------------------------------------------------


def _hash_and_charset(files: list[Path], want_charset: bool) -> tuple[str, str]:
    """sha256 of the corpus (file contents in order) and, for `char`, its set of characters."""
    sha = hashlib.sha256()
    chars: set[str] = set()
    for path in files:
        decoder = _utf8_decoder()
        try:
            with path.open("rb") as f:
                while block := f.read(READ_BLOCK):
                    sha.update(block)
                    if want_charset:
                        chars.update(decoder.decode(block))
        except OSError as e:
            raise ByollmError(f"{path}: cannot read ({e.strerror})") from None
    return sha.hexdigest(), "".join(sorted(chars))


def _utf8_decoder():
    import codecs

    return codecs.getincrementaldecoder("utf-8")(errors="replace")


def _up_to_date(out_dir: Path, corpus_sha: str, spec: str, val_fraction: float) -> dict | None:
    """The existing meta if `out_dir` already holds this corpus, tokenizer and split."""
    from byollm.data.loader import open_tokens

    if not (out_dir / "meta.json").exists():
        return None
    try:
        meta = read_meta(out_dir)
        for split in ("train", "val"):
            open_tokens(out_dir, split)  # checks presence and size
    except (ByollmError, KeyError, TypeError):
        return None
    same = (
        meta.get("corpus_sha256") == corpus_sha
        and meta.get("tokenizer") == spec
        and meta.get("val_fraction") == val_fraction
    )
    if same and Path(spec).is_file():  # a tokenizer file may have changed under the same name
        same = _load(spec).content_hash == meta.get("tokenizer_hash")
    if same:
        try:
            same = _load(out_dir / "tokenizer.json").content_hash == meta.get("tokenizer_hash")
        except ByollmError:
            same = False
    return meta if same else None


def _load(spec, mirror=None):
    from byollm.tokenizer import load_tokenizer

    return load_tokenizer(spec, mirror=mirror) if mirror else load_tokenizer(spec)


def _make_tokenizer(spec, files: list[Path], charset: str, mirror, progress):
    spec = str(spec)
    if spec == "char":
        from byollm.tokenizer import CharTokenizer

        return CharTokenizer.train(charset)
    if spec.startswith("bpe:"):
        from byollm.tokenizer import BPETokenizer

        try:
            vocab_size = int(spec[4:])
        except ValueError:
            raise ByollmError(f"tokenizer {spec!r}: expected bpe:N with N an integer") from None
        return BPETokenizer.train(list(files), vocab_size, progress=progress)
    return _load(spec, mirror)


def _split_ranges(files, total_bytes, val_fraction, chunk_bytes):
    """(split, file, start, end, last_of_file) byte ranges, each ending at a newline."""
    val_start = round(total_bytes * (1.0 - val_fraction))  # position in the concatenated corpus
    ranges = []
    before = 0  # bytes of the corpus before this file
    for path in files:
        size = path.stat().st_size
        cuts = {0, size}
        if before < val_start < before + size:
            cuts.add(_next_newline(path, val_start - before, size))
        for position in range(chunk_bytes, size, chunk_bytes):
            cuts.add(_next_newline(path, position, size))
        cuts = sorted(cuts)
        for start, end in zip(cuts, cuts[1:]):
            if start == end:
                continue
            split = "val" if before + start >= val_start else "train"
            ranges.append((split, str(path), start, end, end == size))
        before += size
    if not any(r[0] == "val" for r in ranges) or not any(r[0] == "train" for r in ranges):
        raise ByollmError(
            f"corpus of {total_bytes} bytes is too small to split with val_fraction={val_fraction}"
        )
    return ranges


def _next_newline(path: Path, position: int, size: int) -> int:
    """The position just after the first newline at or after `position` (or the file end)."""
    with path.open("rb") as f:
        f.seek(position)
        while block := f.read(1 << 16):
            index = block.find(b"\n")
            if index >= 0:
                return position + index + 1
            position += len(block)
    return size


_worker_tokenizers: dict[str, object] = {}


def _encode_range(task: tuple, tokenizer_path: str) -> np.ndarray:
    """Read one byte range of the corpus and encode it (runs in a worker process)."""
    _split, path, start, end, _last = task
    # Loaded on first use rather than in a Pool initializer: an initializer that fails makes the
    # pool restart workers forever, while an error here reaches the parent with its message.
    tokenizer = _worker_tokenizers.get(tokenizer_path)
    if tokenizer is None:
        tokenizer = _worker_tokenizers[tokenizer_path] = _load(tokenizer_path)
    with open(path, "rb") as f:
        f.seek(start)
        text = f.read(end - start).decode("utf-8", errors="replace")
    # Corpus text is text: a "<|endoftext|>" found in it is encoded as its characters. The real
    # token goes only where byollm puts it (between files, see `prepare`).
    return np.asarray(tokenizer.encode(text), dtype=np.int64)


def _encode_ranges(ranges, tokenizer_path: Path, workers: int | None) -> Iterator:
    """(range, token ids) in corpus order, encoded in `workers` processes."""
    if workers is None:
        total = sum(end - start for _, _, start, end, _ in ranges)
        workers = min(os.cpu_count() or 1, total // BYTES_PER_AUTO_WORKER)
    workers = min(workers, len(ranges))
    encode = functools.partial(_encode_range, tokenizer_path=str(tokenizer_path))
    if workers <= 1:
        _worker_tokenizers.clear()  # this process may have encoded with an older file before
        for task in ranges:
            yield task, encode(task)
        return
    # 'spawn' is safe with threads (torch) in the parent; the workers import only the tokenizer.
    context = multiprocessing.get_context("spawn")
    with context.Pool(workers) as pool:
        yield from zip(ranges, pool.imap(encode, ranges))
