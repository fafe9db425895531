"""The corpus registry: names, local paths, the offline python-stdlib corpus, mirrors, repairs."""

from __future__ import annotations

import hashlib
import socket

import pytest
from conftest import SHARED_DATA
from data_server import LoopbackServer

from byollm.corpora import registry
from byollm.corpora.registry import (
    CORPORA,
    Corpus,
    OfflineError,
    build_python_stdlib,
    corpus_files,
    corpus_info,
    get_asset,
    get_corpus,
    parse_size,
    read_corpus_text,
)
from byollm.download import sha256_file
from byollm.errors import ByollmError

UNPINNED = {"tinystories", "fineweb-edu-sample", "wikitext-103", "enwik8"}
TEXT = "To be, or not to be: that is the question.\n" * 50
TEXT_SHA = hashlib.sha256(TEXT.encode()).hexdigest()


@pytest.fixture
def refused_origin():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def toy_corpus(monkeypatch, refused_origin):
    """A registered corpus whose origin refuses connections (so only a mirror can serve it)."""
    corpus = Corpus(
        "toy",
        f"{refused_origin}/origin/toy.txt",
        TEXT_SHA,
        len(TEXT),
        "CC0",
        "a toy corpus",
        "toys/toy.txt",
    )
    monkeypatch.setitem(CORPORA, "toy", corpus)
    return corpus


# --- the registry itself -----------------------------------------------------------------------


def test_registry_has_the_required_names_and_sane_records():
    required = {
        "tinyshakespeare",
        "the-verdict",
        "wikitext-2-valid",
        "wikitext-2-test",
        "tinystories-sample",
        "instruction-data",
        "alpaca-sample-23",
        "sms-spam",
        "gpt2-encoder",
        "gpt2-vocab",
        "r50k_base",
        "p50k_base",
        "cl100k_base",
        "o200k_base",
        "python-stdlib",
        "python-stdlib-with-tests",
        "shakespeare-complete",
        "tinystories",
        "fineweb-edu-sample",
        "wikitext-103",
        "enwik8",
    }
    assert required <= set(CORPORA)
    shakespeare = CORPORA["tinyshakespeare"]
    assert shakespeare.size == 1_115_394
    assert shakespeare.sha256 == "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed"
    assert "karpathy/char-rnn" in shakespeare.url and shakespeare.url.endswith("input.txt")
    for corpus in CORPORA.values():
        assert corpus.kind in registry.KINDS and corpus.license and corpus.description
        if corpus.url:
            # pinned to a git commit, except files whose publishers serve them elsewhere
            outside_git = {"arc", "piqa", "lambada-openai", "shakespeare-complete", *UNPINNED}
            github = corpus.url.startswith("https://raw.githubusercontent.com/")
            assert github != (corpus.name in outside_git) and corpus.url.startswith("https://")
            if corpus.name in UNPINNED:  # no published sha256: recorded on first download
                assert corpus.sha256 == ""
            else:
                assert len(corpus.sha256) == 64 and corpus.size > 0
            assert corpus.filename == corpus.mirror_path.rsplit("/", 1)[-1]
    assert {c.name for c in CORPORA.values() if c.kind == "tokenizer"} == {
        "gpt2-encoder",
        "gpt2-vocab",
        "r50k_base",
        "p50k_base",
        "cl100k_base",
        "o200k_base",
    }
    evals = {c.name for c in CORPORA.values() if c.kind == "eval"}
    assert evals == {
        "blimp",
        "blimp-paper-results",
        "hellaswag-val",
        "arc",
        "piqa",
        "lambada-openai",
    }
    assert CORPORA["lambada-openai"].size == 1_819_752  # the sizes their publishers list
    assert CORPORA["hellaswag-val"].size == 12_246_618


@pytest.mark.parametrize("name", [n for n, c in CORPORA.items() if c.url])
def test_shared_data_matches_the_registry_through_a_file_mirror(name, isolated_home):
    corpus = CORPORA[name]
    if not (SHARED_DATA / corpus.mirror_path).is_file():
        pytest.skip(f"needs {corpus.mirror_path} from the shared data folder, absent here")
    path = get_asset(name, mirror=SHARED_DATA.as_uri(), progress=False)
    assert path == isolated_home / "data" / corpus.mirror_path
    assert path.stat().st_size == corpus.size and sha256_file(path) == corpus.sha256


# --- names, mirrors and the offline error ------------------------------------------------------


def test_registered_name_through_an_http_mirror_then_from_cache(toy_corpus, tmp_path):
    (tmp_path / "toys").mkdir()
    (tmp_path / "toys" / "toy.txt").write_text(TEXT)
    server = LoopbackServer(tmp_path)
    try:
        path = get_corpus("toy", mirror=server.url, progress=False)
    finally:
        server.stop()
    assert path == toy_corpus.cache_path() and path.read_text() == TEXT
    assert server.requests == [("toys/toy.txt", None)]
    assert get_corpus("toy", progress=False) == path  # cached: no server, no mirror needed
    assert read_corpus_text("toy") == TEXT
    assert corpus_info("toy")["status"] == "cached (sha256 verified)"


def test_unreachable_corpus_raises_offline_error(toy_corpus):
    assert corpus_info("toy")["status"] == "not cached"
    with pytest.raises(OfflineError, match="--mirror"):
        get_corpus("toy", progress=False)


def test_mirror_from_environment_is_used_by_get_corpus(toy_corpus, tmp_path, monkeypatch):
    (tmp_path / "toys").mkdir()
    (tmp_path / "toys" / "toy.txt").write_text(TEXT)
    monkeypatch.setenv("BYOLLM_MIRROR", str(tmp_path))  # a plain folder works as a mirror
    assert get_corpus("toy", progress=False).read_text() == TEXT


def test_published_bytes_are_checked_then_repaired(monkeypatch, tmp_path):
    published = "Label\tSMS\n" + TEXT  # like the sms-spam source: one extra header line
    (tmp_path / "origin.txt").write_text(published)
    server = LoopbackServer(tmp_path)
    corpus = Corpus(
        "repaired",
        f"{server.url}/origin.txt",
        TEXT_SHA,
        len(TEXT),
        "CC0",
        "needs a repair",
        "fixed/repaired.txt",
        origin_sha256=hashlib.sha256(published.encode()).hexdigest(),
        repair="drop-first-line",
    )
    monkeypatch.setitem(CORPORA, "repaired", corpus)
    try:
        path = get_corpus("repaired", progress=False)
    finally:
        server.stop()
    assert path.read_text() == TEXT
    assert sorted(p.name for p in path.parent.iterdir() if not p.name.startswith(".")) == [
        "repaired.txt"
    ]


def test_unknown_name_lists_names_and_suggests_the_closest():
    with pytest.raises(ByollmError) as info:
        get_corpus("tinyshakespear")
    message = str(info.value)
    assert "did you mean 'tinyshakespeare'" in message
    assert "wikitext-2-valid" in message and "python-stdlib" in message


def test_get_asset_rejects_unknown_names_and_paths(tmp_path):
    with pytest.raises(ByollmError, match="did you mean 'cl100k_base'"):
        get_asset("cl100k")
    with pytest.raises(ByollmError, match="unknown asset"):
        get_asset(str(tmp_path))


# --- local paths -------------------------------------------------------------------------------


def test_local_file_is_passed_through(tmp_path):
    path = tmp_path / "mine.txt"
    path.write_text("hello\n")
    assert get_corpus(path) == path
    assert get_corpus(str(path)) == path
    assert corpus_files(str(path)) == [path]
    assert read_corpus_text(path) == "hello\n"


def test_local_folder_gives_its_text_files_in_sorted_order(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "2.txt").write_text("two")
    (tmp_path / "a.md").write_text("one\n")
    (tmp_path / "c").write_text("three\n")  # no suffix: still text
    (tmp_path / ".hidden.txt").write_text("secret\n")
    (tmp_path / "image.bin").write_bytes(b"\x89PNG\0\0\0")
    assert [p.relative_to(tmp_path).as_posix() for p in corpus_files(tmp_path)] == [
        "a.md",
        "b/2.txt",
        "c",
    ]
    assert read_corpus_text(tmp_path) == "one\ntwo\nthree\n"


def test_missing_paths_empty_folders_and_bad_encodings_are_user_errors(tmp_path):
    with pytest.raises(ByollmError, match="no such file or folder"):
        get_corpus(tmp_path / "absent.txt")
    with pytest.raises(ByollmError, match="no such file or folder"):
        get_corpus("./absent/corpus.txt")
    with pytest.raises(ByollmError, match="holds no text files"):
        corpus_files(tmp_path)
    latin1 = tmp_path / "latin1.txt"
    latin1.write_bytes("café\n".encode("latin-1"))
    with pytest.raises(ByollmError, match=r"latin1\.txt is not UTF-8"):
        read_corpus_text(latin1)


# --- python-stdlib -----------------------------------------------------------------------------


def test_python_stdlib_respects_the_size_and_is_deterministic(isolated_home):
    path = get_corpus("python-stdlib:20KB")
    data = path.read_bytes()
    assert 15_000 < len(data) <= 20_000
    text = data.decode("utf-8")
    assert text.startswith("# file: ") and text.endswith("\n")
    headers = [line[len("# file: ") :] for line in text.splitlines() if line.startswith("# file: ")]
    assert headers == sorted(headers) and "site-packages" not in text
    path.unlink()
    assert build_python_stdlib(20_000).read_bytes() == data  # rebuilt: same bytes
    assert get_corpus("python-stdlib:20000") == path  # same size, same cache entry
    assert corpus_info("python-stdlib:20KB")["status"] == "built"


def test_python_stdlib_without_a_limit_holds_no_tests_or_packages():
    text = read_corpus_text("python-stdlib")
    files = [line[len("# file: ") :] for line in text.splitlines() if line.startswith("# file: ")]
    assert "os.py" in files and "json/decoder.py" in files
    assert not any(f.startswith(("test/", "site-packages/")) for f in files)
    assert len(text) > 1_000_000


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("5MB", 5_000_000),
        ("64KiB", 65_536),
        ("1.5kb", 1500),
        ("1000", 1000),
        ("2 GB", 2_000_000_000),
        ("all", None),
        ("", None),
    ],
)
def test_parse_size(text, size):
    assert parse_size(text) == size


@pytest.mark.parametrize("bad", ["lots", "5XB", "0", "-3MB"])
def test_bad_sizes_are_user_errors(bad):
    with pytest.raises(ByollmError, match="bad size"):
        get_corpus(f"python-stdlib:{bad}")


def test_text_is_read_exactly_without_newline_translation(tmp_path):
    path = tmp_path / "crlf.txt"
    path.write_bytes(b"line one\r\nline two\r\n")
    assert read_corpus_text(path) == "line one\r\nline two\r\n"


def test_text_blocks_name_the_exact_offset_of_the_first_bad_byte(tmp_path):
    from byollm.corpora import read_text_blocks

    good = "naïve café ✓ θάλασσα\n" * 30  # multi-byte characters cut by every block edge
    path = tmp_path / "t.txt"
    path.write_bytes(good.encode())
    for block in (1, 2, 3, 7, 4096):
        blocks = list(read_text_blocks(path, block))
        assert b"".join(raw for raw, _ in blocks) == good.encode()
        assert "".join(text for _, text in blocks) == good
    bad_at = len(good.encode()) - 5
    data = bytearray(good.encode())
    data[bad_at] = 0xFF
    path.write_bytes(bytes(data))
    for block in (1, 3, 7, 4096):
        with pytest.raises(ByollmError, match=f"byte 0xff at offset {bad_at}"):
            list(read_text_blocks(path, block))
    path.write_bytes(good.encode()[:-2])  # ends inside a character
    with pytest.raises(ByollmError, match=f"offset {len(good.encode()) - 3}"):
        list(read_text_blocks(path, 5))


def test_read_corpus_text_refuses_binary_files_as_the_streaming_reader_does(tmp_path):
    (tmp_path / "blob.txt").write_bytes(b"looks like text\x00\x00\x00")
    with pytest.raises(
        ByollmError, match=r"blob\.txt is binary, not text \(a NUL byte at offset 15"
    ):
        read_corpus_text(tmp_path / "blob.txt")
