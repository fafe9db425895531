"""LoRA from scratch: identity at init, merging, adapters saved alone and tied to their base."""

from __future__ import annotations

import json

import pytest
import torch
from finetune_helpers import tiny_checkpoint
from torch import nn

from byollm.errors import ByollmError
from byollm.finetune.lora import (
    LoRAConfig,
    LoRALinear,
    apply_lora,
    count_parameters,
    load_adapter,
    merge_lora,
    read_adapter,
    save_adapter,
)
from byollm.model import GPT, GPTConfig, load_model

MODERN = dict(
    mlp="relu2", norm="rmsnorm", pos="rope", qk_norm=True, tie_embeddings=False, bias=False
)


@pytest.mark.parametrize("shape", [{}, MODERN], ids=["gpt2-like", "modern"])
def test_wrapped_model_equals_base_at_init_and_after_merge(tmp_path, shape):
    base = tiny_checkpoint(tmp_path, **shape)
    model = load_model(tmp_path)
    idx = torch.randint(0, base.config.vocab_size, (2, 20))
    expected, _ = base(idx)
    wrapped = apply_lora(model, LoRAConfig(rank=4, alpha=8))
    assert len(wrapped) == 4 * base.config.n_layer
    assert torch.equal(model(idx)[0], expected)  # B = 0: exactly the base
    with torch.no_grad():  # pretend training moved the adapters
        for m in model.modules():
            if isinstance(m, LoRALinear):
                m.lora_B.normal_(0, 0.05)
    adapted, _ = model(idx)
    assert not torch.allclose(adapted, expected, atol=1e-4)
    merge_lora(model)
    assert not any(isinstance(m, LoRALinear) for m in model.modules())
    torch.testing.assert_close(model(idx)[0], adapted, atol=1e-5, rtol=1e-5)


def test_only_adapters_train_and_the_count_is_r_times_in_plus_out(tmp_path):
    model = tiny_checkpoint(tmp_path)
    total_before = model.num_params()
    apply_lora(model, LoRAConfig(rank=4))
    trainable, total = count_parameters(model)
    C, hidden, L = 32, 128, 2
    per_block = 4 * ((C + 3 * C) + (C + C) + (C + hidden) + (hidden + C))
    assert trainable == L * per_block
    assert total == total_before + trainable
    assert all(p.requires_grad == (".lora_" in name) for name, p in model.named_parameters())


def test_targets_by_name_and_unknown_target_is_one_line(tmp_path):
    model = tiny_checkpoint(tmp_path)
    assert apply_lora(model, LoRAConfig(targets=("*.1.attn.c_attn",))) == [
        "transformer.h.1.attn.c_attn"
    ]
    with pytest.raises(ByollmError, match=r"lora target '\*q_proj' matches no linear layer"):
        apply_lora(tiny_checkpoint(tmp_path / "b"), LoRAConfig(targets=("*q_proj",)))
    with pytest.raises(ByollmError, match="rank"):
        LoRAConfig(rank=0)


def test_adapter_round_trip_is_small_and_refuses_another_base(tmp_path):
    base_dir, other_dir, adapter_dir = tmp_path / "base", tmp_path / "other", tmp_path / "adapter"
    tiny_checkpoint(base_dir, seed=0)
    tiny_checkpoint(other_dir, seed=1)
    model = load_model(base_dir)
    config = LoRAConfig(rank=2, alpha=4, targets=("*attn.c_attn",))
    apply_lora(model, config)
    with torch.no_grad():
        for m in model.modules():
            if isinstance(m, LoRALinear):
                m.lora_B.normal_(0, 0.1)
    head = nn.Linear(32, 3)
    save_adapter(
        adapter_dir, model, config, base=base_dir, extra_tensors={"head.weight": head.weight}
    )
    size = (adapter_dir / "adapter.safetensors").stat().st_size
    assert size < (base_dir / "model.safetensors").stat().st_size / 10

    idx = torch.randint(0, model.config.vocab_size, (1, 12))
    again = load_model(base_dir)
    meta, rest = load_adapter(again, adapter_dir, base_dir)
    assert meta["lora"]["rank"] == 2 and set(rest) == {"head.weight"}
    assert torch.equal(again(idx)[0], model(idx)[0])
    with pytest.raises(ByollmError, match="trained on another base model"):
        load_adapter(load_model(other_dir), adapter_dir, other_dir)


def test_an_adapter_of_another_format_or_version_is_one_line(tmp_path):
    tiny_checkpoint(tmp_path / "base")
    model = load_model(tmp_path / "base")
    apply_lora(model, LoRAConfig(rank=2, targets=("*attn.c_attn",)))
    save_adapter(tmp_path / "adapter", model, LoRAConfig(rank=2), base=tmp_path / "base")
    path = tmp_path / "adapter" / "adapter.json"
    meta = json.loads(path.read_text())
    path.write_text(json.dumps({**meta, "version": 2}))
    with pytest.raises(ByollmError, match=r"byollm-lora-adapter version 2 is not supported"):
        read_adapter(tmp_path / "adapter")
    path.write_text(json.dumps({**meta, "format": "peft"}))
    with pytest.raises(ByollmError, match=r"adapter.json: not a byollm-lora-adapter file"):
        read_adapter(tmp_path / "adapter")


def test_gpt2_small_lora_parameter_count():
    """GPT-2 124M at r = 16 on the four matrices of each block (numbers quoted in the docs)."""
    with torch.device("meta"):
        model = GPT(GPTConfig())
    apply_lora(model, LoRAConfig(rank=16))
    trainable, total = count_parameters(model)
    assert trainable == 2_359_296
    assert total - trainable == 124_439_808
