"""The header of byollm's versioned files, checked in one place with one message style; and
one JSON record (a `.jsonl` line) read with the same one-line errors (`json_object`).

Every file format byollm defines starts with `{"format": NAME, "version": N, ...}` and has one
owner module, which reads the file with `read_json_file` and calls `check_header` on it (both at
once: `read_versioned_file`):

    byollm-model        a checkpoint's config.json   byollm.model.checkpoint
    byollm-train-state  a checkpoint's train_state   byollm.train.checkpoint
    byollm-tokens       a token folder's meta.json   byollm.data.tokens
    byollm-tokenizer    a tokenizer file             byollm.tokenizer.base
    byollm-lora-adapter an adapter's adapter.json    byollm.finetune.lora
    byollm-scaling-sweep, -run, -prediction
                        a sweep's sweep.json, results.jsonl lines, predictions.jsonl lines
                                                     byollm.scaling.sweep, byollm.scaling.predict
    byollm-scaling-fit  a sweep's fit.json           byollm.scaling.fit

A reader accepts exactly the versions it knows (one, or a tuple when an older layout is still
read): a file from a newer byollm is refused with one line rather than misread.

    >>> check_header({"format": "byollm-model", "version": 1}, "ckpt/config.json",
    ...              format="byollm-model", version=1)
    {'format': 'byollm-model', 'version': 1}
    >>> check_header({"format": "byollm-model", "version": 2}, "ckpt/config.json",
    ...              format="byollm-model", version=1)
    Traceback (most recent call last):
    byollm.errors.ByollmError: ckpt/config.json: byollm-model version 2 is not supported; this byollm reads version 1
"""

from __future__ import annotations

import json
from pathlib import Path

from byollm.errors import ByollmError


def read_json_file(path: str | Path, *, missing: str = "missing"):
    """The parsed JSON file at `path`, else one ByollmError line that starts with the path:
    `missing` (what the file is, what makes it) when there is none, "cannot read" or "not valid
    JSON" otherwise."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ByollmError(f"{path}: {missing}") from None
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError) as e:
        raise ByollmError(f"{path}: not valid JSON ({e})") from None
    except OSError as e:
        raise ByollmError(f"{path}: cannot read ({e.strerror or e})") from None


def read_versioned_file(
    path: str | Path,
    *,
    format: str,
    version: int | tuple[int, ...],
    missing: str = "missing",
    hint: str = "",
) -> dict:
    """`read_json_file` then `check_header`: a file of one of byollm's versioned formats."""
    return check_header(
        read_json_file(path, missing=missing), path, format=format, version=version, hint=hint
    )


def json_object(text: str, where: str) -> dict:
    """`text` parsed as one JSON object (a `.jsonl` line, a record), else one ByollmError line
    that starts with `where` (e.g. "data.jsonl:3").

    >>> json_object('{"text": "hi"}', "a.jsonl:1")
    {'text': 'hi'}
    >>> json_object("[1, 2]", "a.jsonl:2")
    Traceback (most recent call last):
    byollm.errors.ByollmError: a.jsonl:2: expected a JSON object, got a list
    """
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ByollmError(f"{where}: not valid JSON ({e.msg})") from None
    if not isinstance(value, dict):
        raise ByollmError(f"{where}: expected a JSON object, got a {type(value).__name__}")
    return value


def check_header(obj, path, *, format: str, version: int | tuple[int, ...], hint: str = "") -> dict:
    """`obj` (a parsed file) if its header says `format` and `version` (or one of a tuple of
    versions), else ByollmError.

    `hint` is appended to either message: what to do about it (how to convert a foreign file,
    which command makes the file anew).

    >>> check_header({"format": "f", "version": 3}, "meta.json", format="f", version=(1, 2),
    ...              hint="; make it anew")
    Traceback (most recent call last):
    byollm.errors.ByollmError: meta.json: f version 3 is not supported; this byollm reads versions 1, 2; make it anew
    """
    found = obj.get("format") if isinstance(obj, dict) else None
    if found != format:
        what = f"format {found!r}" if isinstance(obj, dict) else f"a {type(obj).__name__}"
        raise ByollmError(f"{path}: not a {format} file (found {what}){hint}")
    versions = version if isinstance(version, tuple) else (version,)
    found_version = obj.get("version")
    if type(found_version) is not int or found_version not in versions:
        readable = ", ".join(map(str, versions))
        raise ByollmError(
            f"{path}: {format} version {found_version!r} is not supported; this byollm reads "
            f"version{'s' if len(versions) > 1 else ''} {readable}{hint}"
        )
    return obj


def check_replaceable(path, *, format: str, what: str) -> None:
    """Refuse to write `what` to `path` unless `path` is new or a file of `format` (one byollm
    wrote and may replace): a command never overwrites a user's file, nor its own input.

    >>> import pathlib, tempfile
    >>> notes = pathlib.Path(tempfile.mkdtemp()) / "notes.txt"
    >>> _ = notes.write_text("my notes")
    >>> check_replaceable(notes, format="byollm-tokenizer", what="tokenizer")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    byollm.errors.ByollmError: .../notes.txt exists and is not a byollm-tokenizer file; byollm replaces only its own files: choose another --out, or move it away
    """
    from pathlib import Path

    path = Path(path)
    if path.is_dir():
        raise ByollmError(f"{path} is a folder; give a file name for the {what}")
    if not path.exists():
        return
    try:
        data = json.loads(path.read_bytes())
    except (OSError, ValueError):
        data = None
    if not (isinstance(data, dict) and data.get("format") == format):
        raise ByollmError(
            f"{path} exists and is not a {format} file; byollm replaces only its own files: "
            "choose another --out, or move it away"
        )
