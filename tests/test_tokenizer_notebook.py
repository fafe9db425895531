"""notebooks/01_tokenization.ipynb runs top to bottom without errors (offline, in seconds).

Needs nbclient and ipykernel (test extras), whose wheel installs the `python3` kernel spec.
The kernel imports byollm from this checkout's `src/` and reads GPT-2's files from the shared
data folder when it is there (the notebook copes without them).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from conftest import SHARED_DATA

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "01_tokenization.ipynb"


def test_notebook_executes(monkeypatch, tmp_path):
    src = str(NOTEBOOK.parents[1] / "src")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([src, os.environ.get("PYTHONPATH", "")]))
    if SHARED_DATA.exists():
        monkeypatch.setenv("BYOLLM_MIRROR", f"file://{SHARED_DATA}")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        notebook,
        kernel_name="python3",
        timeout=120,
        resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    text = "".join(o.get("text", "") for o in outputs)
    assert "merge (" in text and "same ids: True" in text
