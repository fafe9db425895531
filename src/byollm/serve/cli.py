"""`byollm serve`: an OpenAI-compatible HTTP server and the playground page for a checkpoint.

    byollm serve --checkpoint runs/shakespeare-char            # http://127.0.0.1:8000
    byollm serve runs/instruct --port 9000 --api-key s3cret     # or BYOLLM_API_KEY=s3cret

Only parses its flags, loads the checkpoint and runs `create_app` under uvicorn.
"""

from __future__ import annotations

import ipaddress
import os
import sys

from byollm.config import check_number
from byollm.errors import ByollmError
from byollm.generate.cli import (
    add_checkpoint_arguments,
    add_quantize_argument,
    checkpoint_from_args,
    load_model_and_tokenizer,
)

API_KEY_VARIABLE = "BYOLLM_API_KEY"
MAX_WAITING = 2**20  # queued sequences; each waiting one holds only its prompt


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "serve",
        help="serve a checkpoint over an OpenAI-compatible HTTP API, with a playground page",
        description="Serve a checkpoint: /v1/completions and /v1/chat/completions (streamed or "
        "not) for any OpenAI client, concurrent requests decoded in one shared batch, and a "
        "playground page at / that shows tokens, next-token candidates and attention maps. "
        "Binds to 127.0.0.1 unless --host says otherwise.",
    )
    add_checkpoint_arguments(p)
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1: this machine only)",
    )
    p.add_argument("--port", type=int, default=8000, help="default 8000")
    p.add_argument(
        "--api-key",
        default=None,
        help=f"require 'Authorization: Bearer KEY' on /v1/* (default: the "
        f"{API_KEY_VARIABLE} environment variable, else no key)",
    )
    p.add_argument(
        "--model-name",
        default=None,
        help="the model id clients ask for (default: the checkpoint's folder name)",
    )
    p.add_argument(
        "--chat-mode",
        choices=("auto", "instruct", "continue"),
        default="auto",
        help="chat template: auto = instruct if the checkpoint was instruction-tuned, "
        "else continue (the conversation as plain text)",
    )
    p.add_argument(
        "--max-batch",
        type=int,
        default=8,
        help="sequences decoded together; each holds a KV cache of the full "
        "context window (default 8)",
    )
    p.add_argument(
        "--max-waiting",
        type=int,
        default=64,
        help="sequences that may wait for a slot before requests get 503 (default 64)",
    )
    add_quantize_argument(p)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or mps")
    p.set_defaults(func=run_serve)


def model_name_for(checkpoint: str) -> str:
    """The folder's name; for a run folder's best/ or checkpoint/, the run's name."""
    from byollm.model.checkpoint import RUN_CHECKPOINT_FOLDERS, resolve_checkpoint

    path = resolve_checkpoint(checkpoint).resolve()
    return path.parent.name if path.name in RUN_CHECKPOINT_FOLDERS else path.name


def run_serve(args) -> int:
    try:
        import uvicorn
    except ImportError:
        raise ByollmError(
            "byollm serve needs uvicorn and starlette: pip install 'byollm[serve]'"
        ) from None
    from byollm.generate.chat import checkpoint_chat_mode
    from byollm.generate.engine import MAX_BATCH_ROWS
    from byollm.serve.app import create_app

    if not 0 < args.port < 65536:
        raise ByollmError(f"--port {args.port} is invalid: must be in 1..65535")
    check_number("max_batch", args.max_batch, 1, MAX_BATCH_ROWS, integer=True)
    check_number("max_waiting", args.max_waiting, 0, MAX_WAITING, integer=True)
    checkpoint = checkpoint_from_args(args)
    chat_mode = checkpoint_chat_mode(checkpoint) if args.chat_mode == "auto" else args.chat_mode
    api_key = args.api_key or os.environ.get(API_KEY_VARIABLE) or None
    model, tokenizer = load_model_and_tokenizer(args)
    name = args.model_name or model_name_for(checkpoint)
    app = create_app(
        model,
        tokenizer,
        model_name=name,
        chat_mode=chat_mode,
        api_key=api_key,
        max_batch=args.max_batch,
        max_waiting=args.max_waiting,
    )
    if not _is_loopback(args.host) and not api_key:
        print(
            f"byollm serve: warning: listening on {args.host} without an API key: anyone who "
            "can reach this address can use the model",
            file=sys.stderr,
        )
    print(
        f"byollm serve: {name} ({chat_mode} chat) on http://{args.host}:{args.port}/ "
        f"-- playground at /, API at /v1",
        file=sys.stderr,
    )
    uvicorn.run(app, host=args.host, port=args.port, log_level="info")
    return 0


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
