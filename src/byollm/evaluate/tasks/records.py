"""Reading task files: JSON Lines from a file, a folder, or members of a zip archive.

    >>> records = read_records(Path("BLiMP.zip"))            # every data/*.jsonl member  # doctest: +SKIP
    >>> records[0].where, records[0].data["sentence_good"]  # doctest: +SKIP
    ('BLiMP.zip:data/adjunct_island.jsonl:1', 'Who should Derek hug after shocking Richard?')

Design choices:
- **Every record remembers where it came from** (`file:line`, or `archive:member:line`), so
  each complaint about a bad item names the exact line to fix.
- **Archives are read in place**: a benchmark shipped as a zip (BLiMP, ARC, PIQA) is never
  unpacked; its members are picked by a glob (`*/ARC-Easy-Test.jsonl`), so the archive's top
  folder name does not matter, and macOS metadata (`__MACOSX/`, `._*`) is skipped.
- A `.json` file holding one list of objects is accepted too (a common way to share a set).
- `spread(items, n)`: a capped evaluation takes n items spread evenly over the whole file, not
  the first n, so a cap on BLiMP still covers all of its 67 paradigms.
"""

from __future__ import annotations

import fnmatch
import json
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from byollm.errors import ByollmError
from byollm.formats import json_object

T = TypeVar("T")


@dataclass(frozen=True)
class Record:
    """One JSON object of a task file and where it is (for error messages)."""

    where: str
    data: dict


def read_records(path: Path, members: str = "*.jsonl") -> list[Record]:
    """The JSON objects of a .jsonl/.json file, a folder's .jsonl files, or a zip's members.

    `members` is a glob over member paths (archives and folders only), e.g. `data/*.jsonl`.
    """
    path = Path(path)
    if not path.exists():
        raise ByollmError(f"task file not found: {path}")
    if path.is_dir():
        files = sorted(
            p
            for p in path.rglob("*")
            if p.is_file() and _matches(p.relative_to(path).as_posix(), members)
        )
        if not files:
            raise ByollmError(f"folder {path} holds no files matching {members!r}")
        return [r for f in files for r in _parse(f.read_bytes(), str(f))]
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = sorted(n for n in archive.namelist() if _matches(n, members))
            if not names:
                raise ByollmError(f"{path} holds no member matching {members!r}")
            return [r for n in names for r in _parse(archive.read(n), f"{path.name}:{n}")]
    return _parse(path.read_bytes(), str(path))


def read_lines(path: Path, member: str) -> list[str]:
    """The lines of one text member of a zip (or of a plain file), e.g. PIQA's label list."""
    path = Path(path)
    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as archive:
            names = [n for n in archive.namelist() if _matches(n, member)]
            if not names:
                raise ByollmError(f"{path} holds no member matching {member!r}")
            data = archive.read(sorted(names)[0])
    else:
        data = path.read_bytes()
    return _decode(data, str(path)).splitlines()


def field(record: Record, name: str, kind: type | tuple[type, ...], shape: str):
    """record.data[name], checked: a missing or mistyped field is one clear error line.

    `shape` says what a valid line of this format holds, for the message.
    """
    if name not in record.data:
        raise ByollmError(f"{record.where}: missing field {name!r} ({shape})")
    value = record.data[name]
    if not isinstance(value, kind) or isinstance(value, bool) and kind is not bool:
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ByollmError(
            f"{record.where}: field {name!r} should be {names}, got {type(value).__name__} "
            f"{_short(value)} ({shape})"
        )
    return value


def spread(items: Sequence[T], limit: int | None) -> list[T]:
    """At most `limit` items, evenly spaced over the whole sequence (all of them for None).

    >>> spread(list(range(10)), 3)
    [0, 3, 6]
    """
    if limit is None or limit >= len(items):
        return list(items)
    if limit < 1:
        raise ByollmError(f"limit={limit} is invalid: evaluate at least 1 item")
    return [items[i * len(items) // limit] for i in range(limit)]


# --- internals ---------------------------------------------------------------------------------


def _matches(name: str, pattern: str) -> bool:
    parts = name.split("/")
    if parts[0] == "__MACOSX" or parts[-1].startswith("._") or name.endswith("/"):
        return False
    # A pattern without a folder matches the file name at any depth.
    target = name if "/" in pattern else parts[-1]
    return fnmatch.fnmatchcase(target, pattern) or fnmatch.fnmatchcase(name, "*/" + pattern)


def _parse(data: bytes, where: str) -> list[Record]:
    text = _decode(data, where)
    if where.endswith(".json"):
        try:
            rows = json.loads(text)
        except json.JSONDecodeError as e:
            raise ByollmError(f"{where}: not valid JSON ({e.msg} at line {e.lineno})") from None
        if not isinstance(rows, list) or not all(isinstance(r, dict) for r in rows):
            raise ByollmError(f"{where}: a .json task file must hold a list of objects")
        return [Record(f"{where}:item {i + 1}", r) for i, r in enumerate(rows)]
    records = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        records.append(Record(f"{where}:{number}", json_object(line, f"{where}:{number}")))
    if not records:
        raise ByollmError(f"{where} is empty: no items to evaluate")
    return records


def _decode(data: bytes, where: str) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ByollmError(f"{where} is not UTF-8 text (byte offset {e.start})") from None


def _short(value, limit: int = 40) -> str:
    text = json.dumps(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
