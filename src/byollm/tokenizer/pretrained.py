"""OpenAI's vocabularies: GPT-2's `encoder.json` + `vocab.bpe`, and tiktoken rank files.

    >>> tok = load_pretrained("gpt2")                     # doctest: +SKIP
    >>> tok.encode("Hello world")                         # doctest: +SKIP
    [15496, 995]

Two file formats carry the same kind of vocabulary:
- **GPT-2** (`encoder.json`: token string -> id; `vocab.bpe`: the 50,000 merges in order). Token
  strings are bytes in disguise: GPT-2 maps each byte to a printable character
  (`bytes_to_unicode`, e.g. the space 0x20 is "Ġ") so the files are plain text. We undo that.
- **tiktoken** (`*.tiktoken`: one `base64(token) rank` line per token). No merges are needed:
  the rank of a merged token is its priority (see `bpe.py`).

Design choices:
- Files are found by `byollm.corpora.get_asset` (download once with a sha256 check, or a
  mirror such as `BYOLLM_MIRROR=file:///path/to/mirror`, a folder holding `gpt2/encoder.json`,
  `gpt2/vocab.bpe`, `tiktoken/cl100k_base.tiktoken`... at the paths `byollm data info NAME`
  shows), or passed as explicit paths.
- The special tokens and split patterns are those of tiktoken's `openai_public.py`.
- GPT-2's two files must agree (merge k is id 256 + k); a mismatch is reported, not ignored.
"""

from __future__ import annotations

import base64
import json
from functools import lru_cache
from pathlib import Path

from byollm.corpora import get_asset
from byollm.errors import ByollmError
from byollm.tokenizer.base import ENDOFTEXT
from byollm.tokenizer.bpe import BPETokenizer
from byollm.tokenizer.patterns import GPT2_PATTERN, GPT4_PATTERN, GPT4O_PATTERN

FIM_PREFIX, FIM_MIDDLE, FIM_SUFFIX = "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>"
ENDOFPROMPT = "<|endofprompt|>"

# name -> (asset names, split pattern, special tokens)
PRETRAINED: dict[str, tuple[tuple[str, ...], str, dict[str, int]]] = {
    "gpt2": (("gpt2-encoder", "gpt2-vocab"), GPT2_PATTERN, {ENDOFTEXT: 50256}),
    "r50k_base": (("r50k_base",), GPT2_PATTERN, {ENDOFTEXT: 50256}),
    "p50k_base": (("p50k_base",), GPT2_PATTERN, {ENDOFTEXT: 50256}),
    "cl100k_base": (
        ("cl100k_base",),
        GPT4_PATTERN,
        {
            ENDOFTEXT: 100257,
            FIM_PREFIX: 100258,
            FIM_MIDDLE: 100259,
            FIM_SUFFIX: 100260,
            ENDOFPROMPT: 100276,
        },
    ),
    "o200k_base": (("o200k_base",), GPT4O_PATTERN, {ENDOFTEXT: 199999, ENDOFPROMPT: 200018}),
}


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2's byte -> printable character map: printable Latin-1 bytes stand for themselves,
    the other 68 bytes get the characters from U+0100 on.

    >>> m = bytes_to_unicode(); m[ord("a")], m[ord(" ")], m[ord("\\n")]
    ('a', 'Ġ', 'Ċ')
    """
    printable = [*range(ord("!"), ord("~") + 1), *range(0xA1, 0xAC + 1), *range(0xAE, 0xFF + 1)]
    chars = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in chars:
            chars[b] = chr(256 + extra)
            extra += 1
    return dict(sorted(chars.items()))


def read_gpt2_files(encoder_json: str | Path, vocab_bpe: str | Path) -> dict[bytes, int]:
    """GPT-2's ranks (= ids) from its two files, checked against each other."""
    byte_of = {c: b for b, c in bytes_to_unicode().items()}
    try:
        encoder = json.loads(Path(encoder_json).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise ByollmError(f"cannot read GPT-2 encoder file {encoder_json}: {e}") from None
    if not isinstance(encoder, dict):
        raise ByollmError(f"GPT-2 encoder file {encoder_json}: expected a JSON object token -> id")
    ranks = {}
    for token, token_id in encoder.items():
        if token == ENDOFTEXT:
            continue
        try:
            ranks[bytes(byte_of[c] for c in token)] = int(token_id)
        except KeyError:
            raise ByollmError(
                f"GPT-2 encoder file {encoder_json}: token {token!r} uses a character outside "
                "GPT-2's byte alphabet"
            ) from None
    try:
        lines = Path(vocab_bpe).read_text(encoding="utf-8").splitlines()
    except (OSError, ValueError) as e:
        raise ByollmError(f"cannot read GPT-2 merges file {vocab_bpe}: {e}") from None
    merges = [line for line in lines[1:] if line]
    if not lines or not lines[0].startswith("#version"):
        raise ByollmError(f"GPT-2 merges file {vocab_bpe}: first line should be '#version: 0.2'")
    for k, line in enumerate(merges):
        parts = line.split()
        merged = "".join(parts)
        if len(parts) != 2 or encoder.get(merged) != 256 + k:
            raise ByollmError(
                f"GPT-2 merges file {vocab_bpe} line {k + 2} ({line!r}) does not match "
                f"{encoder_json}: expected the merge creating id {256 + k}"
            )
    return ranks


def read_tiktoken_file(path: str | Path) -> dict[bytes, int]:
    """A tiktoken rank file: one `base64(token) rank` per line."""
    try:
        lines = Path(path).read_bytes().splitlines()
    except OSError as e:
        raise ByollmError(f"cannot read tiktoken file {path}: {e.strerror or e}") from None
    ranks = {}
    for number, line in enumerate(lines, 1):
        if not line:
            continue
        try:
            token, rank = line.split()
            ranks[base64.b64decode(token, validate=True)] = int(rank)
        except ValueError:
            raise ByollmError(
                f"tiktoken file {path} line {number}: expected 'base64token rank', got "
                f"{line[:60]!r}"
            ) from None
    if not ranks:
        raise ByollmError(f"tiktoken file {path} holds no tokens")
    return ranks


def asset_path(name: str, *, mirror: str | None = None) -> Path:
    """Local path of a pretrained-tokenizer file, downloaded and sha256-verified if need be."""
    return Path(get_asset(name, mirror=mirror))


def load_pretrained(name: str, *, mirror: str | None = None, paths=None) -> BPETokenizer:
    """An OpenAI vocabulary by name; `paths` (tuple of files) bypasses the asset lookup:
    `("encoder.json", "vocab.bpe")` for gpt2, `("x.tiktoken",)` for the others."""
    if name not in PRETRAINED:
        raise ByollmError(f"unknown pretrained tokenizer {name!r}; valid: {', '.join(PRETRAINED)}")
    assets, _, _ = PRETRAINED[name]
    if paths is None:
        paths = tuple(asset_path(a, mirror=mirror) for a in assets)
    elif isinstance(paths, (str, Path)):
        paths = (paths,)
    if len(paths) != len(assets):
        raise ByollmError(
            f"{name} needs {len(assets)} file(s) ({', '.join(assets)}), got {len(paths)}"
        )
    return _load_cached(name, tuple(str(Path(p).resolve()) for p in paths))


@lru_cache(maxsize=8)
def _load_cached(name: str, paths: tuple[str, ...]) -> BPETokenizer:
    _, pattern, specials = PRETRAINED[name]
    ranks = read_gpt2_files(*paths) if name == "gpt2" else read_tiktoken_file(paths[0])
    return BPETokenizer(ranks, pattern=pattern, special_tokens=specials, name=name)
