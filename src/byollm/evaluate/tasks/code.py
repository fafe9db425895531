"""Python code completion (`byollm eval --task python-code`): does the model write code?

    >>> modules = held_out_modules()  # the python-stdlib modules training never saw  # doctest: +SKIP
    >>> print(format_code(evaluate_code(model, tokenizer, modules)))  # doctest: +SKIP
    python-code: bits per byte 1.6355 (199,962 bytes) | next-line exact match 0.0150 (400 lines)
    | bodies ast.parse accepts 0.1800 (100 functions, 17% hit a limit) | 78 held-out modules, ...

Three numbers on held-out modules, each one fixed, deterministic sample:

- **bits per byte** of the modules' text (`evaluate_text`, the sliding window of `byollm eval`),
  which compares models with different tokenizers fairly.
- **next-line exact match**: given the lines before it (as much as fits the window), does greedy
  decoding write the next line exactly, indentation included? The line counts as written when
  the decoded text up to its first newline equals it; running out of tokens first is a miss.
- **parse rate**: for real function headers (`def ...:`, decorators left out, signatures over
  several lines kept whole) of short functions (a real body of at most `SHORT_BODY_BYTES`),
  sample a body and ask `ast.parse` whether header + body is Python.

Design choices:
- **Held-out modules** are the `python-stdlib` modules of the validation split that
  `byollm prepare` sets aside (`byollm.data.prepare.document_split`: a hash of the module's
  path picks ~`val_fraction` of the modules, whole, from all over the library; the rule
  prepare applies to any corpus of 10 documents or more), so a model trained with the default
  split never saw them. A module `ast.parse` refuses is left out.
- **Positions are spread evenly** over all candidates (non-blank lines; short functions), in file
  order, with no random numbers: the same on every machine and for every model.
- **Prompts fit the window**: the text before a position, cut to its newest tokens: half the
  window for a next line (a line longer than the other half is not asked for), a quarter for a
  function body, which gets the other three quarters.
- **How a sampled body ends** (the first of): (1) a dedent: the first non-blank line indented no
  deeper than the `def` (the body is over; that line is dropped); (2) the tokenizer's
  `<|endoftext|>`; (3) a limit: `BODY_BYTES` of text or the window's room, where the last,
  unfinished line is dropped. Header + body, dedented, must then parse; an empty body does not.
  `truncated` reports the share that hit a limit. The limit is in bytes so that tokenizers
  compare fairly; a model with a short window (in bytes) hits the room first: a real limit
  of that model, reported as such.
- **Short functions only**, so a body that ends by itself fits the budget: with long ones the
  limit would cut most bodies, and the rate would measure whether a prefix is balanced.
- **Sampling is seeded**: temperature `BODY_TEMPERATURE`, a private `torch.Generator`, so the
  same model gives the same bodies. Rows of one batch share a prompt length (no padding).
"""

from __future__ import annotations

import ast
import re
import textwrap
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from byollm.device import autocast, pick_dtype
from byollm.errors import ByollmError
from byollm.evaluate.perplexity import evaluate_text
from byollm.evaluate.tasks.records import spread
from byollm.evaluate.tasks.scoring import ScoringOptions
from byollm.model.interface import model_block_size, model_device, next_token_logits

CORPUS = "python-stdlib"
VAL_FRACTION = 0.1  # the split `byollm prepare` (and so training) uses by default
NEXT_LINES = 400  # next-line positions asked
FUNCTIONS = 100  # function headers completed
SHORT_BODY_BYTES = 400  # headers of functions whose real body is at most this long
BODY_BYTES = 800  # a sampled body stops after this much text (twice the longest real one)
BODY_TEMPERATURE = 0.8
BODY_SEED = 1234
BPB_BYTES = 200_000  # bits per byte over at most this much held-out text (whole modules)
BATCH_ROWS = 32  # rows decoded together


@dataclass(frozen=True)
class Module:
    name: str  # its path in the standard library, e.g. "zipfile/__init__.py"
    text: str


def held_out_modules(corpus: str = CORPUS, val_fraction: float = VAL_FRACTION) -> list[Module]:
    """The modules of `corpus`'s validation split (by document) that parse, in corpus order."""
    from byollm.corpora.documents import iter_documents
    from byollm.data.prepare import document_split

    modules = []
    for document in iter_documents(corpus, progress=False):
        text = "".join(document.pieces)
        if document_split(document.name, val_fraction) != "val":
            continue
        # a stdlib document starts with its `# file: path` line; the module is the rest
        source = text.split("\n", 1)[1] if text.startswith(f"# file: {document.name}\n") else text
        if _parses(source):  # not when cut short by a size cap
            modules.append(Module(document.name, source))
    return modules


# --- the fixed samples ----------------------------------------------------------------------


@dataclass(frozen=True)
class LineItem:
    where: str  # "module:line"
    before: str  # the module's text before the line
    line: str  # the line to write, without its newline


@dataclass(frozen=True)
class FunctionItem:
    where: str
    before: str  # the module's text up to and including the header's last line
    header: str  # the `def` line(s)
    indent: int  # the header's indentation, in columns


def next_line_items(modules: Sequence[Module], limit: int = NEXT_LINES) -> list[LineItem]:
    """`limit` non-blank lines (not a module's first), spread evenly over all the modules."""
    candidates = []
    for module in modules:
        offset = 0
        for number, line in enumerate(_lines(module.text), 1):
            if number > 1 and line.strip():
                candidates.append((module, number, offset, line.rstrip("\n")))
            offset += len(line)
    return [
        LineItem(f"{module.name}:{number}", module.text[:offset], line)
        for module, number, offset, line in spread(candidates, limit)
    ]


def function_items(modules: Sequence[Module], limit: int = FUNCTIONS) -> list[FunctionItem]:
    """`limit` headers of short functions (`def`, `async def`), spread evenly over the modules."""
    candidates = []
    for module in modules:
        lines = _lines(module.text)
        starts = [0]
        for line in lines:
            starts.append(starts[-1] + len(line))
        found = []
        for node in ast.walk(ast.parse(module.text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                first, body = node.lineno, node.body[0].lineno
                if body == first:  # `def f(): return 1` on one line: no body to write
                    continue
                real_body = module.text[starts[body - 1] : starts[node.end_lineno]]
                if len(real_body.encode()) > SHORT_BODY_BYTES:
                    continue
                # The header ends on the line before the first statement of the body (a
                # comment line between them stays in the header; it parses either way).
                header = "".join(lines[first - 1 : body - 1])
                indent = len(lines[first - 1]) - len(lines[first - 1].lstrip())
                before = module.text[: starts[body - 1]]
                found.append(
                    (first, FunctionItem(f"{module.name}:{first}", before, header, indent))
                )
        candidates += [item for _, item in sorted(found, key=lambda pair: pair[0])]
    return spread(candidates, limit)


def body_end(text: str, indent: int, finished: bool) -> tuple[str, bool]:
    """(the body in `text`, whether it ended by itself) under the rules of the module docstring.

    >>> body_end("    return 1\\n\\ndef g():\\n", 0, False)
    ('    return 1\\n\\n', True)
    >>> body_end("    x = 1\\n    y = (", 0, False)
    ('    x = 1\\n', False)
    """
    offset = 0
    for line in _lines(text):
        if not line.endswith("\n") and not finished:
            break  # an unfinished line at the token limit
        if line.strip() and len(line) - len(line.lstrip()) <= indent:
            return text[:offset], True
        offset += len(line)
    return text[:offset], finished


def _lines(text: str) -> list[str]:
    """The lines of `text` with their newlines, cut only at "\\n" (as `ast` counts lines;
    `str.splitlines` also cuts at form feeds, which the stdlib has)."""
    return re.findall(r"[^\n]*\n|[^\n]+$", text)


def parses(header: str, body: str) -> bool:
    """Whether header + body (dedented together) is a Python module."""
    return _parses(textwrap.dedent(header + body))


def _parses(source: str) -> bool:
    """Whether `ast.parse` accepts `source`; quietly (a model's text makes the compiler warn
    about things like `1if`, which would otherwise print a SyntaxWarning per sample)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SyntaxWarning)
        try:
            ast.parse(source)
        except (SyntaxError, ValueError):
            return False
    return True


# --- decoding ------------------------------------------------------------------------------


def complete(
    model,
    prompts: Sequence[Sequence[int]],
    max_new_tokens: int,
    *,
    done: Callable[[list[int]], bool],
    temperature: float = 0.0,
    seed: int = BODY_SEED,
    dtype: str = "float32",
    stop_token: int | None = None,
) -> list[list[int]]:
    """New token ids for every prompt: greedy (`temperature` 0) or sampled with a fixed seed.

    A row stops at `stop_token` (kept), when `done(its new ids)` says so, or after
    `max_new_tokens`. Prompts of equal length are decoded together with a KV cache.
    """
    device = model_device(model)
    compute = pick_dtype(device, dtype)
    generator = torch.Generator(device=device)
    generator.manual_seed(seed)
    by_length: dict[int, list[int]] = {}
    for index, prompt in enumerate(prompts):
        by_length.setdefault(len(prompt), []).append(index)
    outputs: list[list[int]] = [[] for _ in prompts]
    was_training = getattr(model, "training", False)
    model.eval()
    try:
        for length in sorted(by_length):
            group = by_length[length]
            for start in range(0, len(group), BATCH_ROWS):
                rows = group[start : start + BATCH_ROWS]
                batch = torch.tensor([list(prompts[i]) for i in rows], device=device)
                new = _decode_rows(
                    model, batch, max_new_tokens, done, temperature, generator, compute, stop_token
                )
                for index, ids in zip(rows, new):
                    outputs[index] = ids
    finally:
        model.train(was_training)
    return outputs


def _decode_rows(model, batch, max_new_tokens, done, temperature, generator, compute, stop_token):
    device = batch.device
    cache = model.new_kv_cache(batch.shape[0], batch.shape[1] + max_new_tokens - 1)
    new: list[list[int]] = [[] for _ in range(batch.shape[0])]
    active = [True] * batch.shape[0]
    with torch.inference_mode(), autocast(device, compute):
        logits = next_token_logits(model, batch, cache)
        for step in range(max_new_tokens):
            if temperature == 0:
                token = logits.argmax(dim=-1)
            else:
                probs = torch.softmax(logits / temperature, dim=-1)
                token = torch.multinomial(probs, 1, generator=generator).squeeze(1)
            for row, value in enumerate(token.tolist()):
                if active[row]:
                    new[row].append(value)
                    active[row] = value != stop_token and not done(new[row])
            if not any(active) or step == max_new_tokens - 1:
                break
            logits = next_token_logits(model, token[:, None], cache)
    return new


# --- the task -------------------------------------------------------------------------------


def evaluate_code(
    model,
    tokenizer,
    modules: Sequence[Module],
    *,
    task: str = "python-code",
    options: ScoringOptions | None = None,
    log=print,
    next_lines: int = NEXT_LINES,
    functions: int = FUNCTIONS,
    bpb_bytes: int = BPB_BYTES,
) -> dict:
    """Bits per byte, next-line exact match and parse rate of `model` on `modules`."""
    options = options or ScoringOptions()
    if not modules:
        raise ByollmError(f"{task}: no held-out module parses as Python; nothing to evaluate")
    block_size = model_block_size(model)
    if block_size is None or block_size < 8:
        raise ByollmError(f"{task}: the model needs a context window of at least 8 tokens")
    started = time.perf_counter()
    result = {"task": task, "kind": "code", "modules": len(modules)}
    was_training = getattr(model, "training", False)
    try:
        result.update(_bits_per_byte(model, tokenizer, modules, bpb_bytes))
        result.update(_next_line(model, tokenizer, modules, next_lines, block_size, options, log))
        result.update(_bodies(model, tokenizer, modules, functions, block_size, options, log))
    finally:
        model.train(was_training)  # as it was: evaluate_text leaves it in eval mode
    result["seconds"] = time.perf_counter() - started
    result["items_per_s"] = (result["lines"] + result["functions"]) / max(result["seconds"], 1e-9)
    result["samples"] = result.pop("samples")  # last: the long part of the JSON
    return result


def format_code(result: dict) -> str:
    return (
        f"{result['task']}: bits per byte {result['bits_per_byte']:.4f} "
        f"({result['bpb_bytes']:,} bytes) | next-line exact match {result['acc']:.4f} "
        f"({result['lines']} lines) | bodies ast.parse accepts {result['parse_rate']:.4f} "
        f"({result['functions']} functions, {result['truncated']:.0%} hit a limit) "
        f"| {result['modules']} held-out modules, {result['seconds']:.1f} s"
    )


def _bits_per_byte(model, tokenizer, modules, max_bytes: int) -> dict:
    # Whole modules from all over the split (golden-ratio order: evenly spread, no RNG), up to
    # `max_bytes`, then scored in file order.
    order = sorted(range(len(modules)), key=lambda i: (i * 0.6180339887) % 1.0)
    chosen, used = [], 0
    for index in order:
        size = len(modules[index].text.encode())
        if chosen and used + size > max_bytes:
            continue
        chosen.append(index)
        used += size
    text = "".join(modules[i].text for i in sorted(chosen))
    scored = evaluate_text(model, tokenizer, text, progress=False)
    return {"bits_per_byte": scored["bits_per_byte"], "bpb_bytes": scored["bytes"]}


def _encode_or_none(tokenizer, text: str) -> list[int] | None:
    try:
        return tokenizer.encode(text)
    except ByollmError:  # a character the vocabulary lacks (a char tokenizer)
        return None


def _prompt(tokenizer, before: str, room: int) -> list[int] | None:
    """The newest `room` tokens of `before`, encoded from a line start not far back."""
    # Encode only the tail: a token is rarely longer than 16 characters, so 16 * room
    # characters give at least `room` tokens for any tokenizer but a pathological one.
    window = before[-16 * room :]
    if len(window) < len(before):
        window = window[window.find("\n") + 1 :]  # start on a line, as the model saw it
    ids = _encode_or_none(tokenizer, window)
    if not ids:
        return None
    return ids[-room:]


def _next_line(model, tokenizer, modules, limit, block_size, options, log) -> dict:
    items, prompts, budgets, skipped = [], [], [], 0
    for item in next_line_items(modules, limit):
        answer = _encode_or_none(tokenizer, item.line + "\n")
        if answer is None or len(answer) + 2 > block_size // 2:
            skipped += 1
            continue
        prompt = _prompt(tokenizer, item.before, block_size - block_size // 2)
        if prompt is None:
            skipped += 1
            continue
        items.append(item)
        prompts.append(prompt)
        budgets.append(len(answer) + 2)
    if not items:
        raise ByollmError("python-code: no next line could be encoded with this tokenizer")
    if skipped:
        log(f"python-code: {skipped} next-line position(s) skipped (too long, or not encodable)")

    def has_newline(ids: list[int]) -> bool:
        return "\n" in tokenizer.decode(ids)

    outputs = complete(
        model,
        prompts,
        block_size // 2,
        done=has_newline,
        dtype=options.dtype,
        stop_token=tokenizer.eot_id,
    )
    hits, samples = 0, []
    for item, ids, budget in zip(items, outputs, budgets):
        text = tokenizer.decode(ids[:budget])
        written, newline, _ = text.partition("\n")
        hit = bool(newline) and written == item.line
        hits += hit
        if len(samples) < 5:
            samples.append({"where": item.where, "line": item.line, "written": written})
    return {"acc": hits / len(items), "lines": len(items), "line_samples": samples}


def _bodies(model, tokenizer, modules, limit, block_size, options, log) -> dict:
    room = block_size - block_size // 4
    items, prompts, skipped = [], [], 0
    for item in function_items(modules, limit):
        prompt = _prompt(tokenizer, item.before, block_size // 4)
        if prompt is None:
            skipped += 1
            continue
        items.append(item)
        prompts.append(prompt)
    if not items:
        raise ByollmError("python-code: no function header could be encoded with this tokenizer")
    if skipped:
        log(f"python-code: {skipped} function header(s) skipped (not encodable)")

    def done(item_indent: int) -> Callable[[list[int]], bool]:
        def body_is_over(ids: list[int]) -> bool:
            text = tokenizer.decode(ids)
            return len(text.encode()) >= BODY_BYTES or body_end(text, item_indent, False)[1]

        return body_is_over

    outputs = []
    # One `done` per indentation: the rows of a batch share the rule, so group by indent.
    for indent in sorted({item.indent for item in items}):
        rows = [i for i, item in enumerate(items) if item.indent == indent]
        new = complete(
            model,
            [prompts[i] for i in rows],
            room,
            done=done(indent),
            temperature=BODY_TEMPERATURE,
            seed=BODY_SEED + indent,
            dtype=options.dtype,
            stop_token=tokenizer.eot_id,
        )
        outputs += list(zip(rows, new))
    outputs.sort()
    accepted = truncated = 0
    samples = []
    for (_, ids), item in zip(outputs, items):
        eot = tokenizer.eot_id is not None and ids and ids[-1] == tokenizer.eot_id
        text = tokenizer.decode(ids[:-1] if eot else ids)
        body, ended = body_end(text, item.indent, bool(eot))
        ok = parses(item.header, body)
        accepted += ok
        truncated += not ended
        if len(samples) < 5:
            samples.append({"where": item.where, "header": item.header, "body": body, "ok": ok})
    return {
        "parse_rate": accepted / len(items),
        "functions": len(items),
        "truncated": truncated / len(items),
        "body_room_tokens": room,
        "samples": samples,
    }
