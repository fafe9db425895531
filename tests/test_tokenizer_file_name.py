"""byollm's tokenizer file is `byollm-tokenizer.json`; folders that hold the old `tokenizer.json`
(checkpoints and prepared data written before the rename) keep working."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
import train_helpers

from byollm.data.prepare import prepare
from byollm.errors import ByollmError
from byollm.model import GPT, GPTConfig, load_model
from byollm.model.checkpoint import load_for_inference
from byollm.tokenizer import (
    LEGACY_TOKENIZER_FILE,
    TOKENIZER_FILE,
    CharTokenizer,
    find_tokenizer_file,
)
from byollm.train import checkpoint as ckpt
from byollm.train import train


def test_the_new_name_first_the_old_second_the_new_when_neither(tmp_path):
    assert find_tokenizer_file(tmp_path) == tmp_path / TOKENIZER_FILE  # an error names this one
    (tmp_path / LEGACY_TOKENIZER_FILE).write_text("{}")
    assert find_tokenizer_file(tmp_path) == tmp_path / LEGACY_TOKENIZER_FILE
    (tmp_path / TOKENIZER_FILE).write_text("{}")
    assert find_tokenizer_file(tmp_path) == tmp_path / TOKENIZER_FILE
    assert TOKENIZER_FILE != "tokenizer.json"  # the name Hugging Face tools read as theirs


@pytest.fixture
def old_checkpoint(tmp_path):
    """A checkpoint as byollm wrote it before: `tokenizer.json`, its sha256 under that name."""
    tokenizer = CharTokenizer.train("abcde")
    torch.manual_seed(0)
    model = GPT(GPTConfig(vocab_size=5, block_size=8, n_layer=1, n_head=1, n_embd=8))
    state = {"step": 1, "tokenizer_hash": tokenizer.content_hash, "rng": ckpt.rng_state()}
    folder = tmp_path / "checkpoint"
    ckpt.save_train_checkpoint(folder, model, tokenizer, state)
    (folder / TOKENIZER_FILE).rename(folder / LEGACY_TOKENIZER_FILE)
    config = json.loads((folder / "config.json").read_text())
    config["sha256"][LEGACY_TOKENIZER_FILE] = config["sha256"].pop(TOKENIZER_FILE)
    (folder / "config.json").write_text(json.dumps(config))
    return folder, tokenizer


def test_an_old_checkpoint_loads_and_its_tokenizer_is_still_checked(old_checkpoint):
    folder, tokenizer = old_checkpoint
    model, loaded = load_for_inference(folder, device="cpu")
    assert loaded.content_hash == tokenizer.content_hash and model.config.vocab_size == 5
    legacy = folder / LEGACY_TOKENIZER_FILE
    legacy.write_text(legacy.read_text().replace('"a"', '"z"'))  # damaged since it was saved
    with pytest.raises(ByollmError, match=f"{LEGACY_TOKENIZER_FILE}: damaged"):
        load_model(folder)


@pytest.fixture
def corpus(tmp_path):
    return train_helpers.shakespeare_excerpt(tmp_path, 20_000)


def test_an_old_data_folder_is_up_to_date_and_trains_the_same(corpus, tmp_path):
    new = tmp_path / "new"
    prepare(corpus, "char", new, progress=False)
    old = tmp_path / "old"
    shutil.copytree(new, old)
    (old / TOKENIZER_FILE).rename(old / LEGACY_TOKENIZER_FILE)
    written = {p.name: p.stat().st_mtime_ns for p in old.iterdir()}
    assert prepare(corpus, "char", old, progress=False) == json.loads(
        (new / "meta.json").read_text()
    )
    assert {p.name: p.stat().st_mtime_ns for p in old.iterdir()} == written  # nothing rewritten

    steps = {"max_steps": 4, "eval_interval": 4, "log_interval": 4, "sample_tokens": 0}
    with train_helpers.single_thread():
        results = [
            train(
                train_helpers.tiny_config(
                    corpus, tmp_path, data_dir=folder, name=folder.name, **steps
                ),
                progress=False,
                log=lambda *a: None,
            )
            for folder in (new, old)
        ]
    assert results[0]["final_val_loss"] == results[1]["final_val_loss"]


def test_re_making_an_old_data_folder_leaves_one_tokenizer_file(corpus, tmp_path):
    out = tmp_path / "data"
    prepare(corpus, "char", out, progress=False)
    (out / TOKENIZER_FILE).rename(out / LEGACY_TOKENIZER_FILE)
    meta = prepare(corpus, "char", out, val_fraction=0.2, progress=False)  # changed: re-made
    assert meta["val_fraction"] == 0.2
    assert sorted(p.name for p in out.iterdir()) == [
        TOKENIZER_FILE,
        "meta.json",
        "train-00000.bin",
        "val-00000.bin",
    ]


def test_a_tokenizer_json_of_the_user_beside_new_data_is_left_alone(corpus, tmp_path):
    out = tmp_path / "data"
    out.mkdir()
    CharTokenizer.train(corpus.read_text()).save(out / LEGACY_TOKENIZER_FILE)  # the user's own
    before = (out / LEGACY_TOKENIZER_FILE).read_bytes()
    prepare(corpus, out / LEGACY_TOKENIZER_FILE, out, progress=False)  # used as the tokenizer
    prepare(corpus, out / LEGACY_TOKENIZER_FILE, out, val_fraction=0.2, progress=False)
    assert (out / LEGACY_TOKENIZER_FILE).read_bytes() == before
    assert (out / TOKENIZER_FILE).read_bytes() == before
