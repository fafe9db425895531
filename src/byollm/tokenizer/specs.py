"""Tokenizer specs: the one parser of what `--tokenizer` accepts, and the one place that builds it.

    char          one id per character of the corpus in hand (the corpus `byollm prepare` or
                  `byollm tokenizer train` is given, or that `tokenizer compare` measures on)
    char:CORPUS   one id per character of CORPUS, a registered name or a path, anywhere
    bpe:N         byollm's byte-level BPE with N ids, trained on the corpus in hand
    gpt2, r50k_base, p50k_base, cl100k_base, o200k_base     OpenAI's vocabularies
    PATH          a byollm tokenizer file (a checkpoint's `byollm-tokenizer.json`, or the
                  `tokenizer.json` of an older one)

    >>> parse_tokenizer_spec("bpe:4096")
    TokenizerSpec(kind='bpe', text='bpe:4096', corpus=None, vocab_size=4096, path=None)
    >>> parse_tokenizer_spec("char:tinyshakespeare").corpus
    'tinyshakespeare'
    >>> parse_tokenizer_spec("bpe:4k")
    Traceback (most recent call last):
    byollm.errors.ByollmError: tokenizer 'bpe:4k': expected bpe:N with N an integer

Design choices:
- **`char` means one thing everywhere**: the distinct characters of the corpus in hand, sorted,
  with no special tokens (ask for them with `special_tokens`). Where there is no corpus in hand
  (`byollm tokenizer encode`), bare `char` is an error that suggests `char:CORPUS`, rather than
  a default corpus picked in silence.
- **The same spec trains the same tokenizer**: `byollm tokenizer train --tokenizer bpe:N` and
  `byollm prepare --tokenizer bpe:N` on one corpus give one vocabulary (`train_tokenizer`).
- **Parsed before any work**, so a malformed `bpe:4k` is one line before a corpus is read.
- Names win over files: `gpt2` is OpenAI's vocabulary even beside a file called `gpt2`; write
  `./gpt2` for the file. Anything with a `/`, ending in `.json`, or existing is a path.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from byollm.corpora import corpus_files, read_text_blocks
from byollm.errors import ByollmError
from byollm.paths import user_path
from byollm.tokenizer.base import ENDOFTEXT, Tokenizer, read_tokenizer_file
from byollm.tokenizer.bpe import BPETokenizer
from byollm.tokenizer.char import CharTokenizer
from byollm.tokenizer.pretrained import PRETRAINED, load_pretrained

KINDS = ("char", "bpe", "pretrained", "file")


@dataclass(frozen=True)
class TokenizerSpec:
    """A parsed spec: its kind and the one argument that kind takes."""

    kind: str  # one of KINDS
    text: str  # as written (with `~` expanded): what prepare records in meta.json
    corpus: str | None = None  # char:CORPUS
    vocab_size: int | None = None  # bpe:N
    path: Path | None = None  # a tokenizer file

    @property
    def trained(self) -> bool:
        """Whether this spec is trained on text (`char`, `char:CORPUS`, `bpe:N`)."""
        return self.kind in ("char", "bpe")


def parse_tokenizer_spec(spec: str | Path | TokenizerSpec) -> TokenizerSpec:
    """The `TokenizerSpec` meant by `spec`; ByollmError listing the valid forms otherwise."""
    if isinstance(spec, TokenizerSpec):
        return spec
    if isinstance(spec, Path):
        return TokenizerSpec("file", str(user_path(spec)), path=user_path(spec))
    if not isinstance(spec, str) or not spec:
        raise ByollmError(f"tokenizer spec must be a non-empty string, got {spec!r}")
    if spec in PRETRAINED:
        return TokenizerSpec("pretrained", spec)
    kind, colon, argument = spec.partition(":")
    if kind == "char":
        if colon and not argument:
            raise ByollmError(f"tokenizer {spec!r}: write char:CORPUS, a corpus name or path")
        return TokenizerSpec("char", spec, corpus=argument or None)
    if kind == "bpe":
        if not (argument.isascii() and argument.isdigit()):
            raise ByollmError(f"tokenizer {spec!r}: expected bpe:N with N an integer")
        return TokenizerSpec("bpe", spec, vocab_size=int(argument))
    if spec.startswith("~"):
        return TokenizerSpec("file", str(user_path(spec)), path=user_path(spec))
    if spec.endswith(".json") or "/" in spec or "\\" in spec or Path(spec).exists():
        return TokenizerSpec("file", spec, path=Path(spec))
    raise ByollmError(
        f"unknown tokenizer {spec!r}; valid: char, char:CORPUS, bpe:N, {', '.join(PRETRAINED)}, "
        "or the path of a byollm tokenizer file"
    )


def load_tokenizer(
    spec: str | Path | TokenizerSpec,
    *,
    corpus: str | Path | list[Path] | None = None,
    mirror: str | None = None,
    progress: bool = True,
) -> Tokenizer:
    """The tokenizer a spec names (see the module docstring).

    `corpus` is the corpus in hand (a name, a path, or its files) that `char` and `bpe:N` are
    trained on; `char:CORPUS` brings its own. `mirror` is where registered files are fetched.
    """
    spec = parse_tokenizer_spec(spec)
    if spec.kind == "file":
        return read_tokenizer_file(spec.path)
    if spec.kind == "pretrained":
        return load_pretrained(spec.text, mirror=mirror)
    corpus = spec.corpus or corpus
    if corpus is None and spec.kind == "char":
        raise ByollmError(
            "tokenizer 'char' is the characters of the corpus in hand, and there is no corpus "
            "here: write char:CORPUS (e.g. char:tinyshakespeare)"
        )
    if corpus is None:
        raise ByollmError(
            f"tokenizer {spec.text!r} is trained on the corpus in hand, and there is no corpus "
            f"here: train it (`byollm tokenizer train --tokenizer {spec.text}`), then give its file"
        )
    if not isinstance(corpus, list):
        corpus = corpus_files(corpus, mirror=mirror, progress=progress)
    return train_tokenizer(spec, corpus, progress=progress)


def train_tokenizer(
    spec: str | TokenizerSpec,
    files: Iterable[Path],
    *,
    special_tokens: Iterable[str] | None = None,
    pattern: str = "gpt4",
    workers: int | None = None,
    progress: bool = True,
) -> Tokenizer:
    """Train the tokenizer of a `char` or `bpe:N` spec on the text of `files`.

    `special_tokens` defaults to none for `char` and `<|endoftext|>` for `bpe:N`; `pattern`
    (the split pattern) and `workers` apply to BPE only.
    """
    spec = parse_tokenizer_spec(spec)
    files = list(files)
    if spec.kind == "char":
        return CharTokenizer.train(_characters(files), special_tokens=special_tokens or ())
    if spec.kind == "bpe":
        return BPETokenizer.train(
            files,
            spec.vocab_size,
            pattern=pattern,
            special_tokens=(ENDOFTEXT,) if special_tokens is None else special_tokens,
            progress=progress,
            workers=workers,
        )
    raise ByollmError(f"tokenizer {spec.text!r} is not trained; train char or bpe:N instead")


def _characters(files: list[Path]) -> str:
    """Every distinct character of the files, streamed (a file that is not UTF-8 is refused)."""
    chars: set[str] = set()
    for path in files:
        for _block, text in read_text_blocks(path):
            chars.update(text)
    return "".join(sorted(chars))
