"""Run folders: plain names, --overwrite only of byollm runs, one writer per run (a real lock)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import train_helpers
from hypothesis import given, settings
from hypothesis import strategies as st

from byollm.cli import main
from byollm.errors import ByollmError
from byollm.train import load_train_config, train
from byollm.train.rundir import LOCK_FILE, RunFolder, is_run_folder

ROOT = Path(__file__).resolve().parents[1]


one_line_error = train_helpers.one_line_error


def listing(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


# --- names ---------------------------------------------------------------------------------------

BAD_NAMES = [".", "..", "", ".hidden", "a/b", "../up", "/abs", "a\\b", "x" * 129, "a\nb", "my run"]


@pytest.mark.parametrize("name", BAD_NAMES)
def test_run_names_are_plain_names(name):
    with pytest.raises(ByollmError, match="name .*: use up to 128 letters"):
        load_train_config(None, {"name": name})


@settings(max_examples=40, deadline=None)
@given(st.text(max_size=12))
def test_an_accepted_name_is_one_new_folder_inside_out_dir(name):
    try:
        config = load_train_config(None, {"name": name, "out_dir": "/tmp/runs"})
    except ByollmError:
        return
    assert config.run_dir().parent == Path("/tmp/runs") and config.run_dir().name == name
    assert not name.startswith(".") and "/" not in name and "\\" not in name


def test_out_dir_tilde_is_expanded(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    config = load_train_config(None, {"out_dir": "~/runs", "name": "x"})
    assert config.run_dir() == tmp_path / "runs" / "x"


# --- what may be deleted -------------------------------------------------------------------------


def test_a_folder_that_is_not_a_run_is_never_touched(tmp_path, monkeypatch, capsys):
    home = tmp_path / "home"
    (home / "Documents").mkdir(parents=True)
    (home / "Documents" / "thesis.tex").write_text("years of work")
    (home / "notes.txt").write_text("mine")
    monkeypatch.setenv("HOME", str(home))
    before = listing(home)
    for flags in ([], ["--overwrite"], ["--resume"]):
        assert main(["train", "--out_dir", "~", "--name", "Documents", *flags]) == 2
        one_line_error(capsys, f"{home / 'Documents'} holds files but is not a byollm run")
    assert main(["train", "--out_dir", "~", "--name", "notes.txt", "--overwrite"]) == 2
    one_line_error(capsys, "notes.txt is a file, not a run folder")
    assert listing(home) == before  # not even a lock file was written


def make_run(folder: Path) -> None:
    """A run folder as the trainer leaves it (without training: only the names matter here)."""
    folder.mkdir(parents=True)
    RunFolder(folder).mark("r")
    (folder / "checkpoint").mkdir()
    (folder / "checkpoint" / "model.safetensors").write_bytes(b"weights")
    (folder / ".checkpoint.tmp-123").mkdir()
    (folder / ".run.json.tmp-123").write_text("{")  # a write a crash interrupted (paths.py)
    (folder / "best.old").mkdir()  # a crash between the two renames of a save
    (folder / "metrics.jsonl").write_text("{}\n")
    (folder / "samples.txt").write_text("=== step 1 ===\n")


def test_overwrite_deletes_only_what_byollm_wrote(tmp_path):
    run = tmp_path / "r"
    make_run(run)
    (run / "notes.txt").write_text("my observations")
    before = listing(run)
    with pytest.raises(ByollmError, match=r"also holds notes.txt; move that away first"):
        RunFolder.open(run, resume=False, overwrite=True)
    assert listing(run) == before  # nothing deleted, no lock left behind
    (run / "notes.txt").unlink()
    kept = listing(run)
    folder = RunFolder.open(run, resume=False, overwrite=True)
    assert listing(run) == sorted([*kept, LOCK_FILE])  # deleted only when the new run writes
    folder.mark("r")
    assert listing(run) == [LOCK_FILE, "run.json"]
    folder.release()
    assert listing(run) == ["run.json"]


def test_runs_of_older_byollm_versions_are_recognised(tmp_path):
    run = tmp_path / "old"
    (run / "best").mkdir(parents=True)
    assert not is_run_folder(run)
    (run / "best" / "config.json").write_text(json.dumps({"format": "byollm-model", "train": {}}))
    assert is_run_folder(run)
    (run / "run.json").write_text("not json")
    assert is_run_folder(run)


def test_a_failed_start_leaves_no_folder_behind(tmp_path):
    config = train_helpers.tiny_config(tmp_path / "no-such-corpus.txt", tmp_path)
    with pytest.raises(ByollmError):
        train(config, progress=False, log=lambda *a: None)
    assert not (tmp_path / "runs").exists() or listing(tmp_path / "runs") == []


def test_overwrite_that_fails_before_training_keeps_the_old_run(tmp_path):
    corpus = tmp_path / "c.txt"
    corpus.write_text("".join(f"line {i}: the quick brown fox\n" for i in range(400)))
    quiet = {"progress": False, "log": lambda *a: None}
    with train_helpers.single_thread():
        config = train_helpers.tiny_config(corpus, tmp_path, max_steps=2, eval_interval=2)
        train(config, **quiet)
        run = config.run_dir()
        before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
        # a typo in the corpus: before, --overwrite had already deleted the run
        typo = train_helpers.tiny_config(tmp_path / "c.tx", tmp_path, max_steps=2)
        with pytest.raises(ByollmError):
            train(typo, overwrite=True, **quiet)
        assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before
        # starting over from the run's own best weights: read before the run is replaced
        again = train_helpers.tiny_config(
            corpus, tmp_path, max_steps=2, eval_interval=2, init_from=str(run / "best")
        )
        train(again, overwrite=True, **quiet)
        assert (run / "run.json").is_file() and (run / "checkpoint" / "config.json").is_file()


# --- one writer ----------------------------------------------------------------------------------


def test_a_second_opening_is_refused_with_the_first_ones_pid(tmp_path):
    run = tmp_path / "r"
    first = RunFolder.open(run, resume=False, overwrite=False)
    assert (run / LOCK_FILE).read_text() == f"{os.getpid()}\n"
    for resume, overwrite in ((False, False), (False, True)):
        with pytest.raises(ByollmError, match=rf"another byollm process \(pid {os.getpid()}\)"):
            RunFolder.open(run, resume=resume, overwrite=overwrite)
    first.release()
    assert not run.exists()  # created for a run that never wrote anything: removed again
    RunFolder.open(run, resume=False, overwrite=False).release()


def test_a_stale_lock_file_does_not_block(tmp_path):
    run = tmp_path / "r"
    make_run(run)
    (run / LOCK_FILE).write_text("999999\n")  # left by a process that was killed
    folder = RunFolder.open(run, resume=False, overwrite=True)
    assert (run / LOCK_FILE).read_text() == f"{os.getpid()}\n"
    folder.release()
    assert not (run / LOCK_FILE).exists()


def test_a_lock_file_that_is_a_symlink_is_never_written_through(tmp_path):
    run = tmp_path / "r"
    make_run(run)
    precious = tmp_path / "precious.txt"
    precious.write_text("do not truncate me\n")
    (run / LOCK_FILE).symlink_to(precious)
    with pytest.raises(ByollmError, match="lock file"):
        RunFolder.open(run, resume=False, overwrite=True)
    assert precious.read_text() == "do not truncate me\n"


def test_two_trainers_one_run_and_a_killed_ones_lock_does_not_block(tmp_path, capsys):
    corpus = train_helpers.shakespeare_excerpt(tmp_path, 40_000)
    settings = {**train_helpers.TINY, "corpus": str(corpus), "out_dir": str(tmp_path / "runs")}
    settings.update(max_steps="100000", eval_interval="2", sample_tokens="0")
    args = ["train", "--no-progress"]
    args += [arg for key, value in settings.items() for arg in (f"--{key}", value)]
    run = tmp_path / "runs" / "shakespeare-char"
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
    }
    first = subprocess.Popen(
        [sys.executable, "-m", "byollm", *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 240
        while not (run / "checkpoint" / "train_state.pt").exists():
            assert first.poll() is None, first.stderr.read().decode()
            assert time.monotonic() < deadline, "the first trainer wrote no checkpoint"
            time.sleep(0.05)
        assert (run / LOCK_FILE).read_text().strip() == str(first.pid)
        for flags in ([], ["--resume"], ["--overwrite"]):
            assert main(args + flags) == 2
            one_line_error(capsys, f"being written by another byollm process (pid {first.pid})")
        assert (run / "checkpoint" / "train_state.pt").exists()  # --overwrite deleted nothing
        first.send_signal(signal.SIGKILL)
        first.wait()
    finally:
        first.kill()
        first.wait()
    # the kernel released the dead process's lock: the run can be resumed at once (the resume
    # itself, after a SIGKILL, is test_train_resume_ddp's)
    RunFolder.open(run, resume=True, overwrite=False).release()
