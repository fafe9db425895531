"""`byollm serve` through the official `openai` client, against a live server on 127.0.0.1.

The checkpoint is a tiny random-weight char-level model: its text is gibberish, but every
answer must equal what `Engine` (the plain, unbatched generator) gives for the same prompt,
settings and seed, whether the request is alone, streamed, or one of ten running together.
"""

from __future__ import annotations

import http.client
import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

openai = pytest.importorskip("openai", reason="the openai client (test extra) is not installed")

from serve_helpers import live_server, tiny_checkpoint  # noqa: E402

from byollm.generate import Engine, SamplingConfig  # noqa: E402
from byollm.model.checkpoint import load_for_inference  # noqa: E402
from byollm.serve.chat_prompt import chat_prompt  # noqa: E402
from byollm.serve.schemas import Message  # noqa: E402

BLOCK = 128


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return tiny_checkpoint(tmp_path_factory.mktemp("serve") / "tiny", block_size=BLOCK)


@pytest.fixture(scope="module")
def live(checkpoint):
    with live_server(checkpoint, max_batch=4, max_body_bytes=20_000, max_messages=8) as live:
        yield live


@pytest.fixture(scope="module")
def client(live):
    return openai.OpenAI(base_url=live.url + "/v1", api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def engine(checkpoint):
    model, tokenizer = load_for_inference(checkpoint, device="cpu")
    return Engine(model, tokenizer)


def expected(engine, prompt, max_tokens, seed, stop=(), **sampling):
    sampling = SamplingConfig(**{"temperature": 1.0, **sampling})
    return engine.generate(
        prompt, max_new_tokens=max_tokens, seed=seed, sampling=sampling, stop=stop
    )[0]


def raw(live, method, path, body=None, headers=None):
    """(status, parsed JSON) of a plain HTTP request, for what the openai client will not send."""
    host, port = live.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    if isinstance(body, (dict, list)):
        body = json.dumps(body)
    conn.request(
        method, path, body=body, headers={"Content-Type": "application/json", **(headers or {})}
    )
    response = conn.getresponse()
    data = response.read()
    conn.close()
    return response.status, json.loads(data)


def test_health_and_models(live, client):
    status, health = raw(live, "GET", "/health")
    assert status == 200 and health["status"] == "ok" and health["max_batch"] == 4
    models = client.models.list().data
    assert [m.id for m in models] == ["tiny"]
    assert models[0].byollm["block_size"] == BLOCK and models[0].byollm["n_layer"] == 2
    assert client.models.retrieve("tiny").id == "tiny"


def test_completion_equals_the_engine(client, engine):
    r = client.completions.create(
        model="tiny", prompt="To be", max_tokens=12, seed=7, temperature=0.9
    )
    assert r.object == "text_completion" and r.model == "tiny"
    choice = r.choices[0]
    assert choice.text == expected(engine, "To be", 12, 7, temperature=0.9)
    assert choice.finish_reason == "length" and len(choice.text) == 12  # 1 char = 1 token
    assert (r.usage.prompt_tokens, r.usage.completion_tokens, r.usage.total_tokens) == (5, 12, 17)
    echoed = client.completions.create(
        model="tiny", prompt="To be", max_tokens=12, seed=7, temperature=0.9, echo=True
    )
    assert echoed.choices[0].text == "To be" + choice.text
    # several prompts, n samples each: choice p * n + j is prompt p's sample j (seed + j)
    many = client.completions.create(
        model="tiny", prompt=["To be", "or"], n=2, max_tokens=6, seed=1
    )
    assert [c.text for c in many.choices] == [
        expected(engine, p, 6, seed) for p in ("To be", "or") for seed in (1, 2)
    ]
    assert many.usage.prompt_tokens == 5 + 2 and many.usage.completion_tokens == 24


def test_completion_stream_joins_to_the_same_text(client):
    args = dict(model="tiny", prompt="Whether", max_tokens=20, seed=3, top_p=0.9)
    whole = client.completions.create(**args).choices[0].text
    chunks = list(
        client.completions.create(**args, stream=True, stream_options={"include_usage": True})
    )
    assert all(c.object == "text_completion" for c in chunks)
    assert "".join(c.choices[0].text for c in chunks if c.choices) == whole
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices]
    assert finishes.count("length") == 1 and finishes[-1] == "length"
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 20


def test_chat_streamed_and_not(client, engine):
    messages = [{"role": "system", "content": "To be"}, {"role": "user", "content": "or not"}]
    args = dict(model="tiny", messages=messages, max_tokens=15, seed=11, n=2)
    r = client.chat.completions.create(**args)
    assert r.object == "chat.completion" and [c.index for c in r.choices] == [0, 1]
    prompt, stop = chat_prompt([Message(**m) for m in messages], "continue")
    assert prompt == "To be\n\nor not\n" and stop == ["\n\n"]
    for choice, seed in zip(r.choices, (11, 12)):  # sample i is seeded with seed + i
        assert choice.message.role == "assistant"
        assert choice.message.content == expected(engine, prompt, 15, seed, stop)
    assert r.usage.prompt_tokens == len(prompt)
    chunks = list(client.chat.completions.create(**args, stream=True))
    for index, choice in enumerate(r.choices):
        deltas = [c.choices[0] for c in chunks if c.choices and c.choices[0].index == index]
        assert deltas[0].delta.role == "assistant"  # the role in the first delta only
        assert all(d.delta.role is None for d in deltas[1:])
        assert "".join(d.delta.content or "" for d in deltas) == choice.message.content
        assert [d.finish_reason for d in deltas if d.finish_reason] == [choice.finish_reason]
    assert all(c.object == "chat.completion.chunk" for c in chunks)


def test_stop_strings_and_samplers_as_extra_fields(client, engine):
    free = client.completions.create(model="tiny", prompt="To", max_tokens=30, seed=5)
    text = free.choices[0].text
    stop = text[10:12]
    cut = client.completions.create(model="tiny", prompt="To", max_tokens=30, seed=5, stop=[stop])
    assert cut.choices[0].text == text[: text.index(stop)]
    assert cut.choices[0].finish_reason == "stop"
    # byollm's samplers travel as extra fields: top_k=1 is greedy, whatever the temperature
    greedy = client.completions.create(model="tiny", prompt="To", max_tokens=10, temperature=0)
    top1 = client.completions.create(
        model="tiny",
        prompt="To",
        max_tokens=10,
        temperature=1.5,
        extra_body={"top_k": 1, "min_p": 0.0},
    )
    assert (
        top1.choices[0].text
        == greedy.choices[0].text
        == expected(engine, "To", 10, None, temperature=0)
    )


def test_logprobs(client):
    r = client.completions.create(model="tiny", prompt="To be", max_tokens=6, seed=1, logprobs=3)
    lp = r.choices[0].logprobs
    assert "".join(lp.tokens) == r.choices[0].text and lp.text_offset == list(range(6))
    assert all(x <= 0 for x in lp.token_logprobs) and all(len(t) == 3 for t in lp.top_logprobs)
    for token, logprob, top in zip(lp.tokens, lp.token_logprobs, lp.top_logprobs):
        assert max(top.values()) >= logprob and top.get(token, logprob) == pytest.approx(logprob)
    chat = client.chat.completions.create(
        model="tiny",
        messages=[{"role": "user", "content": "To"}],
        max_tokens=5,
        seed=2,
        logprobs=True,
        top_logprobs=2,
    )
    content = chat.choices[0].logprobs.content
    assert "".join(e.token for e in content) == chat.choices[0].message.content
    assert all(len(e.top_logprobs) == 2 and e.bytes == list(e.token.encode()) for e in content)


def test_ten_parallel_clients_get_what_they_would_get_alone(client, engine):
    """Ten clients at once (max_batch=4: some wait for a slot) get the same text as alone."""
    prompts = [
        "T",
        "To be",
        "or not to be",
        "Whether 'tis",
        "the mind",
        "to suffer",
        "slings",
        "arrows",
        "Or to take arms",
        "a sea of troubles",
    ]
    jobs = [(p, 8 + 3 * i, 100 + i, i % 2 == 0) for i, p in enumerate(prompts)]
    alone = [expected(engine, p, n, seed) for p, n, seed, _ in jobs]
    start = threading.Barrier(len(jobs))

    def ask(job):
        prompt, n, seed, streamed = job
        start.wait()
        r = client.completions.create(
            model="tiny", prompt=prompt, max_tokens=n, seed=seed, stream=streamed
        )
        return "".join(c.choices[0].text for c in r) if streamed else r.choices[0].text

    with ThreadPoolExecutor(len(jobs)) as pool:
        together = list(pool.map(ask, jobs))
    assert together == alone


@pytest.mark.parametrize(
    "body, status, param",
    [
        (b'{"prompt": "To", ', 400, None),  # malformed JSON
        (b"[1, 2]", 400, None),  # not an object
        ({"prompt": "To", "model": "gpt-4"}, 404, "model"),
        ({"prompt": 5}, 422, "prompt"),
        ({"prompt": "To", "max_tokens": "5"}, 422, "max_tokens"),  # strict: no "5" -> 5
        ({"prompt": "To", "max_tokens": -3}, 422, "max_tokens"),
        ({"prompt": "To", "temperature": -1}, 422, "temperature"),
        ({"prompt": "To", "max_tokens": 10**12}, 400, None),  # beyond the context window
        ({"prompt": "To be " * 40}, 400, None),  # the prompt alone is longer than the window
        ({"prompt": [1, 2, 999]}, 400, "prompt"),  # token ids outside the vocabulary
        ({"prompt": "Zebra"}, 400, None),  # a character the tokenizer cannot encode
        ({"prompt": "To", "tools": [{"type": "function"}]}, 400, None),
        ({"prompt": "To", "n": 100}, 422, "n"),
    ],
)
def test_bad_completion_requests_get_openai_errors(live, body, status, param):
    got, data = raw(live, "POST", "/v1/completions", body if isinstance(body, bytes) else body)
    assert got == status, data
    error = data["error"]
    assert set(error) == {"message", "type", "param", "code"} and error["message"]
    assert "Traceback" not in error["message"] and error["param"] == param


def test_bad_chat_requests_and_other_errors(live, client):
    too_many = [{"role": "user", "content": "To"}] * 9  # this server takes at most 8
    cases = [
        ({"messages": too_many}, 400),
        ({"messages": []}, 422),
        ({"messages": [{"role": "bot", "content": "To"}]}, 422),
        ({"messages": [{"role": "assistant", "content": "To"}]}, 400),  # nothing to answer
        (
            {
                "messages": [{"role": "user", "content": "To"}],
                "response_format": {"type": "json_object"},
            },
            400,
        ),
    ]
    for body, status in cases:
        assert raw(live, "POST", "/v1/chat/completions", body)[0] == status, body
    assert raw(live, "POST", "/v1/completions", {"prompt": "T" * 30_000})[0] == 413
    assert raw(live, "GET", "/v1/nowhere")[0] == 404
    assert raw(live, "GET", "/v1/completions")[0] == 405
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "To"}])
    with pytest.raises(openai.BadRequestError, match="context window"):
        client.completions.create(model="tiny", prompt="To", max_tokens=BLOCK)
    # ... and the server keeps serving
    assert client.completions.create(model="tiny", prompt="To", max_tokens=3).choices[0].text


def test_a_client_that_disconnects_frees_its_slot(live, monkeypatch):
    batcher = live.batcher
    submitted = []
    real_submit, real_decode = batcher.submit_all, batcher._decode
    monkeypatch.setattr(
        batcher, "submit_all", lambda jobs: (submitted.extend(jobs), real_submit(jobs))[1]
    )
    monkeypatch.setattr(batcher, "_decode", lambda: (time.sleep(0.005), real_decode())[1])
    host, port = live.url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=10)
    body = {"model": "tiny", "prompt": "To", "max_tokens": 120, "stream": True}
    conn.request(
        "POST",
        "/v1/completions",
        body=json.dumps(body),
        headers={"Content-Type": "application/json"},
    )
    response = conn.getresponse()
    assert response.status == 200 and response.getheader("content-type").startswith(
        "text/event-stream"
    )
    assert response.read(16).startswith(b"data: {")  # the stream has begun...
    conn.sock.shutdown(2)  # ... and the client goes away
    conn.close()
    deadline = time.monotonic() + 5
    while not submitted[0].done and time.monotonic() < deadline:
        time.sleep(0.01)
    job = submitted[0]
    assert job.done and job.cancelled and len(job.generated) < 120
    assert raw(live, "GET", "/health")[1]["running"] == 0


def test_api_key_and_busy_server(checkpoint):
    with live_server(checkpoint, api_key="s3cret", max_waiting=1) as live:
        assert raw(live, "GET", "/health")[0] == 200  # open: for load balancers
        assert raw(live, "GET", "/v1/models")[0] == 401
        assert raw(live, "GET", "/v1/models", headers={"Authorization": "Bearer nope"})[0] == 401
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=live.url + "/v1", api_key="wrong", max_retries=0).models.list()
        client = openai.OpenAI(base_url=live.url + "/v1", api_key="s3cret", max_retries=0)
        assert client.models.list().data[0].id == "tiny"
        # two samples cannot both wait when one may: 503, and the next request is served
        with pytest.raises(openai.InternalServerError) as busy:
            client.completions.create(model="tiny", prompt="To", max_tokens=2, n=2)
        assert busy.value.status_code == 503
        assert client.completions.create(model="tiny", prompt="To", max_tokens=2).choices
