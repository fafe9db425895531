"""notebooks/05_finetuning.ipynb runs top to bottom (CI executes every notebook)."""

from notebook_runner import run_notebook


def test_finetuning_notebook_runs():
    _, text = run_notebook("05_finetuning.ipynb")
    assert "identical outputs: True" in text
    assert "test accuracy" in text and "answer loss" in text
