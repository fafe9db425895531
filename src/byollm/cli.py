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

# The stages that contribute verbs, in the order a newcomer meets them.
STAGE_CLIS: list[str] = [
    # each stage adds its "byollm.<stage>.cli" module here
    "byollm.data.cli",
    "byollm.tokenizer.cli",
    "byollm.data.prepare_cli",
    "byollm.model.cli",
    "byollm.train.cli",
    "byollm.generate.cli",
    "byollm.evaluate.cli",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="byollm",
        description="Build Your Own LLM: tokenizers, a GPT, training, sampling and evaluation, "
        "written from scratch.",
    )
    parser.add_argument("--version", action="version", version=f"byollm {__version__}")
    subparsers = parser.add_subparsers(dest="verb", metavar="<verb>")
    for module_name in STAGE_CLIS:
        importlib.import_module(module_name).register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv == ["--version"]:  # answer before importing every stage (and torch with them)
        print(f"byollm {__version__}")
        return 0
    parser = build_parser()
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
