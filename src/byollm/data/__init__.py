"""byollm.data: corpora in, token shards out.

- `corpora`: the registry of named corpora and tokenizer files (`byollm data list`), verified
  downloads into the cache, the offline `python-stdlib` corpus, and local paths as corpora.

This package imports no torch at import time, so `byollm data ...` starts fast.
"""

from byollm.data.corpora import (
    CORPORA,
    Corpus,
    OfflineError,
    corpus_files,
    get_asset,
    get_corpus,
    read_corpus_text,
)

__all__ = [
    "CORPORA",
    "Corpus",
    "OfflineError",
    "corpus_files",
    "get_asset",
    "get_corpus",
    "read_corpus_text",
]
