"""Checkpoints: atomic replacement, crash recovery, no pickled code, clear errors."""

from __future__ import annotations

import pytest
import torch

from byollm.errors import ByollmError
from byollm.model import GPT, GPTConfig, load_model
from byollm.tokenizer import CharTokenizer
from byollm.train import checkpoint as ckpt


def tiny_model(seed: int) -> GPT:
    torch.manual_seed(seed)
    return GPT(GPTConfig(vocab_size=5, block_size=8, n_layer=1, n_head=1, n_embd=8))


def state(step: int) -> dict:
    opt = torch.optim.AdamW(tiny_model(0).parameters())
    return {"step": step, "optimizers": [opt.state_dict()], "rng": ckpt.rng_state()}


def test_save_replaces_atomically_and_loads_without_pickle(tmp_path):
    tokenizer = CharTokenizer.train("abcde")
    target = tmp_path / "checkpoint"
    ckpt.save_checkpoint(target, tiny_model(1), tokenizer, state(1), train_config={"lr": 1.0})
    ckpt.save_checkpoint(target, tiny_model(2), tokenizer, state(2), train_config={"lr": 1.0})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint"]  # no temp or .old left
    assert ckpt.load_train_state(target)["step"] == 2
    loaded = load_model(target)
    assert torch.equal(loaded.lm_head.weight, tiny_model(2).lm_head.weight)
    assert ckpt.read_checkpoint_config(target)["train"] == {"lr": 1.0}


def test_a_crash_during_save_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    tokenizer = CharTokenizer.train("abcde")
    target = tmp_path / "checkpoint"
    ckpt.save_checkpoint(target, tiny_model(1), tokenizer, state(1))

    def crash(*args, **kwargs):
        raise KeyboardInterrupt  # the process dies half way through writing the new one

    monkeypatch.setattr(ckpt.torch, "save", crash)
    with pytest.raises(KeyboardInterrupt):
        ckpt.save_checkpoint(target, tiny_model(2), tokenizer, state(2))
    assert ckpt.resolve_checkpoint(target) == target
    assert ckpt.load_train_state(target)["step"] == 1
    assert torch.equal(load_model(target).lm_head.weight, tiny_model(1).lm_head.weight)


def test_a_crash_between_the_renames_is_recovered_from_old(tmp_path):
    tokenizer = CharTokenizer.train("abcde")
    target = tmp_path / "checkpoint"
    ckpt.save_checkpoint(target, tiny_model(1), tokenizer, state(1))
    target.rename(tmp_path / "checkpoint.old")  # as if killed right after the first rename
    assert ckpt.resolve_checkpoint(target) == tmp_path / "checkpoint.old"
    ckpt.save_checkpoint(target, tiny_model(2), tokenizer, state(2))
    assert ckpt.load_train_state(ckpt.resolve_checkpoint(target))["step"] == 2


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
