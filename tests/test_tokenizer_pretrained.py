"""OpenAI vocabularies: our encoder must equal tiktoken's exactly.

tiktoken's `Encoding` objects are built from the same local files, with the split patterns and
special tokens taken from tiktoken's own `openai_public.py` (its downloads are redirected to the
shared data folder), so nothing here is copied from our code under test.
"""

from __future__ import annotations

import hashlib
import random
import string
from functools import cache

import pytest
from conftest import shared_file, shared_mirror
from hypothesis import given, settings
from hypothesis import strategies as st

from byollm.errors import ByollmError
from byollm.tokenizer import load_tokenizer
from byollm.tokenizer.pretrained import load_pretrained, read_tiktoken_file

tiktoken = pytest.importorskip("tiktoken")

NAMES = ["gpt2", "r50k_base", "p50k_base", "cl100k_base", "o200k_base"]
FILES = {
    "gpt2": ("gpt2/encoder.json", "gpt2/vocab.bpe"),
    "r50k_base": ("tiktoken/r50k_base.tiktoken",),
    "p50k_base": ("tiktoken/p50k_base.tiktoken",),
    "cl100k_base": ("tiktoken/cl100k_base.tiktoken",),
    "o200k_base": ("tiktoken/o200k_base.tiktoken",),
}
CORPORA = [
    "tinyshakespeare.txt",
    "wikitext-2/valid.txt",
    "wikitext-2/test.txt",
    "tinystories/tiny_stories_sample.txt",
]


def ours(name):
    return load_pretrained(name, paths=[shared_file(f) for f in FILES[name]])


@cache
def reference(name) -> tiktoken.Encoding:
    """tiktoken's own constructor, with its downloads served from the shared data folder."""
    import tiktoken.load
    from tiktoken_ext import openai_public

    def read_local(url, expected_hash=None):
        local = {"encoder.json": "gpt2/encoder.json", "vocab.bpe": "gpt2/vocab.bpe"}
        base = url.rsplit("/", 1)[-1]
        data = shared_file(local.get(base, f"tiktoken/{base}")).read_bytes()
        assert expected_hash is None or hashlib.sha256(data).hexdigest() == expected_hash
        return data

    original = tiktoken.load.read_file_cached
    tiktoken.load.read_file_cached = read_local
    try:
        return tiktoken.Encoding(**openai_public.ENCODING_CONSTRUCTORS[name]())
    finally:
        tiktoken.load.read_file_cached = original


@cache
def stdlib_slice() -> str:
    """The first 400 KB of the `python-stdlib` corpus (built offline by the corpus registry)."""
    from byollm.corpora import read_corpus_text

    return read_corpus_text("python-stdlib:400KB")


@pytest.mark.parametrize("name", NAMES)
def test_specials_and_sizes_match_tiktoken(name):
    tok, ref = ours(name), reference(name)
    assert tok.special_tokens == ref._special_tokens
    assert tok.vocab_size == ref.n_vocab
    assert tok.eot_id == ref.eot_token


@pytest.mark.parametrize(
    ("name", "corpus"),
    [(n, c) for n in ("gpt2", "cl100k_base", "o200k_base") for c in [*CORPORA, "stdlib"]]
    + [(n, c) for n in ("r50k_base", "p50k_base") for c in ("tinyshakespeare.txt", "stdlib")],
)
def test_corpus_parity(name, corpus):
    text = stdlib_slice() if corpus == "stdlib" else shared_file(corpus).read_text(encoding="utf-8")
    tok, ref = ours(name), reference(name)
    ids = tok.encode(text)
    assert ids == ref.encode_ordinary(text)
    assert tok.decode(ids) == ref.decode(ids) == text


FRAGMENTS = [
    "😀",
    "👍🏽",
    "👨‍👩‍👧",
    "🇫🇷",
    "e\u0301",
    "a\u0308\u0323",
    "日本語",
    "中文字符",
    "한국어",
    "שלום",
    "مرحبا",
    "\u200f",
    "\u200d",
    "\x00",
    "\x1c",
    "\x1f",
    "\x85",
    "\u2028",
    "\ufeff",
    " ",
    "  ",
    "    ",
    "\t",
    "\n",
    "\r\n",
    "\n\n\n",
    " \n ",
    "\u00a0",
    "\u3000",
    "0",
    "7",
    "123",
    "12345678",
    "3.14",
    "'s",
    "'S",
    "'ll",
    "'VE",
    "'re",
    "'d",
    "'m",
    "'t",
    "don't",
    "Hello",
    " world",
    "HTTP",
    "getX",
    "<|endoftext|>",
    "<|fim_prefix|>",
    "!!",
    "...",
    "--",
    "/",
    "//",
    "é",
    "ß",
    "İ",
    "\ud7ff",
    "\U0001f600\ufe0f",
]
unicode_text = st.lists(
    st.one_of(
        st.sampled_from(FRAGMENTS),
        # Not Cn (unassigned in Python's Unicode 14 tables): the `regex` package and tiktoken's
        # Rust engine ship newer, different tables, and a character assigned since then can be
        # a letter to one and not the other. Seen: U+12550 in "\U00012550:A" is a letter to
        # regex 2026.11.19 (so ":A" is one piece) but not to tiktoken (so ":" joins U+12550).
        st.text(st.characters(exclude_categories=("Cs", "Cn")), max_size=6),
    ),
    max_size=30,
).map("".join)


@pytest.mark.parametrize("name", NAMES)
def test_unicode_parity(name):
    tok, ref = ours(name), reference(name)

    @settings(max_examples=150, deadline=None, database=None)
    @given(unicode_text)
    def check(text):
        ids = tok.encode(text)
        assert ids == ref.encode_ordinary(text), repr(text)
        assert tok.decode(ids) == text
        assert ids == ref.encode(text, disallowed_special=())  # specials are plain text
        assert tok.encode(text, allowed_special="all") == ref.encode(text, allowed_special="all")

    check()


@pytest.mark.parametrize("name", ["gpt2", "cl100k_base"])
def test_long_runs(name):
    tok, ref = ours(name), reference(name)
    for text in [" " * 5000 + "x", "7" * 3000, "a" * 4000, "\n" * 2000 + "b", "😀" * 500]:
        assert tok.encode(text) == ref.encode_ordinary(text)


@pytest.mark.parametrize("name", ["gpt2", "cl100k_base"])
def test_huge_single_words(name):
    """Pieces over 64 KiB go to the round-based merger (`long_pieces.py`): same ids."""
    tok, ref = ours(name), reference(name)
    rng = random.Random(0)
    for text in [
        "a" * 70_000,
        "".join(rng.choices(string.ascii_letters, k=100_000)),
        "".join(rng.choices("ab", k=80_000)),
        "=" * 66_000 + "x" * 66_000,
    ]:
        assert tok.encode(text) == ref.encode_ordinary(text)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(0, 50256), max_size=20))
def test_decode_of_arbitrary_ids_matches_tiktoken(ids):
    assert ours("gpt2").decode(ids) == reference("gpt2").decode(ids)
    assert ours("gpt2").decode_bytes(ids) == reference("gpt2").decode_bytes(ids)


def test_load_by_name_through_a_mirror(monkeypatch):
    folder = shared_mirror("gpt2/encoder.json", "gpt2/vocab.bpe", "tiktoken/cl100k_base.tiktoken")
    monkeypatch.setenv("BYOLLM_MIRROR", folder.as_uri())
    tok = load_tokenizer("gpt2")
    assert tok.encode("Hello world") == [15496, 995]
    assert load_tokenizer("cl100k_base").encode("Hello world") == [9906, 1917]


def test_bad_rank_files(tmp_path):
    bad = tmp_path / "bad.tiktoken"
    bad.write_bytes(b"IQ== 0\nnot-base64!! 1\n")
    with pytest.raises(ByollmError, match=r"bad.tiktoken line 2"):
        read_tiktoken_file(bad)
    with pytest.raises(ByollmError, match="missing.tiktoken"):
        read_tiktoken_file(tmp_path / "missing.tiktoken")
    encoder = tmp_path / "encoder.json"
    encoder.write_text('{"a": 0}')
    vocab = tmp_path / "vocab.bpe"
    vocab.write_text("#version: 0.2\na b\n")
    with pytest.raises(ByollmError, match="vocab.bpe line 2"):
        load_pretrained("gpt2", paths=[encoder, vocab])
