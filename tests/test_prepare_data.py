"""Data preparation: parallel, streaming, idempotent; and the batch loader on its output."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from conftest import shared_file
from full_disk import fill_disk_after

import byollm.data.prepare as prepare_module
from byollm.data.loader import BatchLoader
from byollm.data.prepare import prepare
from byollm.data.tokens import open_tokens, read_meta
from byollm.errors import ByollmError
from byollm.tokenizer import TOKENIZER_FILE, BPETokenizer, load_tokenizer


def make_corpus(folder, n_files=3, lines=400, seed=0):
    """A generated multi-file corpus with non-ASCII text (multi-byte UTF-8 at chunk edges)."""
    rng = np.random.default_rng(seed)
    words = ["to", "be", "or", "not", "thou", "art", "café", "naïve", "θάλασσα", "✓", "king"]
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n_files):
        text = "\n".join(" ".join(rng.choice(words, size=8)) for _ in range(lines)) + "\n"
        (folder / f"part{i}.txt").write_text(text, encoding="utf-8")
    return folder


def full_text(folder):
    return "".join(p.read_text(encoding="utf-8") for p in sorted(folder.glob("*.txt")))


def decoded(out, split):
    tokenizer = load_tokenizer(out / TOKENIZER_FILE)
    return tokenizer.decode(open_tokens(out, split).tolist())


def test_parallel_streaming_prepare_keeps_every_byte_in_order(tmp_path):
    corpus = make_corpus(tmp_path / "corpus")
    out = tmp_path / "data"
    # tiny chunks: dozens of ranges, two worker processes, every chunk edge inside the text
    meta = prepare(corpus, "char", out, workers=2, chunk_bytes=997, progress=False)
    text = full_text(corpus)
    assert decoded(out, "train") + decoded(out, "val") == text
    assert meta["dtype"] == "uint16"
    assert meta["splits"]["train"]["bytes"] + meta["splits"]["val"]["bytes"] == len(text.encode())
    val_share = meta["splits"]["val"]["bytes"] / meta["corpus_bytes"]
    assert 0.09 < val_share < 0.11
    assert decoded(out, "val").startswith(text.splitlines(keepends=True)[-1][:0])  # at a line start
    assert text[len(decoded(out, "train")) - 1] == "\n"
    on_disk = read_meta(out)
    assert on_disk == meta
    for key in ("version", "corpus_sha256", "tokenizer_hash", "val_fraction"):
        assert key in on_disk


def test_worker_count_does_not_change_the_output(tmp_path):
    corpus = make_corpus(tmp_path / "corpus", n_files=1)
    one = prepare(corpus, "char", tmp_path / "a", workers=1, chunk_bytes=501, progress=False)
    two = prepare(corpus, "char", tmp_path / "b", workers=2, chunk_bytes=501, progress=False)
    assert one == two
    for split in ("train", "val"):
        a = (tmp_path / "a" / f"{split}-00000.bin").read_bytes()
        assert a == (tmp_path / "b" / f"{split}-00000.bin").read_bytes()


def test_rerun_is_a_noop_and_changes_are_detected(tmp_path):
    corpus = make_corpus(tmp_path / "corpus", n_files=1)
    out = tmp_path / "data"
    prepare(corpus, "char", out, progress=False)
    stamp = (out / "train-00000.bin").stat().st_mtime_ns
    prepare(corpus, "char", out, progress=False)
    assert (out / "train-00000.bin").stat().st_mtime_ns == stamp  # nothing rewritten

    with (corpus / "part0.txt").open("a", encoding="utf-8") as f:
        f.write("a brand new line with new letters: QXZ\n")
    meta = prepare(corpus, "char", out, progress=False)
    assert "Q" in decoded(out, "val")
    assert meta["corpus_sha256"] == read_meta(out)["corpus_sha256"]

    prepare(corpus, "char", out, val_fraction=0.2, progress=False)  # a new split is a change too
    assert read_meta(out)["val_fraction"] == 0.2


def test_damaged_folder_is_rebuilt_and_loader_refuses_it(tmp_path):
    corpus = make_corpus(tmp_path / "corpus", n_files=1)
    out = tmp_path / "data"
    prepare(corpus, "char", out, progress=False)
    with (out / "val-00000.bin").open("ab") as f:
        f.write(b"\0")
    with pytest.raises(ByollmError, match="val-00000.bin"):
        open_tokens(out, "val")
    prepare(corpus, "char", out, progress=False)
    open_tokens(out, "val")


def test_large_vocabulary_uses_uint32(tmp_path):
    # more than 65,536 distinct characters: ids no longer fit in 16 bits
    chars = [chr(c) for c in range(0x4E00, 0x4E00 + 70_000) if not 0xD800 <= c <= 0xDFFF]
    text = "\n".join("".join(chars[i : i + 100]) for i in range(0, len(chars), 100)) + "\n"
    (tmp_path / "big.txt").write_text(text, encoding="utf-8")
    meta = prepare(tmp_path / "big.txt", "char", tmp_path / "data", progress=False)
    assert meta["dtype"] == "uint32"
    assert meta["vocab_size"] > 65536
    assert decoded(tmp_path / "data", "train") + decoded(tmp_path / "data", "val") == text


def test_bad_inputs_are_one_line_errors(tmp_path):
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(ByollmError, match="empty"):
        prepare(tmp_path / "empty.txt", "char", tmp_path / "d1", progress=False)
    (tmp_path / "two.txt").write_text("hi")
    with pytest.raises(ByollmError, match="too small to split"):
        prepare(tmp_path / "two.txt", "char", tmp_path / "d2", progress=False)
    (tmp_path / "one.txt").write_text("one line only, no newline to split at")
    with pytest.raises(ByollmError, match="val_fraction"):
        prepare(tmp_path / "one.txt", "char", tmp_path / "d3", val_fraction=1.5, progress=False)
    for workers in (0, -3, 10**6):
        with pytest.raises(ByollmError, match=f"workers must be between 1 and .*got {workers}"):
            prepare(tmp_path / "one.txt", "char", tmp_path / "d3", workers=workers, progress=False)
    assert not (tmp_path / "d3").exists()
    with pytest.raises(ByollmError, match="no prepared data"):
        read_meta(tmp_path / "nowhere")
    (tmp_path / "d4").mkdir()
    (tmp_path / "d4" / "meta.json").write_text(
        json.dumps({"format": "byollm-tokens", "version": 99})
    )
    with pytest.raises(ByollmError, match="version 99"):
        read_meta(tmp_path / "d4")


def test_loader_windows_are_shifted_and_deterministic():
    tokens = np.arange(1000, dtype=np.uint16)
    loader = BatchLoader(tokens, block_size=16, batch_size=4, seed=7, grad_accum=2)
    x, y = loader.batch(step=3, micro_step=1)
    assert x.shape == (4, 16) and x.dtype.is_floating_point is False
    assert (y == x + 1).all()  # arange: the target is the next token
    again = BatchLoader(tokens, block_size=16, batch_size=4, seed=7, grad_accum=2)
    assert (again.batch(3, 1)[0] == x).all()
    assert not (loader.batch(4, 1)[0] == x).all()


def test_loader_slices_one_global_batch_across_processes():
    tokens = np.arange(5000, dtype=np.uint32)
    single = BatchLoader(tokens, block_size=8, batch_size=8, seed=1, grad_accum=2)
    rows_single = {tuple(r.tolist()) for m in range(2) for r in single.batch(5, m)[0]}
    rows_ddp = set()
    for rank in range(2):
        loader = BatchLoader(
            tokens, block_size=8, batch_size=4, seed=1, grad_accum=2, rank=rank, world_size=2
        )
        rows_ddp |= {tuple(r.tolist()) for m in range(2) for r in loader.batch(5, m)[0]}
    assert rows_ddp == rows_single


def test_loader_rejects_too_short_data():
    with pytest.raises(ByollmError, match="block_size=64"):
        BatchLoader(np.arange(50, dtype=np.uint16), block_size=64, batch_size=2, seed=0)


def test_prepare_cli(tmp_path, capsys):
    from byollm.cli import main

    corpus = make_corpus(tmp_path / "corpus", n_files=1)
    assert (
        main(["prepare", "--corpus", str(corpus), "--out", str(tmp_path / "d"), "--no-progress"])
        == 0
    )
    assert "train" in capsys.readouterr().out
    assert (
        main(["prepare", "--corpus", str(tmp_path / "missing"), "--out", str(tmp_path / "e")]) == 2
    )
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "error" in err
    assert os.path.exists(tmp_path / "d" / "meta.json")


PEAK_RSS = """
import resource, sys
from byollm.data.prepare import prepare
prepare(sys.argv[1], "char", sys.argv[2], workers=1, progress=False)
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)  # Linux reports KiB
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="peak-RSS measurement is Linux-only here")
def test_memory_stays_flat_as_the_corpus_grows(tmp_path):
    # Streaming means peak memory does not grow with the corpus: preparing 40 MB must cost about
    # what preparing 1 MB costs. Holding the text (40 MB) or its ids (a list: ~300 MB) would not.
    import subprocess
    import sys

    def peak_rss(megabytes: int) -> int:
        folder = tmp_path / f"corpus-{megabytes}"
        folder.mkdir()
        line = "Thou art more lovely and more temperate, café ✓ θάλασσα\n" * 200
        block = line.encode()
        with open(folder / "big.txt", "wb") as f:
            for _ in range(megabytes * 2**20 // len(block)):
                f.write(block)
        out = subprocess.run(
            [sys.executable, "-c", PEAK_RSS, str(folder), str(tmp_path / f"data-{megabytes}")],
            capture_output=True,
            text=True,
            check=True,
        )
        return int(out.stdout.split()[-1])

    small, large = peak_rss(1), peak_rss(40)
    assert large - small < 20 * 2**20, (small, large)


# --- bad data is refused, odd data is handled, a full disk keeps the old data ------------------


@pytest.mark.parametrize(
    "data, message",
    [
        ("café au lait\n".encode("latin-1") * 20, r"is not UTF-8 text \(byte 0xe9 at offset 3\)"),
        (b"plain text\n" * 50 + b"\x00\x01\x02binary", r"is binary.*offset 550"),
        (b"cut in the middle \xe2\x9c", r"not UTF-8 text \(byte 0xe2 at offset 18\)"),
    ],
)
def test_binary_or_non_utf8_corpus_is_refused_not_mangled(tmp_path, data, message):
    (tmp_path / "corpus.txt").write_bytes(data)
    for spec in ("char", "bpe:260"):
        with pytest.raises(ByollmError, match=message) as info:
            prepare(tmp_path / "corpus.txt", spec, tmp_path / "data", progress=False)
        assert "corpus.txt" in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "data").exists()


def test_a_split_pattern_that_skips_text_is_refused(tmp_path):
    # \w+ matches words only: spaces, punctuation and newlines would vanish from the tokens
    # (40 KB became 10 tokens before this check).
    text = shared_file("misc/the-verdict.txt").read_text(encoding="utf-8")
    (tmp_path / "verdict.txt").write_text(text, encoding="utf-8")
    skipping = BPETokenizer.train(text, 300, pattern=r"\w+", progress=False)
    skipping.save(tmp_path / "words-only.json")
    with pytest.raises(ByollmError, match=r"split pattern '\\\\w\+' does not match all") as info:
        prepare(
            tmp_path / "verdict.txt", tmp_path / "words-only.json", tmp_path / "d", progress=False
        )
    assert "verdict.txt" in str(info.value)
    assert not (tmp_path / "d").exists()
    # the same text with a pattern that covers everything keeps every byte
    BPETokenizer.train(text, 300, pattern="gpt4", progress=False).save(tmp_path / "gpt4.json")
    prepare(tmp_path / "verdict.txt", tmp_path / "gpt4.json", tmp_path / "d", progress=False)
    # one document, ended by the tokenizer's <|endoftext|>
    assert (
        decoded(tmp_path / "d", "train") + decoded(tmp_path / "d", "val") == text + "<|endoftext|>"
    )


@pytest.mark.parametrize("separator", [" ", ""])
def test_a_corpus_without_newlines_is_cut_between_words_or_characters(tmp_path, separator):
    # 40 KB in one line: cut before spaces (or, with no space at all, between characters, never
    # inside one), so the ranges stay small and there is a validation split.
    rng = np.random.default_rng(1)
    words = ["thou", "art", "café", "θάλασσα", "✓", "king"]
    text = separator.join(rng.choice(words, size=8000))
    (tmp_path / "line.txt").write_text(text, encoding="utf-8")
    meta = prepare(tmp_path / "line.txt", "char", tmp_path / "d", chunk_bytes=999, progress=False)
    train, val = decoded(tmp_path / "d", "train"), decoded(tmp_path / "d", "val")
    assert train + val == text
    assert 0.09 < meta["splits"]["val"]["bytes"] / meta["corpus_bytes"] < 0.11
    if separator:
        assert val.startswith(" ")  # the split falls on a word boundary


def test_a_short_line_without_newline_still_splits(tmp_path):
    text = "one line only, no newline to split at"
    (tmp_path / "one.txt").write_text(text)
    meta = prepare(tmp_path / "one.txt", "char", tmp_path / "d", progress=False)
    assert decoded(tmp_path / "d", "val") == " at" and meta["splits"]["train"]["bytes"] == 34


def test_disk_full_keeps_the_previous_data_and_leaves_no_temporary_files(tmp_path, monkeypatch):
    corpus = make_corpus(tmp_path / "corpus", n_files=1)
    out = tmp_path / "data"
    prepare(corpus, "char", out, chunk_bytes=2000, progress=False)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    with (corpus / "part0.txt").open("a", encoding="utf-8") as f:
        f.write("new text that needs a new data folder\n")
    with pytest.MonkeyPatch.context() as full_disk:  # undone alone, not conftest's isolation
        fill_disk_after(full_disk, prepare_module, writes=3)
        with pytest.raises(ByollmError, match="No space left on device") as info:
            prepare(corpus, "char", out, chunk_bytes=2000, progress=False)
    assert "\n" not in str(info.value) and "previous data" in str(info.value)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # untouched, no temp file
    meta = prepare(corpus, "char", out, chunk_bytes=2000, progress=False)  # space again
    assert "new data folder" in decoded(out, "val")
    assert meta == read_meta(out)


def test_disk_full_on_a_first_run_leaves_no_folder(tmp_path, monkeypatch):
    corpus = make_corpus(tmp_path / "corpus", n_files=1)
    fill_disk_after(monkeypatch, prepare_module, writes=0)
    with pytest.raises(ByollmError, match="No space left on device"):
        prepare(corpus, "char", tmp_path / "new" / "data", progress=False)
    assert not (tmp_path / "new" / "data").exists()


def test_prepare_cli_expands_tilde_and_refuses_a_binary_file(tmp_path, capsys, monkeypatch):
    from byollm.cli import main

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    make_corpus(tmp_path / "corpus", n_files=1)
    argv = ["prepare", "--corpus", "~/corpus", "--out=~/prepared", "--no-progress"]
    assert main(argv) == 0
    assert (tmp_path / "prepared" / "meta.json").is_file() and not (tmp_path / "~").exists()
    (tmp_path / "blob.bin").write_bytes(bytes(range(256)) * 4)
    argv = ["prepare", "--corpus", "~/blob.bin", "--out", "~/blob-data", "--no-progress"]
    capsys.readouterr()
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "blob.bin is binary" in err


def test_prepare_never_overwrites_files_it_did_not_write(tmp_path):
    corpus = make_corpus(tmp_path / "corpus", n_files=1)
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "train.bin").write_bytes(b"someone's own binary")
    (mine / "notes.txt").write_text("keep\n")
    with pytest.raises(ByollmError, match="holds train.bin but no meta.json") as info:
        prepare(corpus, "char", mine, progress=False)
    assert "will not overwrite" in str(info.value)
    assert sorted(p.name for p in mine.iterdir()) == ["notes.txt", "train.bin"]
    assert (mine / "train.bin").read_bytes() == b"someone's own binary"
    # a folder with other files only is fine, and so is the tokenizer file being used
    (mine / "train.bin").unlink()
    prepare(corpus, "bpe:270", tmp_path / "tok-source", progress=False)
    own_tokenizer = mine / TOKENIZER_FILE
    own_tokenizer.write_bytes((tmp_path / "tok-source" / TOKENIZER_FILE).read_bytes())
    prepare(corpus, own_tokenizer, mine, progress=False)
    assert (mine / "notes.txt").read_text() == "keep\n" and (mine / "meta.json").is_file()


def test_temporary_files_of_a_killed_run_are_removed_by_the_next(tmp_path):
    corpus = make_corpus(tmp_path / "corpus", n_files=1)
    out = tmp_path / "data"
    prepare(corpus, "char", out, progress=False)
    dead = 2**22 + 12345  # above Linux's largest pid: no such process
    (out / f".train.bin.tmp-{dead}").touch()
    (out / f".{TOKENIZER_FILE}.tmp-{dead}.tmp").touch()  # Tokenizer.save's own temporary
    (out / f".tokenizer.json.tmp-{dead}").touch()  # a killed run of a byollm before the rename
    (out / f".train.bin.tmp-{os.getpid()}x").touch()  # not one of ours: left alone
    with (corpus / "part0.txt").open("a", encoding="utf-8") as f:
        f.write("more\n")
    prepare(corpus, "char", out, progress=False)
    names = sorted(p.name for p in out.iterdir())
    expected = [TOKENIZER_FILE, "meta.json", "train-00000.bin", "val-00000.bin"]
    assert names == [f".train.bin.tmp-{os.getpid()}x", *sorted(expected)]


def test_two_prepares_of_one_folder_take_turns(tmp_path):
    """A second prepare of a folder waits for the first (the kernel's lock on the folder), then
    finds the data made; before, both wrote one partial folder and one could report success
    with the token files gone."""
    import fcntl
    import threading

    corpus = tmp_path / "c.txt"
    corpus.write_text("to be or not to be, that is the question\n" * 300)
    out = tmp_path / "data"
    out.mkdir()
    holder = os.open(out, os.O_RDONLY)  # another "prepare" holding the folder
    fcntl.flock(holder, fcntl.LOCK_EX)
    results = []
    waiter = threading.Thread(
        target=lambda: results.append(prepare(corpus, "char", out, workers=1, progress=False))
    )
    waiter.start()
    waiter.join(timeout=1.0)
    assert waiter.is_alive() and list(out.iterdir()) == []  # waiting, nothing written
    os.close(holder)  # the other one finished (here: wrote nothing)
    waiter.join(timeout=60)
    assert not waiter.is_alive() and results
    assert read_meta(out)["splits"]["train"]["tokens"] > 0
    assert prepare(corpus, "char", out, workers=1, progress=False) == results[0]  # up to date


def test_concurrent_prepares_all_end_with_whole_data(tmp_path):
    import subprocess
    import sys

    corpus = tmp_path / "c.txt"
    corpus.write_text("".join(f"line {i} of a small corpus\n" for i in range(3000)))
    out = tmp_path / "data"
    code = f"from byollm.data.prepare import prepare; prepare({str(corpus)!r}, 'bpe:300', {str(out)!r}, workers=1, progress=False)"
    procs = [
        subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.PIPE) for _ in range(3)
    ]
    errors = [p.communicate(timeout=300)[1].decode() for p in procs]
    assert [p.returncode for p in procs] == [0, 0, 0], errors
    meta = read_meta(out)
    for split in ("train", "val"):
        assert len(open_tokens(out, split)) == meta["splits"][split]["tokens"] > 0


def test_out_inside_the_corpus_folder_is_refused(tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a.txt").write_text("first document\n" * 100)
    (docs / "b.txt").write_text("second document\n" * 100)
    for out in (docs, docs / "data"):  # before: each re-run read its own meta.json as text
        with pytest.raises(ByollmError, match="inside the corpus folder"):
            prepare(docs, "char", out, progress=False)
    assert sorted(p.name for p in docs.iterdir()) == ["a.txt", "b.txt"]
