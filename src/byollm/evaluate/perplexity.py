"""Mean loss, perplexity and bits per byte of a model on a text, with a sliding window.

    >>> evaluate_text(model, tokenizer, open("valid.txt").read(), stride=128)  # doctest: +SKIP
    {'loss': 1.47, 'perplexity': 4.35, 'bits_per_byte': 2.12, 'tokens': 111539, 'bytes': ...}

What the three numbers mean:
- **loss**: the mean negative log-likelihood per token, in nats -- the model's average surprise.
- **perplexity** = exp(loss): "as uncertain as a uniform choice among this many tokens".
  It depends on the tokenizer: a char model and a BPE model cannot be compared by it.
- **bits per byte** = total nats / ln 2 / number of UTF-8 bytes scored: the size the model would
  compress the text to. It does not depend on the tokenizer, so every model can be compared.

Design choices:
- A model sees at most `block_size` tokens. The text is cut into windows that start every
  `stride` tokens; each token is scored once, in the first window that contains it as a target,
  with as much context as that window gives. stride = block_size: no overlap (fast, but tokens
  at the start of a window have little context); a smaller stride: more context, more work.
  The same procedure as Hugging Face's "Perplexity of fixed-length models" guide, except that
  no token is left unscored at window borders.
- The first token of the text is only context (nothing predicts it); bytes are counted for the
  scored tokens only (`tokenizer.decode_bytes([id])` for each), so bits per byte is exact.
- Deterministic: no sampling, fixed windows, the model in eval mode, sums in float64.
- Windows of equal length are batched (`batch_size` at a time); a progress bar shows windows.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Sequence

import torch
from tqdm import tqdm

from byollm.config import check_number
from byollm.errors import ByollmError
from byollm.model.interface import forward_logits, model_block_size, model_device

LN2 = math.log(2)
# Windows per forward pass; the logits alone are batch x block_size x vocabulary floats.
MAX_BATCH_SIZE = 1024


def check_eval_args(*, stride=None, batch_size=8, max_tokens=None, block_size=None) -> None:
    """Refuse settings out of range before any work; `stride` is checked against the window
    again once the window is known (`plan_windows`)."""
    if stride is not None:
        check_number("stride", stride, 1, block_size, integer=True, hint="tokens between windows")
    check_number("batch_size", batch_size, 1, MAX_BATCH_SIZE, integer=True)
    if max_tokens is not None:
        check_number("max_tokens", max_tokens, 2, integer=True, hint="the first is only context")
    if block_size is not None:
        check_number("block_size", block_size, 1, integer=True)


def plan_windows(n_tokens: int, block_size: int, stride: int) -> list[tuple[int, int, int]]:
    """The windows over the (input, target) pairs of `n_tokens` tokens.

    Pair i has input token i and target token i + 1. Each window is `(begin, end, first_scored)`:
    it feeds pairs `begin .. end-1` and scores pairs `first_scored .. end-1`.

    >>> plan_windows(11, block_size=4, stride=2)   # 10 pairs
    [(0, 4, 0), (2, 6, 4), (4, 8, 6), (6, 10, 8)]
    """
    if stride < 1 or stride > block_size:
        raise ByollmError(
            f"stride={stride} is invalid: must be between 1 and the context window ({block_size})"
        )
    n_pairs = n_tokens - 1
    windows, begin, scored_until = [], 0, 0
    while True:
        end = min(begin + block_size, n_pairs)
        windows.append((begin, end, scored_until))
        scored_until = end
        if end == n_pairs:
            return windows
        begin += stride


def evaluate_ids(
    model,
    ids: Sequence[int] | torch.Tensor,
    *,
    token_bytes: Sequence[int] | None = None,
    block_size: int | None = None,
    stride: int | None = None,
    batch_size: int = 8,
    progress: bool = True,
) -> dict:
    """Loss, perplexity (and bits per byte when `token_bytes[i]`, the UTF-8 length of token i,
    is given) of `model` on the token sequence `ids`."""
    check_eval_args(stride=stride, batch_size=batch_size, block_size=block_size)
    ids = torch.as_tensor(ids, dtype=torch.long).flatten()
    if ids.numel() < 2:
        raise ByollmError(
            f"the evaluation text has {ids.numel()} token(s); at least 2 are needed (the first "
            "one is only context)"
        )
    model_window = model_block_size(model)
    block_size = block_size or model_window
    if block_size is None:
        raise ByollmError("the model does not say its context window; pass block_size=")
    if model_window is not None:
        check_number(
            "block_size",
            block_size,
            1,
            model_window,
            integer=True,
            hint="at most the model's context window",
        )
    if stride is None:
        stride = max(1, block_size // 2)
    windows = plan_windows(ids.numel(), block_size, stride)
    if hasattr(model, "eval"):
        model.eval()
    device = model_device(model)
    total_nll = torch.zeros((), dtype=torch.float64)
    n_scored = 0
    bar = tqdm(
        total=len(windows),
        desc="eval",
        unit="window",
        disable=not progress or not sys.stderr.isatty(),
    )
    # Windows of the same length are batched together (all but possibly the last one).
    by_length: dict[int, list[tuple[int, int, int]]] = {}
    for window in windows:
        by_length.setdefault(window[1] - window[0], []).append(window)
    for group in by_length.values():
        for start in range(0, len(group), batch_size):
            chunk = group[start : start + batch_size]
            inputs = torch.stack([ids[b:e] for b, e, _ in chunk]).to(device)
            targets = torch.stack([ids[b + 1 : e + 1] for b, e, _ in chunk]).clone()
            for row, (b, _, first) in enumerate(chunk):
                targets[row, : first - b] = -1  # already scored by an earlier window
            with torch.inference_mode():
                logits = forward_logits(model, inputs)
                nll = torch.nn.functional.cross_entropy(
                    logits.float().flatten(0, 1),
                    targets.to(device).flatten(),
                    ignore_index=-1,
                    reduction="sum",
                )
            total_nll += nll.double().cpu()
            n_scored += int((targets != -1).sum())
            bar.update(len(chunk))
    bar.close()
    assert n_scored == ids.numel() - 1, "every token but the first is scored exactly once"
    loss = (total_nll / n_scored).item()
    result = {
        "loss": loss,
        "perplexity": math.exp(loss),
        "tokens": n_scored,
        "block_size": block_size,
        "stride": stride,
        "windows": len(windows),
    }
    if token_bytes is not None:
        n_bytes = int(sum(token_bytes[1:]))
        result["bytes"] = n_bytes
        result["bits_per_byte"] = total_nll.item() / LN2 / max(n_bytes, 1)
    return result


def evaluate_text(
    model,
    tokenizer,
    text: str,
    *,
    stride: int | None = None,
    batch_size: int = 8,
    block_size: int | None = None,
    max_tokens: int | None = None,
    progress: bool = True,
) -> dict:
    """Loss, perplexity and bits per byte of `model` on `text` (see the module docstring).

    `max_tokens` evaluates only the first that many tokens (a quick estimate).
    """
    check_eval_args(
        stride=stride, batch_size=batch_size, max_tokens=max_tokens, block_size=block_size
    )
    ids = tokenizer.encode(text)  # text is text: "<|endoftext|>" in it is not the control token
    if max_tokens is not None:
        ids = ids[:max_tokens]
    token_bytes = _token_byte_lengths(tokenizer, ids)
    return evaluate_ids(
        model,
        ids,
        token_bytes=token_bytes,
        block_size=block_size,
        stride=stride,
        batch_size=batch_size,
        progress=progress,
    )


def _token_byte_lengths(tokenizer, ids: Sequence[int]) -> list[int]:
    """UTF-8 length of every token, each distinct id decoded once."""
    lengths: dict[int, int] = {}
    for token in set(ids):
        lengths[token] = len(tokenizer.decode_bytes([token]))
    return [lengths[token] for token in ids]


def read_eval_text(corpus: str, split: str = "all", val_fraction: float = 0.1) -> str:
    """The text to score: a corpus (name or path), or for split='val' the documents (or the
    tail) that `byollm prepare` holds out with the same `val_fraction`, by its own rule."""
    from byollm.corpora import read_corpus_text
    from byollm.data.prepare import split_documents

    if split == "val":
        if not 0.0 < val_fraction < 1.0:
            raise ByollmError(f"--val-fraction {val_fraction} is invalid: must be in (0, 1)")
        documents = split_documents(corpus, "val", val_fraction=val_fraction)
        text = "\n".join(text for _name, text in documents)
        if not text:
            raise ByollmError(
                f"corpus {corpus!r} holds no validation text at --val-fraction {val_fraction} "
                "(too small: the split ends at a line end); use --split all"
            )
    else:
        text = read_corpus_text(corpus)
    if not text:
        raise ByollmError(f"corpus {corpus!r} is empty: nothing to evaluate")
    return text


def evaluate_checkpoint(
    checkpoint,
    corpus: str,
    *,
    split: str = "all",
    val_fraction: float = 0.1,
    stride: int | None = None,
    batch_size: int = 8,
    max_tokens: int | None = None,
    device: str = "auto",
    quantize: str = "none",
    progress: bool = True,
) -> dict:
    """`evaluate_text` of a checkpoint (or run folder) on a corpus (`read_eval_text`), with
    what was evaluated (checkpoint, corpus, split, quantize) in the result."""
    from byollm.model.checkpoint import load_for_inference

    check_eval_args(stride=stride, batch_size=batch_size, max_tokens=max_tokens)
    text = read_eval_text(corpus, split, val_fraction)
    model, tokenizer = load_for_inference(checkpoint, device=device, quantize=quantize)
    result = evaluate_text(
        model,
        tokenizer,
        text,
        stride=stride,
        batch_size=batch_size,
        max_tokens=max_tokens,
        progress=progress,
    )
    what = {"checkpoint": str(checkpoint), "corpus": corpus, "split": split, "quantize": quantize}
    return {**what, **result}
