"""The training loop in-process on tiny models: outputs, reproducibility, errors."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch
import train_helpers

from byollm.config import apply_overrides
from byollm.errors import ByollmError
from byollm.model import GPTConfig, load_model
from byollm.tokenizer import TOKENIZER_FILE, load_tokenizer
from byollm.train import TrainConfig, load_train_config, train
from byollm.train import trainer as trainer_module
from byollm.train.checkpoint import load_train_state
from byollm.train.metrics import read_metrics

TINY = train_helpers.TINY
tiny_config = train_helpers.tiny_config


@pytest.fixture(autouse=True)
def _one_thread():
    with train_helpers.single_thread():
        yield


@pytest.fixture
def corpus(tmp_path):
    return train_helpers.shakespeare_excerpt(tmp_path, 60_000)


def losses(run_dir, kind="train", key="loss"):
    return [r[key] for r in read_metrics(run_dir / "metrics.jsonl") if r["kind"] == kind]


def test_end_to_end_writes_a_usable_run(corpus, tmp_path):
    config = tiny_config(corpus, tmp_path)
    summary = train(config, progress=False, log=lambda *a: None)
    run = tmp_path / "runs" / "shakespeare-char"
    for name in ("checkpoint", "best", "metrics.jsonl", "loss.png", "samples.txt"):
        assert (run / name).exists(), name
    assert summary["steps"] == 20 and summary["tokens_seen"] == 20 * 8 * 32
    train_losses = losses(run)
    assert len(train_losses) == 4 and train_losses[-1] < train_losses[0]
    evals = [r for r in read_metrics(run / "metrics.jsonl") if r["kind"] == "eval"]
    assert [r["step"] for r in evals] == [10, 20]
    assert evals[-1]["val_bpb"] > 0 and evals[-1]["val_loss"] == summary["final_val_loss"]
    mfus = [r["mfu"] for r in read_metrics(run / "metrics.jsonl") if r["kind"] == "train"]
    assert all(0 < mfu < 1 for mfu in mfus)  # of a theoretical peak: never above 100%
    assert summary["best_val_loss"] == min(r["val_loss"] for r in evals)
    assert "=== step 20" in (run / "samples.txt").read_text()

    # the checkpoint folder is what generate/eval load: model + tokenizer, no pickled code
    model = load_model(run / "checkpoint")
    tokenizer = load_tokenizer(run / "checkpoint" / TOKENIZER_FILE)
    assert model.config.vocab_size == tokenizer.vocab_size
    assert model.config.n_embd == 32 and model.config.pos == "rope"
    state = load_train_state(run / "checkpoint")
    assert state["step"] == 20 and state["data_position"] == 20
    saved = json.loads((run / "checkpoint" / "config.json").read_text())
    assert saved["train"]["max_steps"] == 20


def test_same_seed_same_run_other_seed_other_run(corpus, tmp_path):
    a = train(
        tiny_config(corpus, tmp_path / "a", max_steps=10), progress=False, log=lambda *a: None
    )
    b = train(
        tiny_config(corpus, tmp_path / "b", max_steps=10), progress=False, log=lambda *a: None
    )
    c = train(
        tiny_config(corpus, tmp_path / "c", max_steps=10, seed=7),
        progress=False,
        log=lambda *a: None,
    )
    la, lb, lc = (losses(tmp_path / x / "runs" / "shakespeare-char") for x in "abc")
    assert la == lb and a["final_val_loss"] == b["final_val_loss"]
    assert la != lc and a["final_val_loss"] != c["final_val_loss"]


def test_gradient_accumulation_matches_one_big_batch(corpus, tmp_path):
    big = tiny_config(corpus, tmp_path / "big", max_steps=6, batch_size=16, eval_interval=6)
    acc = tiny_config(corpus, tmp_path / "acc", max_steps=6, batch_size=8, eval_interval=6)
    acc = dataclasses.replace(acc, tokens_per_step=16 * 32)
    sb = train(big, progress=False, log=lambda *a: None)
    sa = train(acc, progress=False, log=lambda *a: None)
    assert sa["final_val_loss"] == pytest.approx(sb["final_val_loss"], abs=1e-4)


def test_nan_loss_stops_with_step_and_reason(corpus, tmp_path, monkeypatch):
    # An lr of 1e6 diverges; the config refuses one (lr <= 10), so the schedule is scaled up.
    monkeypatch.setattr(trainer_module, "lr_multiplier", lambda *a, **k: 1e8)
    config = tiny_config(corpus, tmp_path, optimizer="adamw", lr=0.01, grad_clip=0)
    with pytest.raises(trainer_module.TrainingDiverged, match=r"loss became (nan|inf) at step \d+"):
        train(config, progress=False, log=lambda *a: None)


def test_float16_trains_with_loss_scaling(corpus, tmp_path):
    # GPUs without bf16 get fp16 autocast; without a GradScaler small gradients underflow to 0.
    # CPU autocast runs fp16 too, so the scaled path (scale, unscale, clip, step) is tested here.
    config = tiny_config(corpus, tmp_path, dtype="float16", max_steps=10, eval_interval=10)
    summary = train(config, progress=False, log=lambda *a: None)
    run = tmp_path / "runs" / "shakespeare-char"
    train_losses = losses(run)
    assert all(map(math.isfinite, train_losses)) and train_losses[-1] < train_losses[0]
    state = load_train_state(run / "checkpoint")
    assert state["grad_scaler"]["scale"] > 0  # the scaler's state travels for an exact resume
    assert math.isfinite(summary["final_val_loss"])


def test_loss_plot_leaves_the_pyplot_backend_alone(corpus, tmp_path):
    # plot_losses must not call matplotlib.use(): in a notebook that kills inline plots.
    import matplotlib

    from byollm.train.metrics import plot_losses

    train(tiny_config(corpus, tmp_path, max_steps=10), progress=False, log=lambda *a: None)
    matplotlib.use("svg")
    plot_losses(tmp_path / "runs" / "shakespeare-char" / "metrics.jsonl", tmp_path / "l.png")
    assert matplotlib.get_backend() == "svg"
    assert (tmp_path / "l.png").read_bytes().startswith(b"\x89PNG")


def test_existing_run_is_never_overwritten_silently(corpus, tmp_path):
    config = tiny_config(corpus, tmp_path, max_steps=5, eval_interval=5)
    train(config, progress=False, log=lambda *a: None)
    run = tmp_path / "runs" / "shakespeare-char"
    before = (run / "checkpoint" / "model.safetensors").read_bytes()
    with pytest.raises(ByollmError, match="already holds a run; pass --resume"):
        train(config, progress=False, log=lambda *a: None)
    assert (run / "checkpoint" / "model.safetensors").read_bytes() == before
    with pytest.raises(ByollmError, match="no checkpoint to resume"):
        train(dataclasses.replace(config, name="other"), resume=True, progress=False)
    # resuming with another model shape is refused, naming the key
    wider = apply_overrides(config, {"model.n_embd": "64", "max_steps": "10"})
    with pytest.raises(ByollmError, match=r"model.n_embd = 32.*64"):
        train(wider, resume=True, progress=False, log=lambda *a: None)
    assert (run / "checkpoint" / "model.safetensors").read_bytes() == before
    train(config, overwrite=True, progress=False, log=lambda *a: None)  # explicit: allowed


def test_batch_and_data_errors_name_the_problem(corpus, tmp_path):
    with pytest.raises(ByollmError, match=r"tokens_per_step=1000 is not a multiple of .* 256"):
        tiny_config(corpus, tmp_path, tokens_per_step=1000)  # refused before any work
    tiny_text = tmp_path / "tiny.txt"
    tiny_text.write_text("to be or not to be\n" * 20)
    config = tiny_config(tiny_text, tmp_path / "t", **{"model.block_size": 64})
    with pytest.raises(ByollmError, match="block_size=64"):
        train(config, progress=False, log=lambda *a: None)


def test_mismatched_data_folder_is_detected(corpus, tmp_path):
    config = tiny_config(corpus, tmp_path, max_steps=2, eval_interval=2)
    summary = train(config, progress=False, log=lambda *a: None)
    data_dir = trainer_module.Path(summary["data_dir"])
    meta = json.loads((data_dir / "meta.json").read_text())
    meta["tokenizer_hash"] = "0" * 64
    (data_dir / "meta.json").write_text(json.dumps(meta))
    # prepare notices the folder no longer matches and rebuilds it instead of training on it
    train(dataclasses.replace(config, name="again"), progress=False, log=lambda *a: None)
    assert json.loads((data_dir / "meta.json").read_text())["tokenizer_hash"] != "0" * 64


def test_offline_main_job_falls_back_to_python_stdlib(tmp_path, monkeypatch):
    monkeypatch.setattr(trainer_module, "FALLBACK_CORPUS", "python-stdlib:200KB")
    messages = []
    config = load_train_config(
        None, {**TINY, "max_steps": "2", "eval_interval": "2", "out_dir": str(tmp_path)}
    )
    assert config.corpus == "tinyshakespeare"  # not cached, no network in tests
    summary = train(config, progress=False, log=messages.append)
    assert any("falling back" in m and "python-stdlib" in m for m in messages)
    assert "python-stdlib" in summary["data_dir"]


def test_default_preset_file_equals_the_built_in_defaults():
    from_file = load_train_config("shakespeare-char")
    assert from_file == TrainConfig()
    for name in ("shakespeare-bpe", "nanogpt-cpu", "nanogpt-gpu"):
        assert load_train_config(name).name == name
    nano = load_train_config("nanogpt-cpu")
    assert (nano.model.n_layer, nano.model.n_head, nano.model.n_embd, nano.model.block_size) == (
        4,
        4,
        128,
        64,
    )
    assert (nano.batch_size, nano.max_steps, nano.lr) == (12, 2000, 1e-3)
    gpu = load_train_config("nanogpt-gpu")
    assert (gpu.model.n_layer, gpu.model.n_head, gpu.model.n_embd, gpu.model.block_size) == (
        6,
        6,
        384,
        256,
    )
    # the nanoGPT files and the model presets describe the same model (erf GELU included); the
    # files follow nanoGPT's bias=False, the presets keep GPT-2's biases so they export to HF
    for model, preset in ((nano.model, "nanogpt-cpu"), (gpu.model, "small-10m")):
        assert model.mlp == "gelu_exact"
        assert model == GPTConfig.from_preset(preset, vocab_size=model.vocab_size, bias=False)


def test_config_errors(tmp_path):
    with pytest.raises(ByollmError, match="did you mean 'max_steps'"):
        load_train_config(None, {"max_step": "3"})
    with pytest.raises(ByollmError, match="unknown preset 'nope'; presets: .*shakespeare-char"):
        load_train_config("nope")
    with pytest.raises(ByollmError, match="expected an integer"):
        load_train_config(None, {"batch_size": "lots"})
    with pytest.raises(
        ByollmError, match=r"batch_size=0 is out of range: must be an integer in \[1, "
    ):
        load_train_config(None, {"batch_size": "0"})
    bad = tmp_path / "bad.toml"
    bad.write_text("[model]\nn_layers = 3\n")
    with pytest.raises(ByollmError, match="did you mean 'n_layer'"):
        load_train_config(bad)
    assert torch.get_num_threads() == 1


def test_mfu_peaks_are_upper_bounds(monkeypatch):
    from byollm.device import cpu_supports_bf16
    from byollm.train import metrics
    from byollm.train.metrics import (
        cpu_peak_flops,
        gpu_peak_flops,
        measure_peak_flops,
        peak_flops,
    )

    # a CPU's peak from cores x clock x FLOPs per cycle is above what its matmuls reach
    cpu = torch.device("cpu")
    dtypes = [torch.float32] + ([torch.bfloat16] if cpu_supports_bf16() else [])
    for dtype in dtypes:
        peak = peak_flops(cpu, dtype)
        if peak is None:
            pytest.skip("no CPU peak on this system (not Linux, or no clock reported)")
        assert measure_peak_flops(cpu, dtype) < peak
    assert cpu_peak_flops(torch.float32, cores=4, ghz=3.0, flags={"avx2"}) == 4 * 3e9 * 32
    amx = {"avx512f", "avx512_bf16", "amx_bf16"}
    assert cpu_peak_flops(torch.bfloat16, cores=1, ghz=2.0, flags=amx) == 2e9 * 1024
    assert cpu_peak_flops(torch.float32, cores=1, ghz=2.0, flags=amx) == 2e9 * 64
    monkeypatch.setattr(metrics, "_cpu_max_ghz", lambda: None)  # no clock known: no MFU
    assert cpu_peak_flops(torch.float32, cores=1, flags={"avx2"}) is None

    # GPUs: the datasheet's dense numbers, the first matching name fragment wins
    assert gpu_peak_flops("NVIDIA H100 PCIe", torch.bfloat16) == 756e12
    assert gpu_peak_flops("NVIDIA H100 80GB HBM3", torch.bfloat16) == 989.4e12
    assert gpu_peak_flops("NVIDIA A100-SXM4-80GB", torch.float32) == 19.5e12
    assert gpu_peak_flops("NVIDIA A100-SXM4-80GB", torch.float32, tf32=True) == 156e12
    assert gpu_peak_flops("NVIDIA A10G", torch.bfloat16) == 125e12  # not the A100's
    assert gpu_peak_flops("NVIDIA L40S", torch.bfloat16) == 362e12  # not the L4's
    assert gpu_peak_flops("NVIDIA GeForce GTX 1080", torch.float32) is None  # unknown: no MFU
    assert peak_flops(torch.device("mps"), torch.float32) is None


def test_measuring_a_peak_leaves_the_global_rng_alone():
    from byollm.train.metrics import measure_peak_flops

    before = torch.get_rng_state()
    measure_peak_flops(torch.device("cpu"), torch.float32, size=64)
    assert torch.equal(torch.get_rng_state(), before)


def test_a_data_dir_the_user_named_is_never_re_prepared_from_another_corpus(corpus, tmp_path):
    from byollm.data.prepare import prepare

    other = tmp_path / "mine.txt"
    other.write_text("my own text, prepared by hand\n" * 200)
    mine = tmp_path / "mydata"
    prepare(other, "char", mine, progress=False)
    before = {p.name: p.read_bytes() for p in mine.iterdir()}
    # a run of another corpus pointed at it (e.g. forgetting --corpus: the default corpus)
    config = tiny_config(corpus, tmp_path, max_steps=2, eval_interval=2, data_dir=str(mine))
    with pytest.raises(ByollmError, match=r"mydata holds data prepared from other inputs"):
        train(config, progress=False, log=lambda *a: None)
    assert {p.name: p.read_bytes() for p in mine.iterdir()} == before  # untouched
    # with the corpus it was prepared from, it is used as it is
    config = tiny_config(other, tmp_path, max_steps=2, eval_interval=2, data_dir=str(mine))
    summary = train(config, progress=False, log=lambda *a: None)
    assert summary["data_dir"] == str(mine)
    assert {p.name: p.read_bytes() for p in mine.iterdir()} == before
