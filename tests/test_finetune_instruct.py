"""Instruction tuning: the template chat uses, masked losses, held-out scores, bad input."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import train_helpers
from finetune_helpers import repeat_records, tiny_checkpoint
from hypothesis import given
from hypothesis import strategies as st

from byollm.cli import main
from byollm.errors import ByollmError
from byollm.finetune import finetune_instruct
from byollm.finetune.instruct import alpaca_prompt, collate, encode_pairs, to_pairs
from byollm.finetune.metrics import exact_match, rouge_l
from byollm.generate.chat import format_instruct
from byollm.model.checkpoint import read_checkpoint_config, save_checkpoint
from byollm.tokenizer import TOKENIZER_FILE, CharTokenizer, load_tokenizer


@pytest.fixture(autouse=True)
def _one_thread():
    with train_helpers.single_thread():
        yield


def test_prompt_is_the_chat_template_and_chat_records_become_its_turns():
    assert alpaca_prompt("Say hi") == format_instruct([], "Say hi")
    with_input = alpaca_prompt("Translate.", "Hallo")
    assert with_input.endswith(
        "### Instruction:\nTranslate.\n\n### Input:\nHallo\n\n### Response:\n"
    )
    messages = [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"},
        {"role": "user", "content": "Bye"},
        {"role": "assistant", "content": "Ciao"},
    ]
    [(prompt, response)] = to_pairs([{"messages": messages}], "x")
    assert prompt == format_instruct([("Hi", "Hello")], "Bye") and response == "Ciao"
    with pytest.raises(ByollmError, match="must alternate user, assistant"):
        to_pairs([{"messages": [{"role": "system", "content": "s"}, *messages[:2]]}], "x")
    with pytest.raises(ByollmError, match="1 record\\(s\\) lack 'instruction' and 'output'"):
        to_pairs([{"instruction": "a", "output": "b"}, {"instruction": "c"}], "x")


def test_padding_and_optionally_the_prompt_are_masked_and_long_examples_counted(tmp_path):
    tiny_checkpoint(tmp_path)
    tokenizer = load_tokenizer(tmp_path / TOKENIZER_FILE)
    pairs = [("prompt one ", "apple"), ("p ", "river stone cloud")]
    examples, cut, dropped = encode_pairs(tokenizer, pairs, block_size=96)
    assert (cut, dropped) == (0, 0) and examples[0][0][-1] == tokenizer.eot_id
    x, y = collate(examples, tokenizer.eot_id, False, "cpu")
    lengths = [len(ids) - 1 for ids, _ in examples]
    for row, length in enumerate(lengths):
        assert (y[row, length:] == -1).all() and (y[row, :length] != -1).all()
    _, y_masked = collate(examples, tokenizer.eot_id, True, "cpu")
    for row, (ids, prompt_len) in enumerate(examples):
        kept = y_masked[row][y_masked[row] != -1].tolist()
        assert kept == ids[prompt_len:]  # exactly the answer and its end-of-text
    _, cut, dropped = encode_pairs(
        tokenizer, [("apple " * 10, "river " * 150), ("stone " * 200, "d")], 96
    )
    assert (cut, dropped) == (1, 1)


def test_finetune_instruct_end_to_end_writes_answers_and_the_template(tmp_path, capsys):
    tiny_checkpoint(tmp_path / "base", block_size=256)
    data = repeat_records(tmp_path / "data.json", n=60)
    summary = finetune_instruct(
        tmp_path / "base",
        data,
        out=tmp_path / "tuned",
        epochs=3,
        lr=3e-3,
        batch_size=8,
        max_new_tokens=8,
        device="cpu",
        log=lambda *a: None,
    )
    assert summary["after"]["response_loss"] < summary["before"]["response_loss"] - 1.0
    assert summary["after"]["clean_share"] >= summary["before"]["clean_share"]
    answers = [json.loads(line) for line in Path(summary["answers"]).read_text().splitlines()]
    assert len(answers) == 6 and {"prompt", "reference", "answer", "rouge_l"} <= answers[0].keys()
    extras = read_checkpoint_config(tmp_path / "tuned")
    assert extras["instruct"]["template"] == "alpaca"  # what `byollm chat` looks for
    sample = [
        "sample",
        str(tmp_path / "tuned"),
        "--prompt",
        "Repeat: apple",
        "--max-new-tokens",
        "3",
        "--temperature",
        "0",
    ]
    assert main(sample) == 0
    assert capsys.readouterr().out.startswith(alpaca_prompt("Repeat: apple"))
    assert main([*sample, "--template", "none"]) == 0
    assert capsys.readouterr().out.startswith("Repeat: apple")


def test_lora_instruct_then_merge_gives_a_chat_checkpoint(tmp_path, capsys):
    tiny_checkpoint(tmp_path / "base", block_size=256)
    data = repeat_records(tmp_path / "data.json", n=20)
    args = [
        "finetune",
        "instruct",
        "--checkpoint",
        str(tmp_path / "base"),
        "--data",
        str(data),
        "--out",
        str(tmp_path / "lora"),
        "--lora",
        "--lora-rank",
        "2",
        "--epochs",
        "1",
        "--mask-prompt",
        "--max-new-tokens",
        "4",
        "--device",
        "cpu",
    ]
    assert main(args) == 0
    assert "byollm merge-lora" in capsys.readouterr().out
    assert main(["merge-lora", str(tmp_path / "lora"), "--out", str(tmp_path / "merged")]) == 0
    assert "instruct" in read_checkpoint_config(tmp_path / "merged")


def test_a_tokenizer_without_end_of_text_is_refused(tmp_path):
    save_checkpoint(
        tmp_path / "base", tiny_checkpoint(tmp_path / "base"), CharTokenizer.train("abc")
    )
    data = repeat_records(tmp_path / "data.json", n=20)
    with pytest.raises(ByollmError, match="no <\\|endoftext\\|> token"):
        finetune_instruct(tmp_path / "base", data, out=tmp_path / "o", device="cpu")


@pytest.mark.parametrize(
    "content, message",
    [
        ("  \n", "the file is empty"),
        ("[]", "expected a non-empty JSON list of records"),
        ('[{"instruction": "x"}]', "1 record\\(s\\) lack 'instruction' and 'output'"),
        (
            json.dumps([{"instruction": "apple " * 100, "output": "x"}] * 30),
            "longer than the window",
        ),
    ],
)
def test_bad_instruction_data_is_one_clear_error(tmp_path, capsys, content, message):
    tiny_checkpoint(tmp_path / "base", block_size=32)
    (tmp_path / "data.json").write_text(content)
    args = ["finetune", "instruct", "--checkpoint", str(tmp_path / "base")]
    args += ["--data", str(tmp_path / "data.json"), "--out", str(tmp_path / "o")]
    assert main(args) == 2
    captured = capsys.readouterr()
    err = captured.err.strip().splitlines()
    assert len(err) == 1 and re.search(message, err[0]), err
    if "window" in message:  # how many were dropped, said before the error
        assert "25 dropped (the prompt alone fills it)" in captured.out
    assert not (tmp_path / "o").exists()


@given(st.text(max_size=40), st.text(max_size=40))
def test_rouge_l_is_a_symmetric_f1_in_zero_one(a, b):
    score = rouge_l(a, b)
    assert 0.0 <= score <= 1.0 and score == pytest.approx(rouge_l(b, a))
    if rouge_l(a, a) > 0:
        assert rouge_l(a, a) == 1.0 and exact_match(a, a.upper() if a.isascii() else a)
