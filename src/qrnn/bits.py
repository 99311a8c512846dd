"""Conversions between I/O words as bit tensors and as integers.

Lane 0 is the most significant bit when a word is read as an integer, as in the original implementation.
"""

from __future__ import annotations

import torch


def bits_to_int(bits: torch.Tensor) -> torch.Tensor:
    """Read the last axis of an integer bit tensor (..., width) as a binary number, lane 0 most significant."""
    width = bits.shape[-1]
    weights = 2 ** torch.arange(width - 1, -1, -1, device=bits.device, dtype=torch.long)
    return (bits.long() * weights).sum(-1)


def int_to_bits(values: torch.Tensor, width: int) -> torch.Tensor:
    """Write integers as bit tensors of shape (..., width), lane 0 most significant."""
    shifts = torch.arange(width - 1, -1, -1, device=values.device, dtype=torch.long)
    return (values.long().unsqueeze(-1) >> shifts) & 1
