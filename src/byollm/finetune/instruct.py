"""Instruction tuning: teach a pretrained GPT to answer in the Alpaca format.

    >>> summary = finetune_instruct("runs/english/best", "instruction-data", out="runs/instruct")  # doctest: +SKIP
    >>> summary["after"]["rouge_l"], summary["after"]["clean_share"]        # doctest: +SKIP

Each example becomes one text, the prompt the chat uses (`byollm.generate.chat`) followed by the
answer and `<|endoftext|>`:

    Below is an instruction that describes a task. Write a response that appropriately
    completes the request.

    ### Instruction:
    Rewrite the sentence using a simile.

    ### Input:                        (only when the record has an input)
    The car is very fast.

    ### Response:
    The car is as fast as lightning.<|endoftext|>

Design choices (chapter 7 of *Build a Large Language Model From Scratch*):
- **Two input formats**: Alpaca records (`instruction`, optional `input`, `output`) and chat
  records (`{"messages": [{"role": "user" | "assistant", "content": ...}, ...]}`), whose earlier
  turns become earlier instruction/response pairs exactly as `byollm chat` writes its history;
  the loss is on the last assistant message.
- **The end is a real token**: `<|endoftext|>` is appended as its id (never parsed from text),
  so the model learns to stop, and a tokenizer without it is refused.
- **Padding never counts**: batches are padded with the end-of-text id, and every padded
  position's target is -1 (ignored by the loss), so a long example and a short one weigh by
  their real tokens.
- **Prompt masking is an option** (`mask_prompt`): the targets of the prompt are -1 too, so only
  the answer is learned. The book found it slightly worse on its data; the benchmark measures it.
- **Too long**: an example is cut to the model's window (its answer loses its end); one whose
  prompt alone fills the window is dropped. Both counts are reported.
- **Held-out evaluation without an LLM judge**: the answer loss on the test split before and
  after, and greedy answers scored by ROUGE-L, exact match and the share that end cleanly
  (the model emitted end-of-text and did not start another "### " section); answers are written
  next to their references in `answers.jsonl`.
- **An LLM judge is an option** (`judge`, see judge.py): any OpenAI-compatible endpoint scores
  each held-out answer from 0 to 100, as in the book's chapter 7.8.
- **The template is stored** in config.json (`"instruct": {"template": "alpaca", ...}`), the key
  `byollm chat` reads to switch to instruct mode.
"""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from byollm.config import check_number
from byollm.errors import ByollmError
from byollm.finetune import records as records_lib
from byollm.finetune.checkpoint import save_finetuned
from byollm.finetune.loop import check_settings, choose_trainable, fit, total_steps
from byollm.finetune.lora import LoRAConfig
from byollm.finetune.metrics import exact_match, rouge_l
from byollm.generate.chat import format_instruct
from byollm.model.interface import model_device

TEMPLATE = "alpaca"
FORMAT_VERSION = 1


def alpaca_prompt(instruction: str, input_text: str = "") -> str:
    """The prompt of one record; without an input it is exactly `byollm chat`'s first turn."""
    if not input_text:
        return format_instruct([], instruction)
    prompt = format_instruct([], instruction)
    response_header = "\n\n### Response:\n"
    return prompt[: -len(response_header)] + f"\n\n### Input:\n{input_text}" + response_header


def to_pairs(records: list[dict], source: str) -> list[tuple[str, str]]:
    """(prompt, response) of each Alpaca or chat record."""
    pairs, bad = [], []
    for i, record in enumerate(records):
        if "messages" in record:
            pair = _chat_pair(record["messages"], f"{source}: record {i}")
        else:
            instruction, output = record.get("instruction"), record.get("output")
            ok = isinstance(instruction, str) and instruction.strip() and isinstance(output, str)
            pair = (
                (alpaca_prompt(instruction, str(record.get("input") or "")), output) if ok else None
            )
        if pair is None:
            bad.append(i)
        else:
            pairs.append(pair)
    if bad:
        raise ByollmError(
            f"{source}: {len(bad)} record(s) lack 'instruction' and 'output' (or 'messages'), the "
            f"first is record {bad[0]}; expected Alpaca records or chat messages"
        )
    return pairs


def _chat_pair(messages, where: str) -> tuple[str, str] | None:
    if not isinstance(messages, list) or len(messages) < 2:
        return None
    roles = [m.get("role") if isinstance(m, dict) else None for m in messages]
    expected = ["user", "assistant"] * (len(messages) // 2)
    if roles != expected or not all(isinstance(m.get("content"), str) for m in messages):
        raise ByollmError(
            f"{where}: messages must alternate user, assistant, ... and end with the assistant "
            f"(got roles {roles}); system messages have no place in the Alpaca template"
        )
    contents = [m["content"] for m in messages]
    turns = list(zip(contents[0:-2:2], contents[1:-2:2]))
    return format_instruct(turns, contents[-2]), contents[-1]


def encode_pairs(tokenizer, pairs, block_size: int) -> tuple[list[tuple[list, int]], int, int]:
    """(token ids, prompt length) of each pair, `<|endoftext|>` appended; cut and dropped counts.

    A sequence of block_size + 1 tokens gives block_size inputs and block_size targets.
    """
    eot = tokenizer.eot_id
    examples, cut, dropped = [], 0, 0
    for prompt, response in pairs:
        prompt_ids = tokenizer.encode(prompt)
        ids = prompt_ids + tokenizer.encode(response) + [eot]
        if len(prompt_ids) >= block_size:
            dropped += 1
            continue
        if len(ids) > block_size + 1:
            ids, cut = ids[: block_size + 1], cut + 1
        examples.append((ids, len(prompt_ids)))
    return examples, cut, dropped


def collate(examples, pad_id: int, mask_prompt: bool, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and targets (B, T); pads (and with `mask_prompt` the prompt) have target -1."""
    longest = max(len(ids) for ids, _ in examples) - 1
    x = torch.full((len(examples), longest), pad_id, dtype=torch.long)
    y = torch.full((len(examples), longest), -1, dtype=torch.long)
    for row, (ids, prompt_len) in enumerate(examples):
        ids = torch.tensor(ids, dtype=torch.long)
        x[row, : len(ids) - 1] = ids[:-1]
        y[row, : len(ids) - 1] = ids[1:]
        if mask_prompt:  # target t predicts token t + 1: the first answer token is target p - 1
            y[row, : prompt_len - 1] = -1
    return x.to(device), y.to(device)


@torch.no_grad()
def response_loss(model, examples, pad_id: int, batch_size: int = 8) -> float:
    """Mean cross-entropy per answer token (end-of-text included), the prompt never counted."""
    device = model_device(model)
    model.eval()
    total, count = 0.0, 0
    for start in range(0, len(examples), batch_size):
        x, y = collate(examples[start : start + batch_size], pad_id, True, device)
        logits, _ = model(x)
        total += F.cross_entropy(
            logits.view(-1, logits.size(-1)), y.view(-1), ignore_index=-1, reduction="sum"
        ).item()
        count += int((y != -1).sum())
    return total / max(1, count)


@torch.no_grad()
def generate_answers(model, tokenizer, pairs, max_new_tokens: int) -> list[dict]:
    """Greedy answers to each prompt, stopped at end-of-text, with their scores."""
    from byollm.generate import SamplingConfig, generate_ids

    device = model_device(model)
    block = model.config.block_size
    greedy = SamplingConfig(temperature=0.0)
    results = []
    for prompt, reference in pairs:
        ids = tokenizer.encode(prompt)[-(block - 1) :]
        new, ended = [], False
        steps = generate_ids(
            model, torch.tensor([ids], device=device), max_new_tokens, greedy, context="slide"
        )
        for token in steps:
            token = int(token[0])
            if token == tokenizer.eot_id:
                ended = True
                break
            new.append(token)
        steps.close()
        answer = tokenizer.decode(new)
        results.append(
            {
                "prompt": prompt,
                "reference": reference,
                "answer": answer.strip(),
                "rouge_l": rouge_l(answer, reference),
                "exact_match": exact_match(answer, reference),
                "clean": ended and "### " not in answer,
            }
        )
    return results


def evaluate(model, tokenizer, examples, pairs, pad_id, max_new_tokens) -> tuple[dict, list]:
    answers = generate_answers(model, tokenizer, pairs, max_new_tokens) if pairs else []
    n = max(1, len(answers))
    scores = {
        "response_loss": response_loss(model, examples, pad_id),
        "rouge_l": sum(a["rouge_l"] for a in answers) / n,
        "exact_match": sum(a["exact_match"] for a in answers) / n,
        "clean_share": sum(a["clean"] for a in answers) / n,
    }
    return scores, answers


def finetune_instruct(
    checkpoint: str | Path,
    data: str | Path,
    *,
    out: str | Path,
    trainable: str = "all",
    lora: LoRAConfig | None = None,
    mask_prompt: bool = False,
    epochs: int = 2,
    batch_size: int = 8,
    lr: float = 5e-5,
    weight_decay: float = 0.1,
    schedule: str = "constant",
    max_new_tokens: int = 128,
    eval_examples: int | None = None,
    seed: int = 123,
    device: str = "auto",
    mirror: str | None = None,
    judge=None,
    log=print,
) -> dict:
    """Instruction-tune `checkpoint` on `data` (Alpaca or chat records); write it to `out`.

    `judge` (a `byollm.finetune.judge.Judge`) also scores the held-out answers after training.
    """
    from byollm.generate.engine import MAX_NEW_TOKENS
    from byollm.model.checkpoint import load_for_inference, resolve_checkpoint

    check_settings(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        seed=seed,
        schedule=schedule,
    )
    check_number("max_new_tokens", max_new_tokens, 1, MAX_NEW_TOKENS, integer=True)
    if eval_examples is not None:
        check_number("eval_examples", eval_examples, 1, None, integer=True)
    if trainable == "lora" and lora is None:
        lora = LoRAConfig()
    if lora is not None:
        trainable = "lora"
    source = str(data)
    pairs = to_pairs(records_lib.read_records(data, mirror=mirror), source)
    train_pairs, val_pairs, test_pairs = records_lib.ordered_split(pairs)
    if not (train_pairs and test_pairs):
        raise ByollmError(f"{source}: too few records ({len(pairs)}) for the 85/5/10 split")
    base = resolve_checkpoint(checkpoint)
    model, tokenizer = load_for_inference(base, device=device)
    if tokenizer.eot_id is None:
        raise ByollmError(
            f"{base}: its tokenizer has no <|endoftext|> token, which instruction tuning "
            "appends to every answer so the model learns to stop; use a BPE or GPT-2 tokenizer"
        )
    pad_id = tokenizer.eot_id
    block = model.config.block_size
    encoded = {}
    for name, split_pairs in (("train", train_pairs), ("val", val_pairs), ("test", test_pairs)):
        examples, cut, dropped = encode_pairs(tokenizer, split_pairs, block)
        encoded[name] = examples
        if cut or dropped:
            log(
                f"byollm finetune instruct: {name}: {cut} of {len(split_pairs)} examples cut to "
                f"the {block}-token window, {dropped} dropped (the prompt alone fills it)"
            )
    if not encoded["train"]:
        raise ByollmError(f"{source}: every training example is longer than the window ({block})")
    test_pairs = test_pairs[:eval_examples] if eval_examples else test_pairs
    test_examples = encoded["test"][:eval_examples] if eval_examples else encoded["test"]

    if judge is not None:  # an unreachable judge fails now, not after the training
        judge.reply("Reply with the number 100.")
    before, _ = evaluate(model, tokenizer, test_examples, test_pairs, pad_id, max_new_tokens)
    log(f"byollm finetune instruct: before: {_scores(before)}")
    torch.manual_seed(seed)
    lm_head = model.lm_head
    counts = choose_trainable(
        model, trainable, head=None if trainable == "lora" else lm_head, lora=lora
    )
    log(
        f"byollm finetune instruct: train/val/test {len(encoded['train'])}/{len(encoded['val'])}/"
        f"{len(test_examples)}; training {trainable}: {counts['trainable']:,} of "
        f"{counts['total']:,} parameters; prompt {'masked' if mask_prompt else 'in the loss'}"
    )
    device_ = model_device(model)

    def batches(epoch):
        order = list(range(len(encoded["train"])))
        random.Random(seed + epoch).shuffle(order)
        for start in range(0, len(order), batch_size):
            chunk = [encoded["train"][i] for i in order[start : start + batch_size]]
            yield collate(chunk, pad_id, mask_prompt, device_)

    def loss_of(model, batch):
        x, y = batch
        _, loss = model(x, y)
        return loss, int(x.numel())

    started = time.perf_counter()
    val_examples = encoded["val"]
    result = fit(
        model,
        loss_of,
        batches,
        epochs=epochs,
        lr=lr,
        weight_decay=weight_decay,
        decay_steps=total_steps(schedule, epochs, len(encoded["train"]), batch_size),
        evaluate=(lambda: {"val_response_loss": response_loss(model, val_examples, pad_id)})
        if val_examples
        else None,
        log=log,
    )
    after, answers = evaluate(model, tokenizer, test_examples, test_pairs, pad_id, max_new_tokens)
    if judge is not None:
        after.update(judge.score_answers(answers))
    log(f"byollm finetune instruct: after: {_scores(after)}")
    task = {
        "instruct": {"version": FORMAT_VERSION, "template": TEMPLATE, "mask_prompt": mask_prompt}
    }
    save_finetuned(out, model, tokenizer, task, lora=lora, base=base)
    answers_path = Path(out) / "answers.jsonl"
    with answers_path.open("w", encoding="utf-8") as f:
        for answer in answers:
            f.write(json.dumps(answer, ensure_ascii=False) + "\n")
    return {
        **result,
        "wall_seconds": time.perf_counter() - started,
        "trainable": trainable,
        "parameters": counts,
        "mask_prompt": mask_prompt,
        "before": before,
        "after": after,
        "answers": str(answers_path),
        "out": str(out),
    }


def _scores(scores: dict) -> str:
    return ", ".join(
        f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in scores.items()
    )
