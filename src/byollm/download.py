"""Verified downloads: a file is either complete and checked, or absent.

    >>> fetch("https://example.org/input.txt", "86c4e6aa...", Path("cache/input.txt"))
    PosixPath('cache/input.txt')

Design choices:
- **Standard library only** (`urllib`): http://, https:// and file:// URLs, a socket timeout on
  every connection, no extra dependency to install or audit.
- **Never a half file where a good one is expected.** Bytes stream into `<dest>.part`; the sha256
  is computed while they stream; `<dest>` appears (by an atomic `os.replace`) only when the hash
  matches. A mismatch deletes the temporary file and names the file and both hashes.
- **Resume or restart cleanly.** A `.part` left by an interrupted run is continued with an HTTP
  `Range` request when the server answers `206 Partial Content`; a server that answers `200`
  sends the whole file again and the `.part` is overwritten. A transfer that ends before its
  `Content-Length` (the server closed early) is detected and resumed, up to three attempts.
- **A verified cache is reused without any network**: `fetch` hashes `dest` first.
- **Mirrors replace the origin**: with `mirror=` (or `$BYOLLM_MIRROR`) the URL used is
  `mirror.rstrip('/') + '/' + mirror_path`. A mirror is any http(s):// or file:// folder (a plain
  folder path also works) holding each file at its mirror path (`byollm data info NAME` shows
  it): `tinyshakespeare.txt`, `gpt2/encoder.json`, `tiktoken/cl100k_base.tiktoken`...
- **No network is its own error**, `OfflineError` (a `ByollmError`), so callers can fall back to
  an offline corpus; its one-line message names the mirror and local-path options.
- **Two processes, one file**: on POSIX a lock file (`.byollm-download.lock` in the destination
  folder) serialises concurrent downloads into that folder (e.g. by the ranks of a `torchrun`
  job), and the second process finds the verified file ready.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import re
import ssl
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO
from urllib.error import HTTPError, URLError
from urllib.parse import urlparse
from urllib.request import Request, url2pathname, urlopen

from byollm.errors import ByollmError

try:  # POSIX only; on Windows concurrent downloads of one file are simply not serialised
    import fcntl
except ImportError:  # pragma: no cover
    fcntl = None

MIRROR_ENV = "BYOLLM_MIRROR"
CHUNK_BYTES = 1 << 16
TIMEOUT_S = 30.0  # per socket operation (connect, each read), not for the whole transfer
ATTEMPTS = 3  # transfers cut short are resumed this many times before giving up

OFFLINE_HINT = (
    "no network? Use a mirror with --mirror URL or BYOLLM_MIRROR=URL (an http(s):// or file:// "
    "folder holding each file at the mirror path `byollm data info NAME` shows, e.g. "
    "tinyshakespeare.txt), or pass a local file or folder path instead of the name"
)


class OfflineError(ByollmError):
    """The source could not be reached at all: no network, DNS failure, connection refused."""


class _CutShort(Exception):
    """Internal: the transfer ended early; the `.part` file is kept so the next try resumes."""


class _RangeRefused(Exception):
    """Internal: the server refused our Range (416); the `.part` file is stale."""


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks so large files need little memory."""
    hasher = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


def resolve_mirror(mirror: str | None = None) -> str | None:
    """The mirror in effect: the argument, else `$BYOLLM_MIRROR`, else None.

    A plain folder path is turned into a file:// URL:
    >>> resolve_mirror("/srv/byollm-mirror")
    'file:///srv/byollm-mirror'
    """
    mirror = mirror or os.environ.get(MIRROR_ENV) or None
    if mirror and "://" not in mirror:
        mirror = Path(mirror).expanduser().resolve().as_uri()
    return mirror


def source_url(url: str, mirror: str | None = None, mirror_path: str | None = None) -> str:
    """The URL a download really uses: the origin, or its place on the mirror.

    >>> source_url("https://x.org/a/input.txt", "http://m:8000/", "tinyshakespeare.txt")
    'http://m:8000/tinyshakespeare.txt'
    """
    mirror = resolve_mirror(mirror)
    if not mirror:
        return url
    if mirror_path is None:  # no layout given: the file's name at the top of the mirror
        mirror_path = urlparse(url).path.rsplit("/", 1)[-1]
    return mirror.rstrip("/") + "/" + mirror_path.lstrip("/")


def fetch(
    url: str,
    sha256: str,
    dest: str | Path,
    *,
    mirror: str | None = None,
    mirror_path: str | None = None,
    progress: bool = True,
) -> Path:
    """Make `dest` a verified copy of the file at `url` (or on the mirror) and return its path.

    Raises `OfflineError` when the source cannot be reached (or every attempt was cut short),
    `ByollmError` for an HTTP error or a sha256 mismatch; in no case is a bad `dest` left behind.
    """
    dest = Path(dest)
    sha256 = sha256.lower()
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise ByollmError(f"{dest.name}: {sha256!r} is not a sha256 (64 hex digits)")
    if dest.is_file() and sha256_file(dest) == sha256:
        return dest
    source = source_url(url, mirror, mirror_path)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    with _exclusive(dest.parent / ".byollm-download.lock"):
        if dest.is_file():
            if sha256_file(dest) == sha256:  # another process finished it while we waited
                return dest
            print(f"byollm: {dest} fails its sha256 check; downloading it again", file=sys.stderr)
        for attempt in range(1, ATTEMPTS + 1):
            try:
                actual = _download(source, part, label=dest.name, progress=progress)
                break
            except _CutShort as e:
                if attempt == ATTEMPTS:  # a connection this flaky is as good as none
                    raise OfflineError(
                        f"download of {source} was cut short {ATTEMPTS} times ({e}); {part} is "
                        f"kept and running the command again resumes it; {OFFLINE_HINT}"
                    ) from None
        if actual != sha256:
            part.unlink()
            raise ByollmError(
                f"checksum mismatch for {dest.name} downloaded from {source}: expected sha256 "
                f"{sha256}, got {actual}; the temporary file was deleted"
            )
        os.replace(part, dest)  # atomic: readers see the old state or the verified file
    return dest


# --- internals ---------------------------------------------------------------------------------


def _download(source: str, part: Path, *, label: str, progress: bool) -> str:
    """Stream `source` into `part` (resuming it if possible) and return the sha256 of `part`."""
    start = part.stat().st_size if part.is_file() else 0
    try:
        stream, remaining, resumed = _open(source, start)
    except _RangeRefused:
        part.unlink()
        start = 0
        stream, remaining, resumed = _open(source, 0)
    hasher = hashlib.sha256()
    if resumed:  # the hash covers the whole file, so first feed it the bytes we already have
        with open(part, "rb") as f:
            for chunk in iter(lambda: f.read(1 << 20), b""):
                hasher.update(chunk)
    else:
        start = 0
    total = None if remaining is None else start + remaining
    received = 0
    with (
        stream,
        open(part, "ab" if resumed else "wb") as out,
        _bar(total, start, label, progress) as bar,
    ):
        while True:
            try:
                chunk = stream.read(CHUNK_BYTES)
            except (http.client.HTTPException, OSError) as e:  # reset, timeout, IncompleteRead
                raise _CutShort(f"{type(e).__name__} after {start + received} bytes") from None
            if not chunk:
                break
            out.write(chunk)
            hasher.update(chunk)
            received += len(chunk)
            bar.update(len(chunk))
        out.flush()
        os.fsync(out.fileno())
    # http.client returns b"" (no exception) when the server closes before Content-Length.
    if remaining is not None and received != remaining:
        raise _CutShort(f"got {start + received} of {total} bytes")
    return hasher.hexdigest()


def _open(source: str, start: int) -> tuple[BinaryIO, int | None, bool]:
    """Open `source` at byte `start` if it can; returns (stream, bytes to come, resumed)."""
    parsed = urlparse(source)
    if parsed.scheme == "file":
        path = Path(url2pathname(parsed.path))
        if not path.is_file():
            raise ByollmError(f"mirror file not found: {path} (from {source})")
        size = path.stat().st_size
        f = open(path, "rb")  # noqa: SIM115 - returned to the caller, which closes it
        if 0 < start <= size:
            f.seek(start)
            return f, size - start, True
        return f, size, False
    if parsed.scheme not in ("http", "https"):
        raise ByollmError(
            f"cannot download {source!r}: only http://, https:// and file:// URLs are supported"
        )
    from byollm import __version__

    headers = {"User-Agent": f"byollm/{__version__}"}
    if start:
        headers["Range"] = f"bytes={start}-"
    try:
        response = urlopen(Request(source, headers=headers), timeout=TIMEOUT_S)
    except HTTPError as e:
        e.close()
        if e.code == 416 and start:
            raise _RangeRefused() from None
        raise ByollmError(f"download failed: {source} answered HTTP {e.code} {e.reason}") from None
    except URLError as e:
        if isinstance(e.reason, ssl.SSLError):
            raise ByollmError(f"secure connection to {source} failed: {e.reason}") from None
        reason = getattr(e.reason, "strerror", None) or e.reason
        raise OfflineError(f"cannot reach {source} ({reason}): {OFFLINE_HINT}") from None
    except (http.client.HTTPException, OSError) as e:  # connected, then the server hung up
        raise _CutShort(f"{type(e).__name__} before the response") from None
    length = response.headers.get("Content-Length")
    remaining = int(length) if length and length.isdigit() else None
    if start and response.status == 206:
        if response.headers.get("Content-Range", "").startswith(f"bytes {start}-"):
            return response, remaining, True
        response.close()  # a partial answer for some other range: start over
        return _open(source, 0)
    return response, remaining, False


@contextlib.contextmanager
def _exclusive(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive lock on `lock_path` (POSIX); released when the process dies, too."""
    if fcntl is None:  # pragma: no cover
        yield
        return
    with open(lock_path, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _bar(total: int | None, initial: int, label: str, progress: bool):
    """A tqdm byte counter, silent unless asked for and stderr is a terminal."""
    from tqdm import tqdm

    return tqdm(
        total=total,
        initial=initial,
        desc=label,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        disable=not (progress and sys.stderr.isatty()),
        leave=False,
    )
