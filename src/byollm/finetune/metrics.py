"""Scores for fine-tuned models: classification metrics and ROUGE-L, written out.

    >>> classification_report([0, 1, 1, 0], [0, 1, 0, 0], ["ham", "spam"])["accuracy"]
    0.75
    >>> round(rouge_l("the cat sat on the mat", "the cat lay on the mat"), 3)
    0.833

Design choices:
- Precision, recall and F1 are given per class and macro-averaged (each class counts the same):
  on SMS spam, where 13% of messages are spam, accuracy alone hides a model that misses spam.
- The confusion matrix's rows are the true labels, its columns the predicted ones.
- ROUGE-L is the F1 of the longest common subsequence of words (Lin, 2004), lower-cased and
  split on whitespace and punctuation: it rewards answers with the reference's words in the
  reference's order, without an LLM judge.
"""

from __future__ import annotations

import re


def classification_report(true: list[int], predicted: list[int], labels: list[str]) -> dict:
    """Accuracy, per-class and macro precision/recall/F1, and the confusion matrix."""
    n = len(labels)
    matrix = [[0] * n for _ in range(n)]
    for t, p in zip(true, predicted):
        matrix[t][p] += 1
    per_class = {}
    for k, label in enumerate(labels):
        tp = matrix[k][k]
        predicted_k = sum(matrix[i][k] for i in range(n))
        actual_k = sum(matrix[k])
        precision = tp / predicted_k if predicted_k else 0.0
        recall = tp / actual_k if actual_k else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = {"precision": precision, "recall": recall, "f1": f1, "support": actual_k}
    correct = sum(matrix[k][k] for k in range(n))
    return {
        "accuracy": correct / max(1, len(true)),
        "macro_precision": sum(c["precision"] for c in per_class.values()) / n,
        "macro_recall": sum(c["recall"] for c in per_class.values()) / n,
        "macro_f1": sum(c["f1"] for c in per_class.values()) / n,
        "per_class": per_class,
        "confusion": matrix,
        "labels": list(labels),
    }


def format_report(report: dict) -> str:
    """A classification report as a few lines of text, confusion matrix included."""
    labels = report["labels"]
    width = max(8, *(len(label) for label in labels))
    lines = [f"accuracy {100 * report['accuracy']:.2f}%, macro F1 {report['macro_f1']:.4f}"]
    lines.append(f"{'':{width}}  precision  recall  f1      support")
    for label, c in report["per_class"].items():
        lines.append(
            f"{label:{width}}  {c['precision']:.4f}     {c['recall']:.4f}  {c['f1']:.4f}  "
            f"{c['support']}"
        )
    lines.append("confusion (rows: true, columns: predicted)")
    lines.append(f"{'':{width}}  " + "  ".join(f"{label:>{width}}" for label in labels))
    for label, row in zip(labels, report["confusion"]):
        lines.append(f"{label:{width}}  " + "  ".join(f"{v:>{width}}" for v in row))
    return "\n".join(lines)


def words(text: str) -> list[str]:
    return re.findall(r"\w+|[^\w\s]", text.lower())


def rouge_l(candidate: str, reference: str) -> float:
    """F1 of the longest common subsequence of the two word sequences (0 when either is empty)."""
    a, b = words(candidate), words(reference)
    if not a or not b:
        return 0.0
    # lcs[j] = LCS length of a[:i] and b[:j], one row at a time
    lcs = [0] * (len(b) + 1)
    for x in a:
        previous_diagonal = 0
        for j, y in enumerate(b, 1):
            current = lcs[j]
            lcs[j] = previous_diagonal + 1 if x == y else max(lcs[j], lcs[j - 1])
            previous_diagonal = current
    common = lcs[-1]
    if common == 0:
        return 0.0
    precision, recall = common / len(a), common / len(b)
    return 2 * precision * recall / (precision + recall)


def exact_match(candidate: str, reference: str) -> bool:
    """Equal after lower-casing and collapsing whitespace."""
    return " ".join(candidate.lower().split()) == " ".join(reference.lower().split())
