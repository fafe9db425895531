"""Decoding token by token, for text that appears while a model generates.

A token can end in the middle of a UTF-8 character (GPT-2 splits most emoji over two or three
tokens), so decoding each token on its own would print U+FFFD garbage. `StreamingDecoder` keeps
the bytes of an incomplete character until the next token completes it.

    >>> from byollm.tokenizer import BPETokenizer
    >>> tok = BPETokenizer({bytes([b]): b for b in range(256)}, pattern="none")
    >>> decoder = StreamingDecoder(tok)
    >>> [decoder.push(b) for b in "é!".encode()]
    ['', 'é', '!']
    >>> decoder.flush()
    ''

Design choices: an incremental UTF-8 decoder from the standard library (`codecs`) does the
book-keeping; `errors="replace"` makes truly invalid bytes U+FFFD instead of raising, and
`flush()` turns a dangling partial character into U+FFFD too, so the concatenated output equals
`tokenizer.decode(all_ids)`.
"""

from __future__ import annotations

import codecs


class StreamingDecoder:
    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def push(self, token_id: int) -> str:
        """Add one token; return only the text that is now complete."""
        return self._decoder.decode(self.tokenizer.decode_bytes([token_id]))

    def flush(self) -> str:
        """End of stream: whatever is held back, as U+FFFD."""
        text = self._decoder.decode(b"", final=True)
        self._decoder.reset()
        return text
