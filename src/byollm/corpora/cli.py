"""`byollm data list | info NAME | get NAME`: the corpus registry on the command line.

Each verb only parses its arguments and calls `byollm.corpora.registry`, so a notebook can do the
same with `CORPORA`, `corpus_info(name)` and `get_corpus(name)`.
"""

from __future__ import annotations

import argparse
import os
import shutil
from pathlib import Path

from byollm.corpora import registry
from byollm.download import resolve_mirror, sha256_file
from byollm.errors import ByollmError
from byollm.paths import replaced_atomically

_SECTIONS = {
    "text": "Text corpora (for tokenizers and pretraining)",
    "finetune": "Fine-tuning and evaluation sets",
    "tokenizer": "Tokenizer files (pretrained vocabularies, fetched by `byollm tokenizer`)",
    "eval": "Benchmarks (fetched by `byollm eval --task`)",
}


def add_document_options(p: argparse.ArgumentParser) -> None:
    """--text-field and --separator: how a corpus' files split into documents (the arguments of
    `byollm.corpora.documents.iter_documents`), for every verb that reads a corpus."""
    p.add_argument(
        "--text-field",
        default="text",
        help="the field (.jsonl) or column (.parquet) holding the text (default: text)",
    )
    p.add_argument(
        "--separator",
        default=None,
        help="a line that separates documents in a text file, e.g. '<|endoftext|>' for "
        "TinyStories-style files (default: none; the registered tinystories sets its own)",
    )


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "data",
        help="list, describe and download corpora and tokenizer files",
        description="The registry of named corpora and tokenizer files: each has a pinned source "
        "URL, a sha256, a size and a license. Downloads are cached in $BYOLLM_HOME/data "
        "(default ~/.cache/byollm/data). Wherever a corpus name is accepted, a local file or "
        "folder path works too; `python-stdlib[:SIZE]` is built offline from this Python.",
    )
    parser.set_defaults(func=lambda args: parser.print_help())
    commands = parser.add_subparsers(dest="data_command", metavar="<command>")

    list_parser = commands.add_parser(
        "list",
        help="show every registered name with its size, license and cache status",
        description="Show every registered corpus and tokenizer file: name, size, whether it "
        "is in the cache, license and a one-line description.",
    )
    list_parser.set_defaults(func=_list)

    info_parser = commands.add_parser(
        "info",
        help="show all fields of one name, its cache path and status",
        description="Show the source URL, sha256, size, license, mirror path and cache status "
        "(checking the cached file's sha256) of one registered name.",
    )
    info_parser.add_argument("name", help="a registered name (see `byollm data list`)")
    info_parser.set_defaults(func=_info)

    get_parser = commands.add_parser(
        "get",
        help="download (or build) corpora, verify them and print their local paths",
        description="Download registered corpora or tokenizer files into the cache (verifying "
        "each sha256, resuming an interrupted download), build `python-stdlib[:SIZE]`, or check "
        "a local path, then print the local path, one line per name.",
    )
    get_parser.add_argument(
        "names",
        nargs="+",
        metavar="NAME",
        help="a registered name, python-stdlib[:SIZE] (e.g. python-stdlib:5MB), or a local path",
    )
    get_parser.add_argument(
        "--mirror",
        metavar="URL",
        help="fetch from this mirror instead of the origin: an http(s):// or file:// URL or a "
        "folder holding each file at its mirror path (`byollm data info NAME` shows it, e.g. "
        "tinyshakespeare.txt, gpt2/encoder.json) (default: $BYOLLM_MIRROR)",
    )
    get_parser.add_argument(
        "--out",
        metavar="PATH",
        type=os.path.expanduser,  # a str: a trailing "/" (a folder is meant) must survive
        help="also copy the file here (a file name, or a folder: an existing one, or PATH/; a "
        "folder for several names); "
        "an existing different file is refused unless --overwrite is given",
    )
    get_parser.add_argument(
        "--overwrite",
        action="store_true",
        help="let --out replace an existing file whose content differs",
    )
    get_parser.add_argument(
        "--no-progress", action="store_true", help="no progress bar (it only shows on a terminal)"
    )
    get_parser.set_defaults(func=_get)


def _list(args: argparse.Namespace) -> int:
    rows_by_kind: dict[str, list[tuple[str, ...]]] = {kind: [] for kind in _SECTIONS}
    for corpus in registry.CORPORA.values():
        if corpus.name in (registry.STDLIB, registry.STDLIB_WITH_TESTS):
            size, cached = "~" + format_size(registry.corpus_info(corpus.name)["size"]), "offline"
        else:
            size = format_size(corpus.size) if corpus.size else "unknown"
            cached = "yes" if corpus.cache_path().is_file() else "-"
        rows_by_kind[corpus.kind].append(
            (corpus.name, size, cached, corpus.license, corpus.description)
        )
    header = ("NAME", "SIZE", "CACHED", "LICENSE", "DESCRIPTION")
    widths = [
        max(len(row[i]) for rows in rows_by_kind.values() for row in [header, *rows])
        for i in range(len(header) - 1)
    ]
    for kind, rows in rows_by_kind.items():
        print(f"{_SECTIONS[kind]}:")
        for row in [header, *rows]:
            cells = [cell.ljust(width) for cell, width in zip(row, widths)]
            print("  " + "  ".join([*cells, row[-1]]))
        print()
    print(f"cache: {registry.data_home()}   mirror: {os.environ.get('BYOLLM_MIRROR') or '(none)'}")
    return 0


def _info(args: argparse.Namespace) -> int:
    info = registry.corpus_info(args.name)
    width = max(map(len, info))
    for key, value in info.items():
        if key == "size":
            value = (
                f"{value:,} bytes ({format_size(value)})" if value else "unknown (not published)"
            )
        print(f"{key.ljust(width)}  {value}")
    return 0


def _get(args: argparse.Namespace) -> int:
    resolve_mirror(args.mirror)  # a malformed mirror is reported before anything is fetched
    paths = [
        registry.get_corpus(name, mirror=args.mirror, progress=not args.no_progress)
        for name in args.names
    ]
    if args.out is not None:
        # Every target is checked before the first copy: a refused one leaves nothing half done.
        folder = args.out.endswith(("/", os.sep))  # `--out new/` means a folder, not a file
        targets = _copy_targets(paths, Path(args.out), overwrite=args.overwrite, folder=folder)
        for path, target in zip(paths, targets):
            _copy(path, target)
        paths = targets
    for path in paths:
        print(path, flush=True)
    return 0


def _copy_targets(
    paths: list[Path], out: Path, *, overwrite: bool, folder: bool = False
) -> list[Path]:
    """Where each file goes under `--out` (into it when it is, or is meant as, a folder),
    refusing to replace a user's different file."""
    several = len(paths) > 1 or folder
    if several and out.exists() and not out.is_dir():
        why = "with several names" if len(paths) > 1 else "a trailing / asks for a folder, and"
        raise ByollmError(f"--out {out} is a file; {why} --out must be a folder")
    targets: list[Path] = []
    for path in paths:
        if not path.is_file():
            raise ByollmError(f"--out copies one file, but {path} is a folder")
        target = out / path.name if several or out.is_dir() else out
        if target in targets:
            raise ByollmError(f"two of the names are both called {path.name}; copy them one by one")
        targets.append(target)
        if target.is_dir():
            raise ByollmError(f"{target} is a folder; the file {path.name} cannot replace it")
        same_file = target.exists() and target.resolve() == path.resolve()
        if target.is_file() and not same_file and not overwrite and not _same_bytes(target, path):
            raise ByollmError(
                f"{target} exists and differs from {path}; pass --overwrite to replace it, "
                "or choose another --out"
            )
    return targets


def _same_bytes(a: Path, b: Path) -> bool:
    return a.stat().st_size == b.stat().st_size and sha256_file(a) == sha256_file(b)


def _copy(path: Path, target: Path) -> None:
    """Copy `path` to `target` whole or not at all (never a half copy at `target`)."""
    if target.exists() and (target.resolve() == path.resolve() or _same_bytes(target, path)):
        return  # already there: nothing to write
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ByollmError(f"cannot create {target.parent}: {e.strerror or e}") from None
    with replaced_atomically(target) as tmp:
        shutil.copyfile(path, tmp)


def format_size(n: int) -> str:
    """Bytes for people: 20479 -> '20.5 KB', 1115394 -> '1.1 MB' (powers of 1000)."""
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1000 or unit == "GB":
            return f"{n} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    raise AssertionError("unreachable")
