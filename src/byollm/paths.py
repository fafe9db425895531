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
- A file is replaced whole or not at all (`replaced_atomically`, `write_file_atomically`): it is
  written under a temporary name beside its target, flushed to disk, and renamed over it, so a
  full disk or a crash leaves the previous file and no temporary one. This module is the one
  home of that rule; a folder that must change as a whole (a checkpoint) has its own owner,
  `byollm.model.checkpoint.write_folder_atomically`, built on the same idea.
- Temporary names carry the writer's pid, so a later run can tell a dead writer's leftovers
  (`process_alive`) from a live writer's file.
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
def replaced_atomically(target: Path, *, what: str = "") -> Iterator[Path]:
    """Yield a temporary path beside `target`; write it, and on success it replaces `target`.

    On any error the temporary file is deleted and `target` keeps what it held; an `OSError`
    (disk full, no permission) becomes one `ByollmError` line naming `target` (and `what` it is).
    """
    target = Path(target)
    tmp = temporary_path(target)
    try:
        yield tmp
        _flush_to_disk(tmp)  # else a power cut after the rename can leave an empty file
        os.replace(tmp, target)
    except OSError as e:
        label = f"{what} {target}" if what else str(target)
        raise ByollmError(
            f"cannot write {label}: {e.strerror or e}; the previous file, if any, is unchanged"
        ) from None
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def write_file_atomically(path: str | Path, data: bytes, *, what: str = "file") -> None:
    """Write `data` so that `path` always holds the old file or the whole new one.

    The folder is created if needed; errors are one `ByollmError` line (`replaced_atomically`).
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ByollmError(f"cannot write {what} {path}: {e.strerror or e}") from None
    with replaced_atomically(path, what=what) as tmp:
        tmp.write_bytes(data)


def temporary_path(target: Path) -> Path:
    """`.<name>.tmp-<pid>` beside `target`: where this process writes before replacing it.

    >>> temporary_path(Path("runs/tiny/run.json")).name.startswith(".run.json.tmp-")
    True
    """
    return target.with_name(f".{target.name}.tmp-{os.getpid()}")


def temporary_target(name: str) -> tuple[str, int] | None:
    """`(target name, writer's pid)` of a `temporary_path` name, else None.

    >>> temporary_target(".best.tmp-123"), temporary_target("best")
    (('best', 123), None)
    """
    target, marker, pid = name.rpartition(".tmp-")
    if not (marker and target.startswith(".") and pid.isascii() and pid.isdigit()):
        return None
    return target[1:], int(pid)


def _flush_to_disk(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def process_alive(pid: int) -> bool:
    """Whether process `pid` exists (someone else's counts): a temporary file named with a
    dead writer's pid is a leftover to delete, a live writer's is not."""
    try:
        os.kill(pid, 0)  # signal 0: no signal sent, only the existence check
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, it is someone else's
    except (OverflowError, OSError):  # not a pid at all
        return False
    return True


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
