"""The token-file format, in one place: what `prepare` writes and the loader reads.

A prepared data folder holds

    train.bin, val.bin      the token ids of each split, back to back, as one raw array of a
                            numpy dtype each (no header: a memmap reads them in place)
    meta.json               {"format": "byollm-tokens", "version": 1, "dtype": ..., "splits":
                            {"train": {"tokens", "bytes"}, "val": {...}}, "vocab_size", the corpus
                            and tokenizer it was made from (see `prepare`)}
    byollm-tokenizer.json   the tokenizer that made the ids (`byollm.tokenizer.TOKENIZER_FILE`)

Design choices:
- **The smallest dtype that holds every id**: uint16 while the vocabulary fits in 65,536 ids,
  else uint32 (`token_dtype`). Half the disk and page-cache of int32 for most vocabularies.
- **meta.json is the proof that the folder is whole**: it is written last, and `open_tokens`
  checks each `.bin` file's size against the token count it promises, so a truncated copy is
  one line, not a model trained on half a file.
- **Versioned**: `read_meta` refuses a meta.json of another format or version, naming the file.

    >>> import json, tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> ids = np.array([5, 1, 4], dtype=token_dtype(vocab_size=65))
    >>> _ = (folder / "train.bin").write_bytes(ids.tobytes())
    >>> _ = (folder / "val.bin").write_bytes(ids[:1].tobytes())
    >>> meta = new_meta(dtype=ids.dtype.name, splits={"train": {"tokens": 3, "bytes": 3},
    ...                                                "val": {"tokens": 1, "bytes": 1}})
    >>> _ = (folder / META_FILE).write_text(json.dumps(meta))
    >>> open_tokens(folder, "train").tolist(), read_meta(folder)["dtype"]
    ([5, 1, 4], 'uint16')
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from byollm.errors import ByollmError

META_FORMAT = "byollm-tokens"
META_VERSION = 1
META_FILE = "meta.json"
SPLITS = ("train", "val")
DTYPES = ("uint16", "uint32")


def split_file(split: str) -> str:
    """The file name of a split's tokens: 'train' -> 'train.bin'."""
    return f"{split}.bin"


def token_dtype(vocab_size: int) -> np.dtype:
    """The dtype token files use for a vocabulary: uint16 up to 65,536 ids, else uint32."""
    return np.dtype(np.uint16 if vocab_size <= 1 << 16 else np.uint32)


def new_meta(**fields) -> dict:
    """A meta.json dict: the format header first, then `fields`."""
    return {"format": META_FORMAT, "version": META_VERSION, **fields}


def is_token_meta(path: str | Path) -> bool:
    """Whether `path` is a meta.json of this format (any version), read without raising."""
    try:
        meta = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return isinstance(meta, dict) and meta.get("format") == META_FORMAT


def read_meta(data_dir: str | Path) -> dict:
    """The `meta.json` of a prepared data folder, checked for format, version, dtype and splits."""
    path = Path(data_dir) / META_FILE
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
    if meta.get("dtype") not in DTYPES:
        raise ByollmError(f"{path}: dtype {meta.get('dtype')!r}; valid: {', '.join(DTYPES)}")
    splits = meta.get("splits")
    for split in SPLITS:
        tokens = splits.get(split, {}).get("tokens") if isinstance(splits, dict) else None
        if type(tokens) is not int or tokens < 0:
            raise ByollmError(
                f"{path}: splits.{split}.tokens must be a whole number of tokens, got {tokens!r}"
            )
    return meta


def open_tokens(data_dir: str | Path, split: str) -> np.memmap:
    """The tokens of `split` ('train' or 'val') as a read-only memmap, checked against meta.json."""
    meta = read_meta(data_dir)
    path = Path(data_dir) / split_file(split)
    expected = meta["splits"][split]["tokens"]
    dtype = np.dtype(meta["dtype"])
    if not path.exists():
        raise ByollmError(f"{path}: missing; re-run `byollm prepare` for {data_dir}")
    if path.stat().st_size != expected * dtype.itemsize:
        raise ByollmError(
            f"{path}: {path.stat().st_size} bytes but meta.json promises {expected} tokens "
            f"of {dtype.name}; the folder is damaged, re-run `byollm prepare`"
        )
    if expected == 0:
        return np.zeros(0, dtype=dtype)  # np.memmap cannot map an empty file
    return np.memmap(path, dtype=dtype, mode="r")
