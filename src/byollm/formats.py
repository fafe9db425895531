"""The header of byollm's versioned files, checked in one place with one message style; and
one JSON record (a `.jsonl` line) read with the same one-line errors (`json_object`).

Every file format byollm defines starts with `{"format": NAME, "version": N, ...}` and has one
owner module, which calls `check_header` when it reads a file:

    byollm-model        a checkpoint's config.json   byollm.model.checkpoint
    byollm-train-state  a checkpoint's train_state   byollm.train.checkpoint
    byollm-token-data   a token folder's meta.json   byollm.data
    byollm-tokenizer    a tokenizer file             byollm.tokenizer.base
    byollm-scaling-sweep, -run, -prediction
                        a sweep's sweep.json, results.jsonl lines, predictions.jsonl lines
                                                     byollm.scaling.sweep, byollm.scaling.predict
    byollm-scaling-fit  a sweep's fit.json           byollm.scaling.fit

A reader accepts exactly its own version: a file from a newer byollm is refused with one line
rather than misread.

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

from byollm.errors import ByollmError


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


def check_header(obj, path, *, format: str, version: int, hint: str = "") -> dict:
    """`obj` (a parsed file) if its header says `format` and `version`, else ByollmError.

    `hint` is appended to the "not this format" message (e.g. how to convert a foreign file).
    """
    found = obj.get("format") if isinstance(obj, dict) else None
    if found != format:
        what = f"format {found!r}" if isinstance(obj, dict) else f"a {type(obj).__name__}"
        raise ByollmError(f"{path}: not a {format} file (found {what}){hint}")
    found_version = obj.get("version")
    if type(found_version) is not int or found_version != version:
        raise ByollmError(
            f"{path}: {format} version {found_version!r} is not supported; this byollm reads "
            f"version {version}"
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
