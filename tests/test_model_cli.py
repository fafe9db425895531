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
        )
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


# --- convert: never its own input, never a folder it did not write, nothing until checked -------


def _hf_folder(path, vocab_size=40):
    """A small Hugging Face GPT-2 folder written by our own exporter (no transformers needed)."""
    from byollm.model.convert import to_hf

    torch.manual_seed(0)
    config = GPTConfig(vocab_size=vocab_size, block_size=16, n_layer=1, n_head=2, n_embd=16)
    return to_hf(GPT(config), path)


def _snapshot(folder):
    return {
        p.relative_to(folder).as_posix(): p.read_bytes() if p.is_file() else None
        for p in folder.rglob("*")
    }


def _char_tokenizer(path, text="abcdefgh"):
    from byollm.tokenizer import CharTokenizer

    return CharTokenizer.train(text).save(path)


def _convert(capsys, *argv):
    code = main(["convert", *map(str, argv)])
    err = capsys.readouterr().err
    assert code in (0, 2) and (code == 0 or err.count("\n") == 1), err
    return code, err


def test_convert_refuses_its_own_input_however_it_is_spelled(tmp_path, capsys):
    hf = _hf_folder(tmp_path / "hf")
    (tmp_path / "link").symlink_to(hf)
    (tmp_path / "sub").mkdir()
    before = _snapshot(hf)
    for out in (hf, tmp_path / "link", tmp_path / "sub" / ".." / "hf", tmp_path, hf / "inner"):
        code, err = _convert(capsys, "--from-hf", hf, "--out", out)
        assert code == 2 and any(w in err for w in ("is the input", "holds the", "inside the")), err
    assert _snapshot(hf) == before
    _convert(capsys, "--from-hf", hf, "--out", tmp_path / "ck")
    ck = _snapshot(tmp_path / "ck")
    code, err = _convert(capsys, "--to-hf", tmp_path / "ck", "--out", tmp_path / "ck")
    assert code == 2 and "is the input" in err and _snapshot(tmp_path / "ck") == ck
    # inside a checkpoint: the export would change it, and a run's next save would delete it
    code, err = _convert(capsys, "--to-hf", tmp_path / "ck", "--out", tmp_path / "ck" / "hf")
    assert code == 2 and "inside the input" in err and _snapshot(tmp_path / "ck") == ck


def test_convert_refuses_a_folder_it_did_not_write(tmp_path, capsys):
    hf = _hf_folder(tmp_path / "hf")
    run = tmp_path / "my-run"
    save_model(GPT(GPTConfig(vocab_size=40, block_size=16, n_layer=1, n_head=2, n_embd=16)), run)
    (run / "train_state.pt").write_bytes(b"optimizer state")
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "todo.txt").write_text("keep me\n")
    (tmp_path / "file").write_text("a file\n")
    for out in (run, notes, tmp_path / "file"):
        before = _snapshot(tmp_path)
        code, err = _convert(capsys, "--from-hf", hf, "--out", out)
        assert code == 2 and str(out) in err, err
        assert _snapshot(tmp_path) == before
    empty = tmp_path / "empty"
    empty.mkdir()
    assert _convert(capsys, "--from-hf", hf, "--out", empty)[0] == 0  # an empty folder is fine
    assert load_model(empty).config.vocab_size == 40


def test_convert_replaces_its_own_output_whole(tmp_path, capsys):
    hf = _hf_folder(tmp_path / "hf")
    ck = tmp_path / "ck"
    tok = _char_tokenizer(tmp_path / "tok.json")
    assert _convert(capsys, "--from-hf", hf, "--out", ck, "--tokenizer", tok)[0] == 0
    assert json.loads((ck / "config.json").read_text())["written_by"] == "byollm convert"
    assert (ck / "byollm-tokenizer.json").is_file()
    # again without a tokenizer: the old tokenizer file must not survive beside the new weights
    assert _convert(capsys, "--from-hf", hf, "--out", ck)[0] == 0
    assert sorted(p.name for p in ck.iterdir()) == ["config.json", "model.safetensors"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck", "hf", "tok.json"]  # no temp
    # the Hugging Face side is marked and replaceable the same way
    for _ in range(2):
        assert _convert(capsys, "--to-hf", ck, "--out", tmp_path / "back")[0] == 0
    assert sorted(p.name for p in (tmp_path / "back").iterdir()) == [
        "config.json",
        "model.safetensors",
    ]
    # a user's file added to a converted folder makes it theirs: refused from then on
    (ck / "README.md").write_text("my notes\n")
    code, err = _convert(capsys, "--from-hf", hf, "--out", ck)
    assert code == 2 and "did not write" in err and (ck / "README.md").exists()


def test_convert_writes_nothing_until_every_input_is_checked(tmp_path, capsys):
    hf = _hf_folder(tmp_path / "hf", vocab_size=40)
    ck = tmp_path / "ck"
    assert _convert(capsys, "--from-hf", hf, "--out", ck)[0] == 0
    before = _snapshot(ck)
    code, err = _convert(capsys, "--from-hf", hf, "--out", ck, "--tokenizer", "no-such-tok")
    assert code == 2 and "no-such-tok" in err
    big = _char_tokenizer(tmp_path / "big.json", "".join(chr(0x400 + i) for i in range(50)))
    code, err = _convert(capsys, "--from-hf", hf, "--out", ck, "--tokenizer", big)
    assert code == 2 and "50 tokens" in err and "only knows 40" in err
    (hf / "model.safetensors").write_bytes(b"truncated")
    code, err = _convert(capsys, "--from-hf", hf, "--out", ck)
    assert code == 2 and "model.safetensors" in err
    assert _snapshot(ck) == before
    assert not (tmp_path / "new").exists()
    _convert(capsys, "--from-hf", hf, "--out", tmp_path / "new")
    assert not (tmp_path / "new").exists()  # a failed first conversion leaves no folder


def test_convert_on_a_full_disk_keeps_the_previous_folder(tmp_path, capsys, monkeypatch):
    import errno
    import os

    import byollm.model.checkpoint as model_checkpoint

    hf = _hf_folder(tmp_path / "hf")
    ck = tmp_path / "ck"
    assert _convert(capsys, "--from-hf", hf, "--out", ck)[0] == 0
    before = _snapshot(ck)

    def full_disk(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"half a file")
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(model_checkpoint, "save_file", full_disk)
    code, err = _convert(capsys, "--from-hf", hf, "--out", ck)
    assert code == 2 and "No space left on device" in err and str(ck) in err
    assert _snapshot(ck) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ck", "hf"]  # no temporary folder


def test_convert_expands_tilde_in_every_path(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    _hf_folder(tmp_path / "hf")
    _char_tokenizer(tmp_path / "tok.json")
    assert _convert(capsys, "--from-hf", "~/hf", "--out=~/ck", "--tokenizer", "~/tok.json")[0] == 0
    assert (tmp_path / "ck" / "byollm-tokenizer.json").is_file() and not (tmp_path / "~").exists()
    assert _convert(capsys, "--to-hf", "~/ck", "--out", "~/back")[0] == 0
    assert (tmp_path / "back" / "model.safetensors").is_file()
