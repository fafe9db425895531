"""byollm.generate: from logits to text.

    >>> from byollm.generate import Engine, SamplingConfig, load_for_inference
    >>> model, tokenizer = load_for_inference("runs/shakespeare")  # doctest: +SKIP
    >>> Engine(model, tokenizer).generate("ROMEO:", max_new_tokens=50, seed=1)  # doctest: +SKIP

Read in this order: `processors.py` (one small class per sampling strategy), `stopping.py`
(stop strings in a stream), `engine.py` (prefill + KV-cache decode, streaming, the context
window), `beam.py` (beam search), `chat.py`, then `cli.py` (`byollm sample`, `byollm chat`).
"""

from byollm.generate.beam import Hypothesis, beam_search
from byollm.generate.engine import Engine, generate_ids
from byollm.generate.processors import SamplingConfig, build_processors, choose_next_token
from byollm.generate.stopping import StopStrings

# Loading a checkpoint is the model's business (byollm.model.checkpoint); re-exported because
# sampling starts with it.
from byollm.model.checkpoint import load_for_inference

__all__ = [
    "Engine",
    "Hypothesis",
    "SamplingConfig",
    "StopStrings",
    "beam_search",
    "build_processors",
    "choose_next_token",
    "generate_ids",
    "load_for_inference",
]
