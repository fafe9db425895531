"""Verified downloads: a file is either complete and checked, or absent.

    >>> fetch("https://example.org/input.txt", "86c4e6aa...", Path("cache/input.txt"))  # doctest: +SKIP
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
  A mirror string is checked before anything is fetched (`resolve_mirror`): a typo such as
  `htp://x`, `file:` or `http://[::1` is one line naming the value, never a traceback.
- **No more than the registry's size**: given `size`, a server that announces or sends more
  bytes is cut off and the partial file deleted, so a broken or hostile server cannot fill the disk.
- **The local side failing is not the network failing**: disk full (or no permission) while
  writing deletes the partial file and says which file could not be written.
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


class _TooBig(Exception):
    """Internal: the source sent more bytes than the registered size."""


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file, read in chunks so large files need little memory."""
    hasher = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


def resolve_mirror(mirror: str | None = None) -> str | None:
    """The mirror in effect, checked: the argument, else `$BYOLLM_MIRROR`, else None.

    A plain folder path is turned into a file:// URL:
    >>> resolve_mirror("/srv/byollm-mirror")
    'file:///srv/byollm-mirror'

    A malformed mirror raises `ByollmError` naming it (an empty `$BYOLLM_MIRROR` means none).
    """
    where = "mirror"
    if mirror is None:
        mirror, where = os.environ.get(MIRROR_ENV) or None, f"${MIRROR_ENV}"
        if mirror is None:
            return None
    return _checked_mirror(mirror, where)


_MIRROR_FORMS = "a mirror is an http(s):// or file:/// URL or a folder path holding each file at its mirror path"


def _checked_mirror(text: str, where: str) -> str:
    """`text` as a mirror URL, or a one-line `ByollmError` saying what is wrong with it."""

    def bad(why: str) -> ByollmError:
        return ByollmError(f"{where} {text!r} {why}; {_MIRROR_FORMS}")

    if not text.strip():
        raise bad("is empty")
    if not text.isprintable():  # newlines, tabs, NUL: no URL or path holds them
        raise bad("holds control characters")
    scheme = re.match(r"([A-Za-z][A-Za-z0-9+.-]*):", text)
    if scheme is None or len(scheme.group(1)) == 1:  # a path (one letter: a Windows drive)
        try:
            return Path(text).expanduser().resolve().as_uri()
        except (OSError, RuntimeError, ValueError) as e:  # e.g. ~nosuchuser
            raise bad(f"is not a usable folder path ({e})") from None
    try:
        parsed = urlparse(text)
        parsed.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError as e:  # e.g. 'http://[::1' (Invalid IPv6 URL)
        raise bad(f"is not a valid URL ({e})") from None
    kind = parsed.scheme.lower()
    if kind not in ("http", "https", "file"):
        raise bad(f"has the unsupported scheme {parsed.scheme + ':'!r}")
    if parsed.query or parsed.fragment or text.endswith(("?", "#")):
        raise bad("has a query or fragment ('?' or '#'), which file names cannot follow")
    if kind == "file":
        if not text[len("file:") :].startswith("//"):
            raise bad("is not a file URL (write file:///path/to/folder)")
        if parsed.netloc not in ("", "localhost"):
            raise bad(f"names the host {parsed.netloc!r}; file URLs name a folder on this machine")
        if not parsed.path:
            raise bad("names no folder")
        return text
    if " " in text:
        raise bad("holds spaces (percent-encode them as %20)")
    if not text.isascii():
        raise bad("holds non-ASCII characters (percent-encode them; write hosts in xn-- form)")
    if not parsed.hostname:
        raise bad("names no host")
    try:
        parsed.hostname.encode("idna")
    except UnicodeError:  # an empty or over-long label, e.g. 'http://a..b'
        raise bad(f"has an invalid host name {parsed.hostname!r}") from None
    return text


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
    sha256: str | None,
    dest: str | Path,
    *,
    mirror: str | None = None,
    mirror_path: str | None = None,
    progress: bool = True,
    size: int | None = None,
) -> Path:
    """Make `dest` a verified copy of the file at `url` (or on the mirror) and return its path.

    `size`, when known, is the most bytes accepted: a source that sends more is cut off.
    Raises `OfflineError` when the source cannot be reached (or every attempt was cut short),
    `ByollmError` for an HTTP error, a sha256 mismatch, an oversized source, a malformed mirror or
    a disk that cannot take the file; in no case is a bad `dest` left behind.

    `sha256=None` is for a file whose sha256 nobody published: the same resumed, size-capped,
    atomic download with no checksum to compare, and a `dest` already there is returned as is;
    the caller records the sha256 of what came (see `corpora.registry`).
    """
    dest = Path(dest)
    if sha256 is None:
        return _fetch_unchecked(url, dest, mirror, mirror_path, progress, size)
    sha256 = sha256.lower()
    if not re.fullmatch(r"[0-9a-f]{64}", sha256):
        raise ByollmError(f"{dest.name}: {sha256!r} is not a sha256 (64 hex digits)")
    source = source_url(url, mirror, mirror_path)  # checks the mirror even when `dest` is cached
    if dest.is_file() and sha256_file(dest) == sha256:
        return dest
    part = dest.with_name(dest.name + ".part")
    with _exclusive(dest.parent / ".byollm-download.lock"):
        if dest.is_file():
            if sha256_file(dest) == sha256:  # another process finished it while we waited
                return dest
            print(f"byollm: {dest} fails its sha256 check; downloading it again", file=sys.stderr)
        actual = _download_retrying(source, part, dest, progress=progress, size=size)
        if actual != sha256:
            part.unlink()
            raise ByollmError(
                f"checksum mismatch for {dest.name} downloaded from {source}: expected sha256 "
                f"{sha256}, got {actual}; the temporary file was deleted"
            )
        os.replace(part, dest)  # atomic: readers see the old state or the verified file
    return dest


def _fetch_unchecked(url, dest: Path, mirror, mirror_path, progress, size) -> Path:
    source = source_url(url, mirror, mirror_path)
    if dest.is_file():
        return dest
    part = dest.with_name(dest.name + ".part")
    with _exclusive(dest.parent / ".byollm-download.lock"):
        if not dest.is_file():
            _download_retrying(source, part, dest, progress=progress, size=size)
            os.replace(part, dest)
    return dest


def _download_retrying(source: str, part: Path, dest: Path, *, progress: bool, size) -> str:
    """`_download`, resumed up to ATTEMPTS times when cut short; the sha256 of `part`."""
    for attempt in range(1, ATTEMPTS + 1):
        try:
            return _download(source, part, label=dest.name, progress=progress, size=size)
        except _CutShort as e:
            if attempt == ATTEMPTS:  # a connection this flaky is as good as none
                raise OfflineError(
                    f"download of {source} was cut short {ATTEMPTS} times ({e}); {part} is "
                    f"kept and running the command again resumes it; {OFFLINE_HINT}"
                ) from None
    raise AssertionError("unreachable")  # pragma: no cover


def read_url(url: str, *, max_bytes: int) -> bytes:
    """The whole body of a small resource (an http(s):// or file:// URL), at most `max_bytes`.

    For files whose checksum is not a sha256 known in advance (a server's file listing, a file
    the caller checks another way); the same errors as `fetch`, nothing written to disk.
    """
    try:
        stream, remaining, _ = _open(url, 0)
    except _CutShort as e:
        raise OfflineError(f"cannot read {url} ({e}): {OFFLINE_HINT}") from None
    if remaining is not None and remaining > max_bytes:
        stream.close()
        raise ByollmError(
            f"{url} announces {remaining:,} bytes, more than the {max_bytes:,} expected"
        )
    with stream:
        try:
            data = stream.read(max_bytes + 1)
        except (http.client.HTTPException, OSError) as e:
            raise OfflineError(
                f"reading {url} failed ({type(e).__name__}): {OFFLINE_HINT}"
            ) from None
    if len(data) > max_bytes:
        raise ByollmError(f"{url} sent more than the {max_bytes:,} bytes expected")
    if remaining is not None and len(data) != remaining:
        raise OfflineError(f"reading {url} was cut short ({len(data)} of {remaining} bytes)")
    return data


# --- internals ---------------------------------------------------------------------------------


def _download(source: str, part: Path, *, label: str, progress: bool, size: int | None) -> str:
    """Stream `source` into `part` (resuming it if possible) and return the sha256 of `part`."""
    start = part.stat().st_size if part.is_file() else 0
    if size is not None and start > size:  # a stale leftover larger than the file can be
        part.unlink()
        start = 0
    try:
        stream, remaining, resumed = _open(source, start)
    except _RangeRefused:
        part.unlink()
        start = 0
        stream, remaining, resumed = _open(source, 0)
    if not resumed:
        start = 0
    total = None if remaining is None else start + remaining
    limit = size if size is not None else float("inf")
    if total is not None and total > limit:
        stream.close()
        part.unlink(missing_ok=True)
        raise ByollmError(
            f"{source} announces {total:,} bytes, but {label} is registered with {size:,} bytes; "
            "nothing was downloaded (a wrong mirror or a damaged server?)"
        )
    hasher = hashlib.sha256()
    received = 0
    try:
        if resumed:  # the hash covers the whole file, so first feed it the bytes we already have
            with open(part, "rb") as f:
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    hasher.update(chunk)
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
                if start + received + len(chunk) > limit:  # more than the registry says exists
                    raise _TooBig()
                out.write(chunk)
                hasher.update(chunk)
                received += len(chunk)
                bar.update(len(chunk))
            out.flush()
            os.fsync(out.fileno())
    except _TooBig:
        part.unlink(missing_ok=True)
        raise ByollmError(
            f"{source} sent more than the {size:,} bytes registered for {label}; the download "
            "was stopped and the partial file deleted (a wrong mirror or a damaged server?)"
        ) from None
    except OSError as e:  # disk full or no permission: our side failed, not the network
        part.unlink(missing_ok=True)
        raise ByollmError(
            f"cannot write {part}: {e.strerror or e}; the partial download was deleted"
        ) from None
    # http.client returns b"" (no exception) when the server closes before Content-Length.
    if remaining is not None and received != remaining:
        raise _CutShort(f"got {start + received} of {total} bytes")
    return hasher.hexdigest()


def _open(source: str, start: int) -> tuple[BinaryIO, int | None, bool]:
    """Open `source` at byte `start` if it can; returns (stream, bytes to come, resumed)."""
    parsed = urlparse(source)
    if parsed.scheme == "file":
        path = Path(url2pathname(parsed.path))
        try:
            size = path.stat().st_size if path.is_file() else None
            f = None if size is None else open(path, "rb")  # noqa: SIM115 - the caller closes it
        except OSError as e:  # e.g. a name too long for the file system
            raise ByollmError(f"cannot read mirror file {path} ({e.strerror or e})") from None
        if f is None:
            raise ByollmError(f"mirror file not found: {path} (from {source})")
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
    except (http.client.InvalidURL, ValueError, UnicodeError) as e:  # caught before connecting
        raise ByollmError(f"cannot download {source!r}: not a valid URL ({e})") from None
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
    try:
        lock_path.parent.mkdir(parents=True, exist_ok=True)
        lock = open(lock_path, "a")  # noqa: SIM115 - closed by the `with` below
    except OSError as e:
        raise ByollmError(f"cannot write in {lock_path.parent}: {e.strerror or e}") from None
    with lock:
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
