"""byollm.tokenizer: text <-> token ids, from a character vocabulary up to GPT-4's.

The ladder, one idea per file:
- `base.py`       the interface every tokenizer shares, special tokens, the JSON file format
- `char.py`       one id per character (nanoGPT's shakespeare_char)
- `patterns.py`   regex pre-tokenization (GPT-2 / GPT-4 split patterns)
- `training.py`   learning BPE merges with incremental pair counts and a heap
- `bpe.py`        byte-level BPE: rank-based merging, a piece cache for speed
- `long_pieces.py` merging a huge piece (a 50 MB "word") in compact numpy arrays
- `parallel.py`   encoding large inputs on all cores
- `pretrained.py` OpenAI's vocabularies (GPT-2, r50k, p50k, cl100k, o200k)
- `streaming.py`  decoding token by token without breaking UTF-8 characters
- `export.py`     to Hugging Face `tokenizer.json` and tiktoken rank files
- `cli.py`        `byollm tokenizer train|encode|decode|show|compare`

    >>> tok = load_tokenizer("gpt2")                   # doctest: +SKIP
    >>> tok.decode(tok.encode("Hello world"))          # doctest: +SKIP
    'Hello world'
"""

from __future__ import annotations

from pathlib import Path

from byollm.errors import ByollmError
from byollm.tokenizer.base import Tokenizer, read_tokenizer_file
from byollm.tokenizer.bpe import BPETokenizer
from byollm.tokenizer.char import CharTokenizer
from byollm.tokenizer.pretrained import PRETRAINED, load_pretrained
from byollm.tokenizer.streaming import StreamingDecoder

CHAR_DEFAULT_CORPUS = "tinyshakespeare"

__all__ = [
    "BPETokenizer",
    "CharTokenizer",
    "PRETRAINED",
    "StreamingDecoder",
    "Tokenizer",
    "corpus_files",
    "load_tokenizer",
    "read_corpus",
]


def load_tokenizer(spec: str | Path, *, mirror: str | None = None) -> Tokenizer:
    """A tokenizer from a name or a file.

    spec: `gpt2`, `r50k_base`, `p50k_base`, `cl100k_base`, `o200k_base` (OpenAI vocabularies),
    `char` (characters of Tiny Shakespeare) or `char:CORPUS` (characters of a corpus name or
    path), or the path of a byollm tokenizer JSON file (a checkpoint's `tokenizer.json`).
    """
    if isinstance(spec, Path):
        return read_tokenizer_file(spec)
    if spec in PRETRAINED:
        return load_pretrained(spec, mirror=mirror)
    if spec == "char" or spec.startswith("char:"):
        corpus = spec.partition(":")[2] or CHAR_DEFAULT_CORPUS
        return CharTokenizer.train(read_corpus(corpus, mirror=mirror))
    if spec.endswith(".json") or "/" in spec or "\\" in spec:
        return read_tokenizer_file(spec)
    if Path(spec).exists():
        return read_tokenizer_file(spec)
    raise ByollmError(
        f"unknown tokenizer {spec!r}; valid: {', '.join(PRETRAINED)}, char, char:CORPUS, "
        "or the path of a tokenizer JSON file"
    )


def corpus_files(name_or_path: str | Path, *, mirror: str | None = None) -> list[Path]:
    """The files of a corpus (a registered name, `python-stdlib`, or a path): the registry's."""
    from byollm.data.corpora import corpus_files as registry_corpus_files  # another stage

    return registry_corpus_files(name_or_path, mirror=mirror)


def read_corpus(name_or_path: str | Path, *, mirror: str | None = None) -> str:
    """The whole text of a corpus (a registered name, `python-stdlib`, or a path)."""
    from byollm.data.corpora import read_corpus_text  # another stage

    return read_corpus_text(name_or_path, mirror=mirror)
