"""`byollm data list | info | get`, run in-process through `byollm.cli.main`."""

from __future__ import annotations

import errno
import os
import socket

import pytest
from conftest import shared_mirror
from full_disk import fill_disk_after
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from byollm.cli import main
from byollm.corpora import CORPORA, Corpus


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
    assert err.count("\n") == 1 and "did you mean 'wikitext-" in err


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


# --- --out never replaces a user's file; ~ works; a full disk; malformed mirrors ---------------


def test_get_out_refuses_a_different_file_unless_told(capsys, tmp_path):
    source = tmp_path / "corpus.txt"
    source.write_text("the corpus\n")
    mine = tmp_path / "notes.txt"
    mine.write_text("my own notes\n")
    assert main(["data", "get", str(source), "--out", str(mine)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "exists and differs" in err and "--overwrite" in err
    assert mine.read_text() == "my own notes\n"

    assert main(["data", "get", str(source), "--out", str(mine), "--overwrite"]) == 0
    assert mine.read_text() == "the corpus\n"
    stamp = mine.stat().st_mtime_ns
    assert main(["data", "get", str(source), "--out", str(mine)]) == 0  # same bytes: no-op
    assert mine.stat().st_mtime_ns == stamp
    assert sorted(p.name for p in tmp_path.iterdir()) == ["corpus.txt", "notes.txt"]


def test_get_several_names_checks_every_target_before_copying(capsys, tmp_path):
    a, b = tmp_path / "a.txt", tmp_path / "b.txt"
    a.write_text("a\n")
    b.write_text("b\n")
    out = tmp_path / "out"
    out.mkdir()
    (out / "b.txt").write_text("someone else's b\n")
    assert main(["data", "get", str(a), str(b), "--out", str(out)]) == 2
    assert "b.txt exists and differs" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["b.txt"]  # a.txt was not copied either
    assert main(["data", "get", str(a), str(b), "--out", str(a)]) == 2
    assert "must be a folder" in capsys.readouterr().err
    assert a.read_text() == "a\n"


def test_tilde_in_out_means_the_home_folder(capsys, tmp_path, monkeypatch):
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    source = tmp_path / "c.txt"
    source.write_text("text\n")
    assert main(["data", "get", str(source), "--out=~/copies/c.txt"]) == 0
    assert (home / "copies" / "c.txt").read_text() == "text\n"
    assert not (tmp_path / "~").exists()
    assert main(["data", "get", "~/copies/c.txt"]) == 0  # a corpus path with ~ as well
    assert capsys.readouterr().out.split()[-1] == str(home / "copies" / "c.txt")


def test_disk_full_while_copying_keeps_the_old_file_and_no_temporary(capsys, tmp_path, monkeypatch):
    import byollm.corpora.cli as data_cli

    source, target = tmp_path / "new.txt", tmp_path / "out.txt"
    source.write_text("new content\n" * 100)
    target.write_text("old content\n")

    def copy_until_full(src, dst):
        with open(dst, "wb") as f:
            f.write(b"new co")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(dst))

    monkeypatch.setattr(data_cli.shutil, "copyfile", copy_until_full)
    assert main(["data", "get", str(source), "--out", str(target), "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No space left on device" in err and str(target) in err
    assert target.read_text() == "old content\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["new.txt", "out.txt"]


def test_disk_full_while_building_python_stdlib_leaves_nothing(capsys, monkeypatch):
    from byollm.corpora import registry

    fill_disk_after(monkeypatch, registry, writes=0)
    assert main(["data", "get", "python-stdlib:10KB"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "No space left on device" in err
    folder = registry.data_home() / "python-stdlib"
    assert list(folder.iterdir()) == []


@pytest.mark.parametrize(
    "mirror", ["htp://x", "file:", "", "http://[::1", "http://my mirror/", "http://h:port/"]
)
def test_get_with_a_malformed_mirror_is_one_line(mirror, capsys):
    assert main(["data", "get", "tinyshakespeare", f"--mirror={mirror}"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "mirror" in err and repr(mirror) in err


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(mirror=st.text(max_size=40) | st.from_regex(r"\A(https?|file|htp):/{0,3}\S{0,20}\Z"))
def test_any_mirror_string_gives_a_path_or_one_error_line(mirror, capsys, tmp_path, monkeypatch):
    """Whatever --mirror holds: exit 0 or 2, and on 2 exactly one line on stderr."""

    def no_network(host, *args, **kwargs):  # what a machine without network answers
        if isinstance(host, str):
            host.encode("idna")  # the real resolver rejects invalid names the same way
        raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")

    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    monkeypatch.chdir(tmp_path)
    capsys.readouterr()
    code = main(["data", "get", "the-verdict", f"--mirror={mirror}", "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("byollm data: error:"), err


def test_out_with_a_trailing_slash_is_a_folder(capsys, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    source = tmp_path / "c.txt"
    source.write_text("text\n")
    assert main(["data", "get", str(source), "--out", "copies/"]) == 0
    assert (tmp_path / "copies" / "c.txt").read_text() == "text\n"  # not a file named "copies"
    (tmp_path / "notes").write_text("mine\n")
    assert main(["data", "get", str(source), "--out", "notes/"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "notes is a file" in err
    assert (tmp_path / "notes").read_text() == "mine\n"
