"""Checks for the tokenizer exercise, against `byollm.tokenizer` (training.py and bpe.py).

The reference merges come from `BPETokenizer.train` (pattern "none" for the plain tokenizer,
"gpt4" for the regex one, no special tokens), which breaks ties exactly as the statement says.
"""

from __future__ import annotations

import random
from functools import cache

from byollm.exercises.checking import Step, StepFailed, expect_equal, learner, show
from byollm.tokenizer import BPETokenizer
from byollm.tokenizer.training import merge_pair

# Training text: Tiny Shakespeare's opening lines (public domain) and a little non-ASCII text,
# so that some merges join bytes of multi-byte characters.
TEXT = """First Citizen:
Before we proceed any further, hear me speak.

All:
Speak, speak.

First Citizen:
You are all resolved rather to die than to famish?

All:
Resolved. resolved.

First Citizen:
First, you know Caius Marcius is chief enemy to the people.

All:
We know't, we know't.

First Citizen:
Let us kill him, and we'll have corn at our own price.
Is't a verdict?

Naïve café, déjà vu: 3.14159 is π, and 12345 + 678 = 13023.
"""
N_MERGES = 60
UNSEEN = [
    "",
    "a",
    "hear me speak",
    "Resolved, First Citizen!",
    "Ünïcödé 😀 and 日本語",
    "   leading spaces and\ttabs\n\n",
    "We know't.",
]


@cache
def reference(pattern: str) -> BPETokenizer:
    return BPETokenizer.train(
        TEXT, 256 + N_MERGES, pattern=pattern, special_tokens=(), progress=False
    )


def merges_dict(tokenizer: BPETokenizer) -> dict[tuple[int, int], int]:
    return {tuple(pair): 256 + i for i, pair in enumerate(tokenizer.merges)}


def check_get_stats(module) -> None:
    get_stats = learner(module, "get_stats")
    rng = random.Random(0)
    cases = [[1, 2, 3, 1, 2], [7], [], [4, 4, 4, 4], [rng.randrange(6) for _ in range(50)]]
    for ids in cases:
        expected = {}
        for pair in zip(ids, ids[1:]):
            expected[pair] = expected.get(pair, 0) + 1
        got = get_stats(list(ids))
        expect_equal(
            f"get_stats({ids})",
            dict(got) if isinstance(got, dict) else got,
            expected,
            "count every adjacent pair zip(ids, ids[1:]); [4, 4, 4, 4] holds (4, 4) three times",
        )
    counts = get_stats([1, 2], {(1, 2): 5})
    expect_equal(
        "get_stats([1, 2], counts={(1, 2): 5})",
        dict(counts) if isinstance(counts, dict) else counts,
        {(1, 2): 6},
        "when `counts` is given, add to it and return it",
    )


def check_merge(module) -> None:
    merge = learner(module, "merge")
    rng = random.Random(1)
    cases = [
        ([5, 6, 6, 7, 9, 1], (6, 7), 99),
        ([1, 1, 1, 2], (1, 1), 9),
        ([1, 2], (1, 2), 256),
        ([], (1, 2), 256),
        ([3, 1, 2, 1, 2, 1], (1, 2), 300),
        *(
            ([rng.randrange(3) for _ in range(30)], (rng.randrange(3), rng.randrange(3)), 7)
            for _ in range(5)
        ),
    ]
    for ids, pair, idx in cases:
        before = list(ids)
        got = merge(ids, pair, idx)
        expect_equal(
            f"merge({before}, {pair}, {idx})",
            got,
            merge_pair(before, pair, idx),
            "walk left to right; on a match append idx and skip both ids (i += 2), else append "
            "ids[i]; check i + 1 < len(ids) before looking at ids[i + 1]",
        )
        expect_equal(
            f"the list given to merge({before}, ...) afterwards",
            ids,
            before,
            "build a new list; do not change the one you were given",
        )


def _compare_merges(call: str, got, expected: dict, vocab: dict[int, bytes]) -> None:
    if not isinstance(got, dict):
        raise StepFailed(f"{call} returned {show(got)}; expected a dict {{(left, right): id}}")
    got_in_order = sorted(got.items(), key=lambda item: item[1])
    expected_in_order = sorted(expected.items(), key=lambda item: item[1])
    for (pair, idx), (want, want_idx) in zip(got_in_order, expected_in_order):
        if idx != want_idx:
            raise StepFailed(
                f"{call}: new ids must be 256, 257, ... in order; got id {idx} where "
                f"{want_idx} was expected"
            )
        if tuple(pair) != want:
            raise StepFailed(
                f"{call}: merge number {idx - 256} (new id {idx}) differs\n"
                f"  expected {want} = {_pair_bytes(want, vocab)}\n"
                f"  got      {tuple(pair)} = {_pair_bytes(pair, vocab)}\n"
                "hint: merge the most frequent pair; among equal counts take the smallest pair "
                "(max over (count, -left, -right)); recount the pairs after every merge"
            )
    expect_equal(
        f"{call}: the number of merges",
        len(got),
        len(expected),
        "learn vocab_size - 256 merges (fewer only when no pair is left)",
    )


def _pair_bytes(pair, vocab: dict[int, bytes]) -> str:
    """The bytes a pair joins, when both ids are known (earlier merges agreed)."""
    try:
        return repr(vocab[pair[0]] + vocab[pair[1]])
    except (KeyError, TypeError, IndexError):
        return "?"


def _vocab(tokenizer: BPETokenizer) -> dict[int, bytes]:
    return {i: tokenizer.token_bytes(i) for i in range(tokenizer.vocab_size)}


def check_train(module) -> None:
    train = learner(module, "train")
    tokenizer = reference("none")
    got = train(TEXT, 256 + N_MERGES)
    _compare_merges(
        f"train(TEXT, vocab_size={256 + N_MERGES})", got, merges_dict(tokenizer), _vocab(tokenizer)
    )
    expect_equal(
        "train('abab', vocab_size=300) (only 2 merges are possible)",
        train("abab", 300),
        {(97, 98): 256, (256, 256): 257},
        "stop when no pair is left",
    )


def check_vocab_and_decode(module) -> None:
    build_vocab, decode = learner(module, "build_vocab"), learner(module, "decode")
    tokenizer = reference("none")
    vocab = build_vocab(merges_dict(tokenizer))
    expected = _vocab(tokenizer)
    if not isinstance(vocab, dict):
        raise StepFailed(f"build_vocab(merges) returned {show(vocab)}; expected a dict")
    for idx, token in expected.items():
        expect_equal(
            f"build_vocab(merges)[{idx}]",
            vocab.get(idx),
            token,
            "0..255 map to bytes([i]); merge (a, b) -> idx maps to vocab[a] + vocab[b], "
            "built in the order of the new ids",
        )
    for text in UNSEEN:
        ids = tokenizer.encode(text)
        expect_equal(
            f"decode({ids}, vocab)",
            decode(ids, vocab),
            tokenizer.decode(ids),
            "join the bytes of every id, then .decode('utf-8')",
        )
    broken = list("😀".encode())[:2]  # half an emoji: not valid UTF-8
    expect_equal(
        f"decode({broken}, vocab)",
        decode(broken, vocab),
        tokenizer.decode(broken),
        "use .decode('utf-8', errors='replace'): invalid bytes become U+FFFD",
    )


def _check_encoding(module, name: str, pattern: str, texts: list[str], hint: str) -> None:
    """The learner's `name(text, merges)` against byollm's tokenizer trained with `pattern`."""
    encode = learner(module, name)
    tokenizer = reference(pattern)
    merges = merges_dict(tokenizer)
    for text in texts:
        got = encode(text, merges)
        expect_equal(f"{name}({text!r}, merges)", got, tokenizer.encode(text), hint)


def check_encode(module) -> None:
    _check_encoding(
        module,
        "encode",
        "none",
        [*UNSEEN, TEXT[:200]],
        "repeatedly merge the pair with the lowest new id among the pairs present "
        "(min over get_stats(ids) by merges.get(pair, inf)); stop when none of them is in merges",
    )


def check_train_regex(module) -> None:
    train_regex = learner(module, "train_regex")
    tokenizer = reference("gpt4")
    got = train_regex(TEXT, 256 + N_MERGES)
    _compare_merges(
        f"train_regex(TEXT, vocab_size={256 + N_MERGES})",
        got,
        merges_dict(tokenizer),
        _vocab(tokenizer),
    )


def check_encode_regex(module) -> None:
    _check_encoding(
        module,
        "encode_regex",
        "gpt4",
        [*UNSEEN, TEXT[:300]],
        "regex.findall(pattern, text), encode each chunk with `encode`, concatenate the ids",
    )


STEPS = [
    Step("get_stats", check_get_stats),
    Step("merge", check_merge),
    Step("train", check_train, needs=("get_stats", "merge")),
    Step("build_vocab + decode", check_vocab_and_decode),
    Step("encode", check_encode, needs=("get_stats", "merge")),
    Step("train_regex", check_train_regex, needs=("get_stats", "merge")),
    Step("encode_regex", check_encode_regex, needs=("encode",)),
]
