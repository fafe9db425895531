"""report.md: written at the end of a run from the run's own files, and rebuilt on demand."""

from __future__ import annotations

import json
import re
import statistics
from pathlib import Path

import pytest
import tomllib
import torch
import train_helpers

from byollm.cli import main
from byollm.config import from_dict
from byollm.device import pick_dtype
from byollm.train import TrainConfig, train
from byollm.train.metrics import read_metrics
from byollm.train.report import last_sample, task_scores, write_report


@pytest.fixture(autouse=True)
def _one_thread():
    with train_helpers.single_thread():
        yield


@pytest.fixture
def run(tmp_path):
    """A finished tiny run: (its folder, its config, the summary train() returned)."""
    corpus = train_helpers.shakespeare_excerpt(tmp_path, 60_000)
    config = train_helpers.tiny_config(corpus, tmp_path)
    summary = train(config, progress=False, log=lambda *a: None)
    return tmp_path / "runs" / config.name, config, summary


def section(report: str, title: str) -> str:
    """The text of the `## title` section of a report ('' when it has none)."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |^<sub>|\Z)", report, re.S | re.M)
    return match.group(1) if match else ""


def test_a_run_writes_its_report_with_the_numbers_of_its_files(run):
    run_dir, config, summary = run
    assert summary["report"] == str(run_dir / "report.md")
    report = (run_dir / "report.md").read_text()
    records = read_metrics(run_dir / "metrics.jsonl")
    trains = [r for r in records if r["kind"] == "train"]
    evals = [r for r in records if r["kind"] == "eval"]

    losses = section(report, "Losses")
    best = min(evals, key=lambda r: r["val_loss"])
    assert f"| final | 20 | {evals[-1]['train_loss']:.4f} | {evals[-1]['val_loss']:.4f} |" in losses
    assert f"| best | {best['step']} |" in losses and f"{best['val_loss']:.4f}" in losses
    assert f"{evals[-1]['val_bpb']:.3f}" in losses
    assert f"Batch loss {trains[0]['loss']:.4f} at step 5" in losses

    speed = section(report, "Time and throughput")
    assert f"{statistics.median(r['tokens_per_s'] for r in trains):,.0f}" in speed
    assert f"{100 * statistics.median(r['mfu'] for r in trains):.1f}%" in speed
    assert "| steps | 20 |" in speed

    assert f"| parameters | {summary['params']:,} |" in section(report, "Model")
    meta = json.loads((Path(summary["data_dir"]) / "meta.json").read_text())
    data = section(report, "Data")
    assert f"| train tokens | {meta['splits']['train']['tokens']:,}" in data
    assert f"| tokens trained on | {20 * 8 * 32:,}" in data

    # the folded TOML reads back as the run's config
    toml = re.search(r"```toml\n(.*?)\n```", section(report, "Config"), re.S).group(1)
    assert from_dict(TrainConfig, tomllib.loads(toml)) == config

    assert "![train and val loss against tokens seen](loss.png)" in report
    heading, text = last_sample(run_dir / "samples.txt")
    assert heading.startswith("step 20,") and text in section(report, "Sample")
    machine = section(report, "Machine")
    dtype = str(pick_dtype(torch.device("cpu"), config.dtype)).removeprefix("torch.")
    assert "| device | cpu |" in machine and f"| dtype | {dtype} |" in machine
    assert "| torch threads | 1 |" in machine
    assert "load (1 min) at start -> end" in machine  # Linux always has a load average
    assert "Task scores" not in report  # this run evaluated no tasks


def test_the_report_is_rebuilt_from_the_run_folder(run, capsys):
    run_dir, _, _ = run
    machine_before = section((run_dir / "report.md").read_text(), "Machine")
    for name in ("report.md", "loss.png", "samples.txt"):
        (run_dir / name).unlink()
    # task scores in the shapes a run may log them: eval keys, a "tasks" record, a "tasks" dict
    with (run_dir / "metrics.jsonl").open("a") as f:
        f.write(json.dumps({"kind": "eval", "step": 20, "val_loss": 9.0, "blimp_acc": 0.61}) + "\n")
        f.write(json.dumps({"kind": "tasks", "step": 20, "hellaswag_acc_norm": 0.27}) + "\n")
        f.write(json.dumps({"kind": "eval", "step": 20, "val_loss": 9.0, "tasks": {"x": 0.5}}))

    assert main(["train", "--report", str(run_dir)]) == 0
    assert capsys.readouterr().out.strip() == str(run_dir / "report.md")
    report = (run_dir / "report.md").read_text()
    assert "No loss.png in the run folder." in report and "](loss.png)" not in report
    assert "No samples.txt in the run folder." in report
    tasks = section(report, "Task scores")
    assert "| blimp_acc | 0.6100 (step 20) |" in tasks
    assert "| hellaswag_acc_norm | 0.2700 (step 20) |" in tasks and "| x | 0.5000" in tasks
    # the machine that trained the run, not the one rebuilding the report
    assert section(report, "Machine") == machine_before


def test_a_bare_run_folder_still_gets_a_report(tmp_path):
    run_dir = tmp_path / "bare"
    run_dir.mkdir()
    (run_dir / "run.json").write_text(json.dumps({"format": "byollm-run", "name": "bare"}))
    (run_dir / "metrics.jsonl").write_text('{"kind": "train", "step": 1, "loss": 4.2, "mfu": null')
    path = write_report(run_dir, log=pytest.fail)
    report = path.read_text()
    assert report.startswith("# Run report: bare")
    for title in ("Config", "Model", "Machine"):
        assert "Not recorded" in section(report, title), title


@pytest.mark.parametrize(
    ("start", "end", "shared"), [(0.1, 1.1, False), (0.2, 5.3, True), (7.0, 1.0, True)]
)
def test_the_report_says_when_other_programs_shared_the_cores(tmp_path, start, end, shared):
    run_dir = tmp_path / "r"
    run_dir.mkdir()
    (run_dir / "run.json").write_text(json.dumps({"format": "byollm-run", "name": "r"}))
    machine = {"device": "cpu", "threads": 2, "cpu_cores": 2}
    machine |= {"load_at_start": start, "load_at_end": end}
    (run_dir / "machine.json").write_text(json.dumps(machine))
    text = section(write_report(run_dir, log=pytest.fail).read_text(), "Machine")
    assert f"| load (1 min) at start -> end | {start:.2f} -> {end:.2f} |" in text
    assert ("other programs shared the CPU" in text) == shared


def test_a_report_that_cannot_be_written_is_one_warning_line(tmp_path):
    run_dir = tmp_path / "run"
    (run_dir / "report.md").mkdir(parents=True)  # os.replace cannot put a file there
    (run_dir / "run.json").write_text(json.dumps({"format": "byollm-run", "name": "run"}))
    lines = []
    assert write_report(run_dir, log=lines.append) is None
    assert len(lines) == 1 and "warning" in lines[0] and "report.md" in lines[0], lines
    # no temporary file left behind
    assert sorted(p.name for p in run_dir.iterdir()) == ["report.md", "run.json"]


def test_report_of_a_folder_that_is_not_a_run_is_one_line(tmp_path, capsys):
    assert main(["train", "--report", str(tmp_path)]) == 2
    train_helpers.one_line_error(capsys, "not a byollm run folder", str(tmp_path))
    assert main(["train", "--report", str(tmp_path), "--max_steps", "3"]) == 2
    train_helpers.one_line_error(capsys, "--report RUN_DIR")


def test_task_scores_keep_their_order_and_skip_non_numbers():
    records = [
        {"kind": "eval", "step": 10, "val_loss": 3.0, "blimp_acc": 0.5, "task_lambada": 0.1},
        {"kind": "eval", "step": 20, "val_loss": 2.0, "blimp_acc": 0.6, "task_lambada": None},
        {"kind": "train", "step": 20, "loss": 2.0, "blimp_acc": 0.9},  # not an evaluation
    ]
    assert task_scores(records) == {"blimp_acc": [(10, 0.5), (20, 0.6)], "lambada": [(10, 0.1)]}


def test_last_sample_is_the_last_block(tmp_path):
    path = tmp_path / "samples.txt"
    path.write_text(
        "=== step 10, val loss 3.0 ===\nfirst\n\n=== step 20, val loss 2.0 ===\nx ``` y\n\n"
    )
    assert last_sample(path) == ("step 20, val loss 2.0", "x ``` y")
