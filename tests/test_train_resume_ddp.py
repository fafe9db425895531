"""Exact resume (after SIGKILL; with dropout), and 2-process DDP: equal to 1 process, and
stopped together when the run folder is locked (real subprocesses)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import train_helpers
from safetensors.torch import load_file

from byollm.errors import ByollmError
from byollm.train import load_train_config, train
from byollm.train.metrics import read_metrics
from byollm.train.rundir import RunFolder
from byollm.train.trainer import Trainer

ROOT = Path(__file__).resolve().parents[1]
SETTINGS = {
    "batch_size": "8",
    "max_steps": "24",
    "eval_interval": "4",  # a checkpoint every 4 steps
    "eval_rows": "16",
    "log_interval": "1",
    "warmup_steps": "4",
    "sample_tokens": "0",
    "model.block_size": "32",
    "model.n_layer": "2",
    "model.n_head": "2",
    "model.n_embd": "32",
    "threads": "1",
}


@pytest.fixture(autouse=True)
def _one_thread():
    with train_helpers.single_thread():
        yield


@pytest.fixture
def corpus(tmp_path):
    return train_helpers.shakespeare_excerpt(tmp_path, 40_000)


def cli_args(settings: dict) -> list[str]:
    return [arg for key, value in settings.items() for arg in (f"--{key}", str(value))]


def subprocess_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "src"), env.get("PYTHONPATH", "")])
    env["OMP_NUM_THREADS"] = "1"
    return env


def train_losses(run_dir: Path) -> list[float]:
    return [r["loss"] for r in read_metrics(run_dir / "metrics.jsonl") if r["kind"] == "train"]


def test_sigkill_at_a_random_step_then_resume_is_exact(corpus, tmp_path):
    settings = {**SETTINGS, "corpus": str(corpus)}
    # the uninterrupted reference, in this process
    reference = load_train_config(None, {**settings, "out_dir": str(tmp_path / "ref")})
    expected = train(reference, progress=False, log=lambda *a: None)

    # the same run in a subprocess, killed without warning somewhere after the first checkpoint
    kill_after = random.Random().randint(5, 21)
    out = tmp_path / "killed"
    run_dir = out / "shakespeare-char"
    command = [sys.executable, "-m", "byollm", "train", "--no-progress"]
    command += cli_args({**settings, "out_dir": str(out)})
    proc = subprocess.Popen(
        command, env=subprocess_env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    deadline = time.monotonic() + 240
    try:
        while proc.poll() is None and time.monotonic() < deadline:
            metrics = run_dir / "metrics.jsonl"
            if metrics.exists() and any(
                r.get("step", 0) >= kill_after for r in read_metrics(metrics)
            ):
                break
            time.sleep(0.02)
        assert proc.poll() is None, f"run ended before the kill: {proc.stderr.read().decode()}"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL

    resumed_config = load_train_config(None, {**settings, "out_dir": str(out)})
    resumed = train(resumed_config, resume=True, progress=False, log=lambda *a: None)

    assert resumed["final_val_loss"] == expected["final_val_loss"], f"killed after {kill_after}"
    a = load_file(str(tmp_path / "ref" / "shakespeare-char" / "checkpoint" / "model.safetensors"))
    b = load_file(str(run_dir / "checkpoint" / "model.safetensors"))
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), f"weights differ (killed after {kill_after})"
    assert train_losses(run_dir) == train_losses(tmp_path / "ref" / "shakespeare-char")


def test_two_process_ddp_matches_one_process(corpus, tmp_path):
    settings = {**SETTINGS, "corpus": str(corpus), "max_steps": "8", "eval_interval": "8"}
    # float32: 2 x 4 rows sum their gradients in another order than 8 rows; in bf16 (what `auto`
    # picks on an AVX-512 BF16 CPU) that rounding alone moves a loss by ~2e-4, in fp32 by ~1e-7.
    settings["dtype"] = "float32"
    single = load_train_config(None, {**settings, "out_dir": str(tmp_path / "one")})
    expected = train(single, progress=False, log=lambda *a: None)  # batch 8 in one process

    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node=2",
        "-m",
        "byollm",
        "train",
        "--no-progress",
    ]
    command += cli_args({**settings, "batch_size": "4", "out_dir": str(tmp_path / "two")})
    result = subprocess.run(
        command, env=subprocess_env(), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "done: 8 steps" in result.stdout  # rank 0 prints the summary, once
    assert result.stdout.count("done:") == 1

    one = train_losses(tmp_path / "one" / "shakespeare-char")
    two = train_losses(tmp_path / "two" / "shakespeare-char")
    assert len(one) == len(two) == 8
    assert two == pytest.approx(one, rel=1e-4, abs=1e-5)
    evals = read_metrics(tmp_path / "two" / "shakespeare-char" / "metrics.jsonl")
    final = [r for r in evals if r["kind"] == "eval"][-1]
    assert final["val_loss"] == pytest.approx(expected["final_val_loss"], rel=1e-4)


def test_resume_with_dropout_is_exact(corpus, tmp_path, monkeypatch):
    # Dropout draws from the global RNG at every step, so anything else that draws from it after
    # the checkpoint's RNG state is restored (it was a peak-FLOPs probe) changes the run.
    settings = {**SETTINGS, "corpus": str(corpus), "max_steps": "8", "model.dropout": "0.2"}
    reference = load_train_config(None, {**settings, "out_dir": str(tmp_path / "ref")})
    expected = train(reference, progress=False, log=lambda *a: None)

    config = load_train_config(None, {**settings, "out_dir": str(tmp_path / "crashed")})
    train_step = Trainer.train_step

    def crash_at_step_6(self, lr_mult):
        if self.step == 6:  # after the step-4 checkpoint
            raise KeyboardInterrupt
        return train_step(self, lr_mult)

    with pytest.MonkeyPatch.context() as crash:  # undone alone, not conftest's isolation
        crash.setattr(Trainer, "train_step", crash_at_step_6)
        with pytest.raises(KeyboardInterrupt):
            train(config, progress=False, log=lambda *a: None)
    resumed = train(config, resume=True, progress=False, log=lambda *a: None)

    assert resumed["final_val_loss"] == expected["final_val_loss"]
    run, ref = tmp_path / "crashed" / "shakespeare-char", tmp_path / "ref" / "shakespeare-char"
    assert train_losses(run) == train_losses(ref)
    a = load_file(str(ref / "checkpoint" / "model.safetensors"))
    b = load_file(str(run / "checkpoint" / "model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_ddp_ranks_stop_together_on_a_locked_run(tmp_path):
    run = tmp_path / "runs" / "shakespeare-char"
    holder = RunFolder.open(run, resume=False, overwrite=False)  # another trainer, as it were
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    command += ["-m", "byollm", "train", "--no-progress", "--out_dir", str(tmp_path / "runs")]
    try:
        # a rank left waiting for rank 0 would hang until the 30-minute collective timeout
        result = subprocess.run(
            command, env=subprocess_env(), capture_output=True, text=True, timeout=120
        )
    finally:
        holder.release()
    assert result.returncode != 0
    message = f"being written by another byollm process (pid {os.getpid()})"
    assert result.stderr.count(message) == 1, result.stderr[-3000:]  # said once, by rank 0


def torchrun(settings: dict, *extra: str) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    command += ["-m", "byollm", "train", "--no-progress", *extra, *cli_args(settings)]
    result = subprocess.run(
        command, env=subprocess_env(), capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def test_fsdp_matches_one_process_and_resumes_exactly_from_the_one_checkpoint_format(
    corpus, tmp_path
):
    # AdamW (FSDP cannot run Muon) and a constant lr after warmup, so a run stopped at step 4
    # and resumed to step 8 follows the same schedule as a run of 8 steps.
    settings = {
        **SETTINGS,
        "corpus": str(corpus),
        "max_steps": "8",
        "optimizer": "adamw",
        "schedule": "constant",
        "dtype": "float32",  # bf16 would magnify the different order of the gradient sums
    }
    single = load_train_config(None, {**settings, "out_dir": str(tmp_path / "one")})
    train(single, progress=False, log=lambda *a: None)  # batch 8 in one process

    # 2 processes x 2 micro-steps x 2 rows: with gradient accumulation under FSDP, the same 8
    # rows per step as the one process
    two = {**settings, "batch_size": "2", "tokens_per_step": "256"}
    result = torchrun({**two, "out_dir": str(tmp_path / "fsdp")}, "--fsdp")
    assert result.stdout.count("done: 8 steps") == 1
    torchrun({**two, "max_steps": "4", "out_dir": str(tmp_path / "resumed")}, "--fsdp")
    torchrun({**two, "out_dir": str(tmp_path / "resumed")}, "--fsdp", "--resume")

    one, fsdp, resumed = (
        tmp_path / name / "shakespeare-char" for name in ("one", "fsdp", "resumed")
    )
    # the whole batch split over two processes: one process's losses, up to summation order
    assert train_losses(fsdp) == pytest.approx(train_losses(one), rel=1e-4, abs=1e-5)
    # stopped at the step-4 checkpoint and resumed: exactly the uninterrupted FSDP run
    assert train_losses(resumed) == train_losses(fsdp)
    a = load_file(str(fsdp / "checkpoint" / "model.safetensors"))
    b = load_file(str(resumed / "checkpoint" / "model.safetensors"))
    plain = load_file(str(one / "checkpoint" / "model.safetensors"))
    assert a.keys() == b.keys() == plain.keys()  # the one checkpoint format: full weights
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert all(a[k].shape == plain[k].shape for k in a)
    # the optimizer state is the plain, index-keyed one: a one-process resume can read it
    more = load_train_config(
        None, {**settings, "max_steps": "9", "out_dir": str(tmp_path / "fsdp")}
    )
    assert train(more, resume=True, progress=False, log=lambda *a: None)["steps"] == 9


def test_fsdp_refuses_muon_in_one_line():
    with pytest.raises(ByollmError, match="fsdp=true needs optimizer = adamw"):
        load_train_config(None, {"fsdp": "true"})
