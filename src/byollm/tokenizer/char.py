"""The simplest tokenizer: one id per character seen in the training text.

    >>> tok = CharTokenizer.train("hello world")
    >>> tok.chars
    [' ', 'd', 'e', 'h', 'l', 'o', 'r', 'w']
    >>> tok.encode("hello")
    [3, 2, 4, 4, 5]
    >>> tok.decode([7, 5, 6, 4, 1])
    'world'

Design choices:
- Ids are the characters (Unicode code points) sorted by code point: deterministic and the same
  as nanoGPT's shakespeare_char (65 symbols for Tiny Shakespeare).
- **Unseen characters** (the documented policy): by default `encode` raises `ByollmError` naming
  the character and its position, because silently dropping text hides data problems. Train with
  `unk="?"` (any one character of the vocabulary, or a new one, which is then added) to map
  every unseen character to that token instead.
- Special tokens, if asked for, get the ids after the characters.
"""

from __future__ import annotations

from collections.abc import Iterable

from byollm.errors import ByollmError
from byollm.tokenizer.base import Tokenizer, check_special_tokens, payload_field


class CharTokenizer(Tokenizer):
    type_name = "char"

    def __init__(
        self,
        chars: Iterable[str],
        *,
        special_tokens: dict[str, int] | None = None,
        unk: str | None = None,
    ):
        super().__init__(special_tokens)
        self.chars = list(chars)
        if any(not isinstance(c, str) or len(c) != 1 for c in self.chars):
            raise ByollmError("character vocabulary must hold single characters")
        if len(set(self.chars)) != len(self.chars):
            raise ByollmError("character vocabulary holds a character twice")
        self._id_of = {c: i for i, c in enumerate(self.chars)}
        if unk is not None and unk not in self._id_of:
            raise ByollmError(f"unknown-character token {unk!r} is not in the vocabulary")
        self.unk = unk
        self._bytes_of = [c.encode("utf-8", errors="surrogatepass") for c in self.chars]
        for name, token_id in self.special_tokens.items():
            if token_id < len(self.chars):
                raise ByollmError(
                    f"special token {name!r} id {token_id} collides with a character id"
                )

    @classmethod
    def train(
        cls,
        text: str,
        *,
        special_tokens: Iterable[str] = (),
        unk: str | None = None,
    ) -> CharTokenizer:
        """Vocabulary = the distinct characters of `text` (plus `unk`), sorted by code point."""
        chars = set(text)
        if unk is not None:
            if len(unk) != 1:
                raise ByollmError(f"unk must be a single character, got {unk!r}")
            chars.add(unk)
        if not chars:
            raise ByollmError("cannot build a character vocabulary from empty text")
        ordered = sorted(chars)
        specials = {s: len(ordered) + i for i, s in enumerate(dict.fromkeys(special_tokens))}
        return cls(ordered, special_tokens=specials, unk=unk)

    @property
    def vocab_size(self) -> int:
        return len(self.chars) + len(self.special_tokens)

    def _encode_ordinary(self, text: str) -> list[int]:
        id_of = self._id_of
        try:
            return [id_of[c] for c in text]
        except KeyError:
            pass
        if self.unk is not None:
            unk_id = id_of[self.unk]
            return [id_of.get(c, unk_id) for c in text]
        position, char = next((i, c) for i, c in enumerate(text) if c not in id_of)
        raise ByollmError(
            f"character {char!r} (U+{ord(char):04X}) at position {position} is not in this "
            f"character vocabulary of {len(self.chars)} characters; train the tokenizer on text "
            "that contains it, or with unk=... to map unseen characters to one token"
        )

    def _token_bytes(self, token_id: int) -> bytes | None:
        if 0 <= token_id < len(self._bytes_of):
            return self._bytes_of[token_id]
        return None

    def _payload(self) -> dict:
        return {"chars": self.chars, "unk": self.unk}

    @classmethod
    def from_payload(cls, data: dict) -> CharTokenizer:
        chars = payload_field(data, "chars", list, "a list of single characters")
        unk = payload_field(data, "unk", (str, type(None)), "a character or null", default=None)
        specials = check_special_tokens(data.get("special_tokens", {}), "char tokenizer")
        return cls(chars, special_tokens=specials, unk=unk)
