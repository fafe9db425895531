"""Benchmark tasks, scored the way the field scores them (`byollm eval --task NAME|FILE`).

    >>> from byollm.evaluate.tasks import run_task, format_result  # doctest: +SKIP
    >>> print(format_result(run_task(model, tokenizer, "blimp")))  # doctest: +SKIP
    blimp: accuracy 0.612 over 67,000 pairs (chance 0.5) in 95.0 s (705 pairs/s)

Three kinds of task, one module each, all built on one computation (`scoring.py`: the
log-likelihood of continuations, batched, with each shared prompt computed once):

- `minimal_pairs.py`: BLiMP. Is the grammatical sentence the more probable one?
- `multiple_choice.py`: HellaSwag, ARC, PIQA, any JSONL of context, choices and label;
  `acc`, `acc_norm` (lm-evaluation-harness) and `acc_per_token` (nanochat's CORE).
- `cloze.py`: LAMBADA. Does greedy decoding reproduce the passage's last word exactly?

`registry.py` names the tasks and their downloads; `records.py` reads task files (JSONL, folders,
zip archives) and names the file and line of every bad item.
"""

from byollm.evaluate.tasks.registry import (
    TASKS,
    check_task_name,
    format_result,
    load_task,
    parse_eval_tasks,
    run_task,
    training_metrics,
)
from byollm.evaluate.tasks.scoring import Request, Score, ScoringOptions, score_requests

__all__ = [
    "TASKS",
    "Request",
    "Score",
    "ScoringOptions",
    "check_task_name",
    "format_result",
    "load_task",
    "parse_eval_tasks",
    "run_task",
    "score_requests",
    "training_metrics",
]
