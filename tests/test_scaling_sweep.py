"""The sweep: its plan (sizes, exact budgets), and its runs as checkpointed experiments that a
rerun skips or resumes, on tiny models and 40 KB of Python built offline."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import train_helpers
from conftest import ROOT

from byollm.data.tokens import split_fingerprint
from byollm.errors import ByollmError
from byollm.model import GPT
from byollm.scaling import sweep as scaling_sweep
from byollm.scaling.sweep import (
    SweepConfig,
    load_sweep_config,
    model_for_depth,
    param_counts,
    plan_point,
    plan_sweep,
    read_results,
    run_sweep,
    training_flops_per_token,
)
from byollm.train import trainer as trainer_module


@pytest.fixture(autouse=True)
def _one_thread():
    with train_helpers.single_thread():
        yield


def tiny_sweep(tmp_path, **changes) -> SweepConfig:
    """Two depths at one budget, on 40 KB of Python built offline: a few seconds in all."""
    config = SweepConfig(
        name="tiny",
        out_dir=str(tmp_path / "sweeps"),
        corpus="python-stdlib:40KB",  # built offline: no download, never skipped
        val_fraction=0.1,
        budgets=[1.2e8],
        depths=[1, 2],
        aspect_ratio=8,
        head_dim=8,
        block_size=32,
        batch_size=4,
        min_steps=5,
        eval_rows=8,
        threads=1,
    )
    return dataclasses.replace(config, **changes)


def test_cpu_preset_file_is_the_defaults():
    """`byollm scaling run` with no --config uses SweepConfig(); configs/scaling/cpu.toml says
    the same, so reading either gives one sweep."""
    from_file = load_sweep_config(ROOT / "configs" / "scaling" / "cpu.toml")
    assert from_file == SweepConfig()
    for name in ("cpu-smoke", "gpu"):
        assert load_sweep_config(name).name == f"scaling-{name}"


def test_plan_centres_sizes_on_the_guess_and_spends_each_budget():
    config = SweepConfig()
    points = plan_sweep(config, vocab_size=100)
    assert len(points) == 5 * len(config.budgets)
    for budget in config.budgets:
        depths = [p.depth for p in points if p.budget == budget]
        assert depths == list(range(depths[0], depths[0] + 5))
        # the guess (20 tokens per parameter) lies inside the sizes trained
        ratios = [
            p.tokens / param_counts(p.model)["non_embedding_head"]
            for p in points
            if p.budget == budget
        ]
        assert max(ratios) > config.tokens_per_param_guess > min(ratios)
    for p in points:
        flops_per_step = training_flops_per_token(p.model) * p.tokens_per_step
        assert abs(p.steps * flops_per_step - p.budget) <= flops_per_step / 2  # to the step
        assert p.model.n_embd == 16 * p.depth and p.model.n_embd // p.model.n_head == 16


def test_depths_are_clamped_to_the_ladder_and_short_runs_refused():
    config = SweepConfig(budgets=[1e9], sizes=3, min_steps=1)
    assert [p.depth for p in plan_sweep(config, 100)] == [1, 2, 3]  # the guess is below depth 1
    with pytest.raises(ByollmError, match=r"fewer than min_steps=30 steps: C1e9-d1 \(19 steps\)"):
        plan_sweep(dataclasses.replace(config, min_steps=30), 100)
    with pytest.raises(ByollmError, match="multiple of head_dim"):
        SweepConfig(aspect_ratio=24, head_dim=16)
    with pytest.raises(ByollmError, match="sizes=12 needs that many depths"):
        SweepConfig(sizes=12)


def test_param_counts_match_the_model():
    config = SweepConfig()
    for depth in (1, 3):
        model_config = model_for_depth(config, depth, vocab_size=77)
        counts = param_counts(model_config)
        model = GPT(model_config)
        assert counts["total"] == sum(p.numel() for p in model.parameters())
        embedding = 77 * model_config.n_embd  # the token table; the untied head is the same size
        assert counts["non_embedding_head"] == counts["total"] - embedding
        assert counts["non_embedding"] == counts["total"] - 2 * embedding


def test_sweep_records_every_point_and_a_rerun_skips_them(tmp_path, monkeypatch):
    config = tiny_sweep(tmp_path)
    records = run_sweep(config, progress=False, log=lambda *a: None)
    results = config.sweep_dir() / "results.jsonl"
    assert [r["point"] for r in read_results(results)] == ["C1.2e8-d1", "C1.2e8-d2"]
    meta = json.loads((config.sweep_dir() / "data" / "meta.json").read_text())
    for record in records:
        point = plan_point(config, record["budget"], record["depth"], meta["vocab_size"])
        assert record["tokens"] == point.tokens == record["steps"] * 4 * 32
        assert record["flops_exact"] == training_flops_per_token(point.model) * point.tokens
        assert record["flops_exact"] == pytest.approx(1.2e8, rel=0.05)
        assert record["flops_6nd"] == 6 * record["params_non_embedding_head"] * record["tokens"]
        assert record["epochs"] == record["tokens"] / meta["splits"]["train"]["tokens"]
        assert 0 < record["val_loss"] < 5 and record["val_bpb"] > 0 and record["wall_s"] > 0
        run = config.sweep_dir() / "runs" / record["point"]
        assert (run / "checkpoint" / "train_state.pt").exists()
    assert records[0]["lr"] == pytest.approx(8e-3 * 4)  # AdamW lr x sqrt(128 / width 8)

    def no_training(*args, **kwargs):
        raise AssertionError("a finished point was trained again")

    monkeypatch.setattr("byollm.train.train", no_training)
    lines = []
    assert run_sweep(config, progress=False, log=lines.append) == records
    assert sum("skipped" in line for line in lines) == 2
    assert len(results.read_text().splitlines()) == 2

    # a changed rule is not silently mixed into the old results
    with pytest.raises(ByollmError, match="C1.2e8-d1 was trained with another config"):
        run_sweep(dataclasses.replace(config, lr=1e-3), progress=False, log=lambda *a: None)

    # nor are runs scored on another val set: a data folder prepared again with another split
    # (a record from before `data_split_sha256` is checked by the train tokens of its epochs)
    first = json.loads(results.read_text().splitlines()[0])
    assert first["data_split_sha256"] == split_fingerprint(meta)
    for changed in (
        {**first, "data_split_sha256": "0" * 64},
        {
            k: v
            for k, v in {**first, "epochs": first["epochs"] * 0.9}.items()
            if k != "data_split_sha256"
        },
    ):
        results.write_text(json.dumps(changed) + "\n" + results.read_text().split("\n", 1)[1])
        with pytest.raises(ByollmError, match="C1.2e8-d1 was trained on another train/val split"):
            run_sweep(config, progress=False, log=lambda *a: None)
    old_style = {k: v for k, v in first.items() if k != "data_split_sha256"}
    results.write_text(json.dumps(old_style) + "\n" + results.read_text().split("\n", 1)[1])
    assert run_sweep(config, progress=False, log=lambda *a: None)[0]["point"] == "C1.2e8-d1"


def test_an_interrupted_sweep_resumes_where_it_stopped(tmp_path, monkeypatch):
    """Kill the second point mid-run; the rerun resumes it from its checkpoint, and it ends
    exactly where an uninterrupted sweep ends."""
    straight = run_sweep(tiny_sweep(tmp_path, name="straight"), progress=False, log=lambda *a: None)
    config = tiny_sweep(tmp_path, name="interrupted")
    real_step = trainer_module.Trainer.train_step

    def step_until_interrupt(self, lr_mult):
        # two steps after the point's first checkpoint (made at step eval_interval)
        if self.config.name.endswith("-d2") and self.step == self.config.eval_interval + 2:
            raise KeyboardInterrupt
        return real_step(self, lr_mult)

    monkeypatch.setattr(trainer_module.Trainer, "train_step", step_until_interrupt)
    with pytest.raises(KeyboardInterrupt):
        run_sweep(config, progress=False, log=lambda *a: None)
    assert len(read_results(config.sweep_dir() / "results.jsonl")) == 1
    monkeypatch.setattr(trainer_module.Trainer, "train_step", real_step)

    lines = []
    resumed = run_sweep(config, progress=False, log=lines.append)
    first_checkpoint = math.ceil(straight[1]["steps"] / 2)
    assert any(
        f"resuming {config.sweep_dir()}/runs/C1.2e8-d2 at step {first_checkpoint}" in line
        for line in lines
    ), lines
    assert sum("skipped" in line for line in lines) == 1
    for a, b in zip(straight, resumed):
        assert a["point"] == b["point"] and a["tokens"] == b["tokens"]
        assert b["val_loss"] == pytest.approx(a["val_loss"], abs=1e-6)


def test_results_file_errors_name_the_line(tmp_path):
    path = tmp_path / "results.jsonl"
    path.write_text('{"format": "byollm-scaling-run", "version": 1, "point": "a"}\n{"trunc')
    assert [r["point"] for r in read_results(path)] == ["a"]  # a torn last line is dropped
    path.write_text('{"format": "byollm-scaling-run", "version": 2}\n')
    with pytest.raises(ByollmError, match=r"results.jsonl:1: byollm-scaling-run version 2"):
        read_results(path)
    path.write_text('not json\n{"format": "byollm-scaling-run", "version": 1}\n')
    with pytest.raises(ByollmError, match=r"results.jsonl:1: not a JSON line"):
        read_results(path)
    with pytest.raises(ByollmError, match="run `byollm scaling run` first"):
        read_results(tmp_path / "missing.jsonl")
    assert scaling_sweep.budget_label(3.16e13) == "3.16e13"


def test_fingerprint_ignores_where_and_how_fast_not_what(tmp_path):
    config = SweepConfig()
    point = plan_point(config, 1e12, 3, vocab_size=100)
    train_config = scaling_sweep.point_train_config(config, point, tmp_path / "data")
    fingerprint = scaling_sweep.config_hash(train_config)
    moved = dataclasses.replace(train_config, out_dir="elsewhere", data_dir="x", threads=2)
    assert scaling_sweep.config_hash(moved) == fingerprint
    assert scaling_sweep.config_hash(dataclasses.replace(train_config, lr=1e-3)) != fingerprint
    assert scaling_sweep.config_hash(dataclasses.asdict(train_config)) == fingerprint
    # a run recorded before the `fsdp` key existed still matches its point
    before_fsdp = {k: v for k, v in dataclasses.asdict(train_config).items() if k != "fsdp"}
    assert scaling_sweep.config_hash(before_fsdp) == fingerprint


def test_two_processes_share_a_sweep(tmp_path, monkeypatch):
    """A point whose run folder another process holds (its flock on .lock) is passed over; when
    only such points are left the sweep waits, and takes the point up once that process lets
    go: here it dies mid-run, so this one trains it."""
    import fcntl
    import os

    config = tiny_sweep(tmp_path, depths=[1, 2, 3])
    held = config.sweep_dir() / "runs" / "C1.2e8-d1"
    held.mkdir(parents=True)
    fd = os.open(held / ".lock", os.O_RDWR | os.O_CREAT)
    os.write(fd, b"4242\n")
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    lines, trained = [], []

    def log(line):
        lines.append(line)
        if line.startswith("byollm train: C1.2e8-"):
            trained.append(line.split(":")[1].strip())

    waits = []

    def other_process_dies(seconds):
        waits.append(seconds)
        os.close(fd)

    monkeypatch.setattr(scaling_sweep.time, "sleep", other_process_dies)
    records = run_sweep(config, progress=False, log=log, wait_s=0.5)
    assert waits == [0.5]  # once d2 and d3 were done, and d1 still held
    assert sum("is being trained by another process (pid 4242)" in line for line in lines) == 1
    assert trained == ["C1.2e8-d2", "C1.2e8-d3", "C1.2e8-d1"], lines
    assert [r["point"] for r in records] == ["C1.2e8-d1", "C1.2e8-d2", "C1.2e8-d3"]
    results = read_results(config.sweep_dir() / "results.jsonl")
    assert [r["point"] for r in results] == ["C1.2e8-d2", "C1.2e8-d3", "C1.2e8-d1"]
