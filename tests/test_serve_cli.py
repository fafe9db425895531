"""`byollm serve` on the command line: flag errors, and a real server process."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from serve_helpers import tiny_checkpoint

from byollm.cli import main


def test_serve_flag_mistakes_are_one_line_errors(tmp_path, capsys):
    assert main(["serve"]) == 2
    assert "give a checkpoint folder" in capsys.readouterr().err
    checkpoint = tiny_checkpoint(tmp_path / "tiny")
    assert main(["serve", str(checkpoint), "--port", "70000"]) == 2
    assert "--port 70000 is invalid" in capsys.readouterr().err
    assert main(["serve", str(tmp_path / "missing")]) == 2
    assert "not found" in capsys.readouterr().err


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(port: int, path: str, headers=None):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    conn.request("GET", path, headers=headers or {})
    response = conn.getresponse()
    body = json.loads(response.read())
    conn.close()
    return response.status, body


@pytest.mark.slow
def test_a_run_checkpoint_is_named_after_its_run(tmp_path):
    from byollm.serve.cli import model_name_for

    tiny_checkpoint(tmp_path / "plain")
    assert model_name_for(str(tmp_path / "plain")) == "plain"
    tiny_checkpoint(tmp_path / "crashed" / "best.old")  # all a crash mid-save leaves
    assert model_name_for(str(tmp_path / "crashed")) == "crashed"


def test_serve_runs_a_server_named_after_the_run(tmp_path):
    """A run folder's best/ checkpoint, served as the run's name, the key from the environment."""
    tiny_checkpoint(tmp_path / "myrun" / "best")
    port = free_port()
    env = {**os.environ, "BYOLLM_API_KEY": "k3y"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "byollm",
            "serve",
            str(tmp_path / "myrun"),
            "--port",
            str(port),
            "--max-batch",
            "2",
            "--device",
            "cpu",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                status, health = get(port, "/health")
                break
            except OSError:
                assert process.poll() is None, process.stdout.read()
                assert time.monotonic() < deadline, "the server did not start in 90 s"
                time.sleep(0.2)
        assert status == 200 and health["model"] == "myrun" and health["max_batch"] == 2
        assert get(port, "/v1/models")[0] == 401
        status, models = get(port, "/v1/models", {"Authorization": "Bearer k3y"})
        assert status == 200 and models["data"][0]["id"] == "myrun"
    finally:
        process.send_signal(signal.SIGINT)
        output = process.communicate(timeout=30)[0]
    assert "myrun (continue chat) on http://127.0.0.1:" in output
