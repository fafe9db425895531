"""`byollm <verb>`: one command line over the package's Python API.

Each stage registers its own verbs from its `cli.py` (`register(subparsers)`), and each verb
only parses its arguments and calls a public function of the package. Errors a user can cause
arrive here as `ByollmError` and are printed on one line with exit status 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from byollm import __version__
from byollm.errors import ByollmError

# Every verb, the stage module (`byollm.<stage>.cli`) that registers it, and its one-line help,
# in the order a newcomer meets them. Only the module of the verb being run is imported: the
# later stages import PyTorch, which takes seconds, and `byollm --help` should not wait for it.
# A test keeps this table equal to what the modules register.
VERBS: dict[str, tuple[str, str]] = {
    "data": ("byollm.corpora.cli", "list, describe and download corpora and tokenizer files"),
    "tokenizer": ("byollm.tokenizer.cli", "train, apply and inspect tokenizers"),
    "prepare": ("byollm.data.prepare_cli", "tokenize a corpus into token files for training"),
    "model": ("byollm.model.cli", "inspect model configs"),
    "convert": (
        "byollm.model.cli",
        "import a Hugging Face GPT-2/Llama folder, or export a checkpoint to one",
    ),
    "train": (
        "byollm.train.cli",
        "train a GPT (default: a char-level model on Tiny Shakespeare)",
    ),
    "sample": ("byollm.generate.cli", "generate text from a checkpoint"),
    "chat": ("byollm.generate.cli", "talk to a checkpoint in the terminal"),
    "eval": (
        "byollm.evaluate.cli",
        "loss, perplexity and bits per byte on a corpus, or benchmark tasks",
    ),
    "finetune": (
        "byollm.finetune.cli",
        "fine-tune a checkpoint: classify texts or follow instructions (LoRA optional)",
    ),
    "classify": ("byollm.finetune.cli", "label texts with a fine-tuned classifier"),
    "merge-lora": ("byollm.finetune.cli", "fold a LoRA adapter into its base's weights"),
    "serve": (
        "byollm.serve.cli",
        "serve a checkpoint over an OpenAI-compatible HTTP API, with a playground page",
    ),
    "exercise": ("byollm.exercises.cli", "build each stage yourself and check it against byollm"),
    "scaling": (
        "byollm.scaling.cli",
        "sweep model sizes at fixed compute, fit scaling laws, predict a bigger run",
    ),
}
# The stages that contribute verbs, in the order a newcomer meets them.
STAGE_CLIS: list[str] = list(dict.fromkeys(module for module, _ in VERBS.values()))


def build_parser(verb: str | None = None, *, everything: bool = True) -> argparse.ArgumentParser:
    """The `byollm` parser: every stage's verbs in full, or (everything=False) only `verb`'s
    stage in full and the other verbs as one-line entries for `--help`."""
    parser = argparse.ArgumentParser(
        prog="byollm",
        description="Build Your Own LLM: tokenizers, a GPT, training, sampling and evaluation, "
        "written from scratch.",
    )
    parser.add_argument("--version", action="version", version=f"byollm {__version__}")
    subparsers = parser.add_subparsers(dest="verb", metavar="<verb>")
    wanted = set(STAGE_CLIS) if everything else {VERBS[verb][0]} if verb in VERBS else set()
    for name, (module_name, help_text) in VERBS.items():
        if module_name in wanted:
            importlib.import_module(module_name).register(subparsers)  # all of its verbs
            wanted.discard(module_name)
        elif name not in subparsers.choices:
            subparsers.add_parser(name, help=help_text)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["--version"]:  # answer before importing every stage (and torch with them)
        print(f"byollm {__version__}")
        return 0
    parser = build_parser(argv[0] if argv else None, everything=False)
    # Verbs that take free-form `--key value` config overrides set `accepts_overrides`.
    args, extra = parser.parse_known_args(argv)
    if args.verb is None:
        parser.print_help()
        return 0
    if extra and not getattr(args, "accepts_overrides", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    args.overrides = extra
    try:
        result = args.func(args)
    except ByollmError as e:
        print(f"byollm {args.verb}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"byollm {args.verb}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # e.g. `byollm tokenizer encode ... | head`
        sys.stderr.close()
        return 0
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
