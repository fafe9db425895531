"""`byollm model info` and `byollm convert`: thin wrappers over byollm.model.

byollm model info --preset gpt2
byollm model info --config configs/shakespeare-char.toml --n_layer 8
byollm convert --from-hf ~/models/gpt2 --out checkpoints/gpt2 --tokenizer gpt2
byollm convert --from-hub gpt2 --out checkpoints/gpt2      (gpt2-medium/-large/-xl, owner/name)
byollm convert --to-hf checkpoints/gpt2 --out exported/
"""

from __future__ import annotations

import argparse
import json

from byollm import config as config_lib
from byollm.errors import ByollmError
from byollm.model.checkpoint import read_config_file
from byollm.model.config import PRESETS, GPTConfig
from byollm.model.info import format_info, model_info
from byollm.paths import user_path


def register(subparsers) -> None:
    model = subparsers.add_parser(
        "model", help="inspect model configs", description="Inspect model configs."
    )
    model_verbs = model.add_subparsers(dest="model_verb", metavar="<command>", required=True)
    info = model_verbs.add_parser(
        "info",
        help="parameters, FLOPs per token, memory and KV-cache size of a config",
        description="Print parameters (with and without embeddings), FLOPs per token (forward and "
        "training), memory for weights, gradients and AdamW state, and the KV-cache size per "
        "token. Extra --key value pairs override config fields (e.g. --n_layer 6).",
    )
    source = info.add_mutually_exclusive_group(required=True)
    source.add_argument("--preset", choices=list(PRESETS), help="a named preset")
    source.add_argument(
        "--config",
        type=user_path,
        help="a TOML file (model keys at the top or under [model]), a config.json, or a "
        "checkpoint directory",
    )
    info.add_argument(
        "--seq-len", type=int, help="context for attention FLOPs (default block_size)"
    )
    info.add_argument("--bytes-per-param", type=int, default=4, help="4 = float32, 2 = bf16")
    info.add_argument("--json", action="store_true", help="print the numbers as JSON")
    info.set_defaults(func=_info, accepts_overrides=True)

    convert = subparsers.add_parser(
        "convert",
        help="import a Hugging Face GPT-2/Llama folder, or export a checkpoint to one",
        description="--from-hf DIR --out CKPT reads a Hugging Face folder (config.json + "
        "model.safetensors, e.g. OpenAI's GPT-2) into a byollm checkpoint, keeping its own "
        "tokenizer; --from-hub REPO fetches one from the Hub first; --to-hf CKPT --out DIR writes "
        "a folder (weights and tokenizer) that transformers' AutoModelForCausalLM, AutoTokenizer "
        "and pipeline load: GPT-2-style models as GPT2LMHeadModel, Llama-style as "
        "LlamaForCausalLM, others are refused. The input "
        "is read and checked whole before anything is written; --out must be a new or empty "
        "folder, or one an earlier convert wrote (which is then replaced whole).",
    )
    direction = convert.add_mutually_exclusive_group(required=True)
    direction.add_argument("--from-hf", type=user_path, metavar="DIR", help="Hugging Face folder")
    direction.add_argument(
        "--from-hub",
        metavar="REPO",
        help="fetch from the Hugging Face Hub: gpt2, gpt2-medium, gpt2-large, gpt2-xl or any "
        "owner/name repo id (config.json + safetensors + the repo's own tokenizer, checked "
        "against the Hub's listing, cached under $BYOLLM_HOME/hub)",
    )
    direction.add_argument(
        "--to-hf", type=user_path, metavar="CKPT", help="byollm checkpoint folder"
    )
    convert.add_argument("--out", type=user_path, required=True, help="folder to write")
    convert.add_argument(
        "--tokenizer",
        help="with --from-hf/--from-hub: save this tokenizer (e.g. gpt2) as byollm-tokenizer.json "
        "instead of the folder's own vocab.json + merges.txt or tokenizer.json",
    )
    convert.add_argument(
        "--revision", default="main", help="with --from-hub: branch, tag or commit"
    )
    convert.add_argument(
        "--mirror",
        help="with --from-hub: a server or folder laid out like the Hub (<repo>/resolve/<revision>/"
        "<file> and api/models/<repo>/tree/<revision>) instead of $HF_ENDPOINT or huggingface.co",
    )
    convert.add_argument(
        "--via",
        choices=("byollm", "huggingface_hub"),
        default="byollm",
        help="with --from-hub: byollm's own downloader (default), or the huggingface_hub package "
        "(its cache, HF_ENDPOINT, HF_HUB_OFFLINE and login)",
    )
    convert.set_defaults(func=_convert)


def add_checkpoint_arguments(p: argparse.ArgumentParser) -> None:
    """`--checkpoint DIR`, or the folder as the first positional argument (sample, chat, eval)."""
    p.add_argument(
        "checkpoint_folder",
        nargs="?",
        metavar="CHECKPOINT",
        help="checkpoint folder (or run folder); same as --checkpoint",
    )
    p.add_argument("--checkpoint", help="checkpoint folder (or run folder)")


def checkpoint_from_args(args) -> str:
    checkpoint = args.checkpoint or args.checkpoint_folder
    if not checkpoint:
        raise ByollmError("which model? give a checkpoint folder: --checkpoint DIR")
    return str(user_path(checkpoint))


def add_quantize_argument(p) -> None:
    p.add_argument(
        "--quantize",
        choices=("none", "int8"),
        default="none",
        help="int8: weight-only int8 matrices, ~2x faster decoding on the CPU with "
        "slightly different outputs (default none = the checkpoint's precision)",
    )


def _info(args) -> int:
    config = GPTConfig.from_preset(args.preset) if args.preset else read_config_file(args.config)
    overrides = config_lib.parse_override_args(args.overrides)
    config = config_lib.apply_overrides(config, overrides)
    info = model_info(config, seq_len=args.seq_len, bytes_per_param=args.bytes_per_param)
    if args.json:
        print(json.dumps({"config": config_lib.to_dict(config), **info}, indent=2))
    else:
        print(format_info(info, name=args.preset or str(args.config)))
    return 0


def _convert(args) -> int:
    from byollm.model.convert import (
        convert_from_hf,
        convert_from_hub,
        convert_to_hf,
        hf_folder_tokenizer,
    )
    from byollm.tokenizer import TOKENIZER_FILE

    hub_only = [
        f
        for f, given in (
            ("--revision", args.revision != "main"),
            ("--mirror", args.mirror),
            ("--via", args.via != "byollm"),
        )
        if given
    ]
    if hub_only and args.from_hub is None:
        raise ByollmError(f"{hub_only[0]} only applies to --from-hub")
    if args.to_hf is not None:
        if args.tokenizer:
            raise ByollmError("--tokenizer only applies to --from-hf and --from-hub")
        written = convert_to_hf(args.to_hf, args.out)
        print(f"wrote {args.out}: {', '.join(written)} (Hugging Face layout)")
        return 0
    tokenizer = args.tokenizer
    if tokenizer and tokenizer.startswith("~"):
        tokenizer = str(user_path(tokenizer))
    if args.from_hub is not None:
        model, tokenizer, why_not = convert_from_hub(
            args.from_hub,
            args.out,
            revision=args.revision,
            mirror=args.mirror,
            via=args.via,
            tokenizer=tokenizer,
        )
        print(f"wrote {args.out}: {model.num_params():,} parameters from {args.from_hub}")
    else:
        why_not = None
        if tokenizer is None:
            tokenizer, why_not = hf_folder_tokenizer(args.from_hf)
        model = convert_from_hf(args.from_hf, args.out, tokenizer)
        print(f"wrote {args.out}: {model.num_params():,} parameters")
    if tokenizer is None:
        print(
            f"note: no tokenizer saved ({why_not}); pass --tokenizer NAME or FILE "
            "(--tokenizer gpt2 for OpenAI's GPT-2 checkpoints)"
        )
    elif isinstance(tokenizer, str):
        print(f"wrote {args.out}/{TOKENIZER_FILE} ({tokenizer})")
    else:
        print(f"wrote {args.out}/{TOKENIZER_FILE} (the model's own tokenizer)")
    return 0
