"""Parity with Hugging Face transformers: same weights, same logits (max abs diff <= 1e-4, fp32).

Reference models are created locally with random weights (no hub access) and tiny shapes.
"""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from byollm.errors import ByollmError
from byollm.model import GPT, GPTConfig
from byollm.model.convert import from_hf, to_hf

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()

TOL = 1e-4


def random_tokens(vocab: int, B: int = 2, T: int = 12) -> torch.Tensor:
    return torch.randint(0, vocab, (B, T), generator=torch.Generator().manual_seed(0))


def hf_logits(model, idx):
    with torch.no_grad():
        return model(idx).logits


def gelu_visible(wte, c_fc_weights):
    """Scale weights so that the tanh and erf GELUs give logits more than TOL apart.

    At init the MLP pre-activations are ~0.1 and the logits ~0.4, where the two GELUs differ by
    ~1e-6; x30 on c_fc puts pre-activations near 1 and x50 on the (tied) embedding puts logits
    near 40, and then the wrong GELU is ~7e-4 off while the right one stays within ~1e-5.
    """
    wte.mul_(50)
    for w in c_fc_weights:
        w.mul_(30)


def make_hf_gpt2(tmp_path, **overrides):
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        vocab_size=96,
        n_positions=32,
        n_embd=32,
        n_layer=2,
        n_head=4,
        bos_token_id=0,
        eos_token_id=0,
        **overrides,
    )
    model = transformers.GPT2LMHeadModel(config).eval()
    with torch.no_grad():  # non-trivial LayerNorm parameters and biases, so a mix-up shows
        for name, p in model.named_parameters():
            if name.endswith("bias") or "ln_" in name:
                p.add_(0.1 * torch.randn_like(p))
        gelu_visible(model.transformer.wte.weight, [b.mlp.c_fc.weight for b in model.transformer.h])
    model.save_pretrained(tmp_path / "hf", safe_serialization=True)
    return model


@pytest.mark.parametrize(
    "activation, mlp",
    [
        ("gelu_new", "gelu"),
        ("gelu_pytorch_tanh", "gelu"),
        ("gelu_fast", "gelu"),
        ("gelu", "gelu_exact"),
        ("gelu_python", "gelu_exact"),
    ],
)
def test_import_gpt2_from_save_pretrained(activation, mlp, tmp_path):
    hf = make_hf_gpt2(tmp_path, activation_function=activation)
    ours = from_hf(tmp_path / "hf")
    assert ours.config.mlp == mlp  # HF's "gelu" is the exact erf GELU, "gelu_new" the tanh one
    idx = random_tokens(96)
    diff = (ours(idx)[0] - hf_logits(hf, idx)).abs().max().item()
    assert diff <= TOL
    # the other GELU on the same weights is visibly off, so the check above can tell them apart
    other_mlp = "gelu" if mlp == "gelu_exact" else "gelu_exact"
    other = GPT(dataclasses.replace(ours.config, mlp=other_mlp)).eval()
    other.load_state_dict(ours.state_dict())
    assert (other(idx)[0] - hf_logits(hf, idx)).abs().max().item() > 3 * TOL
    assert ours.config.tie_embeddings and ours.num_params() == hf.num_parameters()


def test_import_original_openai_layout(tmp_path):
    """The OpenAI checkpoints: no 'transformer.' prefix, mask buffers h.N.attn.bias, no head."""
    from safetensors.torch import load_file, save_file

    hf = make_hf_gpt2(tmp_path)
    sd = load_file(str(tmp_path / "hf" / "model.safetensors"))
    old = {k.removeprefix("transformer."): v for k, v in sd.items() if k != "lm_head.weight"}
    for i in range(2):
        old[f"h.{i}.attn.bias"] = torch.tril(torch.ones(1, 1, 32, 32))
    save_file(old, str(tmp_path / "hf" / "model.safetensors"))
    ours = from_hf(tmp_path / "hf")
    idx = random_tokens(96)
    assert (ours(idx)[0] - hf_logits(hf, idx)).abs().max().item() <= TOL


@pytest.mark.parametrize("variant", ["gpt2", "gpt2-gelu-exact", "llama", "llama-tied-bias"])
def test_export_loads_in_auto_model_with_same_logits(variant, tmp_path):
    torch.manual_seed(0)
    if variant.startswith("gpt2"):
        mlp = "gelu_exact" if variant == "gpt2-gelu-exact" else "gelu"
        config = GPTConfig(vocab_size=80, block_size=32, n_layer=2, n_head=4, n_embd=32, mlp=mlp)
    else:
        config = GPTConfig.from_preset(
            "llama-tiny", vocab_size=80, block_size=32, n_layer=2, n_embd=32, rope_theta=500.0
        )
        if variant == "llama-tied-bias":
            config = GPTConfig.from_preset(
                "llama-tiny",
                vocab_size=80,
                block_size=32,
                n_layer=2,
                n_embd=32,
                tie_embeddings=True,
                bias=True,
                n_kv_head=1,
            )
    ours = GPT(config).eval()
    with torch.no_grad():
        for p in ours.parameters():
            if p.ndim == 1:  # norms and biases start at 1/0: perturb them so mix-ups show
                p.add_(0.1 * torch.randn_like(p))
        if variant.startswith("gpt2"):  # so a tanh / erf GELU mix-up shows in the logits
            gelu_visible(
                ours.transformer.wte.weight, [b.mlp.c_fc.weight for b in ours.transformer.h]
            )
    to_hf(ours, tmp_path / "export")
    hf = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "export").eval()
    expected_class = "GPT2LMHeadModel" if variant.startswith("gpt2") else "LlamaForCausalLM"
    assert type(hf).__name__ == expected_class
    if variant.startswith("gpt2"):
        written = json.loads((tmp_path / "export" / "config.json").read_text())
        assert written["activation_function"] == {"gelu": "gelu_new", "gelu_exact": "gelu"}[mlp]
    idx = random_tokens(80, T=20)
    diff = (ours(idx)[0] - hf_logits(hf, idx)).abs().max().item()
    assert diff <= TOL
    # and back again: import what we exported
    again = from_hf(tmp_path / "export")
    assert again.config.mlp == ours.config.mlp
    assert (again(idx)[0] - ours(idx)[0]).abs().max().item() <= 1e-6


def test_export_rejects_what_hf_cannot_express(tmp_path):
    model = GPT(GPTConfig.from_preset("modern-tiny", n_layer=1))
    with pytest.raises(ByollmError, match="cannot export"):
        to_hf(model, tmp_path)
    model = GPT(GPTConfig(vocab_size=10, block_size=8, n_layer=1, n_head=2, n_embd=8, n_kv_head=1))
    with pytest.raises(ByollmError, match="grouped-query"):
        to_hf(model, tmp_path)


def test_import_errors_are_clear(tmp_path):
    make_hf_gpt2(tmp_path)
    folder = tmp_path / "hf"
    config = json.loads((folder / "config.json").read_text())
    # a config that does not match the weights
    (folder / "config.json").write_text(json.dumps({**config, "n_layer": 3}))
    with pytest.raises(ByollmError, match=r"missing transformer\.h\.2"):
        from_hf(folder)
    (folder / "config.json").write_text(json.dumps({**config, "n_embd": 64}))
    with pytest.raises(ByollmError, match="shape"):
        from_hf(folder)
    (folder / "config.json").write_text(json.dumps({**config, "activation_function": "relu"}))
    with pytest.raises(ByollmError, match="activation_function 'relu' is not supported") as e:
        from_hf(folder)
    assert "gelu_new" in str(e.value) and "\n" not in str(e.value)
    (folder / "config.json").write_text(json.dumps({**config, "model_type": "t5"}))
    with pytest.raises(ByollmError, match="model_type 't5' is not supported"):
        from_hf(folder)
    (folder / "config.json").write_text(json.dumps(config))
    weights = folder / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:5000])  # a partial download
    with pytest.raises(ByollmError, match=r"model\.safetensors: cannot read"):
        from_hf(folder)
    weights.unlink()
    with pytest.raises(ByollmError, match="no weights found"):
        from_hf(folder)
    with pytest.raises(ByollmError, match="not found"):
        from_hf(tmp_path / "nowhere")
