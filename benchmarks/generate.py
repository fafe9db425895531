"""Generation speed: ours vs Hugging Face `generate()`, with and without the KV cache.

    python benchmarks/generate.py                      # both models, batch 1 and 8 (~5-10 min)
    python benchmarks/generate.py --models shakespeare --new-tokens 64   # a quick look

For each model (random init; speed does not depend on the values of the weights) we build our
`GPT`, export the very same weights to a Hugging Face `GPT2LMHeadModel` with
`byollm.model.convert.to_hf`, and time greedy decoding of `--new-tokens` tokens after a
16-token prompt, fp32, on the CPU:

- ours: `byollm.generate.engine.generate_ids` (prefill + KV-cache decode, or the full window
  recomputed every step with `--no-cache`);
- theirs: `model.generate(do_sample=False, use_cache=...)`.

At batch 1 with the cache there is also a speculative row: ours with `speculative_ids`
(prompt lookup, `--speculative` guesses per step), Hugging Face with the same technique
(`prompt_lookup_num_tokens`). Random weights make greedy output repeat one token for long
stretches, the best case for prompt lookup: read those rows for the mechanism, and the
`--checkpoint` section (a trained model, real text) for what to expect.

At batch 1 there are also int8 rows: ours with int8 weight-only matrices
(`byollm.model.quantize`), plain and with prompt lookup, against Hugging Face's fp32 plain
row; their "same tokens" column says how long the greedy text stays equal to our fp32 text.

It checks that both produce the same tokens (greedy, fp32) and reports tokens/s, and for batch 1
with the cache the weight bytes read per second against the memory bandwidth (~11-13 GB/s on the
2-core development box of RESULTS.md, ~30-44 GB/s on a desktop with two channels of DDR4): every
decoded token reads every weight matrix once.

Models: "shakespeare" is the `small-10m` preset (nanoGPT's shakespeare-char model: 6 layers,
6 heads, 384 wide, 65 tokens) with block_size raised to 512 so that 16 + 256 tokens fit Hugging
Face's window too; "gpt2" is the 124M GPT-2 shape. No-cache runs at batch 8 on GPT-2 take many
minutes on 2 cores, so they run only with `--full`.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import tempfile
import time

import torch

from byollm.generate.engine import generate_ids
from byollm.generate.processors import SamplingConfig
from byollm.generate.speculative import speculative_ids
from byollm.model import GPT, GPTConfig
from byollm.model.convert import to_hf
from byollm.model.quantize import Int8Linear, quantize_int8

GREEDY = SamplingConfig(temperature=0)
MODELS = {
    "shakespeare": lambda: GPTConfig.from_preset("small-10m", block_size=512, dropout=0.0),
    "gpt2": lambda: GPTConfig.from_preset("gpt2"),
}


def run_ours(model, prompt, n, use_cache, guesses=0, stats=None):
    start = time.perf_counter()
    if guesses:
        steps = list(speculative_ids(model, prompt, n, GREEDY, num_guesses=guesses, stats=stats))
    else:
        steps = list(generate_ids(model, prompt, n, GREEDY, use_cache=use_cache))
    seconds = time.perf_counter() - start
    return torch.stack(steps, dim=1), seconds


def run_hf(hf, prompt, n, use_cache, guesses=0):
    extra = {"prompt_lookup_num_tokens": guesses} if guesses else {}
    start = time.perf_counter()
    with torch.inference_mode():
        out = hf.generate(
            prompt,
            attention_mask=torch.ones_like(prompt),
            max_new_tokens=n,
            min_new_tokens=n,
            do_sample=False,
            use_cache=use_cache,
            pad_token_id=0,
            eos_token_id=None,
            **extra,
        )
    seconds = time.perf_counter() - start
    return out[:, prompt.shape[1] :], seconds


def first_difference(a, b) -> int | None:
    """The first step where two (B, n) token tensors differ, or None if identical."""
    diff = (a != b).any(dim=0).nonzero()
    return None if diff.numel() == 0 else int(diff[0])


def weight_bytes(model) -> int:
    """Bytes of the weights one decode step reads: every matrix, but one row of each embedding."""
    total = sum(p.numel() * p.element_size() for p in model.parameters())
    wpe = getattr(model.transformer, "wpe", None)
    if wpe is not None:
        total -= wpe.weight.numel() * wpe.weight.element_size()
    if not model.config.tie_embeddings:  # an untied input embedding is only looked up
        total -= model.transformer.wte.weight.numel() * model.transformer.wte.weight.element_size()
    return total


def int8_rows(args, name, model, prompt, rows) -> list[dict]:
    """Ours with int8 weights (plain and prompt lookup), against HF's fp32 plain row.

    "same tokens" here compares with our fp32 greedy tokens: int8 changes the outputs.
    """
    plain = next(
        r
        for r in rows
        if r["model"] == name and r["batch"] == 1 and r["cache"] and not r["guesses"]
    )
    quantized = quantize_int8(copy.deepcopy(model))
    n_bytes = sum(
        m.weight_int8.numel() + 2 * m.scale.numel()
        for m in quantized.modules()
        if isinstance(m, Int8Linear)
    )
    fp32_tokens, _ = run_ours(model, prompt, args.new_tokens, True)
    run_ours(quantized, prompt, 4, True)  # warm-up
    out = []
    for guesses in (0, args.speculative) if args.speculative else (0,):
        stats = {}
        tokens, seconds = run_ours(quantized, prompt, args.new_tokens, True, guesses, stats)
        passes = stats.get("forward_passes", args.new_tokens)
        diff = first_difference(tokens, fp32_tokens)
        row = {
            "model": name,
            "batch": 1,
            "cache": True,
            "guesses": guesses,
            "int8": True,
            "new_tokens": args.new_tokens,
            "ours_tok_s": args.new_tokens / seconds,
            "hf_tok_s": plain["hf_tok_s"],
            "same_tokens_as_fp32": diff is None,
            "first_difference_from_fp32": diff,
            "forward_passes": passes,
            "gb_s": n_bytes * passes / seconds / 1e9,
            "load": os.getloadavg()[0],
        }
        out.append(row)
        decoding = "int8, " + (f"prompt lookup {guesses}" if guesses else "plain")
        same = "= fp32" if diff is None else f"fp32's until step {diff}"
        print(
            f"| 1 | yes | {decoding} | {args.new_tokens} | {row['ours_tok_s']:.1f} | "
            f"{row['hf_tok_s']:.1f} (fp32) | {row['ours_tok_s'] / row['hf_tok_s']:.2f}x | "
            f"{same} | {passes} | {row['gb_s']:.1f} |",
            flush=True,
        )
    return out


def trained_checkpoint(args) -> list[dict]:
    """Plain vs speculative decoding (and int8) on a trained model, on real text."""
    from byollm.model.checkpoint import load_for_inference

    model, tokenizer = load_for_inference(args.checkpoint, device="cpu")
    prompt = torch.tensor([tokenizer.encode(args.prompt)])
    n_new = min(args.new_tokens, model.config.block_size - prompt.shape[1] + 1)
    print(
        f"\n## trained checkpoint {args.checkpoint}: {model.num_params() / 1e6:.1f}M params, "
        f"prompt {args.prompt!r} ({prompt.shape[1]} tokens), {n_new} new tokens"
    )
    print(
        "| sampling | weights | decoding | tok/s | speed-up | forward passes | guesses accepted "
        "| same tokens as fp32 plain |"
    )
    print("|---|---|---|---|---|---|---|---|")
    variants = [("greedy", GREEDY, model), ("T=0.8, top-k 40", SamplingConfig(0.8, 40), model)]
    if args.int8:
        variants.append(("greedy", GREEDY, quantize_int8(copy.deepcopy(model))))
    rows, samples, reference = [], [], {}
    for label, sampling, net in variants:
        weights = "int8" if getattr(net, "quantized", None) else "fp32"
        for guesses in (0, args.speculative):
            stats, gen = {}, torch.Generator().manual_seed(0)
            list(generate_ids(net, prompt, 8, sampling))  # warm-up
            start = time.perf_counter()
            if guesses:
                out = list(
                    speculative_ids(
                        net,
                        prompt,
                        n_new,
                        sampling,
                        num_guesses=guesses,
                        generator=gen,
                        stats=stats,
                    )
                )
            else:
                out = list(generate_ids(net, prompt, n_new, sampling, generator=gen))
            tok_s = n_new / (time.perf_counter() - start)
            tokens = torch.cat(out)
            reference.setdefault(label, (tokens, tok_s))  # the fp32 plain run comes first
            same = "-"
            if label == "greedy":
                diff = first_difference(tokens[None], reference[label][0][None])
                same = "yes" if diff is None else f"until step {diff}"
            row = {
                "model": "checkpoint",
                "sampling": label,
                "weights": weights,
                "guesses": guesses,
                "tok_s": tok_s,
                "forward_passes": stats.get("forward_passes", n_new),
                "guessed": stats.get("guessed", 0),
                "accepted": stats.get("accepted", 0),
            }
            rows.append(row)
            accepted = f"{row['accepted']} / {row['guessed']}" if guesses else "-"
            print(
                f"| {label} | {weights} | "
                f"{f'prompt lookup {guesses}' if guesses else 'plain'} | {tok_s:.1f} | "
                f"{tok_s / reference[label][1]:.2f}x | {row['forward_passes']} | {accepted} | "
                f"{same} |",
                flush=True,
            )
            if guesses:
                samples.append(
                    f"sample ({label}, {weights}, prompt lookup): "
                    + repr(tokenizer.decode(tokens.tolist())[:160])
                )
    print("\n" + "\n\n".join(samples))
    return rows


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", default="shakespeare,gpt2")
    parser.add_argument("--batch-sizes", default="1,8")
    parser.add_argument("--new-tokens", type=int, default=256)
    parser.add_argument("--prompt-tokens", type=int, default=16)
    parser.add_argument(
        "--no-cache-tokens",
        type=int,
        default=None,
        help="new tokens for the (slow) no-cache runs (default: --new-tokens)",
    )
    parser.add_argument("--full", action="store_true", help="also GPT-2 no-cache at batch > 1")
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (1 is far faster on a machine shared with others)",
    )
    parser.add_argument(
        "--speculative",
        type=int,
        default=4,
        help="tokens guessed per step by prompt lookup in the speculative rows (batch 1, "
        "cache; Hugging Face gets prompt_lookup_num_tokens=K); 0 skips those rows",
    )
    parser.add_argument(
        "--checkpoint",
        default=None,
        help="also time plain against speculative decoding on this trained checkpoint "
        "(ours only: any architecture), greedy and sampled, on --prompt",
    )
    parser.add_argument("--prompt", default="ROMEO:\nWhat light is this? ", help="for --checkpoint")
    parser.add_argument(
        "--no-int8",
        dest="int8",
        action="store_false",
        help="skip the int8-weight rows (ours only, batch 1: `byollm.model.quantize`)",
    )
    parser.add_argument("--json", default=None, help="write the rows to this JSON file")
    args = parser.parse_args(argv)
    from transformers import GPT2LMHeadModel
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(
        f"# {platform.processor() or platform.machine()}, torch {torch.__version__}, "
        f"{torch.get_num_threads()} threads, load {os.getloadavg()[0]:.2f} at start"
    )
    rows = []
    for name in args.models.split(","):
        config = MODELS[name]()
        model = GPT(config).eval()
        with tempfile.TemporaryDirectory() as tmp:
            to_hf(model, tmp)
            hf = GPT2LMHeadModel.from_pretrained(tmp, attn_implementation="sdpa").eval()
        n_bytes = weight_bytes(model)
        print(
            f"\n## {name}: {model.num_params() / 1e6:.1f}M params, "
            f"{n_bytes / 1e6:.0f} MB of fp32 weights read per decode step"
        )
        print(
            "| batch | cache | decoding | new tokens | ours tok/s | HF tok/s | ours / HF "
            "| same tokens | forward passes (ours) | GB/s (ours) |"
        )
        print("|---|---|---|---|---|---|---|---|---|---|")
        for batch_size in map(int, args.batch_sizes.split(",")):
            prompt = torch.randint(0, config.vocab_size, (batch_size, args.prompt_tokens))
            run_ours(model, prompt, 4, True)  # warm up kernels and allocator
            run_hf(hf, prompt, 4, True)
            no_cache_tokens = args.no_cache_tokens or args.new_tokens
            runs = [(True, args.new_tokens, 0), (False, no_cache_tokens, 0)]
            if batch_size == 1 and args.speculative:
                runs.insert(1, (True, args.new_tokens, args.speculative))
            for use_cache, n_new, guesses in runs:
                if not use_cache and name == "gpt2" and batch_size > 1 and not args.full:
                    continue
                stats = {}
                ours, t_ours = run_ours(model, prompt, n_new, use_cache, guesses, stats)
                theirs, t_hf = run_hf(hf, prompt, n_new, use_cache, guesses)
                tokens = batch_size * n_new
                passes = stats.get("forward_passes", n_new)
                diff = first_difference(ours, theirs)
                row = {
                    "model": name,
                    "batch": batch_size,
                    "cache": use_cache,
                    "guesses": guesses,
                    "new_tokens": n_new,
                    "ours_tok_s": tokens / t_ours,
                    "hf_tok_s": tokens / t_hf,
                    "same_tokens": diff is None,
                    "first_difference": diff,
                    "load": os.getloadavg()[0],
                    "forward_passes": passes,
                    "gb_s": n_bytes * passes / t_ours / 1e9,
                }
                rows.append(row)
                same = "yes" if diff is None else f"no (step {diff})"
                decoding = f"prompt lookup {guesses}" if guesses else "plain"
                print(
                    f"| {batch_size} | {'yes' if use_cache else 'no'} | {decoding} | {n_new} | "
                    f"{row['ours_tok_s']:.1f} | {row['hf_tok_s']:.1f} | "
                    f"{row['ours_tok_s'] / row['hf_tok_s']:.2f}x | {same} | {passes} | "
                    f"{row['gb_s']:.1f} |",
                    flush=True,
                )
            if batch_size == 1 and args.int8:
                rows += int8_rows(args, name, model, prompt, rows)
            if no_cache_tokens != args.new_tokens and use_cache is False:
                # The same length with the cache, for a like-for-like speed-up.
                _, t_same = run_ours(model, prompt, no_cache_tokens, True)
                rows[-1]["ours_cache_same_length_tok_s"] = batch_size * no_cache_tokens / t_same
        for r in rows:
            if r["model"] == name and not r["cache"]:
                with_cache = r.get("ours_cache_same_length_tok_s") or next(
                    c["ours_tok_s"]
                    for c in rows
                    if c["model"] == name
                    and c["cache"]
                    and c["batch"] == r["batch"]
                    and not c["guesses"]
                )
                print(
                    f"KV cache speed-up, ours, batch {r['batch']}, {r['new_tokens']} new "
                    f"tokens: {with_cache / r['ours_tok_s']:.1f}x"
                )
    if args.checkpoint:
        rows += trained_checkpoint(args)
    print(f"# load {os.getloadavg()[0]:.2f} at end")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)


if __name__ == "__main__":
    main()
