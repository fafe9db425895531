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
  encode a split word differently from the whole word). Text with no newline for a whole chunk
  (one long line, or a corpus with no newline at all) is cut before a space instead, and failing
  that between two characters, so every range stays about `chunk_bytes` long.
- **Split.** The last `val_fraction` of the corpus bytes (moved to the next cut as above) is the
  validation split, as in nanoGPT: validation text is text the model never trains on.
- **Text in, every byte of it out.** The hashing pass also checks that every file is UTF-8 text
  (`corpora.read_text_blocks`, the check `eval` uses): a binary or Latin-1 file is refused rather
  than turned into U+FFFD. After encoding, the tokens of each range must spell exactly as many
  bytes as the range holds: a tokenizer whose split pattern skips some text is refused, never
  allowed to drop it silently.
- **The files' format has one owner**, `tokens.py` (names, meta.json, the dtype rule: uint16
  while the vocabulary fits in 65,536 ids, else uint32); this module only fills them.
- **Idempotent.** `meta.json` records the corpus sha256, the tokenizer and its hash, and the split;
  re-running with the same inputs returns the existing meta at the cost of one hashing pass, and
  changed inputs are detected and the data re-made.
- **The previous data survives a failure.** All four files are written under hidden temporary
  names and renamed into place only when all are complete, `meta.json` last, so an interrupted
  run never leaves data that looks whole; a full disk (or any error) deletes the temporary files,
  keeps the previous data and says so in one line. Temporary files of a killed run are deleted
  by the next one.
- **Only its own files are replaced.** A train.bin, val.bin, byollm-tokenizer.json or meta.json
  that is not beside prepare's meta.json was not written by prepare, and prepare refuses to
  overwrite it.

Tokenizer specs (parsed by `byollm.tokenizer.parse_tokenizer_spec`): `char` (the corpus'
characters), `bpe:N` (our byte-level BPE trained on the corpus with N ids), a pretrained name
(`gpt2`, `cl100k_base`, ...), or a tokenizer file. The tokenizer used is saved beside the data as
`byollm-tokenizer.json`; a folder prepared before that name holds `tokenizer.json`, which is
still read, and replaced when the data is re-made.

    >>> meta = prepare("tinyshakespeare", "char", "data/shakespeare-char")   # doctest: +SKIP
    >>> meta["dtype"], meta["splits"]["train"]["tokens"]                     # doctest: +SKIP
    ('uint16', 1003854)
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from byollm.corpora import corpus_files, read_text_blocks
from byollm.data.tokens import (
    META_FILE,
    SPLITS,
    is_token_meta,
    new_meta,
    open_tokens,
    read_meta,
    split_file,
    token_dtype,
)
from byollm.download import resolve_mirror
from byollm.errors import ByollmError
from byollm.paths import process_alive, user_path
from byollm.tokenizer import (
    LEGACY_TOKENIZER_FILE,
    TOKENIZER_FILE,
    find_tokenizer_file,
    load_tokenizer,
    parse_tokenizer_spec,
    read_tokenizer_file,
)
from byollm.workers import worker_pool

CHUNK_BYTES = 1 << 20  # 1 MiB of text per task: big enough to amortise, small enough to stream
READ_BLOCK = 1 << 22
WORKERS_PER_CPU = 4  # more processes than this only cost memory (each loads the tokenizer)
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
    if not 0.0 < val_fraction < 1.0:
        raise ByollmError(f"val_fraction must be between 0 and 1 (exclusive), got {val_fraction}")
    most_workers = WORKERS_PER_CPU * (os.cpu_count() or 1)
    if workers is not None and not 1 <= workers <= most_workers:
        raise ByollmError(
            f"workers must be between 1 and {most_workers} ({WORKERS_PER_CPU} per CPU), got {workers}"
        )
    if chunk_bytes < 1:
        raise ByollmError(f"chunk_bytes must be at least 1, got {chunk_bytes}")
    resolve_mirror(mirror)  # a malformed mirror is one line before any work
    spec = parse_tokenizer_spec(tokenizer_spec)  # and so is a malformed tokenizer spec
    out_dir = user_path(out_dir)
    files = [Path(f) for f in corpus_files(corpus, mirror=mirror, progress=progress)]
    if not files:
        raise ByollmError(f"corpus {corpus}: no text files found")
    corpus_sha = _hash(files)
    total_bytes = sum(f.stat().st_size for f in files)
    if total_bytes == 0:
        raise ByollmError(f"corpus {corpus}: is empty")

    existing = _up_to_date(out_dir, corpus_sha, spec, val_fraction)
    if existing is not None:
        return existing
    if out_dir.exists() and not out_dir.is_dir():
        raise ByollmError(f"{out_dir}: exists and is not a folder")
    ours = _check_ours_to_replace(out_dir, spec)
    ranges = _split_ranges(files, total_bytes, val_fraction, chunk_bytes)
    created = not out_dir.exists()
    if not created:
        _remove_stale_temporary(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ByollmError(f"cannot create {out_dir}: {e.strerror or e}") from None
    tmp = {name: out_dir / f".{name}.tmp-{os.getpid()}" for name in OUTPUT_FILES}
    try:
        tokenizer, dtype, counts = _write_outputs(
            files, corpus, spec, ranges, tmp, workers, progress, mirror
        )
        meta = new_meta(
            corpus=str(corpus),
            corpus_sha256=corpus_sha,
            corpus_bytes=total_bytes,
            corpus_files=len(files),
            tokenizer=spec.text,
            tokenizer_hash=tokenizer.content_hash,
            vocab_size=tokenizer.vocab_size,
            dtype=dtype.name,
            val_fraction=val_fraction,
            splits=counts,
        )
        tmp[META_FILE].write_text(json.dumps(meta, indent=2) + "\n")
    except BaseException as e:  # any failure, Ctrl-C too: no temporary file stays behind
        _remove_temporary(tmp, out_dir if created else None)
        if isinstance(e, OSError):  # disk full, no permission: the previous data was not touched
            raise ByollmError(
                f"cannot write in {out_dir}: {e.strerror or e}; the previous data there (if any) "
                "is kept and the temporary files were deleted"
            ) from None
        raise
    try:
        # meta.json goes first and comes back last: in between the folder is not "whole".
        (out_dir / META_FILE).unlink(missing_ok=True)
        for name in OUTPUT_FILES:
            os.replace(tmp[name], out_dir / name)
    except OSError as e:  # pragma: no cover - a rename in one folder needs no space
        _remove_temporary(tmp, None)
        raise ByollmError(
            f"cannot rename the new files into {out_dir} ({e.strerror or e}); run prepare again"
        ) from None
    legacy = out_dir / LEGACY_TOKENIZER_FILE  # what the file just written was called before
    if ours and legacy.is_file() and not _is_spec_file(spec, legacy):
        with contextlib.suppress(OSError):  # stale, but never read: the new name comes first
            legacy.unlink()
    return meta


# Written in this order and renamed into place in this order: meta.json, the proof that the
# folder is whole, comes last.
OUTPUT_FILES = (TOKENIZER_FILE, *map(split_file, SPLITS), META_FILE)


def _write_outputs(files, corpus, spec, ranges, tmp, workers, progress, mirror):
    """Make the tokenizer and encode every range into the temporary files `tmp`.

    Returns (tokenizer, dtype, token and byte counts per split)."""
    # `char` and `bpe:N` are trained on this corpus, the corpus in hand.
    tokenizer = load_tokenizer(spec, corpus=files, mirror=mirror, progress=progress)
    tokenizer_path = tmp[TOKENIZER_FILE]
    tokenizer.save(tokenizer_path)
    dtype = token_dtype(tokenizer.vocab_size)
    total_bytes = sum(end - start for _, _, start, end, _ in ranges)

    counts = {split: {"tokens": 0, "bytes": 0} for split in SPLITS}
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
            split: stack.enter_context(open(tmp[split_file(split)], "wb")) for split in counts
        }
        tasks = _checked_cover(_encode_ranges(ranges, tokenizer_path, workers), tokenizer)
        for (split, _path, start, end, last_of_file), ids in tasks:
            if last_of_file and eot is not None and len(files) > 1:
                ids = np.append(ids, eot)  # documents end with <|endoftext|>
            outputs[split].write(ids.astype(dtype).tobytes())
            counts[split]["tokens"] += len(ids)
            counts[split]["bytes"] += end - start
            bar.update(end - start)
    return tokenizer, dtype, counts


def _check_ours_to_replace(out_dir: Path, spec) -> bool:
    """Refuse to overwrite a train.bin, val.bin, byollm-tokenizer.json or meta.json that prepare
    did not write: those in a folder with prepare's meta.json (or with the temporary meta.json of
    a run that crashed while renaming) are prepare's; the tokenizer file being used is fine too.

    Returns whether the folder holds data of prepare's, about to be replaced."""
    present = [name for name in OUTPUT_FILES if (out_dir / name).exists()]
    if not present:
        return False
    metas = [out_dir / META_FILE, *out_dir.glob(f".{META_FILE}.tmp-*")]
    if any(is_token_meta(path) for path in metas):
        return True
    if present == [TOKENIZER_FILE] and _is_spec_file(spec, out_dir / TOKENIZER_FILE):
        return False  # `--tokenizer OUT/byollm-tokenizer.json`: saved again, same content
    raise ByollmError(
        f"{out_dir} holds {', '.join(present)} but no meta.json of byollm prepare, so prepare "
        "did not write them and will not overwrite them; choose another --out or move them away"
    )


def _is_spec_file(spec, path: Path) -> bool:
    """Whether the tokenizer spec is the file `path` (the same file, under any name)."""
    return spec.kind == "file" and spec.path.exists() and path.exists() and spec.path.samefile(path)


def _remove_stale_temporary(out_dir: Path) -> None:
    """Delete temporary files left in `out_dir` by a prepare that was killed (its pid is gone)."""
    for path in out_dir.glob(".*.tmp-*"):
        name, _, pid = path.name.removesuffix(".tmp").rpartition(".tmp-")
        ours = name[1:] in (*OUTPUT_FILES, LEGACY_TOKENIZER_FILE)  # legacy: an older byollm's
        if ours and pid.isdigit() and not process_alive(int(pid)):
            with contextlib.suppress(OSError):
                path.unlink()


def _remove_temporary(tmp: dict[str, Path], created_dir: Path | None) -> None:
    """Delete this run's temporary files (and the folder, if this run created it and it is empty)."""
    for path in tmp.values():
        for leftover in (path, path.with_name(path.name + ".tmp")):  # .tmp: Tokenizer.save's own
            with contextlib.suppress(OSError):
                leftover.unlink(missing_ok=True)
    if created_dir is not None:
        with contextlib.suppress(OSError):
            created_dir.rmdir()  # only succeeds when empty


# --- steps ---------------------------------------------------------------------------------------


def _hash(files: list[Path]) -> str:
    """sha256 of the corpus (file contents in order).

    Reading through `read_text_blocks` also refuses a file that is not UTF-8 text."""
    sha = hashlib.sha256()
    for path in files:
        for block, _text in read_text_blocks(path, READ_BLOCK):
            sha.update(block)
    return sha.hexdigest()


def _up_to_date(out_dir: Path, corpus_sha: str, spec, val_fraction: float) -> dict | None:
    """The existing meta if `out_dir` already holds this corpus, tokenizer and split."""
    if not (out_dir / META_FILE).exists():
        return None
    try:
        meta = read_meta(out_dir)
        for split in SPLITS:
            open_tokens(out_dir, split)  # checks presence and size
    except ByollmError:
        return None
    same = (
        meta.get("corpus_sha256") == corpus_sha
        and meta.get("tokenizer") == spec.text
        and meta.get("val_fraction") == val_fraction
    )
    if same and spec.kind == "file" and spec.path.is_file():  # changed under the same name?
        same = read_tokenizer_file(spec.path).content_hash == meta.get("tokenizer_hash")
    if same:
        try:
            saved = read_tokenizer_file(find_tokenizer_file(out_dir))
        except ByollmError:
            return None
        same = saved.content_hash == meta.get("tokenizer_hash")
    return meta if same else None


def _split_ranges(files, total_bytes, val_fraction, chunk_bytes):
    """(split, file, start, end, last_of_file) byte ranges, each ending at a newline if it can."""
    val_start = round(total_bytes * (1.0 - val_fraction))  # position in the concatenated corpus
    ranges = []
    before = 0  # bytes of the corpus before this file
    for path in files:
        size = path.stat().st_size
        cuts = {0, size}
        if before < val_start < before + size:
            cuts.add(_next_cut(path, val_start - before, size, chunk_bytes))
        for position in range(chunk_bytes, size, chunk_bytes):
            cuts.add(_next_cut(path, position, size, chunk_bytes))
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


def _next_cut(path: Path, position: int, size: int, window: int) -> int:
    """Where a range meant to end near `position` ends: just after the first newline in the next
    `window` bytes; else just before the first space or tab there (a word boundary); else at the
    first character boundary (never inside a UTF-8 character).
    """
    with path.open("rb") as f:
        f.seek(position)
        block = f.read(window)
    newline = block.find(b"\n")
    if newline >= 0:
        return position + newline + 1
    space = re.search(rb"[ \t]", block)
    if space is not None:
        return position + space.start()
    # UTF-8 continuation bytes are 0b10xxxxxx; any other byte starts a character.
    boundary = next((i for i, byte in enumerate(block) if byte & 0xC0 != 0x80), len(block))
    return min(position + boundary, size)


_worker_tokenizers: dict[str, object] = {}


def _encode_range(task: tuple, tokenizer_path: str) -> np.ndarray:
    """Read one byte range of the corpus and encode it (runs in a worker process)."""
    _split, path, start, end, _last = task
    # Loaded on first use rather than in a Pool initializer: an initializer that fails makes the
    # pool restart workers forever, while an error here reaches the parent with its message.
    tokenizer = _worker_tokenizers.get(tokenizer_path)
    if tokenizer is None:
        tokenizer = _worker_tokenizers[tokenizer_path] = read_tokenizer_file(tokenizer_path)
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
    encode = functools.partial(_encode_range, tokenizer_path=str(tokenizer_path))
    # 'spawn' is safe with threads (torch) in the parent; the workers import only the tokenizer.
    pool = worker_pool(workers, tasks=len(ranges), start="spawn")
    if pool is None:
        _worker_tokenizers.clear()  # this process may have encoded with an older file before
        for task in ranges:
            yield task, encode(task)
        return
    with pool:
        yield from zip(ranges, pool.imap(encode, ranges))


def _checked_cover(tasks: Iterator, tokenizer) -> Iterator:
    """Pass (range, ids) on, after checking that the ids spell every byte of the range.

    A split pattern that does not match some text (e.g. a custom `\\w+`, which skips spaces and
    punctuation) makes the tokenizer drop that text without a word; counting the bytes the ids
    stand for catches it for the price of one table lookup per token.
    """
    if getattr(tokenizer, "unk", None) is not None:  # unknown characters map to one stand-in
        yield from tasks
        return
    spelled = np.zeros(tokenizer.vocab_size, dtype=np.int64)  # id -> bytes it decodes to
    for token_id in range(tokenizer.vocab_size):
        if tokenizer.is_valid_id(token_id):
            spelled[token_id] = len(tokenizer.token_bytes(token_id))
    for task, ids in tasks:
        _split, path, start, end, _last = task
        covered = int(spelled[ids].sum()) if len(ids) else 0
        if covered != end - start:
            pattern = getattr(tokenizer, "pattern", None)
            why = (
                f"its split pattern {pattern!r} does not match all of the text"
                if pattern
                else "it does not encode all of the text"
            )
            raise ByollmError(
                f"{path}: the tokenizer turned bytes {start}-{end} ({end - start} bytes) into "
                f"tokens that spell {covered} bytes: {why}, so text would be silently "
                "dropped; use a tokenizer that covers every character (bpe:N, gpt2, char...)"
            )
        yield task, ids
