"""The sequence conventions every model follows (the QRNN and the classical baselines alike): checking bit
tensors, which steps are postselected, and how outcomes are sampled.

Inputs and targets are integer bits B x L x I (or L x I); step t feeds `inputs[:, t]` and its outcome is compared
with `targets[:, t + 1]`. Sampling uses one uniform number per step and sample, drawn in float64 on the CPU
(step-major) from the caller's generator, so that a seed gives the same samples on every device and model.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Union

import torch

from qrnn.errors import QRNNError

Postselect = Union[bool, Callable[[int, torch.Tensor], torch.Tensor]]  # noqa: UP007 (a runtime alias)


def check_sequences(inputs: torch.Tensor, targets: torch.Tensor, width: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Validate a batch of bit sequences of word width `width`; returns them as long B x L x I tensors (a
    leading batch axis added to L x I input). Bad shapes or values raise a one-line `QRNNError`."""
    for name, bits in (("inputs", inputs), ("targets", targets)):
        if not isinstance(bits, torch.Tensor):
            raise QRNNError(f"{name} must be a tensor of bits, got {type(bits).__name__}")
        if bits.dim() not in (2, 3) or bits.shape[-1] != width:
            raise QRNNError(f"{name} must have shape B x L x {width} (or L x {width}), got {tuple(bits.shape)}")
        if bits.is_floating_point() or bits.is_complex():
            raise QRNNError(f"{name} must be an integer or bool tensor of 0/1 bits, got {bits.dtype}")
        if bits.numel() and not bool(((bits == 0) | (bits == 1)).all()):
            raise QRNNError(f"{name} must hold only 0 and 1 bits")
    if inputs.shape != targets.shape:
        raise QRNNError(
            f"inputs and targets must have the same shape, got {tuple(inputs.shape)} and {tuple(targets.shape)}"
        )
    if inputs.dim() == 2:
        inputs, targets = inputs.unsqueeze(0), targets.unsqueeze(0)
    if inputs.shape[0] < 1 or inputs.shape[1] < 2:
        raise QRNNError(f"need at least one sequence of length >= 2, got shape {tuple(inputs.shape)}")
    return inputs.long(), targets.long()


def postselection_mask(postselect: Postselect, targets: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Which steps are postselected on their target ((L-1) x B bool), from `postselect`: True (all), False
    (none, every step sampled) or a callable `(step, targets_at_step) -> bool tensor B`."""
    batch, length, _ = targets.shape
    if postselect is True or postselect is False:
        return torch.full((length - 1, batch), bool(postselect), dtype=torch.bool, device=device)
    if not callable(postselect):
        raise QRNNError(f"postselect must be True, False or a callable, got {postselect!r}")
    rows = []
    for t in range(length - 1):
        chosen = torch.as_tensor(postselect(t, targets[:, t + 1]), dtype=torch.bool).to(device)
        rows.append(chosen.expand(batch))
    return torch.stack(rows)


def sampling_uniforms(
    steps: int, batch: int, generator: torch.Generator | None, device: torch.device, dtype: torch.dtype
) -> torch.Tensor:
    """One uniform number per step and sample (steps x batch), drawn on the CPU in float64."""
    uniforms = torch.rand(steps, batch, generator=generator, dtype=torch.float64)
    return uniforms.to(device=device, dtype=dtype)


def sample_outcomes(probs: torch.Tensor, uniforms: torch.Tensor) -> torch.Tensor:
    """The outcome index drawn from distributions over the last axis of `probs` with the matching `uniforms`
    (inverse transform sampling)."""
    return (probs.cumsum(-1) < uniforms.unsqueeze(-1)).sum(-1).clamp_(max=probs.shape[-1] - 1)
