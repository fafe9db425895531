"""Shared test fixtures.

Tests never touch the network. Files from `../shared/data` (beside the project root) are read
through `shared_file`, which skips the test with a clear reason on a machine that lacks them.
Every test runs with its own empty `BYOLLM_HOME`, so nothing leaks between tests or into the
user's real cache.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("BYOLLM_SHARED_DATA", ROOT.parent / "shared" / "data"))


def shared_file(relative: str) -> Path:
    """Path to a file of ../shared/data, or skip the calling test with the reason."""
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(f"needs {relative} from the shared data folder ({SHARED_DATA}), absent here")
    return path


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch):
    """A fresh, empty BYOLLM_HOME per test; no mirror unless the test sets one."""
    home = tmp_path_factory.mktemp("byollm_home")
    monkeypatch.setenv("BYOLLM_HOME", str(home))
    monkeypatch.delenv("BYOLLM_MIRROR", raising=False)
    return home
