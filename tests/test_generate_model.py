"""The engine, CLI and evaluation on real (tiny) byollm models, and parity with Hugging Face."""

from __future__ import annotations

import io
import json
import sys

import pytest
import torch

from byollm.cli import main
from byollm.errors import ByollmError
from byollm.evaluate.perplexity import evaluate_ids, evaluate_text
from byollm.generate.engine import Engine, generate_ids
from byollm.generate.processors import SamplingConfig
from byollm.model import GPT, GPTConfig, save_model
from byollm.model.checkpoint import load_for_inference
from byollm.tokenizer import TOKENIZER_FILE, BPETokenizer, CharTokenizer, load_tokenizer

TEXT = "To be, or not to be, that is the question:\nWhether 'tis nobler in the mind to suffer\n"
GREEDY = SamplingConfig(temperature=0)


def tiny_model(vocab_size, block_size=32, **overrides):
    torch.manual_seed(0)
    config = GPTConfig(
        vocab_size=vocab_size,
        block_size=block_size,
        n_layer=2,
        n_head=2,
        n_embd=32,
        dropout=0.0,
        **overrides,
    )
    return GPT(config).eval()


@pytest.fixture
def checkpoint(tmp_path):
    """A tiny char-level checkpoint folder, as the trainer writes one."""
    tokenizer = CharTokenizer.train(TEXT)
    model = tiny_model(tokenizer.vocab_size)
    save_model(model, tmp_path / "ckpt", extra={"train": {"step": 0}})
    tokenizer.save(tmp_path / "ckpt" / TOKENIZER_FILE)
    return tmp_path / "ckpt"


@pytest.mark.parametrize(
    "preset_overrides", [{}, {"pos": "rope", "norm": "rmsnorm", "mlp": "swiglu", "n_kv_head": 1}]
)
def test_cache_and_no_cache_agree(preset_overrides):
    model = tiny_model(50, **preset_overrides)
    prompt = torch.randint(0, 50, (3, 5))
    with_cache = list(generate_ids(model, prompt, 20, GREEDY))
    without = list(generate_ids(model, prompt, 20, GREEDY, use_cache=False))
    assert torch.equal(torch.stack(with_cache), torch.stack(without))
    sampling = SamplingConfig(temperature=1.5, top_k=20)
    a = generate_ids(model, prompt, 20, sampling, generator=torch.Generator().manual_seed(1))
    b = generate_ids(
        model, prompt, 20, sampling, use_cache=False, generator=torch.Generator().manual_seed(1)
    )
    assert torch.equal(torch.stack(list(a)), torch.stack(list(b)))


def test_slide_past_the_window_with_a_real_cache():
    model = tiny_model(50, block_size=16)
    out = list(generate_ids(model, torch.zeros(1, 10, dtype=torch.long), 40, GREEDY))
    assert len(out) == 40
    with pytest.raises(ByollmError, match="exceed"):
        list(generate_ids(model, torch.zeros(1, 10, dtype=torch.long), 40, GREEDY, context="error"))


def test_engine_text_streaming_and_stops(checkpoint):
    model, tokenizer = load_for_inference(checkpoint, device="cpu")
    engine = Engine(model, tokenizer)
    pieces = list(engine.stream("To be", max_new_tokens=30, seed=3))
    whole = engine.generate("To be", max_new_tokens=30, seed=3)[0]
    assert "".join(pieces) == whole and len(whole) == 30  # char model: 1 token = 1 char
    # Stop string: cut where it first appears, never shown.
    stop = whole[5:7]
    cut = engine.generate("To be", max_new_tokens=30, seed=3, stop=[stop])[0]
    assert cut == whole[: whole.index(stop)]
    # Batched: num_samples rows, reproducible with a seed, prompts of different lengths too.
    rows = engine.generate(["To be", "or"], num_samples=2, max_new_tokens=10, seed=1)
    assert len(rows) == 4 and rows == engine.generate(
        ["To be", "or"], num_samples=2, max_new_tokens=10, seed=1
    )
    streamed = {}
    engine.generate(
        "To",
        num_samples=3,
        max_new_tokens=8,
        seed=2,
        on_text=lambda row, s: streamed.__setitem__(row, streamed.get(row, "") + s),
    )
    assert sorted(streamed) == [0, 1, 2]


def test_empty_prompt_starts_from_newline_or_endoftext(checkpoint):
    model, tokenizer = load_for_inference(checkpoint, device="cpu")
    assert Engine(model, tokenizer).encode_prompt("") == tokenizer.encode("\n")
    bpe = BPETokenizer(
        {bytes([b]): b for b in range(256)}, pattern="gpt2", special_tokens={"<|endoftext|>": 256}
    )
    assert Engine(tiny_model(257), bpe).encode_prompt("") == [256]


class Scripted(torch.nn.Module):
    """A "model" that always predicts the next token of a fixed script."""

    def __init__(self, script, vocab_size):
        super().__init__()
        self.script, self.vocab_size = script, vocab_size
        self.w = torch.nn.Parameter(torch.zeros(()))

    def forward(self, idx, targets=None, *, kv_cache=None):
        B, T = idx.shape
        n_generated = idx.shape[1] - 1 if kv_cache is None else kv_cache.pos + T - 1
        if kv_cache is not None:
            kv_cache.pos += T
        logits = torch.zeros(B, T, self.vocab_size)
        logits[:, -1, self.script[min(n_generated, len(self.script) - 1)]] = 10.0
        return logits, None

    def new_kv_cache(self, batch_size, max_seq_len=None):
        return type("Cache", (), {"pos": 0, "reset": lambda self: None})()


def test_streaming_never_emits_half_a_character():
    tokenizer = BPETokenizer(
        {bytes([b]): b for b in range(256)}, pattern="gpt2", special_tokens={"<|endoftext|>": 256}
    )
    text = "né 🙂 漢字!"
    script = list(text.encode()) + [256]  # one byte per token, then end of text
    engine = Engine(Scripted(script, 257), tokenizer)
    pieces = list(engine.stream("x", max_new_tokens=40, sampling=GREEDY))
    assert "".join(pieces) == text
    assert all("\ufffd" not in p for p in pieces)
    assert "🙂" in pieces  # the 4 bytes of the emoji came out as one piece


def test_prompt_longer_than_the_context(checkpoint):
    model, tokenizer = load_for_inference(checkpoint, device="cpu")
    with pytest.raises(ByollmError, match="context window"):
        Engine(model, tokenizer).generate("a" * 40, max_new_tokens=2)


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_sample_cli_streams_and_is_reproducible(checkpoint, capsys, tmp_path):
    args = [
        "sample",
        "--checkpoint",
        str(checkpoint),
        "--prompt",
        "To be",
        "--max-new-tokens",
        "12",
        "--seed",
        "5",
        "--top-k",
        "5",
        "--top-p",
        "0.9",
        "--min-p",
        "0.05",
        "--temperature",
        "0.8",
        "--num-samples",
        "2",
    ]
    code, out, err = run_cli(capsys, *args)
    assert code == 0 and out.count("To be") == 2 and "--- sample 2 ---" in out
    assert run_cli(capsys, *args)[1] == out
    prompt_file = tmp_path / "prompt.txt"
    prompt_file.write_text("Whether")
    code, out, _ = run_cli(
        capsys,
        "sample",
        "--checkpoint",
        str(checkpoint),
        "--prompt-file",
        str(prompt_file),
        "--max-new-tokens",
        "3",
    )
    assert code == 0 and out.startswith("Whether") and len(out) == len("Whether") + 3 + 1
    code, out, _ = run_cli(
        capsys,
        "sample",
        "--checkpoint",
        str(checkpoint),
        "--num-beams",
        "2",
        "--max-new-tokens",
        "4",
        "--prompt",
        "To",
    )
    assert code == 0 and out.startswith("To")


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--temperature", "-1"], "temperature"),
        (["--top-p", "1.5"], "top_p"),
        (["--prompt", "a" * 40], "context window"),
        (["--prompt", "Z"], "not in this character vocabulary"),
        (["--prompt-file", "/nonexistent/prompt.txt"], "prompt file not found"),
        (["--num-samples", "0"], "num_samples=0"),
        (["--speculative", "-2"], "speculative=-2"),
        (["--ban-token", "999"], "outside the vocabulary"),
    ],
)
def test_sample_cli_bad_input_is_one_line(checkpoint, capsys, extra, message):
    code, out, err = run_cli(capsys, "sample", "--checkpoint", str(checkpoint), *extra)
    assert code == 2 and message in err and err.count("\n") == 1


def test_sample_cli_speculative_and_banned_tokens(checkpoint, capsys):
    base = [
        "sample",
        "--checkpoint",
        str(checkpoint),
        "--prompt",
        "To be, or not to be",
        "--max-new-tokens",
        "10",
        "--temperature",
        "0",
    ]
    code, plain, _ = run_cli(capsys, *base)
    assert code == 0
    assert run_cli(capsys, *base, "--speculative", "3")[1] == plain  # same greedy text
    banned = plain[len("To be, or not to be")]  # the first generated character
    tokenizer = load_tokenizer(checkpoint / TOKENIZER_FILE)
    code, out, _ = run_cli(capsys, *base, "--ban-token", str(tokenizer.encode(banned)[0]))
    assert code == 0 and out[len("To be, or not to be")] != banned


def test_missing_or_damaged_checkpoint(checkpoint, capsys, tmp_path):
    code, _, err = run_cli(capsys, "sample", "--checkpoint", str(tmp_path / "nope"))
    assert code == 2 and "not found" in err and err.count("\n") == 1
    weights = checkpoint / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    code, _, err = run_cli(
        capsys, "eval", "--checkpoint", str(checkpoint), "--corpus", str(weights)
    )
    assert code == 2 and "model.safetensors" in err and err.count("\n") == 1
    (checkpoint / TOKENIZER_FILE).unlink()
    code, _, err = run_cli(capsys, "sample", "--checkpoint", str(checkpoint))
    assert code == 2 and TOKENIZER_FILE in err and err.count("\n") == 1


def test_run_folder_uses_best_and_positional_folder(checkpoint, capsys):
    run = checkpoint.parent / "run"
    run.mkdir()
    checkpoint.rename(run / "best")
    code, out, _ = run_cli(capsys, "sample", str(run), "--prompt", "To", "--max-new-tokens", "2")
    assert code == 0 and len(out) == 5
    code, _, err = run_cli(capsys, "sample", "--prompt", "To")
    assert code == 2 and "--checkpoint" in err


def test_chat_from_stdin(checkpoint, capsys, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO("To be\n/reset\nor not\n/quit\nignored\n"))
    code, out, _ = run_cli(
        capsys, "chat", "--checkpoint", str(checkpoint), "--max-new-tokens", "5", "--seed", "0"
    )
    assert code == 0 and out.count("\n") >= 2  # one line per reply (+ the reply's own)


def test_chat_session_keeps_and_trims_history(checkpoint):
    from byollm.generate.chat import ChatSession, format_instruct

    model, tokenizer = load_for_inference(checkpoint, device="cpu")
    session = ChatSession(Engine(model, tokenizer), mode="continue", max_new_tokens=4, seed=0)
    for _ in range(6):
        session.reply("To be")
    assert len(session.turns) == 6
    # 6 turns of "To be\n" + 4 tokens do not fit a 32-token window: old turns are dropped.
    assert len(tokenizer.encode(session.prompt_for("or"))) <= 32 - 4
    prompt = format_instruct([("Hi", "Hello.")], "Bye")
    assert prompt.endswith(
        "### Instruction:\nHi\n\n### Response:\nHello.\n\n### Instruction:\nBye\n\n### Response:\n"
    )


def test_eval_cli_json_matches_the_api(checkpoint, capsys, tmp_path):
    corpus = tmp_path / "valid.txt"
    corpus.write_text(TEXT * 3)
    code, out, _ = run_cli(
        capsys,
        "eval",
        "--checkpoint",
        str(checkpoint),
        "--corpus",
        str(corpus),
        "--stride",
        "8",
        "--json",
    )
    assert code == 0
    result = json.loads(out)
    model, tokenizer = load_for_inference(checkpoint, device="cpu")
    direct = evaluate_text(model, tokenizer, TEXT * 3, stride=8, progress=False)
    assert result["loss"] == pytest.approx(direct["loss"])
    assert result["tokens"] == len(TEXT) * 3 - 1 == result["bytes"]  # ASCII: 1 byte per char
    args = ("eval", "--checkpoint", str(checkpoint), "--corpus", str(corpus), "--split", "val")
    code, _, err = run_cli(capsys, *args)  # 6 lines: the split's cut moves to the end
    assert code == 2 and "holds no validation text" in err
    corpus.write_text(TEXT * 30)
    code, out, _ = run_cli(capsys, *args)
    assert code == 0 and "bits per byte" in out
    code, _, err = run_cli(
        capsys, "eval", "--checkpoint", str(checkpoint), "--corpus", str(corpus), "--stride", "100"
    )
    assert code == 2 and "stride" in err


# -- parity with Hugging Face on the same weights -------------------------------------------------


@pytest.fixture(scope="module")
def hf_pair(tmp_path_factory):
    transformers = pytest.importorskip("transformers")
    from transformers.utils import logging as hf_logging

    from byollm.model.convert import from_hf

    hf_logging.set_verbosity_error()
    torch.manual_seed(0)
    config = transformers.GPT2Config(
        n_layer=2,
        n_head=4,
        n_embd=64,
        vocab_size=300,
        n_positions=64,
        bos_token_id=0,
        eos_token_id=0,
    )
    hf = transformers.GPT2LMHeadModel(config).eval()
    folder = tmp_path_factory.mktemp("hf_gpt2")
    hf.save_pretrained(folder)
    return hf, from_hf(folder).eval()


def test_greedy_matches_hugging_face_generate(hf_pair):
    hf, ours = hf_pair
    prompt = torch.randint(0, 300, (2, 7), generator=torch.Generator().manual_seed(0))
    mine = torch.stack(list(generate_ids(ours, prompt, 40, GREEDY)), dim=1)
    with torch.no_grad():
        theirs = hf.generate(
            prompt,
            attention_mask=torch.ones_like(prompt),
            max_new_tokens=40,
            min_new_tokens=40,
            do_sample=False,
            pad_token_id=0,
        )
    assert torch.equal(mine, theirs[:, 7:])


def test_eval_matches_hugging_face_perplexity(hf_pair):
    from test_evaluate_perplexity import hf_guide_perplexity

    hf, ours = hf_pair
    ids = torch.randint(0, 300, (200,), generator=torch.Generator().manual_seed(1)).tolist()
    # Our window of 32 (input, target) pairs is the guide's window of 33 tokens.
    result = evaluate_ids(ours, ids, block_size=32, stride=8, progress=False)
    theirs, n_tokens = hf_guide_perplexity(hf, ids, max_length=33, stride=8)
    assert result["tokens"] == n_tokens
    assert result["perplexity"] == pytest.approx(theirs, rel=1e-5)
