"""Last word / cloze (LAMBADA): can the model finish a passage with exactly the right word?

    >>> items = read_cloze_items(read_records(Path("lambada_test.jsonl")))  # doctest: +SKIP
    >>> evaluate_cloze(model, tokenizer, items)  # doctest: +SKIP
    {'acc': 0.325, 'ppl': 40.1, 'items': 5153, ...}

LAMBADA's passages were chosen so that people guess the last word only with the whole passage
in view. The context is the passage up to its last space, the target " " + its last word.

Design choices:
- **Correct only when greedy decoding reproduces every target token** (lm-evaluation-harness's
  `lambada_openai` and nanochat's CORE "language modeling" rule): a word of three tokens is
  right only if all three are the model's top choice in turn. Checked in the same forward pass
  that scores the target (the argmax at every target position), no generation loop.
- `ppl` = exp(-mean over passages of log P(target | context)), the harness's perplexity.
- Formats: `{"text": ...}` (OpenAI's detokenized `lambada_test.jsonl`, the one GPT-2 was
  evaluated on), or `{"context": ..., "target": ...}` for any other cloze set (the target is
  appended as written, so give it its leading space).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from byollm.errors import ByollmError
from byollm.evaluate.tasks.records import Record, field
from byollm.evaluate.tasks.scoring import Request, ScoringOptions, encode_pair, score_items

SHAPE = '{"text": passage} (the last word is the target) or {"context": str, "target": str}'


@dataclass(frozen=True)
class ClozeItem:
    where: str
    context: str
    target: str


def read_cloze_items(records: Sequence[Record]) -> list[ClozeItem]:
    """Cloze items from `{"text"}` or `{"context", "target"}` records."""
    items = []
    for record in records:
        if "text" in record.data:
            text = field(record, "text", str, SHAPE)
            context, _, word = text.rpartition(" ")
            if not context or not word:
                raise ByollmError(
                    f"{record.where}: the text needs a context and a last word after a space, "
                    f"got {text[:40]!r}"
                )
            items.append(ClozeItem(record.where, context, " " + word))
        else:
            context = field(record, "context", str, SHAPE)
            target = field(record, "target", str, SHAPE)
            if not target.strip():
                raise ByollmError(f"{record.where}: the target is empty ({SHAPE})")
            items.append(ClozeItem(record.where, context, target))
    return items


def evaluate_cloze(
    model,
    tokenizer,
    items: Sequence[ClozeItem],
    *,
    task: str = "cloze",
    options: ScoringOptions | None = None,
    log=print,
) -> dict:
    """Greedy-match accuracy and target perplexity (see the module docstring)."""

    def to_request(item: ClozeItem) -> Request:
        context, target = encode_pair(tokenizer, item.context, item.target)
        return Request(context, [target])

    kept, scores, run = score_items(model, items, to_request, task=task, options=options, log=log)
    n = len(kept)
    mean_nll = -sum(score.logprob for [score] in scores) / n
    return {
        "task": task,
        "kind": "cloze",
        "items": n,
        "acc": sum(score.greedy for [score] in scores) / n,
        "ppl": math.exp(mean_nll) if mean_nll < 700 else math.inf,  # exp(700) is near float's limit
        **run,
    }


def format_cloze(result: dict) -> str:
    return (
        f"{result['task']}: acc {result['acc']:.4f} (greedy reproduces the whole last word) | "
        f"target perplexity {result['ppl']:.2f} over {result['items']:,} passages in "
        f"{result['seconds']:.1f} s ({result['items_per_s']:,.0f} items/s)"
    )
