"""byollm.train: train a GPT on prepared token data.

    from byollm.train import TrainConfig, load_train_config, train
    summary = train(load_train_config("shakespeare-char", {"max_steps": "500"}))

Modules: `config` (TrainConfig and presets), `trainer` (the loop), `optim` (AdamW param groups,
Muon), `schedule` (warmup + cosine / warmup-stable-decay), `checkpoint` (the train state a
checkpoint adds, for exact resume), `distributed` (torchrun DDP), `metrics` (JSONL log, loss
plot, throughput, MFU), `report` (report.md, the run's card), `cli`.
"""

from byollm.train.config import TrainConfig, available_presets, load_train_config
from byollm.train.trainer import train

__all__ = ["TrainConfig", "available_presets", "load_train_config", "train"]
