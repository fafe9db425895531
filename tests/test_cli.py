"""The `byollm` command line as a user runs it: a real subprocess, exit codes, one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from conftest import ROOT

from byollm import __version__
from byollm.cli import STAGE_CLIS, VERBS, build_parser, main


def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess:
    """`python -m byollm ARGS` importing this checkout's src/ (not whatever is installed)."""
    environment = {**os.environ, "PYTHONPATH": str(ROOT / "src"), **env}
    return subprocess.run(
        [sys.executable, "-m", "byollm", *args],
        capture_output=True,
        text=True,
        env=environment,
        timeout=60,
    )


def test_version():
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"byollm {__version__}"


def test_no_verb_prints_help():
    result = run_cli()
    assert result.returncode == 0 and "usage: byollm" in result.stdout and "data" in result.stdout


def test_data_help_lists_its_commands():
    result = run_cli("data", "--help")
    assert result.returncode == 0
    assert all(command in result.stdout for command in ("list", "info", "get"))


def test_user_error_is_one_line_with_exit_2_and_no_traceback():
    result = run_cli("data", "get", "no-such-corpus")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("byollm data: error: unknown corpus")


def test_unknown_verb_and_stray_arguments_exit_2():
    assert run_cli("frobnicate").returncode == 2
    result = run_cli("data", "list", "--nonsense")
    assert result.returncode == 2 and "unrecognized arguments: --nonsense" in result.stderr


def test_every_verb_and_subcommand_has_help(capsys):
    """`--help` works on every verb and every nested command (in-process: fast)."""
    assert "byollm.corpora.cli" in STAGE_CLIS
    parser = build_parser()
    verbs = parser._subparsers._group_actions[0].choices  # argparse keeps them here
    for verb, verb_parser in verbs.items():
        paths = [[verb]]
        nested = [a for a in verb_parser._actions if a.__class__.__name__ == "_SubParsersAction"]
        for action in nested:
            paths += [[verb, command] for command in action.choices]
        for path in paths:
            with pytest.raises(SystemExit) as info:
                main([*path, "--help"])
            assert info.value.code == 0, path
            assert "usage: byollm" in capsys.readouterr().out


def test_verb_table_matches_what_the_stages_register():
    """`byollm --help` lists VERBS without importing the stages; it must say what they say."""
    parser = build_parser()
    action = parser._subparsers._group_actions[0]
    registered = {a.dest: a.help for a in action._choices_actions}
    assert registered == {verb: help_text for verb, (_, help_text) in VERBS.items()}


def test_help_does_not_import_torch():
    code = "import sys; from byollm.cli import main; main(['--help'])\nassert 'torch' not in sys.modules"
    environment = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=environment, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert all(verb in result.stdout for verb in VERBS)


@pytest.mark.parametrize(
    "argv, keys",
    [
        (["tokenizer", "train", "--corpus", "c", "--vocab-size", "300", "--out", "~/t.json"], ["out"]),
        (["tokenizer", "encode", "--file", "~/p.txt"], ["file"]),
        (["sample", "--prompt-file", "~/p.txt"], ["prompt_file"]),
        (["finetune", "classify", "--checkpoint", "~/c", "--data", "d", "--out", "~/o"],
         ["checkpoint", "out"]),
        (["merge-lora", "~/adapter", "--out", "~/o"], ["adapter", "out"]),
        (["classify", "--checkpoint", "~/c", "a text"], ["checkpoint"]),
        (["model", "info", "--config", "~/c.toml"], ["config"]),
        (["exercise", "start", "bpe", "--dir", "~/d"], ["dir"]),
        (["exercise", "check", "bpe", "--file", "~/f.py"], ["file"]),
        (["convert", "--to-hf", "~/c", "--out", "~/o"], ["to_hf", "out"]),
        (["data", "get", "tinyshakespeare", "--out", "~/t.txt"], ["out"]),
    ],
)  # fmt: skip
def test_tilde_means_home_in_every_path_option(tmp_path, monkeypatch, argv, keys):
    # a quoted "~/x" or --out=~/x reaches byollm unexpanded by the shell
    monkeypatch.setenv("HOME", str(tmp_path))
    args = build_parser(argv[0]).parse_args(argv)
    for key in keys:
        assert str(getattr(args, key)).startswith(str(tmp_path)), (key, getattr(args, key))


def test_tilde_means_home_for_checkpoints_and_presets(tmp_path, monkeypatch):
    from argparse import Namespace

    from byollm.model.checkpoint import resolve_checkpoint
    from byollm.model.cli import checkpoint_from_args
    from byollm.scaling.sweep import SweepConfig
    from byollm.train.config import find_preset

    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "ck").mkdir()
    (tmp_path / "ck" / "config.json").write_text("{}")
    (tmp_path / "my.toml").write_text("max_steps = 2\n")
    assert resolve_checkpoint("~/ck") == tmp_path / "ck"  # sample, chat, eval, serve, finetune
    assert checkpoint_from_args(Namespace(checkpoint=None, checkpoint_folder="~/ck")) == str(
        tmp_path / "ck"
    )
    assert find_preset("~/my.toml") == tmp_path / "my.toml"  # train --config ~/my.toml
    assert SweepConfig(out_dir="~/sweeps").sweep_dir().parent == tmp_path / "sweeps"
