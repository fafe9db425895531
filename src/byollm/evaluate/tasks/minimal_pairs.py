"""Minimal pairs (BLiMP): does the model prefer the grammatical sentence of each pair?

    >>> pairs = read_minimal_pairs(read_records(Path("BLiMP.zip"), "data/*.jsonl"))  # doctest: +SKIP
    >>> result = evaluate_minimal_pairs(model, tokenizer, pairs)  # doctest: +SKIP
    >>> result["acc"], result["by_field"]["morphology"]  # doctest: +SKIP
    (0.61, 0.66)

Each item is two sentences that differ in one place, one acceptable and one not:
"Many girls insulted themselves." / "Many girls insulted herself.". The model gets the pair
right when it gives the acceptable sentence the higher log-probability,
log P(sentence | start of text), summed over all its tokens. Chance is 50%.

Design choices:
- **The paper's method** (Warstadt et al., TACL 2020, "simple LM method"; lm-evaluation-harness
  does the same): whole-sentence probability, no length normalisation (BLiMP pairs are built
  to differ minimally, mostly in one word). A tie counts as wrong.
- The sentence is predicted from the start of a text: `<|endoftext|>`, or a newline for a
  tokenizer without it (`start_ids`). Both sentences share that start and usually their first
  words, which the scorer computes once per pair.
- **Accuracy overall, per field, per phenomenon and per paradigm**: BLiMP's fields are
  morphology, syntax, semantics and syntax_semantics; its 12 phenomena are its
  `linguistics_term`s (anaphor agreement, island effects, NPI licensing...); its 67 paradigms
  are its `UID`s (two labels of BLiMP's files are fixed to match the paper, `LABEL_FIXES`).
  With 1,000 pairs in every paradigm, the accuracy over all pairs equals the paper's mean
  over paradigms. Other files may leave the three labels out.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass

from byollm.errors import ByollmError
from byollm.evaluate.tasks.records import Record, field
from byollm.evaluate.tasks.scoring import Request, ScoringOptions, score_items, start_ids

SHAPE = (
    'a minimal pair holds "sentence_good" and "sentence_bad", optionally "field", '
    '"linguistics_term" and "UID"'
)

# BLiMP's files disagree with its README and paper in two labels: principle_A_case_2 has the field
# "syntax/semantics" (the other 13 paradigms of that field: "syntax_semantics"), and the two
# animate_subject paradigms have the phenomenon "s-selection", which the paper and its results
# file count under "argument_structure". Fixed here so that there are 4 fields and 12 phenomena.
LABEL_FIXES = {"syntax/semantics": "syntax_semantics", "s-selection": "argument_structure"}


@dataclass(frozen=True)
class MinimalPair:
    where: str
    good: str
    bad: str
    field: str = ""
    phenomenon: str = ""
    paradigm: str = ""


def read_minimal_pairs(records: Sequence[Record]) -> list[MinimalPair]:
    """Minimal pairs from JSON records in BLiMP's format (one clear error per bad line)."""
    pairs = []
    for record in records:
        good = field(record, "sentence_good", str, SHAPE)
        bad = field(record, "sentence_bad", str, SHAPE)
        for name, text in (("sentence_good", good), ("sentence_bad", bad)):
            if not text.strip():
                raise ByollmError(f"{record.where}: {name!r} is empty ({SHAPE})")
        labels = [str(record.data.get(key, "")) for key in ("field", "linguistics_term", "UID")]
        labels = [LABEL_FIXES.get(label, label) for label in labels]
        pairs.append(MinimalPair(record.where, good, bad, *labels))
    return pairs


def evaluate_minimal_pairs(
    model,
    tokenizer,
    pairs: Sequence[MinimalPair],
    *,
    task: str = "minimal pairs",
    options: ScoringOptions | None = None,
    log=print,
) -> dict:
    """Accuracy overall and by field, phenomenon and paradigm (see the module docstring)."""
    start = start_ids(tokenizer)

    def to_request(pair: MinimalPair) -> Request:
        return Request(start, [tokenizer.encode(pair.good), tokenizer.encode(pair.bad)])

    kept, scores, run = score_items(model, pairs, to_request, task=task, options=options, log=log)
    correct = [good.logprob > bad.logprob for good, bad in scores]
    result = {
        "task": task,
        "kind": "minimal_pairs",
        "items": len(kept),
        "acc": sum(correct) / len(correct),
        **run,
    }
    for name, key in (
        ("by_field", "field"),
        ("by_phenomenon", "phenomenon"),
        ("by_paradigm", "paradigm"),
    ):
        groups = defaultdict(list)
        for pair, right in zip(kept, correct):
            if getattr(pair, key):
                groups[getattr(pair, key)].append(right)
        if groups:
            result[name] = {g: sum(v) / len(v) for g, v in sorted(groups.items())}
    return result


def format_minimal_pairs(result: dict) -> str:
    """A few readable lines: overall, per field, per phenomenon."""
    lines = [
        f"{result['task']}: accuracy {result['acc']:.3f} over {result['items']:,} pairs "
        f"(chance 0.5) in {result['seconds']:.1f} s ({result['items_per_s']:,.0f} pairs/s)"
    ]
    if "by_field" in result:
        fields = " | ".join(f"{k} {v:.3f}" for k, v in result["by_field"].items())
        lines.append(f"  by field: {fields}")
    if "by_phenomenon" in result:
        width = max(map(len, result["by_phenomenon"]))
        lines.append("  by phenomenon:")
        lines += [f"    {k.ljust(width)}  {v:.3f}" for k, v in result["by_phenomenon"].items()]
    return "\n".join(lines)
