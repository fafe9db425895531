"""The training loop: data in, checkpoints, metrics, a loss plot and samples out.

    >>> from byollm.train import TrainConfig, train
    >>> summary = train(TrainConfig(max_steps=200))       # doctest: +SKIP
    >>> summary["best_val_loss"]                           # doctest: +SKIP

One optimizer step, read top to bottom in `Trainer.step`:

    for each micro-step:                     (gradient accumulation up to tokens_per_step)
        x, y = loader.batch(step, micro)     windows of text and the same text shifted by one
        loss = model(x, y)                   mean cross-entropy of predicting y from x
        (loss / micro_steps).backward()      gradients add up over micro-steps
    clip the gradient norm                   one bad batch cannot throw the weights far
    lr = peak * schedule(step)               warmup, then cosine or warmup-stable-decay
    optimizer.step(); zero the gradients

Design choices:
- The loop is a plain `for` over steps; everything is a function of the step (data windows,
  learning rate), which is what makes resume exact and DDP equal to one big batch.
- A run folder `runs/<name>/` is never silently overwritten: an existing run needs `resume=True`
  (continue it) or `overwrite=True` (delete it and start over).
- A NaN or infinite loss stops the run at once with the step and the learning rate, keeping the
  last good checkpoint.
- Evaluation, sampling and checkpoints leave the training RNG untouched, so when they happen does
  not change the run.
"""

from __future__ import annotations

import contextlib
import dataclasses
import math
import shutil
import sys
import time
from pathlib import Path

import torch

from byollm.config import to_dict
from byollm.data.loader import BatchLoader, open_tokens, read_meta
from byollm.device import autocast, keep_freed_cpu_memory, pick_dtype
from byollm.errors import ByollmError
from byollm.train import distributed
from byollm.train.checkpoint import (
    load_train_state,
    read_checkpoint_config,
    resolve_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from byollm.train.config import TrainConfig
from byollm.train.metrics import ExternalLoggers, MetricsLog, measure_peak_flops, plot_losses
from byollm.train.optim import build_optimizers, set_lr
from byollm.train.schedule import lr_multiplier

FALLBACK_CORPUS = "python-stdlib:4MB"  # capped: about the size of Tiny Shakespeare


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


def default_data_dir(corpus: str, tokenizer: str) -> Path:
    """Where prepared data lives by default: $BYOLLM_HOME/data/<corpus>-<tokenizer>."""
    from byollm.paths import byollm_home

    def slug(text: str) -> str:
        return "".join(c if c.isalnum() or c in "-_." else "_" for c in Path(text).name) or "x"

    return byollm_home() / "data" / f"{slug(corpus)}-{slug(tokenizer)}"


def prepare_data(config: TrainConfig, *, progress: bool = True, log=print) -> Path:
    """Fetch the corpus (falling back to python-stdlib when offline) and prepare it; the data dir."""
    from byollm.data.corpora import OfflineError, get_corpus
    from byollm.data.prepare import prepare

    corpus = config.corpus
    mirror = config.mirror or None
    try:
        get_corpus(corpus, mirror=mirror, progress=progress)
    except OfflineError as e:
        log(f"byollm: {e}")
        log(
            f"byollm: corpus {corpus!r} is not cached and cannot be downloaded; falling back to "
            f"the offline corpus {FALLBACK_CORPUS!r} (pass --corpus PATH to use your own text)"
        )
        corpus = FALLBACK_CORPUS
    if config.data_dir and corpus == config.corpus:
        data_dir = Path(config.data_dir)
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
    )
    return data_dir


class Trainer:
    def __init__(
        self, config: TrainConfig, *, resume=False, overwrite=False, progress=True, log=print
    ):
        if resume and overwrite:
            raise ByollmError("choose one of resume (continue the run) and overwrite (start over)")
        self.config = config
        self.resume = resume
        self.overwrite = overwrite
        self.dist = distributed.setup(config.device)
        self.progress = progress and self.dist.is_main
        self.log = log if self.dist.is_main else (lambda *a, **k: None)
        self.run_dir = config.run_dir()

    # --- set-up --------------------------------------------------------------------------------

    def run(self) -> dict:
        self._check_run_dir()
        data_dir = None
        if self.dist.is_main:
            data_dir = prepare_data(self.config, progress=self.progress, log=self.log)
        data_dir = Path(distributed.broadcast_object(str(data_dir) if data_dir else None))
        distributed.barrier()
        self._setup(data_dir)
        try:
            return self._loop()
        finally:
            self.external.close()

    def _check_run_dir(self) -> None:
        checkpoint = resolve_checkpoint(self.run_dir / "checkpoint")
        if self.resume:
            if checkpoint is None:
                raise ByollmError(f"{self.run_dir}: no checkpoint to resume from")
            return
        if self.run_dir.exists() and any(self.run_dir.iterdir()):
            if not self.overwrite:
                raise ByollmError(
                    f"{self.run_dir} already holds a run; pass --resume to continue it, "
                    "--overwrite to delete it and start over, or --name to start another"
                )
            if self.dist.is_main:
                shutil.rmtree(self.run_dir)
        distributed.barrier()

    def _setup(self, data_dir: Path) -> None:
        from byollm.model import GPT, load_model, model_info
        from byollm.tokenizer import load_tokenizer

        cfg = self.config
        torch.manual_seed(cfg.seed)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.device = self.dist.device
        self.dtype = pick_dtype(self.device, cfg.dtype)
        if self.device.type == "cpu":
            keep_freed_cpu_memory()  # no page faults for each step's activations
        self.meta = read_meta(data_dir)
        self.tokenizer = load_tokenizer(data_dir / "tokenizer.json")
        if self.tokenizer.content_hash != self.meta["tokenizer_hash"]:
            raise ByollmError(
                f"{data_dir}: tokenizer.json does not match meta.json (hash differs); "
                "re-run `byollm prepare`"
            )
        self.model_config = dataclasses.replace(cfg.model, vocab_size=self.tokenizer.vocab_size)
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

        checkpoint = resolve_checkpoint(self.run_dir / "checkpoint") if self.resume else None
        if checkpoint is not None:
            self._check_checkpoint_config(checkpoint)
            self.model = load_model(checkpoint, device=str(self.device))
        else:
            self.model = GPT(self.model_config).to(self.device)
        self.raw_model = self.model
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
        self.step = 0
        self.tokens_seen = 0
        self.best_val_loss = math.inf
        self.elapsed_before = 0.0
        if checkpoint is not None:
            self._load_train_state(checkpoint)
        if cfg.compile:
            self.model = torch.compile(self.model)
        if self.dist.distributed:
            from torch.nn.parallel import DistributedDataParallel

            ids = [self.device.index] if self.device.type == "cuda" else None
            self.model = DistributedDataParallel(self.model, device_ids=ids)

        info = model_info(self.model_config, seq_len=block)
        self.flops_per_token = info["flops_per_token_train"]
        self.n_params = info["params"]
        self.peak_flops = measure_peak_flops(self.device, self.dtype)
        if self.dist.is_main:
            self.run_dir.mkdir(parents=True, exist_ok=True)
        self.metrics = MetricsLog(self.run_dir / "metrics.jsonl", enabled=self.dist.is_main)
        if self.resume:
            self.metrics.truncate_after(self.step)
        self.external = ExternalLoggers(
            self.run_dir,
            to_dict(cfg),
            cfg.tensorboard and self.dist.is_main,
            cfg.wandb and self.dist.is_main,
            cfg.name,
        )
        self.data_dir = data_dir
        self.log(
            f"byollm train: {cfg.name}: {self.n_params / 1e6:.2f}M parameters, "
            f"{self.meta['splits']['train']['tokens']:,} training tokens ({data_dir}), "
            f"{tokens_per_step:,} tokens/step (batch {cfg.batch_size} x {block} x "
            f"{self.grad_accum} micro-steps x {self.dist.world_size} processes), "
            f"{self.device.type} {str(self.dtype).replace('torch.', '')}"
        )

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
        for opt, opt_state in zip(self.optimizers, state["optimizers"]):
            peaks = [g["peak_lr"] for g in opt.param_groups]
            opt.load_state_dict(opt_state)
            for group, peak in zip(opt.param_groups, peaks):
                group["peak_lr"] = peak  # the config's lr wins over the saved one
        set_rng_state(state["rng"])
        if state.get("grad_scaler"):
            self.scaler.load_state_dict(state["grad_scaler"])
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
        started = time.perf_counter()
        window_start, window_tokens = time.perf_counter(), 0
        tokens_per_second, mfu = 0.0, 0.0
        last_eval = None
        try:
            while self.step < cfg.max_steps:
                lr_mult = self._lr_multiplier(self.step)
                loss = self.train_step(lr_mult)
                self.step += 1
                self.tokens_seen += self.tokens_per_step
                window_tokens += self.tokens_per_step
                if self.step % cfg.log_interval == 0 or self.step == cfg.max_steps:
                    now = time.perf_counter()
                    tokens_per_second = window_tokens / max(1e-9, now - window_start)
                    mfu = tokens_per_second * self.flops_per_token / self.peak_flops
                    window_start, window_tokens = now, 0
                    self._record(
                        {
                            "kind": "train",
                            "step": self.step,
                            "tokens": self.tokens_seen,
                            "loss": loss,
                            "lr": cfg.lr * lr_mult,
                            "tokens_per_s": round(tokens_per_second, 1),
                            "mfu": round(mfu, 4),
                            "elapsed": round(self._elapsed(started), 2),
                        }
                    )
                bar.set_postfix_str(
                    f"loss {loss:.3f} | {tokens_per_second:,.0f} tok/s | MFU {100 * mfu:.0f}%"
                    + (f" | val {last_eval['val_loss']:.3f}" if last_eval else ""),
                    refresh=False,
                )
                bar.update(1)
                if self.step % cfg.eval_interval == 0 or self.step == cfg.max_steps:
                    last_eval = self.evaluate_and_save(started)
                    # throughput measures training only, not evaluation and checkpointing
                    window_start, window_tokens = time.perf_counter(), 0
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
            "checkpoint": str(self.run_dir / "checkpoint"),
            "best": str(self.run_dir / "best"),
            "steps": self.step,
            "tokens_seen": self.tokens_seen,
            "elapsed_s": round(elapsed, 2),
            "best_val_loss": self.best_val_loss,
            "final_val_loss": last_eval["val_loss"] if last_eval else None,
            "final_train_loss": last_eval["train_loss"] if last_eval else None,
            "final_val_bpb": last_eval["val_bpb"] if last_eval else None,
            "params": self.n_params,
            "tokens_per_s": round(tokens_per_second, 1),
            "mfu": round(mfu, 4),
            "data_dir": str(self.data_dir),
            "sample": last_eval.get("sample", "") if last_eval else "",
        }
        if self.dist.is_main and (self.run_dir / "metrics.jsonl").exists():
            plot_losses(self.run_dir / "metrics.jsonl", self.run_dir / "loss.png", self.config.name)
            summary["loss_plot"] = str(self.run_dir / "loss.png")
            summary["samples"] = str(self.run_dir / "samples.txt")
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
            # DDP all-reduces gradients in backward(); only the last micro-step needs it.
            sync = (
                contextlib.nullcontext()
                if last or not self.dist.distributed
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
        if self.dist.is_main:
            if self.config.eval_tasks:  # benchmark accuracy beside the loss, e.g. blimp_acc
                from byollm.evaluate.tasks import training_metrics

                record.update(training_metrics(self.raw_model, self.tokenizer,
                                               self.config.eval_tasks,
                                               mirror=self.config.mirror or None, log=self.log))  # fmt: skip
            self._record(record)
            record["sample"] = self.sample()
            with (self.run_dir / "samples.txt").open("a") as f:
                f.write(f"=== step {self.step}, val loss {losses['val']:.4f} ===\n")
                f.write(record["sample"] + "\n\n")
            state = self._train_state(started)
            save_checkpoint(
                self.run_dir / "checkpoint",
                self.raw_model,
                self.tokenizer,
                state,
                train_config=to_dict(self.config),
            )
            if improved:
                save_checkpoint(
                    self.run_dir / "best",
                    self.raw_model,
                    self.tokenizer,
                    state,
                    train_config=to_dict(self.config),
                )
        distributed.barrier()
        return record

    def sample(self) -> str:
        """A sample from the model, drawn without disturbing the training RNG."""
        cfg = self.config
        if not cfg.sample_tokens:
            return ""
        try:
            prompt = self.tokenizer.encode(cfg.sample_prompt) or [0]
        except Exception:  # a prompt the vocabulary cannot spell: start from token 0
            prompt = [0]
        idx = torch.tensor([prompt], dtype=torch.long, device=self.device)
        with torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []):
            torch.manual_seed(cfg.seed + self.step)
            self.raw_model.eval()
            with torch.no_grad(), autocast(self.device, self.dtype):
                out = self.raw_model.generate(
                    idx,
                    cfg.sample_tokens,
                    temperature=cfg.sample_temperature,
                    top_k=cfg.sample_top_k or None,
                )
            self.raw_model.train()
        return self.tokenizer.decode(out[0].tolist())

    def _train_state(self, started: float) -> dict:
        return {
            "step": self.step,
            "tokens_seen": self.tokens_seen,
            "best_val_loss": self.best_val_loss,
            "tokens_per_step": self.tokens_per_step,
            "seed": self.config.seed,
            "data_position": self.step,  # batches are a function of (seed, step)
            "tokenizer_hash": self.tokenizer.content_hash,
            "optimizers": [opt.state_dict() for opt in self.optimizers],
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
