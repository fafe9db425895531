"""`byollm convert --to-hf` writes a folder transformers uses whole: `AutoTokenizer` gives our
ids, and `pipeline("text-generation")` greedy gives the text `byollm sample --temperature 0`
gives, for GPT-2- and Llama-style models, with a BPE and with a character vocabulary."""

from __future__ import annotations

import json

import pytest
import torch

from byollm.cli import main
from byollm.model import GPT, GPTConfig, save_checkpoint, save_model
from byollm.tokenizer import BPETokenizer, CharTokenizer

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()

TEXT = (
    "The quick brown fox jumps over the lazy dog. The dog sleeps; the fox runs on.\n"
    "A tokenizer turns text into ids, and a model turns ids into the next id. " * 3
)
PROMPT = "The fox runs"


def make_checkpoint(path, kind: str, tokenizer: str):
    if tokenizer == "bpe":
        tok = BPETokenizer.train(TEXT, 300, pattern="gpt2", progress=False)
    else:
        tok = CharTokenizer.train(TEXT, special_tokens=["<|endoftext|>"])
    torch.manual_seed(0)
    sizes = dict(vocab_size=tok.vocab_size, block_size=64, n_layer=2, n_embd=32)
    if kind == "gpt2":
        config = GPTConfig(n_head=4, **sizes)
    elif kind == "nanogpt-no-bias":  # configs/nanogpt-*.toml: exported with zero biases
        config = GPTConfig(n_head=4, mlp="gelu_exact", bias=False, **sizes)
    else:
        config = GPTConfig.from_preset(kind, **sizes)
    model = GPT(config).eval()
    with torch.no_grad():  # larger logits, so that greedy choices are clear-cut
        model.transformer.wte.weight.mul_(20)
    save_checkpoint(path, model, tok)
    return tok


@pytest.mark.parametrize(
    "kind, tokenizer",
    [("gpt2", "bpe"), ("llama-tiny", "bpe"), ("gpt2", "char"), ("nanogpt-no-bias", "char")],
)
def test_exported_folder_loads_in_transformers_and_generates_our_text(
    kind, tokenizer, tmp_path, capsys
):
    tok = make_checkpoint(tmp_path / "ck", kind, tokenizer)
    out = tmp_path / "hf"
    assert main(["convert", "--to-hf", str(tmp_path / "ck"), "--out", str(out)]) == 0
    assert "tokenizer_config.json" in capsys.readouterr().out
    generation = json.loads((out / "generation_config.json").read_text())
    assert generation["eos_token_id"] == tok.eot_id

    hf_tok = transformers.AutoTokenizer.from_pretrained(out)
    for text in [TEXT, PROMPT, " the  dog\n\nruns"]:
        assert hf_tok(text)["input_ids"] == tok.encode(text)
        assert hf_tok.decode(tok.encode(text)) == text

    assert (
        main(
            [
                "sample",
                "--checkpoint",
                str(tmp_path / "ck"),
                "--prompt",
                PROMPT,
                "--temperature",
                "0",
                "--max-new-tokens",
                "24",
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    ours = capsys.readouterr().out.removesuffix("\n")
    generate = transformers.pipeline("text-generation", model=str(out), device="cpu")
    theirs = generate(PROMPT, max_new_tokens=24, do_sample=False)[0]["generated_text"]
    assert len(ours) > len(PROMPT) and theirs == ours


def test_presets_hugging_face_cannot_express_are_refused_in_one_line(tmp_path, capsys):
    config = GPTConfig.from_preset("modern-tiny", n_layer=1)  # RMSNorm+RoPE+ReLU²+QK-norm
    save_model(GPT(config), tmp_path / "ck")
    assert main(["convert", "--to-hf", str(tmp_path / "ck"), "--out", str(tmp_path / "hf")]) == 2
    err = capsys.readouterr().err.strip()
    assert "cannot export" in err and "qk_norm=True" in err and "\n" not in err
    assert not (tmp_path / "hf").exists()


def test_a_checkpoint_without_tokenizer_exports_its_weights(tmp_path, capsys):
    save_model(
        GPT(GPTConfig(vocab_size=50, block_size=16, n_layer=1, n_head=2, n_embd=8)), tmp_path / "ck"
    )
    assert main(["convert", "--to-hf", str(tmp_path / "ck"), "--out", str(tmp_path / "hf")]) == 0
    assert sorted(p.name for p in (tmp_path / "hf").iterdir()) == [
        "config.json",
        "model.safetensors",
    ]
