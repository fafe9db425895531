"""`byollm data list | info | get`, run in-process through `byollm.cli.main`."""

from __future__ import annotations

import socket

import pytest
from conftest import shared_mirror

from byollm.cli import main
from byollm.data.corpora import CORPORA, Corpus


def test_list_shows_every_name_with_size_and_cache_status(capsys):
    assert main(["data", "list"]) == 0
    out = capsys.readouterr().out
    for name in CORPORA:
        assert name in out
    assert "Tokenizer files" in out and "1.1 MB" in out and "public domain" in out


def test_info_shows_fields_and_status(capsys, isolated_home):
    assert main(["data", "info", "tinyshakespeare"]) == 0
    out = capsys.readouterr().out
    assert CORPORA["tinyshakespeare"].sha256 in out
    assert "1,115,394 bytes" in out and "not cached" in out
    assert str(isolated_home / "data" / "tinyshakespeare.txt") in out


def test_info_of_an_unknown_name_is_a_one_line_error(capsys):
    assert main(["data", "info", "wikitext2"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "did you mean 'wikitext-2-" in err


def test_get_through_a_mirror_then_list_shows_it_cached(capsys, tmp_path):
    mirror = shared_mirror("misc/the-verdict.txt").as_uri()
    assert main(["data", "get", "the-verdict", "--mirror", mirror]) == 0
    path = capsys.readouterr().out.strip()
    assert path.endswith("misc/the-verdict.txt")
    main(["data", "list"])
    line = next(x for x in capsys.readouterr().out.splitlines() if "the-verdict" in x)
    assert " yes " in line
    assert main(["data", "get", "the-verdict", "--out", str(tmp_path)]) == 0  # from the cache
    copied = tmp_path / "the-verdict.txt"
    assert capsys.readouterr().out.strip() == str(copied)
    assert copied.stat().st_size == CORPORA["the-verdict"].size


def test_get_several_names_into_a_new_folder(capsys, tmp_path):
    mirror = shared_mirror("gpt2/encoder.json", "gpt2/vocab.bpe")
    out = tmp_path / "assets"
    argv = ["data", "get", "gpt2-encoder", "gpt2-vocab", "--mirror", str(mirror)]
    assert main([*argv, "--out", str(out), "--no-progress"]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [str(out / "encoder.json"), str(out / "vocab.bpe")]
    assert (out / "vocab.bpe").stat().st_size == CORPORA["gpt2-vocab"].size


def test_get_python_stdlib_and_local_paths(capsys, tmp_path):
    assert main(["data", "get", "python-stdlib:10KB"]) == 0
    built = capsys.readouterr().out.strip()
    assert built.endswith("-10000B.txt")
    mine = tmp_path / "mine.txt"
    mine.write_text("hi\n")
    assert main(["data", "get", str(mine)]) == 0
    assert capsys.readouterr().out.strip() == str(mine)
    assert main(["data", "get", str(tmp_path), "--out", str(tmp_path / "x")]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_get_without_network_says_so_and_names_the_options(capsys, monkeypatch):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    toy = Corpus("toy", f"http://127.0.0.1:{port}/toy.txt", "0" * 64, 3, "CC0", "toy", "toy.txt")
    monkeypatch.setitem(CORPORA, "toy", toy)
    assert main(["data", "get", "toy"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "no network" in err and "--mirror URL" in err and "BYOLLM_MIRROR" in err


@pytest.mark.parametrize("name", ["tinyshakespeare", "python-stdlib:1MB"])
def test_info_works_for_downloads_and_built_corpora(name, capsys):
    assert main(["data", "info", name]) == 0
    assert "cache_path" in capsys.readouterr().out
