"""The LLM judge: the OpenAI chat request it sends, the scores it reads, and one-line errors,
against a loopback fake endpoint (no network)."""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import train_helpers
from finetune_helpers import repeat_records, tiny_checkpoint

from byollm.cli import main
from byollm.errors import ByollmError
from byollm.finetune.judge import Judge, parse_score


@pytest.fixture(autouse=True)
def _one_thread():
    with train_helpers.single_thread():
        yield


class FakeJudge:
    """An OpenAI-compatible /v1/chat/completions that replies `reply(content)` and records
    each request's body and Authorization header."""

    def __init__(self, reply=lambda content: "87", status: int = 200):
        self.requests: list[tuple[dict, str | None]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.requests.append((body, self.headers.get("Authorization"), self.path))
                if status != 200:
                    self.send_response(status)
                    self.end_headers()
                    self.wfile.write(b'{"error": "model not found"}')
                    return
                content = body["messages"][-1]["content"]
                answer = {
                    "choices": [{"message": {"role": "assistant", "content": reply(content)}}]
                }
                data = json.dumps(answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def fake():
    servers = []

    def start(**kwargs):
        servers.append(FakeJudge(**kwargs))
        return servers[-1]

    yield start
    for server in servers:
        server.close()


def test_the_request_is_the_books_prompt_greedy_and_the_key_comes_from_the_environment(
    fake, monkeypatch
):
    server = fake()
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.setenv("BYOLLM_JUDGE_API_KEY", "sk-test")
    judge = Judge(server.url, "judge-7b")
    assert judge.score("Name a color.", "Blue.", "Red.") == 87
    body, authorization, path = server.requests[-1]
    assert path == "/v1/chat/completions" and authorization == "Bearer sk-test"
    assert body["model"] == "judge-7b" and body["temperature"] == 0
    content = body["messages"][0]["content"]
    assert "`Name a color.`" in content and "`Blue.`" in content and "`Red.`" in content
    assert "integer number only" in content
    monkeypatch.delenv("BYOLLM_JUDGE_API_KEY")
    judge.score("a", "b", "c")
    assert server.requests[-1][1] is None  # no key: no header (local servers need none)


def test_unreadable_replies_are_counted_not_fatal(fake):
    replies = iter(["90", "I cannot judge this", "Score: 40/100", "250"])
    server = fake(reply=lambda content: next(replies))
    answers = [{"prompt": f"p{i}", "reference": "r", "answer": "a"} for i in range(4)]
    summary = Judge(server.url + "/chat/completions", "m").score_answers(answers)
    assert [a["judge_score"] for a in answers] == [90, None, 40, None]
    assert summary == {
        "judge_model": "m",
        "judge_score": 65.0,
        "judge_scored": 2,
        "judge_unreadable": 2,
    }
    assert parse_score("") is None and parse_score("0") == 0


def test_endpoint_errors_are_one_line(fake):
    with pytest.raises(ByollmError, match=r"HTTP 404 .*model not found"):
        Judge(fake(status=404).url, "m").score("a", "b", "c")
    server = fake()
    url = server.url
    server.close()
    with pytest.raises(ByollmError, match="cannot reach it"):
        Judge(url, "m").score("a", "b", "c")
    with pytest.raises(ByollmError, match="expected an http:// or https://"):
        Judge("localhost:8000", "m")


def test_finetune_instruct_with_a_judge_scores_every_held_out_answer(fake, tmp_path, capsys):
    server = fake(reply=lambda content: "75")
    tiny_checkpoint(tmp_path / "base", block_size=256)
    data = repeat_records(tmp_path / "data.json", n=40)
    args = ["finetune", "instruct", "--checkpoint", str(tmp_path / "base"), "--data", str(data)]
    args += ["--epochs", "1", "--max-new-tokens", "4", "--device", "cpu"]
    assert main([*args, "--out", str(tmp_path / "a"), "--judge-url", server.url]) == 2
    assert "--judge-url and --judge-model go together" in capsys.readouterr().err
    judged = [*args, "--out", str(tmp_path / "b"), "--judge-url", server.url]
    assert main([*judged, "--judge-model", "fake"]) == 0
    out = capsys.readouterr().out
    assert "judge fake: mean score 75.0 over 4 answers (0 replies unreadable)" in out
    answers = [json.loads(line) for line in (tmp_path / "b" / "answers.jsonl").open()]
    assert [a["judge_score"] for a in answers] == [75] * 4
    # 1 reachability probe before training, then one request per held-out answer
    assert len(server.requests) == 1 + 4


def test_an_unreachable_judge_fails_before_training(fake, tmp_path, capsys):
    server = fake()
    url = server.url
    server.close()
    tiny_checkpoint(tmp_path / "base", block_size=256)
    data = repeat_records(tmp_path / "data.json", n=40)
    args = ["finetune", "instruct", "--checkpoint", str(tmp_path / "base"), "--data", str(data)]
    args += ["--out", str(tmp_path / "t"), "--judge-url", url, "--judge-model", "m"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot reach it" in err[0]
    assert not (tmp_path / "t").exists()
