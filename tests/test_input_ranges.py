"""Every number a user can type is range-checked before any work starts (issue 11, item 5).

Property tests throw random numbers (NaN, infinities, huge and negative values included) at each
numeric key of the training, model and sampling configs: a value is either accepted, and then
works, or refused with a one-line `ByollmError` naming the key. Never another exception.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from dataclasses import fields
from pathlib import Path

import pytest
import tomllib
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from byollm.cli import main
from byollm.config import MAX_SEED, check_number, from_dict, load_toml, to_toml
from byollm.device import check_device_name, pick_device
from byollm.errors import ByollmError
from byollm.evaluate.perplexity import evaluate_ids
from byollm.generate.beam import beam_search
from byollm.generate.engine import MAX_NEW_TOKENS, Engine, generate_ids
from byollm.generate.processors import SamplingConfig, choose_next_token
from byollm.model import GPT, GPTConfig, load_model, save_model
from byollm.model import checkpoint as model_checkpoint
from byollm.model import weights as model_weights
from byollm.tokenizer import CharTokenizer
from byollm.train import TrainConfig
from byollm.train.config import load_train_config
from byollm.train.schedule import lr_multiplier

ROOT = Path(__file__).resolve().parents[1]
TEXT = "To be, or not to be, that is the question:\n"

# Every kind of number a clumsy or hostile user might type.
ANY_NUMBER = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(2**80), 2**80),
    st.sampled_from([0, -1, 1e-320, 1e308, -0.0, 2**63, 2**64, 10**12]),
)


def numeric_keys(cls, prefix=""):
    """Dotted names of the int and float fields of a (nested) config dataclass."""
    keys = []
    for f in fields(cls):
        if f.name == "model":
            keys += numeric_keys(GPTConfig, "model.")
        elif f.type in ("int", "float", "int | None"):
            keys.append(prefix + f.name)
    return keys


TRAIN_KEYS = numeric_keys(TrainConfig)
SAMPLING_KEYS = [f.name for f in fields(SamplingConfig) if f.type in ("float", "int | None")]


def tiny_model(vocab_size=20, block_size=16):
    torch.manual_seed(0)
    config = GPTConfig(vocab_size=vocab_size, block_size=block_size, n_layer=2, n_head=2, n_embd=16)
    return GPT(config).eval()


# --- the training and model configs ----------------------------------------------------------


def test_the_numeric_keys_are_all_covered():
    assert {"lr", "min_lr_ratio", "threads", "seed", "model.n_layer", "model.dropout"} <= set(
        TRAIN_KEYS
    )
    assert {"temperature", "top_k", "repetition_penalty"} <= set(SAMPLING_KEYS)


@settings(max_examples=300, deadline=None)
@given(key=st.sampled_from(TRAIN_KEYS), value=ANY_NUMBER)
def test_a_train_key_is_accepted_sanely_or_refused_by_name(key, value):
    try:
        config = load_train_config(None, {key: str(value)})
    except ByollmError as e:
        assert key.rsplit(".", 1)[-1] in str(e) and "\n" not in str(e)
        return
    accepted = config.model if key.startswith("model.") else config
    number = getattr(accepted, key.rsplit(".", 1)[-1])
    assert math.isfinite(number)
    config.validate()  # what was accepted stays valid
    # the learning rate stays within [0, peak] at every point of the schedule
    for step in (0, config.warmup_steps, config.max_steps // 2, config.max_steps - 1):
        multiplier = lr_multiplier(
            step,
            total_steps=config.max_steps,
            warmup_steps=config.warmup_steps,
            schedule=config.schedule,
            min_lr_ratio=config.min_lr_ratio,
            decay_fraction=config.decay_fraction,
        )
        assert 0.0 <= multiplier <= 1.0


@pytest.mark.parametrize(
    "key, value, words",
    [
        ("min_lr_ratio", "-1", "[0, 1]"),
        ("lr", "nan", "(0, 10]"),
        ("muon_lr", "inf", "(0, 10]"),
        ("beta1", "1", "[0, 1)"),
        ("beta2", "-0.5", "[0, 1)"),
        ("muon_momentum", "1.5", "[0, 1)"),
        ("decay_fraction", "-0.1", "[0, 1]"),
        ("warmup_steps", "-5", "[0, "),
        ("threads", "100000", "[0, 1024]"),
        ("workers", "-1", "per CPU"),
        ("workers", "100000", "per CPU"),
        ("eval_rows", "1e9", "eval_rows * block_size"),
        ("batch_size", "1e9", "batch_size * block_size"),
        ("max_steps", "1e30", "[1, 1000000000]"),
        ("seed", str(2**64), "[0, 4294967295]"),
        ("sample_tokens", "1e12", "[0, 1048576]"),
        ("sample_temperature", "1e-320", "0 for greedy"),
        ("weight_decay", "1000", "lr * weight_decay"),
        ("grad_clip", "inf", ">= 0"),
        ("device", "cuda:one", "cuda:N"),
        ("dtype", "float64", "float32"),
        ("model.n_layer", "1e8", "[1, 1024]"),
        ("model.vocab_size", str(2**40), "[1, 16777216]"),
        ("model.block_size", "0", "[1, "),
        ("model.dropout", "1", "[0, 1)"),
        ("model.rope_theta", "1e300", "rope_theta"),
        ("model.norm_eps", "nan", "norm_eps"),
    ],
)
def test_each_bad_train_value_gets_one_line_naming_key_value_and_range(key, value, words):
    with pytest.raises(ByollmError) as info:
        load_train_config(None, {key: value})
    message = str(info.value)
    assert key.rsplit(".", 1)[-1] in message and words in message and "\n" not in message


def test_overrides_are_checked_together_not_one_at_a_time():
    # n_head = 6 alone does not divide the default width 128; with n_embd = 384 it does
    config = load_train_config(None, {"n_head": "6", "n_embd": "384"})
    assert (config.model.n_head, config.model.n_embd) == (6, 384)
    config = load_train_config(
        None, {"batch_size": "4", "block_size": "64", "tokens_per_step": "512"}
    )
    assert config.tokens_per_step == 512


def test_a_bad_value_in_a_preset_names_the_file(tmp_path):
    preset = tmp_path / "bad.toml"
    preset.write_text("min_lr_ratio = -0.5\n[model]\nn_layer = 4\n", encoding="utf-8")
    with pytest.raises(ByollmError, match=r"bad\.toml: min_lr_ratio=-0\.5 is out of range"):
        load_train_config(preset)


def test_a_config_changed_after_it_was_built_is_checked_again_before_training():
    from byollm.train import train

    config = TrainConfig()
    config.min_lr_ratio = -1.0  # gradient ascent at the end of the run, if it were allowed
    with pytest.raises(ByollmError, match="min_lr_ratio"):
        train(config, progress=False, log=lambda *a: None)


@settings(max_examples=200, deadline=None)
@given(
    key=st.sampled_from(
        [
            "vocab_size",
            "block_size",
            "n_layer",
            "n_head",
            "n_kv_head",
            "n_embd",
            "mlp_hidden",
            "norm_eps",
            "rope_theta",
            "dropout",
        ]
    ),
    value=ANY_NUMBER,
)
def test_a_model_value_is_accepted_or_refused_by_name(key, value):
    if isinstance(value, float) and key not in ("norm_eps", "rope_theta", "dropout"):
        value = int(value) if math.isfinite(value) and value.is_integer() else value
    try:
        config = GPTConfig(
            **{
                "vocab_size": 20,
                "block_size": 16,
                "n_layer": 1,
                "n_head": 2,
                "n_embd": 16,
                key: value,
            }
        )
    except ByollmError as e:
        assert key in str(e) or "n_embd" in str(e)
        return
    assert math.isfinite(getattr(config, key))


# --- sampling --------------------------------------------------------------------------------


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    key=st.sampled_from(SAMPLING_KEYS),
    value=ANY_NUMBER,
    logits=st.lists(st.floats(-50, 50), min_size=3, max_size=12),
)
def test_accepted_sampling_values_never_produce_nan(key, value, logits):
    try:
        sampling = SamplingConfig(**{key: value})
    except ByollmError as e:
        assert key in str(e) and "\n" not in str(e)
        return
    logits = torch.tensor([logits])
    context = torch.tensor([[0, 0, 1, 2, 0]]) % logits.shape[-1]  # repeats for the penalties
    generator = torch.Generator().manual_seed(0)
    token = choose_next_token(logits, context, sampling, generator=generator)
    assert 0 <= int(token) < logits.shape[-1]


@pytest.mark.parametrize(
    "kwargs",
    [
        {"temperature": 1e-320},
        {"temperature": 1e300},
        {"repetition_penalty": 1e308},
        {"repetition_penalty": 1e-320},
        {"frequency_penalty": 1e308},
        {"presence_penalty": -1e308},
        {"top_p": float("nan")},
        {"min_p": 2.0},
        {"typical_p": 0.0},
        {"top_k": -1},
        {"top_k": 2.5},
        {"banned_tokens": (-1,)},
    ],
)
def test_overflowing_sampling_values_are_refused(kwargs):
    (name,) = kwargs
    with pytest.raises(ByollmError, match=name):
        SamplingConfig(**kwargs)


def test_top_k_zero_means_no_limit_everywhere():
    assert SamplingConfig(top_k=0).top_k is None
    model = tiny_model()
    out = model.generate(torch.zeros(1, 1, dtype=torch.long), 2, top_k=0)
    assert out.shape == (1, 3)


def test_generation_requests_are_bounded_before_any_allocation():
    tokenizer = CharTokenizer.train(TEXT)
    engine = Engine(tiny_model(tokenizer.vocab_size), tokenizer)
    prompt = torch.zeros(1, 2, dtype=torch.long)
    with pytest.raises(ByollmError, match=f"max_new_tokens=1000000000000 .*{MAX_NEW_TOKENS}"):
        engine.generate("To", max_new_tokens=10**12)  # 8 TB of token buffer
    with pytest.raises(ByollmError, match="max_new_tokens"):
        next(generate_ids(engine.model, prompt, 10**12))
    with pytest.raises(ByollmError, match="num_samples"):
        engine.generate("To", max_new_tokens=1, num_samples=10**9)
    with pytest.raises(ByollmError, match="rows in one batch"):
        next(generate_ids(engine.model, torch.zeros(5000, 1, dtype=torch.long), 1))
    for seed in (2**64, -1, 1.5):
        with pytest.raises(ByollmError, match="seed"):
            engine.generate("To", max_new_tokens=1, seed=seed)
        with pytest.raises(ByollmError, match="seed"):
            next(engine.stream("To", max_new_tokens=1, seed=seed))
    assert engine.generate("To", max_new_tokens=2, seed=MAX_SEED)[0]  # the top seed works
    with pytest.raises(ByollmError, match="num_beams"):
        beam_search(engine.model, [1, 2], num_beams=10**9, max_new_tokens=2)
    with pytest.raises(ByollmError, match="length_penalty"):
        beam_search(engine.model, [1, 2], num_beams=2, max_new_tokens=2, length_penalty=1e308)


def test_eval_settings_are_range_checked():
    model = tiny_model()
    ids = list(range(20)) * 3
    bad = {"batch_size": [0, 10**9], "stride": [0, 17], "block_size": [64, -1]}
    for name, values in bad.items():
        for value in values:
            with pytest.raises(ByollmError, match=name):
                evaluate_ids(model, ids, progress=False, **{name: value})
    assert evaluate_ids(model, ids, block_size=8, stride=8, progress=False)["tokens"] == 59


# --- devices, numbers, TOML ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["auto", "cpu", "cuda", "cuda:0", "cuda:12", "mps"])
def test_device_names_that_exist_somewhere_pass_the_syntax_check(name):
    check_device_name(name)


@pytest.mark.parametrize("name", ["tpu", "cuda:", "cuda:-1", "cuda:x", "cpu:0:1", "", "CUDA", 3])
def test_device_names_that_exist_nowhere_are_refused(name):
    with pytest.raises(ByollmError, match="unknown device"):
        check_device_name(name)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message on a GPU-less machine")
def test_a_gpu_that_is_not_here_is_named():
    with pytest.raises(ByollmError, match="'cuda:3' was asked for but PyTorch sees no CUDA GPU"):
        pick_device("cuda:3")


def test_check_number_words_the_range():
    with pytest.raises(ByollmError, match=r"^dropout=1\.5 is out of range: must be a number in"):
        check_number("dropout", 1.5, 0, 1, high_open=True)
    with pytest.raises(ByollmError, match=r"x=10\*\*400|x=1000"):
        check_number("x", 10**400, 0, 1e300)  # a huge int does not overflow the check itself
    with pytest.raises(ByollmError, match="expected an integer"):
        check_number("n", True, 0, integer=True)
    check_number("n", 2**70, 0, integer=True)


def test_non_utf8_toml_is_one_line_naming_the_file(tmp_path):
    preset = tmp_path / "latin1.toml"
    preset.write_bytes('sample_prompt = "café"\n'.encode("latin-1"))
    with pytest.raises(ByollmError, match=r"latin1\.toml: not UTF-8 text \(byte 0xe9"):
        load_toml(preset)


SAFE_TEXT = st.text(max_size=20)  # any Unicode text, control characters included


@st.composite
def train_configs(draw):
    """TrainConfigs with random (valid) strings and numbers, None where a key allows it."""
    n_head = draw(st.sampled_from([1, 2, 4]))
    model = GPTConfig(
        vocab_size=draw(st.integers(1, 2**24)),
        block_size=draw(st.sampled_from([8, 64, 1024])),
        n_layer=draw(st.integers(1, 1024)),
        n_head=n_head,
        n_kv_head=draw(st.sampled_from([None, 1])),
        n_embd=n_head * draw(st.sampled_from([2, 8, 32])),
        mlp_hidden=draw(st.one_of(st.none(), st.integers(1, 2**18))),
        norm_eps=draw(st.floats(1e-300, 1.0, exclude_min=False)),
        dropout=draw(st.floats(0.0, 0.999)),
        rope_theta=draw(st.floats(1.0, 1e12)),
    )
    return TrainConfig(
        name=draw(st.from_regex(r"[a-z][a-z0-9_-]{0,10}", fullmatch=True)),
        out_dir=draw(SAFE_TEXT),
        corpus=draw(SAFE_TEXT),
        data_dir=draw(SAFE_TEXT),
        mirror=draw(SAFE_TEXT),
        sample_prompt=draw(SAFE_TEXT),
        model=model,
        lr=draw(st.floats(1e-300, 9.0)),  # below 10: lr * weight_decay (0.1) < 1
        min_lr_ratio=draw(st.floats(0.0, 1.0)),
        beta2=draw(st.floats(0.0, 0.999999)),
        sample_temperature=draw(st.sampled_from([0.0, 1e-4, 0.7, 1e4])),
        seed=draw(st.integers(0, 2**32 - 1)),
        compile=draw(st.booleans()),
        batch_size=1,
    )


@settings(max_examples=150, deadline=None)
@given(config=train_configs())
def test_print_config_toml_reads_back_as_the_same_config(config):
    text = to_toml(config)
    assert from_dict(TrainConfig, tomllib.loads(text)) == config


def test_print_config_of_odd_strings_is_valid_toml(capsys):
    prompt = 'say "hi"\\n\n\ttab \x00 \x1b[0m done'
    assert main(["train", "--print-config", "--sample_prompt", prompt, "--n_kv_head", "2"]) == 0
    data = tomllib.loads(capsys.readouterr().out)
    config = from_dict(TrainConfig, data)
    assert config.sample_prompt == prompt and config.model.n_kv_head == 2


def test_a_string_toml_cannot_hold_is_one_line():
    config = TrainConfig(corpus="bad\udcffname.txt")  # a non-UTF-8 command-line argument
    with pytest.raises(ByollmError, match="corpus.*not valid Unicode"):
        to_toml(config)


# --- checkpoints: config.json against the weights --------------------------------------------


@pytest.fixture
def checkpoint(tmp_path):
    save_model(tiny_model(), tmp_path / "ckpt")
    return tmp_path / "ckpt"


def tamper(checkpoint, **model_values):
    path = checkpoint / "config.json"
    meta = json.loads(path.read_text())
    meta["model"].update(model_values)
    path.write_text(json.dumps(meta))


def test_a_tampered_layer_count_is_refused_by_its_bound(checkpoint):
    tamper(checkpoint, n_layer=10**8)
    with pytest.raises(ByollmError, match=r"config\.json \[model\].*n_layer=100000000 is out"):
        load_model(checkpoint)


@pytest.mark.parametrize(
    "values, words",
    [
        ({"n_layer": 1000}, "missing transformer.h.10.attn.c_attn.bias"),
        ({"n_layer": 1}, "unexpected transformer.h.1."),
        ({"n_embd": 4096, "n_head": 2}, "c_attn.bias has shape (48,), the config needs (12288,)"),
        ({"vocab_size": 2**24}, "transformer.wte.weight has shape"),
    ],
)
def test_a_config_that_does_not_fit_the_weights_never_builds_the_model(
    checkpoint, monkeypatch, values, words
):
    built = []
    real_gpt = GPT

    def spy(config):
        built.append(config.n_layer)
        return real_gpt(config)

    monkeypatch.setattr(model_checkpoint, "GPT", spy)  # the model load_model builds
    monkeypatch.setattr(model_weights, "GPT", spy)  # the skeleton of expected_weight_shapes
    tamper(checkpoint, **values)
    with pytest.raises(ByollmError, match="model.safetensors") as info:
        load_model(checkpoint)
    assert words in str(info.value)
    assert built == [1]  # only the one-block skeleton on the meta device, never the model


def test_expected_weight_shapes_agree_with_a_built_model():
    for config in (
        GPTConfig(vocab_size=20, block_size=16, n_layer=3, n_head=2, n_embd=16),
        GPTConfig.from_preset("llama-tiny", n_layer=3),
        GPTConfig.from_preset("modern-tiny", n_layer=2),
    ):
        stored = model_weights.stored_state(GPT(config))
        assert model_weights.expected_weight_shapes(config) == {
            k: tuple(v.shape) for k, v in stored.items()
        }


# --- the command line: one line, exit 2, before any work -------------------------------------


def run_cli(*args, cwd):
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    return subprocess.run(
        [sys.executable, "-m", "byollm", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=120,
    )


def test_cli_train_refuses_a_negative_min_lr_ratio_before_any_work(tmp_path):
    result = run_cli(
        "train", "--min_lr_ratio", "-1", "--out_dir", str(tmp_path / "runs"), cwd=tmp_path
    )
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "min_lr_ratio=-1.0 is out of range" in result.stderr
    assert not (tmp_path / "runs").exists()  # nothing was created, downloaded or prepared


def test_cli_sample_refuses_an_underflowing_temperature_before_loading(tmp_path):
    # the checkpoint does not even exist: the sampling values are checked first
    result = run_cli("sample", str(tmp_path / "absent"), "--temperature", "1e-320", cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1 and "temperature=1e-320" in result.stderr


@pytest.mark.parametrize(
    "args, words",
    [
        (["sample", "--max-new-tokens", str(10**12)], "max_new_tokens=1000000000000"),
        (["sample", "--seed", str(2**64)], "seed=18446744073709551616"),
        (["sample", "--num-beams", str(10**9)], "num_beams"),
        (["sample", "--repetition-penalty", "1e308"], "repetition_penalty"),
        (["sample", "--top-p", "nan"], "top_p=nan"),
        (["chat", "--frequency-penalty=-1e308"], "frequency_penalty"),
        (["chat", "--max-new-tokens", "-1"], "max_new_tokens=-1"),
        (["eval", "--corpus", "x.txt", "--batch-size", "0"], "batch_size=0"),
        (["eval", "--corpus", "x.txt", "--stride", "-3"], "stride=-3"),
        (["eval", "--corpus", "x.txt", "--max-tokens", "1"], "max_tokens=1"),
    ],
)
def test_cli_sampling_and_eval_values_are_checked_before_the_checkpoint(
    tmp_path, capsys, args, words
):
    # the checkpoint does not even exist: the values are checked before it would be loaded
    assert main([*args, "--checkpoint", str(tmp_path / "absent")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err, err


FINETUNE = ["--data", "absent.csv", "--out", "absent-out", "--checkpoint", "absent"]


@pytest.mark.parametrize(
    "args, words",
    [
        (["sample", "absent", "--length-penalty", "nan"], "length_penalty=nan"),
        (["eval", "absent", "--corpus", "x.txt", "--val-fraction=-1"], "val_fraction=-1.0"),
        (["eval", "absent", "--corpus", "x.txt", "--limit", "0"], "limit=0"),
        (["eval", "absent", "--task", "blimp", "--batch-tokens=-1"], "batch_tokens=-1"),
        (["finetune", "classify", *FINETUNE, "--batch-size", "0"], "batch_size=0"),
        (["finetune", "classify", *FINETUNE, "--lr", "nan"], "lr=nan"),
        (["finetune", "classify", *FINETUNE, "--lr", "inf"], "lr=inf"),
        (["finetune", "classify", *FINETUNE, "--weight-decay=-1"], "weight_decay=-1.0"),
        (["finetune", "classify", *FINETUNE, "--seed", str(10**23)], "seed=1000"),
        (["finetune", "classify", *FINETUNE, "--epochs", str(10**23)], "epochs=1000"),
        (["finetune", "classify", *FINETUNE, "--max-length=-5"], "max_length=-5"),
        (["finetune", "classify", *FINETUNE, "--lora-alpha", "nan"], "lora alpha=nan"),
        (["finetune", "instruct", *FINETUNE, "--lora", "--lora-rank", str(10**9)], "lora rank"),
        (["finetune", "instruct", *FINETUNE, "--max-new-tokens=-1"], "max_new_tokens=-1"),
        (["finetune", "instruct", *FINETUNE, "--eval-examples", "0"], "eval_examples=0"),
        (["serve", "absent", "--max-batch", str(10**23)], "max_batch=1000"),
        (["serve", "absent", "--max-waiting", str(10**23)], "max_waiting=1000"),
        (["model", "info", "--preset", "gpt2", "--bytes-per-param", "0"], "bytes_per_param=0"),
        (["model", "info", "--preset", "gpt2", "--seq-len=-1"], "seq_len=-1"),
        (["tokenizer", "train", "--corpus", "x", "--vocab-size", "300", "--out", "t.json",
          "--workers", str(10**6)], "workers=1000000"),
        (["tokenizer", "compare", "--corpus", "x", "--max-chars=-1"], "max_chars=-1"),
        (["prepare", "--corpus", "x", "--tokenizer", "char", "--out", "absent-out",
          "--shard-tokens", "0"], "shard_tokens must be at least 1, got 0"),
    ],
)  # fmt: skip
def test_every_verbs_numbers_are_checked_before_any_work(
    tmp_path, monkeypatch, capsys, args, words
):
    # nothing named exists: each value is checked before the data or checkpoint would be read
    monkeypatch.chdir(tmp_path)
    assert main(args) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and words in err, err
    assert not (tmp_path / "absent-out").exists()
