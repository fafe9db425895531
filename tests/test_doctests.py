"""The examples in the package's docstrings run and print what they say (doctest, every module).

Each module's examples run in a fresh temporary folder (an example that saves `ckpt` writes it
there) with the test suite's own empty `BYOLLM_HOME` (conftest.py), so nothing reaches the
network or the user's cache. A line that needs a trained run or a download is marked
`# doctest: +SKIP` in its docstring, and says so.
"""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import byollm

# `byollm.__main__` runs the CLI when imported: it has no examples, and is not imported here.
MODULES = ["byollm"] + sorted(
    info.name
    for info in pkgutil.walk_packages(byollm.__path__, "byollm.")
    if info.name != "byollm.__main__"
)


def test_every_stage_is_searched():
    for name in (
        "byollm.corpora.registry",
        "byollm.tokenizer.specs",
        "byollm.data.tokens",
        "byollm.model.gpt",
        "byollm.train.trainer",
        "byollm.generate.engine",
    ):
        assert name in MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    module = importlib.import_module(name)
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS)
    report: list[str] = []
    for test in doctest.DocTestFinder().find(module):
        runner.run(test, out=report.append)
    assert runner.failures == 0, "".join(report)
