"""notebooks/03_training.ipynb runs top to bottom: prepares Tiny Shakespeare, trains a tiny
model for ~15 s through `byollm.train`, plots its loss curve and samples from the checkpoint."""

from __future__ import annotations

import re

import pytest
from notebook_runner import ROOT, run_notebook

nbformat = pytest.importorskip("nbformat")


def test_training_notebook_executes():
    stored = nbformat.read(ROOT / "notebooks" / "03_training.ipynb", as_version=4)
    assert any(c.get("outputs") for c in stored.cells if c.cell_type == "code"), (
        "commit the notebook executed (python notebooks/execute.py 03_training.ipynb)"
    )
    outputs, text = run_notebook("03_training.ipynb")

    # the data: one shard per split, meta.json, and a no-op second run
    assert "train-00000.bin" in text and "val-00000.bin" in text and '"dtype": "uint16"' in text
    assert "up to date, nothing rewritten" in text
    assert "same windows: True" in text and "== 1 process: True" in text

    # an untrained model's loss is ln(V): 4.17 for Tiny Shakespeare's 65 characters
    initial, ln_v = map(
        float, re.search(r"initial loss ([\d.]+) \(ln \d+ = ([\d.]+)\)", text).groups()
    )
    assert abs(initial - ln_v) < 0.1

    # training learned something real: val loss far below the uniform guess
    final = float(re.search(r"final val loss ([\d.]+)", text).group(1))
    assert final < initial - 1.0, (initial, final)
    assert "300 steps" in text
    evals = re.findall(r"step +(\d+): train ([\d.]+)  val ([\d.]+)", text)
    assert [int(step) for step, _, _ in evals] == [50, 100, 150, 200, 250, 300]
    assert float(evals[-1][2]) < float(evals[0][2])

    # the checkpoint and the samples
    assert "model.safetensors" in text and "train_state.pt" in text and "'step': 300" in text
    sample = text.split("sample:\n", 1)[1]
    assert len(sample.strip()) > 100
    assert sample.startswith("ROMEO:") or "python-stdlib" in text

    # the loss curve and the schedule are shown inline
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 2
