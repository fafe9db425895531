"""The token-file format, in one place: what `prepare` writes and the loader reads.

A prepared data folder holds

    train-00000.bin, ...    the token ids of each split, cut into shards: each a raw array of
    val-00000.bin, ...      one numpy dtype (no header: a memmap reads it in place); read back to
                            back, a split's shards are one long stream of tokens
    meta.json               {"format": "byollm-tokens", "version": 2, "dtype": ..., "splits":
                            {"train": {"tokens", "bytes", "documents", "shards": [{"file",
                            "tokens", "sha256"}, ...]}, "val": {...}}, "split": how documents
                            were assigned to val, "vocab_size", the corpus and tokenizer (see
                            `prepare`)}
    byollm-tokenizer.json   the tokenizer that made the ids (`byollm.tokenizer.TOKENIZER_FILE`)

Design choices:
- **The smallest dtype that holds every id**: uint16 while the vocabulary fits in 65,536 ids,
  else uint32 (`token_dtype`). Half the disk and page-cache of int32 for most vocabularies.
- **Shards**, so that a corpus of any size is written in pieces that are each finished, hashed
  and never touched again (what lets an interrupted `prepare` resume), and so that no single
  file grows past what a file system or a copy tool handles well. `open_tokens` joins them:
  `ShardedTokens` reads a window that crosses two shards as one array, so the loader and the
  trainer never see the cut.
- **meta.json is the proof that the folder is whole**: it is written last, and `open_tokens`
  checks each shard's size against the token count it promises, so a truncated copy is one
  line, not a model trained on half a file.
- **Versioned, and old folders still read**: version 1 (one `train.bin` and one `val.bin`, a
  tail split) is read as a folder of one shard per split; any other format or version is
  refused, naming the file.

    >>> import json, tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> ids = np.array([5, 1, 4], dtype=token_dtype(vocab_size=65))
    >>> _ = (folder / "train-00000.bin").write_bytes(ids[:2].tobytes())
    >>> _ = (folder / "train-00001.bin").write_bytes(ids[2:].tobytes())
    >>> _ = (folder / "val-00000.bin").write_bytes(ids[:1].tobytes())
    >>> meta = new_meta(dtype=ids.dtype.name, splits={
    ...     "train": {"tokens": 3, "bytes": 3, "shards": [{"file": "train-00000.bin", "tokens": 2},
    ...                                                   {"file": "train-00001.bin", "tokens": 1}]},
    ...     "val": {"tokens": 1, "bytes": 1, "shards": [{"file": "val-00000.bin", "tokens": 1}]}})
    >>> _ = (folder / META_FILE).write_text(json.dumps(meta))
    >>> tokens = open_tokens(folder, "train")
    >>> len(tokens), tokens[1:3].tolist(), read_meta(folder)["dtype"]
    (3, [1, 4], 'uint16')
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np

from byollm.errors import ByollmError
from byollm.formats import read_versioned_file

META_FORMAT = "byollm-tokens"
META_VERSION = 2
READABLE_VERSIONS = (1, 2)  # 1: one train.bin / val.bin per split, no shard list
META_FILE = "meta.json"
SPLITS = ("train", "val")
DTYPES = ("uint16", "uint32")


def split_file(split: str) -> str:
    """The file name of a version-1 folder's split: 'train' -> 'train.bin'."""
    return f"{split}.bin"


def shard_file(split: str, index: int) -> str:
    """The file name of a split's shard: ('train', 3) -> 'train-00003.bin'."""
    return f"{split}-{index:05d}.bin"


def is_token_file(name: str) -> bool:
    """Whether a file name is one `prepare` writes tokens to (a shard, or a version-1 file)."""
    return any(
        name == split_file(split)
        or (
            name.startswith(f"{split}-")
            and name.endswith(".bin")
            and name[len(split) + 1 : -4].isdigit()
        )
        for split in SPLITS
    )


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
    """The `meta.json` of a prepared data folder, checked for format, version, dtype and splits.

    A version-1 meta comes back with the shard list it implies (one `train.bin`, one `val.bin`),
    so callers read every version the same way."""
    path = Path(data_dir) / META_FILE
    meta = read_versioned_file(
        path,
        format=META_FORMAT,
        version=READABLE_VERSIONS,
        missing=f"no prepared data here; run `byollm prepare --out {data_dir}` first",
        hint=f"; `byollm prepare --out {data_dir}` makes it anew",
    )
    if meta.get("dtype") not in DTYPES:
        raise ByollmError(f"{path}: dtype {meta.get('dtype')!r}; valid: {', '.join(DTYPES)}")
    splits = meta.get("splits")
    for split in SPLITS:
        info = splits.get(split) if isinstance(splits, dict) else None
        tokens = info.get("tokens") if isinstance(info, dict) else None
        if type(tokens) is not int or tokens < 0:
            raise ByollmError(
                f"{path}: splits.{split}.tokens must be a whole number of tokens, got {tokens!r}"
            )
        if meta["version"] == 1:
            info = splits[split] = {
                **info,
                "shards": [{"file": split_file(split), "tokens": tokens}],
            }
        shards = info.get("shards")
        ok = isinstance(shards, list) and all(
            isinstance(s, dict)
            and is_token_file(str(s.get("file")))
            and "/" not in str(s.get("file"))
            and type(s.get("tokens")) is int
            and s["tokens"] >= 0
            for s in shards
        )
        if not ok or sum(s["tokens"] for s in shards) != tokens:
            raise ByollmError(
                f"{path}: splits.{split}.shards must list the split's token files and their "
                f"token counts, adding up to {tokens}"
            )
    return meta


def split_fingerprint(meta: dict) -> str:
    """sha256 of meta.json's split record (rule, held-out documents) and token counts: a run
    resumed, or a sweep point reused, must have seen the same train/val split, not merely the
    same corpus text."""
    record = {"split": meta.get("split"), "splits": meta.get("splits")}
    return hashlib.sha256(json.dumps(record, sort_keys=True).encode()).hexdigest()


def open_tokens(data_dir: str | Path, split: str) -> np.ndarray | ShardedTokens:
    """The tokens of `split` ('train' or 'val'), read-only, checked against meta.json.

    One shard comes back as a numpy memmap, several as a `ShardedTokens` that reads across
    them; both take `len()` and slices, which is all the loader uses."""
    meta = read_meta(data_dir)
    dtype = np.dtype(meta["dtype"])
    parts = []
    for shard in meta["splits"][split]["shards"]:
        path = Path(data_dir) / shard["file"]
        expected = shard["tokens"]
        if not path.exists():
            raise ByollmError(f"{path}: missing; re-run `byollm prepare` for {data_dir}")
        if path.stat().st_size != expected * dtype.itemsize:
            raise ByollmError(
                f"{path}: {path.stat().st_size} bytes but meta.json promises {expected} tokens "
                f"of {dtype.name}; the folder is damaged, re-run `byollm prepare`"
            )
        if expected > 0:  # np.memmap cannot map an empty file
            parts.append(np.memmap(path, dtype=dtype, mode="r"))
    if not parts:
        return np.zeros(0, dtype=dtype)
    return parts[0] if len(parts) == 1 else ShardedTokens(parts)


class ShardedTokens:
    """Several token arrays read as one: `len()`, integer indexing and slices (step 1) that may
    cross from one shard into the next, returned as a new numpy array.

    >>> tokens = ShardedTokens([np.arange(3), np.arange(10, 14)])
    >>> len(tokens), tokens[2:5].tolist(), int(tokens[-1])
    (7, [2, 10, 11], 13)
    """

    def __init__(self, parts: list[np.ndarray]):
        self.parts = parts
        self.dtype = parts[0].dtype
        # starts[i] = position of parts[i][0] in the joined stream
        self.starts = np.cumsum([0] + [len(p) for p in parts])

    def __len__(self) -> int:
        return int(self.starts[-1])

    def __getitem__(self, key):
        if isinstance(key, slice):
            start, stop, step = key.indices(len(self))
            if step != 1:
                raise IndexError("ShardedTokens slices take no step")
            return self._read(start, max(start, stop))
        index = int(key)
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(f"token {key} out of range for {len(self)} tokens")
        return self._read(index, index + 1)[0]

    def _read(self, start: int, stop: int) -> np.ndarray:
        first = int(np.searchsorted(self.starts, start, side="right")) - 1
        pieces = []
        i = max(first, 0)
        while start < stop and i < len(self.parts):
            offset = start - int(self.starts[i])
            take = min(stop - start, len(self.parts[i]) - offset)
            pieces.append(np.asarray(self.parts[i][offset : offset + take]))
            start += take
            i += 1
        return np.concatenate(pieces) if pieces else np.zeros(0, dtype=self.dtype)

    def tolist(self) -> list[int]:
        return self[:].tolist()

    def __array__(self, dtype=None, copy=None):
        joined = self[:]
        return joined if dtype is None else joined.astype(dtype)
