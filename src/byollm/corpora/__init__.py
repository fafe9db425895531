"""byollm.corpora: the text a model learns from, found, fetched and checked (the first stage).

- `registry`: the named corpora and tokenizer files (`CORPORA`, `byollm data list`), verified
  downloads into the cache, the offline `python-stdlib` corpus, local paths as corpora, and the
  two readers of corpus text (whole, or streamed in blocks), both refusing what is not UTF-8.
- `cli`: `byollm data list | info | get`.

The downloads themselves (`byollm.download`) and the cache folders (`byollm.paths`) are not
here: checkpoints and runs use them too, so they sit below every stage. This package imports no
torch, so `byollm data ...` starts fast. Tokenizers are trained on what it returns; token files
(`byollm.data`) come after the tokenizer.
"""

from byollm.corpora.registry import (
    CORPORA,
    Corpus,
    OfflineError,
    corpus_files,
    corpus_info,
    get_asset,
    get_corpus,
    read_corpus_text,
    read_text_blocks,
)

__all__ = [
    "CORPORA",
    "Corpus",
    "OfflineError",
    "corpus_files",
    "corpus_info",
    "get_asset",
    "get_corpus",
    "read_corpus_text",
    "read_text_blocks",
]
