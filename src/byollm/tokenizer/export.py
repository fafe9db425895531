"""Writing our BPE vocabularies in other libraries' formats.

- `to_huggingface(tok, path)`: a `tokenizer.json` that `tokenizers.Tokenizer.from_file` loads
  and that gives the same ids (the tests check it on real text).
- `to_huggingface_folder(tok, folder)`: that `tokenizer.json` (a character vocabulary too, as a
  BPE without merges) plus `tokenizer_config.json` and `special_tokens_map.json`, so that
  `transformers.AutoTokenizer.from_pretrained(folder)` loads it.
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
from byollm.paths import write_file_atomically
from byollm.tokenizer.bpe import BPETokenizer
from byollm.tokenizer.char import CharTokenizer
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


def _added_tokens(tok) -> list[dict]:
    return [
        {
            "id": i,
            "content": s,
            "single_word": False,
            "lstrip": False,
            "rstrip": False,
            "normalized": False,
            "special": True,
        }
        for s, i in sorted(tok.special_tokens.items(), key=lambda item: item[1])
    ]


def _char_tokenizer_json(tok: CharTokenizer) -> dict:
    """A character vocabulary as Hugging Face sees it: a BPE with no merges, so every character
    is its own token, no pre-tokenizer (spaces are characters like any other), and a `Fuse`
    decoder that joins the tokens without adding spaces between them."""
    vocab = {c: i for i, c in enumerate(tok.chars)}
    vocab.update(tok.special_tokens)
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": _added_tokens(tok),
        "normalizer": None,
        "pre_tokenizer": None,
        "post_processor": None,
        "decoder": {"type": "Fuse"},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": tok.unk,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": False,
            "vocab": vocab,
            "merges": [],
        },
    }


def to_huggingface(tokenizer, path: str | Path) -> Path:
    """Write a Hugging Face `tokenizer.json` (BPE, or a character vocabulary)."""
    if isinstance(tokenizer, CharTokenizer):
        data = json.dumps(_char_tokenizer_json(tokenizer), ensure_ascii=False).encode("utf-8")
        write_file_atomically(Path(path), data, what="Hugging Face tokenizer file")
        return Path(path)
    tok = _check_bpe(tokenizer)
    to_char = bytes_to_unicode()
    vocab = {"".join(to_char[b] for b in token): rank for token, rank in tok.ranks.items()}
    # Specials also go into the model's vocabulary: otherwise Hugging Face renumbers added
    # tokens that lie beyond a gap (cl100k's specials start at 100257, after 100255).
    vocab.update(tok.special_tokens)
    byte_level = {
        "type": "ByteLevel",
        "add_prefix_space": False,
        "trim_offsets": True,
        "use_regex": False,
    }
    if tok.pattern:
        split = {
            "type": "Split",
            "pattern": {"Regex": huggingface_regex(tok.pattern)},
            "behavior": "Isolated",
            "invert": False,
        }
        pre_tokenizer = {"type": "Sequence", "pretokenizers": [split, byte_level]}
    else:
        pre_tokenizer = byte_level
    data = {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": _added_tokens(tok),
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


HF_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def to_huggingface_folder(tokenizer, folder: str | Path, *, model_max_length: int) -> list[str]:
    """Write the files `AutoTokenizer.from_pretrained(folder)` reads; returns their names.

    `<|endoftext|>`, when the vocabulary has it, is the bos, eos and unk token, as in GPT-2's
    own folder (and the padding token, which GPT-2 lacks, so batched pipelines work)."""
    from byollm.tokenizer.base import ENDOFTEXT

    if not isinstance(tokenizer, (BPETokenizer, CharTokenizer)):
        raise ByollmError(
            f"a {type(tokenizer).__name__} has no Hugging Face form (BPE and character "
            "vocabularies export)"
        )
    folder = Path(folder)
    to_huggingface(tokenizer, folder / HF_TOKENIZER_FILES[0])
    specials = {}
    if ENDOFTEXT in tokenizer.special_tokens:
        specials = {k: ENDOFTEXT for k in ("bos_token", "eos_token", "pad_token")}
        if isinstance(tokenizer, BPETokenizer):
            specials["unk_token"] = ENDOFTEXT  # GPT-2's choice; a byte-level BPE never needs it
    if isinstance(tokenizer, CharTokenizer) and tokenizer.unk is not None:
        specials["unk_token"] = tokenizer.unk
    config = {
        "tokenizer_class": "PreTrainedTokenizerFast",
        "model_max_length": model_max_length,
        "clean_up_tokenization_spaces": False,  # decode must give back the text exactly
        "add_prefix_space": False,
        **specials,
    }
    for name, data in ((HF_TOKENIZER_FILES[1], config), (HF_TOKENIZER_FILES[2], specials)):
        text = json.dumps(data, indent=2, ensure_ascii=False) + "\n"
        write_file_atomically(
            folder / name, text.encode("utf-8"), what="Hugging Face tokenizer file"
        )
    return list(HF_TOKENIZER_FILES)


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


# --- and back: a Hugging Face tokenizer.json as a byollm tokenizer ------------------------------


def from_huggingface(path: str | Path):
    """A byollm tokenizer from a Hugging Face `tokenizer.json`: what `to_huggingface` writes, and
    byte-level BPEs whose merge order is their id order (GPT-2's). Anything else is refused in
    one line, since byollm's rank-based BPE would split some text differently."""
    from byollm.tokenizer.patterns import GPT2_PATTERN, PATTERNS

    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        model, pre = data["model"], data.get("pre_tokenizer")
        vocab, merges = dict(model["vocab"]), list(model.get("merges") or [])
        specials = {t["content"]: int(t["id"]) for t in data.get("added_tokens") or []}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise ByollmError(f"{path}: not a Hugging Face tokenizer.json ({e})") from None

    def refuse(why: str) -> ByollmError:
        return ByollmError(f"{path}: {why}; byollm reads byte-level BPE and character vocabularies")

    if model.get("type") != "BPE":
        raise refuse(f"model type {model.get('type')!r}")
    ordinary = {t: i for t, i in vocab.items() if t not in specials}
    if pre is None and not merges and all(len(t) == 1 for t in ordinary):  # our character form
        if sorted(ordinary.values()) != list(range(len(ordinary))):
            raise refuse("character ids are not 0..n-1")
        chars = sorted(ordinary, key=ordinary.get)
        return CharTokenizer(chars, special_tokens=specials, unk=model.get("unk_token"))
    steps = pre.get("pretokenizers", []) if isinstance(pre, dict) else []
    steps = steps if pre and pre.get("type") == "Sequence" else [pre]
    byte_level = [s for s in steps if isinstance(s, dict) and s.get("type") == "ByteLevel"]
    splits = [s for s in steps if isinstance(s, dict) and s.get("type") == "Split"]
    if len(byte_level) != 1 or len(steps) != len(byte_level) + len(splits) or len(splits) > 1:
        raise refuse("its pre-tokenizer is not ByteLevel (with at most one Split before it)")
    if byte_level[0].get("add_prefix_space"):
        raise refuse("it adds a prefix space")
    if splits:
        regex_text = (splits[0].get("pattern") or {}).get("Regex")
        if not regex_text:
            raise refuse("its Split pre-tokenizer has no regex")
        known = {huggingface_regex(p): p for p in PATTERNS.values() if p}
        pattern = known.get(regex_text, regex_text)
    elif byte_level[0].get("use_regex", True):
        pattern = GPT2_PATTERN
    else:
        pattern = "none"
    byte_of = {c: b for b, c in bytes_to_unicode().items()}
    try:
        ranks = {bytes(byte_of[c] for c in t): i for t, i in ordinary.items()}
    except KeyError:
        raise refuse("a token uses characters outside the byte-level alphabet") from None
    previous = 255
    for k, merge in enumerate(merges):
        left, right = merge.split(" ") if isinstance(merge, str) else merge
        made = vocab.get(left + right)
        if made is None or made <= previous:
            raise refuse(f"merge {k} ({left} {right}) is not in id order")
        previous = made
    return BPETokenizer(ranks, pattern=pattern, special_tokens=specials)
