"""byollm.tokenizer: text <-> token ids, from a character vocabulary up to GPT-4's.

The ladder, one idea per file:
- `base.py`       the interface every tokenizer shares, special tokens, the JSON file format
                  and its name in a folder (`byollm-tokenizer.json`, `find_tokenizer_file`)
- `char.py`       one id per character (nanoGPT's shakespeare_char)
- `patterns.py`   regex pre-tokenization (GPT-2 / GPT-4 split patterns)
- `training.py`   learning BPE merges with incremental pair counts and a heap
- `bpe.py`        byte-level BPE: rank-based merging, a piece cache for speed
- `long_pieces.py` merging a huge piece (a 50 MB "word") in compact numpy arrays
- `parallel.py`   encoding large inputs on all cores
- `pretrained.py` OpenAI's vocabularies (GPT-2, r50k, p50k, cl100k, o200k)
- `streaming.py`  decoding token by token without breaking UTF-8 characters
- `specs.py`      the one parser of tokenizer specs (`char`, `char:CORPUS`, `bpe:N`, `gpt2`,
                  a file) and `load_tokenizer` / `train_tokenizer`, which build them
- `export.py`     to Hugging Face `tokenizer.json` and tiktoken rank files
- `cli.py`        `byollm tokenizer train|encode|decode|show|compare`

    >>> tok = load_tokenizer("gpt2")                   # doctest: +SKIP
    >>> tok.decode(tok.encode("Hello world"))          # doctest: +SKIP
    'Hello world'
"""

from byollm.tokenizer.base import (
    LEGACY_TOKENIZER_FILE,
    TOKENIZER_FILE,
    Tokenizer,
    find_tokenizer_file,
    read_tokenizer_file,
)
from byollm.tokenizer.bpe import BPETokenizer
from byollm.tokenizer.char import CharTokenizer
from byollm.tokenizer.pretrained import PRETRAINED, load_pretrained
from byollm.tokenizer.specs import (
    TokenizerSpec,
    load_tokenizer,
    parse_tokenizer_spec,
    train_tokenizer,
)
from byollm.tokenizer.streaming import StreamingDecoder

__all__ = [
    "BPETokenizer",
    "CharTokenizer",
    "LEGACY_TOKENIZER_FILE",
    "PRETRAINED",
    "StreamingDecoder",
    "TOKENIZER_FILE",
    "Tokenizer",
    "TokenizerSpec",
    "find_tokenizer_file",
    "load_pretrained",
    "load_tokenizer",
    "parse_tokenizer_spec",
    "read_tokenizer_file",
    "train_tokenizer",
]
