"""Serving throughput: batched decoding vs one request at a time vs Hugging Face `generate()`.

    python benchmarks/serve.py                                  # gpt2 shape, 8 clients (~10 min)
    python benchmarks/serve.py --model shakespeare --new-tokens 32 --requests 1   # a quick look

Three runs, each against a real server process on 127.0.0.1, driven by streaming clients that
speak the OpenAI completions API (`"stream": true`, token-id prompts of 16 to 64 tokens,
`max_tokens` = `--new-tokens` with `ignore_eos` / `min_new_tokens` so that every answer has
the same length, temperature 0.8):

1. `byollm serve`, `--clients` clients at once (default 8): their sequences share one decode
   loop (`byollm.serve.batcher`), one forward pass per step for the whole batch;
2. `byollm serve`, the same requests one at a time (one client): what a server that cannot
   batch gets at best;
3. a minimal server that calls Hugging Face `model.generate()` per request (with a streamer,
   one generation at a time, as litgpt's and most quick servers do), on the very same weights
   exported with `byollm.model.convert.to_hf`, `--clients` clients at once.

For each run: aggregate tokens/s (all generated tokens / wall time from the first request to the
last token) and time to first token (TTFT) per request, p50 and p95. Random weights (speed does
not depend on their values); fp32 on the CPU, or the GPU if there is one (`--device`).

Models: "shakespeare" is the `small-10m` preset (6 layers, 384 wide, 65 tokens, block 512);
"gpt2" is the 124M GPT-2 shape. The tokenizer is a character one: prompts are token ids, and
the text of the answers does not matter here.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import platform
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from byollm.model import GPT, GPTConfig, save_checkpoint
from byollm.model.convert import to_hf
from byollm.tokenizer import TOKENIZER_FILE, CharTokenizer

MODELS = {
    "shakespeare": lambda: GPTConfig.from_preset("small-10m", block_size=512, dropout=0.0),
    "gpt2": lambda: GPTConfig.from_preset("gpt2"),
}
ALPHABET = "\n !$&',-.3:;?ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"  # 65 characters


# -- the Hugging Face server (run as `python benchmarks/serve.py --hf-server DIR --port P`) --------
def hf_server(directory: str, port: int, device: str) -> None:
    """OpenAI-style streamed completions, one `generate()` per request, one at a time."""
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import StreamingResponse
    from starlette.routing import Route
    from transformers import AutoModelForCausalLM
    from transformers.generation.streamers import BaseStreamer

    model = AutoModelForCausalLM.from_pretrained(directory, dtype=torch.float32).to(device).eval()
    tokenizer = CharTokenizer.load(Path(directory) / TOKENIZER_FILE)
    lock = threading.Lock()  # one generate() at a time: it has no way to share a batch

    class Streamer(BaseStreamer):
        def __init__(self, loop, queue):
            self.loop, self.queue, self.prompt_seen = loop, queue, False

        def put(self, value):
            if not self.prompt_seen:  # generate() first hands over the prompt
                self.prompt_seen = True
                return
            self.loop.call_soon_threadsafe(self.queue.put_nowait, value.flatten().tolist())

        def end(self):
            self.loop.call_soon_threadsafe(self.queue.put_nowait, None)

    async def completions(request):
        body = await request.json()
        loop, queue = asyncio.get_running_loop(), asyncio.Queue()
        n = body["max_tokens"]

        def work():
            prompt = torch.tensor([body["prompt"]], device=device)
            with lock, torch.inference_mode():
                model.generate(
                    prompt,
                    attention_mask=torch.ones_like(prompt),
                    max_new_tokens=n,
                    min_new_tokens=n,
                    do_sample=True,
                    temperature=body["temperature"],
                    top_k=0,
                    pad_token_id=0,
                    streamer=Streamer(loop, queue),
                )

        threading.Thread(target=work, daemon=True).start()

        async def events():
            count = 0
            while (tokens := await queue.get()) is not None:
                count += len(tokens)
                chunk = {
                    "object": "text_completion",
                    "choices": [{"index": 0, "text": tokenizer.decode(tokens)}],
                }
                yield f"data: {json.dumps(chunk)}\n\n"
            usage = {"prompt_tokens": len(body["prompt"]), "completion_tokens": count}
            yield f"data: {json.dumps({'choices': [], 'usage': usage})}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(events(), media_type="text/event-stream")

    app = Starlette(routes=[Route("/v1/completions", completions, methods=["POST"])])
    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning")


# -- the clients -----------------------------------------------------------------------------------
def stream_completion(port: int, prompt: list[int], new_tokens: int) -> tuple[float, int]:
    """(seconds to the first token, tokens generated) of one streamed request."""
    body = {
        "model": "bench",
        "prompt": prompt,
        "max_tokens": new_tokens,
        "temperature": 0.8,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    start = time.perf_counter()
    conn.request(
        "POST",
        "/v1/completions",
        body=json.dumps(body),
        headers={"Content-Type": "application/json"},
    )
    response = conn.getresponse()
    if response.status != 200:
        raise RuntimeError(f"HTTP {response.status}: {response.read()[:300]!r}")
    first, tokens = None, 0
    for line in response:
        if not line.startswith(b"data: {"):
            continue
        chunk = json.loads(line[6:])
        if first is None and chunk["choices"] and chunk["choices"][0].get("text"):
            first = time.perf_counter() - start
        if chunk.get("usage"):
            tokens = chunk["usage"]["completion_tokens"]
    conn.close()
    return first, tokens


def run_clients(port: int, prompts: list[list[int]], clients: int, new_tokens: int) -> dict:
    """Send every prompt, `clients` at a time; aggregate tokens/s and TTFT percentiles."""
    start = time.perf_counter()
    with ThreadPoolExecutor(clients) as pool:
        results = list(pool.map(lambda p: stream_completion(port, p, new_tokens), prompts))
    seconds = time.perf_counter() - start
    ttft = sorted(r[0] for r in results)
    tokens = sum(r[1] for r in results)
    return {
        "clients": clients,
        "requests": len(prompts),
        "tokens": tokens,
        "seconds": seconds,
        "tokens_per_s": tokens / seconds,
        "ttft_p50": statistics.median(ttft),
        "ttft_p95": ttft[min(len(ttft) - 1, round(0.95 * (len(ttft) - 1)))],
    }


# -- servers as processes --------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(command: list[str], port: int, threads: int | None) -> subprocess.Popen:
    env = dict(os.environ) if threads is None else {**os.environ, "OMP_NUM_THREADS": str(threads)}
    process = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env
    )
    deadline = time.monotonic() + 300
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return process
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                raise RuntimeError(f"no server: {process.stderr.read()[-2000:]}") from None
            time.sleep(0.3)


def stop_server(process: subprocess.Popen) -> None:
    process.terminate()
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=list(MODELS), default="gpt2")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--requests", type=int, default=2, help="requests per client")
    parser.add_argument("--new-tokens", type=int, default=64)
    parser.add_argument("--device", default="cpu")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="OMP_NUM_THREADS for both servers (default: PyTorch's choice, one "
        "per core; 1 is far faster on a machine busy with other jobs)",
    )
    parser.add_argument("--skip-hf", action="store_true", help="leave out the Hugging Face run")
    parser.add_argument("--hf-server", help=argparse.SUPPRESS)  # internal: run the HF server
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.hf_server:
        return hf_server(args.hf_server, args.port, args.device)

    torch.manual_seed(0)
    config = MODELS[args.model]()
    model = GPT(config).eval()
    tokenizer = CharTokenizer.train(ALPHABET)
    rng = random.Random(0)
    prompts = [
        [rng.randrange(tokenizer.vocab_size) for _ in range(rng.randint(16, 64))]
        for _ in range(args.clients * args.requests)
    ]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        ours, theirs = Path(tmp) / "bench", Path(tmp) / "hf"
        save_checkpoint(ours, model, tokenizer)
        to_hf(model, theirs)
        tokenizer.save(theirs / TOKENIZER_FILE)  # byollm's format under byollm's name
        env_python = [sys.executable]
        port = free_port()
        server = start_server(
            env_python
            + [
                "-m",
                "byollm",
                "serve",
                str(ours),
                "--port",
                str(port),
                "--max-batch",
                str(args.clients),
                "--device",
                args.device,
            ],
            port,
            args.threads,
        )
        try:
            stream_completion(port, prompts[0], 4)  # warm up
            rows.append(
                ("byollm serve, batched", run_clients(port, prompts, args.clients, args.new_tokens))
            )
            rows.append(
                ("byollm serve, one at a time", run_clients(port, prompts, 1, args.new_tokens))
            )
        finally:
            stop_server(server)
        if not args.skip_hf:
            port = free_port()
            server = start_server(
                env_python
                + [
                    __file__,
                    "--hf-server",
                    str(theirs),
                    "--port",
                    str(port),
                    "--device",
                    args.device,
                ],
                port,
                args.threads,
            )
            try:
                stream_completion(port, prompts[0], 4)
                rows.append(
                    (
                        "HF generate() per request",
                        run_clients(port, prompts, args.clients, args.new_tokens),
                    )
                )
            finally:
                stop_server(server)

    print(
        f"\n{args.model}: {model.num_params() / 1e6:.1f}M parameters, {len(prompts)} requests "
        f"of {args.new_tokens} tokens (prompts 16-64 tokens), {args.device}, "
        f"{os.cpu_count()} CPUs, {args.threads or 'default'} threads, torch {torch.__version__}, "
        f"{platform.machine()}\n"
    )
    print("| server | clients | tokens | seconds | tokens/s | TTFT p50 | TTFT p95 |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, r in rows:
        print(
            f"| {name} | {r['clients']} | {r['tokens']} | {r['seconds']:.2f} | "
            f"{r['tokens_per_s']:.1f} | {r['ttft_p50'] * 1000:.0f} ms | "
            f"{r['ttft_p95'] * 1000:.0f} ms |"
        )
    batched = rows[0][1]["tokens_per_s"]
    print(f"\nbatched / one at a time: {batched / rows[1][1]['tokens_per_s']:.2f}x")
    if len(rows) > 2:
        print(f"batched / HF generate(): {batched / rows[2][1]['tokens_per_s']:.2f}x")


if __name__ == "__main__":
    main()
