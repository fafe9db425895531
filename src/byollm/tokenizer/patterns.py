"""Regex pre-tokenization: the split patterns of GPT-2 and GPT-4, by name.

Byte-level BPE never merges across the pieces a regex cuts the text into, so a word and its
trailing punctuation (`"dog"` and `"dog."`) share a token instead of wasting vocabulary on every
combination. The patterns are copied character for character from tiktoken
(`tiktoken_ext/openai_public.py`), because exact parity with OpenAI's encoders depends on them.

    >>> split_text("Hello world!!  123", "gpt2")
    ['Hello', ' world', '!!', ' ', ' 123']
    >>> split_text("Hello world!!  12345", "gpt4")
    ['Hello', ' world', '!!', ' ', ' ', '123', '45']

Design choices:
- GPT-2's pattern is tiktoken's faster but equivalent form (possessive quantifiers, `\\s++$`).
- "gpt4" is cl100k_base's pattern: case-insensitive contractions, numbers cut into groups of at
  most three digits, a single non-letter may lead a word, newlines kept with the punctuation.
- "none" means no pre-split: the whole text is one piece (minbpe's "basic" tokenizer).
- Python's `regex` module (not `re`) is needed for `\\p{L}` and possessive quantifiers.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from functools import lru_cache

import regex

from byollm.errors import ByollmError

GPT2_PATTERN = (
    r"""'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"""
)
GPT4_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)
GPT4O_PATTERN = "|".join(
    [
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
        r"""\p{N}{1,3}""",
        r""" ?[^\s\p{L}\p{N}]+[\r\n/]*""",
        r"""\s*[\r\n]+""",
        r"""\s+(?!\S)""",
        r"""\s+""",
    ]
)
NO_PATTERN = ""

# The same patterns for text that is pure ASCII, where \p{L} is [A-Za-z] and \p{N} is [0-9].
# Python's own `re` (3.11+: possessive quantifiers) runs these about twice as fast as `regex`
# runs the Unicode ones; tests check both give the same pieces on ASCII text.
ASCII_PATTERNS = {
    GPT2_PATTERN: r"""'(?:[sdmt]|ll|ve|re)| ?[A-Za-z]++| ?[0-9]++| ?[^\sA-Za-z0-9]++|\s++$|\s+(?!\S)|\s""",
    GPT4_PATTERN: r"""'(?i:[sdmt]|ll|ve|re)|[^\r\nA-Za-z0-9]?+[A-Za-z]++|[0-9]{1,3}+"""
    r"""| ?[^\sA-Za-z0-9]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s""",
    GPT4O_PATTERN: "|".join(
        [
            r"""[^\r\nA-Za-z0-9]?[A-Z]*[a-z]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
            r"""[^\r\nA-Za-z0-9]?[A-Z]+[a-z]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?""",
            r"""[0-9]{1,3}""",
            r""" ?[^\sA-Za-z0-9]+[\r\n/]*""",
            r"""\s*[\r\n]+""",
            r"""\s+(?!\S)""",
            r"""\s+""",
        ]
    ),
}
ASCII_BLOCK_CHARS = 2000  # mixed text is cut into blocks this long; pure-ASCII blocks go fast

PATTERNS: dict[str, str] = {
    "gpt2": GPT2_PATTERN,
    "gpt4": GPT4_PATTERN,
    "gpt4o": GPT4O_PATTERN,
    "none": NO_PATTERN,
}


def resolve_pattern(name_or_regex: str) -> str:
    """The regex for a pattern name ("gpt2", "gpt4", "gpt4o", "none"), or a regex given as is.

    >>> resolve_pattern("gpt2") == GPT2_PATTERN
    True
    """
    if name_or_regex in PATTERNS:
        return PATTERNS[name_or_regex]
    if name_or_regex.isidentifier():  # looks like a name, not a regex: a typo
        raise ByollmError(
            f"unknown pattern {name_or_regex!r}; valid: {', '.join(PATTERNS)} (or a regex)"
        )
    compile_pattern(name_or_regex)  # validates
    return name_or_regex


def pattern_name(pattern: str) -> str | None:
    """The name of a known pattern, or None for a custom regex."""
    return next((name for name, p in PATTERNS.items() if p == pattern), None)


_CUT_CANDIDATE = regex.compile(r"(?<=.)\n(?=\S| \S)", regex.DOTALL)


@lru_cache(maxsize=16)
def compile_pattern(pattern: str) -> regex.Pattern:
    try:
        return regex.compile(pattern)
    except regex.error as e:
        raise ByollmError(f"invalid split pattern {pattern!r}: {e}") from None


def split_text(text: str, pattern: str) -> list[str]:
    """Cut text into the pieces BPE merges within (a pattern name or a regex)."""
    pattern = resolve_pattern(pattern)
    if not pattern:
        return [text] if text else []
    return compile_pattern(pattern).findall(text)


def make_splitter(pattern: str) -> Callable[[str], list[str]]:
    """A fast `split_text` for one pattern: `re` on pure-ASCII text (or on the pure-ASCII
    blocks of mixed text, cut at safe points), `regex` on the rest; same pieces either way."""
    unicode_findall = compile_pattern(pattern).findall
    if pattern not in ASCII_PATTERNS or sys.version_info < (3, 11):
        return unicode_findall
    ascii_findall = re.compile(ASCII_PATTERNS[pattern], re.ASCII).findall

    def split(text: str) -> list[str]:
        if text.isascii():
            return ascii_findall(text)
        if len(text) < 2 * ASCII_BLOCK_CHARS:
            return unicode_findall(text)
        pieces: list[str] = []
        start = 0
        for cut in [*safe_split_points(text, ASCII_BLOCK_CHARS), len(text)]:
            block = text[start:cut]
            pieces += ascii_findall(block) if block.isascii() else unicode_findall(block)
            start = cut
        return pieces

    return split


def safe_split_points(text: str, approx_piece_chars: int) -> list[int]:
    r"""Offsets where `text` can be cut into pieces that every pattern here splits unchanged.

    Two kinds of cut, both right after a newline, followed by a non-space character X:
    - `"a\n|X"` (a non-space before the newline): the newline is a piece of its own whether or
      not text follows it;
    - `"\n| X"` (a space, then X): every pattern ends the whitespace run before the space that
      leads the word, and a run ending in a newline is one piece also at the end of a text.
    Cuts elsewhere can change the result: `\s+(?!\S)` looks ahead (`"\n\n|X"` is two pieces
    before X but one at the end of a text), and a cut before a newline would break GPT-4's
    `"!\n"` piece.
    WikiText's lines (" = Title = \n \n Text") only offer the second kind.
    Returns sorted offsets, 0 and len(text) excluded; empty when no cut is safe.

    >>> safe_split_points("ab\ncd\nef", 2)
    [3, 6]
    >>> safe_split_points(" x \n \n y", 1)
    [6]
    """
    points = []
    n = len(text)
    position = approx_piece_chars
    while position < n:
        match = _CUT_CANDIDATE.search(text, position)
        if match is None:
            break
        cut = match.end()
        # str.isspace is a little wider than \s (e.g. U+001C..U+001F): that errs on the safe side.
        if text[cut] == " ":
            safe = not text[cut + 1].isspace()
        else:
            safe = not text[cut - 2].isspace() and not text[cut].isspace()
        if safe:
            points.append(cut)
            position = cut + approx_piece_chars
        else:
            position = cut
    return points
