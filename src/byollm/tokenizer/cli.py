"""`byollm tokenizer train|encode|decode|show|compare`.

    byollm tokenizer train --corpus tinyshakespeare --tokenizer bpe:4096 --out tok.json
    byollm tokenizer encode --tokenizer gpt2 "Hello world"          # 15496 995
    byollm tokenizer encode --tokenizer gpt2 "Hi" | byollm tokenizer decode --tokenizer gpt2
    byollm tokenizer show --tokenizer cl100k_base --file notes.txt
    byollm tokenizer compare --corpus tinyshakespeare --tokenizers gpt2 cl100k_base o200k_base

`encode` prints ids separated by single spaces on one line (`--json`: a JSON list); `decode`
reads ids the same way (argument, `--file` or standard input) and writes the text's bytes with
nothing added, so the two compose in pipes. Handlers only parse and call the package.
"""

from __future__ import annotations

import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

from byollm.config import check_number
from byollm.corpora.cli import add_document_options
from byollm.errors import ByollmError
from byollm.formats import check_replaceable
from byollm.paths import user_path
from byollm.workers import check_workers

TOKENIZER_HELP = (
    "gpt2, r50k_base, p50k_base, cl100k_base, o200k_base, char:CORPUS (the characters of a "
    "corpus), or a byollm tokenizer file"
)


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "tokenizer",
        help="train, apply and inspect tokenizers",
        description="Train, apply and inspect tokenizers (character-level and byte-level BPE).",
    )
    verbs = parser.add_subparsers(dest="tokenizer_verb", metavar="<command>", required=True)

    p = verbs.add_parser(
        "train",
        help="train a tokenizer on a corpus",
        description="Train a byte-level BPE (or character) tokenizer: the one "
        "`byollm prepare --tokenizer SPEC` trains on the same corpus.",
    )
    p.add_argument("--corpus", required=True, help="corpus name (e.g. tinyshakespeare) or path")
    spec = p.add_mutually_exclusive_group(required=True)
    spec.add_argument(
        "--tokenizer",
        metavar="SPEC",
        help="bpe:N (byte-level BPE with N ids) or char (the corpus' characters)",
    )
    spec.add_argument("--vocab-size", type=int, metavar="N", help="short for --tokenizer bpe:N")
    p.add_argument("--pattern", default="gpt4", help="split pattern: gpt2, gpt4, gpt4o or none")
    p.add_argument(
        "--special",
        nargs="*",
        default=None,
        metavar="TOKEN",
        help="special tokens (default: <|endoftext|> for bpe, none for char)",
    )
    p.add_argument("--workers", type=int, default=None, help="processes (default: all cores)")
    add_document_options(p)
    p.add_argument("--out", required=True, type=user_path, help="output tokenizer JSON file")
    p.add_argument("--no-progress", action="store_true")
    p.set_defaults(func=_train)

    for verb, func, what in [
        ("encode", _encode, "text to ids"),
        ("decode", _decode, "ids to text"),
        ("show", _show, "show token boundaries in colour"),
    ]:
        p = verbs.add_parser(verb, help=what, description=f"{what[0].upper()}{what[1:]}.")
        p.add_argument("--tokenizer", default="gpt2", help=TOKENIZER_HELP)
        p.add_argument(
            "input",
            nargs="*",
            metavar="TEXT" if verb != "decode" else "IDS",
            help="input (default: --file, else standard input)",
        )
        p.add_argument("--file", type=user_path, help="read the input from this file")
        if verb != "decode":
            p.add_argument(
                "--allow-special",
                action="store_true",
                help="recognise special tokens such as <|endoftext|> in the text",
            )
        if verb == "encode":
            p.add_argument("--json", action="store_true", help="print a JSON list")
        if verb == "show":
            p.add_argument("--color", choices=["auto", "always", "never"], default="auto")
        p.set_defaults(func=func)

    p = verbs.add_parser(
        "compare",
        help="compression of several tokenizers on a corpus",
        description="Tokens, bytes/token and speed of tokenizers on a corpus.",
    )
    p.add_argument("--corpus", default="tinyshakespeare", help="corpus name or path")
    p.add_argument(
        "--tokenizers",
        nargs="+",
        default=["gpt2", "cl100k_base", "o200k_base"],
        metavar="SPEC",
        help=f"{TOKENIZER_HELP}, char (this corpus' characters)",
    )
    p.add_argument("--max-chars", type=int, default=None, help="use only the start of the corpus")
    p.set_defaults(func=_compare)


# ---- handlers ---------------------------------------------------------------------------------


def _train(args) -> int:
    from byollm.corpora.documents import training_files
    from byollm.tokenizer import parse_tokenizer_spec, train_tokenizer
    from byollm.tokenizer.base import FORMAT_NAME

    start = time.perf_counter()
    check_workers("workers", args.workers)
    check_replaceable(args.out, format=FORMAT_NAME, what="tokenizer")  # before the training
    spec = parse_tokenizer_spec(args.tokenizer or f"bpe:{args.vocab_size}")
    if not spec.trained or spec.corpus is not None:
        raise ByollmError(
            f"--tokenizer {spec.text!r}: train takes bpe:N or char, on the text of --corpus"
        )
    with tempfile.TemporaryDirectory() as folder:  # holds the documents' text when needed
        files = training_files(
            args.corpus,
            folder,
            text_field=args.text_field,
            separator=args.separator,
            progress=not args.no_progress,
        )
        tok = train_tokenizer(
            spec,
            files,
            special_tokens=args.special,
            pattern=args.pattern,
            workers=args.workers,
            progress=not args.no_progress,
        )
    tok.save(args.out)
    print(
        f"trained {tok.type_name} tokenizer, vocab {tok.vocab_size}, in "
        f"{time.perf_counter() - start:.1f} s -> {args.out}",
        file=sys.stderr,
    )
    return 0


def _encode(args) -> int:
    from byollm.tokenizer import load_tokenizer

    tok = load_tokenizer(args.tokenizer)
    ids = tok.encode(_read_input(args), allowed_special="all" if args.allow_special else ())
    print(json.dumps(ids) if args.json else " ".join(map(str, ids)))
    return 0


def _decode(args) -> int:
    from byollm.tokenizer import load_tokenizer

    tok = load_tokenizer(args.tokenizer)
    ids = parse_ids(_read_input(args))
    bad = next((i for i in ids if not tok.is_valid_id(i)), None)
    if bad is not None:
        raise ByollmError(
            f"token id {bad} is not in the vocabulary of {args.tokenizer!r} "
            f"(valid: 0..{tok.vocab_size - 1})"
        )
    sys.stdout.buffer.write(tok.decode_bytes(ids))
    sys.stdout.buffer.flush()
    return 0


def _show(args) -> int:
    from byollm.tokenizer import load_tokenizer
    from byollm.tokenizer.report import compression_stats, show_tokens

    tok = load_tokenizer(args.tokenizer)
    text = _read_input(args)
    color = args.color == "always" or (args.color == "auto" and sys.stdout.isatty())
    allowed = "all" if args.allow_special else ()
    print(show_tokens(tok, text, color=color, allowed_special=allowed))
    stats = compression_stats(tok, text)
    print(
        f"{stats['tokens']} tokens, {stats['bytes']} bytes, "
        f"{stats['bytes_per_token']:.2f} bytes/token ({args.tokenizer})"
    )
    return 0


def _compare(args) -> int:
    from byollm.corpora import corpus_files, read_corpus_text
    from byollm.tokenizer import load_tokenizer
    from byollm.tokenizer.report import compression_stats

    if args.max_chars is not None:
        check_number("max_chars", args.max_chars, 1, None, integer=True)
    files = corpus_files(args.corpus)
    text = read_corpus_text(args.corpus)
    if args.max_chars is not None:
        text = text[: args.max_chars]
    print(f"corpus {args.corpus}: {len(text):,} characters, {len(text.encode()):,} bytes")
    print(
        f"{'tokenizer':<24} {'vocab':>8} {'tokens':>10} {'bytes/token':>12} {'chars/token':>12} {'MB/s':>7}"
    )
    for spec in args.tokenizers:
        s = compression_stats(load_tokenizer(spec, corpus=files), text)  # char: this corpus'
        speed = s["bytes"] / 1e6 / s["seconds"] if s["seconds"] else float("inf")
        print(
            f"{spec:<24} {s['vocab_size']:>8} {s['tokens']:>10} {s['bytes_per_token']:>12.2f} "
            f"{s['chars_per_token']:>12.2f} {speed:>7.2f}"
        )
    return 0


# ---- input ------------------------------------------------------------------------------------


def parse_ids(text: str) -> list[int]:
    """Ids separated by whitespace (or commas), or a JSON list.

    >>> parse_ids("15496 995\\n"), parse_ids("[1, 2]")
    ([15496, 995], [1, 2])
    """
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            ids = json.loads(stripped)
        except (ValueError, RecursionError) as e:  # also: numbers past int's digit limit
            raise ByollmError(f"ids look like JSON but are not valid JSON: {e}") from None
    else:
        ids = [_digits_to_int(word) for word in stripped.replace(",", " ").split()]
    out = []
    for item in ids:
        if type(item) is not int or item < 0:  # no 1e400, 1.0, true, null, "5" or -1
            shown = repr(item) if len(repr(item)) <= 40 else f"{repr(item)[:37]}..."
            raise ByollmError(f"not a token id: {shown} (expected integers >= 0)")
        out.append(item)
    return out


def _digits_to_int(word: str) -> int | str:
    """A word of plain decimal digits as an int (not "1_000", "١" or "+1"), else the word."""
    if word.isascii() and word.isdigit():
        with contextlib.suppress(ValueError):  # past Python's digit limit: stays a word
            return int(word)
    return word


def _read_input(args) -> str:
    if args.input and args.file:
        raise ByollmError("give the input as an argument or with --file, not both")
    if args.input:
        return " ".join(args.input)
    if args.file:
        return _read_text_file(args.file)
    data = sys.stdin.buffer.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ByollmError(f"standard input is not UTF-8 text: {e}") from None


def _read_text_file(path: Path) -> str:
    try:
        return Path(path).read_bytes().decode("utf-8")
    except OSError as e:
        raise ByollmError(f"cannot read {path}: {e.strerror or e}") from None
    except UnicodeDecodeError as e:
        raise ByollmError(f"{path} is not UTF-8 text: {e}") from None
