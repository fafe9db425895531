"""The training loop: data in, checkpoints, metrics, a loss plot and samples out.

    >>> from byollm.train import TrainConfig, train
    >>> summary = train(TrainConfig(max_steps=200))       # doctest: +SKIP
    >>> summary["best_val_loss"]                           # doctest: +SKIP

One optimizer step, read top to bottom in `Trainer.train_step`:

    for each micro-step:                     (gradient accumulation up to tokens_per_step)
        x, y = loader.batch(step, micro)     windows of text and the same text shifted by one
        loss = model(x, y)                   mean cross-entropy of predicting y from x
        (loss / micro_steps).backward()      gradients add up over micro-steps
    clip the gradient norm                   one bad batch cannot throw the weights far
    lr = peak * schedule(step)               warmup, then cosine or warmup-stable-decay
    optimizer.step(); zero the gradients

`Trainer.run` reads the same way: prepare the data (`_prepare_data`), set up (`_setup`: device,
data, model, optimizers, the resumed state), wrap the model (`_wrap_model`: compile, DDP), open
the logs (`_open_logs`), then `_loop` over steps, evaluating and saving every eval_interval.

Design choices:
- The loop is a plain `for` over steps; everything is a function of the step (data windows,
  learning rate), which is what makes resume exact and DDP equal to one big batch.
- A run folder `runs/<name>/` is never silently overwritten: an existing run needs `resume=True`
  (continue it) or `overwrite=True` (delete it and start over); a folder that is not a byollm run
  is never touched, and one process at a time trains a run (see `rundir`).
- `resume=True` continues the same experiment or refuses: the seed, corpus, tokenizer and split
  must be the run's own, the data is the very data the run was trained on (never a fallback
  corpus), and every file of the checkpoint is checksum-verified.
- A NaN or infinite loss stops the run at once with the step and the learning rate, keeping the
  last good checkpoint.
- Evaluation, sampling and checkpoints leave the training RNG untouched, so when they happen does
  not change the run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import sys
import time
from pathlib import Path

import torch

from byollm.config import to_dict
from byollm.cpu_fast_paths import keep_freed_cpu_memory
from byollm.data.loader import BatchLoader
from byollm.data.tokens import open_tokens, read_meta, split_fingerprint
from byollm.device import autocast, pick_dtype
from byollm.errors import ByollmError
from byollm.model.checkpoint import BEST, LATEST, read_checkpoint_config, resolve_checkpoint
from byollm.model.interface import model_device
from byollm.paths import byollm_home
from byollm.train import distributed
from byollm.train.checkpoint import (
    STATE_FILE,
    load_train_state,
    rng_state,
    save_train_checkpoint,
    set_rng_state,
)
from byollm.train.config import TrainConfig, default_data_dir
from byollm.train.init_from import load_init_model, with_init_tokenizer
from byollm.train.metrics import (
    ExternalLoggers,
    MetricsLog,
    Throughput,
    format_mfu,
    peak_flops,
    plot_losses,
)
from byollm.train.optim import build_optimizers, set_lr
from byollm.train.rundir import LOSS_PLOT_FILE, METRICS_FILE, SAMPLES_FILE, RunFolder
from byollm.train.schedule import lr_multiplier

FALLBACK_CORPUS = "python-stdlib:4MB"  # capped: about the size of Tiny Shakespeare
# What defines a run besides the model's shape: a resume must keep all of them.
RUN_IDENTITY = ("seed", "corpus", "tokenizer", "val_fraction")


class TrainingDiverged(ByollmError):
    """The loss became NaN or infinite."""


def train(
    config: TrainConfig,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    log=print,
) -> dict:
    """Run `config` end to end (data, training, checkpoints) and return a summary dict."""
    return Trainer(config, resume=resume, overwrite=overwrite, progress=progress, log=log).run()


def prepare_data(
    config: TrainConfig,
    *,
    corpus: str | None = None,
    fallback: bool = True,
    progress: bool = True,
    log=print,
) -> tuple[Path, str]:
    """Fetch the corpus and prepare it; the data dir and the corpus it holds.

    `corpus` defaults to the config's. When it is not cached and cannot be downloaded, a new run
    falls back to python-stdlib (`fallback=True`, and the corpus returned says so); a resumed
    run never does.
    """
    from byollm.corpora import OfflineError, get_corpus
    from byollm.data.prepare import prepare

    corpus = corpus or config.corpus
    mirror = config.mirror or None
    try:
        get_corpus(corpus, mirror=mirror, progress=progress)
    except OfflineError as e:
        if not fallback:
            raise
        log(f"byollm: {e}")
        log(
            f"byollm: corpus {corpus!r} is not cached and cannot be downloaded; falling back to "
            f"the offline corpus {FALLBACK_CORPUS!r} (pass --corpus PATH to use your own text)"
        )
        corpus = FALLBACK_CORPUS
    # A data_dir the user named holds their data: it is used, or refused, never re-prepared
    # from another corpus (byollm's own cache folders are rebuilt when their corpus changes).
    explicit = bool(config.data_dir) and corpus == config.corpus and not _in_cache(config.data_dir)
    if explicit:
        data_dir = Path(config.data_dir).expanduser()
    else:
        data_dir = default_data_dir(corpus, config.tokenizer)
    prepare(
        corpus,
        config.tokenizer,
        data_dir,
        val_fraction=config.val_fraction,
        workers=config.workers or None,
        progress=progress,
        mirror=mirror,
        replace=not explicit,
    )
    return data_dir, corpus


def _in_cache(folder: str) -> bool:
    """Whether `folder` is inside byollm's cache (init_from picks its data folder there)."""
    cache = (byollm_home() / "data").resolve()
    return cache in Path(folder).expanduser().resolve().parents


class Trainer:
    def __init__(
        self, config: TrainConfig, *, resume=False, overwrite=False, progress=True, log=print
    ):
        if resume and overwrite:
            raise ByollmError("choose one of resume (continue the run) and overwrite (start over)")
        config.validate()  # again: fields may have been changed since the config was built
        if config.init_from:  # the checkpoint's tokenizer prepares the corpus (init_from.py)
            config = with_init_tokenizer(config)
        self.config = config
        self.resume = resume
        self.overwrite = overwrite
        self.dist = distributed.setup(config.device)
        self.fsdp = config.fsdp and self.dist.distributed  # one process: nothing to shard
        self._plain_model = None  # FSDP: rank 0's full copy for samples and checkpoints
        self.progress = progress and self.dist.is_main
        self.log = log if self.dist.is_main else (lambda *a, **k: None)
        self.run_dir = config.run_dir()

    # --- set-up --------------------------------------------------------------------------------

    def run(self) -> dict:
        # Rank 0 checks the run folder and takes its lock; if it refuses, every rank stops.
        folder = distributed.on_main(
            RunFolder.open, self.run_dir, resume=self.resume, overwrite=self.overwrite
        )
        try:
            data_dir, corpus = distributed.on_main(self._prepare_data, share=True)
            self._setup(Path(data_dir), corpus)
            if self.step >= self.config.max_steps:
                return self._already_finished()
            self._wrap_model()
            self._open_logs(folder)
            try:
                return self._loop()
            finally:
                self.external.close()
        finally:
            if folder is not None:
                folder.release()

    def _prepare_data(self) -> tuple[str, str]:
        """Prepare the corpus; on resume, exactly the data the run has been training on."""
        cfg = self.config
        if not self.resume:
            data_dir, corpus = prepare_data(cfg, progress=self.progress, log=self.log)
            return str(data_dir), corpus
        checkpoint = resolve_checkpoint(self.run_dir / LATEST, require=STATE_FILE)
        saved = read_checkpoint_config(checkpoint)
        saved_train = saved.get("train") if isinstance(saved.get("train"), dict) else {}
        for key in RUN_IDENTITY:
            if key in saved_train and saved_train[key] != getattr(cfg, key):
                raise ByollmError(
                    f"{checkpoint}: this run was trained with {key} = {saved_train[key]!r}, this "
                    f"command has {getattr(cfg, key)!r}; resume with the run's own {key} or start "
                    "a new run (--name)"
                )
        saved_data = saved.get("data") if isinstance(saved.get("data"), dict) else {}
        corpus = saved_data.get("corpus") or cfg.corpus
        if corpus != cfg.corpus:
            self.log(
                f"byollm train: resuming on {corpus!r}, the corpus this run fell back to when "
                f"{cfg.corpus!r} was not available"
            )
        data_dir, _ = prepare_data(
            cfg, corpus=corpus, fallback=False, progress=self.progress, log=self.log
        )
        meta = read_meta(data_dir)
        for key, what in (("corpus_sha256", "corpus text"), ("tokenizer_hash", "tokenizer")):
            if saved_data.get(key) and saved_data[key] != meta.get(key):
                raise ByollmError(
                    f"{checkpoint}: the run was trained on a {what} with {key} "
                    f"{saved_data[key][:12]}..., {data_dir} now has {str(meta.get(key))[:12]}...; "
                    f"resume needs the run's own data (did {corpus} change?)"
                )
        if saved_data.get("split_sha256") not in (None, split_fingerprint(meta)):
            raise ByollmError(
                f"{checkpoint}: the run was trained on another train/val split than {data_dir} "
                f"now holds (its meta.json's split changed: a newer byollm's document split?); "
                "resume needs the run's own data: start a new run, or prepare the data as it was"
            )
        return str(data_dir), corpus

    def _setup(self, data_dir: Path, corpus: str) -> None:
        """Device, data, model, optimizers, then the resumed state: all the loop needs."""
        checkpoint = None
        if self.resume:
            checkpoint = resolve_checkpoint(self.run_dir / LATEST, require=STATE_FILE)
        self._setup_device()
        self._setup_tokenizer(data_dir)
        init_model = self._setup_model_config()
        self._setup_data(data_dir, corpus)
        self._setup_model(checkpoint, init_model)
        if self.fsdp:  # before the optimizers: sharding replaces the parameters
            distributed.shard_model(self.model)
        self._setup_optimizers()
        self.step = 0
        self.tokens_seen = 0
        self.best_val_loss = math.inf
        self.elapsed_before = 0.0
        if checkpoint is not None:
            self._load_train_state(checkpoint)

    def _setup_device(self) -> None:
        cfg = self.config
        torch.manual_seed(cfg.seed)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.device = self.dist.device
        self.dtype = pick_dtype(self.device, cfg.dtype)
        if self.device.type == "cpu":
            keep_freed_cpu_memory()  # no page faults for each step's activations

    def _setup_tokenizer(self, data_dir: Path) -> None:
        """The prepared data's meta.json and the tokenizer that made its ids."""
        from byollm.tokenizer import find_tokenizer_file, load_tokenizer

        self.meta = read_meta(data_dir)
        tokenizer_path = find_tokenizer_file(data_dir)
        self.tokenizer = load_tokenizer(tokenizer_path)
        if self.tokenizer.content_hash != self.meta["tokenizer_hash"]:
            raise ByollmError(
                f"{tokenizer_path}: does not match meta.json (hash differs); "
                "re-run `byollm prepare`"
            )

    def _setup_model_config(self):
        """The model's shape: the config's, or --init_from's (then its model, else None)."""
        cfg = self.config
        if cfg.init_from:  # weights only: the optimizer and the schedule start fresh
            init_model = load_init_model(cfg, self.tokenizer, self.device)
            self.model_config = init_model.config
            return init_model
        self.model_config = dataclasses.replace(cfg.model, vocab_size=self.tokenizer.vocab_size)
        return None

    def _setup_data(self, data_dir: Path, corpus: str) -> None:
        """The batch geometry (micro-steps per step) and the batch loaders."""
        cfg = self.config
        block = self.model_config.block_size

        rows_per_micro = cfg.batch_size * self.dist.world_size
        tokens_per_micro = rows_per_micro * block
        tokens_per_step = cfg.tokens_per_step or tokens_per_micro
        if tokens_per_step % tokens_per_micro:
            raise ByollmError(
                f"tokens_per_step={tokens_per_step} is not a multiple of batch_size * block_size "
                f"* processes = {cfg.batch_size} * {block} * {self.dist.world_size} = "
                f"{tokens_per_micro}; use a multiple such as {tokens_per_micro * max(1, round(tokens_per_step / tokens_per_micro))}"
            )
        self.grad_accum = tokens_per_step // tokens_per_micro
        self.tokens_per_step = tokens_per_step

        def loader(split, seed):
            return BatchLoader(
                open_tokens(data_dir, split),
                block_size=block,
                batch_size=cfg.batch_size,
                seed=seed,
                grad_accum=self.grad_accum,
                rank=self.dist.rank,
                world_size=self.dist.world_size,
                device=self.device,
                name=split,
            )

        self.train_loader = loader("train", cfg.seed)
        self.val_loader = loader("val", cfg.seed)
        eval_rows = max(cfg.eval_rows, self.dist.world_size)
        self.eval_sets = {
            "train": self.train_loader.eval_batches(eval_rows),
            "val": self.val_loader.eval_batches(eval_rows),
        }
        val_split = self.meta["splits"]["val"]
        self.val_bytes_per_token = val_split["bytes"] / max(1, val_split["tokens"])
        # what this run trains on, saved with each checkpoint for --resume to compare
        self.data_record = {"corpus": corpus}
        for key in ("corpus_sha256", "tokenizer", "tokenizer_hash", "val_fraction"):
            self.data_record[key] = self.meta.get(key)
        self.data_record["split_sha256"] = split_fingerprint(self.meta)
        self.data_dir = data_dir

    def _setup_model(self, checkpoint: Path | None, init_model) -> None:
        """The checkpoint's model when resuming, --init_from's, or a fresh (seeded) one."""
        from byollm.model import GPT, load_model

        if checkpoint is not None:
            self._check_checkpoint_config(checkpoint)
            self.model = load_model(checkpoint, device=str(self.device))
        elif init_model is not None:
            self.model = init_model
        else:
            self.model = GPT(self.model_config).to(self.device)
        self.raw_model = self.model  # stays the plain GPT when `model` gets wrapped

    def _setup_optimizers(self) -> None:
        cfg = self.config
        self.optimizers = build_optimizers(
            self.model,
            optimizer=cfg.optimizer,
            lr=cfg.lr,
            weight_decay=cfg.weight_decay,
            betas=(cfg.beta1, cfg.beta2),
            muon_lr=cfg.muon_lr,
            muon_momentum=cfg.muon_momentum,
            # One fused kernel instead of ~10 small ops per parameter tensor: on a small model
            # on the CPU the unfused AdamW step took ~10 ms of a ~50 ms step.
            fused=self.device.type in ("cuda", "cpu"),
        )
        # fp16 (GPUs without bf16) needs loss scaling, or small gradients round to zero;
        # bf16 and fp32 have fp32's exponent range, so there the scaler is a no-op.
        self.scaler = torch.amp.GradScaler(self.device.type, enabled=self.dtype == torch.float16)

    def _wrap_model(self) -> None:
        """Compile the model and wrap it for DDP, as configured (`raw_model` stays plain).
        Under FSDP the model is already sharded in place (`_setup`)."""
        if self.config.compile:
            self.model = torch.compile(self.model)
        if self.dist.distributed and not self.fsdp:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = DistributedDataParallel(self.model, device_ids=ids)

    def _open_logs(self, folder: RunFolder | None) -> None:
        """Mark the run folder; open the metrics log, the loggers and the throughput meter."""
        from byollm.model import model_info

        cfg = self.config
        block = self.model_config.block_size
        info = model_info(self.model_config, seq_len=block)
        self.n_params = info["params"]
        # every process runs on a device of its own: the job's peak is world_size of them
        peak = peak_flops(self.device, self.dtype)
        self.throughput = Throughput(
            info["flops_per_token_train"], peak * self.dist.world_size if peak else None
        )
        if folder is not None:
            folder.mark(cfg.name)
        self.metrics = MetricsLog(self.run_dir / METRICS_FILE, enabled=self.dist.is_main)
        if self.resume:
            self.metrics.truncate_after(self.step)
        self.external = ExternalLoggers(
            self.run_dir,
            to_dict(cfg),
            cfg.tensorboard and self.dist.is_main,
            cfg.wandb and self.dist.is_main,
            cfg.name,
        )
        self.log(
            f"byollm train: {cfg.name}: {self.n_params / 1e6:.2f}M parameters, "
            f"{self.meta['splits']['train']['tokens']:,} training tokens ({self.data_dir}), "
            f"{self.tokens_per_step:,} tokens/step (batch {cfg.batch_size} x {block} x "
            f"{self.grad_accum} micro-steps x {self.dist.world_size} processes), "
            f"{self.device.type} {str(self.dtype).replace('torch.', '')}"
        )

    def _already_finished(self) -> dict:
        """`--resume` of a run that has done its max_steps: nothing to train; say so."""
        self.log(
            f"byollm train: {self.run_dir} is finished: its checkpoint is at step {self.step} "
            f"and max_steps is {self.config.max_steps}, so there is nothing to do (pass a larger "
            "--max_steps to train further)"
        )
        return {
            "already_finished": True,
            "run_dir": str(self.run_dir),
            "checkpoint": str(self.run_dir / LATEST),
            "best": str(self.run_dir / BEST),
            "steps": self.step,
            "tokens_seen": self.tokens_seen,
            "best_val_loss": self.best_val_loss,
            "data_dir": str(self.data_dir),
        }

    def _check_checkpoint_config(self, directory: Path) -> None:
        """Refuse to resume a checkpoint made with another model shape."""
        saved_model = read_checkpoint_config(directory).get("model", {})
        for key, value in to_dict(self.model_config).items():
            if key in saved_model and _norm(saved_model[key]) != _norm(value):
                raise ByollmError(
                    f"{directory}: checkpoint was trained with model.{key} = {saved_model[key]!r}, "
                    f"this config has {value!r}; resume with the run's own config or start a new run"
                )

    def _load_train_state(self, directory: Path) -> None:
        state = load_train_state(directory)
        if state.get("tokenizer_hash") != self.tokenizer.content_hash:
            raise ByollmError(
                f"{directory}: the checkpoint's tokenizer differs from the data's "
                "(tokenizer hash); resume with the same corpus and tokenizer"
            )
        if state.get("tokens_per_step") != self.tokens_per_step:
            raise ByollmError(
                f"{directory}: checkpoint used tokens_per_step = {state.get('tokens_per_step')}, "
                f"this config gives {self.tokens_per_step}"
            )
        if len(state["optimizers"]) != len(self.optimizers):
            raise ByollmError(
                f"{directory}: checkpoint has {len(state['optimizers'])} optimizer(s), this "
                f"config ({self.config.optimizer}) has {len(self.optimizers)}; resume with the "
                "same optimizer"
            )
        source = directory / STATE_FILE
        for opt, opt_state in zip(self.optimizers, state["optimizers"]):
            peaks = [g["peak_lr"] for g in opt.param_groups]
            try:
                if self.fsdp:
                    distributed.load_full_optimizer_state(self.model, opt, opt_state)
                else:
                    opt.load_state_dict(opt_state)
            except (KeyError, ValueError, TypeError, IndexError, RuntimeError) as e:
                raise ByollmError(f"{source}: the optimizer state does not fit ({e})") from None
            _check_optimizer_state(opt, source)
            for group, peak in zip(opt.param_groups, peaks):
                group["peak_lr"] = peak  # the config's lr wins over the saved one
        try:
            set_rng_state(state["rng"])
            if state.get("grad_scaler"):
                self.scaler.load_state_dict(state["grad_scaler"])
        except (KeyError, ValueError, TypeError, RuntimeError) as e:
            raise ByollmError(
                f"{source}: the RNG or loss-scaler state is malformed ({e})"
            ) from None
        self.step = state["step"]
        self.tokens_seen = state["tokens_seen"]
        self.best_val_loss = state["best_val_loss"]
        self.elapsed_before = state.get("elapsed", 0.0)
        self.log(f"byollm train: resuming {self.run_dir} at step {self.step}")

    # --- the loop ------------------------------------------------------------------------------

    def _loop(self) -> dict:
        from tqdm.auto import tqdm

        cfg = self.config
        start_step = self.step
        bar = tqdm(
            total=cfg.max_steps,
            initial=start_step,
            disable=not self.progress,
            unit="step",
            dynamic_ncols=True,
            file=sys.stderr,
        )
        from byollm.train.report import machine_load

        self.load_at_start = machine_load()  # report.md flags a run that shared its cores
        started = time.perf_counter()
        throughput = self.throughput
        throughput.restart()
        last_eval = None
        try:
            while self.step < cfg.max_steps:
                lr_mult = self._lr_multiplier(self.step)
                loss = self.train_step(lr_mult)
                self.step += 1
                self.tokens_seen += self.tokens_per_step
                throughput.add(self.tokens_per_step)
                if self.step % cfg.log_interval == 0 or self.step == cfg.max_steps:
                    throughput.measure()
                    self._record(
                        {
                            "kind": "train",
                            "step": self.step,
                            "tokens": self.tokens_seen,
                            "loss": loss,
                            "lr": cfg.lr * lr_mult,
                            "tokens_per_s": round(throughput.tokens_per_second, 1),
                            "mfu": None if throughput.mfu is None else round(throughput.mfu, 4),
                            "elapsed": round(self._elapsed(started), 2),
                        }
                    )
                bar.set_postfix_str(
                    f"loss {loss:.3f} | {throughput.tokens_per_second:,.0f} tok/s | "
                    f"{format_mfu(throughput.mfu)}"
                    + (f" | val {last_eval['val_loss']:.3f}" if last_eval else ""),
                    refresh=False,
                )
                bar.update(1)
                if self.step % cfg.eval_interval == 0 or self.step == cfg.max_steps:
                    last_eval = self.evaluate_and_save(started)
                    throughput.restart()  # training time only, not evaluation and saving
                    if last_eval:  # above the bar; a line per evaluation in a log file too
                        line = (
                            f"step {self.step}: train {last_eval['train_loss']:.4f}, "
                            f"val {last_eval['val_loss']:.4f} ({last_eval['val_bpb']:.3f} bits/byte)"
                        )
                        if self.progress:
                            bar.write(line)
                        else:
                            self.log(line)
        finally:
            bar.close()
        elapsed = self._elapsed(started)
        summary = {
            "run_dir": str(self.run_dir),
            "checkpoint": str(self.run_dir / LATEST),
            "best": str(self.run_dir / BEST),
            "steps": self.step,
            "tokens_seen": self.tokens_seen,
            "elapsed_s": round(elapsed, 2),
            "best_val_loss": self.best_val_loss,
            "final_val_loss": last_eval["val_loss"] if last_eval else None,
            "final_train_loss": last_eval["train_loss"] if last_eval else None,
            "final_val_bpb": last_eval["val_bpb"] if last_eval else None,
            "params": self.n_params,
            "tokens_per_s": round(throughput.tokens_per_second, 1),
            "mfu": None if throughput.mfu is None else round(throughput.mfu, 4),
            "data_dir": str(self.data_dir),
            "sample": last_eval.get("sample", "") if last_eval else "",
        }
        if self.dist.is_main and (self.run_dir / METRICS_FILE).exists():
            plot_losses(
                self.run_dir / METRICS_FILE, self.run_dir / LOSS_PLOT_FILE, self.config.name
            )
            summary["loss_plot"] = str(self.run_dir / LOSS_PLOT_FILE)
            summary["samples"] = str(self.run_dir / SAMPLES_FILE)
            from byollm.train.report import write_report  # the run's card, report.md

            report = write_report(
                self.run_dir,
                device=self.device,
                dtype=self.dtype,
                processes=self.dist.world_size,
                data_dir=self.data_dir,
                load_at_start=getattr(self, "load_at_start", None),
                log=self.log,
            )
            if report is not None:
                summary["report"] = str(report)
        return summary

    def _lr_multiplier(self, step: int) -> float:
        cfg = self.config
        return lr_multiplier(
            step,
            total_steps=cfg.max_steps,
            warmup_steps=cfg.warmup_steps,
            schedule=cfg.schedule,
            min_lr_ratio=cfg.min_lr_ratio,
            decay_fraction=cfg.decay_fraction,
        )

    def train_step(self, lr_mult: float) -> float:
        """One optimizer step (all micro-steps); returns the mean training loss."""
        set_lr(self.optimizers, lr_mult)
        total = torch.zeros((), device=self.device)
        for micro in range(self.grad_accum):
            x, y = self.train_loader.batch(self.step, micro)
            last = micro == self.grad_accum - 1
            # DDP all-reduces (FSDP reduce-scatters) gradients in backward(); only the last
            # micro-step needs it.
            if self.fsdp:
                self.raw_model.set_requires_gradient_sync(last)
            sync = (
                contextlib.nullcontext()
                if last or not self.dist.distributed or self.fsdp
                else self.model.no_sync()
            )
            with sync:
                with autocast(self.device, self.dtype):
                    _, loss = self.model(x, y)
                self.scaler.scale(loss / self.grad_accum).backward()
            total += loss.detach()
        for opt in self.optimizers:
            self.scaler.unscale_(opt)  # clip the true gradients, not the scaled ones
        if self.config.grad_clip:
            torch.nn.utils.clip_grad_norm_(self.raw_model.parameters(), self.config.grad_clip)
        for opt in self.optimizers:
            self.scaler.step(opt)  # skips the step if fp16 gradients overflowed
        self.scaler.update()
        for opt in self.optimizers:
            opt.zero_grad(set_to_none=True)
        mean_loss = distributed.all_reduce_mean(total / self.grad_accum).item()
        if not math.isfinite(mean_loss):
            raise TrainingDiverged(
                f"loss became {mean_loss} at step {self.step + 1} (lr multiplier {lr_mult:.3g}, "
                f"peak lr {self.config.lr}); the last good checkpoint is kept. Try a lower lr, "
                "a longer warmup or grad_clip = 1.0"
            )
        return mean_loss

    @torch.no_grad()
    def estimate_loss(self) -> dict[str, float]:
        """Mean loss on the fixed train and val windows (averaged over processes)."""
        self.model.eval()
        losses = {}
        for split, batches in self.eval_sets.items():
            total, count = torch.zeros((), device=self.device), 0
            for x, y in batches:
                with autocast(self.device, self.dtype):
                    _, loss = self.raw_model(x, y)
                total += loss.float() * len(x)
                count += len(x)
            mean = total / max(1, count)
            losses[split] = distributed.all_reduce_mean(mean).item()
        self.model.train()
        return losses

    def evaluate_and_save(self, started: float) -> dict:
        losses = self.estimate_loss()
        bpb = losses["val"] / math.log(2) / self.val_bytes_per_token
        record = {
            "kind": "eval",
            "step": self.step,
            "tokens": self.tokens_seen,
            "train_loss": losses["train"],
            "val_loss": losses["val"],
            "val_bpb": bpb,
            "elapsed": round(self._elapsed(started), 2),
        }
        improved = losses["val"] < self.best_val_loss
        if improved:
            self.best_val_loss = losses["val"]
        # FSDP: every process helps gather the full weights and optimizer state onto rank 0
        gathered = (None, None)
        if self.fsdp:
            gathered = distributed.gather_full_state(self.model, self.optimizers)
        # rank 0 writes; a failed write (a full disk) stops every rank with its one line
        sample = distributed.on_main(self._write_evaluation, record, improved, started, *gathered)
        if sample is not None:
            record["sample"] = sample
        return record

    def _write_evaluation(
        self,
        record: dict,
        improved: bool,
        started: float,
        weights: dict | None = None,
        optimizer_states: list[dict] | None = None,
    ) -> str:
        """Log the evaluation, sample, and save `checkpoint/` (and `best/`); the sample.

        Under FSDP, `weights` and `optimizer_states` are the gathered full ones: a plain copy of
        the model holds the weights for the benchmarks, the sample and the checkpoint.
        """
        model = self.raw_model if weights is None else self._plain_copy(weights)
        if self.config.eval_tasks:  # benchmark accuracy beside the loss, e.g. blimp_acc
            from byollm.evaluate.tasks import training_metrics

            record.update(
                training_metrics(
                    model,
                    self.tokenizer,
                    self.config.eval_tasks,
                    mirror=self.config.mirror or None,
                    log=self.log,
                )
            )
        self._record(record)
        sample = self.sample(model)
        path = self.run_dir / SAMPLES_FILE
        try:
            with path.open("a") as f:
                f.write(f"=== step {self.step}, val loss {record['val_loss']:.4f} ===\n")
                f.write(sample + "\n\n")
        except OSError as e:
            raise ByollmError(f"{path}: cannot write ({e.strerror})") from None
        state = self._train_state(started, optimizer_states)
        for name in (LATEST, BEST) if improved else (LATEST,):
            save_train_checkpoint(
                self.run_dir / name,
                model,
                self.tokenizer,
                state,
                train_config=to_dict(self.config),
                data=self.data_record,
            )
        return sample

    def sample(self, model=None) -> str:
        """A sample from `model` (default: the one training), drawn without disturbing the
        training RNG."""
        cfg = self.config
        if not cfg.sample_tokens:
            return ""
        model = self.raw_model if model is None else model
        device = model_device(model)
        dtype = self.dtype if device == self.device else torch.float32
        try:
            prompt = self.tokenizer.encode(cfg.sample_prompt) or [0]
        except Exception:  # a prompt the vocabulary cannot spell: start from token 0
            prompt = [0]
        idx = torch.tensor([prompt], dtype=torch.long, device=device)
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(cfg.seed + self.step)
            model.eval()
            with torch.no_grad(), autocast(device, dtype):
                out = model.generate(
                    idx,
                    cfg.sample_tokens,
                    temperature=cfg.sample_temperature,
                    top_k=cfg.sample_top_k or None,
                )
            model.train()
        return self.tokenizer.decode(out[0].tolist())

    def _plain_copy(self, weights: dict) -> torch.nn.Module:
        """FSDP: a plain GPT on the CPU holding the gathered `weights` (built once, reused)."""
        from byollm.model import GPT

        if self._plain_model is None:
            with torch.random.fork_rng():  # building it must not move the training RNG
                self._plain_model = GPT(self.raw_model.config)
        self._plain_model.load_state_dict(weights)
        return self._plain_model

    def _train_state(self, started: float, optimizer_states: list[dict] | None = None) -> dict:
        return {
            "step": self.step,
            "tokens_seen": self.tokens_seen,
            "best_val_loss": self.best_val_loss,
            "tokens_per_step": self.tokens_per_step,
            "seed": self.config.seed,
            "data_position": self.step,  # batches are a function of (seed, step)
            "tokenizer_hash": self.tokenizer.content_hash,
            "optimizers": optimizer_states or [opt.state_dict() for opt in self.optimizers],
            "rng": rng_state(),
            "grad_scaler": self.scaler.state_dict(),
            "elapsed": self._elapsed(started),
        }

    def _record(self, record: dict) -> None:
        self.metrics.write(record)
        self.external.log(record)

    def _elapsed(self, started: float) -> float:
        return self.elapsed_before + time.perf_counter() - started


def _norm(value):
    return list(value) if isinstance(value, tuple) else value


def _check_optimizer_state(optimizer: torch.optim.Optimizer, source: Path) -> None:
    """Each saved moment has its parameter's shape (load_state_dict does not check)."""
    for group in optimizer.param_groups:
        for param in group["params"]:
            for key, value in optimizer.state.get(param, {}).items():
                if isinstance(value, torch.Tensor) and value.dim() and value.shape != param.shape:
                    raise ByollmError(
                        f"{source}: optimizer state {key!r} has shape {tuple(value.shape)} for a "
                        f"parameter of shape {tuple(param.shape)}; the file does not fit the model"
                    )
