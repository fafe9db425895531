"""byollm.finetune: train a pretrained GPT further, to classify texts or follow instructions.

    from byollm.finetune import finetune_classifier, finetune_instruct, classify
    finetune_classifier("runs/english/best", "sms-spam", out="runs/spam", trainable="last:1")

Read in this order: `lora.py` (low-rank adapters, from scratch), `records.py` (tables in,
seeded splits), `loop.py` (what trains, and the loop), `metrics.py` (accuracy/F1, ROUGE-L),
`classify.py` (a new head on the last real token), `instruct.py` (prompt templates, masked
losses, held-out evaluation), `checkpoint.py` (the folders they write), then `cli.py`.
"""

from byollm.finetune.classify import classify, finetune_classifier
from byollm.finetune.instruct import finetune_instruct
from byollm.finetune.lora import LoRAConfig, LoRALinear, apply_lora, merge_lora

__all__ = [
    "LoRAConfig",
    "LoRALinear",
    "apply_lora",
    "classify",
    "finetune_classifier",
    "finetune_instruct",
    "merge_lora",
]
