"""notebooks/08_scaling_laws.ipynb runs top to bottom: it recovers Chinchilla's law from runs drawn
from it, fits the committed smoke sweep (docs/assets/scaling-cpu-smoke) and draws its figures."""

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

    # the committed smoke sweep is read, run by run
    runs = int(re.search(r"(\d+) runs from", text).group(1))
    assert runs == 9 and text.count("C3e10-d") >= 3

    # the fit finds Chinchilla's exponents again, inside its intervals
    for name in ("alpha", "beta"):
        true, fitted, inside = re.search(
            rf"{name} +([\d.]+) +([\d.]+) .* (True|False)", text
        ).groups()
        assert abs(float(fitted) - float(true)) < 0.03 and inside == "True", name

    # both fits of the smoke sweep are reported, then the four figures are drawn
    assert "(a) isoFLOP minima" in text and "(b) L(N, D)" in text
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) == 4

    # the smoke sweep's predicted run: prediction, measurement and error
    assert re.search(r"predicted [\d.]+ bits/byte .* measured [\d.]+: error [+-][\d.]+%", text)
