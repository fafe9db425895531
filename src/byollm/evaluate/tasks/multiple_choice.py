"""Multiple choice (HellaSwag, ARC, PIQA, any JSONL of context, choices and label).

    >>> items = read_choice_items(read_records(Path("hellaswag_val.jsonl")))  # doctest: +SKIP
    >>> evaluate_multiple_choice(model, tokenizer, items)  # doctest: +SKIP
    {'acc': 0.289, 'acc_norm': 0.311, 'acc_per_token': 0.296, 'items': 10042, ...}

The model reads the context and scores each choice as its continuation, " " + choice; the
choice it finds most likely is its answer. "Most likely" has three common definitions, and
published numbers use all three, so all three are reported:

- `acc`: the highest log P(continuation | context), summed over its tokens. Favours short
  choices (every token costs probability).
- `acc_norm`: the highest log-likelihood divided by the choice's length in characters, as
  lm-evaluation-harness (its 'acc_norm'; the length of the choice text, without the joining
  space). Tokenizer-independent.
- `acc_per_token`: the lowest mean loss per continuation token, as nanochat's CORE and llm.c's
  HellaSwag script (which also calls it 'acc_norm').

Design choices:
- **File formats, told apart by their fields**: a generic line `{"context", "choices",
  "label"}`; HellaSwag's (`ctx_a`, `ctx_b`, `activity_label`, `endings`, `label`), turned into
  text exactly as lm-evaluation-harness does (its `preprocess` of WikiHow's bracket artefacts);
  ARC's (`question.stem`, `question.choices[].text/label`, `answerKey`) and PIQA's (`goal`,
  `sol1`, `sol2`, with `label` inline or in PIQA's separate label list), both posed as
  "Question: ...\\nAnswer:", as the harness does.
- The context and each continuation are tokenized as a whole (`encode_pair`); the context is
  computed once per item for all its choices (`scoring`).
- Ties go to the first choice (as numpy's argmax in the harness).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from byollm.errors import ByollmError
from byollm.evaluate.tasks.records import Record, field
from byollm.evaluate.tasks.scoring import Request, ScoringOptions, encode_pair, score_items

SHAPES = {
    "choices": '{"context": str, "choices": [str, ...], "label": int}',
    "hellaswag": 'HellaSwag: "ctx_a", "ctx_b", "activity_label", "endings" and "label"',
    "arc": 'ARC: "question": {"stem", "choices": [{"text", "label"}]} and "answerKey"',
    "piqa": 'PIQA: "goal", "sol1", "sol2" and "label" (inline or in a label list)',
}
# A field only this format has -> the format ("label" alone: the generic one, missing a field).
DETECT = {
    "endings": "hellaswag",
    "answerKey": "arc",
    "goal": "piqa",
    "choices": "choices",
    "label": "choices",
}


@dataclass(frozen=True)
class ChoiceItem:
    where: str
    context: str
    choices: tuple[str, ...]
    label: int  # index of the right choice


def read_choice_items(
    records: Sequence[Record], labels: Sequence[str] | None = None
) -> list[ChoiceItem]:
    """Items from records of one of the formats above (detected from the first record).

    `labels` is PIQA's separate label list (one line per record), for files without "label".
    """
    style = detect_style(records[0])
    if labels is not None and len(labels) != len(records):
        raise ByollmError(
            f"{records[0].where.rsplit(':', 1)[0]}: {len(records)} items but {len(labels)} "
            "labels in the label list"
        )
    items = []
    for index, record in enumerate(records):
        context, choices, label = _READERS[style](record)
        if labels is not None and "label" not in record.data:
            label = labels[index].strip()
        items.append(_checked(record, style, context, choices, label))
    return items


def detect_style(record: Record) -> str:
    """Which of the known formats a record is in, from its fields."""
    for key, style in DETECT.items():
        if key in record.data:
            return style
    raise ByollmError(
        f"{record.where}: not a multiple-choice line; expected one of: "
        + "; ".join(SHAPES.values())
    )


def evaluate_multiple_choice(
    model,
    tokenizer,
    items: Sequence[ChoiceItem],
    *,
    task: str = "multiple choice",
    options: ScoringOptions | None = None,
    log=print,
) -> dict:
    """acc, acc_norm and acc_per_token of `model` on `items` (see the module docstring)."""

    def to_request(item: ChoiceItem) -> Request:
        pairs = [encode_pair(tokenizer, item.context, " " + choice) for choice in item.choices]
        return Request(pairs[0][0], [continuation for _, continuation in pairs])

    kept, scores, run = score_items(model, items, to_request, task=task, options=options, log=log)
    right = {"acc": 0, "acc_norm": 0, "acc_per_token": 0}
    for item, choice_scores in zip(kept, scores):
        summed = [s.logprob for s in choice_scores]
        per_char = [s.logprob / len(c) for s, c in zip(choice_scores, item.choices)]
        per_token = [s.logprob / s.n_tokens for s in choice_scores]
        for name, values in (("acc", summed), ("acc_norm", per_char), ("acc_per_token", per_token)):
            right[name] += argmax(values) == item.label
    n = len(kept)
    return {
        "task": task,
        "kind": "multiple_choice",
        "items": n,
        **{name: count / n for name, count in right.items()},
        "chance": sum(1 / len(item.choices) for item in kept) / n,
        **run,
    }


def format_multiple_choice(result: dict) -> str:
    return (
        f"{result['task']}: acc {result['acc']:.4f} | acc_norm {result['acc_norm']:.4f} | "
        f"acc_per_token {result['acc_per_token']:.4f} over {result['items']:,} items "
        f"(chance {result['chance']:.3f}) in {result['seconds']:.1f} s "
        f"({result['items_per_s']:,.0f} items/s)"
    )


def argmax(values: Sequence[float]) -> int:
    """Index of the largest value, the first one on a tie."""
    return max(range(len(values)), key=lambda i: (values[i], -i))


# --- the formats -------------------------------------------------------------------------------


def _generic(record: Record):
    shape = SHAPES["choices"]
    return (
        field(record, "context", str, shape),
        field(record, "choices", list, shape),
        field(record, "label", (int, str), shape),
    )


def _hellaswag(record: Record):
    shape = SHAPES["hellaswag"]
    ctx = field(record, "ctx_a", str, shape) + " " + field(record, "ctx_b", str, shape).capitalize()
    context = _hellaswag_preprocess(field(record, "activity_label", str, shape) + ": " + ctx)
    endings = [
        _hellaswag_preprocess(e) if isinstance(e, str) else e
        for e in field(record, "endings", list, shape)
    ]
    return context, endings, field(record, "label", (int, str), shape)


def _hellaswag_preprocess(text: str) -> str:
    """lm-evaluation-harness's clean-up of HellaSwag (WikiHow's " [title]" and "[step]" marks)."""
    text = text.strip().replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


def _arc(record: Record):
    shape = SHAPES["arc"]
    question = field(record, "question", dict, shape)
    inner = Record(record.where + ":question", question)
    stem = field(inner, "stem", str, shape)
    options = field(inner, "choices", list, shape)
    texts, keys = [], []
    for option in options:
        if not isinstance(option, dict):
            raise ByollmError(f"{record.where}: each ARC choice must be an object ({shape})")
        option_record = Record(record.where + ":question.choices", option)
        texts.append(field(option_record, "text", str, shape))
        keys.append(str(field(option_record, "label", (str, int), shape)))
    answer = str(field(record, "answerKey", (str, int), shape))
    if answer not in keys:
        raise ByollmError(
            f"{record.where}: answerKey {answer!r} is not one of the choice labels {keys}"
        )
    return f"Question: {stem}\nAnswer:", texts, keys.index(answer)


def _piqa(record: Record):
    shape = SHAPES["piqa"]
    goal = field(record, "goal", str, shape)
    choices = [field(record, "sol1", str, shape), field(record, "sol2", str, shape)]
    return f"Question: {goal}\nAnswer:", choices, record.data.get("label")


_READERS = {"choices": _generic, "hellaswag": _hellaswag, "arc": _arc, "piqa": _piqa}


def _checked(record: Record, style: str, context: str, choices: list, label) -> ChoiceItem:
    """The item, once its choices and label are known to be sane."""
    shape = SHAPES[style]
    if not choices:
        raise ByollmError(f"{record.where}: the list of choices is empty ({shape})")
    for i, choice in enumerate(choices):
        if not isinstance(choice, str) or not choice.strip():
            raise ByollmError(
                f"{record.where}: choice {i} is empty or not text ({choice!r}); every choice "
                "needs some text"
            )
    if label is None or label == "":
        raise ByollmError(
            f"{record.where}: no label (an unlabelled test split cannot be scored) ({shape})"
        )
    if isinstance(label, str):
        if not re.fullmatch(r"-?\d+", label.strip()):
            raise ByollmError(f"{record.where}: label {label!r} is not a choice number")
        label = int(label)
    if not 0 <= label < len(choices):
        raise ByollmError(
            f"{record.where}: label {label} is out of range for {len(choices)} choices "
            f"(valid: 0..{len(choices) - 1})"
        )
    return ChoiceItem(record.where, context, tuple(choices), label)
