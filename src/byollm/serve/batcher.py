"""One decode loop shared by every request: continuous batching over a `BatchKVCache`.

    >>> batcher = Batcher(model, tokenizer, max_batch=8)  # doctest: +SKIP
    >>> batcher.start()  # doctest: +SKIP
    >>> job = batcher.submit(prompt_ids, max_new_tokens=50, sampling=SamplingConfig(),  # doctest: +SKIP
    ...                      seed=1, on_event=print)
    Piece(text='ROMEO', tokens=[...]) ... Finished(reason='length', completion_tokens=50)

Why: decoding one token costs one read of every weight, whether it serves one sequence or
eight. A server that generates requests one after the other pays that read per request; here
all running requests advance together, one forward pass per step for the whole batch.

Design choices:
- **A thread owns the model.** `submit` only appends to a waiting list; a background thread
  runs the loop: admit waiting sequences into free slots (one prefill each, and their first
  token), then one decode pass for every running sequence and one token each; finished ones
  leave at once.
  A request joins at the next step and leaves the moment it finishes (continuous batching).
- **Slots, kept dense.** The KV cache has `max_batch` slots of the full context window. Live
  sequences always occupy slots 0..n-1, so one pass feeds a contiguous batch; when a sequence
  in the middle finishes, the one in the last slot moves into its place (one copy of its keys).
- **Each sequence its own sampler and random stream**: its `SamplingConfig` chain runs on its
  own row of logits, and its `torch.Generator` is seeded from the request's seed. So the same
  seed draws the same random numbers whoever else is in the batch, and gives the same text
  (up to float rounding of the batched matrix products, which can flip a draw that lands within
  ~1e-6 of a boundary between two tokens).
- **Text is made here** (`TextStream`: UTF-8 safe, stop strings cut), so a stop string frees
  the slot at once. Events go back through `on_event`, called on this thread: the server hands
  them to its event loop.
- **Cancelling** (a client that went away) is a flag the loop reads before every step; the
  slot is free for the next request one step later.
- Log-probabilities, when asked for, are those of the model's own distribution (log-softmax of
  the raw logits, before temperature and filters), with the top alternatives at each step.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch

from byollm.errors import ByollmError
from byollm.generate.processors import SamplingConfig, build_processors, choose_next_token
from byollm.generate.stopping import TextStream
from byollm.model.interface import model_device, next_token_logits

log = logging.getLogger("byollm.serve")


@dataclass
class TokenLogprob:
    """One generated token, its log-probability and the `top` alternatives (id, logprob)."""

    token: int
    logprob: float
    top: list[tuple[int, float]]


@dataclass
class Piece:
    """New text of a sequence, with the logprobs of the tokens that produced it (if asked)."""

    text: str
    logprobs: list[TokenLogprob] = field(default_factory=list)


@dataclass
class Finished:
    reason: str  # "stop" (stop token or string) or "length" (max_new_tokens reached)
    completion_tokens: int


@dataclass
class Failed:
    message: str


class ServerBusy(ByollmError):
    """Too many sequences are already waiting for a slot."""


class Job:
    """One sequence being generated: its prompt, sampler, random stream and text stream."""

    def __init__(
        self,
        prompt: list[int],
        max_new_tokens: int,
        sampling: SamplingConfig,
        generator: torch.Generator,
        stream: TextStream,
        top_logprobs: int | None,
        on_event: Callable[[object], None],
    ):
        self.prompt = prompt
        self.max_new_tokens = max_new_tokens
        self.sampling = sampling
        self.processors = build_processors(sampling)
        self.generator = generator
        self.stream = stream
        self.top_logprobs = top_logprobs  # None: no logprobs; k: the top k alternatives too
        self.on_event = on_event
        self.generated: list[int] = []
        # prompt + generated ids on the model's device, for the penalties (one buffer, no
        # concatenation per step; the last generated token is never needed there).
        self.ids = torch.tensor([prompt + [0] * max_new_tokens], device=generator.device)
        self.length = len(prompt)
        self.logits: torch.Tensor | None = None  # (1, V): the next token's, waiting to be drawn
        self.slot = -1
        self.cancelled = False
        self.done = False
        self.pending: list[TokenLogprob] = []  # logprobs of tokens whose text is held back

    def cancel(self) -> None:
        """Stop generating (from any thread); the slot is freed at the loop's next step."""
        self.cancelled = True


class Batcher:
    """The shared decode loop. `submit` from any thread; events come back on the loop's thread."""

    def __init__(self, model, tokenizer, *, max_batch: int = 8, max_waiting: int = 64):
        if max_batch < 1:
            raise ByollmError(f"max_batch={max_batch} is invalid: must be >= 1")
        self.model = model
        self.tokenizer = tokenizer
        self.max_batch = max_batch
        self.max_waiting = max_waiting
        self.block_size = model.config.block_size
        self.device = model_device(model)
        self.cache = model.new_batch_kv_cache(max_batch)
        self.running: list[Job] = []  # in slot order: running[i].slot == i
        self.waiting: deque[Job] = deque()
        self._wakeup = threading.Condition()
        self._thread: threading.Thread | None = None
        self._stopping = False

    # -- the public side (any thread) ----------------------------------------------------------
    def start(self) -> None:
        self._stopping = False
        self._thread = threading.Thread(target=self._loop, name="byollm-batcher", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        with self._wakeup:
            self._stopping = True
            self._wakeup.notify()
        if self._thread is not None:
            self._thread.join()

    def submit_all(self, jobs: Sequence[Job]) -> None:
        """Queue jobs (all or none); `ServerBusy` when the waiting list is full."""
        with self._wakeup:
            if self._stopping or self._thread is None:
                raise ServerBusy("the server is not running (starting up or shutting down)")
            if len(self.waiting) + len(jobs) > self.max_waiting:
                raise ServerBusy(
                    f"the server is busy: {len(self.waiting)} sequences are "
                    f"waiting for one of {self.max_batch} slots; retry later"
                )
            self.waiting.extend(jobs)
            self._wakeup.notify()

    def new_job(
        self,
        prompt: Sequence[int],
        max_new_tokens: int,
        sampling: SamplingConfig,
        *,
        seed: int | None = None,
        stop: Sequence[str] = (),
        stop_tokens: Sequence[int] = (),
        top_logprobs: int | None = None,
        on_event: Callable[[object], None],
    ) -> Job:
        """A job for one sequence, checked against the context window (not yet queued)."""
        if not prompt:
            raise ByollmError("the prompt is empty (no tokens)")
        if max_new_tokens < 1:
            raise ByollmError(f"max_tokens={max_new_tokens} is invalid: must be >= 1")
        # The last generated token is never fed back, hence the -1.
        if len(prompt) + max_new_tokens - 1 > self.block_size:
            raise ByollmError(
                f"this model's context window is {self.block_size} tokens, but "
                f"{len(prompt) + max_new_tokens} were asked for ({len(prompt)} in the prompt, "
                f"{max_new_tokens} to generate); shorten the prompt or lower max_tokens"
            )
        generator = torch.Generator(device=self.device)
        if seed is None:
            generator.seed()  # a fresh random stream
        else:
            generator.manual_seed(seed % 2**64)
        stream = TextStream(self.tokenizer, stop, stop_tokens)
        return Job(
            list(prompt), max_new_tokens, sampling, generator, stream, top_logprobs, on_event
        )

    def submit(
        self, prompt: Sequence[int], max_new_tokens: int, sampling: SamplingConfig, **kwargs
    ) -> Job:
        """Queue one sequence; see `new_job` for the arguments."""
        job = self.new_job(prompt, max_new_tokens, sampling, **kwargs)
        self.submit_all([job])
        return job

    def load(self) -> dict:
        """How busy the loop is, for /health."""
        return {
            "running": len(self.running),
            "waiting": len(self.waiting),
            "max_batch": self.max_batch,
        }

    # -- the loop (its own thread) -------------------------------------------------------------
    def _loop(self) -> None:
        while True:
            with self._wakeup:
                while not self._stopping and not self.running and not self.waiting:
                    self._wakeup.wait()
                if self._stopping:
                    break
            try:
                self._step()
            except Exception as e:  # a bug or an out-of-memory: fail the batch, keep serving
                log.exception("decode step failed")
                for job in self.running:
                    self._finish(job, Failed(f"generation failed: {type(e).__name__}: {e}"))
                self._leave()
        for job in [*self.running, *self.waiting]:
            self._finish(job, Failed("the server is shutting down"))

    def _step(self) -> None:
        """Admit newcomers (prefill, first token), then one decode pass and one token for all."""
        for job in self.running:
            if job.cancelled:
                job.done = True
        self._leave()
        with torch.inference_mode():
            self._admit()
            if self.running:
                self._decode()
                self._draw(self.running)
        self._leave()

    def _admit(self) -> None:
        """Prefill waiting sequences into free slots, one prompt per forward pass, and draw
        each one's first token at once (its time to first token is its own prefill, not the
        whole burst's)."""
        while self.waiting and len(self.running) < self.max_batch:
            with self._wakeup:
                job = self.waiting.popleft()
            if job.cancelled:
                continue
            job.slot = len(self.running)
            self.cache.clear(job.slot)
            self.cache.feed(job.slot, 1, len(job.prompt))
            try:
                job.logits = next_token_logits(self.model, job.ids[:, : job.length], self.cache)
            except Exception as e:
                log.exception("prefill failed")
                self._finish(job, Failed(f"prefill failed: {type(e).__name__}: {e}"))
                continue
            self._draw([job])
            if not job.done:  # (max_tokens=1 or a stop at once: done, the slot stays free)
                self.running.append(job)

    def _draw(self, jobs: list[Job]) -> None:
        """Draw each job's next token from its own logits and random stream; emit its text."""
        drawn, choices = [], []
        for job in jobs:
            context = job.ids[:, : job.length]
            try:
                choices.append(
                    choose_next_token(
                        job.logits, context, job.sampling, job.processors, job.generator
                    )
                )
                drawn.append(job)
            except ByollmError as e:  # e.g. every token banned: this request fails, not all
                self._finish(job, Failed(str(e)))
        if not choices:
            return
        tokens = torch.cat(choices).tolist()  # one device -> host copy for the whole batch
        for job, token in zip(drawn, tokens):
            job.generated.append(token)
            if job.length < job.ids.size(1):
                job.ids[0, job.length] = token
                job.length += 1
            if job.top_logprobs is not None and token not in job.stream.stop_tokens:
                job.pending.append(token_logprob(job.logits[0], token, job.top_logprobs))
            text = job.stream.push(token)
            if not job.stream.finished and len(job.generated) == job.max_new_tokens:
                text += job.stream.close()
            if text:
                job.on_event(Piece(text, job.pending))
                job.pending = []
            if job.stream.finished:
                reason = "stop" if job.stream.hit_stop else "length"
                self._finish(job, Finished(reason, len(job.generated)))

    def _decode(self) -> None:
        """One forward pass: every running sequence's newest token, (n, 1) -> logits (n, V)."""
        n = len(self.running)
        newest = [[job.generated[-1]] for job in self.running]
        self.cache.feed(0, n, 1)
        logits = next_token_logits(self.model, torch.tensor(newest, device=self.device), self.cache)
        for i, job in enumerate(self.running):
            job.logits = logits[i : i + 1]

    def _leave(self) -> None:
        """Free the slots of finished sequences; move the last live ones into the holes."""
        live = [job for job in self.running if not job.done]
        n = len(live)
        movers = [job for job in live if job.slot >= n]
        holes = [job.slot for job in self.running if job.done and job.slot < n]
        for job, hole in zip(movers, holes):
            self.cache.move(job.slot, hole)
            job.slot = hole
        for slot in range(n, len(self.running)):
            self.cache.clear(slot)
        self.running = sorted(live, key=lambda job: job.slot)

    def _finish(self, job: Job, event) -> None:
        job.done = True
        job.on_event(event)


def token_logprob(logits: torch.Tensor, token: int, top: int) -> TokenLogprob:
    """The log-probability of `token` under softmax(logits), and the `top` most likely ids."""
    logprobs = torch.log_softmax(logits.float(), dim=-1)
    entry = TokenLogprob(token, float(logprobs[token]), [])
    if top:
        values, ids = torch.topk(logprobs, min(top, logprobs.numel()))
        entry.top = list(zip(ids.tolist(), values.tolist()))
    return entry
