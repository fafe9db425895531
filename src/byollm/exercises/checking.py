"""How a learner's file is checked: load it, run the exercise's steps, report what differs.

An exercise's checker is a list of `Step`s. Each step calls some of the learner's functions on
small, fixed inputs and compares the answers with byollm's own implementation. A step passes
silently or raises `StepFailed` with the call, the expected and the received value, and a hint.

    >>> from types import SimpleNamespace
    >>> steps = [Step("double", lambda m: expect_equal("double(2)", m.double(2), 4))]
    >>> report = run_steps("demo", Path("mine.py"), SimpleNamespace(double=lambda x: 2 * x), steps)
    >>> report.passed, report.format().splitlines()[-1]
    (True, "all 1 steps pass: your code matches byollm's.")

Design choices:
- **Every step runs**, unless a step it `needs` did not pass: the learner sees every problem at
  once, and no cascade of failures caused by one early mistake.
- **A function that still raises NotImplementedError is "to do"**, not a failure: a blank
  template reads as a list of what is left, not as a wall of errors.
- **Errors in the learner's code are reported, not raised**: the exception, its message and the
  line of the learner's file it came from. A file that cannot even be imported (syntax error,
  missing file) is a user mistake: `ByollmError`, one line, exit status 2.
- Comparisons go through `expect_equal` and `expect_close`, which print the call, what byollm
  gives and what the learner's code gives, so every failure message has the same shape.
"""

from __future__ import annotations

import importlib.util
import itertools
import linecache
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from byollm.errors import ByollmError

OK, FAILED, TODO, SKIPPED = "ok", "FAILED", "to do", "skipped"
_module_counter = itertools.count()


class StepFailed(Exception):
    """The learner's answer differs from byollm's; the message says how and hints why."""


@dataclass
class Step:
    """One check: `run(module)` raises StepFailed (or anything else) when the answer is wrong."""

    name: str
    run: Callable[[ModuleType], None]
    needs: tuple[str, ...] = ()


@dataclass
class StepResult:
    name: str
    status: str  # OK, FAILED, TODO or SKIPPED
    message: str = ""


@dataclass
class Report:
    exercise: str
    path: Path
    results: list[StepResult] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(r.status == OK for r in self.results)

    def format(self) -> str:
        """The report as the CLI prints it."""
        lines = [f"exercise {self.exercise}: checking {self.path} against byollm"]
        width = max(len(r.name) for r in self.results)
        for number, result in enumerate(self.results, start=1):
            lines.append(f"  step {number}  {result.name:<{width}}  {result.status}")
            lines += ["      " + line for line in result.message.splitlines()]
        done = sum(r.status == OK for r in self.results)
        if self.passed:
            lines.append(f"all {done} steps pass: your code matches byollm's.")
        else:
            first = next(i for i, r in enumerate(self.results, 1) if r.status != OK)
            lines.append(
                f"{done} of {len(self.results)} steps pass. Next: step {first} "
                f"({self.results[first - 1].name}); the statement: "
                f"`byollm exercise show {self.exercise}`."
            )
        return "\n".join(lines)


def load_learner_module(path: str | Path) -> ModuleType:
    """Import the learner's file under a fresh module name (so two checks never share one)."""
    path = Path(path)
    if not path.is_file():
        raise ByollmError(f"no file {path}")
    name = f"byollm_exercise_{next(_module_counter)}_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except SyntaxError as e:
        raise ByollmError(f"{path}, line {e.lineno}: syntax error: {e.msg}") from None
    except Exception as e:  # the learner's top-level code failed: say where, in one line
        raise ByollmError(
            f"{path} failed to import: {type(e).__name__}: {e}{_where(e, path)}"
        ) from None
    return module


def run_steps(exercise: str, path: Path, module: ModuleType, steps: list[Step]) -> Report:
    """Run every step on the learner's module; see the module docstring for the rules."""
    report = Report(exercise, path)
    status_of: dict[str, str] = {}
    for step in steps:
        blocked = [n for n in step.needs if status_of.get(n) != OK]
        if blocked:
            result = StepResult(step.name, SKIPPED, f"needs {', '.join(blocked)} first")
        else:
            result = _run_one(step, module, path)
        status_of[step.name] = result.status
        report.results.append(result)
    return report


def _run_one(step: Step, module: ModuleType, path: Path) -> StepResult:
    try:
        step.run(module)
    except StepFailed as e:
        return StepResult(step.name, FAILED, str(e))
    except NotImplementedError as e:
        function = _learner_function_name(e, path)
        what = f"`{function}` still raises" if function else "your code still raises"
        return StepResult(step.name, TODO, f"{what} NotImplementedError: fill it in")
    except Exception as e:  # a bug in the learner's code (or a wrong signature)
        return StepResult(
            step.name, FAILED, f"your code raised {type(e).__name__}: {e}{_where(e, path)}"
        )
    return StepResult(step.name, OK)


def _learner_frames(error: BaseException, path: Path) -> list[tuple[str, int, str]]:
    """(function, line number, source line) of each traceback frame in the learner's file."""
    resolved = str(path.resolve())
    frames = []
    tb = error.__traceback__
    while tb is not None:
        code = tb.tb_frame.f_code
        if str(Path(code.co_filename).resolve()) == resolved:
            name = getattr(code, "co_qualname", code.co_name)  # Python 3.11+: Class.method
            line = linecache.getline(code.co_filename, tb.tb_lineno).strip()
            frames.append((name, tb.tb_lineno, line))
        tb = tb.tb_next
    return frames


def _where(error: BaseException, path: Path) -> str:
    frames = _learner_frames(error, path)
    if not frames:
        return ""
    name, lineno, line = frames[-1]
    return f"\n(in {name}, {path.name} line {lineno}: {line})"


def _learner_function_name(error: BaseException, path: Path) -> str | None:
    frames = _learner_frames(error, path)
    return frames[-1][0] if frames else None


# ---- what the steps use ---------------------------------------------------------------------


def learner(module: ModuleType, name: str):
    """The learner's function or class `name`, or a StepFailed saying it is missing."""
    if not hasattr(module, name):
        raise StepFailed(f"your file defines no `{name}` (keep the names of the template)")
    return getattr(module, name)


def show(value, limit: int = 300) -> str:
    """A short, readable repr: tensors as shape, dtype and (rounded) values; long reprs cut.

    >>> import torch
    >>> show(torch.tensor([[1.0, 2.5]]))
    'tensor (1, 2) float32 [[1.0, 2.5]]'
    """
    import torch

    if isinstance(value, torch.Tensor):
        values = value.detach().cpu()
        if values.is_floating_point():
            values = values.float()
        shown = values.flatten()[:24] if values.numel() > 24 else values
        text = f"tensor {tuple(value.shape)} {str(value.dtype).removeprefix('torch.')} "
        text += repr(_rounded(shown.tolist()))
        if values.numel() > 24:
            text += f" (first 24 of {values.numel()} values)"
    else:
        text = repr(value)
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _rounded(values):
    if isinstance(values, list):
        return [_rounded(v) for v in values]
    return round(values, 4) if isinstance(values, float) else values


def expect_equal(call: str, got, expected, hint: str = "") -> None:
    """StepFailed unless `got == expected` (exactly)."""
    if got != expected:
        _fail(call, got, expected, hint)


def expect_close(call: str, got, expected, hint: str = "", *, atol=1e-5, rtol=1e-4) -> None:
    """StepFailed unless `got` is a tensor of `expected`'s shape with close values."""
    import torch

    if not isinstance(got, torch.Tensor):
        _fail(call, got, expected, f"expected a torch.Tensor, got a {type(got).__name__}. {hint}")
    if got.shape != expected.shape:
        raise StepFailed(
            f"{call}\n  expected shape {tuple(expected.shape)}\n  got shape      "
            f"{tuple(got.shape)}" + (f"\nhint: {hint}" if hint else "")
        )
    got_values, expected_values = got.detach().float(), expected.detach().float()
    if not torch.allclose(got_values, expected_values, atol=atol, rtol=rtol, equal_nan=True):
        inf = float("inf")
        difference = (got_values - expected_values).abs().nan_to_num(nan=inf, posinf=inf)
        # -inf == -inf gives nan above; those positions agree
        same_inf = torch.isinf(got_values) & (got_values == expected_values)
        difference = difference.masked_fill(same_inf, 0.0)
        where = tuple(int(i) for i in torch.unravel_index(difference.argmax(), difference.shape))
        raise StepFailed(
            f"{call}\n  expected {show(expected)}\n  got      {show(got)}\n"
            f"  largest difference {difference.max().item():.3g} at index {where}: expected "
            f"{expected_values[where].item():.6g}, got {got_values[where].item():.6g}"
            + (f"\nhint: {hint}" if hint else "")
        )


def expect_numbers(call: str, got, expected, hint: str = "", *, rtol=1e-6) -> None:
    """StepFailed unless `got` is a number, or a tuple of numbers, close to `expected` (a float
    or a tuple of floats): for the exercises whose answers are a few plain numbers."""
    import math
    import numbers

    values = tuple(got) if isinstance(got, tuple | list) else (got,)
    wanted = expected if isinstance(expected, tuple) else (expected,)
    close = len(values) == len(wanted) and all(
        isinstance(v, numbers.Real) and math.isclose(v, w, rel_tol=rtol, abs_tol=1e-12)
        for v, w in zip(values, wanted)
    )
    if not close:
        _fail(call, got, expected, hint)


def _fail(call: str, got, expected, hint: str) -> None:
    raise StepFailed(
        f"{call}\n  expected {show(expected)}\n  got      {show(got)}"
        + (f"\nhint: {hint}" if hint else "")
    )
