"""Split patterns: the ASCII fast path and the safe cut points never change the pieces."""

from __future__ import annotations

import re
import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from byollm.errors import ByollmError
from byollm.tokenizer.patterns import (
    ASCII_PATTERNS,
    PATTERNS,
    make_splitter,
    resolve_pattern,
    safe_split_points,
    split_text,
)

NAMED = ["gpt2", "gpt4", "gpt4o"]
ascii_text = st.text(st.characters(max_codepoint=127), max_size=80)
# Fragments that stress whitespace runs, newlines and punctuation next to newlines.
mixed_text = st.lists(
    st.sampled_from(
        [
            "\n",
            "\n\n",
            " \n",
            "\r\n",
            " ",
            "  ",
            "\t",
            "a",
            "Word",
            " the",
            "!",
            "!\n",
            "'s",
            "12345",
            "é",
            "日本",
            "😀",
            "\x1c",
            "\x85",
            "\u00a0",
            "\u3000",
            "x",
        ]
    ),
    max_size=40,
).map("".join)


@pytest.mark.skipif(sys.version_info < (3, 11), reason="re has possessive quantifiers from 3.11")
@pytest.mark.parametrize("name", NAMED)
@settings(max_examples=300, deadline=None)
@given(text=ascii_text)
def test_ascii_fast_path_equals_unicode_pattern(name, text):
    pattern = PATTERNS[name]
    assert re.findall(ASCII_PATTERNS[pattern], text, re.ASCII) == split_text(text, name)


@pytest.mark.parametrize("name", NAMED)
@settings(max_examples=300, deadline=None)
@given(text=mixed_text)
def test_cutting_at_safe_points_keeps_the_pieces(name, text):
    cuts = safe_split_points(text, 1)
    bounds = [0, *cuts, len(text)]
    pieces = [p for a, b in zip(bounds, bounds[1:]) for p in split_text(text[a:b], name)]
    assert pieces == split_text(text, name)


@pytest.mark.parametrize("name", NAMED)
def test_splitter_on_long_mixed_text(name, monkeypatch):
    import byollm.tokenizer.patterns as patterns

    monkeypatch.setattr(patterns, "ASCII_BLOCK_CHARS", 10)
    text = "Plain ascii line\nthen café 😀\n and more\n  text\n" * 50
    assert make_splitter(PATTERNS[name])(text) == split_text(text, name)


def test_pattern_names():
    assert resolve_pattern("none") == ""
    assert split_text("a b", "none") == ["a b"]
    assert resolve_pattern(r"\w+") == r"\w+"
    with pytest.raises(ByollmError, match="unknown pattern 'gtp2'.*gpt2, gpt4"):
        resolve_pattern("gtp2")
