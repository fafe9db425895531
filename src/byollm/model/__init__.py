"""byollm.model: the GPT transformer, its config, KV cache, checkpoints and size arithmetic.

    >>> import torch
    >>> from byollm.model import GPT, GPTConfig
    >>> model = GPT(GPTConfig.from_preset("nanogpt-cpu"))      # 65 ids, a block of 64
    >>> idx, targets = torch.randint(65, (2, 64)), torch.randint(65, (2, 64))
    >>> logits, loss = model(idx, targets)
    >>> logits.shape                                            # (batch, time, vocabulary)
    torch.Size([2, 64, 65])

Read `gpt.py` top to bottom first, then `layers.py` for the parts of a block; `quantize.py`
turns its matrices into int8 for faster inference. `checkpoint.py` owns the checkpoint folder
(its files, config.json, checksums, atomic saves, `load_for_inference`); `weights.py` checks
stored weights against a config.
"""

from byollm.model.checkpoint import (
    load_for_inference,
    load_model,
    read_model_config,
    resolve_checkpoint,
    save_checkpoint,
    save_model,
)
from byollm.model.config import PRESETS, GPTConfig
from byollm.model.gpt import GPT
from byollm.model.info import format_info, model_info
from byollm.model.kv_cache import BatchKVCache, KVCache
from byollm.model.quantize import Int8Linear, quantize_int8

__all__ = [
    "GPT",
    "BatchKVCache",
    "PRESETS",
    "GPTConfig",
    "Int8Linear",
    "KVCache",
    "format_info",
    "load_for_inference",
    "load_model",
    "model_info",
    "quantize_int8",
    "read_model_config",
    "resolve_checkpoint",
    "save_checkpoint",
    "save_model",
]
