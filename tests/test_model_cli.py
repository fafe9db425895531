"""`byollm model info` and `byollm convert` through the real command-line entry point."""

from __future__ import annotations

import json

import pytest
import torch

from byollm.cli import main
from byollm.model import GPT, GPTConfig, load_model, save_model


def test_model_info_preset_json(capsys):
    assert main(["model", "info", "--preset", "gpt2", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["params"] == 124_439_808
    assert info["params_non_embedding"] == 85_056_000
    assert info["config"]["n_layer"] == 12


def test_model_info_table_and_overrides(capsys):
    assert main(["model", "info", "--preset", "gpt2", "--n_layer", "6"]) == 0
    out = capsys.readouterr().out
    assert "81,912,576" in out  # 124,439,808 - 6 blocks of 7,087,872
    assert "KV cache per token" in out and "AdamW" in out


def test_model_info_from_toml_and_checkpoint(tmp_path, capsys):
    toml = tmp_path / "run.toml"
    toml.write_text(
        "[model]\nvocab_size = 65\nblock_size = 64\nn_layer = 2\nn_head = 2\nn_embd = 32\n"
    )
    assert main(["model", "info", "--config", str(toml), "--json"]) == 0
    config = GPTConfig(vocab_size=65, block_size=64, n_layer=2, n_head=2, n_embd=32)
    assert json.loads(capsys.readouterr().out)["params"] == GPT(config).num_params()
    save_model(GPT(config), tmp_path / "ckpt")
    assert main(["model", "info", "--config", str(tmp_path / "ckpt"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["params"] == GPT(config).num_params()


@pytest.mark.parametrize(
    "argv, message",
    [
        (["model", "info", "--preset", "gpt2", "--n_head", "5"], "not divisible by n_head=5"),
        (["model", "info", "--preset", "gpt2", "--n_heads", "4"], "did you mean 'n_head'"),
        (["model", "info", "--config", "missing.toml"], "config file not found"),
        (["convert", "--from-hf", "nowhere", "--out", "x"], "folder not found: nowhere"),
    ],
)
def test_cli_errors_are_one_line_exit_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_convert_from_and_to_hf(tmp_path, capsys):
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    torch.manual_seed(0)
    hf = transformers.GPT2LMHeadModel(
        transformers.GPT2Config(
            vocab_size=50,
            n_positions=16,
            n_embd=16,
            n_layer=1,
            n_head=2,
            bos_token_id=0,
            eos_token_id=0,
        )  # fmt: skip
    ).eval()
    hf.save_pretrained(tmp_path / "hf")
    assert main(["convert", "--from-hf", str(tmp_path / "hf"), "--out", str(tmp_path / "ck")]) == 0
    ours = load_model(tmp_path / "ck")
    idx = torch.randint(0, 50, (1, 10))
    with torch.no_grad():
        assert (ours(idx)[0] - hf(idx).logits).abs().max() <= 1e-4
    assert main(["convert", "--to-hf", str(tmp_path / "ck"), "--out", str(tmp_path / "back")]) == 0
    again = transformers.AutoModelForCausalLM.from_pretrained(tmp_path / "back")
    with torch.no_grad():
        assert (again(idx).logits - hf(idx).logits).abs().max() <= 1e-4
    assert "parameters" in capsys.readouterr().out
