"""A corpus as a stream of documents: a play, a module, a story, a JSONL record, a Parquet row.

    >>> for doc in iter_documents("python-stdlib:20KB"):        # doctest: +SKIP
    ...     print(doc.name, sum(len(piece) for piece in doc.pieces))
    __future__.py 5217
    ...

A corpus is whatever `registry.get_corpus` accepts (a registered name, `python-stdlib[:SIZE]`, a
file or a folder) or a glob (`data/*.jsonl.gz`). What a document is depends on the file:

| file                        | one document is                                     | its name       |
|-----------------------------|-----------------------------------------------------|----------------|
| `.jsonl`                    | one line's JSON record, its `text_field` (`"text"`) | `file:LINE`    |
| `.parquet` (needs pyarrow)  | one row, its `text_field` column                    | `file:ROW`     |
| any other file (text)       | the whole file; or, where it holds `<|endoftext|>`  | `file`         |
|                             | lines (TinyStories' format), each text between them | `file#N`       |
| an archive of a registered  | each member matching the corpus' `members` pattern  | the member     |
| corpus (`.tar.gz`, `.zip`)  | (the plays of `shakespeare-complete`)               |                |
| `python-stdlib[-with-tests]`| one module, after its `# file: path` header line    | its path       |

Any of the files may be compressed: `.gz` and `.xz` (the standard library reads them) or `.zst`
(needs the `zstandard` package: `pip install byollm[corpora]`).

Design choices:
- **Streamed, in pieces.** A document's text comes as an iterator of pieces of about
  `piece_chars` characters, each ending at a line end where there is one (else before a space),
  so a 1 GB single-document file never sits in memory, and a piece boundary never cuts a word
  (a BPE tokenizer would encode a cut word differently). Read a document's pieces before asking
  for the next document.
- **Text means UTF-8 text**, as everywhere in `byollm.corpora`: a byte that is not UTF-8, or a
  NUL byte, is refused with the file and offset (of the decompressed stream, for `.gz`...).
- **Names are stable** (paths relative to the folder, line and row numbers), because the
  validation split is chosen from them (`byollm.data.prepare`): the same corpus gives the same
  names, and so the same split, on every machine.
"""

from __future__ import annotations

import fnmatch
import glob
import gzip
import io
import itertools
import json
import lzma
import shutil
import tarfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from byollm.corpora.registry import (
    CORPORA,
    _is_corpus_file,
    _lookup,
    folder_files,
    get_corpus,
    read_stream_blocks,
    stdlib_documents,
)
from byollm.download import sha256_file
from byollm.errors import ByollmError

__all__ = ["Document", "corpus_paths", "extract_members", "iter_documents", "named_val_documents"]

ENDOFTEXT = "<|endoftext|>"  # the separator TinyStories' text files use between stories
PIECE_CHARS = 1 << 20
READ_BLOCK = 1 << 22
COMPRESSED = (".gz", ".xz", ".zst")
BINARY_SUFFIXES = (*COMPRESSED, ".parquet")  # files a folder holds that are not plain text


@dataclass
class Document:
    """One document: a stable `name` and its text as an iterator of `pieces`."""

    name: str
    pieces: Iterator[str]


def iter_documents(
    corpus: str | Path,
    *,
    text_field: str = "text",
    mirror: str | None = None,
    progress: bool = True,
    piece_chars: int = PIECE_CHARS,
) -> Iterator[Document]:
    """The documents of `corpus`, in a fixed order (see the module docstring)."""
    kind, value = _lookup_or_glob(corpus)
    if kind == "stdlib":
        max_bytes, with_tests = value
        for name, text in stdlib_documents(max_bytes, with_tests):
            yield Document(name, iter(_cut_pieces([text], piece_chars)))
        return
    if kind == "registered" and value.members:
        archive = get_corpus(value.name, mirror=mirror, progress=progress)
        yield from _archive_documents(archive, value.members, piece_chars)
        return
    root, files = _files_of(kind, value, corpus, mirror, progress)
    for path in files:
        label = path.relative_to(root).as_posix() if root is not None else path.name
        yield from _file_documents(path, label, text_field, piece_chars)


def corpus_paths(
    corpus: str | Path, *, mirror: str | None = None, progress: bool = True
) -> list[Path]:
    """The files a corpus is read from (an archive counts as one), for hashing and listing."""
    kind, value = _lookup_or_glob(corpus)
    if kind == "stdlib":
        return []  # built from the running interpreter: identified by its text
    if kind == "registered" and value.members:
        return [get_corpus(value.name, mirror=mirror, progress=progress)]
    return _files_of(kind, value, corpus, mirror, progress)[1]


def named_val_documents(corpus: str | Path) -> tuple[str, ...]:
    """The documents a registered corpus holds out by name (e.g. whole plays), else ()."""
    kind, value = _lookup_or_glob(corpus)
    return value.val_documents if kind == "registered" else ()


# --- where the files are ------------------------------------------------------------------------


def _lookup_or_glob(corpus: str | Path) -> tuple[str, object]:
    text = str(corpus)
    if not isinstance(corpus, Path) and any(c in text for c in "*?[") and text not in CORPORA:
        matches = sorted(Path(p) for p in glob.glob(str(Path(text).expanduser()), recursive=True))
        files = [p for p in matches if p.is_file()]
        if not files:
            raise ByollmError(f"corpus {text}: the pattern matches no file")
        return "glob", files
    return _lookup(corpus)


def _files_of(kind, value, corpus, mirror, progress) -> tuple[Path | None, list[Path]]:
    """(the folder names are relative to, or None) and the corpus' files in order."""
    if kind == "glob":
        return None, value
    path = get_corpus(corpus, mirror=mirror, progress=progress)
    if path.is_file():
        return None, [path]
    return path, folder_files(path, _is_document_file)


def _is_document_file(path: Path, root: Path) -> bool:
    """A folder's text files, and its compressed and Parquet files (binary, but documents)."""
    rel = path.relative_to(root)
    if path.name.endswith(BINARY_SUFFIXES) and path.is_file():
        return not any(part.startswith(".") or part == "__pycache__" for part in rel.parts)
    return _is_corpus_file(path, root)


# --- reading one file ---------------------------------------------------------------------------


def _file_documents(path: Path, label: str, text_field: str, piece_chars: int):
    name = path.name
    inner = name
    for suffix in COMPRESSED:
        if name.endswith(suffix):
            inner = name[: -len(suffix)]
    if inner.endswith(".parquet"):
        yield from _parquet_documents(path, label, text_field, piece_chars)
    elif inner.endswith(".jsonl"):
        yield from _jsonl_documents(path, label, text_field, piece_chars)
    else:
        with _open_binary(path) as stream:
            yield from _text_documents(_text_blocks(stream, path), label, piece_chars)


def _open_binary(path: Path):
    """The file's bytes, decompressed if its name says so."""
    try:
        if path.name.endswith(".gz"):
            return gzip.open(path, "rb")
        if path.name.endswith(".xz"):
            return lzma.open(path, "rb")
        if path.name.endswith(".zst"):
            try:
                import zstandard
            except ImportError:
                raise ByollmError(
                    f"{path}: reading .zst needs the zstandard package "
                    "(pip install 'byollm[corpora]'), or decompress it first"
                ) from None
            return zstandard.ZstdDecompressor().stream_reader(open(path, "rb"), closefd=True)
        return open(path, "rb")
    except OSError as e:
        raise ByollmError(f"cannot read {path}: {e.strerror or e}") from None


def _text_blocks(stream, path) -> Iterator[str]:
    """Decoded text of a binary stream, refusing NUL bytes and bytes that are not UTF-8."""
    try:
        for _block, text in read_stream_blocks(stream, path, READ_BLOCK):
            if text:
                yield text
    except (OSError, EOFError, lzma.LZMAError) as e:  # a damaged .gz/.xz, a failing disk
        raise ByollmError(f"cannot read {path}: {getattr(e, 'strerror', None) or e}") from None


def _text_documents(blocks: Iterator[str], label: str, piece_chars: int):
    """One document, or one per text between `<|endoftext|>` separators."""
    blocks = iter(blocks)
    first = next(blocks, "")
    if not first:
        return
    if ENDOFTEXT not in first:  # one document: TinyStories' separators show up early
        yield Document(label, iter(_cut_pieces(_chain(first, blocks), piece_chars)))
        return
    index = 0
    for text in _split_at_endoftext(_chain(first, blocks)):
        if text.strip():
            yield Document(f"{label}#{index}", iter([text]))
            index += 1


def _split_at_endoftext(blocks) -> Iterator[str]:
    """The texts between separators (one newline after each separator dropped with it)."""
    buffer = ""
    for block in blocks:
        buffer += block
        while ENDOFTEXT in buffer:
            text, _, buffer = buffer.partition(ENDOFTEXT)
            buffer = buffer.removeprefix("\n")
            yield text
        # a long text with no separator would grow the buffer: TinyStories' stories are short
    if buffer:
        yield buffer


def _jsonl_documents(path: Path, label: str, text_field: str, piece_chars: int):
    line_number = 0
    rest = ""
    with _open_binary(path) as stream:
        for block in itertools.chain(_text_blocks(stream, path), ["\n"]):
            lines = (rest + block).split("\n")
            rest = lines.pop()
            for line in lines:
                line_number += 1
                if not line.strip():
                    continue
                text = _field(_json_record(line, path, line_number), text_field, path, line_number)
                yield Document(f"{label}:{line_number}", iter(_cut_pieces([text], piece_chars)))


def _json_record(line: str, path: Path, line_number: int) -> dict:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as e:
        raise ByollmError(f"{path} line {line_number}: not JSON ({e.msg})") from None
    if not isinstance(record, dict):
        raise ByollmError(f"{path} line {line_number}: a JSON object was expected")
    return record


def _field(record: dict, text_field: str, path, where) -> str:
    text = record.get(text_field)
    if not isinstance(text, str):
        fields = ", ".join(k for k, v in record.items() if isinstance(v, str)) or "none"
        raise ByollmError(
            f"{path} record {where}: no text field {text_field!r} (text fields here: {fields}); "
            "choose one with --text-field"
        )
    return text


def _parquet_documents(path: Path, label: str, text_field: str, piece_chars: int):
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ByollmError(
            f"{path}: reading Parquet needs the pyarrow package (pip install 'byollm[corpora]')"
        ) from None
    with _open_binary(path) as stream:
        source = stream if not path.name.endswith(COMPRESSED) else io.BytesIO(stream.read())
        try:
            table = pq.ParquetFile(source)
        except Exception as e:  # pyarrow's own error types: a damaged or non-Parquet file
            raise ByollmError(f"{path}: not a readable Parquet file ({e})") from None
        if text_field not in table.schema_arrow.names:
            raise ByollmError(
                f"{path}: no column {text_field!r} (columns: "
                f"{', '.join(table.schema_arrow.names)}); choose one with --text-field"
            )
        row = 0
        for batch in table.iter_batches(batch_size=1024, columns=[text_field]):
            for text in batch.column(0).to_pylist():
                if isinstance(text, str):
                    yield Document(f"{label}:{row}", iter(_cut_pieces([text], piece_chars)))
                row += 1


def _archive_documents(archive: Path, members: str, piece_chars: int):
    """The members of a .tar.gz or .zip matching `members` ('|'-separated globs), in name
    order, each a document."""
    patterns = members.split("|")

    def chosen(name: str) -> bool:
        return any(fnmatch.fnmatch(name, pattern) for pattern in patterns)

    if zipfile.is_zipfile(archive):
        with zipfile.ZipFile(archive) as z:
            names = sorted(n for n in z.namelist() if chosen(n))
            for name in names:
                with z.open(name) as stream:
                    yield from _named_document(stream, archive, name, piece_chars)
        return
    with tarfile.open(archive, "r:*") as tar:
        files = sorted(
            (m for m in tar.getmembers() if m.isfile() and chosen(m.name)), key=lambda m: m.name
        )
        for member in files:
            with tar.extractfile(member) as stream:
                yield from _named_document(stream, archive, member.name, piece_chars)


def extract_members(corpus, *, mirror: str | None = None, progress: bool = True) -> Path:
    """The documents of an archive corpus as files in a folder beside its cached archive
    (`<archive>.members/`), written once, for the tools that read files: `byollm tokenizer
    train`, `byollm eval`, `read_corpus_text`."""
    archive = get_corpus(corpus.name, mirror=mirror, progress=progress)
    folder = archive.with_name(archive.name + ".members")
    done = folder / ".complete"
    if done.is_file():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    try:
        for doc in _archive_documents(archive, corpus.members, PIECE_CHARS):
            path = folder / doc.name
            path.parent.mkdir(parents=True, exist_ok=True)
            with open(path, "w", encoding="utf-8", newline="") as f:
                for piece in doc.pieces:
                    f.write(piece)
        done.write_text(f"{sha256_file(archive)}\n")
    except OSError as e:
        shutil.rmtree(folder, ignore_errors=True)
        raise ByollmError(f"cannot extract {archive} into {folder}: {e.strerror or e}") from None
    return folder


def _named_document(stream, archive: Path, name: str, piece_chars: int):
    blocks = _text_blocks(stream, f"{archive}:{name}")
    yield Document(name, iter(_cut_pieces(blocks, piece_chars)))


# --- pieces ------------------------------------------------------------------------------------


def _chain(first: str, rest: Iterator[str]) -> Iterator[str]:
    yield first
    yield from rest


def _cut_pieces(blocks, piece_chars: int) -> Iterator[str]:
    """Re-cut text blocks into pieces of about `piece_chars`, each ending after a newline where
    the text has one, else before a space or tab, else anywhere (text with no space at all)."""
    buffer = ""
    for block in blocks:
        buffer += block
        while len(buffer) >= piece_chars:
            cut = _cut_point(buffer, piece_chars)
            yield buffer[:cut]
            buffer = buffer[cut:]
    if buffer:
        yield buffer


def _cut_point(text: str, near: int) -> int:
    newline = text.find("\n", near)
    if newline >= 0:
        return newline + 1
    newline = text.rfind("\n", 0, near)
    if newline >= 0:
        return newline + 1
    space = max(text.rfind(" ", 1, near), text.rfind("\t", 1, near))
    return space if space > 0 else near
