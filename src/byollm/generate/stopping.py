"""Stop strings for streamed text: emit only what can no longer become part of a stop string.

A stop string such as "\\n\\n" may arrive split over several tokens ("\\n" then "\\n"), so the
text that could be the *start* of a stop string is held back until the next piece decides:

    >>> stop = StopStrings(["\\n\\n"])
    >>> stop.push("Hello\\n")          # "\\n" might begin "\\n\\n": held back
    'Hello'
    >>> stop.push("\\nWorld"), stop.stopped   # the stop string is cut, with everything after it
    ('', True)

`flush()` releases whatever was held back once the stream ends without a stop.
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
