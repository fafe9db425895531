"""The sweep: for each compute budget, train several model sizes to exactly that budget.

    >>> config = load_sweep_config("cpu-smoke", {"out_dir": "runs"})      # doctest: +SKIP
    >>> records = run_sweep(config)                                       # doctest: +SKIP
    >>> records[0]["point"], records[0]["val_bpb"]                        # doctest: +SKIP
    ('C1e10-d1', 3.12)

The stated rules of a sweep (each is a key of `SweepConfig`):
- **One dial for the shape: depth.** width = `aspect_ratio` x depth, heads = width / `head_dim`
  (nanochat's rule: width = 64 x depth, fixed head size). Every other choice is the trainer's
  default model (RoPE, RMSNorm, ReLU², QK-norm, untied head), so sizes differ only in shape.
- **Which sizes for a budget C**: `sizes` consecutive depths centred on the depth whose tokens
  per parameter at C is closest to `tokens_per_param_guess` (Chinchilla's 20), so that each
  isoFLOP curve brackets its minimum; or an explicit `depths` list for every budget (nanochat's
  way: the same depths at every budget).
- **Exactly the budget**: tokens D = C / (training FLOPs per token from `model_info`, attention
  included), rounded to whole optimizer steps. Each record also carries 6ND (N = the parameters
  of the matrix multiplies) and the exact count, so either convention can be used later.
- **Learning rate and schedule**: Muon's lr is the same for every width (its update has a fixed
  spectral norm, whatever the matrix shape); AdamW's lr (embeddings, head, norms) scales as
  1/sqrt(width) from `lr` at `base_width` (nanochat's rule). Every run gets its own
  warmup-stable-decay schedule over its own length: warmup for `warmup_fraction` of its steps,
  decay to zero over the last `decay_fraction`. A run cut short on a longer run's schedule never
  reaches its low-lr phase and looks worse than it is (Chinchilla's fix to Kaplan's fits).
- **Every point is a checkpointed experiment**: an ordinary run folder `<sweep>/runs/<point>`.
  A rerun skips points already in the results file, resumes a point that has a checkpoint
  (`train(resume=True)`, which is exact), and refuses a point whose folder was made by another
  config unless `overwrite` (start every point again).
- **One results file**, `<sweep>/results.jsonl`: one JSON line per finished point (format
  `byollm-scaling-run`, version 1); a later line for the same point replaces an earlier one.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from byollm.config import (
    apply_overrides,
    check_choice,
    check_number,
    check_seed,
    from_dict,
    load_toml,
    to_dict,
)
from byollm.data.tokens import split_fingerprint
from byollm.device import DTYPES, check_device_name
from byollm.errors import ByollmError
from byollm.formats import check_header, read_versioned_file
from byollm.model import GPTConfig, model_info
from byollm.paths import user_path, write_file_atomically
from byollm.train import TrainConfig
from byollm.train.config import (
    MAX_BATCH_TOKENS,
    MAX_LR,
    MAX_THREADS,
    MAX_TRAIN_SEED,
    check_folder_name,
)

SWEEP_FILE, RESULTS_FILE = "sweep.json", "results.jsonl"  # in the sweep folder
SWEEP_FORMAT = "byollm-scaling-sweep"
SWEEP_VERSION = 1
MAX_BUDGET = 1e30  # training FLOPs: far past any run (GPT-4 is estimated at ~2e25)
RESULT_FORMAT = "byollm-scaling-run"
RESULT_VERSION = 1
DEFAULT_SWEEP = "cpu"

# The three ways to count a model's parameters N (record keys `params_<name>`):
#   total               every weight (Chinchilla's N)
#   non_embedding       the transformer blocks and final norm: no token table, no head (Kaplan's N)
#   non_embedding_head  the blocks plus the vocab x width output projection: every weight that
#                       takes part in a matrix multiply, so 6ND counts the matmul FLOPs
PARAM_COUNTS = ("total", "non_embedding", "non_embedding_head")
ParamCount = Literal["total", "non_embedding", "non_embedding_head"]


@dataclass
class SweepConfig:
    """A scaling sweep: its data, its budgets and the rules that turn a budget into runs."""

    # --- what and where ------------------------------------------------------------------------
    name: str = "scaling-cpu"  # the sweep folder is out_dir/name
    out_dir: str = "runs"
    corpus: str = "python-stdlib"  # ~12 MB of code, built offline (records count epochs)
    tokenizer: str = "char"
    data_dir: str = ""  # prepared tokens; "" = <sweep folder>/data
    val_fraction: float = 0.05
    mirror: str = ""

    # --- budgets and sizes ---------------------------------------------------------------------
    budgets: list[float] = field(
        default_factory=lambda: [5e10, 1e11, 2e11, 5e11, 1e12, 2e12, 5e12]
    )  # FLOPs
    sizes: int = 5  # model sizes per budget
    depths: list[int] = field(default_factory=list)  # explicit depths for every budget
    min_depth: int = 1
    max_depth: int = 10
    tokens_per_param_guess: float = 20.0  # where the sizes are centred (Chinchilla's ratio)
    params: ParamCount = "non_embedding_head"  # the N of tokens per parameter and of the fits

    # --- the size rule -------------------------------------------------------------------------
    aspect_ratio: int = 16  # width = aspect_ratio x depth
    head_dim: int = 16  # heads = width / head_dim
    block_size: int = 128

    # --- batch, learning rate and schedule -----------------------------------------------------
    batch_size: int = 8  # sequences per step, the same for every size
    optimizer: Literal["adamw", "muon"] = "muon"
    lr: float = 8e-3  # AdamW's lr at base_width; scaled by sqrt(base_width / width)
    base_width: int = 128
    muon_lr: float = 0.04  # the same for every width
    schedule: Literal["cosine", "wsd", "constant"] = "wsd"
    warmup_fraction: float = 0.05
    decay_fraction: float = 0.3
    min_steps: int = 15  # a point with fewer steps than this is refused: it would be noise

    # --- evaluation and checkpoints ------------------------------------------------------------
    eval_rows: int = 256  # fixed val windows of block_size tokens (the same for every run)
    checkpoints: int = 2  # checkpoints per run, the last one at its end

    # --- system --------------------------------------------------------------------------------
    device: str = "auto"
    dtype: str = "float32"  # bf16 autocast is no faster for models this narrow on a CPU
    threads: int = 0
    seed: int = 1337
    workers: int = 0

    def __post_init__(self):
        check_folder_name("name", self.name)
        self.budgets = [float(b) for b in self.budgets]
        if not self.budgets or any(not 0 < b <= MAX_BUDGET for b in self.budgets):
            raise ByollmError(
                f"budgets must be positive FLOP counts up to {MAX_BUDGET:g}, got {self.budgets}"
            )
        # the per-run training values, checked here so that --plan refuses them too
        check_number("lr", self.lr, 0, MAX_LR, low_open=True)
        check_number("muon_lr", self.muon_lr, 0, MAX_LR, low_open=True)
        check_number("tokens_per_param_guess", self.tokens_per_param_guess, 0, low_open=True)
        check_number("val_fraction", self.val_fraction, 0, 1, low_open=True, high_open=True)
        check_number("threads", self.threads, 0, MAX_THREADS, integer=True, hint="0 = torch's")
        check_seed("seed", self.seed, MAX_TRAIN_SEED)
        check_device_name(self.device)
        check_choice("dtype", self.dtype, DTYPES)
        for key in ("sizes", "min_depth", "aspect_ratio", "head_dim", "block_size", "batch_size"):
            if getattr(self, key) < 1:
                raise ByollmError(f"{key} must be at least 1, got {getattr(self, key)}")
        for key in ("min_steps", "checkpoints", "eval_rows", "base_width"):
            if getattr(self, key) < 1:
                raise ByollmError(f"{key} must be at least 1, got {getattr(self, key)}")
        check_number(
            "eval_rows", self.eval_rows, 1, MAX_BATCH_TOKENS // self.block_size, integer=True
        )
        if self.max_depth < self.min_depth:
            raise ByollmError(f"max_depth={self.max_depth} is below min_depth={self.min_depth}")
        if self.aspect_ratio % self.head_dim:
            raise ByollmError(
                f"aspect_ratio={self.aspect_ratio} must be a multiple of head_dim={self.head_dim} "
                "(width = aspect_ratio x depth is cut into heads of head_dim channels)"
            )
        if any(d < 1 for d in self.depths):
            raise ByollmError(f"depths must be positive, got {self.depths}")
        if not self.depths and self.sizes > self.max_depth - self.min_depth + 1:
            raise ByollmError(
                f"sizes={self.sizes} needs that many depths, but min_depth..max_depth = "
                f"{self.min_depth}..{self.max_depth} holds {self.max_depth - self.min_depth + 1}"
            )
        if self.tokens_per_param_guess <= 0:
            raise ByollmError("tokens_per_param_guess must be positive")
        if not 0.0 <= self.warmup_fraction < 1.0 or not 0.0 <= self.decay_fraction <= 1.0:
            raise ByollmError("warmup_fraction must be in [0, 1) and decay_fraction in [0, 1]")
        if self.params not in PARAM_COUNTS:
            raise ByollmError(f"params={self.params!r}: choose one of {', '.join(PARAM_COUNTS)}")

    def sweep_dir(self) -> Path:
        return user_path(self.out_dir) / self.name


@dataclass(frozen=True)
class SweepPoint:
    """One run of the sweep: a model shape trained for `steps` steps at budget `budget`."""

    budget: float
    model: GPTConfig
    steps: int
    tokens_per_step: int

    @property
    def depth(self) -> int:
        return self.model.n_layer

    @property
    def name(self) -> str:
        return f"C{budget_label(self.budget)}-d{self.depth}"

    @property
    def tokens(self) -> int:
        return self.steps * self.tokens_per_step


def budget_label(budget: float) -> str:
    """A budget as a short name: 1e12 -> '1e12', 3.16e13 -> '3.16e13', 3e9 -> '3e9'."""
    return re.sub(r"e\+?0*(\d)", r"e\1", f"{budget:.3g}")


# --- presets -------------------------------------------------------------------------------------


def sweep_preset_dirs() -> list[Path]:
    """Sweep presets live in `configs/scaling/` (beside, not among, the training presets)."""
    from byollm.train.config import preset_dirs

    return [d / "scaling" for d in preset_dirs()]


def available_sweeps() -> list[str]:
    names = {p.stem for d in sweep_preset_dirs() if d.is_dir() for p in d.glob("*.toml")}
    return sorted(names | {DEFAULT_SWEEP})


def load_sweep_config(
    preset: str | Path | None = None, overrides: dict[str, str] | None = None
) -> SweepConfig:
    """A SweepConfig from a preset name or TOML path (None = `cpu`) plus `--key value` overrides.

    The `cpu` preset is the dataclass's defaults, so it works with no configs/ folder in sight.
    """
    path = _find_sweep_preset(preset or DEFAULT_SWEEP)
    if path is None:
        config = SweepConfig()
    else:
        data = load_toml(path)
        data.setdefault("name", f"scaling-{path.stem}")
        config = from_dict(SweepConfig, data, str(path))
    if overrides:
        config = apply_overrides(config, overrides, "command line")
        config = dataclasses.replace(config)  # re-run the checks on the new values
    return config


def _find_sweep_preset(name: str | Path) -> Path | None:
    path = user_path(name)
    if path.suffix == ".toml" or path.exists():
        if not path.is_file():
            raise ByollmError(f"sweep config file not found: {path}")
        return path
    for directory in sweep_preset_dirs():
        if (directory / f"{name}.toml").is_file():
            return directory / f"{name}.toml"
    if str(name) == DEFAULT_SWEEP:
        return None
    raise ByollmError(
        f"unknown sweep preset {str(name)!r}; presets: {', '.join(available_sweeps())} "
        "(or give a path to a .toml file)"
    )


def save_sweep_config(config: SweepConfig, sweep_dir: Path) -> Path:
    """Write `sweep.json`, so that `fit`, `plot` and `predict` know how the sweep was made."""
    path = sweep_dir / SWEEP_FILE
    payload = {"format": SWEEP_FORMAT, "version": SWEEP_VERSION, "sweep": to_dict(config)}
    write_file_atomically(
        path, (json.dumps(payload, indent=2) + "\n").encode(), what="sweep config"
    )
    return path


def read_sweep_config(sweep_dir: str | Path) -> SweepConfig:
    """The SweepConfig a sweep folder was made with (its `sweep.json`), placed where the folder
    is now (a moved sweep folder keeps working)."""
    sweep_dir = Path(sweep_dir)
    path = sweep_dir / SWEEP_FILE
    payload = read_versioned_file(
        path,
        format=SWEEP_FORMAT,
        version=SWEEP_VERSION,
        missing=f"missing; is {sweep_dir} a sweep folder?",
    )
    config = from_dict(SweepConfig, payload["sweep"], str(path))
    return dataclasses.replace(config, out_dir=str(sweep_dir.parent), name=sweep_dir.name)


# --- sizes and the plan --------------------------------------------------------------------------


def model_for_depth(config: SweepConfig, depth: int, vocab_size: int) -> GPTConfig:
    """The model of a given depth under the sweep's size rule."""
    width = config.aspect_ratio * depth
    return dataclasses.replace(
        TrainConfig().model,
        vocab_size=vocab_size,
        block_size=config.block_size,
        n_layer=depth,
        n_embd=width,
        n_head=width // config.head_dim,
        n_kv_head=None,
    )


def param_counts(model: GPTConfig) -> dict[str, int]:
    """N three ways (see PARAM_COUNTS) from `model_info`'s breakdown.

    >>> counts = param_counts(GPTConfig(vocab_size=100, n_layer=1, n_head=1, n_embd=16, bias=False))
    >>> counts["non_embedding_head"] - counts["non_embedding"]     # the head: 100 x 16
    1600
    """
    info = model_info(model)
    parts = info["params_breakdown"]
    non_embedding = parts["blocks"] + parts["final_norm"]
    return {
        "total": info["params"],
        "non_embedding": non_embedding,
        "non_embedding_head": non_embedding + model.vocab_size * model.n_embd,
    }


def training_flops_per_token(model: GPTConfig) -> int:
    """Training FLOPs per token (3 x forward, attention included), as `byollm model info`."""
    return model_info(model, seq_len=model.block_size)["flops_per_token_train"]


def depths_for_budget(config: SweepConfig, budget: float, vocab_size: int) -> list[int]:
    """The depths trained at `budget`: `depths`, or `sizes` of them centred on the guess."""
    if config.depths:
        return sorted(set(config.depths))
    ladder = range(config.min_depth, config.max_depth + 1)

    def distance_from_guess(depth: int) -> float:
        model = model_for_depth(config, depth, vocab_size)
        tokens = budget / training_flops_per_token(model)
        ratio = tokens / param_counts(model)[config.params]
        return abs(math.log(ratio / config.tokens_per_param_guess))

    centre = min(ladder, key=distance_from_guess)
    first = min(
        max(centre - config.sizes // 2, config.min_depth), config.max_depth - config.sizes + 1
    )
    return list(range(first, first + config.sizes))


def plan_point(config: SweepConfig, budget: float, depth: int, vocab_size: int) -> SweepPoint:
    """The run of `depth` that spends `budget` training FLOPs (to the nearest whole step)."""
    model = model_for_depth(config, depth, vocab_size)
    tokens_per_step = config.batch_size * config.block_size
    flops_per_step = training_flops_per_token(model) * tokens_per_step
    steps = max(1, round(budget / flops_per_step))
    return SweepPoint(budget, model, steps, tokens_per_step)


def plan_sweep(config: SweepConfig, vocab_size: int) -> list[SweepPoint]:
    """Every point of the sweep, budget by budget, smallest model first."""
    points = [
        plan_point(config, budget, depth, vocab_size)
        for budget in sorted(config.budgets)
        for depth in depths_for_budget(config, budget, vocab_size)
    ]
    short = [p for p in points if p.steps < config.min_steps]
    if short:
        listed = ", ".join(f"{p.name} ({p.steps} steps)" for p in short[:4])
        raise ByollmError(
            f"{len(short)} point(s) would train fewer than min_steps={config.min_steps} steps: "
            f"{listed}; raise the smallest budget, lower batch_size or max_depth, or lower min_steps"
        )
    return points


def describe_point(point: SweepPoint, config: SweepConfig) -> dict:
    """What a point is, before training: shape, N three ways, D, FLOPs both ways."""
    counts = param_counts(point.model)
    flops_per_token = training_flops_per_token(point.model)
    return {
        "point": point.name,
        "budget": point.budget,
        "depth": point.depth,
        "n_embd": point.model.n_embd,
        "n_head": point.model.n_head,
        **{f"params_{k}": v for k, v in counts.items()},
        "tokens": point.tokens,
        "steps": point.steps,
        "tokens_per_step": point.tokens_per_step,
        "tokens_per_param": point.tokens / counts[config.params],
        "flops_per_token": flops_per_token,
        "flops_exact": flops_per_token * point.tokens,
        "flops_6nd": 6 * counts["non_embedding_head"] * point.tokens,
    }


def format_plan(rows: list[dict]) -> str:
    """The plan as a table (one row per point)."""
    header = (
        f"{'point':<16}{'width':>6}{'N (matmul)':>12}{'tokens':>13}{'steps':>8}"
        f"{'D/N':>8}{'6ND/exact':>10}"
    )
    lines = [header]
    for r in rows:
        lines.append(
            f"{r['point']:<16}{r['n_embd']:>6}{r['params_non_embedding_head']:>12,}"
            f"{r['tokens']:>13,}{r['steps']:>8}{r['tokens_per_param']:>8.1f}"
            f"{r['flops_6nd'] / r['flops_exact']:>10.2f}"
        )
    return "\n".join(lines)


# --- running -------------------------------------------------------------------------------------


def point_train_config(config: SweepConfig, point: SweepPoint, data_dir: Path) -> TrainConfig:
    """The TrainConfig of a point: the sweep's rules applied to its shape and length."""
    width = point.model.n_embd
    return TrainConfig(
        name=point.name,
        out_dir=str(config.sweep_dir() / "runs"),
        corpus=config.corpus,
        tokenizer=config.tokenizer,
        data_dir=str(data_dir),
        val_fraction=config.val_fraction,
        mirror=config.mirror,
        model=point.model,
        batch_size=config.batch_size,
        max_steps=point.steps,
        optimizer=config.optimizer,
        lr=config.lr * math.sqrt(config.base_width / width),
        muon_lr=config.muon_lr,
        schedule=config.schedule,
        warmup_steps=round(config.warmup_fraction * point.steps),
        decay_fraction=config.decay_fraction,
        min_lr_ratio=0.0,
        eval_interval=math.ceil(point.steps / config.checkpoints),
        eval_rows=config.eval_rows,
        log_interval=max(1, point.steps // 20),
        sample_tokens=0,
        device=config.device,
        dtype=config.dtype,
        threads=config.threads,
        seed=config.seed,
        workers=config.workers,
    )


# Keys that change where a run is written or how fast it goes, not what it trains: a sweep folder
# that was moved, or rerun with more threads, still matches its runs. `fsdp` shards the same
# training across processes (tested equal to one process); it is listed also because it came
# after the first sweeps, whose recorded fingerprints must still match.
NOT_FINGERPRINTED = ("name", "out_dir", "data_dir", "mirror", "threads", "workers", "fsdp")


def config_hash(train_config: TrainConfig | dict) -> str:
    """A short fingerprint of what a training config trains: equal runs, equal hashes."""
    data = train_config if isinstance(train_config, dict) else to_dict(train_config)
    kept = {k: v for k, v in data.items() if k not in NOT_FINGERPRINTED}
    return hashlib.sha256(json.dumps(kept, sort_keys=True).encode()).hexdigest()[:16]


def sweep_data_dir(config: SweepConfig) -> Path:
    """Where the sweep's tokens live: `data_dir`, or the sweep folder's data/."""
    return Path(config.data_dir) if config.data_dir else config.sweep_dir() / "data"


def prepare_sweep_data(config: SweepConfig, *, progress: bool = True) -> tuple[Path, dict]:
    """Tokenize the corpus once for every run of the sweep; (data folder, its meta.json)."""
    from byollm.data.prepare import prepare

    data_dir = sweep_data_dir(config)
    meta = prepare(
        config.corpus,
        config.tokenizer,
        data_dir,
        val_fraction=config.val_fraction,
        workers=config.workers or None,
        progress=progress,
        mirror=config.mirror or None,
    )
    return data_dir, meta


def run_sweep(
    config: SweepConfig,
    *,
    overwrite: bool = False,
    progress: bool = True,
    log=print,
    wait_s: float = 10.0,
) -> list[dict]:
    """Train every point of the sweep not yet in its results file; all the records, in plan order.

    Several processes may run one sweep at once (one per core: `byollm scaling run` in two
    terminals): a point another process is training is passed over and taken up again at the
    end, once it is recorded (skipped) or its process has gone (resumed from its checkpoint)."""
    from byollm.train.rundir import RunInUse

    sweep_dir = config.sweep_dir()
    sweep_dir.mkdir(parents=True, exist_ok=True)
    data_dir, meta = prepare_sweep_data(config, progress=progress)
    points = plan_sweep(config, meta["vocab_size"])
    save_sweep_config(config, sweep_dir)
    results = sweep_dir / RESULTS_FILE
    records: dict[str, dict] = {}
    pending, first_pass = list(points), True
    while pending:
        busy = []
        for point in pending:
            if first_pass:
                log(f"byollm scaling: [{points.index(point) + 1}/{len(points)}] {point.name}")
            try:
                records[point.name] = run_point(
                    config,
                    point,
                    data_dir,
                    meta,
                    results,
                    # a point another process finished meanwhile was trained under these rules
                    overwrite=overwrite and first_pass,
                    progress=progress,
                    log=log,
                )
            except RunInUse as e:
                if first_pass:
                    log(
                        f"byollm scaling: {point.name} is being trained by another process "
                        f"(pid {e.holder}); back to it when the other points are done"
                    )
                busy.append(point)
        if busy and len(busy) == len(pending):  # only others' points are left: wait for them
            time.sleep(wait_s)
        pending, first_pass = busy, False
    return [records[point.name] for point in points]


def run_point(
    config: SweepConfig,
    point: SweepPoint,
    data_dir: Path,
    meta: dict,
    results: Path,
    *,
    overwrite: bool = False,
    progress: bool = True,
    log=print,
) -> dict:
    """Train one point (or skip or resume it) and return its record, appended to `results`."""
    from byollm.model.checkpoint import read_checkpoint_config
    from byollm.train import train

    train_config = point_train_config(config, point, data_dir)
    fingerprint = config_hash(train_config)
    done = latest_records(read_results(results)) if results.exists() else {}
    if point.name in done and not overwrite:
        if done[point.name]["config_hash"] == fingerprint:
            _check_same_data(done[point.name], meta, results)
            log(f"byollm scaling: {point.name} is done (in {results.name}), skipped")
            return done[point.name]
        raise _changed_config_error(point, results)
    run_dir = train_config.run_dir()
    checkpoint = _resumable_checkpoint(run_dir)
    resume = checkpoint is not None and not overwrite
    if resume and config_hash(read_checkpoint_config(checkpoint).get("train", {})) != fingerprint:
        raise _changed_config_error(point, run_dir)
    # A folder with no checkpoint died before its first save: nothing in it is worth keeping.
    restart = not resume and run_dir.exists()
    train(train_config, resume=resume, overwrite=restart, progress=progress, log=log)
    record = _record(config, point, train_config, fingerprint, meta)
    append_result(results, record)
    log(
        f"byollm scaling: {point.name}: val loss {record['val_loss']:.4f} "
        f"({record['val_bpb']:.4f} bits/byte), {record['wall_s']:.1f} s"
    )
    return record


def _resumable_checkpoint(run_dir: Path) -> Path | None:
    """The run's latest training checkpoint (or its `.old` twin after a crash), if it has one."""
    from byollm.model.checkpoint import LATEST, resolve_checkpoint
    from byollm.train.checkpoint import STATE_FILE

    try:
        return resolve_checkpoint(run_dir / LATEST, require=STATE_FILE)
    except ByollmError:  # no checkpoint yet: the run never reached its first save
        return None


def _changed_config_error(point: SweepPoint, where: Path) -> ByollmError:
    return ByollmError(
        f"{where}: point {point.name} was trained with another config (a changed rule or key); "
        "pass --overwrite to train every point again, or use a new --name"
    )


def _check_same_data(record: dict, meta: dict, results: Path) -> None:
    """Refuse a finished point that saw another train/val split than the sweep's data has now.

    The data folder is prepared again when its meta.json is from an older byollm (the document
    split replaced the tail split), and every val loss of a sweep must be on the same held-out
    text: a fit across two val sets measures the split, not a law. Records written before
    `data_split_sha256` existed are checked by the training tokens their `epochs` count over.
    """
    saved = record.get("data_split_sha256")
    if saved is not None:
        same = saved == split_fingerprint(meta)
    else:
        same = round(record["tokens"] / record["epochs"]) == meta["splits"]["train"]["tokens"]
    if not same:
        raise ByollmError(
            f"{results}: point {record['point']} was trained on another train/val split of the "
            "data than the sweep's data folder holds now (it was prepared again, e.g. by a newer "
            "byollm); runs scored on different val sets cannot be fitted together: start a new "
            "sweep (--name) or pass --overwrite to train every point again"
        )


def _record(
    config: SweepConfig, point: SweepPoint, train_config: TrainConfig, fingerprint: str, meta: dict
) -> dict:
    from byollm.train.metrics import read_metrics
    from byollm.train.rundir import METRICS_FILE

    metrics = train_config.run_dir() / METRICS_FILE
    final = [
        r for r in read_metrics(metrics) if r.get("kind") == "eval" and r["step"] == point.steps
    ]
    if not final:
        raise ByollmError(f"{metrics}: no evaluation at the last step {point.steps}")
    final = final[-1]
    val = meta["splits"]["val"]
    return {
        "format": RESULT_FORMAT,
        "version": RESULT_VERSION,
        **describe_point(point, config),
        "val_loss": final["val_loss"],
        "val_bpb": final["val_bpb"],
        "train_loss": final["train_loss"],
        "val_bytes_per_token": val["bytes"] / max(1, val["tokens"]),
        "epochs": point.tokens / meta["splits"]["train"]["tokens"],
        "wall_s": final["elapsed"],
        "lr": train_config.lr,
        "muon_lr": train_config.muon_lr,
        "warmup_steps": train_config.warmup_steps,
        "corpus": config.corpus,
        "tokenizer": config.tokenizer,
        "vocab_size": point.model.vocab_size,
        "config_hash": fingerprint,
        "data_split_sha256": split_fingerprint(meta),
    }


# --- the results file ----------------------------------------------------------------------------


def append_result(path: Path, record: dict) -> None:
    """Add one record as a JSON line (flushed at once: a crash loses at most the line in flight)."""
    with path.open("a") as f:
        f.write(json.dumps(record) + "\n")


def read_results(path: str | Path) -> list[dict]:
    """The records of a results.jsonl (or holdout.jsonl), checked for format and version."""
    return read_records(path, RESULT_FORMAT, RESULT_VERSION)


def read_records(path: str | Path, record_format: str, version: int) -> list[dict]:
    """The JSON lines of `path`, each checked to be a `record_format` record of `version`.

    A partly written last line (a crash mid-write) is ignored; any other bad line is an error
    naming the file and the line.
    """
    path = Path(path)
    try:
        lines = path.read_text().splitlines()
    except FileNotFoundError:
        raise ByollmError(f"{path}: missing; run `byollm scaling run` first") from None
    records = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            if number == len(lines):
                continue
            raise ByollmError(f"{path}:{number}: not a JSON line") from None
        records.append(
            check_header(record, f"{path}:{number}", format=record_format, version=version)
        )
    return records


def latest_records(records: list[dict]) -> dict[str, dict]:
    """The last record of each point (a rerun's record replaces the earlier one)."""
    return {r["point"]: r for r in records}


def sweep_records(path: str | Path) -> list[dict]:
    """The finished points of a sweep: its folder's results.jsonl, or such a file itself."""
    path = Path(path)
    if not path.exists():
        raise ByollmError(f"{path}: no such sweep folder or results file")
    if path.is_dir():
        path = path / RESULTS_FILE
    return list(latest_records(read_results(path)).values())
