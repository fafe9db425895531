"""Run a notebook from notebooks/ top to bottom, as CI does, and hand back its outputs.

The kernel is a new process: it imports byollm from this checkout's `src/`, draws with the Agg
backend, and reads corpora through byollm's registry with the shared data folder as its mirror
when it is there (else `$BYOLLM_MIRROR` as the session started, else the network; each notebook
has an offline fallback).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from conftest import MIRROR_AT_START, SHARED_DATA

ROOT = Path(__file__).resolve().parents[1]


def run_notebook(name: str, monkeypatch, cwd: Path | None = None, timeout: int = 300):
    """Execute notebooks/<name>; returns (outputs, their text). Fails on any cell error."""
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    path = ROOT / "notebooks" / name
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])
    )
    monkeypatch.setenv("MPLBACKEND", "Agg")
    mirror = SHARED_DATA.as_uri() if SHARED_DATA.exists() else MIRROR_AT_START
    if mirror:  # else the notebook asks the network, and falls back when offline
        monkeypatch.setenv("BYOLLM_MIRROR", mirror)
    # nbformat 4.5 requires cell ids (a hard error in future nbformat versions), and its reader
    # quietly adds missing ones, so look at the file itself.
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    missing = [i for i, cell in enumerate(cells) if not cell.get("id")]
    assert not missing, f"{name}: cells {missing} have no id (write the notebook with nbformat)"
    notebook = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=timeout,
        resources={"metadata": {"path": str(cwd or path.parent)}},
    )
    client.execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    errors = [o for o in outputs if o.get("output_type") == "error"]
    assert not errors, errors[0].get("evalue")
    return outputs, "".join(o.get("text", "") for o in outputs)
