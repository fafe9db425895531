"""Looking at tokenizations: coloured token boundaries and compression ratios.

    >>> from byollm.tokenizer import CharTokenizer
    >>> tok = CharTokenizer.train("abc")
    >>> print(show_tokens(tok, "abc", color=False))
    [a][b][c]
    >>> stats = compression_stats(tok, "abcabc")
    >>> stats["tokens"], stats["bytes_per_token"]
    (6, 1.0)

Design choices: a token that ends mid-character is shown together with the token that completes
it (via `StreamingDecoder`), so the display never prints U+FFFD for a valid text; colours are
ANSI background colours cycling over six values, and `color=False` uses brackets instead.
"""

from __future__ import annotations

import time

from byollm.tokenizer.streaming import StreamingDecoder

_BACKGROUNDS = [44, 42, 45, 46, 43, 41]  # blue, green, magenta, cyan, yellow, red


def show_tokens(tokenizer, text: str, *, color: bool = True, allowed_special=frozenset()) -> str:
    """The text with each token highlighted (ANSI colours) or bracketed."""
    decoder = StreamingDecoder(tokenizer)
    out = []
    for k, token_id in enumerate(tokenizer.encode(text, allowed_special=allowed_special)):
        piece = decoder.push(token_id)
        if not piece:
            continue
        if color:
            background = _BACKGROUNDS[k % len(_BACKGROUNDS)]
            # Keep newlines outside the colour so each line's background ends cleanly.
            lines = piece.split("\n")
            out.append(
                "\n".join(f"\x1b[30;{background}m{line}\x1b[0m" if line else "" for line in lines)
            )
        else:
            out.append(f"[{piece}]")
    rest = decoder.flush()
    if rest:
        out.append(rest if color else f"[{rest}]")
    return "".join(out)


def compression_stats(tokenizer, text: str) -> dict:
    """tokens, bytes, characters, bytes/token, characters/token and encode seconds."""
    start = time.perf_counter()
    ids = tokenizer.encode(text)
    seconds = time.perf_counter() - start
    n_bytes = len(text.encode("utf-8", errors="surrogatepass"))
    return {
        "vocab_size": tokenizer.vocab_size,
        "tokens": len(ids),
        "bytes": n_bytes,
        "chars": len(text),
        "bytes_per_token": n_bytes / len(ids) if ids else 0.0,
        "chars_per_token": len(text) / len(ids) if ids else 0.0,
        "seconds": seconds,
    }
