"""Export to Hugging Face tokenizer.json and tiktoken rank files gives identical ids."""

from __future__ import annotations

import json

import pytest
from conftest import shared_file

from byollm.errors import ByollmError
from byollm.tokenizer import BPETokenizer, CharTokenizer
from byollm.tokenizer.export import to_huggingface, to_tiktoken
from byollm.tokenizer.pretrained import load_pretrained, read_tiktoken_file

tokenizers = pytest.importorskip("tokenizers")
tiktoken = pytest.importorskip("tiktoken")

SAMPLES = [
    "héllo 😀 日本語 <|endoftext|> 123456 don't  \n\n x",
    "    indented\n\tcode(x) -> 3.14159\r\n",
    "",
]


@pytest.fixture(scope="module")
def texts():
    shakespeare = shared_file("tinyshakespeare.txt").read_text(encoding="utf-8")
    wiki = shared_file("wikitext-2/valid.txt").read_text(encoding="utf-8")
    return [shakespeare[:100_000], wiki[:100_000], *SAMPLES]


@pytest.fixture(scope="module")
def tokenizers_to_export():
    shakespeare = shared_file("tinyshakespeare.txt").read_text(encoding="utf-8")
    gpt2_files = [shared_file("gpt2/encoder.json"), shared_file("gpt2/vocab.bpe")]
    return {
        "trained-gpt4": BPETokenizer.train(shakespeare, 1024, pattern="gpt4", progress=False),
        "trained-gpt2": BPETokenizer.train(shakespeare, 600, pattern="gpt2", progress=False),
        "gpt2": load_pretrained("gpt2", paths=gpt2_files),
    }


@pytest.mark.parametrize("name", ["trained-gpt4", "trained-gpt2", "gpt2"])
def test_huggingface_export_gives_identical_ids(tmp_path, texts, tokenizers_to_export, name):
    tok = tokenizers_to_export[name]
    hf = tokenizers.Tokenizer.from_file(str(to_huggingface(tok, tmp_path / "tokenizer.json")))
    for text in texts:
        ids = tok.encode(text, allowed_special="all")  # HF always matches special tokens
        assert hf.encode(text).ids == ids
        assert hf.decode(ids, skip_special_tokens=False) == text


@pytest.mark.parametrize("name", ["trained-gpt4", "gpt2"])
def test_tiktoken_export_gives_identical_ids(tmp_path, texts, tokenizers_to_export, name):
    tok = tokenizers_to_export[name]
    path = to_tiktoken(tok, tmp_path / "vocab.tiktoken")
    assert read_tiktoken_file(path) == tok.ranks
    encoding = tiktoken.Encoding(
        name="exported",
        pat_str=tok.pattern,
        mergeable_ranks=read_tiktoken_file(path),
        special_tokens=tok.special_tokens,
    )
    for text in texts:
        assert encoding.encode(text, allowed_special="all") == tok.encode(
            text, allowed_special="all"
        )


def test_char_tokenizer_exports_as_a_bpe_without_merges(tmp_path):
    tokenizers = pytest.importorskip("tokenizers")
    char = CharTokenizer.train("hello world\nbye, all!", special_tokens=["<|endoftext|>"])
    to_huggingface(char, tmp_path / "x.json")
    hf = tokenizers.Tokenizer.from_file(str(tmp_path / "x.json"))
    for text in ["hello world", "bye,\n  all!", "l l  o<|endoftext|>ab"]:
        ids = char.encode(text, allowed_special="all")
        assert hf.encode(text).ids == ids
        assert hf.decode(ids, skip_special_tokens=False) == text


def test_only_bpe_and_char_tokenizers_export(tmp_path):
    with pytest.raises(ByollmError, match="only BPE"):
        to_huggingface(object(), tmp_path / "x.json")


def test_from_huggingface_reads_back_what_to_huggingface_writes_and_gpt2(tmp_path):
    from byollm.tokenizer.export import from_huggingface

    text = "Hello world, it's 2026!\n  Spaces<|endoftext|> and ünïcödé 12345"
    bpe = BPETokenizer.train(text * 5, 300, pattern="gpt4", progress=False)
    char = CharTokenizer.train(text, special_tokens=["<|endoftext|>"])
    for tok in (bpe, char):
        to_huggingface(tok, tmp_path / "t.json")
        back = from_huggingface(tmp_path / "t.json")
        assert type(back) is type(tok)
        assert back.encode(text, allowed_special="all") == tok.encode(text, allowed_special="all")
    # GPT-2's own tokenizer.json spelling: ByteLevel with its built-in regex, no Split
    gpt2 = load_pretrained(
        "gpt2", paths=(shared_file("gpt2/encoder.json"), shared_file("gpt2/vocab.bpe"))
    )
    to_huggingface(gpt2, tmp_path / "g.json")
    data = json.loads((tmp_path / "g.json").read_text())
    data["pre_tokenizer"] = {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True}
    (tmp_path / "g.json").write_text(json.dumps(data))
    assert from_huggingface(tmp_path / "g.json").encode(text) == gpt2.encode(text)
    data["model"]["merges"] = data["model"]["merges"][::-1]  # merge order != id order
    (tmp_path / "g.json").write_text(json.dumps(data))
    with pytest.raises(ByollmError, match="not in id order"):
        from_huggingface(tmp_path / "g.json")
