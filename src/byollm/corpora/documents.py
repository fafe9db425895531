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
| any other file (text)       | the whole file; or, given a `separator` such as     | `file`         |
|                             | `<|endoftext|>` (TinyStories), each text between    | `file#N`       |
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

import glob
import gzip
import io
import itertools
import lzma
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from byollm.corpora.registry import (
    CORPORA,
    _is_corpus_file,
    _lookup,
    archive_members,
    folder_files,
    get_corpus,
    read_stream_blocks,
    stdlib_documents,
)
from byollm.errors import ByollmError
from byollm.formats import json_object

__all__ = [
    "Document",
    "corpus_paths",
    "iter_documents",
    "named_val_documents",
    "training_files",
]

PIECE_CHARS = 1 << 20
READ_BLOCK = 1 << 22
COMPRESSED = (".gz", ".xz", ".zst")
BINARY_SUFFIXES = (*COMPRESSED, ".parquet")  # files a folder holds that are not plain text
TRAINING_TEXT = "tokenizer-training.txt"


@dataclass
class Document:
    """One document: a stable `name` and its text as an iterator of `pieces`."""

    name: str
    pieces: Iterator[str]


def iter_documents(
    corpus: str | Path,
    *,
    text_field: str = "text",
    separator: str | None = None,
    mirror: str | None = None,
    progress: bool = True,
    piece_chars: int = PIECE_CHARS,
) -> Iterator[Document]:
    """The documents of `corpus`, in a fixed order (see the module docstring).

    `separator` splits a text file into documents (TinyStories' `<|endoftext|>` lines); None
    means the registered corpus' own (`Corpus.separator`), none for files: a text file's
    characters are text, `<|endoftext|>` included, unless you say otherwise."""
    kind, value = _lookup_or_glob(corpus)
    if separator is None:
        separator = value.separator if kind == "registered" else ""
    if kind == "stdlib":
        max_bytes, with_tests = value
        for name, text in stdlib_documents(max_bytes, with_tests):
            yield Document(name, iter(_cut_pieces([text], piece_chars)))
        return
    if kind == "registered" and value.members:
        archive = get_corpus(value.name, mirror=mirror, progress=progress)
        for name, stream in archive_members(archive, value.members):
            blocks = _text_blocks(stream, f"{archive}:{name}")
            yield Document(name, iter(_cut_pieces(blocks, piece_chars)))
        return
    root, files = _files_of(kind, value, corpus, mirror, progress)
    for path in files:
        label = path.relative_to(root).as_posix() if root is not None else path.name
        yield from _file_documents(path, label, text_field, separator, piece_chars)


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


def training_files(
    corpus: str | Path,
    folder: str | Path,
    *,
    text_field: str = "text",
    separator: str | None = None,
    mirror: str | None = None,
    progress: bool = True,
) -> list[Path]:
    """The plain-text files a tokenizer trains on for `corpus`: its own files where they are
    all plain text, else its documents' text written once to `folder/tokenizer-training.txt`
    (a .jsonl's text fields, an archive's plays, compressed or Parquet files, the stdlib), so
    that `byollm tokenizer train` and `byollm prepare` learn from the same text."""
    paths = corpus_paths(corpus, mirror=mirror, progress=progress)
    if paths and all(_plain_text(path) for path in paths):
        return paths
    documents = iter_documents(
        corpus, text_field=text_field, separator=separator, mirror=mirror, progress=progress
    )
    out = Path(folder) / TRAINING_TEXT
    with open(out, "w", encoding="utf-8") as f:
        for document in documents:
            for piece in document.pieces:
                f.write(piece)
    return [out]


def _plain_text(path: Path) -> bool:
    return not path.name.endswith((*BINARY_SUFFIXES, ".jsonl", ".zip", ".tar"))


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


def _file_documents(path: Path, label: str, text_field: str, separator: str, piece_chars: int):
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
            blocks = _text_blocks(stream, path)
            if separator:
                for index, text in enumerate(_split_at(blocks, separator)):
                    yield Document(f"{label}#{index}", iter([text]))
            else:
                yield Document(label, iter(_cut_pieces(blocks, piece_chars)))


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


def _split_at(blocks, separator: str) -> Iterator[str]:
    """The non-blank texts between separators (the newline after a separator goes with it)."""
    buffer = ""
    for block in blocks:
        buffer += block
        while separator in buffer:
            text, _, buffer = buffer.partition(separator)
            buffer = buffer.removeprefix("\n")
            if text.strip():
                yield text
        # a long text with no separator grows the buffer: separated documents are short
    if buffer.strip():
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
                record = json_object(line, f"{path}:{line_number}")
                text = _field(record, text_field, path, line_number)
                yield Document(f"{label}:{line_number}", iter(_cut_pieces([text], piece_chars)))


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


# --- pieces ------------------------------------------------------------------------------------


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
