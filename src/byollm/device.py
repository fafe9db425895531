"""Pick where and in what precision to run: CUDA, then Apple's MPS, then the CPU.

    >>> pick_device("auto")          # on a laptop without a GPU
    device(type='cpu')

Mixed precision: bf16 autocast keeps the weights in fp32 but runs the matrix products in
bfloat16, which is up to 4x faster on CPUs with AVX-512 BF16 and on every recent GPU, and needs no
loss scaling (unlike fp16).
"""

from __future__ import annotations

import contextlib
import re

import torch

from byollm.errors import ByollmError

DEVICES = ("auto", "cpu", "cuda", "mps")
DTYPES = ("auto", "float32", "bfloat16", "float16")
# A device name: one of DEVICES, or cuda:N for the N-th GPU.
DEVICE_NAME = re.compile(r"auto|cpu|mps|cuda(:[0-9]{1,4})?")


def check_device_name(name: str) -> None:
    """Refuse a string that names no device (whether this machine has it is `pick_device`'s job)."""
    if not isinstance(name, str) or not DEVICE_NAME.fullmatch(name):
        raise ByollmError(
            f"unknown device {name!r}; choose one of auto, cpu, cuda, cuda:N (the N-th GPU), mps"
        )


def pick_device(name: str = "auto") -> torch.device:
    """The best available device for `name='auto'`, or the named one if it exists here."""
    check_device_name(name)
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    kind, _, index = name.partition(":")
    if kind == "cuda" and not torch.cuda.is_available():
        raise ByollmError(f"device {name!r} was asked for but PyTorch sees no CUDA GPU here")
    if kind == "cuda" and index and int(index) >= torch.cuda.device_count():
        raise ByollmError(
            f"device {name!r} was asked for but PyTorch sees {torch.cuda.device_count()} CUDA "
            f"GPU(s) here: cuda:0 to cuda:{torch.cuda.device_count() - 1}"
        )
    if kind == "mps" and not torch.backends.mps.is_available():
        raise ByollmError("device 'mps' was asked for but PyTorch sees no Apple GPU here")
    return torch.device(name)


def cpu_supports_bf16() -> bool:
    """True when this CPU has native bf16 matrix instructions (AVX-512 BF16 or AMX)."""
    try:
        return bool(
            torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()
        )
    except (AttributeError, RuntimeError):
        return False


def pick_dtype(device: torch.device, name: str = "auto") -> torch.dtype:
    """The compute dtype for autocast: bf16 where the hardware does it fast, else fp32."""
    if name != "auto":
        if name not in DTYPES:
            raise ByollmError(f"unknown dtype {name!r}; choose one of {', '.join(DTYPES)}")
        return getattr(torch, name)
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    if device.type == "cpu" and cpu_supports_bf16():
        return torch.bfloat16
    return torch.float32


def autocast(device: torch.device, dtype: torch.dtype) -> contextlib.AbstractContextManager:
    """A context that runs matrix products in `dtype`; a no-op for fp32."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
