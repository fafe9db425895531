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


_SAFE_NEWLINE = regex.compile(r"(?<=\S)\n(?=\S)")


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


def safe_split_points(text: str, approx_piece_chars: int) -> list[int]:
    """Offsets where `text` can be cut into pieces that every pattern here tokenizes unchanged.

    A cut goes right after a newline that has a non-space character on each side (`"a\\nb"`):
    every pattern above ends a piece at such a point and starts the next one fresh, and the
    newline alone is a piece whether or not text follows it. Cuts at other places could change
    the result (`\\s+(?!\\S)` looks ahead; `"\\r\\n"` is one piece at the end of a text, two
    before a letter). Returns sorted offsets, 0 and len(text) excluded; empty when no cut is safe.

    >>> safe_split_points("ab\\ncd\\nef", 2)
    [3, 6]
    """
    points = []
    n = len(text)
    position = approx_piece_chars
    while position < n:
        match = _SAFE_NEWLINE.search(text, position)
        if match is None:
            break
        cut = match.end()
        # str.isspace is a little wider than \s (e.g. U+001C..U+001F): be conservative.
        if not text[cut - 2].isspace() and not text[cut].isspace():
            points.append(cut)
            position = cut + approx_piece_chars
        else:
            position = cut
    return points
