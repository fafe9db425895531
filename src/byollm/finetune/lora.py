"""LoRA, written from scratch: train two thin matrices beside each frozen weight matrix.

A frozen linear layer computes y = x W^T (W is out x in). LoRA (Hu et al., 2021) adds a
low-rank update and trains only that:

    y = x W^T + (alpha / r) * dropout(x) A^T B^T        A: r x in, B: out x r, r << in, out

Design choices:
- **Outputs identical at initialisation**: A is random (Kaiming, as the paper's code) and B is
  zero, so B A = 0 and the wrapped model computes exactly what the base computed; training moves
  away from the base only as far as the data asks.
- **Few parameters**: r * (in + out) per matrix instead of in * out. GPT-2 small (124.4M) with
  r = 16 on its four matrices per block trains 2.36M (the book's 2.67M wraps separate query,
  key and value matrices; our `c_attn` is the three fused into one).
- **Targets by name**: shell patterns over module names (`*attn.c_attn`, `*mlp.*`); a pattern
  that matches no linear layer is an error naming what the names look like.
- **The adapter is saved alone** (`adapter.safetensors` + `adapter.json`): kilobytes to a few MB,
  naming its base by a sha256 of the base checkpoint's weights file and model config, so it is
  never loaded onto another model by mistake.
- **Merging** folds the update into the weights, W' = W + (alpha / r) B A, and unwraps the
  layers: the merged model computes the same outputs with no extra cost per token.
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from byollm.config import check_number
from byollm.errors import ByollmError
from byollm.formats import read_versioned_file

ADAPTER_FORMAT = "byollm-lora-adapter"
ADAPTER_VERSION = 1
ADAPTER_WEIGHTS = "adapter.safetensors"
ADAPTER_CONFIG = "adapter.json"
MAX_RANK = 4096  # a rank as wide as GPT-2 XL's matrices is no longer "low"
MAX_ALPHA = 1e6  # the update is scaled by alpha / rank; usual alphas are 8-64
DEFAULT_TARGETS = ("*attn.c_attn", "*attn.c_proj", "*mlp.c_fc", "*mlp.c_proj")


@dataclass(frozen=True)
class LoRAConfig:
    """Rank r, scale alpha (the update is multiplied by alpha / r), dropout and target names."""

    rank: int = 16
    alpha: float = 16.0
    dropout: float = 0.0
    targets: tuple[str, ...] = DEFAULT_TARGETS

    def __post_init__(self):
        check_number("lora rank", self.rank, 1, MAX_RANK, integer=True)
        check_number("lora alpha", self.alpha, 0, MAX_ALPHA, low_open=True)
        check_number("lora dropout", self.dropout, 0, 1, high_open=True)
        if not self.targets:
            raise ByollmError("lora targets: give at least one module-name pattern")


class LoRALinear(nn.Module):
    """A frozen `nn.Linear` plus a trainable low-rank update (see the module docstring).

    >>> layer = LoRALinear(nn.Linear(4, 3), rank=2, alpha=2.0)
    >>> x = torch.randn(5, 4)
    >>> torch.equal(layer(x), layer.base(x))          # B = 0: the base's outputs exactly
    True
    """

    def __init__(self, base: nn.Linear, rank: int, alpha: float, dropout: float = 0.0):
        super().__init__()
        self.base = base
        for p in base.parameters():
            p.requires_grad_(False)
        device, dtype = base.weight.device, base.weight.dtype
        self.lora_A = nn.Parameter(torch.empty(rank, base.in_features, device=device, dtype=dtype))
        self.lora_B = nn.Parameter(torch.zeros(base.out_features, rank, device=device, dtype=dtype))
        nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))  # nn.Linear's own init
        self.scaling = alpha / rank
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        update = self.dropout(x) @ self.lora_A.t() @ self.lora_B.t()  # (.., r) then (.., out)
        return self.base(x) + update * self.scaling

    @torch.no_grad()
    def merged(self) -> nn.Linear:
        """The base layer with the update folded in: W + scaling * B A."""
        delta = (self.lora_B.float() @ self.lora_A.float()) * self.scaling
        self.base.weight += delta.to(self.base.weight.dtype)
        return self.base


def apply_lora(model: nn.Module, config: LoRAConfig) -> list[str]:
    """Wrap every `nn.Linear` whose name matches a target; freeze all other parameters.

    Returns the wrapped module names. Whatever else should train (a new head) is the caller's to
    unfreeze afterwards.
    """
    for p in model.parameters():
        p.requires_grad_(False)
    linear_names = [n for n, m in model.named_modules() if isinstance(m, nn.Linear)]
    for pattern in config.targets:
        if not any(fnmatch.fnmatchcase(n, pattern) for n in linear_names):
            raise ByollmError(
                f"lora target {pattern!r} matches no linear layer; their names look like "
                f"{', '.join(linear_names[:3])} (use shell patterns such as '*attn.c_attn')"
            )
    wrapped = [n for n in linear_names if any(fnmatch.fnmatchcase(n, p) for p in config.targets)]
    for name in wrapped:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name)
        layer = LoRALinear(getattr(parent, child), config.rank, config.alpha, config.dropout)
        setattr(parent, child, layer)
    return wrapped


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every LoRA update into its base weights and unwrap the layers, in place."""
    for name, module in list(model.named_modules()):
        if isinstance(module, LoRALinear):
            parent_name, _, child = name.rpartition(".")
            setattr(model.get_submodule(parent_name), child, module.merged())
    for p in model.parameters():
        p.requires_grad_(True)
    return model


def lora_tensors(model: nn.Module) -> dict[str, torch.Tensor]:
    """The LoRA matrices of `model`, by name (`transformer.h.0.attn.c_attn.lora_A`, ...)."""
    return {
        name: p.detach().cpu().contiguous()
        for name, p in model.named_parameters()
        if name.endswith((".lora_A", ".lora_B"))
    }


def count_parameters(model: nn.Module) -> tuple[int, int]:
    """(trainable, total) parameters; shared tensors counted once."""
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def base_fingerprint(checkpoint: str | Path) -> str:
    """sha256 of a checkpoint's weights file and model config: which base an adapter fits."""
    from byollm.model.checkpoint import CONFIG_FILE, WEIGHTS_FILE, read_checkpoint_config

    checkpoint = Path(checkpoint)
    digest = hashlib.sha256()
    model_config = read_checkpoint_config(checkpoint)["model"]
    digest.update(json.dumps(model_config, sort_keys=True).encode())
    weights = checkpoint / WEIGHTS_FILE
    if not weights.is_file():
        raise ByollmError(f"{weights}: missing (the weights next to {CONFIG_FILE})")
    with weights.open("rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            digest.update(block)
    return digest.hexdigest()


def save_adapter(
    directory: str | Path,
    model: nn.Module,
    config: LoRAConfig,
    *,
    base: str | Path,
    extra_tensors: dict[str, torch.Tensor] | None = None,
    extra: dict | None = None,
) -> Path:
    """Write `adapter.safetensors` (LoRA matrices + `extra_tensors`) and `adapter.json`."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    tensors = lora_tensors(model)
    for name, t in (extra_tensors or {}).items():
        tensors[name] = t.detach().cpu().contiguous()
    meta = {
        "format": ADAPTER_FORMAT,
        "version": ADAPTER_VERSION,
        "base": str(Path(base).resolve()),
        "base_sha256": base_fingerprint(base),
        "lora": {**asdict(config), "targets": list(config.targets)},
        **(extra or {}),
    }
    save_file(tensors, str(directory / ADAPTER_WEIGHTS))
    (directory / ADAPTER_CONFIG).write_text(json.dumps(meta, indent=2) + "\n")
    return directory


def is_adapter(directory: str | Path) -> bool:
    return (Path(directory) / ADAPTER_CONFIG).is_file()


def read_adapter(directory: str | Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """(adapter.json, tensors) of an adapter folder, format and version checked."""
    directory = Path(directory)
    path = directory / ADAPTER_CONFIG
    missing = "missing; not a LoRA adapter folder"
    meta = read_versioned_file(
        path, format=ADAPTER_FORMAT, version=ADAPTER_VERSION, missing=missing
    )
    try:
        tensors = load_file(str(directory / ADAPTER_WEIGHTS))
    except (SafetensorError, OSError) as e:
        raise ByollmError(f"{directory / ADAPTER_WEIGHTS}: cannot read ({e})") from None
    return meta, tensors


def load_adapter(
    model: nn.Module, directory: str | Path, base: str | Path
) -> tuple[dict, dict[str, torch.Tensor]]:
    """Wrap `model` (loaded from checkpoint `base`) with the adapter in `directory`.

    Refuses an adapter trained on another base. Returns (adapter.json, the tensors that are not
    LoRA matrices, e.g. a classifier head) for the caller to place.
    """
    meta, tensors = read_adapter(directory)
    if base_fingerprint(base) != meta["base_sha256"]:
        raise ByollmError(
            f"{directory}: this adapter was trained on another base model (sha256 "
            f"{meta['base_sha256'][:12]}, made from {meta.get('base')}); {base} differs"
        )
    config = LoRAConfig(**{**meta["lora"], "targets": tuple(meta["lora"]["targets"])})
    apply_lora(model, config)
    own = lora_tensors(model)
    missing = sorted(set(own) - set(tensors))
    if missing:
        raise ByollmError(f"{directory / ADAPTER_WEIGHTS}: missing {', '.join(missing[:3])}")
    params = dict(model.named_parameters())
    with torch.no_grad():
        for name in own:
            params[name].copy_(tensors[name])
    return meta, {k: v for k, v in tensors.items() if k not in own}
