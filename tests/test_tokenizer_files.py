"""Tokenizer files under stress: saving survives a full disk, damaged files give one ByollmError
(never a traceback), and ids that are not integers are refused by decode."""

from __future__ import annotations

import contextlib
import errno
import json
import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from byollm import paths
from byollm.cli import main
from byollm.errors import ByollmError
from byollm.tokenizer import BPETokenizer, CharTokenizer, Tokenizer, load_tokenizer
from byollm.tokenizer.export import to_tiktoken

TEXT = "low lower lowest, newer wider; café 😀\n" * 20


@pytest.fixture(scope="module")
def saved_payloads() -> dict[str, dict]:
    """The JSON of a valid BPE tokenizer (with merges and specials) and char tokenizer."""
    bpe = BPETokenizer.train(TEXT, 270, pattern="gpt2", progress=False)
    char = CharTokenizer.train(TEXT, special_tokens=["<|endoftext|>"], unk="?")
    return {"bpe": bpe.to_json_dict(), "char": char.to_json_dict()}


# ---- saving -------------------------------------------------------------------------------------


@pytest.mark.parametrize("failing", ["fsync", "replace"])
def test_save_on_a_full_disk_keeps_the_old_file(tmp_path, monkeypatch, failing):
    path = tmp_path / "tok.json"
    old = CharTokenizer.train("abc")
    old.save(path)
    before = path.read_bytes()

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    with pytest.MonkeyPatch.context() as patch:  # undone alone, not conftest's isolation
        patch.setattr(paths.os, failing, disk_full)
        with pytest.raises(ByollmError, match="No space left on device") as info:
            CharTokenizer.train("abcdef").save(path)
        message = str(info.value)
        assert "\n" not in message and "tok.json" in message and "unchanged" in message
        with pytest.raises(ByollmError, match="No space left"):  # the exports share the writer
            to_tiktoken(BPETokenizer.train("ab ab", 258, progress=False), tmp_path / "x.tiktoken")
        assert path.read_bytes() == before
        assert sorted(p.name for p in tmp_path.iterdir()) == ["tok.json"]  # no temporary file left
    assert load_tokenizer(path).content_hash == old.content_hash


def test_save_into_a_file_that_is_a_folder(tmp_path):
    (tmp_path / "tok.json").mkdir()
    with pytest.raises(ByollmError, match="cannot write tokenizer file"):
        CharTokenizer.train("abc").save(tmp_path / "tok.json")
    assert [p.name for p in tmp_path.iterdir()] == ["tok.json"]


# ---- loading damaged files ----------------------------------------------------------------------

JUNK = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.sampled_from([-1, 0, 255, 256, 2**31, 2**64, 10**30, "", "AA==", "<|endoftext|>", "gpt2"])
    | st.floats()
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=4), inner, max_size=3)
    ),
    max_leaves=6,
)


def _paths(node, prefix=()):
    """Every place in a JSON tree, as a tuple of keys and indexes."""
    yield prefix
    children = (
        node.items()
        if isinstance(node, dict)
        else enumerate(node)
        if isinstance(node, list)
        else ()
    )
    for key, child in children:
        yield from _paths(child, (*prefix, key))


def _mutate(data, draw):
    """Replace, delete or add one field somewhere in the tree."""
    path = draw(st.sampled_from(list(_paths(data))[1:]))
    *parents, last = path
    node = data
    for key in parents:
        node = node[key]
    action = draw(st.sampled_from(["replace", "delete", "add"]))
    if action == "delete" and isinstance(node, dict):
        del node[last]
    elif action == "add" and isinstance(node, (dict, list)):
        target = node[last]
        if isinstance(target, dict):
            target[draw(st.text(max_size=6))] = draw(JUNK)
        elif isinstance(target, list):
            target.append(draw(JUNK))
        else:
            node[last] = [target, draw(JUNK)]
    else:
        node[last] = draw(JUNK)


def _load_and_use(path):
    """Load; if that works the tokenizer must also encode and decode (or refuse with ByollmError)."""
    try:
        tok = load_tokenizer(path)
    except ByollmError as e:
        assert "\n" not in str(e) and path.name in str(e)
        return None
    assert isinstance(tok, Tokenizer)
    with contextlib.suppress(ByollmError):  # e.g. a character the vocabulary lacks
        tok.decode(tok.encode("lower café"))
    return tok


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data(), kind=st.sampled_from(["bpe", "char"]), keep_hash=st.booleans())
def test_mutated_tokenizer_files_load_or_give_one_error(
    tmp_path, saved_payloads, data, kind, keep_hash
):
    payload = json.loads(json.dumps(saved_payloads[kind]))
    if not keep_hash:  # without the hash every edit reaches the field checks (and may load)
        del payload["content_hash"]
    for _ in range(data.draw(st.integers(1, 3))):
        _mutate(payload, data.draw)
    path = tmp_path / "mutated.json"
    path.write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")
    _load_and_use(path)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(data=st.data(), kind=st.sampled_from(["bpe", "char"]))
def test_corrupted_bytes_load_or_give_one_error(tmp_path, saved_payloads, data, kind):
    raw = bytearray(json.dumps(saved_payloads[kind], ensure_ascii=False).encode())
    for _ in range(data.draw(st.integers(1, 4))):
        position = data.draw(st.integers(0, len(raw) - 1))
        raw[position : position + 1] = data.draw(st.binary(min_size=0, max_size=3))
    path = tmp_path / "corrupted.json"
    path.write_bytes(bytes(raw))
    _load_and_use(path)


def _file(tmp_path, payload, **changes):
    data = {key: value for key, value in payload.items() if key != "content_hash"}
    data.update(changes)
    path = tmp_path / "edited.json"
    path.write_text(json.dumps(data), encoding="utf-8")
    return path


@pytest.mark.parametrize(
    ("kind", "changes", "message"),
    [
        ("bpe", {"merges": 5}, "'merges' must be a list"),
        ("bpe", {"merges": [["1", "2"]]}, "'merges' entry 0"),
        ("bpe", {"merges": [[108, 111]] * 3}, "does not join"),
        ("bpe", {"vocab": {"a": 1}}, "'vocab' must be a list"),
        ("bpe", {"vocab": ["AA==", 7]}, "vocab entry 1"),
        ("bpe", {"vocab": [""]}, "vocab entry 0 is empty"),
        ("bpe", {"pattern": ["gpt2"]}, "'pattern' must be"),
        ("bpe", {"pattern": "gpt5"}, "unknown pattern"),
        ("bpe", {"special_tokens": {"<|endoftext|>": -1}}, "bad special token"),
        ("bpe", {"special_tokens": {"<|endoftext|>": "269"}}, "bad special token"),
        ("bpe", {"special_tokens": {"<|endoftext|>": True}}, "bad special token"),
        ("bpe", {"special_tokens": {"<|endoftext|>": 10**30}}, "bad special token"),
        ("bpe", {"special_tokens": [1]}, "special_tokens must be an object"),
        ("bpe", {"version": True}, "version True"),
        ("bpe", {"version": 1.0}, "version 1.0"),
        ("bpe", {"type": ["bpe"]}, "unknown type"),
        ("bpe", {"content_hash": 12}, "'content_hash' must be a string"),
        ("char", {"chars": "abc"}, "'chars' must be a list"),
        ("char", {"chars": ["ab", "c"]}, "single characters"),
        ("char", {"unk": ["?"]}, "'unk' must be"),
        ("char", {"chars": ["\ud800"], "unk": None, "special_tokens": {}}, "malformed"),
    ],
)
def test_wrong_field_types_name_the_field(tmp_path, saved_payloads, kind, changes, message):
    with pytest.raises(ByollmError, match=message) as info:
        load_tokenizer(_file(tmp_path, saved_payloads[kind], **changes))
    assert "edited.json" in str(info.value) and "\n" not in str(info.value)


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff\xfe{}",
        b'{"format": "byollm-tokenizer", "version": 1, "x": "\xc3"}',
        b"[" * 100_000,
        b'{"version": ' + b"9" * 5000 + b"}",
        b'{"version": 1e400}',
    ],
)
def test_unreadable_json_is_one_error(tmp_path, raw):
    path = tmp_path / "raw.json"
    path.write_bytes(raw)
    with pytest.raises(ByollmError, match="raw.json"):
        load_tokenizer(path)


# ---- decoding ids that are not ids --------------------------------------------------------------


@pytest.mark.parametrize("bad", [1e400, 1.0, float("nan"), True, "5", None, [3]])
def test_decode_refuses_what_is_not_an_integer(bad):
    tok = BPETokenizer({bytes([b]): b for b in range(256)}, pattern="gpt2")
    with pytest.raises(ByollmError, match="is not an integer"):
        tok.decode([104, bad])
    with pytest.raises(ByollmError, match="is not an integer"):
        tok.token_bytes(bad)
    assert not tok.is_valid_id(bad)
    with pytest.raises(ByollmError, match="sequence of integers"):
        tok.decode("104")


def test_decode_accepts_integer_types_and_unknown_ids_become_replacement():
    tok = CharTokenizer.train("hi")
    assert tok.decode(np.array([0, 1])) == tok.decode([np.int64(0), 1]) == "hi"
    assert tok.decode([10**100, -1]) == "\ufffd\ufffd"  # integers outside the vocabulary


@pytest.mark.parametrize(
    "ids",
    [
        "[1e400]",
        "[1.5]",
        "[true]",
        "[-1]",
        "1e400",
        "-3",
        "1_0",
        "[" * 5000,
        "[" + "9" * 5000 + "]",
    ],
)
def test_cli_decode_bad_ids_is_one_line(tmp_path, capsys, ids):
    path = CharTokenizer.train("hi").save(tmp_path / "tok.json")
    assert main(["tokenizer", "decode", "--tokenizer", str(path), ids]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert main(["tokenizer", "decode", "--tokenizer", str(path), "10" + "0" * 30]) == 2
    assert "not in the vocabulary" in capsys.readouterr().err
