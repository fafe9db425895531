"""byollm: Build Your Own LLM.

A GPT-style language model built from scratch, one readable stage at a time:

    tokenizer -> data -> model -> train -> generate / evaluate

Every CLI verb (`byollm <verb>`) is a thin wrapper over a function of this package, so anything
the command line does, a notebook can do too.
"""

__version__ = "0.1.0"

from byollm.errors import ByollmError

__all__ = ["ByollmError", "__version__"]
