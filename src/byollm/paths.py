"""Where byollm keeps what it downloads or builds: one home folder, overridable.

    >>> import os; os.environ["BYOLLM_HOME"] = "/tmp/bh"
    >>> byollm_home()
    PosixPath('/tmp/bh')

Design choices:
- One environment variable, `BYOLLM_HOME`, moves everything (tests point it at a temp folder so
  they never touch the user's cache); the default follows the XDG habit, `~/.cache/byollm`
  (or `$XDG_CACHE_HOME/byollm` when that is set).
- The folder is created lazily by whoever writes into it, so merely asking for the path has no
  side effect.
"""

from __future__ import annotations

import os
from pathlib import Path


def byollm_home() -> Path:
    """The cache root: `$BYOLLM_HOME`, else `$XDG_CACHE_HOME/byollm`, else `~/.cache/byollm`."""
    if os.environ.get("BYOLLM_HOME"):
        return Path(os.environ["BYOLLM_HOME"]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "byollm"
    return Path.home() / ".cache" / "byollm"


def data_home() -> Path:
    """Where corpora and tokenizer files are cached: `byollm_home() / "data"`.

    Inside it, files sit at their mirror path (`tinyshakespeare.txt`, `gpt2/encoder.json`, ...),
    the same layout as a mirror, so one machine's cache can serve as another machine's mirror.
    """
    return byollm_home() / "data"
