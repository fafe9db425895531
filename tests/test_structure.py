"""The stage order of `byollm/__init__.py`, true in code: every import goes down, no file cycles.

Every `import` in src/byollm, at any depth (also inside functions, where a late import would
otherwise hide), is read with `ast` and checked against `byollm.STAGE_ORDER`: a module may import
its own stage, the stages on earlier rungs and the plumbing modules (`byollm.PLUMBING`), never a
later stage nor another stage of its own rung. The file-level import graph must have no cycle.
"""

from __future__ import annotations

import ast
import functools
import re
import shutil
from pathlib import Path

import pytest

import byollm

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"

# Imports that break the order today, each with the change that removes it. An entry that no
# longer occurs fails the test too, so the list only shrinks: delete the entry with the import.
KNOWN_VIOLATIONS: dict[tuple[str, str], str] = {}


# --- the checker ----------------------------------------------------------------------------


def parse_order(order: str) -> list[list[str]]:
    """'a -> b | c -> d' -> [['a'], ['b', 'c'], ['d']]: rungs, lowest first."""
    return [[stage.strip() for stage in rung.split("|")] for rung in order.split("->")]


def module_files(src: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file under src/byollm."""
    modules = {}
    for path in sorted((src / "byollm").rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules[".".join(parts)] = path
    return modules


@functools.cache
def imports_in(source: str) -> tuple[tuple[int, str, tuple[str, ...]], ...]:
    """(level, module, names) of every import statement in `source`, at any depth: `import a.b`
    is (0, 'a.b', ()), `from ..a import b, c` is (2, 'a', ('b', 'c')). Cached by text, so
    checking a copy with one changed file parses one file."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(0, alias.name, ()) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.level, node.module or "", tuple(a.name for a in node.names)))
    return tuple(found)


def import_graph(src: Path) -> dict[str, set[str]]:
    """Module -> the byollm modules it imports anywhere in its file (functions included)."""
    modules = module_files(src)
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        targets = set()
        for level, module, names in imports_in(path.read_text(encoding="utf-8")):
            if level:  # relative: from . import x, from ..a import b
                anchor = package.split(".")[: len(package.split(".")) - level + 1]
                module = ".".join([*anchor, *([module] if module else [])])
            if not names:
                targets.add(module)
            for imported in names:  # `from byollm.data import tokens` imports a module
                submodule = f"{module}.{imported}"
                targets.add(submodule if submodule in modules else module)
        graph[name] = {t for t in targets if t in modules and t != name}
    return graph


def rung_of(module: str, rungs: list[list[str]], plumbing: tuple[str, ...]) -> tuple[int, str]:
    """(rung index, stage) of a module: plumbing is rung -1, the command line is above all."""
    top = module.split(".")[1] if "." in module else ""
    if top == "" or top in plumbing:
        return -1, "plumbing"
    if top in ("cli", "__main__"):
        return len(rungs), "cli"
    for index, rung in enumerate(rungs):
        if top in rung:
            return index, top
    raise AssertionError(
        f"{module} belongs to no stage: add {top!r} to byollm.STAGE_ORDER (a stage) or to "
        "byollm.PLUMBING (a module every stage may use)"
    )


def order_violations(graph, order: str, plumbing) -> dict[tuple[str, str], str]:
    """(importer, imported) -> why, for every import of a later stage or of a rung-mate."""
    rungs = parse_order(order)
    found = {}
    for importer, targets in graph.items():
        rung, stage = rung_of(importer, rungs, plumbing)
        for target in targets:
            target_rung, target_stage = rung_of(target, rungs, plumbing)
            if target_stage == stage or target_rung < rung:
                continue
            later = "a later stage" if target_rung > rung else "a stage on the same rung"
            found[importer, target] = f"{stage} imports {target_stage}, {later}"
    return found


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every group of modules that import each other, directly or around a loop (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    groups: list[list[str]] = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in sorted(graph.get(module, ())):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            group = []
            while True:
                member = stack.pop()
                group.append(member)
                if member == module:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return groups


# --- the package as it is -------------------------------------------------------------------


def test_every_import_goes_down_the_stage_order():
    found = order_violations(import_graph(SRC), byollm.STAGE_ORDER, byollm.PLUMBING)
    new = {pair: why for pair, why in found.items() if pair not in KNOWN_VIOLATIONS}
    assert not new, "imports against the stage order:\n" + "\n".join(
        f"  {a} -> {b}: {why}" for (a, b), why in sorted(new.items())
    )
    gone = sorted(set(KNOWN_VIOLATIONS) - set(found))
    assert not gone, f"fixed, now delete them from KNOWN_VIOLATIONS: {gone}"


def test_no_file_imports_itself_around_a_loop():
    assert import_cycles(import_graph(SRC)) == []


def test_every_module_belongs_to_a_stage():
    rungs = parse_order(byollm.STAGE_ORDER)
    stages = {rung_of(name, rungs, byollm.PLUMBING)[1] for name in module_files(SRC)}
    assert {"plumbing", "corpora", "tokenizer", "data", "model", "cli"} <= stages


@pytest.mark.parametrize("document", ["README.md", "CONTRIBUTING.md", "byollm/__init__.py"])
def test_the_docs_state_the_one_order(document):
    text = byollm.__doc__ if document.endswith(".py") else (ROOT / document).read_text()
    assert " ".join(byollm.STAGE_ORDER.split()) in " ".join(text.split())
    # ... and name every plumbing module, so a reader knows all that any stage may import
    missing = [m for m in byollm.PLUMBING if not re.search(rf"\b{m}\b", text)]
    assert not missing, f"{document} does not name the plumbing modules {missing}"


def test_plumbing_is_every_top_level_module():
    """A new top-level file is plumbing (or the command line) by decision, never by accident."""
    top = {path.stem for path in (SRC / "byollm").glob("*.py")} - {"__init__", "__main__", "cli"}
    assert top == set(byollm.PLUMBING)


# --- the checker catches what it should -----------------------------------------------------


@pytest.fixture(scope="module")
def copy_of_src(tmp_path_factory) -> Path:
    copy = tmp_path_factory.mktemp("src")
    shutil.copytree(SRC / "byollm", copy / "byollm")
    return copy


@pytest.mark.parametrize(
    ("file", "line", "importer", "imported"),
    [
        # downwards is fine, upwards is not: the corpus registry reaching for the tokenizer
        (
            "corpora/registry.py",
            "from byollm.tokenizer import load_tokenizer",
            "byollm.corpora.registry",
            "byollm.tokenizer",
        ),
        # hidden in a function, where a late import would dodge a top-level check
        (
            "tokenizer/bpe.py",
            "def f():\n    from byollm.data import tokens",
            "byollm.tokenizer.bpe",
            "byollm.data.tokens",
        ),
        # stages on one rung do not import each other
        (
            "generate/engine.py",
            "def f():\n    import byollm.evaluate.perplexity",
            "byollm.generate.engine",
            "byollm.evaluate.perplexity",
        ),
        # plumbing is below every stage
        (
            "paths.py",
            "def f():\n    from byollm.model import checkpoint",
            "byollm.paths",
            "byollm.model.checkpoint",
        ),
        # a stage that does not exist yet keeps its place in the order
        ("model/gpt.py", "from byollm.serve import app", "byollm.model.gpt", "byollm.serve.app"),
    ],
)
def test_a_planted_upward_import_is_caught(copy_of_src, file, line, importer, imported):
    def violations():
        return order_violations(import_graph(copy_of_src), byollm.STAGE_ORDER, byollm.PLUMBING)

    path = copy_of_src / "byollm" / file
    original = path.read_text()
    target = copy_of_src / (imported.replace(".", "/") + ".py")
    made = not target.exists() and not target.with_suffix("").is_dir()
    try:
        if made:  # e.g. byollm/serve/app.py, a stage still to be built
            target.parent.mkdir(exist_ok=True)
            (target.parent / "__init__.py").touch()
            target.write_text("")
        assert (importer, imported) not in violations()
        path.write_text(original + "\n\n" + line + "\n")
        assert (importer, imported) in violations()
    finally:
        path.write_text(original)
        if made:
            shutil.rmtree(target.parent)


def test_a_planted_cycle_is_caught(copy_of_src):
    path = copy_of_src / "byollm" / "tokenizer" / "char.py"
    original = path.read_text()
    try:  # char.py <- specs.py already; this closes the loop from inside a function
        path.write_text(original + "\n\ndef f():\n    from byollm.tokenizer.specs import KINDS\n")
        assert ["byollm.tokenizer.char", "byollm.tokenizer.specs"] in import_cycles(
            import_graph(copy_of_src)
        )
    finally:
        path.write_text(original)


def test_order_parsing_and_rungs():
    rungs = parse_order("a -> b | c -> d")
    assert rungs == [["a"], ["b", "c"], ["d"]]
    assert rung_of("byollm.c.x", rungs, ("errors",)) == (1, "c")
    assert rung_of("byollm.errors", rungs, ("errors",)) == (-1, "plumbing")
    assert rung_of("byollm", rungs, ("errors",)) == (-1, "plumbing")
    assert rung_of("byollm.cli", rungs, ("errors",)) == (3, "cli")
    with pytest.raises(AssertionError, match="belongs to no stage"):
        rung_of("byollm.zzz", rungs, ("errors",))
