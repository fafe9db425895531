"""Checkpoints: atomic replacement, crash recovery, checksums, disk full, no pickled code,
clear errors for tampered states."""

from __future__ import annotations

import errno
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from byollm.errors import ByollmError
from byollm.model import GPT, GPTConfig, load_model
from byollm.model.checkpoint import read_checkpoint_config, resolve_checkpoint
from byollm.tokenizer import CharTokenizer
from byollm.train import checkpoint as ckpt


def tiny_model(seed: int) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=5, block_size=8, n_layer=1, n_head=1, n_embd=8))


def state(step: int) -> dict:
    """A complete training state, as the trainer saves it."""
    opt = torch.optim.AdamW(tiny_model(0).parameters())
    return {
        "step": step,
        "tokens_seen": step * 64,
        "tokens_per_step": 64,
        "best_val_loss": 1.5,
        "seed": 1337,
        "tokenizer_hash": "0" * 64,
        "optimizers": [opt.state_dict()],
        "rng": ckpt.rng_state(),
        "elapsed": 1.0,
    }


def test_save_replaces_atomically_and_loads_without_pickle(tmp_path):
    tokenizer = CharTokenizer.train("abcde")
    target = tmp_path / "checkpoint"
    ckpt.save_train_checkpoint(target, tiny_model(1), tokenizer, state(1), train_config={"lr": 1.0})
    ckpt.save_train_checkpoint(target, tiny_model(2), tokenizer, state(2), train_config={"lr": 1.0})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]  # no temp or .old left
    assert ckpt.load_train_state(target)["step"] == 2
    loaded = load_model(target)
    assert torch.equal(loaded.lm_head.weight, tiny_model(2).lm_head.weight)
    assert read_checkpoint_config(target)["train"] == {"lr": 1.0}


def test_a_crash_during_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    tokenizer = CharTokenizer.train("abcde")
    target = tmp_path / "checkpoint"
    ckpt.save_train_checkpoint(target, tiny_model(1), tokenizer, state(1))

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # the process dies half way through writing the new one

    monkeypatch.setattr(ckpt.torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_train_checkpoint(target, tiny_model(2), tokenizer, state(2))
    assert resolve_checkpoint(target, require=ckpt.STATE_FILE) == target
    assert ckpt.load_train_state(target)["step"] == 1
    assert torch.equal(load_model(target).lm_head.weight, tiny_model(1).lm_head.weight)


def test_a_crash_between_the_renames_is_recovered_from_old(tmp_path):
    tokenizer = CharTokenizer.train("abcde")
    target = tmp_path / "checkpoint"
    ckpt.save_train_checkpoint(target, tiny_model(1), tokenizer, state(1))
    target.rename(tmp_path / "checkpoint.old")  # as if killed right after the first rename
    assert resolve_checkpoint(target, require=ckpt.STATE_FILE) == tmp_path / "checkpoint.old"
    ckpt.save_train_checkpoint(target, tiny_model(2), tokenizer, state(2))
    assert ckpt.load_train_state(resolve_checkpoint(target, require=ckpt.STATE_FILE))["step"] == 2


def test_foreign_or_damaged_state_is_a_clear_error(tmp_path):
    with pytest.raises(ByollmError, match="missing"):
        ckpt.load_train_state(tmp_path)
    (tmp_path / "train_state.pt").write_bytes(b"not a torch file")
    with pytest.raises(ByollmError, match="cannot read the training state"):
        ckpt.load_train_state(tmp_path)
    torch.save({"format": "byollm-train-state", "version": 99}, tmp_path / "train_state.pt")
    with pytest.raises(ByollmError, match="version 99"):
        ckpt.load_train_state(tmp_path)

    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    torch.save(
        {"format": "byollm-train-state", "version": 1, "x": Evil()}, tmp_path / "train_state.pt"
    )
    with pytest.raises(ByollmError, match="cannot read"):  # weights_only refuses to run code
        ckpt.load_train_state(tmp_path)


# --- checksums ------------------------------------------------------------------------------------


def flip_a_byte(path, offset_from_end: int = 9) -> None:
    data = bytearray(path.read_bytes())
    data[-offset_from_end] ^= 0x01  # one bit, well inside the payload
    path.write_bytes(bytes(data))


def test_checkpoint_files_are_checksummed_and_a_flipped_bit_is_refused(tmp_path):
    from byollm.generate import load_for_inference

    tokenizer = CharTokenizer.train("abcde")
    target = tmp_path / "checkpoint"
    ckpt.save_train_checkpoint(target, tiny_model(1), tokenizer, state(1))
    recorded = read_checkpoint_config(target)["sha256"]
    assert sorted(recorded) == ["byollm-tokenizer.json", "model.safetensors", "train_state.pt"]
    assert all(len(digest) == 64 for digest in recorded.values())
    load_model(target)  # intact: loads
    load_for_inference(target, device="cpu")

    for name in ("model.safetensors", "byollm-tokenizer.json", "train_state.pt"):
        copy = tmp_path / f"copy-{name}"
        shutil.copytree(target, copy)
        flip_a_byte(copy / name)
        loader = ckpt.load_train_state if name == "train_state.pt" else load_model
        with pytest.raises(
            ByollmError, match=rf"{re.escape(name)}: damaged, its sha256 .* differs"
        ):
            loader(copy)
        if name != "train_state.pt":
            with pytest.raises(ByollmError, match="damaged"):
                load_for_inference(copy, device="cpu")


def test_checkpoints_from_before_checksums_still_load(tmp_path):
    tokenizer = CharTokenizer.train("abcde")
    target = tmp_path / "checkpoint"
    ckpt.save_train_checkpoint(target, tiny_model(1), tokenizer, state(3))
    config = json.loads((target / "config.json").read_text())
    del config["sha256"]
    (target / "config.json").write_text(json.dumps(config))
    assert torch.equal(load_model(target).lm_head.weight, tiny_model(1).lm_head.weight)
    assert ckpt.load_train_state(target)["step"] == 3


# --- a failed save -------------------------------------------------------------------------------


def disk_full(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("writer", ["weights", "train state", "tokenizer", "torch's writer"])
def test_disk_full_keeps_the_previous_checkpoint_and_no_temporary_folder(
    tmp_path, monkeypatch, writer
):
    import byollm.model.checkpoint as model_checkpoint

    tokenizer = CharTokenizer.train("abcde")
    target = tmp_path / "checkpoint"
    ckpt.save_train_checkpoint(target, tiny_model(1), tokenizer, state(1))
    before = {p.name: p.read_bytes() for p in target.iterdir()}

    def torch_writer_fails(*args, **kwargs):  # what torch.save raises when a write fails
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 64 vs 0")

    if writer == "weights":
        monkeypatch.setattr(model_checkpoint, "save_file", disk_full)
    elif writer == "train state":
        monkeypatch.setattr(ckpt.torch, "save", disk_full)
    elif writer == "tokenizer":
        monkeypatch.setattr(type(tokenizer), "save", disk_full)
    else:
        monkeypatch.setattr(ckpt.torch, "save", torch_writer_fails)
    with pytest.raises(ByollmError) as error:
        ckpt.save_train_checkpoint(target, tiny_model(2), tokenizer, state(2))
    message = str(error.value)
    assert "\n" not in message and "the previous checkpoint is kept" in message
    assert "MiB free there" in message
    if writer != "torch's writer":
        assert "No space left on device" in message
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]  # no temporary folder
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    monkeypatch.undo()
    assert ckpt.load_train_state(target)["step"] == 1


def test_a_save_removes_dead_temporaries_but_never_a_live_processs(tmp_path):
    tokenizer = CharTokenizer.train("abcde")
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # its pid is free now (and not reused within this test in practice)
    stale = tmp_path / f".checkpoint.tmp-{dead.pid}"
    live = tmp_path / f".checkpoint.tmp-{os.getppid()}"  # our parent: alive
    for folder in (stale, live):
        folder.mkdir()
        (folder / "model.safetensors").write_bytes(b"half written")
    ckpt.save_train_checkpoint(tmp_path / "checkpoint", tiny_model(1), tokenizer, state(1))
    assert not stale.exists()
    assert (live / "model.safetensors").read_bytes() == b"half written"


# --- tampered training states --------------------------------------------------------------------


def save_raw_state(fields: dict, folder) -> None:
    """A train_state.pt as an editor would leave it (no config.json, so no checksum to match)."""
    torch.save({"format": "byollm-train-state", "version": 1, **fields}, folder / "train_state.pt")


TAMPERED = [
    ("step", -1, "step = -1"),
    ("step", "12", "step = '12'"),
    ("step", True, "step = True"),
    ("step", 2.5, "step = 2.5"),
    ("tokens_seen", None, "tokens_seen = None"),
    ("tokens_per_step", 0, "tokens_per_step = 0"),
    ("best_val_loss", float("nan"), "best_val_loss = nan"),
    ("best_val_loss", "low", "best_val_loss = 'low'"),
    ("optimizers", {"a": 1}, "optimizers = dict"),
    ("optimizers", [1, 2], "optimizers = list"),
    ("rng", {}, "rng = dict"),
    ("rng", {"torch": torch.zeros(3)}, "rng = dict"),
    ("tokenizer_hash", 7, "tokenizer_hash = 7"),
    ("elapsed", -5.0, "elapsed = -5.0"),
    ("elapsed", float("inf"), "elapsed = inf"),
    ("grad_scaler", [1.0], "grad_scaler = list"),
]


@pytest.mark.parametrize(("key", "value", "shown"), TAMPERED)
def test_tampered_state_fields_are_one_line_errors(tmp_path, key, value, shown):
    save_raw_state({**state(4), key: value}, tmp_path)
    with pytest.raises(ByollmError, match=re.escape(shown)) as error:
        ckpt.load_train_state(tmp_path)
    assert "\n" not in str(error.value) and "expected" in str(error.value)


@pytest.mark.parametrize("key", ["step", "tokens_seen", "optimizers", "rng", "tokenizer_hash"])
def test_a_state_missing_a_field_is_refused(tmp_path, key):
    saved = state(4)
    del saved[key]
    save_raw_state(saved, tmp_path)
    with pytest.raises(ByollmError, match=f"has no '{key}'"):
        ckpt.load_train_state(tmp_path)


values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=5),
    st.lists(st.integers(), max_size=3),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(changes=st.dictionaries(st.sampled_from(sorted(ckpt.STATE_FIELDS)), values, max_size=3))
def test_any_field_values_load_or_give_one_line(tmp_path, changes):
    save_raw_state({**state(4), **changes}, tmp_path)
    try:
        loaded = ckpt.load_train_state(tmp_path)
    except ByollmError as e:
        assert "\n" not in str(e)
    else:  # whatever loads is what the trainer can use
        assert isinstance(loaded["step"], int) and loaded["step"] >= 0
        assert isinstance(loaded["optimizers"], list)
