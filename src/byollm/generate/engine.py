"""The generation engine: prefill the prompt once, then decode one token at a time.

    >>> engine = Engine(model, tokenizer)  # doctest: +SKIP
    >>> for piece in engine.stream("ROMEO:", max_new_tokens=50, sampling=SamplingConfig(top_k=40)):  # doctest: +SKIP
    ...     print(piece, end="", flush=True)

Design choices:
- **The model is an interface**, not a class: anything callable as `model(idx)` (or
  `model(idx, kv_cache=cache)`) that returns logits `(B, T, V)` -- or a `(logits, loss)` tuple,
  as `byollm.model.GPT` does -- can be driven. A model with `new_kv_cache(batch, max_seq_len)`
  gets the fast path; a toy callable in a test gets the plain one.
- **Prefill, then decode.** With a KV cache the prompt goes through the model once (prefill);
  after that each step feeds only the newest token, and attention reads the keys and values of
  the earlier ones from the cache. Without a cache every step re-reads the whole window: the
  work per token grows with the length, which is what the benchmark measures against.
- **Context window policy** (`context="slide"`, the default, or `"error"`). A prompt longer than
  the model's `block_size` is always an error. When prompt + new tokens outgrow the window,
  `"error"` refuses up front, and `"slide"` keeps going on the most recent tokens: without a
  cache every step sees the last `block_size` tokens (as nanoGPT does); with a cache, when it
  is full it is rebuilt from the last 3/4 of the window (one prefill every `block_size / 4`
  tokens instead of one per token). Both agree exactly as long as everything fits.
- **Streaming is UTF-8 safe**: token ids go through the tokenizer's `StreamingDecoder`, which
  holds back the bytes of a character split across tokens, then through `StopStrings`, which
  holds back text that may be the start of a stop string. A caller never sees half a character
  or half a stop string.
- **Batched**: `generate(prompts, num_samples=N)` decodes all rows together (one weight read per
  step serves every row). Rows must have prompts of equal token length to share a batch (there
  is no padding mask in the model); prompts of different lengths are generated one group of
  equal length at a time. Finished rows keep their slot until the whole batch is done.
- **Empty prompt**: generation starts from the tokenizer's `<|endoftext|>` token if it has one
  (the GPT-2 convention for "start of a document"), else from a newline.
- **Prompts are text**: `<|endoftext|>` typed in a prompt is encoded as its characters, never
  as the control token (a user cannot end the document or forge a turn).
- **Speculative decoding** (`Engine(..., speculative=4)`, off by default): guess up to 4
  tokens by prompt lookup and check them in one forward pass (`speculative.py`). Same greedy
  output, same sampling distribution, fewer weight reads when the text repeats. It applies to
  one sequence with a KV cache whose prompt + new tokens fit the window; anything else decodes
  plainly.
- Reproducible: `seed=` seeds a private `torch.Generator`, so the same seed gives the same
  samples whatever else used the global RNG.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import torch

from byollm.config import check_number, check_seed
from byollm.errors import ByollmError
from byollm.generate.processors import SamplingConfig, build_processors, choose_next_token
from byollm.generate.speculative import speculative_ids
from byollm.generate.stopping import TextStream
from byollm.model.interface import model_block_size, model_device, next_token_logits

CONTEXT_POLICIES = ("slide", "error")
# Limits of one request. Prompt + new tokens are preallocated (8 bytes per token per row) and
# each row of a batch has its own KV cache: without a bound, a typo asks for terabytes.
MAX_NEW_TOKENS = 2**20  # about a million tokens (4 MB of text); longer texts go in parts
MAX_BATCH_ROWS = 1024  # rows decoded together (prompts x num_samples of equal length)


def check_generation_args(max_new_tokens: int, *, num_samples: int = 1, seed=None) -> None:
    """Refuse request sizes and seeds out of range, before any work; one line naming the value."""
    check_number(
        "max_new_tokens",
        max_new_tokens,
        0,
        MAX_NEW_TOKENS,
        integer=True,
        hint="tokens are preallocated; generate longer texts in parts",
    )
    check_number("num_samples", num_samples, 1, MAX_BATCH_ROWS, integer=True)
    if seed is not None:
        check_seed("seed", seed)


def check_context(prompt_len: int, max_new_tokens: int, block_size: int | None, context: str):
    """Raise a one-line error for a prompt or a request that cannot fit the model's window."""
    if context not in CONTEXT_POLICIES:
        raise ByollmError(f"unknown context policy {context!r}; choose one of {CONTEXT_POLICIES}")
    check_generation_args(max_new_tokens)
    if prompt_len == 0:
        raise ByollmError("the prompt is empty (no tokens)")
    if block_size is None:
        return
    if prompt_len > block_size:
        raise ByollmError(
            f"the prompt is {prompt_len} tokens long but the model's context window "
            f"(block_size) is {block_size}; shorten the prompt"
        )
    # The last generated token is never fed back, hence the -1.
    if context == "error" and prompt_len + max_new_tokens - 1 > block_size:
        raise ByollmError(
            f"prompt ({prompt_len} tokens) + max_new_tokens ({max_new_tokens}) exceed the "
            f"context window of {block_size} tokens; ask for fewer tokens or use context='slide'"
        )


def generate_ids(
    model,
    prompt: torch.Tensor,
    max_new_tokens: int,
    sampling: SamplingConfig | None = None,
    *,
    use_cache: bool = True,
    context: str = "slide",
    generator: torch.Generator | None = None,
) -> Iterator[torch.Tensor]:
    """Yield the next token of every row, `(B,)` long, `max_new_tokens` times.

    The token-level core that everything else is built on. It does not stop early: stopping is
    the caller's choice (close the generator, e.g. by `break`-ing out of the loop).

    >>> prompt = torch.tensor([[1, 2, 3]])
    >>> [t.tolist() for t in generate_ids(model, prompt, 2, SamplingConfig(temperature=0))]  # doctest: +SKIP
    [[4], [5]]
    """
    sampling = sampling or SamplingConfig()
    processors = build_processors(sampling)
    batch_size, prompt_len = prompt.shape
    block_size = model_block_size(model)
    check_context(prompt_len, max_new_tokens, block_size, context)
    check_number("rows in one batch", batch_size, 1, MAX_BATCH_ROWS)
    if max_new_tokens == 0:
        return
    # One preallocated buffer holds prompt + generated tokens: no concatenation per step.
    tokens = torch.empty(
        batch_size, prompt_len + max_new_tokens, dtype=torch.long, device=prompt.device
    )
    tokens[:, :prompt_len] = prompt
    length = prompt_len
    cache = None
    if use_cache and hasattr(model, "new_kv_cache"):
        # Room for what will be fed (the last token never is), at most the window.
        needed = prompt_len + max_new_tokens - 1
        cache = model.new_kv_cache(
            batch_size, needed if block_size is None else min(block_size, needed)
        )
    with torch.inference_mode():
        logits = next_token_logits(model, prompt, cache)  # prefill
    for step in range(max_new_tokens):
        with torch.inference_mode():
            next_token = choose_next_token(
                logits, tokens[:, :length], sampling, processors, generator
            )
        tokens[:, length] = next_token
        length += 1
        yield next_token
        if step == max_new_tokens - 1:
            break  # the last token is not fed back: no wasted forward pass
        with torch.inference_mode():
            if cache is None:
                window = tokens[:, max(0, length - block_size) if block_size else 0 : length]
                logits = next_token_logits(model, window)
            elif block_size is not None and cache.pos >= block_size:
                keep = block_size - block_size // 4  # slide: rebuild from the recent tokens
                cache.reset()
                logits = next_token_logits(model, tokens[:, length - keep : length], cache)
            else:
                logits = next_token_logits(model, tokens[:, length - 1 : length], cache)


def seeded_generator(seed: int | None, device) -> torch.Generator | None:
    """A private random stream seeded with `seed` (an integer in [0, 2**64 - 1]), or None."""
    if seed is None:
        return None
    check_seed("seed", seed)
    generator = torch.Generator(device=device)
    generator.manual_seed(int(seed))
    return generator


class Engine:
    """Text in, text out (or streamed), over `generate_ids`.

    `tokenizer` needs `encode`, `decode`, `eot_id`, and works with `StreamingDecoder`.
    """

    def __init__(
        self,
        model,
        tokenizer,
        *,
        use_cache: bool = True,
        context: str = "slide",
        speculative: int = 0,
    ):
        if context not in CONTEXT_POLICIES:
            raise ByollmError(
                f"unknown context policy {context!r}; choose one of {CONTEXT_POLICIES}"
            )
        self.model = model
        self.tokenizer = tokenizer
        self.use_cache = use_cache
        self.context = context
        if speculative < 0:
            raise ByollmError(
                f"speculative={speculative} is invalid: the number of tokens to "
                "guess per step must be >= 0 (0 turns it off)"
            )
        self.speculative = speculative  # see speculative.py; 0 = plain decoding
        if hasattr(model, "eval"):
            model.eval()  # no dropout while sampling

    # -- prompts -------------------------------------------------------------------------------
    def encode_prompt(self, prompt: str) -> list[int]:
        """Token ids of `prompt`; an empty prompt starts from `<|endoftext|>` or a newline."""
        if prompt:
            # A prompt is text: "<|endoftext|>" typed by a user is not the control token.
            ids = self.tokenizer.encode(prompt)
            if ids:
                return ids
        if self.tokenizer.eot_id is not None:
            return [self.tokenizer.eot_id]
        ids = self.tokenizer.encode("\n")
        if not ids:
            raise ByollmError(
                "the prompt is empty and this tokenizer has neither <|endoftext|> nor a newline "
                "to start from; give a prompt"
            )
        return ids

    def default_stop_tokens(self) -> list[int]:
        eot = self.tokenizer.eot_id
        return [] if eot is None else [eot]

    # -- generation ----------------------------------------------------------------------------
    def generate(
        self,
        prompts: str | Sequence[str],
        *,
        max_new_tokens: int = 100,
        sampling: SamplingConfig | None = None,
        num_samples: int = 1,
        seed: int | None = None,
        stop: Sequence[str] = (),
        stop_tokens: Sequence[int] | None = None,
        on_text: Callable[[int, str], None] | None = None,
        generator: torch.Generator | None = None,
    ) -> list[str]:
        """Complete each prompt `num_samples` times; return the new text of every row.

        Rows are ordered prompt by prompt, sample by sample. `on_text(row, piece)` is called
        with each new piece of text as soon as it is safe to show (streaming). Generation of a
        row stops at `max_new_tokens`, at a stop token (default: `<|endoftext|>`), or at a stop
        string (not included in the result). `generator` (instead of `seed`) continues an
        existing random stream, e.g. across the turns of a chat.
        """
        if isinstance(prompts, str):
            prompts = [prompts]
        check_generation_args(max_new_tokens, num_samples=num_samples, seed=seed)
        rows = [ids for ids in map(self.encode_prompt, prompts) for _ in range(num_samples)]
        stop_tokens = self.default_stop_tokens() if stop_tokens is None else list(stop_tokens)
        if generator is None:
            generator = seeded_generator(seed, model_device(self.model))
        results = [""] * len(rows)
        # Rows whose prompts have the same length share a batch (no padding needed).
        groups: dict[int, list[int]] = {}
        for i, ids in enumerate(rows):
            groups.setdefault(len(ids), []).append(i)
        for row_indices in groups.values():
            texts = self._generate_batch(
                [rows[i] for i in row_indices],
                max_new_tokens,
                sampling,
                generator,
                stop,
                stop_tokens,
                None if on_text is None else (lambda r, s, m=row_indices: on_text(m[r], s)),
            )
            for i, text in zip(row_indices, texts):
                results[i] = text
        return results

    def stream(
        self,
        prompt: str,
        *,
        max_new_tokens: int = 100,
        sampling: SamplingConfig | None = None,
        seed: int | None = None,
        stop: Sequence[str] = (),
        stop_tokens: Sequence[int] | None = None,
        generator: torch.Generator | None = None,
    ) -> Iterator[str]:
        """Yield the completion of one prompt piece by piece (UTF-8 safe, stop strings cut).

        Generation is lazy: a `break` in the caller's loop stops it at the next token.
        """
        check_generation_args(max_new_tokens, seed=seed)
        ids = self.encode_prompt(prompt)
        stop_tokens = self.default_stop_tokens() if stop_tokens is None else list(stop_tokens)
        if generator is None:
            generator = seeded_generator(seed, model_device(self.model))
        yield from self._pieces([ids], max_new_tokens, sampling, generator, stop, stop_tokens)

    def _generate_batch(
        self, rows, max_new_tokens, sampling, generator, stop, stop_tokens, on_text
    ) -> list[str]:
        texts = [""] * len(rows)
        for row, piece in self._pieces(
            rows, max_new_tokens, sampling, generator, stop, stop_tokens, with_rows=True
        ):
            texts[row] += piece
            if on_text is not None:
                on_text(row, piece)
        return texts

    def _token_steps(self, prompt, max_new_tokens, sampling, generator):
        """Speculative decoding where it applies (one row, a KV cache, room in the window)."""
        block_size = model_block_size(self.model)
        fits = block_size is None or prompt.shape[1] + max_new_tokens - 1 <= block_size
        if (
            self.speculative
            and self.use_cache
            and prompt.shape[0] == 1
            and fits
            and hasattr(self.model, "new_kv_cache")
        ):
            check_context(prompt.shape[1], max_new_tokens, block_size, self.context)
            return speculative_ids(
                self.model,
                prompt,
                max_new_tokens,
                sampling,
                num_guesses=self.speculative,
                generator=generator,
            )
        return generate_ids(
            self.model,
            prompt,
            max_new_tokens,
            sampling,
            use_cache=self.use_cache,
            context=self.context,
            generator=generator,
        )

    def _pieces(
        self, rows, max_new_tokens, sampling, generator, stop, stop_tokens, with_rows=False
    ):
        """The streaming heart: token ids -> safe text pieces, row by row, until all stop."""
        device = model_device(self.model)
        prompt = torch.tensor(rows, dtype=torch.long, device=device)
        streams = [TextStream(self.tokenizer, stop, stop_tokens) for _ in rows]
        steps = self._token_steps(prompt, max_new_tokens, sampling, generator)
        for next_tokens in steps:
            for row, token in enumerate(next_tokens.tolist()):
                text = streams[row].push(token)
                if text:
                    yield (row, text) if with_rows else text
            if all(stream.finished for stream in streams):
                steps.close()
                break
        for row, stream in enumerate(streams):
            text = stream.close()  # at the length limit: release what was held back
            if text:
                yield (row, text) if with_rows else text
