"""byollm.data: token files, the stage after the tokenizer.

- `tokens.py`  the token-file format, its one owner: shards `train-00000.bin`... (numpy
               memmaps of uint16 or uint32 ids) and `meta.json`; `read_meta`, `open_tokens`
               (reading across shards), the dtype rule
- `prepare.py` a corpus' documents (from `byollm.corpora`) and a tokenizer spec -> those files,
               streamed, in parallel, split by document, resumable (`byollm prepare`)
- `loader.py`  batches of token windows for training, the same on 1 process or N (imports torch)

Only the loader imports torch, so `byollm prepare` starts fast. (`prepare` is not re-exported
here: the name would hide its module, `byollm.data.prepare`.)
"""

from byollm.data.tokens import open_tokens, read_meta

__all__ = ["open_tokens", "read_meta"]
