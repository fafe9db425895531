"""Int8 weight-only quantisation: a quarter of the bytes per weight, for faster decoding.

At batch 1 a decode step reads every weight once to produce one token, so its speed is
bytes per second over bytes per token. Storing each weight matrix as int8 plus one scale per
output row reads 4x fewer bytes than fp32:

    w[i, j] ≈ scale[i] * q[i, j],   scale[i] = max_j |w[i, j]| / 127,   q ∈ [-127, 127]

(symmetric, per output channel: the row with the largest weights gets the coarsest steps,
and no row's outlier spoils another's precision.) The matrix product runs in PyTorch's
`_weight_int8pack_mm` kernel, which reads the int8 weights and multiplies in bfloat16 on the
CPU; other devices dequantise to the activations' dtype (correct, not faster).

The trade-off, measured in `benchmarks/RESULTS.md`: decoding a few rows is 2-3x faster per
matrix, but the outputs are no longer the fp32 outputs (about 1% relative error per product
here), so greedy text drifts from the fp32 text after a while and the loss rises a little;
a product of many rows (a long prompt's prefill) is slower than fp32, because the kernel is
built for few rows. It is for inference only: the weights are frozen buffers.

    >>> model = quantize_int8(load_model("runs/shakespeare/best"))  # in place  # doctest: +SKIP
"""

from __future__ import annotations

import torch
from torch import nn

HAS_INT8_KERNEL = hasattr(torch.ops.aten, "_weight_int8pack_mm")


class Int8Linear(nn.Module):
    """y = x (scale * q)^T + b, from an `nn.Linear` (its weight is quantised, then dropped)."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        weight = linear.weight.detach().float()
        scale = weight.abs().amax(dim=1).clamp(min=1e-12) / 127  # one step size per output row
        # The kernel takes bfloat16 scales (8 significant bits): round the step *up* a little
        # before storing it, so the largest weight still fits in ±127, and quantise with the
        # stored step, so every weight is within half a step of its int8 value.
        scale = (scale * (1 + 2**-7)).to(torch.bfloat16)
        q = torch.round(weight / scale.float()[:, None]).clamp(-127, 127).to(torch.int8)
        self.in_features, self.out_features = linear.in_features, linear.out_features
        self.register_buffer("weight_int8", q)  # (out, in)
        self.register_buffer("scale", scale)  # (out,) bfloat16
        bias = None if linear.bias is None else linear.bias.detach().clone()
        self.register_buffer("bias", bias)

    def dequantized_weight(self, dtype: torch.dtype = torch.float32) -> torch.Tensor:
        return self.weight_int8.to(dtype) * self.scale.to(dtype)[:, None]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.numel() // x.size(-1)
        x2 = x.reshape(rows, -1)
        if x.device.type == "cpu" and HAS_INT8_KERNEL:
            y = torch.ops.aten._weight_int8pack_mm(
                x2.to(torch.bfloat16).contiguous(), self.weight_int8, self.scale
            ).to(x.dtype)
        else:
            y = x2 @ self.dequantized_weight(x.dtype).t()
        if self.bias is not None:
            y = y + self.bias.to(y.dtype)
        return y.reshape(*x.shape[:-1], self.out_features)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8"


def quantize_int8(model: nn.Module) -> nn.Module:
    """Replace every `nn.Linear` of `model` (`FewRowsLinear` too) by an `Int8Linear`, in place.

    Embeddings stay as they are: decoding looks up one row of them per token, so they cost no
    bandwidth. A tied output head gets its own int8 copy; the input embedding keeps fp32.
    Returns `model`, in eval mode, with `model.quantized = "int8"`.
    """
    for module in list(model.modules()):
        for name, child in list(module.named_children()):
            if isinstance(child, nn.Linear):
                setattr(module, name, Int8Linear(child))
    model.quantized = "int8"
    return model.eval()
