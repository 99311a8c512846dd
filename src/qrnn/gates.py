"""Gates as data: exact 2x2 matrices and the operations of a circuit, separate from the states they act on.

Every matrix here is real: the QRNN only ever uses rY rotations, X flips and -iY (which is rY(pi)), so all
amplitudes stay real and the simulator stores them as real tensors.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch


def ry_matrix(angle: torch.Tensor | float, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """rY(angle) = [[cos(a/2), -sin(a/2)], [sin(a/2), cos(a/2)]]; differentiable in `angle` if it is a tensor."""
    angle = torch.as_tensor(angle, dtype=dtype)
    c, s = torch.cos(angle / 2), torch.sin(angle / 2)
    return torch.stack([torch.stack([c, -s]), torch.stack([s, c])])


def ry_matrices(angles: torch.Tensor) -> torch.Tensor:
    """rY of every angle of a tensor (...) as (..., 2, 2), differentiable; the same entries as `ry_matrix`."""
    c, s = torch.cos(angles / 2), torch.sin(angles / 2)
    return torch.stack([c, -s, s, c], dim=-1).view(*angles.shape, 2, 2)


def x_matrix(dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """Pauli X, the bit flip."""
    return torch.tensor([[0.0, 1.0], [1.0, 0.0]], dtype=dtype)


def neg_iy_matrix(dtype: torch.dtype = torch.float64) -> torch.Tensor:
    """-iY = [[0, -1], [1, 0]] = rY(pi): the real rotation the neuron applies to its target."""
    return torch.tensor([[0.0, -1.0], [1.0, 0.0]], dtype=dtype)


@dataclass(frozen=True)
class Gate:
    """A single-qubit gate on `target`, applied where every lane in `controls` is 1.

    `name` is "ry" (with `angle`), "x" or "neg_iy" (-iY, which is rY(pi)). `angle` may be a float or a 0-d
    tensor (so a circuit built from a model's parameters stays differentiable).
    """

    name: str
    target: int
    controls: tuple[int, ...] = ()
    angle: torch.Tensor | float | None = None

    def matrix(self, dtype: torch.dtype = torch.float64) -> torch.Tensor:
        """The gate's 2x2 matrix on its target (the controls are not part of it)."""
        if self.name == "ry":
            if self.angle is None:
                raise ValueError("an ry gate needs an angle")
            return ry_matrix(self.angle, dtype)
        if self.name == "x":
            return x_matrix(dtype)
        if self.name == "neg_iy":
            return neg_iy_matrix(dtype)
        raise ValueError(f"unknown gate {self.name!r}; known: ry, x, neg_iy")

    def inverse(self) -> Gate:
        """The inverse gate: rY(-a) for rY(a), X for X, iY (= rY(-pi)) for -iY."""
        if self.name == "ry":
            return Gate("ry", self.target, self.controls, -self.angle)  # type: ignore[operator]
        if self.name == "x":
            return self
        if self.name == "neg_iy":
            return Gate("ry", self.target, self.controls, -math.pi)
        raise ValueError(f"unknown gate {self.name!r}")


@dataclass(frozen=True)
class Postselect:
    """Project `lane` onto |value> and renormalise: the repeat-until-success outcome of a measured ancilla."""

    lane: int
    value: int = 0


Operation = Gate | Postselect
