"""The checkpoint folder's owner: which folder a path means, its config.json, atomic saves,
load_for_inference; and the shared header check and worker-pool helper."""

from __future__ import annotations

import json

import pytest
import torch

from byollm.errors import ByollmError
from byollm.formats import check_header, read_versioned_file
from byollm.model import GPT, GPTConfig, Int8Linear
from byollm.model.checkpoint import (
    load_for_inference,
    read_checkpoint_config,
    resolve_checkpoint,
    save_checkpoint,
)
from byollm.tokenizer import CharTokenizer
from byollm.workers import worker_pool

TEXT = "to be or not to be\n"


def tiny_model(vocab_size: int) -> GPT:
    torch.manual_seed(0)
    return GPT(GPTConfig(vocab_size=vocab_size, block_size=8, n_layer=1, n_head=1, n_embd=8))


@pytest.fixture
def tokenizer():
    return CharTokenizer.train(TEXT)


def save(folder, tokenizer, **extra):
    return save_checkpoint(folder, tiny_model(tokenizer.vocab_size), tokenizer, extra=extra)


def test_resolve_a_checkpoint_a_run_folder_and_the_old_twin(tmp_path, tokenizer):
    run = tmp_path / "run"
    save(run / "checkpoint", tokenizer)
    assert resolve_checkpoint(run / "checkpoint") == run / "checkpoint"
    assert resolve_checkpoint(run) == run / "checkpoint"  # no best/ yet
    save(run / "best", tokenizer)
    assert resolve_checkpoint(run) == run / "best"  # best/ preferred
    # a crash between the two renames of a save leaves only best.old
    (run / "best").rename(run / "best.old")
    assert resolve_checkpoint(run) == run / "best.old"
    assert resolve_checkpoint(run / "best") == run / "best.old"
    # what must be in the folder is the caller's choice (resuming needs train_state.pt)
    with pytest.raises(ByollmError, match="no train_state.pt"):
        resolve_checkpoint(run / "checkpoint", require="train_state.pt")


@pytest.mark.parametrize(
    ("make", "words"),
    [
        (lambda p: None, "checkpoint folder not found"),
        (lambda p: p.write_text("x"), "is a file"),
        (lambda p: p.mkdir(), "is not a checkpoint folder: no config.json"),
    ],
)
def test_resolve_names_what_is_wrong(tmp_path, make, words):
    path = tmp_path / "x"
    make(path)
    with pytest.raises(ByollmError, match=words) as error:
        resolve_checkpoint(path)
    assert "\n" not in str(error.value)


def test_one_reader_checks_the_header(tmp_path, tokenizer):
    folder = save(tmp_path / "ck", tokenizer, instruct=True)
    assert read_checkpoint_config(folder)["instruct"] is True
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "version": 2}))
    with pytest.raises(ByollmError, match="byollm-model version 2 is not supported"):
        read_checkpoint_config(folder)
    (folder / "config.json").write_text(json.dumps({"model_type": "gpt2"}))
    with pytest.raises(ByollmError, match="Hugging Face model: use `byollm convert"):
        read_checkpoint_config(folder)
    (folder / "config.json").write_text(json.dumps({**config, "sha256": "abc"}))
    with pytest.raises(ByollmError, match="'sha256' must be a table"):
        read_checkpoint_config(folder)


def test_check_header_on_a_foreign_object():
    with pytest.raises(ByollmError, match=r"f.pt: not a byollm-train-state file \(found a list\)"):
        check_header([1], "f.pt", format="byollm-train-state", version=1)
    with pytest.raises(ByollmError, match="version '1' is not supported"):
        check_header({"format": "x", "version": "1"}, "f", format="x", version=1)


def test_every_versioned_file_is_read_with_one_line_errors(tmp_path):
    path = tmp_path / "meta.json"
    with pytest.raises(ByollmError, match=r"meta.json: no data here$"):
        read_versioned_file(path, format="x", version=1, missing="no data here")
    path.write_text('{"format": "x", "version": 1')
    with pytest.raises(ByollmError, match=r"meta.json: not valid JSON \(Expecting"):
        read_versioned_file(path, format="x", version=1)
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(ByollmError, match=r"meta.json: not valid JSON"):
        read_versioned_file(path, format="x", version=1)
    with pytest.raises(ByollmError, match=r": cannot read \(Is a directory\)"):
        read_versioned_file(tmp_path, format="x", version=1)
    path.write_text('{"format": "x", "version": 3}')
    with pytest.raises(ByollmError, match=r"reads versions 1, 2; prepare it again$"):
        read_versioned_file(path, format="x", version=(1, 2), hint="; prepare it again")
    path.write_text('{"format": "x", "version": 2, "n": 5}')
    assert read_versioned_file(path, format="x", version=(1, 2))["n"] == 5


def test_load_for_inference_quantizes_when_asked(tmp_path, tokenizer):
    folder = save(tmp_path / "ck", tokenizer)
    model, loaded = load_for_inference(tmp_path / "ck", device="cpu")
    assert loaded.vocab_size == tokenizer.vocab_size and not model.training
    assert not any(isinstance(m, Int8Linear) for m in model.modules())
    model, _ = load_for_inference(folder, device="cpu", quantize="int8")
    assert any(isinstance(m, Int8Linear) for m in model.modules())
    with pytest.raises(ByollmError, match="quantize='int4' is invalid"):
        load_for_inference(folder, device="cpu", quantize="int4")


def test_save_checkpoint_adds_checksummed_files_and_refuses_reserved_names(tmp_path, tokenizer):
    model = tiny_model(tokenizer.vocab_size)
    folder = save_checkpoint(
        tmp_path / "ck", model, tokenizer, files={"notes.txt": lambda p: p.write_text("hi")}
    )
    assert sorted(read_checkpoint_config(folder)["sha256"]) == [
        "byollm-tokenizer.json",
        "model.safetensors",
        "notes.txt",
    ]
    for name in ("config.json", "model.safetensors", "../escape"):
        with pytest.raises(ByollmError, match="cannot add a file named"):
            save_checkpoint(tmp_path / "ck", model, files={name: lambda p: None})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck"]


def _square(x: int) -> int:
    return x * x


def test_worker_pool_only_when_worth_it():
    assert worker_pool(1, tasks=100) is None
    assert worker_pool(8, tasks=1) is None
    assert worker_pool(8, tasks=8, work=10, min_work=11) is None
    pool = worker_pool(2, tasks=8, work=11, min_work=11)
    assert pool is not None
    with pool:
        assert pool.map(_square, range(8)) == [x * x for x in range(8)]
