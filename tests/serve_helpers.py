"""A live byollm server for tests: a tiny random-weight checkpoint, uvicorn on 127.0.0.1.

    >>> with live_server(tiny_checkpoint(tmp_path)) as live:
    ...     openai.OpenAI(base_url=live.url + "/v1", api_key="-").completions.create(...)

The server runs in a thread of the test process on a socket bound to 127.0.0.1:0 (a free port
chosen by the kernel, no race), and stops when the block ends.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

from byollm.model import GPT, GPTConfig, save_checkpoint
from byollm.tokenizer import CharTokenizer

pytest.importorskip("uvicorn", reason="the serve extra (starlette, uvicorn) is not installed")
import uvicorn  # noqa: E402

from byollm.model.checkpoint import load_for_inference  # noqa: E402
from byollm.serve import create_app  # noqa: E402

TEXT = (
    "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n"
    "The slings and arrows of outrageous fortune,\nOr to take arms against a sea of troubles\n"
)


def tiny_checkpoint(folder: Path, block_size: int = 64, **overrides) -> Path:
    """A random-weight char-level checkpoint folder, saved as the trainer saves one."""
    tokenizer = CharTokenizer.train(TEXT)
    torch.manual_seed(0)
    config = GPTConfig(
        vocab_size=tokenizer.vocab_size,
        block_size=block_size,
        n_layer=2,
        n_head=2,
        n_embd=32,
        **overrides,
    )
    save_checkpoint(folder, GPT(config), tokenizer)
    return folder


@dataclass
class Live:
    url: str  # http://127.0.0.1:PORT
    app: object  # the Starlette app, for looking at its batcher from the test

    @property
    def batcher(self):
        return self.app.state.server.batcher


@contextlib.contextmanager
def live_server(checkpoint: Path, **app_options):
    """Serve `checkpoint` (named after its folder) on a free loopback port; yields a `Live`."""
    model, tokenizer = load_for_inference(checkpoint, device="cpu")
    app = create_app(model, tokenizer, model_name=checkpoint.name, **app_options)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="on"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the test server did not start")
        time.sleep(0.02)
    try:
        yield Live(f"http://127.0.0.1:{port}", app)
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
