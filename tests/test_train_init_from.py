"""`train --init-from`: a new run starts from a checkpoint's weights and tokenizer only."""

from __future__ import annotations

import pytest
import test_train_loop
import train_helpers

from byollm.cli import main
from byollm.errors import ByollmError
from byollm.model import load_model
from byollm.tokenizer import TOKENIZER_FILE
from byollm.train import load_train_config, train
from byollm.train.checkpoint import load_train_state
from byollm.train.metrics import read_metrics

# the train tests' tiny model, shorter and without samples
TINY = {
    **test_train_loop.TINY,
    "max_steps": "10",
    "eval_rows": "8",
    "warmup_steps": "2",
    "sample_tokens": "0",
}


@pytest.fixture(autouse=True)
def _one_thread():
    with train_helpers.single_thread():
        yield


def run(tmp_path, corpus, name, **extra):
    overrides = {**TINY, "corpus": str(corpus), "out_dir": str(tmp_path / "runs"), "name": name}
    config = load_train_config(None, {k: str(v) for k, v in {**overrides, **extra}.items()})
    return train(config, progress=False, log=lambda *a: None)


@pytest.fixture
def base_run(tmp_path):
    corpus = train_helpers.shakespeare_excerpt(tmp_path, 20_000)
    run(tmp_path, corpus, "base")
    return tmp_path / "runs" / "base" / "checkpoint"


def test_init_from_takes_weights_model_and_tokenizer_but_not_the_optimizer(tmp_path, base_run):
    # a new corpus whose characters the base tokenizer knows; the preset's model shape differs
    text = (base_run.parent.parent.parent / "shakespeare-20k.txt").read_text()[5000:15000]
    corpus = tmp_path / "new.txt"
    corpus.write_text(text)
    run(tmp_path, corpus, "tuned", init_from=base_run, max_steps=1, **{"model.n_embd": "64"})
    tuned = tmp_path / "runs" / "tuned" / "checkpoint"
    base_model, tuned_model = load_model(base_run), load_model(tuned)
    assert tuned_model.config == base_model.config  # the checkpoint's shape, not the preset's
    assert (tuned / TOKENIZER_FILE).read_text() == (base_run / TOKENIZER_FILE).read_text()
    state = load_train_state(tuned)
    assert state["step"] == 1  # a fresh schedule: step 0 -> 1, not 10 -> 11
    # one AdamW step with a fresh optimizer moves each weight by at most ~lr; a run from
    # scratch would differ by the whole init
    diffs = [
        (a - b).abs().max().item()
        for a, b in zip(base_model.state_dict().values(), tuned_model.state_dict().values())
    ]
    assert max(diffs) < 0.05
    first_loss = [r for r in read_metrics(tuned.parent / "metrics.jsonl") if r["kind"] == "eval"]
    assert first_loss[0]["val_loss"] < 3.5  # a random 2-layer model starts near ln(65) = 4.2


def test_init_from_refuses_prepared_data_of_another_tokenizer(tmp_path, base_run):
    corpus = train_helpers.shakespeare_excerpt(tmp_path, 20_000)
    other = tmp_path / "other.txt"
    other.write_text("entirely different characters: 0123456789 {}[]<>@#$%^&*\n" * 50)
    run(tmp_path, other, "other")  # prepares data with another char vocabulary
    from byollm.train.config import default_data_dir

    other_data = default_data_dir(str(other), "char")
    with pytest.raises(ByollmError, match="tokenizer .* differs from the prepared data"):
        run(tmp_path, corpus, "bad", init_from=base_run, data_dir=other_data)


def test_init_from_errors_are_one_line(tmp_path, base_run, capsys):
    corpus = train_helpers.shakespeare_excerpt(tmp_path, 20_000)
    code = main(["train", "--init-from", str(tmp_path / "nope"), "--corpus", str(corpus)])
    assert code == 2
    assert "init_from: checkpoint directory not found" in capsys.readouterr().err
    code = main(["train", "--init-from", str(base_run.parent), "--corpus", str(corpus)])
    assert code == 2
    assert "is a run folder" in capsys.readouterr().err
