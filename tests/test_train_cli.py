"""`byollm train` and `byollm prepare` from the command line: summaries and one-line errors."""

from __future__ import annotations

import pytest
import tomllib
import train_helpers
from conftest import shared_file

from byollm.cli import main
from byollm.config import from_dict
from byollm.train import TrainConfig


@pytest.fixture(autouse=True)
def _one_thread():
    with train_helpers.single_thread():
        yield


one_line_error = train_helpers.one_line_error


def test_unknown_key_suggests_the_closest(capsys):
    assert main(["train", "--max_step", "3"]) == 2
    one_line_error(capsys, "did you mean 'max_steps'")
    assert main(["train", "--model.n_layers", "3"]) == 2
    one_line_error(capsys, "did you mean 'model.n_layer'")


def test_unknown_preset_lists_the_presets(capsys):
    assert main(["train", "--config", "nope"]) == 2
    one_line_error(capsys, "unknown preset 'nope'", "shakespeare-char", "nanogpt-cpu")


def test_print_config_is_valid_toml_of_the_preset(capsys):
    assert main(["train", "--print-config", "--max_steps", "123"]) == 0
    data = tomllib.loads(capsys.readouterr().out)
    config = from_dict(TrainConfig, data)
    assert config.max_steps == 123 and config.model == TrainConfig().model


def test_resume_and_overwrite_exclude_each_other(capsys):
    with pytest.raises(SystemExit) as e:
        main(["train", "--resume", "--overwrite"])
    assert e.value.code == 2


def test_cli_run_prints_a_summary_and_protects_the_run(tmp_path, capsys):
    text = shared_file("tinyshakespeare.txt").read_text(encoding="utf-8")[:30_000]
    (tmp_path / "s.txt").write_text(text, encoding="utf-8")
    args = ["train", "--no-progress", "--corpus", str(tmp_path / "s.txt")]
    args += ["--out_dir", str(tmp_path / "runs"), "--name", "cli", "--max_steps", "4"]
    args += ["--eval_interval", "4", "--eval_rows", "8", "--batch_size", "4", "--threads", "1"]
    args += ["--n_layer", "1", "--n_embd", "16", "--n_head", "2", "--block_size", "16"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "done: 4 steps" in out and "best val loss" in out and "byollm sample" in out
    assert main(args) == 2
    one_line_error(capsys, "already holds a run", "--resume", "--overwrite")
    assert main(args + ["--max_steps", "6", "--resume"]) == 0
    assert "done: 6 steps" in capsys.readouterr().out
