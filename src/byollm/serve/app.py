"""The HTTP side: an OpenAI-compatible API and the playground, as one Starlette app.

    >>> app = create_app(model, tokenizer, model_name="shakespeare")  # doctest: +SKIP
    >>> uvicorn.run(app, host="127.0.0.1", port=8000)          # what `byollm serve` does  # doctest: +SKIP

Routes:
    GET  /                        the playground (static/index.html; no build step, no CDN)
    GET  /health                  {"status": "ok", "running": n, "waiting": m, ...}
    GET  /v1/models               the one model served, with its shape under "byollm"
    POST /v1/completions          continue a prompt; "stream": true for Server-Sent Events
    POST /v1/chat/completions     answer a conversation (the checkpoint's chat template)
    POST /v1/byollm/inspect       tokens, next-token candidates, attention maps (look_inside)

Design choices:
- **Starlette + uvicorn**, no hand-written HTTP. Bodies are read and validated here (not by a
  framework's magic) so that every failure maps to OpenAI's error shape,
  `{"error": {"message", "type", "param", "code"}}`: 400 malformed JSON or a request the model
  cannot serve (too long for the context window, unsupported feature), 401 wrong API key, 404
  unknown model or route, 413 body too large, 422 wrong types or ranges, 503 too many
  requests waiting. A `ByollmError` raised by the package (a character the tokenizer cannot
  encode, a bad sampling value) is a 400 with its one-line message. Anything unexpected is a 500 with a one-line message; the traceback goes
  to the server's log, never to the client.
- **Generation happens in the `Batcher`'s thread**; a request only queues its sequences (one
  per prompt and per `n`) and awaits their events, which the batcher hands to the event loop.
  The i-th of a request's n samples is seeded with seed + i, so sample 0 with seed s is what
  the same request with n = 1 gives.
- **Streaming** is OpenAI's chunk format: `data: {json}` lines, the role in the first delta
  only, one `finish_reason` per choice, `data: [DONE]` at the end; with
  `stream_options.include_usage` a last chunk carries the usage. A client that goes away
  cancels its sequences: their slots are free one decode step later.
- **An optional API key** (`Authorization: Bearer KEY`) guards /v1/*, compared in constant time
  (`hmac.compare_digest`); the page and /health stay open (the page asks for the key).
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import threading
import time
import uuid
from pathlib import Path

from pydantic import ValidationError
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

from byollm import __version__
from byollm.errors import ByollmError
from byollm.generate.engine import Engine
from byollm.serve.batcher import Batcher, Failed, Finished, Piece, ServerBusy
from byollm.serve.chat_prompt import chat_prompt
from byollm.serve.look_inside import look_inside, token_bytes, token_text
from byollm.serve.schemas import (
    ChatRequest,
    CompletionRequest,
    InspectRequest,
    schema_error_message,
)

log = logging.getLogger("byollm.serve")
STATIC = Path(__file__).parent / "static"
ERROR_TYPES = {
    401: "authentication_error",
    404: "not_found_error",
    413: "invalid_request_error",
    500: "server_error",
    503: "server_error",
}


class APIError(Exception):
    """An error the client gets as OpenAI-style JSON with this HTTP status."""

    def __init__(
        self, status: int, message: str, *, param: str | None = None, code: str | None = None
    ):
        super().__init__(message)
        self.status, self.message, self.param, self.code = status, message, param, code

    def response(self) -> JSONResponse:
        kind = ERROR_TYPES.get(self.status, "invalid_request_error")
        body = {"message": self.message, "type": kind, "param": self.param, "code": self.code}
        return JSONResponse({"error": body}, status_code=self.status)


class Server:
    """What the routes share: the model, its tokenizer, the batcher and the limits."""

    def __init__(
        self,
        model,
        tokenizer,
        *,
        model_name: str,
        chat_mode: str,
        max_batch: int,
        max_waiting: int,
        max_body_bytes: int,
        max_messages: int,
        max_prompts: int,
    ):
        self.model = model
        self.tokenizer = tokenizer
        self.engine = Engine(model, tokenizer)  # for its prompt encoding (empty prompt rule)
        self.batcher = Batcher(model, tokenizer, max_batch=max_batch, max_waiting=max_waiting)
        self.model_name = model_name
        self.chat_mode = chat_mode
        self.max_body_bytes = max_body_bytes
        self.max_messages = max_messages
        self.max_prompts = max_prompts
        self.inspect_lock = threading.Lock()  # one look-inside pass at a time
        self.created = int(time.time())

    # -- requests in -------------------------------------------------------------------------
    async def read(self, request: Request, schema):
        """The body as a validated `schema` instance, or an APIError (400/413/422)."""
        length = request.headers.get("content-length", "")
        if length.isdigit() and int(length) > self.max_body_bytes:
            raise self.too_large()
        body = bytearray()
        async for chunk in request.stream():
            body += chunk
            if len(body) > self.max_body_bytes:
                raise self.too_large()
        try:
            data = json.loads(body)
        except (ValueError, RecursionError) as e:
            raise APIError(400, f"the body is not valid JSON ({e})", code="invalid_json") from None
        if not isinstance(data, dict):
            raise APIError(400, "the body must be a JSON object", code="invalid_json")
        try:
            parsed = schema.model_validate(data)
        except ValidationError as e:
            message, param = schema_error_message(e.errors())
            raise APIError(422, message, param=param, code="invalid_value") from None
        if parsed.model not in (None, self.model_name):
            raise APIError(
                404,
                f"the model {parsed.model!r} does not exist; this server has {self.model_name!r}",
                param="model",
                code="model_not_found",
            )
        unsupported = getattr(parsed, "unsupported_fields", lambda: None)()
        if unsupported:
            raise APIError(400, unsupported, code="unsupported")
        return parsed

    def too_large(self) -> APIError:
        return APIError(
            413,
            f"the request body is larger than {self.max_body_bytes} bytes",
            code="request_too_large",
        )

    def encode(self, prompt) -> list[int]:
        """A prompt (text or token ids) as ids."""
        if isinstance(prompt, str):
            return self.engine.encode_prompt(prompt)
        vocab = self.model.config.vocab_size
        bad = [i for i in prompt if not 0 <= i < vocab]
        if not prompt or bad:
            raise APIError(
                400,
                f"prompt: token ids must be in 0..{vocab - 1} and at least one "
                f"is needed (got {bad[:5] or 'none'})",
                param="prompt",
            )
        return list(prompt)

    # -- generation --------------------------------------------------------------------------
    def start(
        self,
        req,
        prompts: list[list[int]],
        stop: list[str],
        max_tokens: int | None,
        top_logprobs: int | None,
    ) -> Generation:
        """Queue n sequences per prompt; their events arrive on the returned Generation."""
        try:
            sampling = req.sampling()
        except ByollmError as e:
            raise APIError(400, str(e), code="invalid_value") from None
        stop_tokens = [] if req.ignore_eos else self.engine.default_stop_tokens()
        generation = Generation(asyncio.get_running_loop(), len(prompts) * req.n)
        jobs = []
        for p, prompt in enumerate(prompts):
            room = self.model.config.block_size - len(prompt) + 1
            for j in range(req.n):
                try:
                    job = self.batcher.new_job(
                        prompt,
                        room if max_tokens is None else max_tokens,
                        sampling,
                        seed=None if req.seed is None else req.seed + j,
                        stop=stop,
                        stop_tokens=stop_tokens,
                        top_logprobs=top_logprobs,
                        on_event=generation.listener(p * req.n + j),
                    )
                except ByollmError as e:
                    raise APIError(400, str(e), code="context_length_exceeded") from None
                jobs.append(job)
        try:
            self.batcher.submit_all(jobs)
        except ServerBusy as e:
            raise APIError(503, str(e), code="server_busy") from None
        generation.jobs = jobs
        return generation

    def logprobs_entry(self, entry) -> dict:
        """One token's logprobs, in the chat shape ({token, logprob, bytes, top_logprobs})."""
        tok = self.tokenizer

        def one(token_id, logprob):
            return {
                "token": token_text(tok, token_id),
                "logprob": logprob,
                "bytes": list(token_bytes(tok, token_id)),
            }

        item = one(entry.token, entry.logprob)
        item["top_logprobs"] = [one(i, lp) for i, lp in entry.top]
        return item

    def completion_logprobs(self, entries, offset: int) -> dict:
        """The legacy completions shape: parallel lists, text offsets counted from `offset`."""
        out = {"tokens": [], "token_logprobs": [], "top_logprobs": [], "text_offset": []}
        for entry in entries:
            text = token_text(self.tokenizer, entry.token)
            out["tokens"].append(text)
            out["token_logprobs"].append(entry.logprob)
            out["top_logprobs"].append({token_text(self.tokenizer, i): lp for i, lp in entry.top})
            out["text_offset"].append(offset)
            offset += len(text)
        return out


class Generation:
    """The events of one request's sequences, handed from the batcher's thread to asyncio."""

    def __init__(self, loop: asyncio.AbstractEventLoop, n: int):
        self.loop = loop
        self.queue: asyncio.Queue = asyncio.Queue()
        self.n = n
        self.jobs = []

    def listener(self, index: int):
        def on_event(event):
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody is listening
                self.loop.call_soon_threadsafe(self.queue.put_nowait, (index, event))

        return on_event

    async def events(self, request: Request | None = None):
        """(index, event) until every sequence has finished or failed.

        With `request` (a non-streamed answer), a client that disconnects while waiting
        cancels the sequences; a stream is cancelled by Starlette instead (see `close`).
        """
        remaining = self.n
        while remaining:
            try:
                index, event = await asyncio.wait_for(self.queue.get(), timeout=1.0)
            except asyncio.TimeoutError:
                if request is not None and await request.is_disconnected():
                    self.close()
                    return
                continue
            if isinstance(event, (Finished, Failed)):
                remaining -= 1
            yield index, event

    def close(self) -> None:
        for job in self.jobs:
            job.cancel()


# -- the routes ------------------------------------------------------------------------------
def server_of(request: Request) -> Server:
    return request.app.state.server


async def health(request: Request) -> Response:
    server = server_of(request)
    return JSONResponse({"status": "ok", "model": server.model_name, **server.batcher.load()})


async def list_models(request: Request) -> Response:
    return JSONResponse({"object": "list", "data": [model_card(server_of(request))]})


async def get_model(request: Request) -> Response:
    server = server_of(request)
    if request.path_params["model"] != server.model_name:
        raise APIError(
            404,
            f"the model {request.path_params['model']!r} does not exist",
            code="model_not_found",
        )
    return JSONResponse(model_card(server))


def model_card(server: Server) -> dict:
    c = server.model.config
    shape = {
        "n_layer": c.n_layer,
        "n_head": c.n_head,
        "n_embd": c.n_embd,
        "block_size": c.block_size,
        "vocab_size": c.vocab_size,
        "chat_mode": server.chat_mode,
        "max_batch": server.batcher.max_batch,
    }
    return {
        "id": server.model_name,
        "object": "model",
        "created": server.created,
        "owned_by": "byollm",
        "byollm": shape,
    }


async def completions(request: Request) -> Response:
    server = server_of(request)
    req: CompletionRequest = await server.read(request, CompletionRequest)
    prompt = req.prompt
    if isinstance(prompt, str) or (prompt and isinstance(prompt[0], int)):
        prompt = [prompt]  # one prompt (text or ids); else a list of them
    if not prompt or len(prompt) > server.max_prompts:
        raise APIError(400, f"prompt: give 1 to {server.max_prompts} prompts", param="prompt")
    prompts = [server.encode(p) for p in prompt]
    texts = [
        p if isinstance(p, str) else server.tokenizer.decode(ids) for p, ids in zip(prompt, prompts)
    ]
    generation = server.start(req, prompts, req.stop_strings(), req.max_tokens, req.logprobs)
    head = Head("cmpl", "text_completion", server)
    usage = Usage(sum(len(p) for p in prompts))
    echo = {i: texts[i // req.n] for i in range(generation.n)} if req.echo else {}
    offsets = {i: len(echo.get(i, "")) for i in range(generation.n)}

    def choice(index, text, reason=None, entries=None):
        logprobs = None
        if req.logprobs is not None:
            logprobs = server.completion_logprobs(entries or [], offsets[index])
            offsets[index] += sum(len(t) for t in logprobs["tokens"])
        return {"index": index, "text": text, "logprobs": logprobs, "finish_reason": reason}

    if req.stream:
        return sse_response(
            generation,
            head,
            usage,
            req.include_usage(),
            opening=[choice(index, text) for index, text in echo.items()],
            piece=lambda index, event: choice(index, event.text, None, event.logprobs),
            finish=lambda index, event: choice(index, "", event.reason),
        )
    choices = []
    for index, (pieces, reason) in enumerate(await collect(generation, request, usage)):
        text = echo.get(index, "") + "".join(p.text for p in pieces)
        entries = [e for p in pieces for e in p.logprobs]
        choices.append(choice(index, text, reason, entries))
    return JSONResponse(head.body({"choices": choices, "usage": usage.json()}))


async def chat_completions(request: Request) -> Response:
    server = server_of(request)
    req: ChatRequest = await server.read(request, ChatRequest)
    if len(req.messages) > server.max_messages:
        raise APIError(
            400,
            f"messages: {len(req.messages)} messages is too many; this server "
            f"takes at most {server.max_messages}",
            param="messages",
        )
    try:
        prompt_text, stop = chat_prompt(req.messages, server.chat_mode)
    except ByollmError as e:
        raise APIError(400, str(e), param="messages") from None
    prompt = server.encode(prompt_text)
    max_tokens = req.max_completion_tokens or req.max_tokens
    top = (req.top_logprobs or 0) if req.logprobs else None
    generation = server.start(req, [prompt], stop + req.stop_strings(), max_tokens, top)
    head = Head("chatcmpl", "chat.completion.chunk", server)
    usage = Usage(len(prompt))

    def logprobs(entries):
        if not req.logprobs:
            return None
        return {"content": [server.logprobs_entry(e) for e in entries]}

    if req.stream:
        role = {"role": "assistant", "content": ""}  # once per choice, in its first chunk
        return sse_response(
            generation,
            head,
            usage,
            req.include_usage(),
            opening=[chat_choice(index, role, None, None) for index in range(generation.n)],
            piece=lambda index, event: chat_choice(
                index, {"content": event.text}, None, logprobs(event.logprobs)
            ),
            finish=lambda index, event: chat_choice(index, {}, event.reason, None),
        )
    choices = []
    for index, (pieces, reason) in enumerate(await collect(generation, request, usage)):
        message = {"role": "assistant", "content": "".join(p.text for p in pieces)}
        entries = [e for p in pieces for e in p.logprobs]
        choices.append(
            {
                "index": index,
                "message": message,
                "logprobs": logprobs(entries),
                "finish_reason": reason,
            }
        )
    head.object = "chat.completion"
    return JSONResponse(head.body({"choices": choices, "usage": usage.json()}))


def chat_choice(index: int, delta, reason, logprobs) -> dict:
    return {"index": index, "delta": delta, "logprobs": logprobs, "finish_reason": reason}


async def inspect(request: Request) -> Response:
    server = server_of(request)
    req: InspectRequest = await server.read(request, InspectRequest)
    if (req.text is None) == (req.messages is None):
        raise APIError(400, "give either text or messages", param="text")
    if req.messages is not None:
        messages, reply = req.messages, ""
        if messages[-1].role == "assistant":  # a conversation with its answer: prompt + reply
            messages, reply = messages[:-1], messages[-1].text()
        try:
            text = chat_prompt(messages, server.chat_mode)[0] + reply
        except ByollmError as e:
            raise APIError(400, str(e), param="messages") from None
    else:
        text = req.text
    ids = server.engine.encode_prompt(text)

    def run():
        with server.inspect_lock:
            return look_inside(
                server.model, server.tokenizer, ids, top_k=req.top_k, layer=req.layer
            )

    try:
        report = await run_in_threadpool(run)
    except ByollmError as e:
        raise APIError(400, str(e), param="layer") from None
    return JSONResponse({"object": "byollm.inspection", "model": server.model_name, **report})


async def playground(request: Request) -> Response:
    return FileResponse(STATIC / "index.html", media_type="text/html")


# -- responses -------------------------------------------------------------------------------
class Head:
    """The fields every response and chunk of one request shares."""

    def __init__(self, prefix: str, object_name: str, server: Server):
        self.id = f"{prefix}-{uuid.uuid4().hex[:24]}"
        self.object = object_name
        self.created = int(time.time())
        self.model = server.model_name

    def body(self, fields: dict) -> dict:
        return {
            "id": self.id,
            "object": self.object,
            "created": self.created,
            "model": self.model,
            "system_fingerprint": f"byollm-{__version__}",
            **fields,
        }

    def sse(self, fields: dict) -> str:
        return f"data: {json.dumps(self.body(fields), ensure_ascii=False)}\n\n"


class Usage:
    def __init__(self, prompt_tokens: int):
        self.prompt_tokens = prompt_tokens
        self.completion_tokens = 0

    def add(self, finished: Finished) -> None:
        self.completion_tokens += finished.completion_tokens

    def json(self) -> dict:
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }


def sse_error(failed: Failed) -> str:
    error = {"message": failed.message, "type": "server_error", "param": None, "code": None}
    return f"data: {json.dumps({'error': error})}\n\n"


def sse_response(
    generation: Generation,
    head: Head,
    usage: Usage,
    include_usage: bool,
    *,
    opening: list[dict],
    piece,
    finish,
) -> StreamingResponse:
    """Server-Sent Events: the `opening` choices, then a chunk per `piece(index, Piece)` and
    per `finish(index, Finished)`, the usage if asked for, and `data: [DONE]`.

    When the client goes away Starlette cancels the body; `finally` frees the slots.
    """

    async def chunks():
        try:
            for choice in opening:
                yield head.sse({"choices": [choice]})
            async for index, event in generation.events():
                if isinstance(event, Piece):
                    yield head.sse({"choices": [piece(index, event)]})
                elif isinstance(event, Finished):
                    usage.add(event)
                    yield head.sse({"choices": [finish(index, event)]})
                else:
                    yield sse_error(event)
            if include_usage:
                yield head.sse({"choices": [], "usage": usage.json()})
            yield "data: [DONE]\n\n"
        finally:
            generation.close()

    headers = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    return StreamingResponse(chunks(), media_type="text/event-stream", headers=headers)


async def collect(generation: Generation, request: Request, usage: Usage):
    """Every sequence's pieces and finish reason, in index order (non-streamed answers)."""
    pieces = [[] for _ in range(generation.n)]
    reasons = [None] * generation.n
    async for index, event in generation.events(request):
        if isinstance(event, Piece):
            pieces[index].append(event)
        elif isinstance(event, Finished):
            reasons[index] = event.reason
            usage.add(event)
        else:
            generation.close()
            raise APIError(500, event.message, code="generation_failed")
    return list(zip(pieces, reasons))


# -- errors and the API key --------------------------------------------------------------------
async def api_error(request: Request, exc: APIError) -> Response:
    return exc.response()


async def http_error(request: Request, exc: HTTPException) -> Response:
    message = {
        404: f"no route {request.url.path}",
        405: f"{request.method} is not allowed on {request.url.path}",
    }.get(exc.status_code, str(exc.detail))
    return APIError(exc.status_code, message).response()


async def user_error(request: Request, exc: ByollmError) -> Response:
    """A mistake in the request that byollm's own checks caught (e.g. a character the
    tokenizer cannot encode): the message says what and why."""
    return APIError(400, str(exc), code="invalid_value").response()


async def unexpected_error(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s", request.url.path, exc_info=exc)
    return APIError(500, f"internal error: {type(exc).__name__}", code="internal_error").response()


class RequireAPIKey:
    """ASGI middleware: /v1/* needs `Authorization: Bearer <key>`, compared in constant time."""

    def __init__(self, app, api_key: str):
        self.app = app
        self.expected = f"Bearer {api_key}".encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["path"].startswith("/v1/"):
            given = dict(scope["headers"]).get(b"authorization", b"")
            if not hmac.compare_digest(given, self.expected):
                response = APIError(
                    401,
                    "missing or wrong API key (send the header 'Authorization: Bearer KEY')",
                    code="invalid_api_key",
                )
                await response.response()(scope, receive, send)
                return
        await self.app(scope, receive, send)


def create_app(
    model,
    tokenizer,
    *,
    model_name: str = "byollm",
    chat_mode: str = "continue",
    api_key: str | None = None,
    max_batch: int = 8,
    max_waiting: int = 64,
    max_body_bytes: int = 1 << 20,
    max_messages: int = 256,
    max_prompts: int = 16,
) -> Starlette:
    """The ASGI app serving `model`. The batcher's thread starts and stops with the app."""
    server = Server(
        model,
        tokenizer,
        model_name=model_name,
        chat_mode=chat_mode,
        max_batch=max_batch,
        max_waiting=max_waiting,
        max_body_bytes=max_body_bytes,
        max_messages=max_messages,
        max_prompts=max_prompts,
    )

    @contextlib.asynccontextmanager
    async def lifespan(app):
        server.batcher.start()
        try:
            yield
        finally:
            server.batcher.stop()

    routes = [
        Route("/", playground),
        Route("/health", health),
        Route("/v1/models", list_models),
        Route("/v1/models/{model:path}", get_model),
        Route("/v1/completions", completions, methods=["POST"]),
        Route("/v1/chat/completions", chat_completions, methods=["POST"]),
        Route("/v1/byollm/inspect", inspect, methods=["POST"]),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    handlers = {
        APIError: api_error,
        ByollmError: user_error,
        HTTPException: http_error,
        Exception: unexpected_error,
    }
    app = Starlette(routes=routes, exception_handlers=handlers, lifespan=lifespan)
    app.state.server = server
    if api_key:
        app.add_middleware(RequireAPIKey, api_key=api_key)
    return app
