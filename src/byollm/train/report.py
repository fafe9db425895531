"""The run report: `report.md` in the run folder, the card a learner shares after training.

    >>> write_report("runs/tiny")    # (re)builds runs/tiny/report.md     # doctest: +SKIP

or from the shell, for any finished run: `byollm train --report runs/tiny`.

The report holds, in order: a one-line summary; the config (key settings, the full TOML folded
away); the data (corpus, tokenizer, token counts); the model (parameters, FLOPs per token); time
and throughput (tokens/s, MFU); the losses (first, best and final, val bits per byte); the loss
curve (loss.png, linked); the last sample; the machine; and task scores (BLiMP, ...) when the
run evaluated any.

Design choices:
- **Rebuilt from the run folder's own files** (run.json, checkpoint/config.json, metrics.jsonl,
  samples.txt, loss.png, machine.json) and the prepared data's meta.json, never from the
  trainer's memory, so a report can be regenerated for any run, and what it says is what the
  files say.
- **The machine is recorded once, where it is known.** Which CPU or GPU trained the run is in no
  other file, so the trainer passes its device when it writes the report and that lands in
  `machine.json`; a report rebuilt for an older run says "not recorded" rather than describing
  the machine that happens to rebuild it.
- **Tolerant reader.** A missing loss.png or samples.txt, a run without evaluations, a data
  folder that has moved: that part says so, the rest is written. Task scores are read from
  records of kind "tasks", from a "tasks" dict, or from eval keys such as `blimp_acc` and
  `task_*`, whichever a run has.
- **Never costs a run.** `write_report` writes atomically (a temporary file, then a rename) and
  turns any failure into one warning line: the report summarises a run, it is not worth one.
"""

from __future__ import annotations

import json
import math
import os
import platform
import re
import statistics
import time
from pathlib import Path

import torch

from byollm.errors import ByollmError
from byollm.paths import replaced_atomically
from byollm.train.rundir import (
    LOSS_PLOT_FILE,
    MACHINE_FILE,
    METRICS_FILE,
    REPORT_FILE,
    RUN_FILE,
    SAMPLES_FILE,
    is_run_folder,
)

# Keys of an eval record that are not task scores.
EVAL_KEYS = {"kind", "step", "tokens", "train_loss", "val_loss", "val_bpb", "elapsed", "sample"}
# The settings shown in the report's table; the rest is in the folded TOML.
KEY_SETTINGS = (
    "seed",
    "corpus",
    "tokenizer",
    "max_steps",
    "batch_size",
    "tokens_per_step",
    "optimizer",
    "lr",
    "schedule",
    "warmup_steps",
    "weight_decay",
    "grad_clip",
    "dtype",
    "device",
    "init_from",
)
KEY_MODEL_SETTINGS = ("n_layer", "n_head", "n_embd", "block_size", "vocab_size")


def write_report(
    run_dir: str | Path,
    *,
    device: torch.device | None = None,
    dtype: torch.dtype | None = None,
    processes: int = 1,
    data_dir: str | Path | None = None,
    load_at_start: float | None = None,
    log=print,
) -> Path | None:
    """Write `run_dir/report.md`; its path, or None after one warning line if it failed.

    The trainer passes the `device`, `dtype` and number of `processes` it trained with and the
    machine's load when training started (saved in machine.json) and its `data_dir`; a rebuild
    passes none of them.
    """
    run_dir = Path(run_dir)
    try:
        return save_report(
            run_dir,
            device=device,
            dtype=dtype,
            processes=processes,
            data_dir=data_dir,
            load_at_start=load_at_start,
        )
    except Exception as e:  # noqa: BLE001 - a report, however broken, never fails a run
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        log(f"byollm train: warning: {run_dir / REPORT_FILE} not written ({reason})")
        return None


def save_report(
    run_dir: str | Path,
    *,
    device: torch.device | None = None,
    dtype: torch.dtype | None = None,
    processes: int = 1,
    data_dir: str | Path | None = None,
    load_at_start: float | None = None,
) -> Path:
    """`write_report` that raises: ByollmError for a folder that is not a run or a failed write."""
    run_dir = Path(run_dir)
    if not is_run_folder(run_dir):
        raise ByollmError(f"{run_dir}: not a byollm run folder (no run.json or checkpoint)")
    if device is not None:
        machine = describe_machine(device, dtype, processes, load_at_start)
        with replaced_atomically(run_dir / MACHINE_FILE) as tmp:
            tmp.write_text(json.dumps(machine, indent=2) + "\n")
    text = render_report(run_dir, data_dir=data_dir)
    path = run_dir / REPORT_FILE
    with replaced_atomically(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return path


def machine_load() -> float | None:
    """The 1-minute load average (runnable threads, all programs), or None where unknown.

    Recorded at a run's start and end because a speed measured while other jobs shared the
    cores is not a speed of this code: oversubscribed torch threads run 10x slower or worse.
    """
    try:
        return round(os.getloadavg()[0], 2)
    except (AttributeError, OSError):  # Windows; no /proc/loadavg
        return None


def describe_machine(
    device: torch.device,
    dtype: torch.dtype | None,
    processes: int = 1,
    load_at_start: float | None = None,
) -> dict:
    """What trained the run: device, CPU and GPU names, torch, threads, dtype, processes, load."""
    device = torch.device(device)
    gpu = torch.cuda.get_device_name(device) if device.type == "cuda" else None
    return {
        "device": device.type,
        "gpu": gpu,
        "cpu": cpu_name(),
        "processes": processes,
        "threads": torch.get_num_threads(),
        "dtype": str(dtype).replace("torch.", "") if dtype is not None else None,
        "torch": torch.__version__,
        "python": platform.python_version(),
        "platform": platform.platform(terse=True),
        "cpu_cores": os.cpu_count(),
        "load_at_start": load_at_start,
        "load_at_end": machine_load(),
        "recorded": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }


def cpu_name() -> str:
    """The CPU's model name (/proc/cpuinfo on Linux), else what `platform` knows."""
    from byollm.train.metrics import _cpuinfo

    match = re.search(r"^model name\s*:\s*(.+)$", _cpuinfo(), re.MULTILINE)
    if match:
        return match.group(1).strip()
    return platform.processor() or platform.machine() or "unknown"


# --- reading the run folder -----------------------------------------------------------------------


def render_report(run_dir: str | Path, *, data_dir: str | Path | None = None) -> str:
    """The markdown of the report of the run in `run_dir` (see the module docstring)."""
    from byollm.train.metrics import read_metrics

    run_dir = Path(run_dir)
    run = _read_json(run_dir / RUN_FILE)
    saved = _checkpoint_config(run_dir)
    train_cfg = saved.get("train") if isinstance(saved.get("train"), dict) else {}
    data_record = saved.get("data") if isinstance(saved.get("data"), dict) else {}
    metrics_path = run_dir / METRICS_FILE
    records = read_metrics(metrics_path) if metrics_path.is_file() else []
    meta = _data_meta(train_cfg, data_record, data_dir)
    name = run.get("name") or train_cfg.get("name") or run_dir.name

    sections = [
        f"# Run report: {name}",
        _summary(saved, records, data_record.get("corpus") or train_cfg.get("corpus")),
        _config_section(saved, records),
        _data_section(data_record, train_cfg, meta, records),
        _model_section(saved),
        _time_section(run, records),
        _loss_section(records, meta),
        _curve_section(run_dir),
        _sample_section(run_dir),
        _machine_section(run_dir),
        _task_section(records),
    ]
    footer = (
        f"<sub>Written by byollm from the files of `{run_dir}` on "
        f"{time.strftime('%Y-%m-%d %H:%M')}; rebuild it with `byollm train --report {run_dir}`."
        "</sub>"
    )
    return "\n\n".join(s for s in sections if s) + "\n\n" + footer + "\n"


def _read_json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def _checkpoint_config(run_dir: Path) -> dict:
    """config.json of the run's checkpoint (or of best/ when the checkpoint is gone)."""
    from byollm.model.checkpoint import BEST, LATEST, read_checkpoint_config, resolve_checkpoint

    for name in (LATEST, BEST):
        try:
            return read_checkpoint_config(resolve_checkpoint(run_dir / name))
        except ByollmError:
            continue  # missing or unreadable: try best/, else report without it
    return {}


def _data_meta(train_cfg: dict, data_record: dict, data_dir) -> dict:
    """meta.json of the data the run trained on, or {} when it cannot be found any more."""
    from byollm.data.tokens import read_meta

    if data_dir is None:  # where `prepare_data` in trainer.py puts it
        from byollm.train.config import default_data_dir

        corpus = data_record.get("corpus") or train_cfg.get("corpus")
        if train_cfg.get("data_dir") and corpus == train_cfg.get("corpus"):
            data_dir = Path(train_cfg["data_dir"]).expanduser()
        elif corpus and train_cfg.get("tokenizer"):
            data_dir = default_data_dir(corpus, train_cfg["tokenizer"])
        else:
            return {}
    try:
        meta = read_meta(data_dir)
    except ByollmError:
        return {}
    # the same data only: the folder may have been prepared again from other text since
    for key in ("corpus_sha256", "tokenizer_hash"):
        if data_record.get(key) and data_record[key] != meta.get(key):
            return {}
    return meta


def _evals(records: list[dict]) -> list[dict]:
    return [r for r in records if r.get("kind") == "eval" and _number(r.get("val_loss"))]


def _trains(records: list[dict]) -> list[dict]:
    return [r for r in records if r.get("kind") == "train" and _number(r.get("loss"))]


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _fmt(value, digits: int = 4) -> str:
    return f"{value:.{digits}f}" if _number(value) else "n/a"


def _count(value) -> str:
    """1234567 -> "1.23M"; small numbers in full."""
    if not _number(value):
        return "n/a"
    for size, suffix in ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:g}"


def _duration(seconds) -> str:
    if not _number(seconds):
        return "n/a"
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(int(minutes), 60)
    return f"{hours}h{minutes:02d}m{secs:04.1f}s" if hours else f"{minutes}m{secs:04.1f}s"


def _table(header: tuple, rows: list[tuple]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# --- the sections ---------------------------------------------------------------------------------


def _summary(saved: dict, records: list[dict], corpus: str | None) -> str:
    model = saved.get("model") if isinstance(saved.get("model"), dict) else {}
    info = _model_info(model)
    evals = _evals(records)
    last = records[-1] if records else {}
    parts = []
    if info:
        parts.append(f"A {_count(info['params'])}-parameter GPT")
    else:
        parts.append("A GPT")
    if corpus:
        parts.append(f"trained on `{corpus}`")
    if last:
        parts.append(
            f"for {last.get('step', 0):,} steps ({_count(last.get('tokens'))} tokens) in "
            f"{_duration(last.get('elapsed'))}"
        )
    text = " ".join(parts)
    if evals:
        final = evals[-1]
        text += f": final val loss {_fmt(final['val_loss'])}"
        if _number(final.get("val_bpb")):
            text += f" ({_fmt(final['val_bpb'], 3)} bits per byte)"
    return text + "."


def _config_section(saved: dict, records: list[dict]) -> str:
    from byollm.config import from_dict, to_toml
    from byollm.train.config import TrainConfig

    train_cfg = saved.get("train")
    if not isinstance(train_cfg, dict) or not train_cfg:
        return "## Config\n\nNot recorded (the run has no checkpoint with its config)."
    # the model as built (its vocab_size is the tokenizer's), not as the config asked
    model = saved.get("model") if isinstance(saved.get("model"), dict) else {}
    rows = [
        (key, f"`{train_cfg[key]}`")
        for key in KEY_SETTINGS
        if train_cfg.get(key) not in (None, "", 0) or key == "seed"
    ]
    steps = [r for r in records if _number(r.get("tokens")) and r.get("step")]
    if steps:  # tokens_per_step = 0 in a config means one micro-batch: say how many that is
        rows.append(
            ("tokens per step (as trained)", f"{steps[-1]['tokens'] // steps[-1]['step']:,}")
        )
    rows += [(f"model.{key}", f"`{model[key]}`") for key in KEY_MODEL_SETTINGS if key in model]
    try:
        full = to_toml(from_dict(TrainConfig, train_cfg, "config.json [train]"))
        language = "toml"
    except ByollmError:  # a config of another byollm version: show it as it was saved
        full, language = json.dumps(train_cfg, indent=2), "json"
    return (
        "## Config\n\n"
        + _table(("setting", "value"), rows)
        + f"\n\n<details><summary>the full config ({language})</summary>\n\n"
        + _fenced(full, language)
        + "\n\n</details>"
    )


def _data_section(data_record: dict, train_cfg: dict, meta: dict, records: list[dict]) -> str:
    rows = []
    corpus = data_record.get("corpus") or train_cfg.get("corpus")
    if corpus:
        rows.append(("corpus", f"`{corpus}`"))
    if meta.get("corpus_bytes"):
        rows.append(("corpus size", f"{meta['corpus_bytes']:,} bytes"))
    tokenizer = data_record.get("tokenizer") or train_cfg.get("tokenizer")
    if tokenizer:
        vocab = f" (vocabulary {meta['vocab_size']:,})" if meta.get("vocab_size") else ""
        rows.append(("tokenizer", f"`{tokenizer}`{vocab}"))
    splits = meta.get("splits") if isinstance(meta.get("splits"), dict) else {}
    for split in ("train", "val"):
        counts = splits.get(split) if isinstance(splits.get(split), dict) else {}
        if _number(counts.get("tokens")):
            per = ""
            if _number(counts.get("bytes")) and counts["tokens"]:
                per = f", {counts['bytes'] / counts['tokens']:.2f} bytes per token"
            rows.append((f"{split} tokens", f"{counts['tokens']:,}{per}"))
    seen = records[-1].get("tokens") if records else None
    if _number(seen):
        train_tokens = (splits.get("train") or {}).get("tokens")
        epochs = (
            f" ({seen / train_tokens:.2f} epochs)" if _number(train_tokens) and train_tokens else ""
        )
        rows.append(("tokens trained on", f"{seen:,}{epochs}"))
    if not rows:
        return "## Data\n\nNot recorded."
    note = (
        ""
        if meta
        else "\n\nThe prepared data's meta.json was not found (moved, or prepared again), so "
        "token counts are missing."
    )
    return "## Data\n\n" + _table(("", "value"), rows) + note


def _model_info(model: dict) -> dict:
    from byollm.config import from_dict
    from byollm.model import GPTConfig, model_info

    if not model:  # nothing recorded: not the defaults' numbers
        return {}
    try:
        return model_info(from_dict(GPTConfig, model, "config.json [model]"))
    except (ByollmError, TypeError, ValueError, KeyError):
        return {}


def _model_section(saved: dict) -> str:
    model = saved.get("model") if isinstance(saved.get("model"), dict) else {}
    info = _model_info(model)
    if not info:
        return "## Model\n\nNot recorded."
    rows = [
        ("parameters", f"{info['params']:,}"),
        ("of them outside the embeddings", f"{info['params_non_embedding']:,}"),
        ("FLOPs per token, training (6N + attention)", _count(info["flops_per_token_train"])),
        ("context length", f"{info['seq_len']:,} tokens"),
    ]
    return "## Model\n\n" + _table(("", "value"), rows)


def _time_section(run: dict, records: list[dict]) -> str:
    trains = _trains(records)
    if not records:
        return "## Time and throughput\n\nNo metrics recorded (metrics.jsonl is missing or empty)."
    last = records[-1]
    rows = []
    if run.get("created"):
        rows.append(("started", run["created"]))
    rows.append(("training time", _duration(last.get("elapsed"))))
    rows.append(("steps", f"{last.get('step', 0):,}"))
    speeds = [r["tokens_per_s"] for r in trains if _number(r.get("tokens_per_s"))]
    if speeds:
        rows.append(
            ("tokens/s (median of the logged windows)", f"{statistics.median(speeds):,.0f}")
        )
    mfus = [r["mfu"] for r in trains if _number(r.get("mfu"))]
    if mfus:
        rows.append(("MFU (median)", f"{100 * statistics.median(mfus):.1f}%"))
    elif trains:
        rows.append(("MFU", "n/a (byollm knows no peak FLOP/s for this device)"))
    return "## Time and throughput\n\n" + _table(("", "value"), rows)


def _loss_section(records: list[dict], meta: dict) -> str:
    trains, evals = _trains(records), _evals(records)
    if not trains and not evals:
        return ""
    lines = ["## Losses", ""]
    if trains:
        first, final = trains[0], trains[-1]
        lines.append(
            f"Batch loss {_fmt(first['loss'])} at step {first.get('step')}, "
            f"{_fmt(final['loss'])} at step {final.get('step')}."
        )
        if meta.get("vocab_size"):
            lines[-1] += (
                f" A model guessing uniformly among {meta['vocab_size']:,} tokens would score "
                f"ln V = {math.log(meta['vocab_size']):.4f}."
            )
    if evals:
        best = min(evals, key=lambda r: r["val_loss"])
        rows = [
            (
                label,
                r.get("step"),
                _fmt(r.get("train_loss")),
                _fmt(r["val_loss"]),
                _fmt(r.get("val_bpb"), 3),
            )
            for label, r in (("first", evals[0]), ("best", best), ("final", evals[-1]))
        ]
        lines += [
            "",
            _table(("evaluation", "step", "train loss", "val loss", "val bits/byte"), rows),
        ]
        lines += [
            "",
            "Losses are mean cross-entropy in nats per token on fixed windows of each split; "
            "bits per byte divide out the tokenizer, so runs with different tokenizers compare.",
        ]
    return "\n".join(lines)


def _curve_section(run_dir: Path) -> str:
    if (run_dir / LOSS_PLOT_FILE).is_file():
        return f"## Loss curve\n\n![train and val loss against tokens seen]({LOSS_PLOT_FILE})"
    return "## Loss curve\n\nNo loss.png in the run folder."


def last_sample(path: Path) -> tuple[str, str] | None:
    """(heading, text) of the last sample in a samples.txt, or None if there is none."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None
    blocks = re.split(r"^(=== .* ===)$", text, flags=re.MULTILINE)
    # re.split with a group: [before, heading1, body1, heading2, body2, ...]
    if len(blocks) < 3:
        return None
    return blocks[-2].strip("= "), blocks[-1].strip("\n")


def _sample_section(run_dir: Path) -> str:
    sample = last_sample(run_dir / SAMPLES_FILE)
    if sample is None:
        return "## Sample\n\nNo samples.txt in the run folder."
    heading, text = sample
    return f"## Sample\n\nThe last sample ({heading}):\n\n" + _fenced(text, "text")


def _machine_section(run_dir: Path) -> str:
    machine = _read_json(run_dir / MACHINE_FILE)
    if not machine:
        return (
            "## Machine\n\nNot recorded (machine.json is written at the end of a run by a byollm "
            "that writes reports)."
        )
    rows = []
    if machine.get("gpu"):
        rows.append(("GPU", f"{machine['gpu']} x {machine.get('processes', 1)}"))
    rows.append(("CPU", machine.get("cpu", "unknown")))
    for key, label in (
        ("device", "device"),
        ("dtype", "dtype"),
        ("threads", "torch threads"),
        ("processes", "processes"),
        ("torch", "torch"),
        ("python", "python"),
        ("platform", "platform"),
    ):
        if machine.get(key) not in (None, ""):
            rows.append((label, machine[key]))
    start, end, cores = (machine.get(k) for k in ("load_at_start", "load_at_end", "cpu_cores"))
    if _number(start) or _number(end):
        start_text, end_text = (f"{x:.2f}" if _number(x) else "?" for x in (start, end))
        rows.append(("load (1 min) at start -> end", f"{start_text} -> {end_text}"))
    text = "## Machine\n\n" + _table(("", "value"), rows)
    threads = machine.get("threads") or 0
    busiest = max((x for x in (start, end) if _number(x)), default=0)
    if _number(cores) and busiest > cores + 0.5 and busiest > threads + 0.5:
        text += (
            f"\n\nThe load reached {busiest:.1f} on {cores} cores: other programs shared the "
            "CPU during this run, so its speed (tokens/s, MFU) is not this code's speed."
        )
    return text


def task_scores(records: list[dict]) -> dict[str, list[tuple[int, float]]]:
    """{task metric: [(step, score), ...]} from whichever shape the run logged them in."""
    scores: dict[str, list[tuple[int, float]]] = {}

    def add(step, key, value):
        if _number(value):
            scores.setdefault(key, []).append((step, value))

    for r in records:
        step = r.get("step")
        if isinstance(r.get("tasks"), dict):  # {"tasks": {"blimp": 0.61}}
            for key, value in r["tasks"].items():
                add(step, key, value)
        if r.get("kind") == "tasks":  # {"kind": "tasks", "step": 100, "blimp_acc": 0.61}
            for key, value in r.items():
                if key not in EVAL_KEYS and key != "tasks":
                    add(step, key, value)
        elif r.get("kind") == "eval":  # {"kind": "eval", ..., "blimp_acc": 0.61}
            for key, value in r.items():
                if key.startswith("task_") or re.search(r"_acc(_|$)", key):
                    add(step, key.removeprefix("task_"), value)
    return scores


def _task_section(records: list[dict]) -> str:
    scores = task_scores(records)
    if not scores:
        return ""
    rows = []
    for key, points in sorted(scores.items()):
        (first_step, first), (last_step, last) = points[0], points[-1]
        rows.append((key, f"{first:.4f} (step {first_step})", f"{last:.4f} (step {last_step})"))
    return (
        "## Task scores\n\n"
        + _table(("task", "first", "final"), rows)
        + "\n\nAccuracies are fractions (BLiMP: the share of minimal pairs where the model finds "
        "the grammatical sentence more likely; chance is 0.5)."
    )


def _fenced(text: str, language: str = "") -> str:
    """`text` in a code fence longer than any run of backticks inside it."""
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{language}\n{text}\n{fence}"
