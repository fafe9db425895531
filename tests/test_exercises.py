"""The exercises: every solution passes its checker, every blank template fails it (step by step,
as "to do"), typical mistakes get a hint that names the step, the input and both answers, and
`byollm exercise` behaves as a CLI verb should (exit 0 / 1 / 2, one-line errors)."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import ROOT

from byollm.cli import main
from byollm.errors import ByollmError
from byollm.exercises import EXERCISES, check, start, statement
from byollm.exercises.checking import FAILED, OK, SKIPPED, TODO

SOLUTIONS = ROOT / "exercises" / "solutions"


@pytest.mark.parametrize("name", list(EXERCISES))
def test_solution_passes_every_step(name):
    report = check(name, SOLUTIONS / f"{name}.py")
    assert report.passed, report.format()
    assert len(report.results) >= 5


@pytest.mark.parametrize("name", list(EXERCISES))
def test_blank_template_passes_no_step(name):
    exercise = EXERCISES[name]
    report = check(name, exercise.template_path)
    assert not report.passed
    statuses = {r.status for r in report.results}
    assert statuses <= {TODO, SKIPPED} and TODO in statuses, report.format()
    # the statement explains every step the checker runs, and the template names them
    text = statement(name)
    template = exercise.template_path.read_text(encoding="utf-8")
    for number in range(1, len(report.results) + 1):
        assert f"Step {number}" in text and f"Step {number}" in template


def test_every_exercise_has_its_files():
    assert sorted(p.stem for p in SOLUTIONS.glob("*.py")) == sorted(EXERCISES)
    for exercise in EXERCISES.values():
        assert exercise.statement_path.is_file() and exercise.template_path.is_file()


def _broken(tmp_path: Path, name: str, old: str, new: str) -> Path:
    """The solution of `name` with one mistake put in."""
    source = (SOLUTIONS / f"{name}.py").read_text(encoding="utf-8")
    assert old in source
    path = tmp_path / f"{name}.py"
    path.write_text(source.replace(old, new), encoding="utf-8")
    return path


def _result(report, step: str):
    return next(r for r in report.results if r.name == step)


def test_merge_that_forgets_to_skip_shows_input_expected_and_got(tmp_path):
    report = check("tokenizer", _broken(tmp_path, "tokenizer", "i += 2", "i += 1"))
    merge = _result(report, "merge")
    assert merge.status == FAILED
    assert "merge([5, 6, 6, 7, 9, 1], (6, 7), 99)" in merge.message
    assert "expected [5, 6, 99, 9, 1]" in merge.message
    assert "got      [5, 6, 99, 7, 9, 1]" in merge.message
    assert "skip both ids" in merge.message
    # the steps built on merge wait for it instead of failing too
    assert _result(report, "train").status == SKIPPED
    assert "Next: step 2 (merge)" in report.format()


def test_wrong_tie_break_names_the_merge_that_differs(tmp_path):
    path = _broken(tmp_path, "tokenizer", "(counts[pair], -pair[0], -pair[1])", "counts[pair]")
    train = _result(check("tokenizer", path), "train")
    assert train.status == FAILED
    assert "merge number" in train.message and "smallest pair" in train.message


def test_exact_gelu_is_told_apart_from_gpt2s_tanh_gelu(tmp_path):
    path = _broken(
        tmp_path,
        "gpt_block",
        "0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))",
        "0.5 * x * (1 + torch.erf(x / math.sqrt(2)))",
    )
    report = check("gpt_block", path)
    gelu = _result(report, "gelu")
    assert gelu.status == FAILED and "exact GELU" in gelu.message and "tanh" in gelu.message
    assert _result(report, "LayerNorm").status == OK


def test_post_norm_block_fails_with_a_hint(tmp_path):
    path = _broken(
        tmp_path, "gpt_block", "x = x + self.attn(self.ln_1(x))", "x = self.ln_1(x + self.attn(x))"
    )
    block = _result(check("gpt_block", path), "Block")
    assert block.status == FAILED and "largest difference" in block.message
    assert "x = x + attn(ln_1(x))" in block.message


def test_top_k_that_drops_ties(tmp_path):
    path = _broken(tmp_path, "sampling", "logits < kth", "logits <= kth")
    top_k = _result(check("sampling", path), "top_k_filter")
    assert top_k.status == FAILED and "keeps ties" in top_k.message


def test_lora_with_random_b_is_told_why_b_starts_at_zero(tmp_path):
    path = _broken(
        tmp_path,
        "lora",
        "nn.Parameter(torch.zeros(base.out_features, rank))",
        "nn.Parameter(torch.randn(base.out_features, rank))",
    )
    init = _result(check("lora", path), "LoRALinear.__init__")
    assert init.status == FAILED and "lora_B is not all zeros" in init.message
    assert "computes exactly what the base computed" in init.message


def test_lora_scaled_by_alpha_alone_fails_init_and_its_dependents_wait(tmp_path):
    path = _broken(tmp_path, "lora", "self.scaling = alpha / rank", "self.scaling = alpha")
    report = check("lora", path)
    assert _result(report, "LoRALinear.__init__").status == FAILED
    assert "scaling" in _result(report, "LoRALinear.__init__").message
    # with __init__ failed, every step that builds a layer waits; the others still run
    assert _result(report, "LoRALinear.forward").status == SKIPPED
    assert _result(report, "count_parameters").status == OK


def test_lora_merge_written_another_way_passes_and_an_unscaled_one_fails(tmp_path):
    path = _broken(
        tmp_path,
        "lora",
        "self.scaling * (self.lora_B @ self.lora_A)",
        "self.scaling * (self.lora_A.T @ self.lora_B.T).T",
    )
    assert check("lora", path).passed  # the same product, written another way
    path = _broken(
        tmp_path,
        "lora",
        "self.base.weight += self.scaling * (self.lora_B @ self.lora_A)",
        "self.base.weight += self.lora_B @ self.lora_A",
    )
    merged = _result(check("lora", path), "LoRALinear.merged")
    assert merged.status == FAILED and "W' = W + scaling * (B @ A)" in merged.message


def test_forgotten_zero_grad_is_named(tmp_path):
    path = _broken(tmp_path, "training", "    optimizer.zero_grad(set_to_none=True)\n", "")
    step = _result(check("training", path), "train_step")
    assert step.status == FAILED and "gradients are left" in step.message


def test_an_exception_in_the_learners_code_names_their_line(tmp_path):
    path = _broken(tmp_path, "attention", "return torch.tril(", "return torch.trill(")
    mask = _result(check("attention", path), "causal_mask")
    assert mask.status == FAILED
    assert "AttributeError" in mask.message and "attention.py line" in mask.message
    assert "torch.trill(" in mask.message


def test_missing_function_is_named(tmp_path):
    path = tmp_path / "sampling.py"
    path.write_text("import torch\n", encoding="utf-8")
    report = check("sampling", path)
    assert "your file defines no `apply_temperature`" in report.results[0].message


def test_user_mistakes_are_byollm_errors(tmp_path):
    with pytest.raises(ByollmError, match="unknown exercise 'dora'; choose one of tokenizer"):
        check("dora", tmp_path / "dora.py")
    with pytest.raises(ByollmError, match="no file .*missing.py: copy the template"):
        check("tokenizer", tmp_path / "missing.py")
    broken = tmp_path / "bad.py"
    broken.write_text("def f(:\n", encoding="utf-8")
    with pytest.raises(ByollmError, match=r"bad.py, line 1: syntax error"):
        check("tokenizer", broken)


def test_start_copies_the_template_and_keeps_existing_work(tmp_path):
    path = start("attention", tmp_path)
    assert path == tmp_path / "attention.py"
    assert path.read_text() == EXERCISES["attention"].template_path.read_text()
    path.write_text("# my work\n")
    with pytest.raises(ByollmError, match="already exists"):
        start("attention", tmp_path)
    assert path.read_text() == "# my work\n"
    start("attention", tmp_path, overwrite=True)
    assert "NotImplementedError" in path.read_text()


def test_cli_list_show_start_check(tmp_path, monkeypatch, capsys):
    assert main(["exercise", "list"]) == 0
    listing = capsys.readouterr().out
    assert all(name in listing for name in EXERCISES) and "ch. 3" in listing

    assert main(["exercise", "show", "sampling"]) == 0
    assert "### Step 1" in capsys.readouterr().out

    monkeypatch.chdir(tmp_path)
    assert main(["exercise", "start", "sampling"]) == 0
    assert "wrote sampling.py" in capsys.readouterr().out
    assert main(["exercise", "check", "sampling"]) == 1  # the blank template: all to do
    assert "0 of 5 steps pass" in capsys.readouterr().out

    solution = str(SOLUTIONS / "sampling.py")
    assert main(["exercise", "check", "sampling", "--file", solution]) == 0
    assert "all 5 steps pass" in capsys.readouterr().out

    assert main(["exercise", "check", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("byollm exercise: error: unknown exercise 'nope'")


def test_scaling_frontier_with_gamma_of_the_wrong_sign_is_told_why(tmp_path):
    path = _broken(tmp_path, "scaling", "return k, -exponent", "return k, exponent")
    report = check("scaling", path)
    result = _result(report, "bent_frontier")
    assert result.status == FAILED and "gamma is minus its exponent" in result.message
    assert _result(report, "fit_power_law").status == OK
