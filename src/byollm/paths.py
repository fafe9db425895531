"""Where byollm keeps what it downloads or builds, and how it writes a file there safely.

    >>> import os; os.environ["BYOLLM_HOME"] = "/tmp/bh"
    >>> byollm_home()
    PosixPath('/tmp/bh')

Design choices:
- One environment variable, `BYOLLM_HOME`, moves everything (tests point it at a temp folder so
  they never touch the user's cache); the default follows the XDG habit, `~/.cache/byollm`
  (or `$XDG_CACHE_HOME/byollm` when that is set).
- The folder is created lazily by whoever writes into it, so merely asking for the path has no
  side effect.
- `~` means the home folder in every path a user types (`user_path`), also when a shell did not
  expand it (`--out=~/x`, or a quoted "~/x").
- A file is replaced whole or not at all (`replaced_atomically`): it is written under a temporary
  name beside its target and renamed over it, so a full disk or a crash leaves the previous file
  and no temporary one.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from byollm.errors import ByollmError


def user_path(text: str | Path) -> Path:
    """A path as a user typed it, with `~` expanded (argparse `type=` for path options)."""
    try:
        return Path(text).expanduser()
    except RuntimeError:  # ~name of a user that does not exist: keep it literal, let use fail
        return Path(text)


@contextlib.contextmanager
def replaced_atomically(target: Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; write it, and on success it replaces `target`.

    On any error the temporary file is deleted and `target` keeps what it held; an `OSError`
    (disk full, no permission) becomes one `ByollmError` line naming `target`.
    """
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    try:
        yield tmp
        os.replace(tmp, target)
    except OSError as e:
        raise ByollmError(
            f"cannot write {target}: {e.strerror or e}; any previous {target.name} is kept"
        ) from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


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
