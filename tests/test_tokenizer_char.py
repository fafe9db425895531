"""Character tokenizer: vocabulary, the unseen-character policy, save/load."""

from __future__ import annotations

import pytest
from conftest import shared_file
from hypothesis import given, settings
from hypothesis import strategies as st

from byollm.errors import ByollmError
from byollm.tokenizer import CharTokenizer, load_tokenizer


def test_shakespeare_has_65_characters():
    text = shared_file("tinyshakespeare.txt").read_text(encoding="utf-8")
    tok = CharTokenizer.train(text)
    assert tok.vocab_size == 65 and tok.eot_id is None
    assert tok.chars[:2] == ["\n", " "]
    assert tok.decode(tok.encode(text)) == text


@settings(max_examples=50, deadline=None)
@given(st.text(min_size=1))
def test_round_trip(text):
    tok = CharTokenizer.train(text)
    assert tok.decode(tok.encode(text)) == text
    assert len(tok.encode(text)) == len(text)


def test_unseen_character_policy():
    strict = CharTokenizer.train("abc")
    with pytest.raises(ByollmError, match=r"'z' \(U\+007A\) at position 1"):
        strict.encode("az")
    lenient = CharTokenizer.train("abc", unk="?")
    assert lenient.decode(lenient.encode("az")) == "a?"


def test_special_tokens_and_save_load(tmp_path):
    tok = CharTokenizer.train("hello", special_tokens=("<|endoftext|>",))
    assert tok.eot_id == 4 and tok.vocab_size == 5
    ids = tok.encode("he<|endoftext|>", allowed_special="all")
    assert ids == [1, 0, 4]
    assert tok.decode(ids) == "he<|endoftext|>"
    loaded = load_tokenizer(tok.save(tmp_path / "char.json"))
    assert isinstance(loaded, CharTokenizer)
    assert loaded.chars == tok.chars and loaded.special_tokens == tok.special_tokens
    assert loaded.content_hash == tok.content_hash


def test_empty_text():
    with pytest.raises(ByollmError, match="empty text"):
        CharTokenizer.train("")
