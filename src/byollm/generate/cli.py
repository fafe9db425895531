"""`byollm sample` and `byollm chat`: draw text from a checkpoint, in the terminal.

    byollm sample --checkpoint runs/shakespeare --prompt "ROMEO:" --max-new-tokens 200 --top-k 40
    byollm chat --checkpoint runs/instruct

Both only parse their flags and call `byollm.generate`'s API.
"""

from __future__ import annotations

import argparse
import contextlib
import sys

from byollm.errors import ByollmError
from byollm.model.cli import (
    add_checkpoint_arguments,
    add_quantize_argument,
    checkpoint_from_args,
)
from byollm.paths import user_path


def add_sampling_arguments(p: argparse.ArgumentParser) -> None:
    """The flags of `SamplingConfig` (shared by sample and chat)."""
    g = p.add_argument_group("sampling")
    g.add_argument(
        "--temperature",
        type=float,
        default=1.0,
        help="divide logits by T; 0 = greedy (default 1.0)",
    )
    g.add_argument("--top-k", type=int, default=None, help="keep the K most likely tokens")
    g.add_argument("--top-p", type=float, default=1.0, help="nucleus: keep mass P (default 1)")
    g.add_argument(
        "--min-p",
        type=float,
        default=0.0,
        help="keep tokens >= P x the most likely one (default 0)",
    )
    g.add_argument("--typical-p", type=float, default=1.0, help="locally typical mass (default 1)")
    g.add_argument(
        "--repetition-penalty",
        type=float,
        default=1.0,
        help="CTRL penalty for tokens already seen (default 1 = off)",
    )
    g.add_argument("--frequency-penalty", type=float, default=0.0)
    g.add_argument("--presence-penalty", type=float, default=0.0)
    g.add_argument(
        "--ban-token",
        type=int,
        action="append",
        default=[],
        metavar="ID",
        help="never generate this token id (repeatable)",
    )
    g.add_argument("--max-new-tokens", type=int, default=200)
    g.add_argument("--seed", type=int, default=None, help="seed for reproducible samples")
    g.add_argument(
        "--stop", action="append", default=[], metavar="TEXT", help="stop at this text (repeatable)"
    )
    g.add_argument("--no-cache", action="store_true", help="recompute the window every token")
    g.add_argument(
        "--context",
        choices=("slide", "error"),
        default="slide",
        help="when prompt + new tokens outgrow the window (default slide)",
    )
    g.add_argument(
        "--speculative",
        type=int,
        default=0,
        metavar="K",
        help="guess up to K tokens by prompt lookup and check them in one forward "
        "pass: the same greedy output and sampling distribution, faster where the "
        "text repeats (one sample at a time; default 0 = off)",
    )
    add_quantize_argument(g)
    g.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")


def load_model_and_tokenizer(args):
    """The checkpoint of `args`, quantised if `--quantize int8`."""
    from byollm.model.checkpoint import load_for_inference

    return load_for_inference(
        checkpoint_from_args(args), device=args.device, quantize=args.quantize
    )


def sampling_from_args(args):
    from byollm.generate.processors import SamplingConfig

    return SamplingConfig(
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        min_p=args.min_p,
        typical_p=args.typical_p,
        repetition_penalty=args.repetition_penalty,
        frequency_penalty=args.frequency_penalty,
        presence_penalty=args.presence_penalty,
        banned_tokens=tuple(args.ban_token),
    )


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "sample",
        help="generate text from a checkpoint",
        description="Continue a prompt with a trained model, streaming the text as it comes. "
        "An empty prompt starts from <|endoftext|> (or a newline for tokenizers without it).",
    )
    add_checkpoint_arguments(p)
    source = p.add_mutually_exclusive_group()
    source.add_argument("--prompt", default="", help="text to continue (default: empty)")
    source.add_argument("--prompt-file", type=user_path, help="read the prompt from this file")
    p.add_argument("--num-samples", type=int, default=1)
    p.add_argument(
        "--num-beams",
        type=int,
        default=None,
        help="beam search with this many beams instead of sampling",
    )
    p.add_argument("--length-penalty", type=float, default=1.0, help="for beam search")
    p.add_argument(
        "--template",
        choices=("auto", "none"),
        default="auto",
        help="auto: the prompt of an instruction-tuned checkpoint goes into its "
        "instruction template (as in chat); none: the prompt as given",
    )
    add_sampling_arguments(p)
    p.set_defaults(func=run_sample)

    c = subparsers.add_parser(
        "chat",
        help="talk to a checkpoint in the terminal",
        description="An interactive loop with history. Instruction-tuned checkpoints get the "
        "Alpaca instruction template; base models continue the conversation as plain text. "
        "Commands: /reset forgets the history, /quit (or end of input) leaves.",
    )
    add_checkpoint_arguments(c)
    c.add_argument(
        "--mode",
        choices=("auto", "instruct", "continue"),
        default="auto",
        help="auto: instruct if the checkpoint was instruction-tuned",
    )
    add_sampling_arguments(c)
    c.set_defaults(func=run_chat, temperature=0.7, top_p=0.9)


def _read_prompt(args) -> str:
    if args.prompt_file is None:
        return args.prompt
    try:
        return args.prompt_file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ByollmError(f"prompt file not found: {args.prompt_file}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise ByollmError(f"{args.prompt_file}: cannot read as UTF-8 text ({e})") from None


def _engine(args):
    from byollm.generate.engine import Engine

    model, tokenizer = load_model_and_tokenizer(args)
    return Engine(
        model,
        tokenizer,
        use_cache=not args.no_cache,
        context=args.context,
        speculative=args.speculative,
    )


def _write(text: str) -> None:
    sys.stdout.write(text)
    sys.stdout.flush()


def run_sample(args) -> int:
    from byollm.generate.beam import check_beam_args
    from byollm.generate.engine import check_generation_args

    sampling = sampling_from_args(args)  # validate everything before the (slow) load
    check_generation_args(args.max_new_tokens, num_samples=args.num_samples, seed=args.seed)
    # --length-penalty is checked without --num-beams too: a bad value is reported, not ignored
    check_beam_args(1 if args.num_beams is None else args.num_beams, args.length_penalty)
    prompt = _read_prompt(args)
    engine = _engine(args)
    if args.template == "auto" and prompt and _instruction_tuned(args):
        from byollm.generate.chat import format_instruct

        prompt = format_instruct([], prompt)
        args.stop = [*args.stop, "\n### "]
    if args.num_beams is not None:
        return _run_beam(args, engine, prompt)
    import torch

    from byollm.generate.engine import seeded_generator
    from byollm.model.interface import model_device

    generator = seeded_generator(args.seed, model_device(engine.model)) or torch.Generator()
    if args.seed is None:
        generator.seed()
    for i in range(args.num_samples):
        if args.num_samples > 1:
            _write(f"--- sample {i + 1} ---\n")
        _write(prompt)
        for piece in engine.stream(
            prompt,
            max_new_tokens=args.max_new_tokens,
            sampling=sampling,
            stop=args.stop,
            generator=generator,
        ):
            _write(piece)
        _write("\n")
    return 0


def _instruction_tuned(args) -> bool:
    """Whether the checkpoint's config.json has the "instruct" key fine-tuning writes."""
    from byollm.generate.chat import checkpoint_chat_mode

    return checkpoint_chat_mode(checkpoint_from_args(args)) == "instruct"


def _run_beam(args, engine, prompt) -> int:
    from byollm.generate.beam import beam_search

    ids = engine.encode_prompt(prompt)
    hypotheses = beam_search(
        engine.model,
        ids,
        num_beams=args.num_beams,
        max_new_tokens=args.max_new_tokens,
        length_penalty=args.length_penalty,
        eos_id=engine.tokenizer.eot_id,
    )
    for i, h in enumerate(hypotheses[: args.num_samples]):
        tokens = [t for t in h.tokens if t != engine.tokenizer.eot_id]
        _write(f"--- beam {i + 1} (score {h.score:.3f}) ---\n" if args.num_samples > 1 else "")
        _write(prompt + engine.tokenizer.decode(tokens) + "\n")
    return 0


def run_chat(args) -> int:
    from byollm.generate.chat import ChatSession, checkpoint_chat_mode
    from byollm.generate.engine import check_generation_args

    sampling = sampling_from_args(args)  # validate everything before the (slow) load
    check_generation_args(args.max_new_tokens, seed=args.seed)
    engine = _engine(args)
    mode = args.mode
    if mode == "auto":
        mode = checkpoint_chat_mode(checkpoint_from_args(args))
    session = ChatSession(
        engine, mode=mode, sampling=sampling, max_new_tokens=args.max_new_tokens, seed=args.seed
    )
    interactive = sys.stdin.isatty()
    if interactive:
        with contextlib.suppress(ImportError):
            import readline  # noqa: F401  (arrow keys and history for input())
        print(f"byollm chat ({mode} mode) -- /reset forgets the history, /quit leaves")
    while True:
        try:
            line = input("> " if interactive else "")
        except EOFError:
            break
        if line.strip() == "/quit":
            break
        if line.strip() == "/reset":
            session.reset()
            continue
        if not line.strip():
            continue
        try:
            session.reply(line, on_text=_write)
        except ByollmError as e:  # e.g. a message too long: say so, keep the session
            print(f"error: {e}", file=sys.stderr)
        _write("\n")
    return 0
