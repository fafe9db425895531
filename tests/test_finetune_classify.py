"""Classification fine-tuning: data reading, splits, the last-real-token head, CLI, bad input."""

from __future__ import annotations

import json
import sys

import pytest
import torch
import train_helpers
from conftest import shared_file
from finetune_helpers import WORDS, spam_like_csv, tiny_checkpoint

from byollm.cli import main
from byollm.errors import ByollmError
from byollm.finetune import classify, finetune_classifier
from byollm.finetune.checkpoint import load_finetuned, save_finetuned
from byollm.finetune.classify import Classifier, padded_batch
from byollm.finetune.records import (
    balanced_split,
    columns,
    read_records,
    read_sms_spam,
    stratified_split,
)
from byollm.model import load_model
from byollm.tokenizer import TOKENIZER_FILE, BPETokenizer


@pytest.fixture(autouse=True)
def _one_thread():
    with train_helpers.single_thread():
        yield


def test_sms_spam_pinned_parser_and_the_books_split_sizes():
    records = read_sms_spam(shared_file("sms_spam/SMSSpamCollection"))
    assert len(records) == 5574
    rows = columns(records, ["text", "label"], "sms")
    train, val, test = balanced_split(rows, lambda r: r[1])
    assert (len(train), len(val), len(test)) == (1045, 149, 300)  # 2 x 747 = 1494
    assert sum(r[1] == "spam" for r in train + val + test) == 747
    again = balanced_split(rows, lambda r: r[1])
    assert again[2] == test  # seeded
    s_train, s_val, s_test = stratified_split(rows, lambda r: r[1])
    assert len(s_train) + len(s_val) + len(s_test) == 5574
    assert sum(r[1] == "spam" for r in s_test) == 747 - int(747 * 0.7) - int(747 * 0.1)


def test_head_reads_the_last_real_token_not_a_pad(tmp_path):
    gpt = tiny_checkpoint(tmp_path)
    model = Classifier(gpt, 2).eval()
    short, long = [5, 6, 7], [5, 6, 7, 8, 9, 10]
    alone, lengths = padded_batch([short], 0, "cpu")
    batch, batch_lengths = padded_batch([short, long], 0, "cpu")
    assert batch.shape == (2, 6) and batch_lengths.tolist() == [3, 6]
    torch.testing.assert_close(model(batch, batch_lengths)[0], model(alone, lengths)[0])


def test_mean_pool_averages_the_real_tokens_only(tmp_path):
    gpt = tiny_checkpoint(tmp_path)
    model = Classifier(gpt, 2, pool="mean").eval()
    short, long = [5, 6, 7], [5, 6, 7, 8, 9, 10]
    alone, lengths = padded_batch([short], 0, "cpu")
    batch, batch_lengths = padded_batch([short, long], 0, "cpu")
    # padding the short text to the long one's length changes nothing it is scored on
    torch.testing.assert_close(model(batch, batch_lengths)[0], model(alone, lengths)[0])
    with torch.no_grad():
        by_hand = model.head(gpt.hidden_states(alone)[0].mean(0)).float()
        last = Classifier(gpt, 2).eval()
        last.head.load_state_dict(model.head.state_dict())
    torch.testing.assert_close(model(alone, lengths)[0], by_hand)
    assert not torch.allclose(last(alone, lengths)[0], by_hand)  # the two pools differ


def test_the_pool_is_saved_and_classify_reads_it_back(tmp_path, capsys):
    tiny_checkpoint(tmp_path / "base")
    data = spam_like_csv(tmp_path / "data.csv", n=90)
    args = ["finetune", "classify", "--checkpoint", str(tmp_path / "base"), "--data", str(data)]
    settings = ["--train", "all", "--epochs", "3", "--lr", "3e-3", "--split", "stratified"]
    out = tmp_path / "clf"
    assert main([*args, "--out", str(out), "--pool", "mean", *settings, "--device", "cpu"]) == 0
    assert json.loads((out / "config.json").read_text())["classifier"]["pool"] == "mean"
    model, _, _ = load_finetuned(out, device="cpu")
    assert model.pool == "mean"
    texts = ["apple river stone", "music seven"]
    assert [label for label, _ in classify(out, texts, device="cpu")] == ["a", "b"]
    with pytest.raises(SystemExit):  # argparse's usage error
        main([*args, "--out", str(tmp_path / "x"), "--pool", "max"])
    assert "invalid choice: 'max'" in capsys.readouterr().err
    with pytest.raises(ByollmError, match="pool 'max': choose last or mean"):
        finetune_classifier(tmp_path / "base", data, out=tmp_path / "x", pool="max")
    assert not (tmp_path / "x").exists()
    config = json.loads((out / "config.json").read_text())
    config["classifier"]["pool"] = "max"
    (out / "config.json").write_text(json.dumps(config))
    with pytest.raises(
        ByollmError, match="config.json: classifier pool 'max': choose last or mean"
    ):
        load_finetuned(out, device="cpu")
    # a folder written before --pool and --lowercase reads the last token of the text as given
    del config["classifier"]["pool"], config["classifier"]["lowercase"]
    (out / "config.json").write_text(json.dumps(config))
    model, _, _ = load_finetuned(out, device="cpu")
    assert model.pool == "last" and len(classify(out, ["APPLE river"], device="cpu")) == 1


def test_lowercase_is_saved_and_classify_lowercases_what_it_reads(tmp_path, capsys):
    tiny_checkpoint(tmp_path / "base")
    data = spam_like_csv(tmp_path / "data.csv", n=90)
    out = tmp_path / "clf"
    args = ["finetune", "classify", "--checkpoint", str(tmp_path / "base"), "--data", str(data)]
    settings = ["--train", "all", "--epochs", "2", "--lr", "3e-3", "--split", "stratified"]
    assert main([*args, "--out", str(out), "--lowercase", *settings, "--device", "cpu"]) == 0
    assert json.loads((out / "config.json").read_text())["classifier"]["lowercase"] is True
    texts = ["apple river stone", "music seven"]
    lower = classify(out, texts, device="cpu")
    assert classify(out, [t.upper() for t in texts], device="cpu") == lower
    # the same words in capitals are other tokens to a model trained without --lowercase
    cased = tmp_path / "cased"
    assert main([*args, "--out", str(cased), *settings, "--device", "cpu"]) == 0
    assert json.loads((cased / "config.json").read_text())["classifier"]["lowercase"] is False
    assert classify(cased, [t.upper() for t in texts], device="cpu") != classify(
        cased, texts, device="cpu"
    )
    config = json.loads((out / "config.json").read_text())
    config["classifier"]["lowercase"] = "yes"
    (out / "config.json").write_text(json.dumps(config))
    with pytest.raises(ByollmError, match="lowercase must be true or false"):
        load_finetuned(out, device="cpu")


def test_finetune_learns_a_separable_task_and_classify_predicts(tmp_path, capsys):
    tiny_checkpoint(tmp_path / "base")
    data = spam_like_csv(tmp_path / "data.csv", n=90)
    summary = finetune_classifier(
        tmp_path / "base",
        data,
        out=tmp_path / "clf",
        trainable="all",
        split="stratified",
        epochs=3,
        lr=3e-3,
        device="cpu",
        log=lambda *a: None,
    )
    assert summary["test"]["accuracy"] >= 0.9
    assert summary["labels"] == ["a", "b"] and summary["sizes"]["test"] == 18
    assert len(summary["test"]["confusion"]) == 2
    config = json.loads((tmp_path / "clf" / "config.json").read_text())
    assert config["classifier"]["labels"] == ["a", "b"]
    load_model(tmp_path / "clf")  # still an ordinary checkpoint
    assert [
        label
        for label, _ in classify(
            tmp_path / "clf", ["apple river stone", "music seven"], device="cpu"
        )
    ] == ["a", "b"]
    assert main(["classify", "--checkpoint", str(tmp_path / "clf"), "happy table"]) == 0
    assert capsys.readouterr().out.startswith("b\t")


def test_lora_classifier_saves_an_adapter_and_merges_to_the_same_predictions(tmp_path, capsys):
    tiny_checkpoint(tmp_path / "base")
    data = spam_like_csv(tmp_path / "data.csv", n=90)
    code = main(
        [
            "finetune",
            "classify",
            "--checkpoint",
            str(tmp_path / "base"),
            "--data",
            str(data),
            "--out",
            str(tmp_path / "lora"),
            "--lora",
            "--lora-rank",
            "4",
            "--epochs",
            "1",
            "--lr",
            "3e-3",
            "--device",
            "cpu",
            "--split",
            "stratified",
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "test:" in out and "confusion" in out
    assert (tmp_path / "lora" / "adapter.json").exists()
    assert not (tmp_path / "lora" / "model.safetensors").exists()
    texts = [" ".join(WORDS[i : i + 3]) for i in range(8)]
    before = classify(tmp_path / "lora", texts, device="cpu")
    assert main(["merge-lora", str(tmp_path / "lora"), "--out", str(tmp_path / "merged")]) == 0
    after = classify(tmp_path / "merged", texts, device="cpu")
    assert [a for a, _ in after] == [b for b, _ in before]
    assert all(abs(a - b) < 1e-4 for (_, a), (_, b) in zip(after, before))


@pytest.mark.parametrize(
    "content, suffix, args, message",
    [
        (
            "text,label\nhi,a\n",
            ".csv",
            {"label_column": "kind"},
            "no column 'kind'; the records have label, text",
        ),
        ("", ".csv", {}, "the file is empty"),
        ("text,label\nhi,a\nyo,a\n", ".csv", {}, "has only one class"),
        (
            "\n".join(["text,label"] + [f"t{i},l{i}" for i in range(150)]),
            ".csv",
            {},
            "150 distinct values",
        ),
        (
            '{"text": "hi", "label": "a"}\n{"text": "yo"}\n',
            ".jsonl",
            {},
            "1 record\\(s\\) lack a value",
        ),
        ('{"text": "hi"\n', ".jsonl", {}, ":1: not valid JSON"),
        ("text\tlabel\nhi\n", ".tsv", {}, "line 2 has a different number of fields"),
    ],
)
def test_bad_data_is_one_clear_error(tmp_path, content, suffix, args, message):
    tiny_checkpoint(tmp_path / "base")
    data = tmp_path / f"data{suffix}"
    data.write_text(content)
    with pytest.raises(ByollmError, match=message):
        finetune_classifier(tmp_path / "base", data, out=tmp_path / "o", device="cpu", **args)


def test_cli_errors_are_one_line(tmp_path, capsys):
    tiny_checkpoint(tmp_path / "base")
    data = spam_like_csv(tmp_path / "d.csv")
    base = ["finetune", "classify", "--checkpoint", str(tmp_path / "base"), "--data", str(data)]
    assert main([*base, "--out", str(tmp_path / "o"), "--train", "last:9"]) == 2
    assert "only 2 blocks" in capsys.readouterr().err
    assert main([*base, "--out", str(tmp_path / "o"), "--train", "some"]) == 2
    assert "choose head, last:N" in capsys.readouterr().err
    assert read_records(data)[0].keys() == {"text", "label"}
    assert main(["classify", "--checkpoint", str(tmp_path / "base"), "x"]) == 2
    assert "not a classifier" in capsys.readouterr().err


def test_texts_longer_than_the_window_are_cut_and_counted(tmp_path):
    tiny_checkpoint(tmp_path / "base", block_size=32)
    lines = ["text,label"] + [
        ("apple " * 40 + ",a") if i % 2 else "river stone,b" for i in range(60)
    ]
    data = tmp_path / "long.csv"
    data.write_text("\n".join(lines) + "\n")
    said = []
    summary = finetune_classifier(
        tmp_path / "base", data, out=tmp_path / "o", epochs=1, device="cpu", log=said.append
    )
    assert summary["truncated"] == 30
    assert "30 of 60 texts were cut to 32 tokens" in said[0]


def test_an_adapter_whose_base_changed_is_one_line_and_nothing_is_written(tmp_path, capsys):
    tiny_checkpoint(tmp_path / "base")
    data = spam_like_csv(tmp_path / "d.csv", n=60)
    args = ["finetune", "classify", "--checkpoint", str(tmp_path / "base"), "--data", str(data)]
    assert main([*args, "--out", str(tmp_path / "lora"), "--lora", "--epochs", "1"]) == 0
    capsys.readouterr()
    tiny_checkpoint(tmp_path / "base", seed=5)  # the base is retrained in place
    for command in (
        ["classify", "--checkpoint", str(tmp_path / "lora"), "apple river"],
        ["merge-lora", str(tmp_path / "lora"), "--out", str(tmp_path / "merged")],
    ):
        assert main(command) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and "this adapter was trained on another base model" in err[0]
    assert not (tmp_path / "merged").exists()


def test_a_save_that_fails_midway_leaves_no_half_model(tmp_path, monkeypatch):
    """The fine-tuned folder appears whole or not at all: a failure after the weights (here the
    head's file) leaves no `--out` folder, and a damaged head is named on load."""
    from safetensors.torch import save_file as real_save_file

    import byollm.finetune.checkpoint as ft_checkpoint

    base = tmp_path / "base"
    gpt = tiny_checkpoint(base)
    tokenizer = BPETokenizer.load(base / TOKENIZER_FILE)
    classifier = Classifier(gpt, 2)
    task = {"classifier": {"labels": ["a", "b"]}}

    def failing_save_file(tensors, path, *args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ft_checkpoint, "save_file", failing_save_file)
    with pytest.raises(ByollmError, match="fine-tuned model.*nothing was written"):
        save_finetuned(tmp_path / "out", classifier, tokenizer, task)
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["base"]  # no temporary folder left

    monkeypatch.setattr(ft_checkpoint, "save_file", real_save_file)
    out = save_finetuned(tmp_path / "out", classifier, tokenizer, task)
    root, _, meta = load_finetuned(out, device="cpu")
    assert meta["classifier"]["labels"] == ["a", "b"]
    head = out / ft_checkpoint.HEAD_FILE
    head.write_bytes(head.read_bytes()[:-1] + b"\0")
    with pytest.raises(ByollmError, match="head.safetensors: damaged"):
        load_finetuned(out, device="cpu")


def test_seed_varies_the_training_not_the_split(tmp_path, monkeypatch, capsys):
    """Several --seed values score the very same test messages; --split-seed draws the split."""
    tiny_checkpoint(tmp_path / "base")
    data = spam_like_csv(tmp_path / "data.csv", n=60)
    drawn = []
    records_lib = sys.modules["byollm.finetune.classify"].records_lib
    real_split = records_lib.balanced_split

    def recording_split(rows, label_of, seed):
        train, val, test = real_split(rows, label_of, seed=seed)
        drawn.append(test)
        return train, val, test

    monkeypatch.setattr(records_lib, "balanced_split", recording_split)
    heads = []
    for i, seeds in enumerate([{"seed": 1}, {"seed": 2}, {"seed": 1, "split_seed": 7}]):
        finetune_classifier(
            tmp_path / "base",
            data,
            out=tmp_path / f"o{i}",
            epochs=1,
            device="cpu",
            log=lambda *a: None,
            **seeds,
        )
        head = load_finetuned(tmp_path / f"o{i}", device="cpu")[0].head
        heads.append(next(iter(head.state_dict().values())))
    assert drawn[0] == drawn[1] != drawn[2]
    assert not torch.equal(heads[0], heads[1])  # the seed did change the training

    args = ["finetune", "classify", "--checkpoint", str(tmp_path / "base"), "--data", str(data)]
    assert main([*args, "--out", str(tmp_path / "bad"), "--split-seed", "-1"]) == 2
    err = capsys.readouterr().err
    assert "split_seed" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "bad").exists()


def test_a_linear_schedule_decays_the_learning_rate_to_zero(tmp_path, monkeypatch):
    """`--schedule linear`: the lr falls from --lr to zero over epochs x batches per epoch
    (the lr of every step is recorded here); constant keeps it; another name is refused."""
    import torch.nn.functional as F

    from byollm.finetune.loop import fit, total_steps

    optimizers = []
    real_adamw = torch.optim.AdamW
    monkeypatch.setattr(
        torch.optim,
        "AdamW",
        lambda *a, **k: optimizers.append(real_adamw(*a, **k)) or optimizers[-1],
    )
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    batches = [(torch.randn(4, 3), torch.tensor([0, 1, 0, 1])) for _ in range(5)]
    lrs = []

    def loss_of(m, batch):
        lrs.append(optimizers[-1].param_groups[0]["lr"])
        return F.cross_entropy(m(batch[0]), batch[1]), 4

    steps = total_steps("linear", 2, 20, 4)
    result = fit(model, loss_of, lambda e: batches, epochs=2, lr=0.1, decay_steps=steps, log=str)
    assert steps == 10 and lrs == pytest.approx([0.1 * (1 - k / 10) for k in range(10)])
    assert result["history"][-1]["lr"] == pytest.approx(0.01)  # the last step's
    lrs.clear()
    fit(model, loss_of, lambda e: batches, epochs=1, lr=0.1, log=str)
    assert lrs == [0.1] * 5 and total_steps("constant", 2, 20, 4) is None

    base = tmp_path / "base"
    tiny_checkpoint(base)
    data = spam_like_csv(tmp_path / "data.csv", n=30)
    args = ["finetune", "classify", "--checkpoint", str(base), "--data", str(data)]
    with pytest.raises(ByollmError, match="schedule 'cosine': choose constant"):
        finetune_classifier(base, data, out=tmp_path / "o", schedule="cosine")
    assert main([*args, "--out", str(tmp_path / "o"), "--schedule", "linear", "--epochs", "2"]) == 0
    assert optimizers[-1].param_groups[0]["lr"] < 5e-5 / 2  # decayed over the 2 epochs
