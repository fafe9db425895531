"""byollm: Build Your Own LLM.

A GPT-style language model built from scratch, one readable stage at a time. The stages, each a
subpackage, in the one order they may import each other:

    corpora -> tokenizer -> data -> model -> generate | evaluate -> train
            -> finetune | scaling | serve -> exercises

A stage imports only itself and the stages before it, never a later one; stages on one rung
(`generate | evaluate`) do not import each other; training uses both (it samples and evaluates
as it goes), and the stages built on a trained model sit above it.
Below every stage sit the plumbing modules (`errors`, `formats`, `paths`, `download`, `config`,
`device`, `cpu_fast_paths`, `workers`); above all of them, the `byollm` command (`cli`). `tests/test_structure.py`
checks every import in the package (also those inside functions) against `STAGE_ORDER`.

Every CLI verb (`byollm <verb>`) is a thin wrapper over a function of this package, so anything
the command line does, a notebook can do too.
"""

__version__ = "0.1.0"

from byollm.errors import ByollmError

# The order above, as data: `->` separates rungs, `|` stages on one rung.
STAGE_ORDER = (
    "corpora -> tokenizer -> data -> model -> generate | evaluate -> train"
    " -> finetune | scaling | serve -> exercises"
)
# The top-level modules below every stage (and `byollm` itself); `cli` and `__main__` are above.
PLUMBING = (
    "errors",
    "formats",
    "paths",
    "download",
    "config",
    "device",
    "cpu_fast_paths",
    "workers",
)

__all__ = ["PLUMBING", "STAGE_ORDER", "ByollmError", "__version__"]
