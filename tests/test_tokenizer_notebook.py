"""notebooks/01_tokenization.ipynb runs top to bottom without errors (offline, in seconds).

Needs nbclient and ipykernel (test extras), whose wheel installs the `python3` kernel spec.
The kernel imports byollm from this checkout's `src/` and reads GPT-2's files from the shared
data folder when it is there (the notebook copes without them).
"""

from __future__ import annotations

from notebook_runner import run_notebook


def test_notebook_executes(tmp_path):
    _, text = run_notebook("01_tokenization.ipynb", cwd=tmp_path, timeout=120)
    assert "merge (" in text and "same ids: True" in text
