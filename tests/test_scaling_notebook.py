"""notebooks/08_scaling_laws.ipynb runs top to bottom: it recovers Chinchilla's law from runs drawn
from it, fits the committed default sweep (docs/assets/scaling-cpu), draws its figures and shows
the predicted run beside its backtest."""

from __future__ import annotations

import re

import pytest
from notebook_runner import ROOT, run_notebook

nbformat = pytest.importorskip("nbformat")


def test_scaling_notebook_executes():
    stored = nbformat.read(ROOT / "notebooks" / "08_scaling_laws.ipynb", as_version=4)
    assert any(c.get("outputs") for c in stored.cells if c.cell_type == "code"), (
        "commit the notebook executed (python notebooks/execute.py 08_scaling_laws.ipynb)"
    )
    outputs, text = run_notebook("08_scaling_laws.ipynb")

    # the committed default sweep is read, run by run
    runs = int(re.search(r"(\d+) runs from", text).group(1))
    assert runs == 35 and text.count("C5e12-d") >= 5

    # the fit finds Chinchilla's exponents again, inside its intervals
    for name in ("alpha", "beta"):
        true, fitted, inside = re.search(
            rf"{name} +([\d.]+) +([\d.]+) .* (True|False)", text
        ).groups()
        assert abs(float(fitted) - float(true)) < 0.03 and inside == "True", name

    # the three fits of the sweep are reported, then the four figures are drawn
    assert "(a) isoFLOP minima" in text and "(b) L(N, D)" in text and "(c) loss frontier" in text
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 4

    # the predicted run: the backtest that chose its predictor, the prediction and its error
    assert re.search(r"frontier +[\d.]+% mean error", text)
    assert re.search(r"predicted val loss [\d.]+, [\d.]+ bits/byte by \w+", text)
    assert re.search(r"measured [\d.]+ bits/byte: error [+-][\d.]+%", text)
    # both 10x runs of the committed sweep: the straight frontier's miss, then the bent one's
    assert "measured 1.5658 bits/byte: error -7.84%" in text
    assert "by frontier_e (the preferred predictor, whatever its backtest)" in text
    assert "measured 1.4398 bits/byte: error -0.62%" in text
