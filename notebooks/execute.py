"""Execute the notebooks in place, so they are committed with their outputs; or check that the
committed outputs are still what the code prints.

    python notebooks/execute.py                      # re-execute every notebook, rewrite in place
    python notebooks/execute.py 02b_attention_step_by_step.ipynb 03_training.ipynb
    python notebooks/execute.py --check              # execute, compare, write nothing; exit 1 if stale

Run it after changing code that a notebook prints about. The test suite runs the same comparison
for every notebook (`tests/notebook_runner.py`), so CI fails when the committed outputs are stale.

How a notebook is executed (the same here and in the tests, so that outputs are reproducible):
- the kernel imports byollm from this checkout's `src/`, with a fresh, empty `BYOLLM_HOME`;
- corpora come from the shared data folder beside the checkout (`../shared/data`, or
  `$BYOLLM_SHARED_DATA`) as a download mirror; without it there is nothing to compare against,
  since the notebooks fall back to other text;
- one CPU thread (`OMP_NUM_THREADS=1`), so sums of floats add up in the same order every time;
- figures through matplotlib's inline backend (headless), so plots land in the notebook;
- no timing metadata is recorded in the cells.

What "the same outputs" means (`compare`), per code cell, in order:
- the same kinds of output (stream, result, figure), in the same order;
- stdout text and the `text/plain` of results: equal after `normalise`, which masks what changes
  from run to run by nature: memory addresses (`0x7f3a...`), temporary paths (`/tmp/tmpab12cd`),
  durations and speeds (a number followed by s, ms, µs, seconds, tokens/s, tok/s or it/s, and
  the percentage after MFU); a printed decimal number may differ by one unit in its last digit
  (`4.175` vs `4.176`), which absorbs float rounding; integers and all other text must be equal;
- in a cell tagged `timing` (cell metadata "tags"), every number is masked;
- a cell tagged `machine-dependent` prints what a trained model computes, or text that comes
  with the Python version (the `python-stdlib` corpus): its output is compared in full only
  when the notebook was executed on the same kind of machine, else only its kinds of output.
  The kind of machine (`machine_fingerprint`: Python, PyTorch, the CPU capability PyTorch
  dispatches to, native bf16) is saved in the notebook's metadata when it is executed: AVX2
  and AVX-512 kernels round differently, and 300 training steps turn that into other losses
  and other samples;
- stderr (warnings, progress bars) is not compared: it names files of the machine and changes
  with library versions;
- images: only that a figure is there (PNG bytes differ with the matplotlib version and fonts).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
from pathlib import Path

NOTEBOOKS_DIR = Path(__file__).resolve().parent
ROOT = NOTEBOOKS_DIR.parent
SHARED_DATA = Path(os.environ.get("BYOLLM_SHARED_DATA", ROOT.parent / "shared" / "data"))
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"
TIMING_TAG = "timing"
MACHINE_TAG = "machine-dependent"

_ADDRESS = re.compile(r"0x[0-9a-fA-F]{6,}")
_TEMP_PATH = re.compile(
    "(?:" + "|".join(map(re.escape, sorted({tempfile.gettempdir(), "/tmp"}))) + r")/[^\s/'\"()]+"
)
_DURATION = re.compile(
    r"(?<![\w.])\d[\d,]*(?:\.\d+)?(?=\s?(?:s|ms|µs|seconds|tokens/s|tok/s|it/s)(?![\w/]))"
)
_MFU = re.compile(r"(MFU\s+)\d+(?:\.\d+)?%")
# A number as printed: optional sign, digits with optional thousands commas, optional decimals
# and exponent. Words containing digits ("gpt2", "cl100k_base", "02b") are not numbers.
_NUMBER = re.compile(r"(?<![\w.])[-+]?\d[\d,]*(?:\.\d+)?(?:[eE][-+]?\d+)?(?![\w])")


def notebook_paths(names: list[str] | None = None) -> list[Path]:
    """notebooks/*.ipynb, or the named ones (file names or paths)."""
    if not names:
        return sorted(NOTEBOOKS_DIR.glob("*.ipynb"))
    paths = []
    for name in names:
        path = Path(name) if Path(name).exists() else NOTEBOOKS_DIR / Path(name).name
        if not path.exists():
            raise SystemExit(f"no notebook {name} (looked in {NOTEBOOKS_DIR})")
        paths.append(path)
    return paths


def kernel_environment(home: Path) -> dict[str, str]:
    """The variables a notebook's kernel runs with (see the module docstring)."""
    env = {
        "PYTHONPATH": os.pathsep.join([str(ROOT / "src"), os.environ.get("PYTHONPATH", "")]),
        "BYOLLM_HOME": str(home),
        "OMP_NUM_THREADS": "1",
        "MPLBACKEND": INLINE_BACKEND,
        "PYTHONHASHSEED": "0",
    }
    if SHARED_DATA.exists():
        env["BYOLLM_MIRROR"] = f"file://{SHARED_DATA}"
    return env


def machine_fingerprint() -> str:
    """What a notebook's outputs may depend on besides its code and data (module docstring)."""
    import platform

    import torch

    sys.path.insert(0, str(ROOT / "src"))
    from byollm.device import cpu_supports_bf16

    return (
        f"python {platform.python_version()}, torch {torch.__version__}, "
        f"cpu {torch.backends.cpu.get_cpu_capability()}, native bf16 {cpu_supports_bf16()}"
    )


def execute(path: Path, *, cwd: Path | None = None, timeout: int = 600, home: Path | None = None):
    """Run the notebook at `path` top to bottom in a new kernel; return the executed notebook.

    Raises AssertionError when a cell has no id (nbformat would quietly invent one on reading)
    or when a cell raises."""
    import nbclient
    import nbformat

    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    missing = [i for i, cell in enumerate(cells) if not cell.get("id")]
    assert not missing, f"{path.name}: cells {missing} have no id (write it with nbformat)"
    notebook = nbformat.read(path, as_version=4)
    with tempfile.TemporaryDirectory(prefix="byollm-nb-home-") as fresh_home:
        env = {**os.environ, **kernel_environment(home or Path(fresh_home))}
        client = nbclient.NotebookClient(
            notebook,
            kernel_name="python3",
            timeout=timeout,
            record_timing=False,
            resources={"metadata": {"path": str(cwd or path.parent)}},
        )
        client.execute(env=env)
    errors = [
        o
        for cell in notebook.cells
        if cell.cell_type == "code"
        for o in cell.outputs
        if o.get("output_type") == "error"
    ]
    assert not errors, f"{path.name}: {errors[0].get('ename')}: {errors[0].get('evalue')}"
    notebook.metadata.setdefault("byollm", {})["executed_on"] = machine_fingerprint()
    return notebook


def write(notebook, path: Path) -> None:
    """Save an executed notebook without the timestamps an earlier run may have left."""
    import nbformat

    for cell in notebook.cells:
        cell.metadata.pop("execution", None)
    nbformat.write(notebook, path)


# ---- comparing outputs --------------------------------------------------------------------------


def normalise(text: str, *, timing: bool = False) -> str:
    """Mask what changes from run to run (see the module docstring); every number if `timing`."""
    text = _ADDRESS.sub("0x...", text)
    text = _TEMP_PATH.sub("<tmp>", text)
    text = _DURATION.sub("#", text)
    text = _MFU.sub(r"\1#%", text)
    if timing:
        text = _NUMBER.sub("#", text)
    return text


def cell_outputs(cell) -> list[tuple[str, str]]:
    """A code cell's outputs as (kind, text): stream and text/plain text, images as a marker."""
    timing = TIMING_TAG in cell.get("metadata", {}).get("tags", [])
    found = []
    for output in cell.get("outputs", []):
        kind = output.get("output_type")
        if kind == "stream" and output.get("name") == "stderr":
            continue
        if kind == "stream":
            found.append((f"stream:{output.get('name')}", normalise(output["text"], timing=timing)))
        elif kind in ("execute_result", "display_data"):
            data = output.get("data", {})
            if "image/png" in data or "image/svg+xml" in data:
                found.append(("image", ""))
            elif "text/plain" in data:
                found.append(("text/plain", normalise(data["text/plain"], timing=timing)))
        elif kind == "error":
            found.append(("error", output.get("evalue", "")))
    return _merge_streams(found)


def _merge_streams(outputs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Join consecutive pieces of the same stream: how print() output is cut into messages
    depends on timing, not on what was printed."""
    merged: list[tuple[str, str]] = []
    for kind, text in outputs:
        if merged and kind.startswith("stream:") and merged[-1][0] == kind:
            merged[-1] = (kind, merged[-1][1] + text)
        else:
            merged.append((kind, text))
    return merged


def _numbers_close(committed: str, executed: str) -> bool:
    """Equal numbers, or decimals that differ by at most one unit in the last printed digit."""
    if committed == executed:
        return True
    if "." not in committed or "." not in executed:
        return False  # integers are compared exactly
    try:
        a, b = float(committed.replace(",", "")), float(executed.replace(",", ""))
    except ValueError:
        return False
    mantissa = committed.lower().split("e")[0]
    exponent = int(committed.lower().split("e")[1]) if "e" in committed.lower() else 0
    decimals = len(mantissa.split(".")[1])
    return abs(a - b) <= 1.01 * 10.0 ** (exponent - decimals)


def texts_match(committed: str, executed: str) -> bool:
    """The same text, numbers within one unit of their last digit."""
    if committed == executed:
        return True
    words_a, numbers_a = _NUMBER.split(committed), _NUMBER.findall(committed)
    words_b, numbers_b = _NUMBER.split(executed), _NUMBER.findall(executed)
    return (
        words_a == words_b
        and len(numbers_a) == len(numbers_b)
        and all(_numbers_close(a, b) for a, b in zip(numbers_a, numbers_b))
    )


def executed_on(notebook) -> str | None:
    return notebook.metadata.get("byollm", {}).get("executed_on")


def compare(committed, executed) -> list[str]:
    """What differs between two versions of one notebook, one message per cell; [] if none."""
    problems = []
    same_machine = executed_on(committed) == executed_on(executed)
    old_cells = [c for c in committed.cells if c.cell_type == "code"]
    new_cells = [c for c in executed.cells if c.cell_type == "code"]
    if [c.source for c in old_cells] != [c.source for c in new_cells]:
        return ["the code cells differ (compare a notebook with its own executed copy)"]
    for number, (old, new) in enumerate(zip(old_cells, new_cells), start=1):
        before, after = cell_outputs(old), cell_outputs(new)
        if [k for k, _ in before] != [k for k, _ in after]:
            problems.append(
                f"code cell {number} ({_first_line(old)}): committed outputs "
                f"{[k for k, _ in before]}, executed {[k for k, _ in after]}"
            )
            continue
        if not same_machine and MACHINE_TAG in old.get("metadata", {}).get("tags", []):
            continue  # executed on another kind of machine: only the kinds of output compare
        for (kind, old_text), (_, new_text) in zip(before, after):
            if not texts_match(old_text, new_text):
                problems.append(
                    f"code cell {number} ({_first_line(old)}), {kind}:\n"
                    + _first_difference(old_text, new_text)
                )
                break
    return problems


def _first_line(cell) -> str:
    line = next((s for s in cell.source.splitlines() if s.strip()), "")
    return line[:60]


def _first_difference(old: str, new: str) -> str:
    old_lines, new_lines = old.splitlines(), new.splitlines()
    for i in range(max(len(old_lines), len(new_lines))):
        a = old_lines[i] if i < len(old_lines) else "<no line>"
        b = new_lines[i] if i < len(new_lines) else "<no line>"
        if not texts_match(a, b):
            return (
                f"    line {i + 1} committed: {a[:200]!r}\n    line {i + 1} executed:  {b[:200]!r}"
            )
    return "    (the line structure differs)"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("notebooks", nargs="*", help="file names in notebooks/ (default: all)")
    parser.add_argument(
        "--check", action="store_true", help="compare with the committed outputs; write nothing"
    )
    parser.add_argument("--timeout", type=int, default=900, help="seconds per cell")
    args = parser.parse_args(argv)
    if not SHARED_DATA.exists():
        print(
            f"warning: no shared data folder at {SHARED_DATA}: notebooks fall back to other text, "
            "and their outputs will not match CI's (set BYOLLM_SHARED_DATA)",
            file=sys.stderr,
        )
    import time

    import nbformat

    stale = 0
    for path in notebook_paths(args.notebooks):
        start = time.perf_counter()
        executed = execute(path, timeout=args.timeout)
        seconds = time.perf_counter() - start
        if args.check:
            committed = nbformat.read(path, as_version=4)
            problems = compare(committed, executed)
            stale += bool(problems)
            print(f"{path.name}: {'STALE' if problems else 'up to date'} ({seconds:.0f} s)")
            if executed_on(committed) != executed_on(executed):
                print(
                    f"  (committed on {executed_on(committed)}; here {executed_on(executed)}: "
                    f"cells tagged {MACHINE_TAG} were compared by their kinds of output only)"
                )
            for problem in problems:
                print("  " + problem)
        else:
            write(executed, path)
            print(f"{path.name}: executed and written ({seconds:.0f} s)")
    return 1 if stale else 0


if __name__ == "__main__":
    sys.exit(main())
