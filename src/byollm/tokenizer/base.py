"""What every byollm tokenizer shares: the interface, special tokens, and the JSON file format.

A tokenizer turns text into a list of integer ids and back. Subclasses supply three things:
`_encode_ordinary(text)` (text without special tokens), `_token_bytes` (id -> bytes, for
decoding) and `_payload()` (what `save` writes); everything else lives here once.

    >>> from byollm.tokenizer import CharTokenizer
    >>> tok = CharTokenizer.train("hello")
    >>> tok.encode("hell"), tok.decode([2, 3])
    ([1, 0, 2, 2], 'lo')

Design choices:
- **Special tokens are opt-in** (`allowed_special`), as in tiktoken. By default the text
  `"<|endoftext|>"` inside user input is encoded as ordinary characters, so a document cannot
  forge a control token (the tokenizer equivalent of SQL injection). Unlike tiktoken we never
  raise on such text: data preparation must be able to encode any corpus.
- **decode never raises for integer ids**: ids that end mid-character become U+FFFD (as
  tiktoken), ids outside the vocabulary decode to U+FFFD too (a model's padded vocabulary can
  sample them). `StreamingDecoder` holds incomplete UTF-8 back instead. What is not an integer
  id at all (a float such as 1e400, a bool, a string) is a ByollmError.
- **One versioned JSON format** for every tokenizer: `{"format": "byollm-tokenizer", "version": 1,
  "type": ..., ..., "content_hash": ...}`. The content hash (sha256 of the canonical JSON of
  everything but the hash) names a vocabulary exactly, so a checkpoint can check it was trained
  with the tokenizer it is given. Loading checks every field's type and range, so a damaged or
  hand-edited file gives one ByollmError naming the file and the field.
- **Its own file name**: in a checkpoint or a data folder the file is `byollm-tokenizer.json`
  (`TOKENIZER_FILE`), never `tokenizer.json`, the name every Hugging Face tool reads as *its*
  format (byollm writes that one only when exporting, see `export.py`). Folders written before
  the rename hold `tokenizer.json` and still load: `find_tokenizer_file` looks for both.
- **Saving is atomic** (`byollm.paths.write_file_atomically`): a temporary file, then a rename, so a full
  disk or a crash keeps the previous file whole.
- **Each tokenizer class registers its `type_name`** when it is defined, so reading a file finds
  the class without this module importing its subclasses (which import it).
"""

from __future__ import annotations

import hashlib
import json
import operator
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import regex

from byollm.errors import ByollmError
from byollm.formats import check_header
from byollm.paths import write_file_atomically

FORMAT_NAME = "byollm-tokenizer"
FORMAT_VERSION = 1
ENDOFTEXT = "<|endoftext|>"
REPLACEMENT_BYTES = "\ufffd".encode()
MAX_TOKEN_ID = (1 << 31) - 1  # ids are stored as int32/uint32 (token files, model embeddings)
# The tokenizer's file in a checkpoint or data folder, written by every byollm writer (prepare,
# checkpoints, convert), and the name it had before, still read.
TOKENIZER_FILE = "byollm-tokenizer.json"
LEGACY_TOKENIZER_FILE = "tokenizer.json"


class Tokenizer:
    """Base class: subclasses set `special_tokens` and implement the three hooks below."""

    type_name = "base"
    types: dict[str, type[Tokenizer]] = {}  # type_name -> class, for reading files

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        if "type_name" in cls.__dict__:  # a subclass of CharTokenizer does not replace it
            Tokenizer.types[cls.type_name] = cls

    def __init__(self, special_tokens: dict[str, int] | None = None):
        self.special_tokens: dict[str, int] = dict(special_tokens or {})
        self._special_by_id = {i: s.encode("utf-8") for s, i in self.special_tokens.items()}
        # Longest first, so "<|a|><|ab|>"-style overlaps pick the longer token.
        names = sorted(self.special_tokens, key=len, reverse=True)
        self._special_regex = (
            regex.compile("|".join(regex.escape(s) for s in names)) if names else None
        )
        self._content_hash: str | None = None

    # ---- hooks for subclasses -------------------------------------------------------------
    def _encode_ordinary(self, text: str) -> list[int]:
        raise NotImplementedError

    def _token_bytes(self, token_id: int) -> bytes | None:
        """The bytes of an ordinary (non-special) token, or None if the id is unknown."""
        raise NotImplementedError

    def _payload(self) -> dict:
        """Everything `save` writes besides format, version, type and content hash."""
        raise NotImplementedError

    @property
    def vocab_size(self) -> int:
        raise NotImplementedError

    # ---- encoding ---------------------------------------------------------------------------
    def encode(self, text: str, *, allowed_special: str | Iterable[str] = frozenset()) -> list[int]:
        """Text -> ids. Special tokens are recognised only if listed in `allowed_special`
        (or `"all"`); otherwise their text is encoded like any other text."""
        allowed = self._allowed(allowed_special)
        if not allowed:
            return self._encode_ordinary(text)
        if len(allowed) == len(self.special_tokens):
            pattern = self._special_regex
        else:
            names = sorted(allowed, key=len, reverse=True)
            pattern = regex.compile("|".join(regex.escape(s) for s in names))
        ids: list[int] = []
        start = 0
        for match in pattern.finditer(text):
            ids += self._encode_ordinary(text[start : match.start()])
            ids.append(self.special_tokens[match.group()])
            start = match.end()
        ids += self._encode_ordinary(text[start:])
        return ids

    def encode_ordinary(self, text: str) -> list[int]:
        """Encode ignoring special tokens entirely (same as `encode(text)`)."""
        return self._encode_ordinary(text)

    def encode_ordinary_packed(self, text: str, dtype: np.dtype) -> bytes:
        """`encode_ordinary(text)` as the bytes of a numpy array of `dtype` (uint16 or uint32,
        as token files hold them): for writers that join the ids of many texts without a list of
        Python ints in between. `np.frombuffer(packed, dtype)` gives the ids back."""
        return np.asarray(self._encode_ordinary(text), dtype=dtype).tobytes()

    def encode_batch(
        self,
        texts: Sequence[str],
        *,
        allowed_special: str | Iterable[str] = frozenset(),
        workers: int | None = 1,
    ) -> list[list[int]]:
        """Encode several texts; `workers` > 1 (or None = all cores) spreads them over processes."""
        from byollm.tokenizer.parallel import encode_batch

        return encode_batch(self, list(texts), allowed_special=allowed_special, workers=workers)

    def encode_large(
        self, text: str, *, allowed_special: str | Iterable[str] = frozenset(), workers=None
    ) -> list[int]:
        """Encode one large text on several processes (None = all cores); same ids as encode."""
        from byollm.tokenizer.parallel import encode_large

        return encode_large(self, text, allowed_special=allowed_special, workers=workers)

    def encode_file(
        self, path: str | Path, *, allowed_special: str | Iterable[str] = frozenset(), workers=None
    ) -> list[int]:
        """Encode a UTF-8 text file (invalid bytes become U+FFFD) on several processes."""
        from byollm.tokenizer.parallel import encode_file

        return encode_file(self, path, allowed_special=allowed_special, workers=workers)

    def _allowed(self, allowed_special: str | Iterable[str]) -> set[str]:
        if allowed_special == "all":
            return set(self.special_tokens)
        if isinstance(allowed_special, str):
            allowed_special = {allowed_special}
        allowed = set(allowed_special)
        unknown = allowed - set(self.special_tokens)
        if unknown:
            raise ByollmError(
                f"unknown special token(s) {sorted(unknown)}; this tokenizer has "
                f"{sorted(self.special_tokens) or 'none'}"
            )
        return allowed

    # ---- decoding ---------------------------------------------------------------------------
    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """Ids -> raw bytes (may end mid-character). Unknown ids give U+FFFD's bytes."""
        parts = []
        for i in as_token_ids(ids):
            piece = self._token_bytes(i)
            if piece is None:
                piece = self._special_by_id.get(i, REPLACEMENT_BYTES)
            parts.append(piece)
        return b"".join(parts)

    def decode(self, ids: Iterable[int]) -> str:
        """Ids -> text; never raises (invalid UTF-8 becomes U+FFFD, as in tiktoken)."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")

    def token_bytes(self, token_id: int) -> bytes:
        """The bytes one id stands for (specials included); ByollmError for unknown ids."""
        token_id = as_token_id(token_id)
        piece = self._token_bytes(token_id)
        if piece is None:
            piece = self._special_by_id.get(token_id)
        if piece is None:
            raise ByollmError(
                f"token id {token_id} is not in the vocabulary (0..{self.vocab_size - 1})"
            )
        return piece

    def is_valid_id(self, token_id: int) -> bool:
        try:
            token_id = as_token_id(token_id)
        except ByollmError:
            return False
        return self._token_bytes(token_id) is not None or token_id in self._special_by_id

    # ---- identity ---------------------------------------------------------------------------
    @property
    def eot_id(self) -> int | None:
        """Id of `<|endoftext|>`, the document separator, if this tokenizer has it."""
        return self.special_tokens.get(ENDOFTEXT)

    @property
    def content_hash(self) -> str:
        """sha256 of the canonical JSON of the vocabulary (type, pattern, tokens, specials)."""
        if self._content_hash is None:
            self._content_hash = _hash_payload(self._full_payload())
        return self._content_hash

    def _full_payload(self) -> dict:
        return {"type": self.type_name, **self._payload(), "special_tokens": self.special_tokens}

    # ---- files ------------------------------------------------------------------------------
    def to_json_dict(self) -> dict:
        payload = self._full_payload()
        return {
            "format": FORMAT_NAME,
            "version": FORMAT_VERSION,
            **payload,
            "content_hash": self.content_hash,
        }

    @classmethod
    def load(cls, path: str | Path) -> Tokenizer:
        """Read a file written by `save` (any tokenizer type from `Tokenizer.load`)."""
        tokenizer = read_tokenizer_file(path)
        if not isinstance(tokenizer, cls):
            raise ByollmError(
                f"tokenizer file {path} holds a {tokenizer.type_name} tokenizer, not {cls.type_name}"
            )
        return tokenizer

    def save(self, path: str | Path) -> Path:
        """Write the tokenizer as one JSON file (see the module docstring), atomically."""
        path = Path(path)
        text = json.dumps(self.to_json_dict(), ensure_ascii=False) + "\n"
        write_file_atomically(path, text.encode("utf-8"), what="tokenizer file")
        return path

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size}, specials={len(self.special_tokens)})"


def as_token_id(value) -> int:
    """`value` as a Python int id (numpy and torch integers too); ByollmError for a float, a
    bool or anything else that is not an integer."""
    if type(value) is int:
        return value
    if not isinstance(value, bool):
        try:
            return operator.index(value)
        except TypeError:
            pass
    raise ByollmError(f"token id {short_repr(value)} ({type(value).__name__}) is not an integer")


def as_token_ids(ids: Iterable) -> list[int]:
    """`ids` as a list of Python ints (see `as_token_id`)."""
    if isinstance(ids, (str, bytes)):
        raise ByollmError(f"token ids must be a sequence of integers, not {type(ids).__name__}")
    try:
        ids = list(ids)
    except TypeError:
        raise ByollmError(
            f"token ids must be a sequence of integers, not {type(ids).__name__}"
        ) from None
    if set(map(type, ids)) <= {int}:  # the common case, checked at C speed
        return ids
    return [as_token_id(i) for i in ids]


def _hash_payload(payload: dict) -> str:
    canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def find_tokenizer_file(folder: str | Path) -> Path:
    """The tokenizer file of a checkpoint or data folder: `byollm-tokenizer.json`, else the
    `tokenizer.json` of a folder written before the rename; the new name when neither is there
    (so that an error names the file to provide)."""
    folder = Path(folder)
    for name in (TOKENIZER_FILE, LEGACY_TOKENIZER_FILE):
        if (folder / name).is_file():
            return folder / name
    return folder / TOKENIZER_FILE


def read_tokenizer_file(path: str | Path) -> Tokenizer:
    """Load any byollm tokenizer JSON file; errors name the file and what is wrong."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ByollmError(f"tokenizer file {path} does not exist") from None
    except IsADirectoryError:
        raise ByollmError(
            f"tokenizer path {path} is a directory, not a tokenizer JSON file"
        ) from None
    except (OSError, UnicodeDecodeError) as e:
        raise ByollmError(f"cannot read tokenizer file {path}: {e}") from None
    try:
        data = json.loads(text)
    except (ValueError, RecursionError) as e:  # also: numbers past int's digit limit, deep nesting
        raise ByollmError(f"tokenizer file {path} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise ByollmError(
            f"tokenizer file {path}: expected a JSON object, got {type(data).__name__}"
        )
    hint = ""
    if "model" in data and data.get("format") != FORMAT_NAME:
        hint = "; it looks like a Hugging Face tokenizer.json (read it with `from_huggingface`)"
    check_header(data, path, format=FORMAT_NAME, version=FORMAT_VERSION, hint=hint)
    classes = Tokenizer.types
    kind = data.get("type")
    if not isinstance(kind, str) or kind not in classes:
        raise ByollmError(
            f"tokenizer file {path}: unknown type {kind!r}; valid: {', '.join(classes)}"
        )
    stored = data.get("content_hash")
    if stored is not None and not isinstance(stored, str):
        raise ByollmError(f"tokenizer file {path}: 'content_hash' must be a string, got {stored!r}")
    try:
        tokenizer = classes[kind].from_payload(data)
        tokenizer.content_hash  # noqa: B018 (computed here: a lone surrogate fails to encode)
    except ByollmError as e:
        raise ByollmError(f"tokenizer file {path}: {e}") from None
    except (KeyError, TypeError, ValueError, OverflowError, RecursionError) as e:
        # A safety net: from_payload checks every field, so this names a case it missed.
        raise ByollmError(f"tokenizer file {path} is malformed: {type(e).__name__}: {e}") from None
    if stored is not None and stored != tokenizer.content_hash:
        raise ByollmError(
            f"tokenizer file {path}: content hash mismatch (file says {stored[:12]}..., "
            f"contents give {tokenizer.content_hash[:12]}...); the file was edited or corrupted"
        )
    return tokenizer


_REQUIRED = object()


def payload_field(data: dict, key: str, kind, what: str, default=_REQUIRED):
    """`data[key]` (or `default` when the key is absent), checked to be of `kind`; a
    ByollmError naming the key and what it must be otherwise."""
    if key not in data:
        if default is _REQUIRED:
            raise ByollmError(f"missing key {key!r} ({what})")
        return default
    value = data[key]
    if not isinstance(value, kind):
        raise ByollmError(f"{key!r} must be {what}, got {short_repr(value)}")
    return value


def is_token_id(value) -> bool:
    """A JSON integer usable as an id: not a bool, not negative, within MAX_TOKEN_ID."""
    return type(value) is int and 0 <= value <= MAX_TOKEN_ID


def short_repr(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def check_special_tokens(special_tokens: dict, where: str) -> dict[str, int]:
    """Validate a {text: id} map read from a file or given by a user."""
    if not isinstance(special_tokens, dict):
        raise ByollmError(f"{where}: special_tokens must be an object of text -> id")
    for text, token_id in special_tokens.items():
        if not isinstance(text, str) or not text or not is_token_id(token_id):
            raise ByollmError(
                f"{where}: bad special token {short_repr(text)} -> {short_repr(token_id)} "
                f"(expected a non-empty text -> an integer id in 0..{MAX_TOKEN_ID})"
            )
    if len(set(special_tokens.values())) != len(special_tokens):
        raise ByollmError(f"{where}: two special tokens share an id")
    return dict(special_tokens)
