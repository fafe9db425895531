"""Writing our BPE vocabularies in other libraries' formats.

- `to_huggingface(tok, path)`: a `tokenizer.json` that `tokenizers.Tokenizer.from_file` loads
  and that gives the same ids (the tests check it on real text).
- `to_tiktoken(tok, path)`: a rank file (`base64(token) rank` per line), the format of OpenAI's
  `*.tiktoken` files; with our pattern and special tokens it builds a `tiktoken.Encoding`.

    >>> from byollm.tokenizer import BPETokenizer
    >>> tok = BPETokenizer.train("hello hello world", 260, pattern="gpt2", progress=False)
    >>> merges_for_huggingface(tok)[:2]
    [('e', 'l'), ('h', 'el')]

Design choices:
- Hugging Face stores tokens as GPT-2's printable stand-ins for bytes (`bytes_to_unicode`), and
  a merge list. Vocabularies loaded from tiktoken files have no merge list, so we recover it: the
  merge that creates token t is the two parts t's bytes split into when merged with the ranks
  below t's rank.
- `ignore_merges: true` makes Hugging Face take a piece that is itself a token whole, the same
  shortcut tiktoken and our encoder take.
- The split pattern goes into a `Split` pre-tokenizer; `ByteLevel` then only maps bytes to
  characters. Oniguruma (Hugging Face's regex engine) reads `{1,3}+` differently from Python
  and Rust, so that one construct is rewritten (`huggingface_regex`).
- Hugging Face always recognises special tokens in the input: compare with
  `encode(text, allowed_special="all")`.
"""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

from byollm.errors import ByollmError
from byollm.tokenizer.base import write_file_atomically
from byollm.tokenizer.bpe import BPETokenizer
from byollm.tokenizer.pretrained import bytes_to_unicode


def huggingface_regex(pattern: str) -> str:
    r"""Our split regex in Oniguruma's dialect (what Hugging Face uses).

    Oniguruma reads `{1,3}+` as "`{1,3}`, one or more times", not as a possessive `{1,3}`;
    at the end of an alternative possessive and greedy match the same, so we drop the `+`.

    >>> huggingface_regex(r"\p{N}{1,3}+| ?\p{L}++")
    '\\p{N}{1,3}| ?\\p{L}++'
    """
    return re.sub(r"(\{\d+(?:,\d*)?\})\+", r"\1", pattern)


def _check_bpe(tokenizer) -> BPETokenizer:
    if not isinstance(tokenizer, BPETokenizer):
        raise ByollmError(f"only BPE tokenizers can be exported, not {type(tokenizer).__name__}")
    return tokenizer


def _split_below(token: bytes, ranks: dict[bytes, int], max_rank: int) -> list[bytes]:
    """Merge `token`'s bytes using only ranks below `max_rank` (the simple loop of bpe.py)."""
    parts = [token[i : i + 1] for i in range(len(token))]
    while len(parts) > 2:
        best_rank, best_i = max_rank, -1
        for i in range(len(parts) - 1):
            rank = ranks.get(parts[i] + parts[i + 1])
            if rank is not None and rank < best_rank:
                best_rank, best_i = rank, i
        if best_i < 0:
            break
        parts[best_i : best_i + 2] = [parts[best_i] + parts[best_i + 1]]
    return parts


def merges_for_huggingface(tokenizer: BPETokenizer) -> list[tuple[str, str]]:
    """The merge list in Hugging Face's byte-level spelling, lowest rank first."""
    tok = _check_bpe(tokenizer)
    to_char = bytes_to_unicode()
    spell = lambda b: "".join(to_char[x] for x in b)
    pairs = []
    if tok.merges is not None:
        for left, right in tok.merges:
            pairs.append((tok.token_bytes(left), tok.token_bytes(right)))
    else:
        for token, rank in sorted(tok.ranks.items(), key=lambda item: item[1]):
            if len(token) < 2:
                continue
            parts = _split_below(token, tok.ranks, rank)
            if len(parts) != 2:
                raise ByollmError(f"token {token!r} (rank {rank}) cannot be made by one merge")
            pairs.append((parts[0], parts[1]))
    return [(spell(a), spell(b)) for a, b in pairs]


def to_huggingface(tokenizer, path: str | Path) -> Path:
    """Write a Hugging Face `tokenizer.json`."""
    tok = _check_bpe(tokenizer)
    to_char = bytes_to_unicode()
    vocab = {"".join(to_char[b] for b in token): rank for token, rank in tok.ranks.items()}
    # Specials also go into the model's vocabulary: otherwise Hugging Face renumbers added
    # tokens that lie beyond a gap (cl100k's specials start at 100257, after 100255).
    vocab.update(tok.special_tokens)
    byte_level = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True,
                  "use_regex": False}  # fmt: skip
    if tok.pattern:
        split = {"type": "Split", "pattern": {"Regex": huggingface_regex(tok.pattern)}, "behavior": "Isolated",
                 "invert": False}  # fmt: skip
        pre_tokenizer = {"type": "Sequence", "pretokenizers": [split, byte_level]}
    else:
        pre_tokenizer = byte_level
    data = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {
                "id": i,
                "content": s,
                "single_word": False,
                "lstrip": False,
                "rstrip": False,
                "normalized": False,
                "special": True,
            }  # fmt: skip
            for s, i in sorted(tok.special_tokens.items(), key=lambda item: item[1])
        ],
        "normalizer": None,
        "pre_tokenizer": pre_tokenizer,
        "post_processor": None,
        "decoder": {**byte_level, "use_regex": True},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": True,
            "vocab": vocab,
            "merges": [f"{a} {b}" for a, b in merges_for_huggingface(tok)],
        },
    }
    path = Path(path)
    data = json.dumps(data, ensure_ascii=False).encode("utf-8")
    write_file_atomically(path, data, what="Hugging Face tokenizer file")
    return path


def to_tiktoken(tokenizer, path: str | Path) -> Path:
    """Write a tiktoken rank file (ordinary tokens only; specials are passed to tiktoken)."""
    tok = _check_bpe(tokenizer)
    lines = [
        base64.b64encode(token) + b" " + str(rank).encode()
        for token, rank in sorted(tok.ranks.items(), key=lambda item: item[1])
    ]
    path = Path(path)
    write_file_atomically(path, b"\n".join(lines) + b"\n", what="tiktoken rank file")
    return path
