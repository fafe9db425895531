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

import dataclasses
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from byollm.config import apply_overrides, from_dict, load_toml
from byollm.errors import ByollmError
from byollm.model import GPTConfig

DEFAULT_PRESET = "shakespeare-char"


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
    tokenizer: str = "char"  # char | bpe:N | gpt2 | cl100k_base | ... | path/to/tokenizer.json
    data_dir: str = ""  # prepared tokens; "" = $BYOLLM_HOME/data/<corpus>-<tokenizer>
    val_fraction: float = 0.1
    mirror: str = ""  # download mirror for the corpus (see `byollm data`)

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
    dtype: str = "auto"  # auto (bf16 where fast, else fp32) | float32 | bfloat16 | float16
    compile: bool = False  # torch.compile the model (worth it on GPUs, rarely on small CPU models)
    threads: int = 0  # CPU threads for torch; 0 = torch's choice
    seed: int = 1337
    workers: int = 0  # data-preparation processes; 0 = one per CPU
    tensorboard: bool = False
    wandb: bool = False

    def __post_init__(self):
        positive = ["batch_size", "max_steps", "eval_interval", "eval_rows", "log_interval"]
        for key in positive:
            if getattr(self, key) <= 0:
                raise ByollmError(f"{key} must be positive, got {getattr(self, key)}")
        nonnegative = ["tokens_per_step", "warmup_steps", "sample_tokens", "threads", "workers"]
        nonnegative += ["grad_clip", "weight_decay", "sample_top_k"]
        for key in nonnegative:
            if getattr(self, key) < 0:
                raise ByollmError(f"{key} must be >= 0, got {getattr(self, key)}")
        if self.lr <= 0 or self.muon_lr <= 0:
            raise ByollmError(
                f"learning rates must be positive (lr={self.lr}, muon_lr={self.muon_lr})"
            )
        if not 0.0 < self.val_fraction < 1.0:
            raise ByollmError(f"val_fraction must be between 0 and 1, got {self.val_fraction}")
        if self.eval_tasks:  # a typo in a task name fails now, not at the first evaluation
            from byollm.evaluate.tasks import parse_eval_tasks

            parse_eval_tasks(self.eval_tasks)
        if not re.fullmatch(r"[A-Za-z0-9._-]+", self.name):
            raise ByollmError(
                f"name {self.name!r}: use letters, digits, '.', '_' and '-' (it names a folder)"
            )

    def run_dir(self) -> Path:
        return Path(self.out_dir) / self.name


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
    path = Path(name_or_path)
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
        config = apply_overrides(config, overrides, "command line")
        config = dataclasses.replace(config)  # re-run __post_init__ checks on the new values
    return config
