"""byollm.model: the GPT transformer, its config, KV cache, checkpoints and size arithmetic.

    >>> from byollm.model import GPT, GPTConfig
    >>> model = GPT(GPTConfig.from_preset("nanogpt-cpu"))
    >>> logits, loss = model(idx, targets)

Read `gpt.py` top to bottom first, then `layers.py` for the parts of a block.
"""

from byollm.model.config import PRESETS, GPTConfig
from byollm.model.gpt import GPT
from byollm.model.info import format_info, model_info
from byollm.model.io import load_model, read_model_config, save_model
from byollm.model.kv_cache import KVCache

__all__ = [
    "GPT",
    "PRESETS",
    "GPTConfig",
    "KVCache",
    "format_info",
    "load_model",
    "model_info",
    "read_model_config",
    "save_model",
]
