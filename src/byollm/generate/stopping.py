"""Stop strings for streamed text: emit only what can no longer become part of a stop string.

A stop string such as "\\n\\n" may arrive split over several tokens ("\\n" then "\\n"), so the
text that could be the *start* of a stop string is held back until the next piece decides:

    >>> stop = StopStrings(["\\n\\n"])
    >>> stop.push("Hello\\n")          # "\\n" might begin "\\n\\n": held back
    'Hello'
    >>> stop.push("\\nWorld"), stop.stopped   # the stop string is cut, with everything after it
    ('', True)

`flush()` releases whatever was held back once the stream ends without a stop.

`TextStream` puts it together for one generated sequence: token ids in, text that is safe to
show out (no half character, no half stop string), finished at a stop token or stop string.
"""

from __future__ import annotations

from collections.abc import Sequence

from byollm.errors import ByollmError


class StopStrings:
    """Streaming matcher for a set of stop strings (empty strings are rejected)."""

    def __init__(self, stop: Sequence[str] = ()):
        if isinstance(stop, str):
            stop = [stop]
        if any(not s for s in stop):
            raise ByollmError("a stop string must not be empty")
        self.stop = list(stop)
        self.held = ""  # text that may be the start of a stop string
        self.stopped = False

    def push(self, text: str) -> str:
        """Add decoded text; return the part that is safe to show."""
        if self.stopped:
            return ""
        buffer = self.held + text
        cut = min((i for i in (buffer.find(s) for s in self.stop) if i >= 0), default=-1)
        if cut >= 0:
            self.stopped = True
            self.held = ""
            return buffer[:cut]
        keep = self._longest_partial_suffix(buffer)
        self.held = buffer[len(buffer) - keep :]
        return buffer[: len(buffer) - keep]

    def flush(self) -> str:
        """The held-back text, at the end of a stream that did not stop."""
        out, self.held = ("" if self.stopped else self.held), ""
        return out

    def _longest_partial_suffix(self, buffer: str) -> int:
        """Length of the longest suffix of `buffer` that is a proper prefix of a stop string."""
        best = 0
        for s in self.stop:
            for n in range(min(len(s) - 1, len(buffer)), best, -1):
                if buffer.endswith(s[:n]):
                    best = n
                    break
        return best


class TextStream:
    """One sequence's token ids -> safe text: UTF-8 held back mid-character, stops cut.

        >>> stream = TextStream(tokenizer, stop=["\\n\\n"], stop_tokens=[tokenizer.eot_id])  # doctest: +SKIP
        >>> stream.push(token_id)        # the text that token makes safe to show (maybe "")  # doctest: +SKIP
        >>> stream.finished, stream.hit_stop  # doctest: +SKIP
        (False, False)
        >>> stream.close()               # at the length limit: whatever was held back  # doctest: +SKIP

    `hit_stop` tells a stop (token or string) from the caller's `close()` at a length limit.
    """

    def __init__(self, tokenizer, stop: Sequence[str] = (), stop_tokens: Sequence[int] = ()):
        from byollm.tokenizer import StreamingDecoder

        self.decoder = StreamingDecoder(tokenizer)
        self.stopper = StopStrings(stop)
        self.stop_tokens = set(stop_tokens)
        self.finished = False
        self.hit_stop = False

    def push(self, token: int) -> str:
        if self.finished:
            return ""
        if token in self.stop_tokens:
            self.hit_stop = True
            return self.close()
        text = self.stopper.push(self.decoder.push(token))
        if self.stopper.stopped:
            self.finished = self.hit_stop = True
        return text

    def close(self) -> str:
        """End the stream: the text still held back (none after a stop string)."""
        if self.finished:
            return ""
        self.finished = True
        return self.stopper.push(self.decoder.flush()) + self.stopper.flush()
