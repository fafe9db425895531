"""Byte-level BPE: training equals the naive oracle, save/load, special tokens, bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from conftest import shared_file
from hypothesis import given, settings
from hypothesis import strategies as st
from tokenizer_oracle import naive_encode, naive_merges

from byollm.errors import ByollmError
from byollm.tokenizer import (
    BPETokenizer,
    CharTokenizer,
    StreamingDecoder,
    Tokenizer,
    load_tokenizer,
)
from byollm.tokenizer.bpe import _byte_pair_merge_heap, byte_pair_merge
from byollm.tokenizer.patterns import split_text
from byollm.tokenizer.training import count_pieces


@pytest.fixture(scope="module")
def shakespeare() -> str:
    return shared_file("tinyshakespeare.txt").read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def trained(shakespeare) -> BPETokenizer:
    return BPETokenizer.train(shakespeare[:200_000], 512, pattern="gpt4", progress=False)


@pytest.mark.parametrize("pattern", ["gpt2", "gpt4", "none"])
def test_incremental_training_equals_naive_oracle(shakespeare, pattern):
    text = shakespeare[:6000] if pattern != "none" else shakespeare[:1500]
    n_merges = 120
    tok = BPETokenizer.train(
        text, 256 + n_merges, pattern=pattern, special_tokens=(), progress=False
    )
    assert tok.merges == naive_merges(text, n_merges, pattern)
    assert tok.vocab_size == 256 + n_merges
    assert tok.decode(tok.encode(text)) == text


@settings(max_examples=40, deadline=None)
@given(st.text(alphabet="ab c\nAé😀", min_size=0, max_size=60), st.integers(1, 30))
def test_incremental_training_equals_oracle_on_random_text(text, n_merges):
    """Runs of one letter (`aaaa`) and back-to-back pairs (`abab`) exercise the tricky cases."""
    if not text:
        return
    tok = BPETokenizer.train(
        text, 256 + n_merges, pattern="gpt2", special_tokens=(), progress=False
    )
    assert tok.merges == naive_merges(text, n_merges, "gpt2")


def test_encode_reproduces_training_segmentation(trained, shakespeare):
    """Merging by rank (with the whole-piece shortcut) = applying the merges in order."""
    text = shakespeare[200_000:230_000]
    ids = trained.encode(text)
    assert ids == naive_encode(text, trained.merges, "gpt4")
    assert trained.decode(ids) == text
    assert len(ids) < len(text.encode()) / 1.8  # 512 tokens: about 2 bytes per token


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=0, max_size=300))
def test_heap_merge_equals_simple_merge(data):
    ranks = {bytes([b]): b for b in range(256)}
    for i, token in enumerate([b"\x00\x00", b"ab", b"abab", b"\x00\x00\x00\x00", b"ba", b"aba"]):
        ranks[token] = 256 + i
    assert _byte_pair_merge_heap(data, ranks) == _simple(data, ranks)
    assert b"".join(byte_pair_merge(data, ranks)) == data


@settings(max_examples=150, deadline=None)
@given(
    st.lists(st.text("abc", min_size=2, max_size=6), max_size=25, unique=True),
    st.randoms(use_true_random=False),
    st.text("abc", max_size=80),
    st.sampled_from([(1, 1), (2, 3), (5, 2), (1 << 20, 1 << 18)]),
)
def test_long_piece_encoder_equals_simple_merge(tokens, rng, text, slices):
    """The round-based merger gives the one-at-a-time result for any rank order, including
    orders no BPE training produces (a token ranked before one of its own parts), which make
    rounds stop early; and however small its slices."""
    import byollm.tokenizer.long_pieces as long_pieces

    ranks = {bytes([b]): b for b in range(256)}
    rng.shuffle(tokens)
    for token in tokens:
        ranks[token.encode()] = len(ranks)
    encoder = long_pieces.LongPieceEncoder(ranks)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(long_pieces, "ROUND_SLICE", slices[0])
        patch.setattr(long_pieces, "LOOKUP_SLICE", slices[1])
        ids = encoder.encode(text.encode())
    assert ids == [ranks[part] for part in _simple(text.encode(), ranks)]


LONG_WORD_PEAK = """
import random, resource
from byollm.tokenizer import BPETokenizer

letters = "abcdefghij"
ranks = {bytes([b]): b for b in range(256)}
for token in [b"a" * 2**k for k in range(1, 7)] + [(x + y).encode() for x in letters for y in letters]:
    ranks.setdefault(token, len(ranks))
for x in letters:
    for y in letters:
        ranks.setdefault((x + y + x + y).encode(), len(ranks))
tok = BPETokenizer(ranks, pattern="gpt2")
word = "a" * 2**20 + "".join(random.Random(0).choices(letters, k=2**20))  # 2 MB, one piece
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
ids = tok.encode(word)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
assert tok.decode(ids) == word
print((after - before) * 1024)  # Linux reports KiB
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="ru_maxrss in KiB is Linux's")
def test_a_2_mb_word_is_encoded_in_bounded_memory():
    # Merging one pair at a time in Python objects took ~510 MB more for this word (and 10 GB,
    # then MemoryError, for 50 MB); the round-based merger in int32 arrays takes ~100 MB.
    out = subprocess.run([sys.executable, "-c", LONG_WORD_PEAK], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) < 200 * 2**20


def _simple(piece, ranks):
    parts = [piece[i : i + 1] for i in range(len(piece))]
    while True:
        candidates = [
            (ranks[parts[i] + parts[i + 1]], i)
            for i in range(len(parts) - 1)
            if parts[i] + parts[i + 1] in ranks
        ]
        if not candidates:
            return parts
        _, i = min(candidates)
        parts[i : i + 2] = [parts[i] + parts[i + 1]]


@settings(deadline=None, max_examples=60)
@given(st.text(alphabet="ab c\n\tAé😀<|>'0", max_size=120), st.sampled_from(["uint16", "uint32"]))
def test_packed_ids_are_the_encoded_ids_in_the_files_dtype(trained, text, dtype):
    # the packed cache is separate from the list cache: compare from both orders of first use
    none_pattern = BPETokenizer(trained.ranks, pattern="none")
    for tok in (trained, none_pattern, CharTokenizer.train("ab c\n\tAé😀<|>'0")):
        packed = tok.encode_ordinary_packed(text, np.dtype(dtype))
        assert np.frombuffer(packed, dtype=dtype).tolist() == tok.encode(text)
        assert tok.encode_ordinary_packed(text, np.dtype(dtype)) == packed  # from the cache


def test_packed_ids_survive_the_cache_starting_over(trained, shakespeare, monkeypatch):
    import byollm.tokenizer.bpe as bpe

    monkeypatch.setattr(bpe, "CACHE_MAX_ENTRIES", 50)
    tok = BPETokenizer(trained.ranks, pattern="gpt4")
    for text in (shakespeare[:20_000], shakespeare[20_000:40_000]):
        packed = tok.encode_ordinary_packed(text, np.uint16)
        assert np.frombuffer(packed, np.uint16).tolist() == trained.encode(text)
    # started over before the second text: it holds none of the first text's own pieces
    assert set(tok._packed_caches[np.dtype(np.uint16)]) <= set(split_text(text, "gpt4"))


def test_save_load_round_trip(tmp_path, trained, shakespeare):
    path = trained.save(tmp_path / "tok.json")
    data = json.loads(path.read_text())
    assert data["format"] == "byollm-tokenizer" and data["version"] == 1
    assert data["type"] == "bpe" and data["pattern_name"] == "gpt4"
    assert data["content_hash"] == trained.content_hash
    loaded = load_tokenizer(path)
    assert isinstance(loaded, BPETokenizer) and isinstance(loaded, Tokenizer)
    assert BPETokenizer.load(path).merges == Tokenizer.load(path).merges == trained.merges
    with pytest.raises(ByollmError, match="holds a bpe tokenizer, not char"):
        CharTokenizer.load(path)
    assert loaded.merges == trained.merges
    assert loaded.special_tokens == {"<|endoftext|>": 511} and loaded.eot_id == 511
    text = shakespeare[:5000]
    assert loaded.encode(text) == trained.encode(text)
    assert loaded.content_hash == trained.content_hash


def test_special_tokens_are_opt_in(trained):
    text = "Hello<|endoftext|>world"
    plain = trained.encode(text)
    assert 511 not in plain  # by default the marker is just text: no injection of control tokens
    assert trained.decode(plain) == text
    ids = trained.encode(text, allowed_special="all")
    assert ids == trained.encode("Hello") + [511] + trained.encode("world")
    assert trained.encode(text, allowed_special={"<|endoftext|>"}) == ids
    assert trained.decode(ids) == text
    with pytest.raises(ByollmError, match="unknown special token"):
        trained.encode(text, allowed_special={"<|nope|>"})


def test_decode_never_raises(trained):
    ids = trained.encode("café 😀")
    assert trained.decode(ids[:-1]).endswith("\ufffd")  # cut mid-character
    assert trained.decode([10**9, -1]) == "\ufffd\ufffd"  # unknown ids
    assert trained.decode([-1]) == trained.decode([-5, 300])[:1] == "\ufffd"
    assert trained.decode([]) == ""


def test_streaming_decoder_holds_back_partial_characters(trained):
    text = "naïve 😀 日本語 done"
    ids = trained.encode(text)
    decoder = StreamingDecoder(trained)
    pieces = [decoder.push(i) for i in ids]
    assert "".join(pieces) + decoder.flush() == text
    assert all("\ufffd" not in p for p in pieces)
    decoder.push(trained.encode("😀")[0])
    assert decoder.flush() == "\ufffd"


def test_parallel_encode_matches_serial(tmp_path, shakespeare, trained, monkeypatch):
    import byollm.tokenizer.parallel as parallel

    monkeypatch.setattr(parallel, "PARALLEL_MIN_CHARS", 1000)
    text = shakespeare[:300_000]
    assert trained.encode_large(text, workers=2) == trained.encode(text)
    texts = [shakespeare[i : i + 5000] for i in range(0, 100_000, 5000)]
    assert trained.encode_batch(texts, workers=2) == [trained.encode(t) for t in texts]
    path = tmp_path / "big.txt"
    path.write_text(text, encoding="utf-8")
    assert trained.encode_file(path, workers=2) == trained.encode(text)
    chars = CharTokenizer.train(text)
    assert chars.encode_large(text, workers=2) == chars.encode(text)


def test_training_streams_files_and_counts_like_text(tmp_path, shakespeare, monkeypatch):
    import byollm.tokenizer.training as training

    monkeypatch.setattr(training, "BLOCK_CHARS", 10_000)  # force many blocks
    path = tmp_path / "corpus.txt"
    path.write_text(shakespeare[:100_000], encoding="utf-8")
    from byollm.tokenizer.patterns import GPT2_PATTERN

    assert count_pieces(path, GPT2_PATTERN, progress=False) == count_pieces(
        shakespeare[:100_000], GPT2_PATTERN, progress=False
    )
    from_file = BPETokenizer.train(path, 300, pattern="gpt2", progress=False)
    from_text = BPETokenizer.train(shakespeare[:100_000], 300, pattern="gpt2", progress=False)
    assert from_file.merges == from_text.merges


def test_special_token_text_is_not_learned():
    text = "ab<|endoftext|>ab<|endoftext|>" * 20
    tok = BPETokenizer.train(text, 270, pattern="gpt2", progress=False)
    learned = [tok.token_bytes(i) for i in range(256, 256 + len(tok.merges))]
    assert all(b"<|" not in t and b"|>" not in t for t in learned)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"vocab_size": 200}, "vocab_size 200 is too small.*at least 257"),
        ({"vocab_size": 300, "pattern": "gpt5"}, "unknown pattern 'gpt5'"),
        ({"vocab_size": 300, "pattern": "([a-z"}, "invalid split pattern"),
    ],
)
def test_bad_training_arguments(kwargs, message):
    with pytest.raises(ByollmError, match=message):
        BPETokenizer.train("some text", progress=False, **kwargs)


def test_empty_corpus(tmp_path):
    with pytest.raises(ByollmError, match="empty corpus"):
        BPETokenizer.train("", 300, progress=False)
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(ByollmError, match="empty corpus"):
        BPETokenizer.train(empty, 300, progress=False)
    with pytest.raises(ByollmError, match="missing.txt"):
        BPETokenizer.train(tmp_path / "missing.txt", 300, progress=False)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "not valid JSON"),
        ("[1, 2]", "expected a JSON object"),
        ('{"format": "other"}', "not a byollm-tokenizer file"),
        ('{"model": {}, "version": "1.0"}', "Hugging Face"),
        ('{"format": "byollm-tokenizer", "version": 99}', "version 99"),
        ('{"format": "byollm-tokenizer", "version": 1, "type": "wordpiece"}', "unknown type"),
        ('{"format": "byollm-tokenizer", "version": 1, "type": "bpe"}', "malformed"),
        (
            '{"format": "byollm-tokenizer", "version": 1, "type": "bpe", "pattern": "", '
            '"vocab": ["!!"]}',
            "not base64",
        ),
    ],
)
def test_malformed_tokenizer_files_name_the_file(tmp_path, content, message):
    path = tmp_path / "broken.json"
    path.write_text(content)
    with pytest.raises(ByollmError, match=message) as info:
        load_tokenizer(path)
    assert "broken.json" in str(info.value)


def test_edited_file_fails_the_content_hash(tmp_path, trained):
    path = trained.save(tmp_path / "tok.json")
    data = json.loads(path.read_text())
    data["special_tokens"]["<|endoftext|>"] = 600  # a well-formed edit: only the hash sees it
    path.write_text(json.dumps(data))
    with pytest.raises(ByollmError, match="content hash mismatch"):
        load_tokenizer(path)
    data["merges"][0] = [1, 2]  # an edit that breaks the vocabulary is named as such
    path.write_text(json.dumps(data))
    with pytest.raises(ByollmError, match="'merges' entry 0 .* does not join"):
        load_tokenizer(path)


def test_missing_file_and_unknown_name(tmp_path):
    with pytest.raises(ByollmError, match="does not exist"):
        load_tokenizer(tmp_path / "nope.json")
    with pytest.raises(ByollmError, match="unknown tokenizer 'gpt3'"):
        load_tokenizer("gpt3")
