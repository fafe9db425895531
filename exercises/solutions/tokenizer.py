"""Solution: byte-level BPE in the plainest form (minbpe's basic and regex tokenizers).

Check it: byollm exercise check tokenizer --file exercises/solutions/tokenizer.py
"""

from __future__ import annotations

import regex

GPT4_SPLIT_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)


def get_stats(ids, counts=None):
    counts = {} if counts is None else counts
    for pair in zip(ids, ids[1:]):
        counts[pair] = counts.get(pair, 0) + 1
    return counts


def merge(ids, pair, idx):
    out, i = [], 0
    while i < len(ids):
        if i + 1 < len(ids) and ids[i] == pair[0] and ids[i + 1] == pair[1]:
            out.append(idx)
            i += 2
        else:
            out.append(ids[i])
            i += 1
    return out


def _best_pair(counts):
    # the most frequent pair; among equal counts the smallest (left id, right id)
    return max(counts, key=lambda pair: (counts[pair], -pair[0], -pair[1]))


def train(text, vocab_size):
    ids = list(text.encode("utf-8"))
    merges = {}
    for idx in range(256, vocab_size):
        counts = get_stats(ids)
        if not counts:
            break
        pair = _best_pair(counts)
        ids = merge(ids, pair, idx)
        merges[pair] = idx
    return merges


def build_vocab(merges):
    vocab = {idx: bytes([idx]) for idx in range(256)}
    for (left, right), idx in sorted(merges.items(), key=lambda item: item[1]):
        vocab[idx] = vocab[left] + vocab[right]
    return vocab


def decode(ids, vocab):
    return b"".join(vocab[idx] for idx in ids).decode("utf-8", errors="replace")


def encode(text, merges):
    ids = list(text.encode("utf-8"))
    while len(ids) >= 2:
        counts = get_stats(ids)
        pair = min(counts, key=lambda p: merges.get(p, float("inf")))
        if pair not in merges:
            break  # no learned pair left
        ids = merge(ids, pair, merges[pair])
    return ids


def train_regex(text, vocab_size, pattern=GPT4_SPLIT_PATTERN):
    chunks = [list(chunk.encode("utf-8")) for chunk in regex.findall(pattern, text)]
    merges = {}
    for idx in range(256, vocab_size):
        counts = {}
        for chunk in chunks:
            get_stats(chunk, counts)
        if not counts:
            break
        pair = _best_pair(counts)
        chunks = [merge(chunk, pair, idx) for chunk in chunks]
        merges[pair] = idx
    return merges


def encode_regex(text, merges, pattern=GPT4_SPLIT_PATTERN):
    ids = []
    for chunk in regex.findall(pattern, text):
        ids.extend(encode(chunk, merges))
    return ids
