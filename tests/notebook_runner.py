"""Run a notebook from notebooks/ top to bottom, as CI does, hand back its outputs, and check
that the outputs committed in the notebook are still the ones it prints.

Execution and comparison are `notebooks/execute.py`'s (one owner for both): a new kernel that
imports byollm from this checkout's `src/`, a fresh BYOLLM_HOME, the shared data folder as the
download mirror, one CPU thread, inline figures. Its module docstring gives the comparison
rule (what may differ between two runs: timings, temporary paths, the last digit of a float,
and on another kind of machine the outputs of a trained model).
After changing code that a notebook prints about, `python notebooks/execute.py NAME` rewrites it.
"""

from __future__ import annotations

import importlib.util
import warnings
from pathlib import Path

import pytest
from conftest import SHARED_DATA

ROOT = Path(__file__).resolve().parents[1]


def _load_execute():
    spec = importlib.util.spec_from_file_location(
        "byollm_notebooks_execute", ROOT / "notebooks" / "execute.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


notebook_tools = _load_execute()


def run_notebook(name: str, cwd: Path | None = None, timeout: int = 300):
    """Execute notebooks/<name>; returns (outputs, their stream text). Fails on any cell error,
    on a cell without an id, and (when the shared data folder is here, as it was when the
    notebooks were executed for committing) on committed outputs that differ from the new ones."""
    nbformat = pytest.importorskip("nbformat")
    pytest.importorskip("nbclient")
    path = ROOT / "notebooks" / name
    executed = notebook_tools.execute(path, cwd=cwd, timeout=timeout)
    if SHARED_DATA.exists():
        committed = nbformat.read(path, as_version=4)
        stale = notebook_tools.compare(committed, executed)
        if notebook_tools.executed_on(committed) != notebook_tools.executed_on(executed):
            warnings.warn(
                f"{name} was executed on {notebook_tools.executed_on(committed)}, this is "
                f"{notebook_tools.executed_on(executed)}: its machine-dependent cells were "
                "compared by their kinds of output only",
                stacklevel=2,
            )
        assert not stale, (
            f"{name}: the committed outputs are stale; re-execute with "
            f"`python notebooks/execute.py {name}`\n" + "\n".join(stale)
        )
    outputs = [o for cell in executed.cells if cell.cell_type == "code" for o in cell.outputs]
    text = "".join(o.get("text", "") for o in outputs)
    return outputs, text
