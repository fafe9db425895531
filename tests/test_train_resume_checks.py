"""What --resume refuses (another experiment, damaged or tampered files), what it never does (fall
back to another corpus), a finished run, and a disk that fills up during training."""

from __future__ import annotations

import errno
import json
import os
import re

import pytest
import torch
import train_helpers

from byollm import corpora
from byollm.cli import main
from byollm.download import sha256_file
from byollm.errors import ByollmError
from byollm.train import checkpoint as ckpt
from byollm.train import train
from byollm.train import trainer as trainer_module


@pytest.fixture(autouse=True)
def _one_thread():
    with train_helpers.single_thread():
        yield


def quiet(config, **kwargs):
    return train(config, progress=False, log=lambda *a: None, **kwargs)


def files(folder):
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_resume_refuses_another_experiment_naming_both_values(tmp_path):
    corpus = train_helpers.shakespeare_excerpt(tmp_path, 40_000)
    settings = {"max_steps": 2, "eval_interval": 2, "sample_tokens": 0}
    quiet(train_helpers.tiny_config(corpus, tmp_path, **settings))
    checkpoint = tmp_path / "runs" / "shakespeare-char" / "checkpoint"
    before = files(checkpoint)
    other = tmp_path / "other.txt"
    other.write_text("another text entirely\n" * 2000)
    changes = [
        ("seed", 7, "seed = 1337, this command has 7"),
        ("corpus", other, f"corpus = '{corpus}', this command has '{other}'"),
        ("val_fraction", 0.2, "val_fraction = 0.1, this command has 0.2"),
        ("tokenizer", "bpe:300", "tokenizer = 'char', this command has 'bpe:300'"),
    ]
    for key, value, message in changes:
        arguments = {"corpus": corpus, **settings, "max_steps": 4, key: value}
        config = train_helpers.tiny_config(arguments.pop("corpus"), tmp_path, **arguments)
        with pytest.raises(ByollmError, match=re.escape(message)):
            quiet(config, resume=True)
    # the same corpus path with other text in it: the data is not the run's
    corpus.write_text(corpus.read_text()[:-2000])
    config = train_helpers.tiny_config(corpus, tmp_path, **{**settings, "max_steps": 4})
    with pytest.raises(
        ByollmError, match=r"trained on a corpus text with corpus_sha256 \w+\.\.\., "
    ):
        quiet(config, resume=True)
    assert files(checkpoint) == before


def test_resume_continues_on_the_fallback_corpus_and_never_falls_back(tmp_path, monkeypatch):
    monkeypatch.setattr(trainer_module, "FALLBACK_CORPUS", "python-stdlib:200KB")
    overrides = {"max_steps": 2, "eval_interval": 2, "sample_tokens": 0}
    config = train_helpers.tiny_config("tinyshakespeare", tmp_path, **overrides)
    first = quiet(config)  # offline (tests never download): falls back to python-stdlib
    assert "python-stdlib" in first["data_dir"]

    messages = []
    longer = train_helpers.tiny_config("tinyshakespeare", tmp_path, **{**overrides, "max_steps": 4})
    resumed = train(longer, resume=True, progress=False, log=messages.append)
    assert resumed["steps"] == 4 and resumed["data_dir"] == first["data_dir"]
    assert any("the corpus this run fell back to" in m for m in messages), messages

    def offline(name, **kwargs):
        raise corpora.OfflineError(f"corpus {name!r}: no network")

    monkeypatch.setattr(corpora, "get_corpus", offline)
    even_longer = train_helpers.tiny_config("tinyshakespeare", tmp_path, max_steps=6)
    with pytest.raises(corpora.OfflineError, match="python-stdlib:200KB"):
        train(even_longer, resume=True, progress=False, log=messages.append)
    assert not any("falling back" in m for m in messages)


def test_resume_of_a_finished_run_says_so(tmp_path, capsys):
    corpus = train_helpers.shakespeare_excerpt(tmp_path, 40_000)
    args = ["train", "--no-progress", "--corpus", str(corpus), "--out_dir", str(tmp_path)]
    args += ["--max_steps", "2", "--eval_interval", "2", "--eval_rows", "8", "--batch_size", "4"]
    args += ["--n_layer", "1", "--n_embd", "16", "--n_head", "2", "--block_size", "16"]
    args += ["--sample_tokens", "0", "--threads", "1"]
    assert main(args) == 0
    capsys.readouterr()
    for max_steps in ("2", "1"):
        assert main([*args, "--resume", "--max_steps", max_steps]) == 0
        out = capsys.readouterr().out
        assert f"is finished: its checkpoint is at step 2 and max_steps is {max_steps}" in out
        assert "next: byollm sample" in out


def test_a_damaged_or_tampered_checkpoint_is_refused_on_resume(tmp_path):
    corpus = train_helpers.shakespeare_excerpt(tmp_path, 40_000)
    config = train_helpers.tiny_config(corpus, tmp_path, max_steps=2, eval_interval=2)
    quiet(config)
    checkpoint = tmp_path / "runs" / "shakespeare-char" / "checkpoint"
    longer = train_helpers.tiny_config(corpus, tmp_path, max_steps=4, eval_interval=2)

    weights = checkpoint / "model.safetensors"
    good = weights.read_bytes()
    damaged = bytearray(good)
    damaged[-100] ^= 0x10
    weights.write_bytes(bytes(damaged))
    with pytest.raises(ByollmError, match="model.safetensors: damaged"):
        quiet(longer, resume=True)
    weights.write_bytes(good)

    # a train_state.pt edited by hand, its checksum updated too: the moments no longer fit
    state = ckpt.load_train_state(checkpoint)
    moments = state["optimizers"][0]["state"]
    first = next(iter(moments))
    moments[first] = {k: v[:1] if v.dim() else v for k, v in moments[first].items()}
    torch.save(state, checkpoint / "train_state.pt")
    config_json = json.loads((checkpoint / "config.json").read_text())
    config_json["sha256"]["train_state.pt"] = sha256_file(checkpoint / "train_state.pt")
    (checkpoint / "config.json").write_text(json.dumps(config_json))
    with pytest.raises(ByollmError, match=r"train_state.pt: optimizer state '\w+' has shape"):
        quiet(longer, resume=True)


def test_disk_full_during_training_is_one_line_and_keeps_the_last_checkpoint(
    tmp_path, monkeypatch, capsys
):
    corpus = train_helpers.shakespeare_excerpt(tmp_path, 40_000)
    saves = []
    real_save = torch.save

    def fills_up(obj, path, *args, **kwargs):  # the disk fills up after the first checkpoint
        saves.append(path)
        if len(saves) > 2:  # checkpoint/ and best/ at step 2 fit
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        return real_save(obj, path, *args, **kwargs)

    monkeypatch.setattr(ckpt.torch, "save", fills_up)
    args = ["train", "--no-progress", "--corpus", str(corpus), "--out_dir", str(tmp_path)]
    args += ["--max_steps", "4", "--eval_interval", "2", "--eval_rows", "8", "--batch_size", "4"]
    args += ["--n_layer", "1", "--n_embd", "16", "--n_head", "2", "--block_size", "16"]
    args += ["--sample_tokens", "0", "--threads", "1"]
    assert main(args) == 2
    train_helpers.one_line_error(capsys, "No space left on device", "checkpoint is kept")
    run = tmp_path / "shakespeare-char"
    assert ckpt.load_train_state(run / "checkpoint")["step"] == 2
    assert not [p.name for p in run.iterdir() if ".tmp-" in p.name or p.name == ".lock"]


def test_resume_refuses_data_split_another_way(tmp_path):
    """Same corpus text, same tokenizer, but the train/val split changed (as when a newer
    byollm splits by document): resuming would silently train on other data."""
    corpus = train_helpers.shakespeare_excerpt(tmp_path, 40_000)
    settings = {"max_steps": 2, "eval_interval": 2, "sample_tokens": 0}
    quiet(train_helpers.tiny_config(corpus, tmp_path, **settings))
    checkpoint = tmp_path / "runs" / "shakespeare-char" / "checkpoint"
    saved = json.loads((checkpoint / "config.json").read_text())
    assert len(saved["data"]["split_sha256"]) == 64  # recorded with every checkpoint
    saved["data"]["split_sha256"] = "0" * 64  # what an older split's fingerprint looks like
    (checkpoint / "config.json").write_text(json.dumps(saved))
    config = train_helpers.tiny_config(corpus, tmp_path, **{**settings, "max_steps": 4})
    with pytest.raises(ByollmError, match="trained on another train/val split"):
        quiet(config, resume=True)
