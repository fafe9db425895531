"""`byollm exercise`: list the exercises, show a statement, start from a template, check.

byollm exercise list
byollm exercise show attention
byollm exercise start attention --dir my-exercises
byollm exercise check attention --file my-exercises/attention.py
"""

from __future__ import annotations

import textwrap

from byollm.paths import user_path


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "exercise",
        help="build each stage yourself and check it against byollm",
        description="Exercises for each stage (tokenizer, attention, the GPT block, training, "
        "sampling): a statement, a blank template to fill, and a checker that compares your "
        "code with byollm's own. Solutions: exercises/solutions/ in the repository.",
    )
    commands = p.add_subparsers(dest="exercise_command", metavar="<command>", required=True)
    c = commands.add_parser("list", help="the exercises, in the order of the stages")
    c.set_defaults(func=run_list)
    c = commands.add_parser("show", help="print an exercise's statement")
    c.add_argument("name")
    c.set_defaults(func=run_show)
    c = commands.add_parser("start", help="copy an exercise's blank template to <dir>/<name>.py")
    c.add_argument("name")
    c.add_argument(
        "--dir", default=".", type=user_path, help="where to put the file (default: here)"
    )
    c.add_argument("--overwrite", action="store_true", help="replace an existing file")
    c.set_defaults(func=run_start)
    c = commands.add_parser("check", help="check your code against byollm's, step by step")
    c.add_argument("name")
    c.add_argument("--file", default=None, type=user_path, help="your file (default: ./<name>.py)")
    c.set_defaults(func=run_check)


def run_list(args) -> int:
    from byollm.exercises import EXERCISES

    width = max(len(name) for name in EXERCISES)
    for e in EXERCISES.values():
        print(f"{e.name:<{width}}  {e.title} ({e.chapter})")
        print(
            textwrap.fill(
                e.functions,
                96,
                initial_indent=" " * (width + 2) + "you write: ",
                subsequent_indent=" " * (width + 13),
            )
        )
    print("\nbyollm exercise show NAME, then start NAME, then check NAME.")
    return 0


def run_show(args) -> int:
    from byollm.exercises import statement

    print(statement(args.name))
    return 0


def run_start(args) -> int:
    from byollm.exercises import start

    path = start(args.name, args.dir, overwrite=args.overwrite)
    print(
        f"wrote {path}: fill in the functions, then `byollm exercise check {args.name}"
        + (f" --file {path}`" if str(args.dir) != "." else "`")
    )
    return 0


def run_check(args) -> int:
    from byollm.exercises import check

    report = check(args.name, args.file)
    print(report.format())
    return 0 if report.passed else 1
