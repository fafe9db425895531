"""Helpers shared by the fine-tuning tests (not a test file itself): tiny checkpoints and data."""

from __future__ import annotations

import json
import random

import torch

from byollm.model import GPT, GPTConfig, save_checkpoint
from byollm.tokenizer import BPETokenizer

WORDS = ["apple", "river", "stone", "cloud", "green", "happy", "quick", "seven", "table", "music"]
TEXT = " ".join(WORDS * 20) + " Below is an instruction. ### Response: ### Instruction: Repeat"


def tiny_checkpoint(folder, *, seed: int = 0, **model) -> GPT:
    """A random 2-layer GPT and a small BPE tokenizer (with <|endoftext|>) saved in `folder`."""
    tokenizer = BPETokenizer.train(TEXT, 300, progress=False, workers=1)
    torch.manual_seed(seed)
    config = dict(vocab_size=tokenizer.vocab_size, block_size=96, n_layer=2, n_head=2, n_embd=32)
    gpt = GPT(GPTConfig(**{**config, **model}))
    save_checkpoint(folder, gpt, tokenizer)
    return gpt


def spam_like_csv(path, n: int = 120, seed: int = 0):
    """Two classes told apart by their words: 'a' texts use the first five words, 'b' the rest."""
    rng = random.Random(seed)
    lines = ["text,label"]
    for i in range(n):
        label = "a" if i % 3 else "b"
        pool = WORDS[:5] if label == "a" else WORDS[5:]
        lines.append(" ".join(rng.choice(pool) for _ in range(rng.randint(2, 9))) + f",{label}")
    path.write_text("\n".join(lines) + "\n")
    return path


def repeat_records(path, n: int = 40, seed: int = 0):
    """Alpaca records 'Repeat the word.' + input word -> the word."""
    rng = random.Random(seed)
    records = [
        {"instruction": "Repeat the word.", "input": w, "output": w}
        for w in (rng.choice(WORDS) for _ in range(n))
    ]
    path.write_text(json.dumps(records))
    return path
