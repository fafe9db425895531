"""Exercise: a byte-level BPE tokenizer (statement: `byollm exercise show tokenizer`).

Fill in each function, top to bottom, then run `byollm exercise check tokenizer`. Keep the
names and signatures: the checker calls them and compares the answers with byollm's.
"""

from __future__ import annotations

import regex  # noqa: F401  (for steps 6 and 7: regex.findall(pattern, text))

# cl100k_base's (GPT-4's) split pattern, as in tiktoken: use it as it is.
GPT4_SPLIT_PATTERN = (
    r"""'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+"""
    r"""|\s++$|\s*[\r\n]|\s+(?!\S)|\s"""
)


def get_stats(ids: list[int], counts: dict | None = None) -> dict[tuple[int, int], int]:
    """Step 1. How often each adjacent pair of ids occurs.

    >>> get_stats([1, 2, 3, 1, 2])
    {(1, 2): 2, (2, 3): 1, (3, 1): 1}

    With `counts` given, add to it (and return it): that sums the counts of several chunks.
    """
    raise NotImplementedError


def merge(ids: list[int], pair: tuple[int, int], idx: int) -> list[int]:
    """Step 2. A new list where each occurrence of `pair`, left to right, becomes `idx`.

    >>> merge([5, 6, 6, 7, 9, 1], (6, 7), 99)
    [5, 6, 99, 9, 1]
    >>> merge([1, 1, 1], (1, 1), 9)   # occurrences do not overlap
    [9, 1]
    """
    raise NotImplementedError


def train(text: str, vocab_size: int) -> dict[tuple[int, int], int]:
    """Step 3. Learn `vocab_size - 256` merges from the UTF-8 bytes of `text`.

    Returns the merges as {(left id, right id): new id}, new ids 256, 257, ... in the order they
    were learned. Each round merges the most frequent pair; among pairs with the same count,
    the smallest pair (compare left ids, then right ids). Stop early when no pair is left.
    """
    raise NotImplementedError


def build_vocab(merges: dict[tuple[int, int], int]) -> dict[int, bytes]:
    """Step 4a. id -> the bytes it stands for: 0..255 are single bytes, each merge joins two.

    >>> build_vocab({(104, 105): 256})[256]
    b'hi'
    """
    raise NotImplementedError


def decode(ids: list[int], vocab: dict[int, bytes]) -> str:
    """Step 4b. Ids -> text. Bytes that are not valid UTF-8 become U+FFFD (never raise)."""
    raise NotImplementedError


def encode(text: str, merges: dict[tuple[int, int], int]) -> list[int]:
    """Step 5. Text -> ids: start from the UTF-8 bytes, then apply the merges, the earliest
    learned first, until no learned pair is left."""
    raise NotImplementedError


def train_regex(
    text: str, vocab_size: int, pattern: str = GPT4_SPLIT_PATTERN
) -> dict[tuple[int, int], int]:
    """Step 6. Like `train`, but split the text with `pattern` first and never merge across
    two chunks: count the pairs inside every chunk, merge inside every chunk."""
    raise NotImplementedError


def encode_regex(
    text: str, merges: dict[tuple[int, int], int], pattern: str = GPT4_SPLIT_PATTERN
) -> list[int]:
    """Step 7. Split with `pattern`, encode each chunk on its own, join the ids."""
    raise NotImplementedError
