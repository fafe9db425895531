"""Data-parallel training over several processes with PyTorch DDP, launched by `torchrun`.

    torchrun --standalone --nproc_per_node=2 -m byollm train --max_steps 100

How it works: every process holds a full copy of the model and computes the gradient of its own
slice of the global batch; `DistributedDataParallel` averages the gradients across processes
(all-reduce) during `backward()`, so every copy takes the same optimizer step and the copies stay
identical. The loss trajectory equals that of one process with the whole global batch.

Design choices:
- `torchrun` sets `RANK`, `LOCAL_RANK`, `WORLD_SIZE`, `MASTER_ADDR/PORT`; without them we are a
  single ordinary process and none of this machinery is touched.
- Backend: `nccl` between GPUs, `gloo` on CPU.
- Only rank 0 writes files (metrics, checkpoints, plots, samples) and shows a progress bar.
- Shutdown: barrier, destroy the process group, then `os._exit` in torchrun workers. Without the
  hard exit a gloo worker here aborts in interpreter teardown in about half of the runs, which
  turns a finished run into a failed one.

Multi-node: run the same command on each machine with `--nnodes=N --node_rank=i
--rdzv_backend=c10d --rdzv_endpoint=HOST:PORT` (torchrun's rendezvous); see docs/03-training.md.

FSDP2 (`fsdp = true`, `byollm train --fsdp`), for models too large for one device: PyTorch's
`fully_shard` on every transformer block and on the whole model. Each process keeps 1/N of every
weight, gradient and optimizer moment; a block's full weights are gathered just before its
forward (and backward) and freed after, and gradients are reduce-scattered instead of
all-reduced. The data is split over processes as under DDP, so the run equals one process with
the whole batch, up to the order of floating-point sums.
- **One checkpoint format.** At a checkpoint every process takes part in gathering the full
  weights and optimizer state onto rank 0's CPU (`gather_full_state`); rank 0 writes them as a
  plain run would (optimizer state keyed by parameter index, as `Optimizer.state_dict`). Resume
  loads the plain weights before sharding and hands each process the full optimizer state to
  slice (`load_full_optimizer_state`), so a run can be resumed with or without FSDP.
- AdamW only: Muon orthogonalizes each whole matrix, which no process holds.
"""

from __future__ import annotations

import datetime
import os
import sys
from dataclasses import dataclass

import torch
import torch.distributed as dist

from byollm.device import pick_device
from byollm.errors import ByollmError


@dataclass(frozen=True)
class DistInfo:
    """Where this process stands in the job."""

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def launched_by_torchrun() -> bool:
    return "RANK" in os.environ and "WORLD_SIZE" in os.environ


def setup(device_name: str = "auto") -> DistInfo:
    """Join the process group if launched by torchrun; pick this process's device."""
    if not launched_by_torchrun() or int(os.environ["WORLD_SIZE"]) == 1:
        return DistInfo(device=pick_device(device_name))
    rank = int(os.environ["RANK"])
    local_rank = int(os.environ.get("LOCAL_RANK", 0))
    world_size = int(os.environ["WORLD_SIZE"])
    device = pick_device(device_name)
    if device.type == "cuda":
        if local_rank >= torch.cuda.device_count():
            raise ByollmError(
                f"LOCAL_RANK {local_rank} but only {torch.cuda.device_count()} GPUs are visible"
            )
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
        backend = "nccl"
    elif device.type == "cpu":
        backend = "gloo"
    else:
        raise ByollmError(
            f"distributed training on {device.type} is not supported; use cpu or cuda"
        )
    if not dist.is_initialized():
        dist.init_process_group(
            backend=backend,
            timeout=datetime.timedelta(minutes=30),
            **({"device_id": device} if backend == "nccl" else {}),
        )
    return DistInfo(rank=rank, local_rank=local_rank, world_size=world_size, device=device)


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def broadcast_object(obj, src: int = 0):
    """`obj` from rank `src` on every rank (identity without a process group)."""
    if not (dist.is_available() and dist.is_initialized()):
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def on_main(fn, *args, share: bool = False, **kwargs):
    """Run `fn` on rank 0 only; a ByollmError it raises is raised on every rank.

    Without this, a user mistake found by rank 0 (a locked run folder, a missing corpus) would
    leave the other ranks waiting at their next collective for the 30-minute timeout. With
    `share=True` every rank gets rank 0's result (it must pickle); otherwise the others get None.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return fn(*args, **kwargs)
    result, failure = None, None
    if dist.get_rank() == 0:
        try:
            result = fn(*args, **kwargs)
        except ByollmError as e:
            failure = e
    message, shared = broadcast_object(
        (None if failure is None else str(failure), result if share else None)
    )
    if failure is not None:
        raise failure  # rank 0: the error itself, its type kept
    if message is not None:
        raise ByollmError(message)
    return result if dist.get_rank() == 0 else shared


def all_reduce_mean(value: torch.Tensor) -> torch.Tensor:
    """The mean of `value` over all processes (itself without a process group)."""
    if dist.is_available() and dist.is_initialized():
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        value /= dist.get_world_size()
    return value


def shutdown(exit_code: int = 0) -> None:
    """End a torchrun worker cleanly: barrier, destroy the group, then hard-exit.

    Returns normally (does nothing) in a plain single process, so notebooks and tests that call
    the trainer in-process are never killed.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return
    try:
        dist.barrier()
    finally:
        dist.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(exit_code)


# --- FSDP2 -------------------------------------------------------------------------------------


def shard_model(model: torch.nn.Module) -> torch.nn.Module:
    """Shard `model` (a byollm GPT) in place with FSDP2: each block, then the rest (embeddings,
    final norm, head) as the root group. Build the optimizers after this: sharding replaces
    the parameters with sharded ones."""
    from torch.distributed.fsdp import fully_shard

    for block in model.transformer["h"]:
        fully_shard(block)
    fully_shard(model)
    return model


def _parameter_names(model: torch.nn.Module, optimizer: torch.optim.Optimizer) -> list[str]:
    """The names of `optimizer`'s parameters in its own order (index i of its state_dict)."""
    name_of = {id(p): name for name, p in model.named_parameters()}
    return [name_of[id(p)] for group in optimizer.param_groups for p in group["params"]]


def gather_full_state(model, optimizers) -> tuple[dict | None, list[dict] | None]:
    """(full weights, optimizer state_dicts) on rank 0's CPU; (None, None) on the others.

    Collective: every process must call it. The optimizer states come back in the plain
    `Optimizer.state_dict()` layout (keyed by parameter index), so the checkpoint is the one a
    single process writes.
    """
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        get_model_state_dict,
        get_optimizer_state_dict,
    )

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    weights = get_model_state_dict(model, options=options)
    states = []
    for optimizer in optimizers:
        named = get_optimizer_state_dict(model, optimizer, options=options)
        if dist.get_rank() == 0:
            names = _parameter_names(model, optimizer)
            index = {name: i for i, name in enumerate(names)}
            groups, start = [], 0
            for group, named_group in zip(optimizer.param_groups, named["param_groups"]):
                ids = list(range(start, start + len(group["params"])))
                groups.append({**named_group, "params": ids})
                start += len(ids)
            state = {index[name]: value for name, value in named["state"].items()}
            states.append({"state": state, "param_groups": groups})
    if dist.get_rank() != 0:
        return None, None
    return weights, states


def load_full_optimizer_state(model, optimizer, state: dict) -> None:
    """Give a sharded `optimizer` a plain (full, index-keyed) state_dict; each process keeps its
    slice. Every process must call it (with the same state)."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    names = _parameter_names(model, optimizer)
    groups, start = [], 0
    for group in state["param_groups"]:
        groups.append({**group, "params": names[start : start + len(group["params"])]})
        start += len(group["params"])
    named = {"state": {names[int(i)]: v for i, v in state["state"].items()}, "param_groups": groups}
    set_optimizer_state_dict(
        model, optimizer, optim_state_dict=named, options=StateDictOptions(full_state_dict=True)
    )
