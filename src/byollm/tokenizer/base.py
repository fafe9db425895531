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
- **decode never raises**: ids that end mid-character become U+FFFD (as tiktoken), ids outside
  the vocabulary decode to U+FFFD too. `StreamingDecoder` holds incomplete UTF-8 back instead.
- **One versioned JSON format** for every tokenizer: `{"format": "byollm-tokenizer", "version": 1,
  "type": ..., ..., "content_hash": ...}`. The content hash (sha256 of the canonical JSON of
  everything but the hash) names a vocabulary exactly, so a checkpoint can check it was trained
  with the tokenizer it is given.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import regex

from byollm.errors import ByollmError

FORMAT_NAME = "byollm-tokenizer"
FORMAT_VERSION = 1
ENDOFTEXT = "<|endoftext|>"
REPLACEMENT_BYTES = "\ufffd".encode()


class Tokenizer:
    """Base class: subclasses set `special_tokens` and implement the three hooks below."""

    type_name = "base"

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
        for i in ids:
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
        piece = self._token_bytes(token_id)
        if piece is None:
            piece = self._special_by_id.get(token_id)
        if piece is None:
            raise ByollmError(
                f"token id {token_id} is not in the vocabulary (0..{self.vocab_size - 1})"
            )
        return piece

    def is_valid_id(self, token_id: int) -> bool:
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
        """Write the tokenizer as one JSON file (see the module docstring)."""
        path = Path(path)
        if path.parent and not path.parent.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(json.dumps(self.to_json_dict(), ensure_ascii=False) + "\n", encoding="utf-8")
        tmp.replace(path)
        return path

    def __repr__(self) -> str:
        return f"{type(self).__name__}(vocab_size={self.vocab_size}, specials={len(self.special_tokens)})"


def _hash_payload(payload: dict) -> str:
    canonical = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


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
    except json.JSONDecodeError as e:
        raise ByollmError(f"tokenizer file {path} is not valid JSON: {e}") from None
    if not isinstance(data, dict):
        raise ByollmError(
            f"tokenizer file {path}: expected a JSON object, got {type(data).__name__}"
        )
    if data.get("format") != FORMAT_NAME:
        hint = " (it looks like a Hugging Face tokenizer.json)" if "model" in data else ""
        raise ByollmError(
            f"tokenizer file {path} is not a byollm tokenizer: format is "
            f"{data.get('format')!r}, expected {FORMAT_NAME!r}{hint}"
        )
    if data.get("version") != FORMAT_VERSION:
        raise ByollmError(
            f"tokenizer file {path} has version {data.get('version')!r}; this byollm reads "
            f"version {FORMAT_VERSION}"
        )
    from byollm.tokenizer.bpe import BPETokenizer
    from byollm.tokenizer.char import CharTokenizer

    classes = {cls.type_name: cls for cls in (CharTokenizer, BPETokenizer)}
    kind = data.get("type")
    if kind not in classes:
        raise ByollmError(
            f"tokenizer file {path}: unknown type {kind!r}; valid: {', '.join(classes)}"
        )
    try:
        tokenizer = classes[kind].from_payload(data)
    except ByollmError as e:
        raise ByollmError(f"tokenizer file {path}: {e}") from None
    except (KeyError, TypeError, ValueError) as e:
        raise ByollmError(f"tokenizer file {path} is malformed: {type(e).__name__}: {e}") from None
    stored = data.get("content_hash")
    if stored is not None and stored != tokenizer.content_hash:
        raise ByollmError(
            f"tokenizer file {path}: content hash mismatch (file says {stored[:12]}..., "
            f"contents give {tokenizer.content_hash[:12]}...); the file was edited or corrupted"
        )
    return tokenizer


def check_special_tokens(special_tokens: dict, where: str) -> dict[str, int]:
    """Validate a {text: id} map read from a file or given by a user."""
    if not isinstance(special_tokens, dict):
        raise ByollmError(f"{where}: special_tokens must be an object of text -> id")
    for text, token_id in special_tokens.items():
        if not isinstance(text, str) or not text or not isinstance(token_id, int) or token_id < 0:
            raise ByollmError(f"{where}: bad special token {text!r} -> {token_id!r}")
    if len(set(special_tokens.values())) != len(special_tokens):
        raise ByollmError(f"{where}: two special tokens share an id")
    return dict(special_tokens)
