"""`TrainConfig`: every knob of a training run, with the `shakespeare-char` preset as defaults.

A run is described by one dataclass, filled from (in order) these defaults, a TOML preset and
`--key value` overrides (see `byollm.config`). The model's shape is the nested `model` section, a
`byollm.model.GPTConfig`; its `vocab_size` is always taken from the tokenizer of the data.

Presets are TOML files: `configs/<name>.toml` in the current folder or in the byollm source tree.
With no preset at all, `TrainConfig()` *is* the default preset, so `byollm train` works even from
a pip-installed package with no `configs/` folder in sight (a test keeps the TOML and the defaults
equal).

    >>> cfg = load_train_config(None, {"max_steps": "10", "n_layer": "2"})
    >>> cfg.max_steps, cfg.model.n_layer
    (10, 2)
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from byollm.config import (
    apply_overrides,
    check_choice,
    check_number,
    check_seed,
    check_temperature,
    from_dict,
    load_toml,
)
from byollm.data.prepare import WORKERS_PER_CPU
from byollm.device import DTYPES, check_device_name
from byollm.errors import ByollmError
from byollm.generate.engine import MAX_NEW_TOKENS
from byollm.model import GPTConfig
from byollm.paths import user_path
from byollm.train.schedule import SCHEDULES

DEFAULT_PRESET = "shakespeare-char"

# Upper bounds far beyond any sensible run. They stop a typo before it preallocates terabytes,
# starts a run of a billion years, or asks torch for 100,000 threads (which crashes it).
MAX_STEPS = 10**9
MAX_BATCH_TOKENS = 2**24  # tokens in one micro-batch (batch_size * block_size) or eval set
MAX_STEP_TOKENS = 2**36  # tokens per optimizer step (GPT-3 used 3.2M)
MAX_LR = 10.0  # AdamW moves each weight by about lr per step; 10 is far past divergence
MAX_THREADS = 1024
MAX_TRAIN_SEED = 2**32 - 1


def default_model() -> GPTConfig:
    """The default preset's model: small and modern, sized for a 2-core CPU and ~10 minutes.

    RoPE instead of learned positions, RMSNorm, ReLU² MLP, QK-norm, untied head, no biases: the
    choices of recent small-model speed runs (nanochat, modded-nanogpt).
    """
    return GPTConfig(
        vocab_size=65,  # replaced by the tokenizer's vocabulary size
        block_size=128,
        n_layer=4,
        n_head=4,
        n_embd=128,
        mlp="relu2",
        norm="rmsnorm",
        pos="rope",
        qk_norm=True,
        tie_embeddings=False,
        bias=False,
        dropout=0.0,
    )


@dataclass
class TrainConfig:
    """A training run. Sizes in tokens are per optimizer step, summed over all processes."""

    # --- what and where --------------------------------------------------------------------
    name: str = DEFAULT_PRESET  # the run folder is out_dir/name
    out_dir: str = "runs"
    corpus: str = "tinyshakespeare"  # a registered corpus name, or a file or folder path
    tokenizer: str = "char"  # a spec: char | bpe:N | gpt2 | ... | a tokenizer file (see specs.py)
    data_dir: str = ""  # prepared tokens; "" = $BYOLLM_HOME/data/<corpus>-<tokenizer>
    val_fraction: float = 0.1
    mirror: str = ""  # download mirror for the corpus (see `byollm data`)
    init_from: str = (
        ""  # a checkpoint folder to take the weights (and tokenizer) from; see init_from.py
    )

    # --- the model ---------------------------------------------------------------------------
    model: GPTConfig = field(default_factory=default_model)

    # --- batch and length of training --------------------------------------------------------
    batch_size: int = 16  # sequences per micro-batch in each process
    tokens_per_step: int = 0  # 0 = batch_size * block_size * processes (no accumulation)
    max_steps: int = 2400

    # --- optimizer and schedule --------------------------------------------------------------
    optimizer: Literal["adamw", "muon"] = "muon"
    lr: float = 8e-3  # AdamW's peak lr (embeddings, head and vectors when optimizer = muon)
    muon_lr: float = 0.04  # Muon's peak lr for the hidden matrices
    muon_momentum: float = 0.95
    weight_decay: float = 0.1
    beta1: float = 0.9
    beta2: float = 0.99
    grad_clip: float = 1.0  # clip the gradient's global norm; 0 = off
    schedule: Literal["cosine", "wsd", "constant"] = "wsd"
    warmup_steps: int = 30
    min_lr_ratio: float = 0.0  # the lr at the end, as a fraction of the peak
    decay_fraction: float = 0.3  # wsd: the share of steps spent decaying

    # --- evaluation, checkpoints, samples ----------------------------------------------------
    eval_interval: int = 200  # steps between evaluations (and checkpoints)
    eval_rows: int = 128  # windows of block_size tokens in the fixed eval sets
    log_interval: int = 10  # steps between "train" lines in metrics.jsonl
    sample_tokens: int = 300  # tokens sampled at each evaluation (0 = none)
    sample_prompt: str = "\n"
    sample_temperature: float = 0.8
    sample_top_k: int = 0  # 0 = no top-k filter
    eval_tasks: str = (
        ""  # benchmarks at each evaluation: "blimp" (1000 pairs), "blimp:all,lambada:200"
    )

    # --- system ------------------------------------------------------------------------------
    device: str = "auto"  # auto | cpu | cuda | mps
    # auto: bf16 autocast where native (CUDA Ampere+, AVX-512 BF16/AMX CPUs: 1.33x fp32 measured),
    # else fp32 (AVX2 emulates bf16 ~100x slower) | float32 | bfloat16 | float16
    dtype: str = "auto"
    compile: bool = False  # torch.compile the model (worth it on GPUs, rarely on small CPU models)
    fsdp: bool = False  # under torchrun: shard weights, gradients, optimizer state (FSDP2)
    # CPU threads for torch; 0 = torch's choice. One job per set of cores: two jobs sharing the
    # cores oversubscribe them and run 10x slower or worse (docs/03-training.md, section 6)
    threads: int = 0
    seed: int = 1337
    workers: int = 0  # data-preparation processes; 0 = one per CPU
    tensorboard: bool = False
    wandb: bool = False

    def __post_init__(self):
        self.validate()
        if self.eval_tasks:  # a typo in a task name fails now, not at the first evaluation
            from byollm.evaluate.tasks import parse_eval_tasks

            parse_eval_tasks(self.eval_tasks)
        check_folder_name("name", self.name)

    def validate(self) -> None:
        """Every rule on the values, in one place; each error names the key, value and range.

        Run when the config is built and again when training starts, so nothing (no download, no
        data preparation, no model) happens with a value that cannot work.
        """
        self.model.validate()
        for key in (
            "name",
            "out_dir",
            "corpus",
            "tokenizer",
            "data_dir",
            "mirror",
            "sample_prompt",
        ):
            if not isinstance(getattr(self, key), str):
                raise ByollmError(f"{key}={getattr(self, key)!r} is invalid: expected a string")
        for key in ("compile", "fsdp", "tensorboard", "wandb"):
            if not isinstance(getattr(self, key), bool):
                raise ByollmError(f"{key}={getattr(self, key)!r} is invalid: expected true/false")
        check_number("val_fraction", self.val_fraction, 0, 1, low_open=True, high_open=True)

        block = self.model.block_size
        rows_limit = f"* block_size may be at most {MAX_BATCH_TOKENS:,} tokens"
        check_number(
            "batch_size",
            self.batch_size,
            1,
            MAX_BATCH_TOKENS // block,
            integer=True,
            hint=f"batch_size {rows_limit}",
        )
        check_number(
            "tokens_per_step",
            self.tokens_per_step,
            0,
            MAX_STEP_TOKENS,
            integer=True,
            hint="0 = one micro-batch per step",
        )
        micro = self.batch_size * block
        if self.tokens_per_step % micro:
            raise ByollmError(
                f"tokens_per_step={self.tokens_per_step} is not a multiple of batch_size * "
                f"block_size = {micro} (steps accumulate whole micro-batches)"
            )
        check_number("max_steps", self.max_steps, 1, MAX_STEPS, integer=True)

        check_choice("optimizer", self.optimizer, ("adamw", "muon"))
        if self.fsdp and self.optimizer == "muon":
            raise ByollmError(
                "fsdp=true needs optimizer = adamw: Muon orthogonalizes each whole weight "
                "matrix, and FSDP keeps only a slice of it in each process"
            )
        check_choice("schedule", self.schedule, SCHEDULES)
        check_number("lr", self.lr, 0, MAX_LR, low_open=True)
        check_number("muon_lr", self.muon_lr, 0, MAX_LR, low_open=True)
        for key in ("muon_momentum", "beta1", "beta2"):
            check_number(key, getattr(self, key), 0, 1, high_open=True)
        # AdamW's decoupled decay multiplies the weights by 1 - lr * weight_decay every step
        check_number(
            "weight_decay",
            self.weight_decay,
            0,
            1 / self.lr,
            high_open=True,
            hint="lr * weight_decay must stay below 1, or the decay wipes the weights",
        )
        check_number("grad_clip", self.grad_clip, 0, hint="0 = off")
        check_number("warmup_steps", self.warmup_steps, 0, MAX_STEPS, integer=True)
        check_number("min_lr_ratio", self.min_lr_ratio, 0, 1, hint="a fraction of the peak lr")
        check_number("decay_fraction", self.decay_fraction, 0, 1, hint="a fraction of max_steps")

        check_number("eval_interval", self.eval_interval, 1, MAX_STEPS, integer=True)
        check_number(
            "eval_rows",
            self.eval_rows,
            1,
            MAX_BATCH_TOKENS // block,
            integer=True,
            hint=f"eval_rows {rows_limit}",
        )
        check_number("log_interval", self.log_interval, 1, MAX_STEPS, integer=True)
        check_number(
            "sample_tokens",
            self.sample_tokens,
            0,
            MAX_NEW_TOKENS,
            integer=True,
            hint="0 = no samples",
        )
        check_temperature("sample_temperature", self.sample_temperature)
        check_number("sample_top_k", self.sample_top_k, 0, integer=True, hint="0 = no filter")

        check_device_name(self.device)
        check_choice("dtype", self.dtype, DTYPES)
        check_number(
            "threads", self.threads, 0, MAX_THREADS, integer=True, hint="0 = torch's choice"
        )
        check_number(
            "workers",
            self.workers,
            0,
            WORKERS_PER_CPU * (os.cpu_count() or 1),
            integer=True,
            hint=f"0 = one per CPU; at most {WORKERS_PER_CPU} per CPU",
        )
        # The loader seeds step s with seed * 1_000_003 + s, which must stay within torch's 64 bits
        check_seed("seed", self.seed, MAX_TRAIN_SEED)

    def run_dir(self) -> Path:
        """out_dir/name, with `~` in out_dir expanded."""
        return Path(self.out_dir).expanduser() / self.name


def preset_dirs() -> list[Path]:
    """Where presets are looked up: ./configs, then the configs/ of the byollm source tree."""
    import byollm

    source_tree = Path(byollm.__file__).resolve().parents[2] / "configs"
    dirs = [Path.cwd() / "configs", source_tree]
    return list(dict.fromkeys(d for d in dirs))


def available_presets() -> list[str]:
    names = {p.stem for d in preset_dirs() if d.is_dir() for p in d.glob("*.toml")}
    return sorted(names | {DEFAULT_PRESET})


def find_preset(name_or_path: str | Path) -> Path | None:
    """The TOML file for a preset name or path; None for the built-in default."""
    path = user_path(name_or_path)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise ByollmError(f"config file not found: {path}")
        return path
    for directory in preset_dirs():
        candidate = directory / f"{name_or_path}.toml"
        if candidate.is_file():
            return candidate
    if str(name_or_path) == DEFAULT_PRESET:
        return None  # built in: TrainConfig's defaults
    raise ByollmError(
        f"unknown preset {str(name_or_path)!r}; presets: {', '.join(available_presets())} "
        "(or give a path to a .toml file)"
    )


def load_train_config(
    preset: str | Path | None = None, overrides: dict[str, str] | None = None
) -> TrainConfig:
    """TrainConfig from a preset name or TOML path (None = default) plus `--key value` overrides."""
    path = find_preset(preset) if preset is not None else None
    if path is None:
        config = TrainConfig()
    else:
        data = load_toml(path)
        data.setdefault("name", path.stem)
        config = from_dict(TrainConfig, data, str(path))
    if overrides:
        config = apply_overrides(config, overrides, "command line")  # validated once, at the end
    return config


def check_folder_name(key: str, name: str) -> None:
    """A run's or sweep's name: a plain folder name, so that out_dir/name is always one folder
    inside out_dir (no path separators, no '.', '..' or hidden names with a leading dot)."""
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}", name):
        raise ByollmError(
            f"{key} {name!r}: use up to 128 letters, digits, '.', '_' and '-', not "
            "starting with '.' (it names a folder inside out_dir)"
        )


def default_data_dir(corpus: str, tokenizer: str) -> Path:
    """Where prepared data lives by default: $BYOLLM_HOME/data/<corpus>-<tokenizer>."""
    from byollm.paths import byollm_home

    def slug(text: str) -> str:
        return "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(text).name) or "x"

    return byollm_home() / "data" / f"{slug(corpus)}-{slug(tokenizer)}"
