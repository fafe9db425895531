"""Tokenizer specs: one parser, and `char` / `bpe:N` mean one thing in prepare, train and load."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from byollm.cli import main
from byollm.data.prepare import prepare
from byollm.errors import ByollmError
from byollm.tokenizer import (
    PRETRAINED,
    TOKENIZER_FILE,
    TokenizerSpec,
    load_tokenizer,
    parse_tokenizer_spec,
    read_tokenizer_file,
    train_tokenizer,
)
from byollm.tokenizer.specs import KINDS


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("char", TokenizerSpec("char", "char")),
        (
            "char:tinyshakespeare",
            TokenizerSpec("char", "char:tinyshakespeare", corpus="tinyshakespeare"),
        ),
        ("char:~/texts/", TokenizerSpec("char", "char:~/texts/", corpus="~/texts/")),
        ("bpe:4096", TokenizerSpec("bpe", "bpe:4096", vocab_size=4096)),
        ("gpt2", TokenizerSpec("pretrained", "gpt2")),
        ("o200k_base", TokenizerSpec("pretrained", "o200k_base")),
        (
            "runs/x/checkpoint/byollm-tokenizer.json",
            TokenizerSpec(
                "file",
                "runs/x/checkpoint/byollm-tokenizer.json",
                path=Path("runs/x/checkpoint/byollm-tokenizer.json"),
            ),
        ),
        ("tok.json", TokenizerSpec("file", "tok.json", path=Path("tok.json"))),
    ],
)
def test_every_form_parses_to_its_kind(text, expected):
    assert parse_tokenizer_spec(text) == expected
    assert parse_tokenizer_spec(expected) is expected  # an already parsed spec passes through


def test_tilde_is_the_home_folder(monkeypatch, tmp_path):
    monkeypatch.setenv("HOME", str(tmp_path))
    spec = parse_tokenizer_spec("~/tok.json")
    assert spec.kind == "file" and spec.path == tmp_path / "tok.json" == Path(spec.text)


def test_names_win_over_files_of_the_same_name(monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "gpt2").write_text("{}")
    (tmp_path / "mytok").write_text("{}")
    assert parse_tokenizer_spec("gpt2").kind == "pretrained"
    assert parse_tokenizer_spec("./gpt2").kind == "file"
    assert parse_tokenizer_spec("mytok").kind == "file"  # an existing file, no slash needed


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("bpe:4k", "expected bpe:N with N an integer"),
        ("bpe:", "expected bpe:N"),
        ("bpe:-5", "expected bpe:N"),
        ("bpe", "expected bpe:N"),
        ("char:", "write char:CORPUS"),
        ("gpt3", "unknown tokenizer 'gpt3'; valid: char, char:CORPUS, bpe:N, gpt2"),
        ("", "non-empty string"),
    ],
)
def test_malformed_specs_are_one_line(text, message):
    with pytest.raises(ByollmError, match=message) as info:
        parse_tokenizer_spec(text)
    assert "\n" not in str(info.value)


@given(st.text(max_size=30))
def test_any_text_is_a_spec_of_one_kind_or_a_clear_error(text):
    try:
        spec = parse_tokenizer_spec(text)
    except ByollmError:
        return
    assert spec.kind in KINDS
    if spec.kind == "bpe":
        assert int(spec.text.removeprefix("bpe:")) == spec.vocab_size
    if spec.kind == "pretrained":
        assert text in PRETRAINED


@pytest.fixture
def corpus(tmp_path):
    path = tmp_path / "corpus.txt"
    path.write_text("the quick brown fox, café ✓\njumps over the lazy dog\n" * 40)
    return path


def trained_by_the_cli(corpus, out, *flags):
    """`byollm tokenizer train --corpus CORPUS FLAGS --out OUT`, and the tokenizer it saved."""
    argv = ["tokenizer", "train", "--corpus", str(corpus), *flags, "--out", str(out)]
    assert main([*argv, "--no-progress"]) == 0
    return read_tokenizer_file(out)


def test_char_is_the_characters_of_the_corpus_in_hand_everywhere(corpus, tmp_path):
    chars = sorted(set(corpus.read_text()))
    prepared = prepare(corpus, "char", tmp_path / "data", progress=False)
    by_prepare = read_tokenizer_file(tmp_path / "data" / TOKENIZER_FILE)
    others = [
        trained_by_the_cli(corpus, tmp_path / "cli.json", "--tokenizer", "char"),
        train_tokenizer("char", [corpus]),
        load_tokenizer("char", corpus=corpus),
        load_tokenizer(f"char:{corpus}"),  # the corpus named in the spec, anywhere
    ]
    assert by_prepare.chars == chars and by_prepare.special_tokens == {}
    assert {t.content_hash for t in others} == {by_prepare.content_hash, prepared["tokenizer_hash"]}


def test_bpe_n_trains_the_same_vocabulary_in_prepare_and_tokenizer_train(corpus, tmp_path):
    prepare(corpus, "bpe:280", tmp_path / "data", progress=False)
    by_prepare = read_tokenizer_file(tmp_path / "data" / TOKENIZER_FILE)
    for flags in (["--tokenizer", "bpe:280"], ["--vocab-size", "280"]):
        by_cli = trained_by_the_cli(corpus, tmp_path / f"{flags[0][2:]}.json", *flags)
        assert by_cli.content_hash == by_prepare.content_hash
    assert by_prepare.vocab_size == 280 and by_prepare.eot_id == 279


@pytest.mark.parametrize(
    ("spec", "advice"),
    [("char", "write char:CORPUS"), ("bpe:300", "byollm tokenizer train --tokenizer bpe:300")],
)
def test_a_trained_spec_with_no_corpus_in_hand_says_what_to_do(spec, advice):
    with pytest.raises(ByollmError, match=f"no corpus here: .*{advice}"):
        load_tokenizer(spec)


def test_only_char_and_bpe_are_trained(corpus):
    with pytest.raises(ByollmError, match="'gpt2' is not trained"):
        train_tokenizer("gpt2", [corpus])


def test_compare_measures_char_on_the_compared_corpus(corpus, capsys):
    assert main(["tokenizer", "compare", "--corpus", str(corpus), "--tokenizers", "char"]) == 0
    row = capsys.readouterr().out.splitlines()[-1].split()
    assert row[:2] == ["char", str(len(set(corpus.read_text())))]  # spec, vocabulary size


def test_prepare_refuses_a_malformed_spec_before_reading_the_corpus(tmp_path):
    with pytest.raises(ByollmError, match="expected bpe:N"):
        prepare(tmp_path / "no-such-corpus", "bpe:lots", tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


def test_the_saved_tokenizer_is_named_for_byollm_not_hugging_face(corpus, tmp_path):
    prepare(corpus, "char", tmp_path / "data", progress=False)
    names = sorted(p.name for p in (tmp_path / "data").iterdir())
    assert names == ["byollm-tokenizer.json", "meta.json", "train-00000.bin", "val-00000.bin"]
    assert json.loads((tmp_path / "data" / TOKENIZER_FILE).read_text())["format"] == (
        "byollm-tokenizer"
    )
