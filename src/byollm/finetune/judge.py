"""An LLM judge for instruction answers, through any OpenAI-compatible chat endpoint.

    >>> judge = Judge("http://localhost:8000/v1", "llama3")                  # doctest: +SKIP
    >>> judge.score("Name a color.", "Blue.", "Red.")                        # doctest: +SKIP
    85

`byollm finetune instruct ... --judge-url URL --judge-model NAME` scores every held-out answer
this way after training; ROUGE-L and exact match need no judge and are always reported.

Design choices:
- **Any OpenAI-compatible server**: one POST to `<url>/chat/completions` (the URL is the API
  base, as the `openai` client's `base_url`, e.g. `http://localhost:11434/v1` for Ollama or
  `http://127.0.0.1:8000/v1` for `byollm serve`; a URL already ending in `/chat/completions` is
  used as it is). Standard library only (`urllib`): no client package to install.
- **The key comes from the environment**, never the command line (where `ps` and shell history
  would show it): `BYOLLM_JUDGE_API_KEY`, else `OPENAI_API_KEY`, else no Authorization header
  (local servers need none).
- **The book's prompt** (chapter 7.8): the instruction, the reference and the model's answer,
  a score from 0 to 100, "respond with the integer number only"; greedy (temperature 0).
- **A reply without a number in 0..100 is counted, not fatal**: the judge's summary says how
  many replies could not be read. An endpoint that cannot be reached or answers with an HTTP
  error is one `ByollmError` line, raised at the first answer, before hours of judging go by.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from urllib.error import HTTPError, URLError
from urllib.request import Request, urlopen

from byollm.errors import ByollmError

KEY_VARIABLES = ("BYOLLM_JUDGE_API_KEY", "OPENAI_API_KEY")
PROMPT = (
    "Given the input `{prompt}` and correct output `{reference}`, score the model response "
    "`{answer}` on a scale from 0 to 100, where 100 is the best score. "
    "Respond with the integer number only."
)


def endpoint(url: str) -> str:
    """The chat-completions URL of an API base (`http://host/v1` -> `.../v1/chat/completions`).

    >>> endpoint("http://127.0.0.1:8000/v1/")
    'http://127.0.0.1:8000/v1/chat/completions'
    >>> endpoint("http://h/v1/chat/completions")
    'http://h/v1/chat/completions'
    """
    if not url.startswith(("http://", "https://")):
        raise ByollmError(f"--judge-url {url!r}: expected an http:// or https:// API base URL")
    url = url.rstrip("/")
    return url if url.endswith("/chat/completions") else url + "/chat/completions"


def parse_score(reply: str) -> int | None:
    """The first whole number in the reply, if it is a score from 0 to 100.

    >>> parse_score("85"), parse_score("Score: 90/100"), parse_score("great"), parse_score("250")
    (85, 90, None, None)
    """
    match = re.search(r"\d+", reply)
    if match is None:
        return None
    score = int(match.group())
    return score if 0 <= score <= 100 else None


@dataclass
class Judge:
    """An OpenAI-compatible endpoint and model that score answers from 0 to 100."""

    url: str
    model: str
    timeout: float = 120.0

    def __post_init__(self):
        self.url = endpoint(self.url)
        if not self.model:
            raise ByollmError("--judge-model: name the model the endpoint should use")

    def _headers(self) -> dict:
        headers = {"Content-Type": "application/json"}
        key = next((os.environ[v] for v in KEY_VARIABLES if os.environ.get(v)), None)
        if key:
            headers["Authorization"] = f"Bearer {key}"
        return headers

    def reply(self, content: str) -> str:
        """The assistant's text for one user message."""
        body = {
            "model": self.model,
            "messages": [{"role": "user", "content": content}],
            "temperature": 0,
            "max_tokens": 8,
        }
        request = Request(self.url, json.dumps(body).encode(), self._headers(), method="POST")
        try:
            with urlopen(request, timeout=self.timeout) as response:
                answer = json.loads(response.read())
        except HTTPError as e:
            detail = e.read()[:200].decode("utf-8", "replace").strip()
            raise ByollmError(f"judge {self.url}: HTTP {e.code} {e.reason}: {detail}") from None
        except (URLError, OSError) as e:
            reason = getattr(e, "reason", e)
            raise ByollmError(f"judge {self.url}: cannot reach it ({reason})") from None
        except ValueError:
            raise ByollmError(f"judge {self.url}: the reply is not JSON") from None
        try:
            return str(answer["choices"][0]["message"]["content"] or "")
        except (KeyError, IndexError, TypeError):
            raise ByollmError(
                f"judge {self.url}: the reply has no choices[0].message.content; is this an "
                "OpenAI-compatible chat endpoint?"
            ) from None

    def score(self, prompt: str, reference: str, answer: str) -> int | None:
        """0..100, or None when the judge's reply holds no such number."""
        content = PROMPT.format(prompt=prompt, reference=reference, answer=answer)
        return parse_score(self.reply(content))

    def score_answers(self, answers: list[dict]) -> dict:
        """Score each answer (`prompt`, `reference`, `answer` keys) in place ("judge_score");
        returns the mean over the readable scores and how many were not readable."""
        scores = []
        for a in answers:
            a["judge_score"] = self.score(a["prompt"], a["reference"], a["answer"])
            if a["judge_score"] is not None:
                scores.append(a["judge_score"])
        return {
            "judge_model": self.model,
            "judge_score": sum(scores) / len(scores) if scores else None,
            "judge_scored": len(scores),
            "judge_unreadable": len(answers) - len(scores),
        }
