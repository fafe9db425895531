"""The foundation: typed configs (byollm.config) and device/dtype choice (byollm.device)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from byollm.config import (
    apply_overrides,
    coerce,
    field_names,
    from_dict,
    load_toml,
    parse_override_args,
    to_dict,
    unknown_key_error,
)
from byollm.errors import ByollmError


@dataclass
class ModelCfg:
    n_layer: int = 2
    n_embd: int = 64
    mlp: Literal["gelu", "swiglu"] = "gelu"
    dropout: float = 0.0


@dataclass
class HeadCfg:
    dropout: float = 0.1
    labels: tuple[str, ...] = ("ham", "spam")


@dataclass
class RunCfg:
    lr: float = 1e-3
    max_steps: int = 10
    compile: bool = False
    run_name: str | None = None
    betas: tuple[float, ...] = (0.9, 0.95)
    model: ModelCfg = field(default_factory=ModelCfg)
    head: HeadCfg = field(default_factory=HeadCfg)


# --- from_dict / TOML --------------------------------------------------------------------------


def test_from_dict_builds_nested_dataclasses_and_coerces():
    cfg = from_dict(
        RunCfg, {"lr": 3, "betas": [0.8, 0.9], "model": {"n_layer": 4, "mlp": "swiglu"}}
    )
    assert cfg.lr == 3.0 and isinstance(cfg.lr, float)
    assert cfg.betas == (0.8, 0.9)
    assert cfg.model == ModelCfg(n_layer=4, mlp="swiglu")
    assert from_dict(RunCfg, to_dict(cfg)) == cfg  # round trip


def test_unknown_key_is_rejected_with_the_closest_suggestion():
    with pytest.raises(ByollmError) as info:
        from_dict(RunCfg, {"lrr": 0.1}, source="run.toml")
    message = str(info.value)
    assert "run.toml" in message and "'lrr'" in message and "did you mean 'lr'" in message
    assert "max_steps" in message  # lists the valid keys


def test_unknown_nested_key_names_its_table():
    with pytest.raises(ByollmError) as info:
        from_dict(RunCfg, {"model": {"n_layers": 4}}, source="run.toml")
    assert "[model]" in str(info.value) and "did you mean 'n_layer'" in str(info.value)


def test_wrong_value_types_name_the_key():
    with pytest.raises(ByollmError, match="max_steps: expected an integer"):
        from_dict(RunCfg, {"max_steps": "ten"})
    with pytest.raises(ByollmError, match="expected a table"):
        from_dict(RunCfg, {"model": 3})
    with pytest.raises(ByollmError, match="'relu' is not one of 'gelu', 'swiglu'"):
        from_dict(RunCfg, {"model": {"mlp": "relu"}})


def test_load_toml_reads_files_and_reports_problems(tmp_path):
    good = tmp_path / "good.toml"
    good.write_text('lr = 0.01\n[model]\nn_layer = 6\nmlp = "swiglu"\n')
    cfg = from_dict(RunCfg, load_toml(good), source=str(good))
    assert cfg.lr == 0.01 and cfg.model.n_layer == 6
    with pytest.raises(ByollmError, match="config file not found"):
        load_toml(tmp_path / "absent.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("lr = = 3\n")
    with pytest.raises(ByollmError) as info:
        load_toml(bad)
    assert str(bad) in str(info.value) and "not valid TOML" in str(info.value)


# --- overrides ---------------------------------------------------------------------------------


def test_overrides_coerce_strings_to_the_field_types():
    cfg = apply_overrides(
        RunCfg(),
        {
            "lr": "3e-4",
            "max_steps": "1_000",
            "compile": "true",
            "run_name": "shakespeare",
            "betas": "0.8, 0.99",
            "labels": "a,b,c",
        },
    )
    assert cfg.lr == 3e-4 and cfg.max_steps == 1000 and cfg.compile is True
    assert cfg.run_name == "shakespeare" and cfg.betas == (0.8, 0.99)
    assert cfg.head.labels == ("a", "b", "c")
    assert apply_overrides(cfg, {"run_name": "none", "compile": "off"}).run_name is None
    assert RunCfg().lr == 1e-3  # the original is untouched


@pytest.mark.parametrize(
    ("value", "annotation", "expected"),
    [
        ("1e3", int, 1000),
        ("42", int, 42),
        ("2", float, 2.0),
        ("yes", bool, True),
        ("0", bool, False),
        ("null", int | None, None),
        ("7", int | None, 7),
        ("swiglu", Literal["gelu", "swiglu"], "swiglu"),
        ([1, 2], list[int], [1, 2]),
    ],
)
def test_coerce(value, annotation, expected):
    assert coerce(value, annotation, "where") == expected


@pytest.mark.parametrize(
    ("value", "annotation"),
    [
        ("2.5", int),
        (True, int),
        (True, float),
        ("maybe", bool),
        ("x", float),
        (3, str),
        ("relu", Literal["gelu"]),
    ],
)
def test_coerce_rejects_nonsense_naming_the_place(value, annotation):
    with pytest.raises(ByollmError, match="^where: "):
        coerce(value, annotation, "where")


def test_dotted_and_unique_bare_keys():
    cfg = apply_overrides(RunCfg(), {"model.n_layer": "8", "n_embd": "128", "n-layer": "6"})
    assert cfg.model.n_layer == 6 and cfg.model.n_embd == 128  # later override wins
    assert "model.n_layer" in field_names(RunCfg) and "head.labels" in field_names(RunCfg)


def test_ambiguous_bare_key_lists_the_candidates():
    with pytest.raises(ByollmError) as info:
        apply_overrides(RunCfg(), {"dropout": "0.2"})
    assert "ambiguous" in str(info.value)
    assert "model.dropout" in str(info.value) and "head.dropout" in str(info.value)
    assert apply_overrides(RunCfg(), {"head.dropout": "0.2"}).head.dropout == 0.2


def test_unknown_override_suggests_the_dotted_key():
    with pytest.raises(ByollmError) as info:
        apply_overrides(RunCfg(), {"n_layers": "4"})
    assert "did you mean 'model.n_layer'" in str(info.value)
    message = str(unknown_key_error("zzz", ["lr", "max_steps"], "cli"))
    assert "did you mean" not in message and "valid keys: lr, max_steps" in message


def test_parse_override_args():
    assert parse_override_args(["--lr", "3e-4", "--model.n_layer=4", "--run_name=a=b"]) == {
        "lr": "3e-4",
        "model.n_layer": "4",
        "run_name": "a=b",
    }
    with pytest.raises(ByollmError, match="--lr needs a value"):
        parse_override_args(["--lr"])
    with pytest.raises(ByollmError, match="unexpected argument 'stray'"):
        parse_override_args(["stray"])


# --- device ------------------------------------------------------------------------------------


def test_device_and_dtype_choice():
    torch = pytest.importorskip("torch")
    from byollm.device import autocast, pick_device, pick_dtype

    assert pick_device("cpu") == torch.device("cpu")
    assert pick_device("auto").type in ("cpu", "cuda", "mps")
    with pytest.raises(ByollmError, match="unknown device 'tpu'"):
        pick_device("tpu")
    if not torch.cuda.is_available():
        with pytest.raises(ByollmError, match="no CUDA GPU"):
            pick_device("cuda")
    cpu = torch.device("cpu")
    assert pick_dtype(cpu, "float32") == torch.float32
    assert pick_dtype(cpu, "auto") in (torch.float32, torch.bfloat16)
    with pytest.raises(ByollmError, match="unknown dtype 'float64'"):
        pick_dtype(cpu, "float64")
    with autocast(cpu, torch.float32):  # fp32: a no-op context
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
