"""Weight-only int8 linear layers for decoding on the CPU (``--quantization int8`` on a CPU).

Decoding on a CPU is bound by reading the LLM's weights: every step reads all of them, for
a handful of rows. Keeping each weight matrix as int8 with one scale per output row reads
a quarter of the bytes of fp32. The matmul is PyTorch's ``_weight_int8pack_mm`` (the CPU
kernel behind weight-only int8 in PyTorch's own LLM examples), which takes bf16 rows; the
layer converts its input to bf16 and its output back, so the rest of the model keeps its
dtype. Quantizing per output row with a symmetric 127 range is the usual weight-only
int8 scheme (as in LLM.int8's vector-wise quantization, Dettmers et al. 2022,
arXiv 2208.07339, without its outlier split). Activations are never quantized.
"""

from __future__ import annotations

import torch
from torch import nn


def int8_kernel_available() -> bool:
    """Whether this PyTorch build can run the CPU int8 weight matmul."""
    if not hasattr(torch, "_weight_int8pack_mm"):
        return False
    try:
        x = torch.ones(1, 32, dtype=torch.bfloat16)
        torch._weight_int8pack_mm(x, torch.ones(8, 32, dtype=torch.int8), torch.ones(8, dtype=torch.bfloat16))
    except (RuntimeError, NotImplementedError):
        return False
    return True


class Int8Linear(nn.Module):
    """A frozen nn.Linear with int8 weights and one bf16 scale per output feature."""

    def __init__(self, linear: nn.Linear):
        super().__init__()
        self.in_features, self.out_features = linear.in_features, linear.out_features
        weight = linear.weight.detach().float()  # (out, in)
        scales = weight.abs().amax(dim=1).clamp(min=1e-8) / 127.0  # (out,)
        self.register_buffer("weight_int8", torch.round(weight / scales[:, None]).clamp(-127, 127).to(torch.int8))
        self.register_buffer("scales", scales.to(torch.bfloat16))
        self.register_buffer("bias", None if linear.bias is None else linear.bias.detach().clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features).to(torch.bfloat16)  # (N, in)
        y = torch._weight_int8pack_mm(rows, self.weight_int8, self.scales).to(x.dtype)  # (N, out)
        y = y.reshape(*x.shape[:-1], self.out_features)
        return y if self.bias is None else y + self.bias

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, bias={self.bias is not None}, int8 weights"


def quantize_linears(module: nn.Module) -> int:
    """Replace every nn.Linear under ``module`` with an Int8Linear; returns how many were replaced."""
    replaced = 0
    for name, child in list(module.named_children()):
        if isinstance(child, nn.Linear):
            setattr(module, name, Int8Linear(child))
            replaced += 1
        else:
            replaced += quantize_linears(child)
    return replaced
