"""Linear layers for decoding on a CPU: W·xᵀ when the input has few rows.

``nn.Linear`` computes x·Wᵀ: the weight is the transposed right operand of the BLAS matrix
product. During decoding x has one row per chunk (a handful), and on the development
machine (AMD EPYC, AVX2, PyTorch 2.13's MKL) that layout reads the weights slowly. The same
product taken as W·xᵀ, the weight as the plain left operand, is faster at every row count
up to a few hundred, and slower for a whole prompt pass (about 1,500 rows). Per matmul, two
threads, weights out of cache (60 different matrices in turn), x·Wᵀ against W·xᵀ, in µs:

| weight (out × in) | 4 rows | 16 rows | 128 rows | 1,500 rows |
| --- | --- | --- | --- | --- |
| 1536 × 576 (MLP up / gate) | 431 / 199 | 470 / 376 | 1803 / 1651 | 17860 / 20596 |
| 576 × 1536 (MLP down) | 395 / 207 | 433 / 335 | 1758 / 1623 | 17618 / 18616 |
| 49152 × 576 (vocabulary) | 18604 / 5527 | 23234 / 14663 | 80271 / 54496 | 722834 / 737950 |

A whole decoding step of SmolLM2-135M (all 211 linear layers, 95 tokens of cache), in ms,
nn.Linear against FewRowsLinear:

| threads | 16 rows | 9 rows | 4 rows | 2 rows |
| --- | --- | --- | --- | --- |
| 2 | 123.5 / 94.2 | 110.2 / 86.4 | 90.0 / 50.1 | 81.8 / 48.9 |
| 1 | 151.4 / 154.5 | 123.1 / 146.7 | 90.3 / 75.5 | 80.8 / 77.0 |

With one thread W·xᵀ gains nothing overall and loses at some row counts, so a single-threaded
process keeps nn.Linear's product. The output is the same up to float rounding.
"""

from __future__ import annotations

import torch
from torch import nn

FEW_ROWS = 256  # the measured crossing lies between 256 and 1,500 rows


class FewRowsLinear(nn.Linear):
    """An nn.Linear (same parameters, same state dict) that computes W·xᵀ for up to FEW_ROWS rows."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features)  # (N, in)
        if rows.shape[0] > FEW_ROWS or torch.get_num_threads() == 1:
            return nn.functional.linear(x, self.weight, self.bias)
        # Made contiguous: the layers after it (reshapes into heads, attention) are slower on the transposed view.
        y = torch.mm(self.weight, rows.T).T.contiguous()  # (N, out)
        if self.bias is not None:
            y = y + self.bias
        return y.reshape(*x.shape[:-1], self.out_features)


def use_few_rows_linears(module: nn.Module) -> int:
    """Make every plain nn.Linear under ``module`` a FewRowsLinear, in place; returns how many.

    The layers keep their parameter objects, so tied weights (the vocabulary projection and
    the token embeddings) stay tied. Subclasses of nn.Linear (LoRA, bitsandbytes) are left alone.
    """
    changed = 0
    for child in module.modules():
        if type(child) is nn.Linear:
            child.__class__ = FewRowsLinear
            changed += 1
    return changed
