"""Weights as a checkpoint stores them, and the checks that they fit a config.

A tied output head is stored once (under `transformer.wte.weight`) and re-tied on load.
Nothing is trusted before it is checked: the names and shapes in a safetensors header are compared
with those a config implies (`expected_weight_shapes`, computed without allocating the model),
so a config that does not fit its weights is one line, not an attempt to allocate the model it
describes. Used by the checkpoint folder (`checkpoint.py`) and the Hugging Face converter.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import torch
from safetensors import safe_open

from byollm.errors import ByollmError
from byollm.model.config import GPTConfig
from byollm.model.gpt import GPT


def unwrap(model: torch.nn.Module) -> GPT:
    """The plain GPT inside a torch.compile (`_orig_mod`) or DDP (`module`) wrapper."""
    while not isinstance(model, GPT):
        inner = getattr(model, "_orig_mod", None) or getattr(model, "module", None)
        if inner is None:
            raise ByollmError(f"expected a byollm GPT model, got {type(model).__name__}")
        model = inner
    return model


def read_weight_shapes(path: str | Path) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor in a safetensors file, from its header (no data is read)."""
    with safe_open(str(path), framework="pt") as f:
        names = f.keys()  # a safe_open handle cannot be iterated itself
        return {name: tuple(f.get_slice(name).get_shape()) for name in names}


def expected_weight_shapes(config: GPTConfig) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every stored weight of a model with `config`, without allocating it.

    Blocks are all alike, so a one-block model on the meta device (shapes, no memory) is built
    and its block's weights are repeated for every layer: quick even for 1024 layers.
    """
    with torch.device("meta"):
        skeleton = GPT(dataclasses.replace(config, n_layer=1))
    shapes = {}
    for name, tensor in stored_state(skeleton).items():
        if name.startswith("transformer.h.0."):
            for layer in range(config.n_layer):
                shapes[name.replace(".h.0.", f".h.{layer}.", 1)] = tuple(tensor.shape)
        else:
            shapes[name] = tuple(tensor.shape)
    return shapes


def check_weights_match(
    expected: dict[str, tuple[int, ...]], found: dict[str, tuple[int, ...]], source: str
) -> None:
    """Name every missing, unexpected or misshapen weight (`found`) against the config's."""
    missing = sorted(set(expected) - set(found))
    unexpected = sorted(set(found) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {_short_list(missing)}")
        if unexpected:
            parts.append(f"unexpected {_short_list(unexpected)}")
        raise ByollmError(f"{source}: weights do not match the config: {'; '.join(parts)}")
    for name, shape in sorted(found.items()):
        if tuple(shape) != tuple(expected[name]):
            raise ByollmError(
                f"{source}: {name} has shape {tuple(shape)}, the config needs "
                f"{tuple(expected[name])}"
            )


def load_state(model: GPT, tensors: dict[str, torch.Tensor], source: str) -> None:
    """Copy `tensors` into `model`, naming every missing, unexpected or misshapen key."""
    expected = stored_state(model)
    check_weights_match(
        {k: tuple(v.shape) for k, v in expected.items()},
        {k: tuple(v.shape) for k, v in tensors.items()},
        source,
    )
    with torch.no_grad():
        for name, param in expected.items():
            param.copy_(tensors[name])


def stored_state(model: GPT) -> dict[str, torch.Tensor]:
    """The state dict as a checkpoint stores it: a tied head is stored once, as the embedding."""
    state = model.state_dict()
    if model.config.tie_embeddings:
        state.pop("lm_head.weight")
    return state


def _short_list(names: list[str], limit: int = 5) -> str:
    more = f" and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more
