"""byollm.evaluate: loss, perplexity and bits per byte (`perplexity.py`; `byollm eval`)."""

from byollm.evaluate.perplexity import evaluate_ids, evaluate_text, plan_windows

__all__ = ["evaluate_ids", "evaluate_text", "plan_windows"]
