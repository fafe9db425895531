"""Shared test fixtures.

Tests that need a data file (a corpus, a tokenizer's vocabulary) ask `shared_file` for it by its
mirror path, e.g. `shared_file("gpt2/encoder.json")`. It comes from `../shared/data` beside the
project root when that folder holds it (`$BYOLLM_SHARED_DATA` moves the folder; CI points it at
a missing one to run the suite as a fresh clone would); else through byollm's own registry, once
per test session (from `$BYOLLM_MIRROR` or the network, with a short timeout); and only when
neither works is the test skipped, with both reasons. No other test touches the network: download
code is tested against a loopback HTTP server (`data_server.py`).

Every test runs with its own empty `BYOLLM_HOME`, so nothing leaks between tests or into the
user's real cache.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from pathlib import Path
from unittest import mock

import pytest
from hypothesis import settings

# No test depends on wall-clock speed: hypothesis's per-example deadline (200 ms) would make
# property tests fail on a loaded machine, so it is off for the whole suite.
settings.register_profile("byollm", deadline=None)
settings.load_profile("byollm")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("BYOLLM_SHARED_DATA", ROOT.parent / "shared" / "data"))
MIRROR_AT_START = os.environ.get("BYOLLM_MIRROR") or None  # the tests themselves run without one
FETCH_TIMEOUT_S = 5.0  # per socket operation: an offline machine answers in well under that

_session_home: Path | None = None  # a BYOLLM_HOME for the files fetched in this session
_fetch_failures: dict[str, str] = {}  # mirror path (or "*" once offline) -> why it failed


def shared_file(relative: str) -> Path:
    """The data file at mirror path `relative`: shared, else fetched, else skip the test."""
    path = SHARED_DATA / relative
    if path.exists():
        return path
    return _fetched(relative)


def shared_mirror(*relative: str) -> Path:
    """A folder holding the files `relative` at their mirror paths, to use as a mirror.

    `../shared/data` when it holds them all, else this session's download folder (fetching
    what is missing), else the test is skipped.
    """
    if all((SHARED_DATA / r).exists() for r in relative):
        return SHARED_DATA
    for r in relative:
        _fetched(r)
    return _session_home / "data"


def _fetched(relative: str) -> Path:
    """`relative` fetched through the registry into the session's cache, or skip the test."""
    global _session_home
    from byollm import download
    from byollm.corpora import CORPORA, get_asset
    from byollm.errors import ByollmError

    if _session_home is None:
        _session_home = Path(tempfile.mkdtemp(prefix="byollm-test-data-"))
        atexit.register(shutil.rmtree, _session_home, ignore_errors=True)
    names = [c.name for c in CORPORA.values() if c.url and c.mirror_path == relative]
    reason = _fetch_failures.get("*") or _fetch_failures.get(relative)
    if not names:
        reason = "no registered corpus has that mirror path"
    if reason is None:
        source = MIRROR_AT_START or "the network"
        with (
            mock.patch.dict(os.environ, {"BYOLLM_HOME": str(_session_home)}),
            mock.patch.object(download, "TIMEOUT_S", FETCH_TIMEOUT_S),
        ):
            try:
                return get_asset(names[0], mirror=MIRROR_AT_START, progress=False)
            except download.OfflineError:  # no network: no file will come, stop asking
                reason = _fetch_failures["*"] = f"{source} unreachable (first tried for {relative})"
            except ByollmError as e:  # a checksum mismatch, an HTTP error: this file only
                reason = _fetch_failures[relative] = f"{source}: {e}"[:200]
    pytest.skip(
        f"needs {relative}: not in the shared data folder ({SHARED_DATA}), and fetching it "
        f"through byollm's registry failed ({reason})"
    )


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch):
    """A fresh, empty BYOLLM_HOME per test; no mirror unless the test sets one."""
    home = tmp_path_factory.mktemp("byollm_home")
    monkeypatch.setenv("BYOLLM_HOME", str(home))
    monkeypatch.delenv("BYOLLM_MIRROR", raising=False)
    return home
