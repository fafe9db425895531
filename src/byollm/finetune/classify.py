"""Text classification: a pretrained GPT with a new head on its last real token.

    >>> summary = finetune_classifier("runs/english/best", "sms-spam", out="runs/spam",
    ...                               trainable="last:1")                    # doctest: +SKIP
    >>> summary["test"]["accuracy"]                                          # doctest: +SKIP
    >>> classify("runs/spam", ["You won a prize! Call now"])                 # doctest: +SKIP
    [('spam', 0.98)]

Design choices (chapter 6 of *Build a Large Language Model From Scratch*):
- **The head reads the last real token.** In a causal model only the last position has attended
  to the whole text, so its vector summarises the message. Batches are padded on the right to
  their longest text, and the head reads position `length - 1` of each row, never a pad (the
  book reads the last position of every row, a pad for all but the longest text). Right padding
  with causal attention means real tokens never see the pads, so they need no attention mask.
- **A new head**: `nn.Linear(n_embd, classes)`, the language-model head is left untouched (and
  unused), so the fine-tuned GPT is still a valid byollm checkpoint.
- **What trains** is chosen by `trainable` (see loop.py): head, last:N blocks, all, or lora.
- **Labels** are the column's distinct values, sorted; fewer than two, or more than
  `MAX_CLASSES` (a text column named by mistake, most likely), is an error.
- Texts longer than the window are cut to their first `max_length` tokens, and the number cut
  is reported.
"""

from __future__ import annotations

import random
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from byollm.config import check_number, check_seed
from byollm.errors import ByollmError
from byollm.finetune import records as records_lib
from byollm.finetune.checkpoint import load_finetuned, save_finetuned
from byollm.finetune.heads import Classifier, check_pool
from byollm.finetune.loop import check_settings, choose_trainable, fit, total_steps
from byollm.finetune.lora import LoRAConfig
from byollm.finetune.metrics import classification_report
from byollm.model.interface import model_device

MAX_CLASSES = 100
FORMAT_VERSION = 1


def encode_texts(
    tokenizer, texts: list[str], max_length: int, source: str, lowercase: bool = False
) -> tuple[list, int]:
    """Token ids of each text (lowercased first if `lowercase`), cut to `max_length`; returns
    (ids, how many were cut)."""
    encoded, truncated = [], 0
    for i, text in enumerate(texts):
        try:
            ids = tokenizer.encode(text.lower() if lowercase else text)
        except ByollmError as e:
            raise ByollmError(f"{source}: record {i}: {e}") from None
        if not ids:
            raise ByollmError(f"{source}: record {i} encodes to no tokens")
        if len(ids) > max_length:
            ids, truncated = ids[:max_length], truncated + 1
        encoded.append(ids)
    return encoded, truncated


def padded_batch(rows: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad to the longest row: (ids (B, T), lengths (B,))."""
    longest = max(len(r) for r in rows)
    ids = torch.full((len(rows), longest), pad_id, dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r, dtype=torch.long)
    lengths = torch.tensor([len(r) for r in rows], dtype=torch.long)
    return ids.to(device), lengths.to(device)


def check_labels(labels: list[str], source: str, column: str) -> list[str]:
    classes = sorted(set(labels))
    if len(classes) < 2:
        raise ByollmError(
            f"{source}: label column {column!r} has only one class ({classes[0]!r}); a classifier "
            "needs at least two"
        )
    if len(classes) > MAX_CLASSES:
        raise ByollmError(
            f"{source}: label column {column!r} has {len(classes)} distinct values (at most "
            f"{MAX_CLASSES}); is it a text column? choose the label column with --label-column"
        )
    return classes


def predict_ids(model: Classifier, rows: list[list[int]], pad_id: int, batch_size: int = 32):
    """Class probabilities (N, classes) for token-id rows."""
    device = model_device(model)
    out = []
    model.eval()
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            ids, lengths = padded_batch(rows[start : start + batch_size], pad_id, device)
            out.append(torch.softmax(model(ids, lengths), dim=-1).cpu())
    return torch.cat(out)


def finetune_classifier(
    checkpoint: str | Path,
    data: str | Path,
    *,
    out: str | Path,
    text_column: str = "text",
    label_column: str = "label",
    trainable: str = "last:1",
    lora: LoRAConfig | None = None,
    split: str = "balanced",
    epochs: int = 5,
    batch_size: int = 8,
    lr: float = 5e-5,
    weight_decay: float = 0.1,
    schedule: str = "constant",
    max_length: int | None = None,
    pool: str = "last",
    lowercase: bool = False,
    seed: int = 123,
    split_seed: int = 123,
    device: str = "auto",
    random_init: bool = False,
    mirror: str | None = None,
    log=print,
) -> dict:
    """Fine-tune `checkpoint` to classify `data`; write the model to `out`; return the scores.

    `split_seed` draws the train/val/test split (123: the book's); `seed` draws the new head,
    the order of the batches and dropout, so runs with several seeds score the same messages.
    `pool` is what the head reads (see heads.py); `lowercase` lowercases every text, here and
    in `classify`, so "WIN A PRIZE" and "win a prize" are the same tokens."""
    from byollm.model.checkpoint import load_for_inference, resolve_checkpoint

    check_settings(
        epochs=epochs,
        batch_size=batch_size,
        lr=lr,
        weight_decay=weight_decay,
        seed=seed,
        schedule=schedule,
    )
    check_seed("split_seed", split_seed)
    if max_length is not None:
        check_number("max_length", max_length, 1, None, integer=True, hint="tokens per text")
    check_pool(pool)
    if split not in ("balanced", "stratified"):
        raise ByollmError(f"split {split!r}: choose balanced (the book's) or stratified")
    if trainable == "lora" and lora is None:
        lora = LoRAConfig()
    if lora is not None:
        trainable = "lora"
    source = str(data)
    rows = records_lib.columns(
        records_lib.read_records(data, mirror=mirror), [text_column, label_column], source
    )
    labels = check_labels([label for _, label in rows], source, label_column)
    splitter = records_lib.balanced_split if split == "balanced" else records_lib.stratified_split
    train_rows, val_rows, test_rows = splitter(rows, lambda r: r[1], seed=split_seed)
    if not (train_rows and val_rows and test_rows):
        raise ByollmError(f"{source}: too few records ({len(rows)}) for a 70/10/20 split")

    base = resolve_checkpoint(checkpoint)
    gpt, tokenizer = load_for_inference(base, device=device)
    if random_init:  # the same architecture, untrained: what pretraining is worth
        from byollm.model import GPT

        torch.manual_seed(seed)
        gpt = GPT(gpt.config).to(model_device(gpt))
    max_length = min(max_length or gpt.config.block_size, gpt.config.block_size)
    pad_id = tokenizer.eot_id if tokenizer.eot_id is not None else 0
    label_id = {label: i for i, label in enumerate(labels)}
    encoded = {}
    truncated = 0
    for name, split_rows in (("train", train_rows), ("val", val_rows), ("test", test_rows)):
        texts = [text for text, _ in split_rows]
        ids, cut = encode_texts(tokenizer, texts, max_length, source, lowercase)
        encoded[name] = (ids, [label_id[label] for _, label in split_rows])
        truncated += cut
    if truncated:
        log(f"byollm finetune: {truncated} of {len(rows)} texts were cut to {max_length} tokens")

    torch.manual_seed(seed)
    model = Classifier(gpt, len(labels), pool=pool)
    counts = choose_trainable(gpt, trainable, head=model.head, lora=lora, root=model)
    log(
        f"byollm finetune classify: {len(labels)} classes {labels}, train/val/test "
        f"{len(train_rows)}/{len(val_rows)}/{len(test_rows)} ({split}); training {trainable}: "
        f"{counts['trainable']:,} of {counts['total']:,} parameters"
    )
    device_ = model_device(gpt)

    def batches(epoch):
        order = list(range(len(encoded["train"][0])))
        random.Random(seed + epoch).shuffle(order)
        ids, targets = encoded["train"]
        for start in range(0, len(order), batch_size):
            chunk = order[start : start + batch_size]
            x, lengths = padded_batch([ids[i] for i in chunk], pad_id, device_)
            yield x, lengths, torch.tensor([targets[i] for i in chunk], device=device_)

    def loss_of(model, batch):
        x, lengths, y = batch
        return F.cross_entropy(model(x, lengths), y), int(x.numel())

    def accuracy(name):
        ids, targets = encoded[name]
        predicted = predict_ids(model, ids, pad_id).argmax(-1).tolist()
        return classification_report(targets, predicted, labels)

    started = time.perf_counter()
    result = fit(
        model,
        loss_of,
        batches,
        epochs=epochs,
        lr=lr,
        weight_decay=weight_decay,
        decay_steps=total_steps(schedule, epochs, len(train_rows), batch_size),
        evaluate=lambda: {"val_accuracy": accuracy("val")["accuracy"]},
        log=log,
    )
    task = {
        "classifier": {
            "version": FORMAT_VERSION,
            "labels": labels,
            "max_length": max_length,
            "pad_id": pad_id,
            "pool": pool,
            "lowercase": lowercase,
            "text_column": text_column,
            "label_column": label_column,
        }
    }
    save_finetuned(out, model, tokenizer, task, lora=lora, base=base)
    return {
        **result,
        "wall_seconds": time.perf_counter() - started,
        "trainable": trainable,
        "pool": pool,
        "lowercase": lowercase,
        "parameters": counts,
        "labels": labels,
        "sizes": {
            k: len(v) for k, v in (("train", train_rows), ("val", val_rows), ("test", test_rows))
        },
        "truncated": truncated,
        "val": accuracy("val"),
        "test": accuracy("test"),
        "out": str(out),
    }


def classify(checkpoint: str | Path, texts: list[str], device: str = "auto") -> list[tuple]:
    """(label, probability) for each text, from a folder written by `finetune_classifier`."""
    model, tokenizer, task = load_finetuned(checkpoint, device=device)
    meta = task.get("classifier")
    if meta is None:
        raise ByollmError(f"{checkpoint}: not a classifier (made by `byollm finetune classify`)")
    lowercase = meta.get("lowercase", False)  # were the texts it learned from lowercased?
    rows, _ = encode_texts(tokenizer, list(texts), meta["max_length"], "input", lowercase)
    probabilities = predict_ids(model, rows, meta["pad_id"])
    best = probabilities.argmax(-1).tolist()
    return [(meta["labels"][k], probabilities[i, k].item()) for i, k in enumerate(best)]
