"""The quantum neuron: a rotation of one target lane by an angle that is a polynomial of the other lanes' bits,
sharpened by amplitude amplification of order k.

For a basis configuration x of the source lanes,

    eta(x) = 0.5 * (sum_S weights_S * prod_{i in S} x_i + theta + bias),   m = 2^order
    a0' = cos(eta)^m a0 - sin(eta)^m a1,   a1' = cos(eta)^m a1 + sin(eta)^m a0,

followed by renormalisation of the whole state. S runs over the subsets of source positions with
1 <= |S| <= degree, ordered as `itertools.combinations(range(n), r)` for r = 1..degree (the original's order).

Two forms compute it: the closed form (`QuantumNeuron.apply`, a table of (c, s) per source configuration) and
the explicit repeat-until-success circuit (`QuantumNeuron.circuit`: controlled rotations onto ancillas,
controlled -iY, the inverse rotations and postselection, recursively for order k with k ancillas). The circuit is
what hardware would run; the tests prove both give the same state.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence

import torch
from torch import nn

from qrnn.gates import Gate, Operation, Postselect
from qrnn.statevector import apply_rotation_table, normalize


@functools.cache
def source_subsets(num_sources: int, degree: int) -> tuple[tuple[int, ...], ...]:
    """The monomials of a neuron: subsets of source positions of size 1..degree, in the original's order."""
    return tuple(subset for r in range(1, degree + 1) for subset in itertools.combinations(range(num_sources), r))


def num_weights(num_sources: int, degree: int) -> int:
    """How many weights a neuron with `num_sources` sources and this degree has."""
    return len(source_subsets(num_sources, degree))


def monomial_table(num_sources: int, degree: int, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The 0/1 matrix (2^n x #monomials): entry [x, S] = prod_{i in S} x_i, source position 0 the top bit of x."""
    configs = torch.arange(2**num_sources)
    bits = (configs.unsqueeze(1) >> torch.arange(num_sources - 1, -1, -1)) & 1
    columns = [bits[:, list(subset)].prod(dim=1) for subset in source_subsets(num_sources, degree)]
    return torch.stack(columns, dim=1).to(dtype)


def neuron_angles(weights: torch.Tensor, theta: torch.Tensor, monomials: torch.Tensor, bias: float) -> torch.Tensor:
    """eta for every source configuration: weights (..., #monomials), theta (...) -> (..., 2^n).

    The products run batched over the leading axis (a pool's members), never folded into one matrix: a matrix
    product's rounding depends on its shape, and a pool's member must get exactly the lone model's numbers."""
    table = _batched_product(weights, monomials.T)
    return 0.5 * (table + theta.unsqueeze(-1) + bias)


def _batched_product(values: torch.Tensor, matrix: torch.Tensor) -> torch.Tensor:
    """values (..., k) @ matrix (k x n) as one batched product over the first axis of `values` (its other
    leading axes folded into rows), so that every entry of the first axis is multiplied alike."""
    lead = values.shape[:-1]
    first = lead[0] if len(lead) > 1 else 1
    batched = values.reshape(first, -1, values.shape[-1])
    # A real (not expanded) batch of the matrix: with a stride-0 batch, bmm folds the batch into one product.
    product = torch.bmm(batched, matrix.expand(first, *matrix.shape).contiguous())
    return product.reshape(*lead, matrix.shape[-1])


# Source axes summed by one matrix product in `subset_sum_angles`.
_SUBSET_SUM_GROUP = 6


@functools.cache
def subset_positions(num_sources: int, degree: int) -> tuple[int, ...]:
    """Each monomial's subset of source positions as an index into a table over source configurations: the
    configuration with exactly those sources at 1 (source position 0 the most significant bit)."""
    return tuple(sum(1 << (num_sources - 1 - i) for i in subset) for subset in source_subsets(num_sources, degree))


def subset_sum_angles(
    weights: torch.Tensor, theta: torch.Tensor, num_sources: int, degree: int, bias: float
) -> torch.Tensor:
    """The same table as `neuron_angles`, weights (..., #monomials), theta (...) -> (..., 2^n), in O(n 2^n)
    instead of O(2^n #monomials) and without the monomial table.

    eta(x) sums the weights of the subsets of x's one-bits. So put each weight at its subset's configuration
    (and theta + bias at the empty subset) and take subset sums, a few source axes at a time: over g axes, the
    sum over the subsets is a product with the 0/1 matrix of "j's bits are a subset of k's" (the Kronecker
    power of [[1, 0], [1, 1]]), one matrix product per group instead of g cumulative sums (whose backward
    passes flip the table). Differentiable by autograd.
    """
    lead = weights.shape[:-1]
    index = torch.tensor(subset_positions(num_sources, degree), device=weights.device)
    table = weights.new_zeros(*lead, 2**num_sources).index_copy(-1, index, weights)
    table = table.index_copy(-1, index.new_zeros(1), (theta + bias).unsqueeze(-1))
    done = 0
    while done < num_sources:
        group = min(_SUBSET_SUM_GROUP, num_sources - done)
        size = 2**group
        positions = torch.arange(size, device=weights.device)
        subsets = (positions.unsqueeze(1) & positions) == positions  # [k, j]: j's bits are a subset of k's
        zeta = subsets.to(weights.dtype)
        rest = 2 ** (num_sources - done - group)
        if rest == 1:
            table = _batched_product(table.reshape(*lead, -1, size) if lead else table.reshape(-1, size), zeta.T)
        else:
            table = torch.matmul(zeta, table.reshape(-1, size, rest))
        done += group
    return 0.5 * table.reshape(*lead, 2**num_sources)


def amplified_amplitudes(eta: torch.Tensor, order: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(cos(eta)^m, sin(eta)^m) with m = 2^order: the target's amplitudes after postselecting all ancillas."""
    # `order` squarings: torch's `pow` takes the general (slow) path for powers above 3, forward and backward,
    # where a product is one cheap pass (a pool's kernel construction spent a tenth of its time there).
    cos, sin = torch.cos(eta), torch.sin(eta)
    for _ in range(order):
        cos, sin = cos * cos, sin * sin
    return cos, sin


class QuantumNeuron(nn.Module):
    """One neuron writing lane `target` from `sources`, with trainable `weights` (one per monomial) and `theta`.

    `bias` is the fixed offset added inside every neuron (pi/2 in the paper), `order` the amplification order
    k >= 1 and `degree` the highest monomial degree d >= 1.
    """

    def __init__(
        self, target: int, sources: Sequence[int], order: int = 2, degree: int = 2, bias: float = math.pi / 2
    ) -> None:
        super().__init__()
        if order < 1 or degree < 1:
            raise ValueError(f"order and degree must be at least 1, got order={order}, degree={degree}")
        if target in sources:
            raise ValueError(f"the target lane {target} cannot be one of its own sources")
        self.target = target
        self.sources = tuple(sources)
        self.order = order
        self.degree = min(degree, len(self.sources))
        self.bias = bias
        self.weights = nn.Parameter(torch.zeros(num_weights(len(self.sources), self.degree)))
        self.theta = nn.Parameter(torch.zeros(()))

    def extra_repr(self) -> str:
        return (
            f"target={self.target}, sources={self.sources}, order={self.order}, degree={self.degree}, "
            f"bias={self.bias:.6g}"
        )

    def angles(self) -> torch.Tensor:
        """eta over the source configurations (2^#sources), source position 0 the most significant bit."""
        return subset_sum_angles(self.weights, self.theta, len(self.sources), self.degree, self.bias)

    def apply(self, state: torch.Tensor) -> torch.Tensor:
        """The closed form on a batch of lane-tensor states (B, 2, ..., 2): rotate, then renormalise."""
        lanes = state.dim() - 1
        cos_table, sin_table = amplified_amplitudes(self.angles().to(state.dtype), self.order)
        return normalize(
            apply_rotation_table(
                state,
                self.target,
                align_source_table(cos_table, self.sources, lanes),
                align_source_table(sin_table, self.sources, lanes),
            )
        )

    def circuit(self, ancillas: Sequence[int]) -> list[Operation]:
        """The explicit repeat-until-success circuit, using `ancillas` (at least `order` lanes, all |0>).

        Level 1: rY(theta + bias) and one multi-controlled rY(weight_S) per monomial S onto ancilla a1 (so a1
        holds cos(eta)|0> + sin(eta)|1>), -iY on the target controlled by a1, the inverse rotations, postselect
        a1 on 0: the target turns by cos^2 / sin^2. Level j: the level j-1 circuit written onto ancilla a_j,
        controlled -iY from a_j to the target, the inverse of that circuit, postselect a_j on 0.
        """
        if len(ancillas) < self.order:
            raise ValueError(f"an order-{self.order} neuron needs {self.order} ancillas, got {len(ancillas)}")
        return self._level(self.order, self.target, list(ancillas))

    def _rotations(self, ancilla: int) -> list[Gate]:
        gates = [Gate("ry", ancilla, (), self.theta + self.bias)]
        for weight, subset in zip(self.weights, source_subsets(len(self.sources), self.degree), strict=True):
            gates.append(Gate("ry", ancilla, tuple(self.sources[i] for i in subset), weight))
        return gates

    def _level(self, level: int, target: int, ancillas: list[int]) -> list[Operation]:
        ancilla = ancillas[level - 1]
        if level == 1:
            prepare: list[Operation] = list(self._rotations(ancilla))
        else:
            prepare = self._level(level - 1, ancilla, ancillas)
        # The inverse of a postselected sub-circuit must postselect its ancillas again at its end: its map is
        # <0|U^T|0>, and only the start's <0| is implied by the ancillas being fresh.
        return [
            *prepare,
            Gate("neg_iy", target, (ancilla,)),
            *invert_circuit(prepare),
            *(Postselect(lower, 0) for lower in ancillas[: level - 1]),
            Postselect(ancilla, 0),
        ]


def invert_circuit(operations: Sequence[Operation]) -> list[Operation]:
    """The inverse circuit: reversed, each gate inverted, postselections kept at their mirrored places."""
    return [op.inverse() if isinstance(op, Gate) else op for op in reversed(operations)]


def align_source_table(table: torch.Tensor, sources: Sequence[int], num_lanes: int) -> torch.Tensor:
    """Reshape a table over source configurations (..., 2^n), source position 0 most significant, so that it
    broadcasts against a batched lane-tensor state of `num_lanes` lanes (size 1 on every non-source lane)."""
    lead = table.shape[:-1]
    n = len(sources)
    table = table.reshape(*lead, *(2,) * n)
    order = sorted(range(n), key=lambda i: sources[i])
    table = table.permute(*range(len(lead)), *(len(lead) + i for i in order))
    shape = [2 if lane in sources else 1 for lane in range(num_lanes)]
    return table.reshape(*lead, *shape)
