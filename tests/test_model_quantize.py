"""Int8 weight-only quantisation: close to fp32, consistent with itself, usable from the CLI."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from byollm.cli import main
from byollm.errors import ByollmError
from byollm.generate.engine import generate_ids
from byollm.generate.processors import SamplingConfig
from byollm.model import GPT, GPTConfig, save_model
from byollm.model import quantize as quantize_module
from byollm.model.quantize import Int8Linear, quantize_int8
from byollm.tokenizer import TOKENIZER_FILE, CharTokenizer

TEXT = "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n"


def tiny_model(vocab_size=48, **overrides):
    torch.manual_seed(0)
    config = GPTConfig(
        vocab_size=vocab_size,
        block_size=32,
        n_layer=2,
        n_head=2,
        n_embd=64,
        dropout=0.0,
        **overrides,
    )
    return GPT(config).eval()


def weight_bytes(model):
    """Bytes of every parameter and buffer: what the model holds in memory."""
    tensors = list(model.parameters()) + list(model.buffers())
    return sum(t.numel() * t.element_size() for t in tensors)


def relative_error(a, b):
    return float((a - b).norm() / b.norm())


@pytest.mark.parametrize("rows", [1, 3, 40])
@pytest.mark.parametrize("bias", [True, False])
def test_int8_linear_is_close_to_the_fp32_layer(rows, bias):
    torch.manual_seed(0)
    layer = nn.Linear(96, 80, bias=bias)
    q = Int8Linear(layer)
    # Each weight is within half a step of its int8 value.
    step = q.scale.float()[:, None]
    assert ((q.dequantized_weight() - layer.weight).abs() <= step / 2 + 1e-3 * step).all()
    assert q.weight_int8.dtype == torch.int8 and q.weight_int8.abs().max() <= 127
    x = torch.randn(2, rows, 96)
    with torch.no_grad():
        assert q(x).shape == (2, rows, 80)
        assert relative_error(q(x), layer(x)) < 0.02


def test_fallback_without_the_kernel_matches_the_kernel(monkeypatch):
    torch.manual_seed(0)
    q = Int8Linear(nn.Linear(64, 32))
    x = torch.randn(5, 64)
    with torch.no_grad():
        kernel = q(x)
        monkeypatch.setattr(quantize_module, "HAS_INT8_KERNEL", False)
        fallback = q(x)
    assert relative_error(kernel, fallback) < 0.01  # bf16 activations vs fp32 activations


@pytest.mark.parametrize(
    "overrides",
    [
        {},
        {
            "pos": "rope",
            "norm": "rmsnorm",
            "mlp": "swiglu",
            "n_kv_head": 1,
            "tie_embeddings": False,
        },
    ],
)
def test_quantized_gpt_is_close_and_consistent(overrides, tmp_path):
    model = tiny_model(**overrides)
    idx = torch.randint(0, 48, (2, 20))
    with torch.no_grad():
        reference, ref_loss = model(idx, idx)
    fp32_bytes = weight_bytes(model)
    quantize_int8(model)
    assert not any(isinstance(m, nn.Linear) for m in model.modules())
    assert model.quantized == "int8" and weight_bytes(model) < 0.6 * fp32_bytes
    with torch.no_grad():
        logits, loss = model(idx, idx)
    assert relative_error(logits, reference) < 0.05
    with pytest.raises(ByollmError, match="int8 weights"):
        save_model(model, tmp_path / "ckpt")
    assert not (tmp_path / "ckpt").exists()  # refused before anything is written
    assert abs(loss.item() - ref_loss.item()) < 0.01 * ref_loss.item()
    # The KV-cache path (one row at a time) and the full window agree inside the int8 model.
    greedy = SamplingConfig(temperature=0)
    with_cache = torch.cat(list(generate_ids(model, idx[:1, :6], 20, greedy)))
    without = torch.cat(list(generate_ids(model, idx[:1, :6], 20, greedy, use_cache=False)))
    assert torch.equal(with_cache, without)


@pytest.fixture
def checkpoint(tmp_path):
    tokenizer = CharTokenizer.train(TEXT)
    save_model(tiny_model(tokenizer.vocab_size), tmp_path / "ckpt", extra={"train": {"step": 0}})
    tokenizer.save(tmp_path / "ckpt" / TOKENIZER_FILE)
    return tmp_path / "ckpt"


def test_sample_and_eval_cli_take_quantize(checkpoint, capsys, tmp_path):
    code = main(
        [
            "sample",
            str(checkpoint),
            "--prompt",
            "To be",
            "--max-new-tokens",
            "8",
            "--temperature",
            "0",
            "--quantize",
            "int8",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0 and out.startswith("To be") and len(out) == len("To be") + 8 + 1
    text = tmp_path / "heldout.txt"
    text.write_text(TEXT * 3)
    results = {}
    for mode in ("none", "int8"):
        assert (
            main(["eval", str(checkpoint), "--corpus", str(text), "--json", "--quantize", mode])
            == 0
        )
        results[mode] = json.loads(capsys.readouterr().out)
    assert results["int8"]["quantize"] == "int8"
    assert abs(results["int8"]["loss"] - results["none"]["loss"]) < 0.01 * results["none"]["loss"]
