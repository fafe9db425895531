"""`byollm tokenizer ...`: the verbs, their output formats, pipes and one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import shared_file, shared_mirror

from byollm.cli import main

GPT2_FILES = ("gpt2/encoder.json", "gpt2/vocab.bpe")


@pytest.fixture
def mirror(monkeypatch):
    folder = shared_mirror(*GPT2_FILES, "tiktoken/cl100k_base.tiktoken")
    monkeypatch.setenv("BYOLLM_MIRROR", folder.as_uri())


def test_encode_prints_ids_on_one_line(mirror, capsys):
    assert main(["tokenizer", "encode", "--tokenizer", "gpt2", "Hello world"]) == 0
    assert capsys.readouterr().out == "15496 995\n"
    assert main(["tokenizer", "encode", "--tokenizer", "gpt2", "--json", "Hello world"]) == 0
    assert json.loads(capsys.readouterr().out) == [15496, 995]


def test_decode_writes_exact_text(mirror, capsysbinary):
    assert main(["tokenizer", "decode", "--tokenizer", "gpt2", "15496 995"]) == 0
    assert capsysbinary.readouterr().out == b"Hello world"  # no newline added


def test_encode_decode_files(mirror, tmp_path, capsysbinary):
    text = "two\nlines 😀\n"
    (tmp_path / "in.txt").write_text(text, encoding="utf-8")
    main(["tokenizer", "encode", "--tokenizer", "cl100k_base", "--file", str(tmp_path / "in.txt")])
    (tmp_path / "ids.txt").write_bytes(capsysbinary.readouterr().out)
    main(["tokenizer", "decode", "--tokenizer", "cl100k_base", "--file", str(tmp_path / "ids.txt")])
    assert capsysbinary.readouterr().out == text.encode()


def test_pipe_round_trip(tmp_path):
    env = {
        **os.environ,
        "BYOLLM_MIRROR": shared_mirror(*GPT2_FILES).as_uri(),
        "BYOLLM_HOME": str(tmp_path),
        "PYTHONPATH": str(Path(__file__).parents[1] / "src"),
    }
    byollm = f"{sys.executable} -m byollm tokenizer"
    text = "Tabs\tand  spaces, émoji 😀\n\nend"
    result = subprocess.run(
        f"{byollm} encode --tokenizer gpt2 | {byollm} decode --tokenizer gpt2",
        shell=True,
        input=text.encode(),
        capture_output=True,
        env=env,
        check=True,
    )
    assert result.stdout == text.encode()


def test_train_show_and_compare(tmp_path, capsys):
    corpus = shared_file("tinyshakespeare.txt")
    out = tmp_path / "tok.json"
    assert (
        main(
            [
                "tokenizer",
                "train",
                "--corpus",
                str(corpus),
                "--vocab-size",
                "300",
                "--pattern",
                "gpt2",
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    assert json.loads(out.read_text())["type"] == "bpe"
    capsys.readouterr()
    assert main(["tokenizer", "show", "--tokenizer", str(out), "--color", "never", "the king"]) == 0
    shown = capsys.readouterr().out
    assert shown.startswith("[") and "bytes/token" in shown
    assert (
        main(
            [
                "tokenizer",
                "compare",
                "--corpus",
                str(corpus),
                "--max-chars",
                "20000",
                "--tokenizers",
                str(out),
                f"char:{corpus}",
            ]
        )
        == 0
    )
    table = capsys.readouterr().out
    assert "tok.json" in table and "char:" in table


def test_train_char(tmp_path):
    corpus = shared_file("tinyshakespeare.txt")
    out = tmp_path / "char.json"
    assert (
        main(
            [
                "tokenizer",
                "train",
                "--tokenizer",
                "char",
                "--corpus",
                str(corpus),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    saved = json.loads(out.read_text())
    assert len(saved["chars"]) == 65 and saved["special_tokens"] == {}  # char: no specials


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["train", "--corpus", "{corpus}", "--vocab-size", "100", "--out", "x.json"], "too small"),
        (
            [
                "train",
                "--corpus",
                "{corpus}",
                "--vocab-size",
                "300",
                "--pattern",
                "gpt9",
                "--out",
                "x.json",
            ],
            "unknown pattern",
        ),
        (
            ["train", "--corpus", "{empty}", "--vocab-size", "300", "--out", "x.json"],
            "empty corpus",
        ),
        (
            ["train", "--corpus", "{tmp}/nope.txt", "--vocab-size", "300", "--out", "x.json"],
            "nope.txt",
        ),
        (["encode", "--tokenizer", "{tmp}/missing.json", "hi"], "missing.json does not exist"),
        (["encode", "--tokenizer", "{broken}", "hi"], "broken.json is not valid JSON"),
        (["encode", "--tokenizer", "gpt3", "hi"], "unknown tokenizer 'gpt3'"),
        (["encode", "--tokenizer", "char", "hi"], "no corpus here: write char:CORPUS"),
        (
            ["train", "--corpus", "{corpus}", "--tokenizer", "bpe:x", "--out", "x.json"],
            "expected bpe:N",
        ),
        (
            ["train", "--corpus", "{corpus}", "--tokenizer", "gpt2", "--out", "x.json"],
            "train takes bpe:N or char",
        ),
        (["decode", "--tokenizer", "{char}", "1 x"], "not a token id: 'x'"),
        (["decode", "--tokenizer", "{char}", "2 1000"], "token id 1000 is not in the vocabulary"),
        (["encode", "--tokenizer", "{char}", "--file", "{tmp}/latin1.txt"], "not UTF-8"),
        (["encode", "--tokenizer", "{char}", "xyz"], "'x' .* is not in this character vocabulary"),
    ],
)
def test_bad_input_is_one_line_exit_2(tmp_path, capsys, argv, message):
    (tmp_path / "empty.txt").write_text("")
    (tmp_path / "broken.json").write_text("{oops")
    (tmp_path / "latin1.txt").write_bytes("café".encode("latin-1"))
    from byollm.tokenizer import CharTokenizer

    CharTokenizer.train("abc").save(tmp_path / "char.json")
    values = {
        "corpus": "{corpus}",
        "tmp": str(tmp_path),
        "empty": str(tmp_path / "empty.txt"),
        "broken": str(tmp_path / "broken.json"),
        "char": str(tmp_path / "char.json"),
    }
    if any("{corpus}" in a for a in argv):
        values["corpus"] = str(shared_file("misc/the-verdict.txt"))
    argv = [a.format(**values) for a in argv]
    assert main(["tokenizer", *argv, *(["--no-progress"] if argv[0] == "train" else [])]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("byollm tokenizer: error:")
    import re

    assert re.search(message, err), err


def test_train_on_a_jsonl_corpus_learns_its_text_field_not_the_json(tmp_path):
    corpus = tmp_path / "stories.jsonl"
    records = [{"id": i, "text": f"once upon a time {i}"} for i in range(40)]
    corpus.write_text("".join(json.dumps(r) + "\n" for r in records))
    out = tmp_path / "char.json"
    args = ["tokenizer", "train", "--tokenizer", "char", "--corpus", str(corpus)]
    assert main([*args, "--out", str(out), "--no-progress"]) == 0
    from byollm.tokenizer import load_tokenizer

    tokenizer = load_tokenizer(out)
    learnt = {tokenizer.decode([i]) for i in range(tokenizer.vocab_size)}
    assert set("once upon a time 0123456789") <= learnt
    assert not learnt & set('{}":,')  # the JSON syntax and the other fields are not text
    # the documents' text went to a temporary folder, gone with it
    assert set(os.listdir(tmp_path)) == {"stories.jsonl", "char.json"}


def test_train_out_never_replaces_a_users_file_or_its_corpus(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the quick brown fox jumps over the lazy dog\n" * 50)
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    for out in (notes, corpus):  # before: both were overwritten with the tokenizer's JSON
        assert main(["tokenizer", "train", "--corpus", str(corpus), "--vocab-size", "270",
                     "--out", str(out), "--no-progress"]) == 2  # fmt: skip
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "is not a byollm-tokenizer file" in err, err
    assert notes.read_text() == "my notes\n" and corpus.read_text().startswith("the quick")
    tok = tmp_path / "tok.json"
    for _ in range(2):  # a new file, then byollm's own file replaced
        assert main(["tokenizer", "train", "--corpus", str(corpus), "--vocab-size", "270",
                     "--out", str(tok), "--no-progress"]) == 0  # fmt: skip
    assert json.loads(tok.read_text())["format"] == "byollm-tokenizer"
