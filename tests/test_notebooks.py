"""The notebooks as committed: executed, with outputs that the code still prints.

Each notebook is executed by one test (the step-by-step ones here, the others in their stage's
test file), and `run_notebook` compares what it prints with what is committed. The tests below
check the committed files themselves and the comparison rule of `notebooks/execute.py`.
"""

from __future__ import annotations

import copy
import json

import pytest
from notebook_runner import ROOT, notebook_tools, run_notebook

nbformat = pytest.importorskip("nbformat")

NOTEBOOKS = sorted(p.name for p in (ROOT / "notebooks").glob("*.ipynb"))


def test_attention_step_by_step_notebook_executes():
    _, text = run_notebook("02b_attention_step_by_step.ipynb", timeout=120)
    # the book's numbers (section 3.3) and every check against byollm's module
    assert "context vector of 'journey': tensor([0.4419, 0.6515, 0.5683])" in text
    for check in (
        "simplified attention == byollm's attention_explicit",
        "causal attention == byollm's attention_explicit with causal_mask",
        "dropout on the weights == byollm's attention_explicit(dropout_p=0.5), same seed",
        "MultiHeadAttention == byollm's CausalSelfAttention",
    ):
        assert check in text


def test_gpt_step_by_step_notebook_executes():
    outputs, text = run_notebook("02c_gpt_step_by_step.ipynb", timeout=120)
    for check in (
        "LayerNorm == byollm's LayerNorm",
        "FeedForward == byollm's MLP",
        "TransformerBlock == byollm's Block",
        "GPTModel == byollm's GPT",
        "generate_text_simple == byollm's GPT.generate(temperature=0)",
    ):
        assert check in text
    assert "163,009,536  (the book's GPTModel)" in text and "124,439,808" in text
    assert any("image/png" in o.get("data", {}) for o in outputs)  # the GELU plot


@pytest.mark.parametrize("name", NOTEBOOKS)
def test_notebook_is_committed_executed(name):
    """Every code cell ran (in order), none failed, and no run's timestamps were kept."""
    path = ROOT / "notebooks" / name
    cells = [c for c in json.loads(path.read_text(encoding="utf-8"))["cells"]]
    code = [c for c in cells if c["cell_type"] == "code"]
    assert all(c.get("id") for c in cells), f"{name}: every cell needs an id"
    assert [c["execution_count"] for c in code] == list(range(1, len(code) + 1)), (
        f"{name} is not committed executed top to bottom: python notebooks/execute.py {name}"
    )
    assert not any(o["output_type"] == "error" for c in code for o in c["outputs"])
    assert not any("execution" in c["metadata"] for c in code), "strip the cells' timestamps"


def test_every_notebook_is_executed_by_a_test():
    tests = "".join(p.read_text(encoding="utf-8") for p in (ROOT / "tests").glob("test_*.py"))
    assert [name for name in NOTEBOOKS if f'run_notebook("{name}"' not in tests] == []


# ---- the comparison rule -------------------------------------------------------------------


def test_numbers_may_differ_in_their_last_digit_only():
    match = notebook_tools.texts_match
    assert match("loss 4.175 (ln 65 = 4.174)", "loss 4.176 (ln 65 = 4.174)")
    assert not match("loss 4.175", "loss 4.177")
    assert not match("loss 4.175", "loss 4.17")
    assert match("max 5.96e-08", "max 5.97e-08") and not match("max 5.96e-08", "max 5.96e-07")
    assert not match("809,856 parameters", "809,857 parameters")  # integers are exact
    assert not match("step 300: train", "step 300: val")


def test_durations_temporary_paths_and_addresses_are_masked():
    normalise = notebook_tools.normalise
    assert normalise("trained in 0.17 s, prepared in 0.08s") == "trained in # s, prepared in #s"
    assert normalise("300 steps in 18.9s (24,590 tokens/s, MFU 9%)") == (
        "300 steps in #s (# tokens/s, MFU #%)"
    )
    assert normalise("3 steps, 5 samples") == "3 steps, 5 samples"  # units only after numbers
    assert normalise("in /tmp/byollm-03-ab12cd/data") == "in <tmp>/data"
    assert normalise("<object at 0x7f3a12bc45d0>") == "<object at 0x...>"
    assert normalise("3 layers, 2.5 ms", timing=True) == "# layers, # ms"


def test_compare_names_the_stale_cell_and_line():
    committed = nbformat.v4.new_notebook(
        cells=[
            nbformat.v4.new_code_cell("print('a')", outputs=[_stream("loss 1.234\nsame\n")]),
            nbformat.v4.new_code_cell("plot()", outputs=[_image()]),
        ]
    )
    executed = copy.deepcopy(committed)
    assert notebook_tools.compare(committed, executed) == []
    executed.cells[0].outputs = [_stream("loss 1.235\n"), _stream("same\n")]  # split differently
    assert notebook_tools.compare(committed, executed) == []
    executed.cells[0].outputs = [_stream("loss 1.299\nsame\n")]
    [problem] = notebook_tools.compare(committed, executed)
    assert "code cell 1 (print('a'))" in problem and "'loss 1.234'" in problem
    executed = copy.deepcopy(committed)
    executed.cells[1].outputs = []
    [problem] = notebook_tools.compare(committed, executed)
    assert "code cell 2" in problem and "['image']" in problem
    executed.cells[1].outputs = [_stream("warning: slow\n", name="stderr"), _image()]
    assert notebook_tools.compare(committed, executed) == []  # stderr is not compared


def test_machine_dependent_cells_compare_in_full_only_on_the_same_kind_of_machine():
    trained = nbformat.v4.new_code_cell("train()", outputs=[_stream("val 1.986\n")])
    trained.metadata["tags"] = ["machine-dependent"]
    plain = nbformat.v4.new_code_cell("print(2)", outputs=[_stream("2\n")])
    committed = nbformat.v4.new_notebook(cells=[trained, plain])
    committed.metadata["byollm"] = {"executed_on": "cpu AVX512"}
    executed = copy.deepcopy(committed)
    executed.cells[0].outputs = [_stream("val 2.013\n")]
    assert len(notebook_tools.compare(committed, executed)) == 1  # same machine: stale
    executed.metadata["byollm"] = {"executed_on": "cpu AVX2"}
    assert notebook_tools.compare(committed, executed) == []  # another machine: kinds only
    executed.cells[0].outputs = []
    assert len(notebook_tools.compare(committed, executed)) == 1  # the output must be there
    executed.cells[0].outputs = [_stream("val 2.013\n")]
    executed.cells[1].outputs = [_stream("3\n")]
    assert len(notebook_tools.compare(committed, executed)) == 1  # untagged: still in full


def test_executed_notebooks_record_their_machine():
    for name in NOTEBOOKS:
        notebook = nbformat.read(ROOT / "notebooks" / name, as_version=4)
        assert "torch" in (notebook_tools.executed_on(notebook) or ""), name


def _stream(text: str, name: str = "stdout"):
    return nbformat.v4.new_output("stream", name=name, text=text)


def _image():
    return nbformat.v4.new_output(
        "display_data", data={"image/png": "iVBORw0K", "text/plain": "<Figure>"}
    )
