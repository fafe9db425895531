"""Named benchmark tasks, and running one by name or from a file.

    >>> result = run_task(model, tokenizer, "blimp")            # downloaded once, verified  # doctest: +SKIP
    >>> result = run_task(model, tokenizer, "my_pairs.jsonl")   # any file in a known format  # doctest: +SKIP
    >>> print(format_result(result))  # doctest: +SKIP

Design choices:
- **A task is a file plus a kind.** `TASKS` maps a name to the registered download holding it
  (`byollm.corpora`: URL, sha256, size, licence, mirror path), the members to read when it
  is an archive, and the kind of scoring: minimal pairs, multiple choice or cloze. Downloads go
  through the same verified, mirrorable path as every corpus (`--mirror`, `$BYOLLM_MIRROR`).
- **A file's kind is told by its fields** (`detect_kind`): `sentence_good` -> minimal pairs;
  `choices`, `label`, `endings`, `answerKey` or `goal` -> multiple choice; else `text`,
  `target` or `context` -> cloze.
- **A cap (`limit`) takes items spread over the whole file** (`records.spread`), so a quick
  BLiMP run still covers all 67 paradigms.
- **During training** (`eval_tasks = "blimp:1000"` in the train config), `training_metrics`
  evaluates the tasks at every evaluation and returns flat numbers (`blimp_acc`) for
  metrics.jsonl and the loss plot. Task files are read once per process.
"""

from __future__ import annotations

import difflib
import sys
from dataclasses import dataclass
from pathlib import Path

from byollm.errors import ByollmError
from byollm.evaluate.tasks import cloze, code, minimal_pairs, multiple_choice
from byollm.evaluate.tasks.records import Record, read_lines, read_records, spread
from byollm.evaluate.tasks.scoring import ScoringOptions

EVALUATE = {
    "minimal_pairs": minimal_pairs.evaluate_minimal_pairs,
    "multiple_choice": multiple_choice.evaluate_multiple_choice,
    "cloze": cloze.evaluate_cloze,
    "code": code.evaluate_code,
}
FORMAT = {
    "minimal_pairs": minimal_pairs.format_minimal_pairs,
    "multiple_choice": multiple_choice.format_multiple_choice,
    "cloze": cloze.format_cloze,
    "code": code.format_code,
}
HEADLINE = {"minimal_pairs": "acc", "multiple_choice": "acc_norm", "cloze": "acc", "code": "acc"}
TRAINING_LIMIT = 1000  # items per task at each training evaluation, unless told otherwise


@dataclass(frozen=True)
class TaskSpec:
    name: str
    kind: str  # minimal_pairs | multiple_choice | cloze | code
    asset: str  # the registered download (byollm.corpora.CORPORA) holding the items; for
    # `code`, the corpus whose validation split holds the held-out modules
    description: str
    members: str = "*.jsonl"  # which files of an archive hold the items (a glob)
    labels: str | None = None  # a separate label list in the archive (PIQA)


TASKS: dict[str, TaskSpec] = {
    spec.name: spec
    for spec in [
        TaskSpec(
            "blimp",
            "minimal_pairs",
            "blimp",
            "BLiMP, 67,000 grammatical minimal pairs; chance 0.5",
            members="data/*.jsonl",
        ),
        TaskSpec(
            "hellaswag",
            "multiple_choice",
            "hellaswag-val",
            "HellaSwag validation, 10,042 sentence endings, 4 choices",
        ),
        TaskSpec(
            "arc-easy",
            "multiple_choice",
            "arc",
            "ARC-Easy test, 2,376 science questions",
            members="ARC-Easy/ARC-Easy-Test.jsonl",
        ),
        TaskSpec(
            "arc-challenge",
            "multiple_choice",
            "arc",
            "ARC-Challenge test, 1,172 harder science questions",
            members="ARC-Challenge/ARC-Challenge-Test.jsonl",
        ),
        TaskSpec(
            "piqa",
            "multiple_choice",
            "piqa",
            "PIQA dev, 1,838 goals with 2 solutions",
            members="physicaliqa-train-dev/dev.jsonl",
            labels="physicaliqa-train-dev/dev-labels.lst",
        ),
        TaskSpec(
            "lambada",
            "cloze",
            "lambada-openai",
            "LAMBADA (OpenAI's version), 5,153 passages: predict the last word",
        ),
        TaskSpec(
            "python-code",
            "code",
            "python-stdlib",
            "held-out python-stdlib modules: bits per byte, next-line exact match, share of "
            "sampled function bodies that parse",
        ),
    ]
}


def load_task(
    task: str, *, mirror: str | None = None, progress: bool = True
) -> tuple[str, str, list]:
    """(kind, name, items) for a registered task name or a task file (see `detect_kind`)."""
    spec = TASKS.get(task)
    if spec is not None and spec.kind == "code":  # built offline, from the corpus's val split
        return spec.kind, spec.name, code.held_out_modules(spec.asset)
    if spec is not None:
        from byollm.corpora import get_asset

        path = get_asset(spec.asset, mirror=mirror, progress=progress)
        records = read_records(path, spec.members)
        labels = read_lines(path, spec.labels) if spec.labels else None
        return spec.kind, spec.name, _read_items(spec.kind, records, labels)
    path = check_task_name(task)
    records = read_records(path)
    kind = detect_kind(records[0])
    return kind, path.stem, _read_items(kind, records, None)


def check_task_name(task: str) -> Path | None:
    """None for a registered task, the path for an existing file; else one clear error."""
    if task in TASKS:
        return None
    path = Path(task).expanduser()
    if not path.exists():
        close = difflib.get_close_matches(task, list(TASKS), n=1, cutoff=0.5)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise ByollmError(
            f"unknown task {task!r}; {hint}tasks: {', '.join(TASKS)} (or a path to a .jsonl "
            "file, a folder of them, or a zip)"
        )
    return path


def detect_kind(record: Record) -> str:
    """The kind of task a file holds, from the fields of its first record."""
    data = record.data
    if "sentence_good" in data or "sentence_bad" in data:
        return "minimal_pairs"
    if any(key in data for key in multiple_choice.DETECT):
        return "multiple_choice"
    if "text" in data or "target" in data or "context" in data:
        return "cloze"
    raise ByollmError(
        f"{record.where}: cannot tell which task this line is for; a line holds one of: "
        f"{minimal_pairs.SHAPE}; {cloze.SHAPE}; or multiple choice, "
        + "; ".join(multiple_choice.SHAPES.values())
    )


def run_task(
    model,
    tokenizer,
    task: str,
    *,
    limit: int | None = None,
    mirror: str | None = None,
    options: ScoringOptions | None = None,
    log=None,
) -> dict:
    """Evaluate `model` on a task (name or file); at most `limit` items, spread over the file.

    `log` receives one-line notes (items skipped, contexts truncated); default: stderr.
    """
    log = log or _to_stderr
    options = options or ScoringOptions()
    kind, name, items = load_task(task, mirror=mirror, progress=options.progress)
    result = _evaluate(kind, model, tokenizer, items, limit, task=name, options=options, log=log)
    result["dtype"] = options.dtype
    if limit is not None:
        result["limit"] = limit
    return result


def format_result(result: dict) -> str:
    """The result as a few readable lines."""
    return FORMAT[result["kind"]](result)


# --- during training ---------------------------------------------------------------------------


def parse_eval_tasks(spec: str) -> list[tuple[str, int | None]]:
    """`"blimp:500,lambada"` -> [("blimp", 500), ("lambada", 1000)]; ':all' means no cap.

    Names must be registered tasks or existing files, so a typo fails before training starts.
    """
    tasks = []
    for part in filter(None, (p.strip() for p in spec.split(","))):
        name, _, cap = part.rpartition(":") if ":" in part else (part, "", "")
        if cap and not (cap == "all" or cap.isdigit() and int(cap) > 0):
            raise ByollmError(
                f"eval_tasks: {part!r} has a bad item cap {cap!r}; write NAME, NAME:N (N > 0) "
                "or NAME:all, e.g. 'blimp:1000'"
            )
        try:
            check_task_name(name)
        except ByollmError as e:
            raise ByollmError(f"eval_tasks: {e}") from None
        limit = None if cap == "all" else int(cap) if cap else TRAINING_LIMIT
        tasks.append((name, limit))
    return tasks


_training_tasks: dict[tuple, list[tuple[str, str, list, int | None]]] = {}
_notes_seen: set[str] = set()


def training_metrics(model, tokenizer, spec: str, *, mirror: str | None = None, log=print) -> dict:
    """{"blimp_acc": 0.63, ...}: the headline metric of each task of `spec` (parse_eval_tasks).

    Called at every evaluation of a training run: task files are read once per process, each
    distinct note is logged once, and the model is left in the mode it was in.
    """

    def log_once(line: str) -> None:
        if line not in _notes_seen:
            _notes_seen.add(line)
            log(f"byollm: {line}")

    if (spec, mirror) not in _training_tasks:
        loaded = []
        for task, limit in parse_eval_tasks(spec):
            kind, name, items = load_task(task, mirror=mirror, progress=False)
            loaded.append((kind, name, items, limit))
        _training_tasks[spec, mirror] = loaded
    metrics = {}
    for kind, name, items, limit in _training_tasks[spec, mirror]:
        result = _evaluate(kind, model, tokenizer, items, limit, task=name, log=log_once)
        metrics[f"{name}_{HEADLINE[kind]}"] = result[HEADLINE[kind]]
    return metrics


def _evaluate(kind: str, model, tokenizer, items: list, limit: int | None, **kwargs) -> dict:
    """EVALUATE[kind] on at most `limit` items, spread over the file. A code task's items are
    whole modules, and there `limit` caps the lines and the functions asked instead."""
    if kind == "code":
        if limit is not None:
            kwargs.update(next_lines=limit, functions=limit)
        return code.evaluate_code(model, tokenizer, items, **kwargs)
    return EVALUATE[kind](model, tokenizer, spread(items, limit), **kwargs)


def _read_items(kind: str, records: list[Record], labels: list[str] | None) -> list:
    if kind == "minimal_pairs":
        return minimal_pairs.read_minimal_pairs(records)
    if kind == "cloze":
        return cloze.read_cloze_items(records)
    return multiple_choice.read_choice_items(records, labels)


def _to_stderr(line: str) -> None:
    print(f"byollm: {line}", file=sys.stderr)
