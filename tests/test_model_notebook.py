"""notebooks/02_transformer.ipynb runs top to bottom without errors (and prints its tables)."""

from __future__ import annotations

from notebook_runner import run_notebook


def test_transformer_notebook_executes():
    _, text = run_notebook("02_transformer.ipynb", timeout=120)
    assert "parameter" in text and "transformer.wte.weight" in text
    assert "KV cache per token" in text
    assert "124,439,808" in text
