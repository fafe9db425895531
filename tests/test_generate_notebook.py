"""notebooks/04_sampling.ipynb runs top to bottom (trains a tiny model for ~5 s inside)."""

from __future__ import annotations

from notebook_runner import run_notebook


def test_sampling_notebook_executes():
    _, text = run_notebook("04_sampling.ipynb")
    assert "bits_per_byte" in text and "greedy" in text
