"""The QRNN cell: an input stage, S work stages (an rY layer plus neurons) and an output stage.

Lanes 0..I-1 are the I/O lanes, lanes I..I+H-1 the workspace. One step with input word x and outcome y:
flip the I/O lanes by x; the input stage (a neuron onto each workspace lane); each work stage (rY on every
workspace lane, then a neuron onto each workspace lane); flip the I/O lanes by x again; the output stage (a
neuron onto each I/O lane); measure or postselect the I/O word y; flip by y so the I/O lanes are zero again.
Every neuron reads all other lanes: the workspace lanes, then the I/O lanes, in lane order.

Two facts make the step cheap, and `transfer_tables` (the kernel path) and `workspace_tables` with
`readout_table` (the statevector path, `qrnn.statevector_sequence`) exploit them:
- During the input and work stages the I/O lanes hold the classical word x, so those stages are, per input
  word, one linear map of the 2^H workspace amplitudes (`kernels[x]`), renormalised once at the end.
- The output stage starts with all I/O lanes at 0, so output neuron j meets lane j in |0> and only scales
  amplitudes: the amplitude of outcome y is `readout[y, w] * z[w]`, a diagonal map per outcome.
`apply_step` is the plain gate-by-gate simulation of the same step (optionally through the explicit circuits
with ancillas), kept as the slow reference that the tests compare the fast path against.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from qrnn.bits import int_to_bits
from qrnn.errors import QRNNError
from qrnn.gates import ry_matrices, ry_matrix
from qrnn.neuron import (
    QuantumNeuron,
    amplified_amplitudes,
    monomial_table,
    neuron_angles,
    num_weights,
    subset_sum_angles,
)
from qrnn.statevector import (
    apply_matrix,
    flip_lanes,
    marginal_probabilities,
    normalize,
    run_circuit,
    run_rotation_program,
)

# Up to this many entries (2^(I+H-1) configurations x monomials), the neuron angle tables come from one matrix
# product with the 0/1 monomial table (fewest operations: the paper's sizes); above, from subset sums
# (`subset_sum_angles`: O((I+H) 2^(I+H)) time and no monomial table).
_MONOMIAL_TABLE_MAX_ENTRIES = 2**20

# Largest workspace dimension 2^H for which an rY layer is applied as one dense matrix.
_DENSE_LAYER_MAX_WIDTH = 256


def kron_all(matrices: Sequence[torch.Tensor]) -> torch.Tensor:
    """The Kronecker product of the matrices, the first one acting on the most significant lane; matrices with
    leading (batch) axes, the same for all, give one product per batch entry."""
    result = matrices[0]
    for matrix in matrices[1:]:
        rows, cols = result.shape[-2] * matrix.shape[-2], result.shape[-1] * matrix.shape[-1]
        product = result[..., :, None, :, None] * matrix[..., None, :, None, :]
        result = product.reshape(*product.shape[:-4], rows, cols)
    return result


def rescale_pairs(cos_table: torch.Tensor, sin_table: torch.Tensor, dims: int | tuple[int, ...] = -1
                  ) -> tuple[torch.Tensor, torch.Tensor]:
    """(cos^m, sin^m) tables divided by their largest entry over `dims` (a constant to autograd).

    At amplification order k every neuron may shrink the state by 2^((1-2^k)/2), so from order 4 on float32
    kernels and readouts underflow to zero within a step. A step's outputs (its distribution over outcomes and
    the renormalised state) do not change when a sample's state is scaled, nor when the readout is, so dividing
    a neuron's pair of tables by a positive constant (per input word for the workspace neurons) changes neither
    the outputs nor their gradients, and keeps the largest coefficient at 1.
    """
    largest = torch.maximum(cos_table.abs().amax(dims, keepdim=True), sin_table.abs().amax(dims, keepdim=True))
    scale = largest.detach().clamp_min(torch.finfo(largest.dtype).tiny).reciprocal()
    return cos_table * scale, sin_table * scale


class WorkStage(nn.Module):
    """One work stage: an rY rotation on every workspace lane (`rotations`, in lane order), then `neurons`."""

    def __init__(self, neurons: list[QuantumNeuron]) -> None:
        super().__init__()
        self.rotations = nn.Parameter(torch.zeros(len(neurons)))
        self.neurons = nn.ModuleList(neurons)


def check_sizes(input_size: int, workspace_size: int, stages: int, order: int, degree: int) -> None:
    """One-line errors for sizes that make no QRNN."""
    for name, value, low in (
        ("input_size", input_size, 1),
        ("workspace_size", workspace_size, 1),
        ("stages", stages, 0),
        ("order", order, 1),
        ("degree", degree, 1),
    ):
        if not isinstance(value, int) or isinstance(value, bool) or value < low:
            raise QRNNError(f"{name} must be an integer >= {low}, got {value!r}")


class QRNNCell(nn.Module):
    """The cell on `input_size` I/O lanes and `workspace_size` workspace lanes (see the module docstring)."""

    def __init__(
        self,
        input_size: int,
        workspace_size: int,
        stages: int,
        order: int = 2,
        degree: int = 2,
        bias: float = math.pi / 2,
    ) -> None:
        super().__init__()
        check_sizes(input_size, workspace_size, stages, order, degree)
        self.input_size = input_size
        self.workspace_size = workspace_size
        self.stages = stages
        self.order = order
        self.degree = degree
        self.bias = float(bias)
        io_lanes = list(range(input_size))
        work_lanes = list(range(input_size, input_size + workspace_size))

        def neuron(target: int) -> QuantumNeuron:
            sources = [lane for lane in work_lanes + io_lanes if lane != target]
            return QuantumNeuron(target, sources, order, degree, self.bias)

        self.input_stage = nn.ModuleList([neuron(lane) for lane in work_lanes])
        self.work_stages = nn.ModuleList([WorkStage([neuron(lane) for lane in work_lanes]) for _ in range(stages)])
        self.output_stage = nn.ModuleList([neuron(lane) for lane in io_lanes])
        # For output neuron j and outcome y: the configuration of the other I/O lanes it sees (the bits of y
        # below j, zeros above, as an integer over the I-1 other lanes) and the bit y_j it writes.
        outcomes = torch.arange(2**input_size)
        bits = int_to_bits(outcomes, input_size)
        seen = torch.stack([bits * (torch.arange(input_size) < j) for j in range(input_size)])
        others = torch.stack([torch.cat([seen[j][:, :j], seen[j][:, j + 1 :]], dim=1) for j in range(input_size)])
        weights = 2 ** torch.arange(input_size - 2, -1, -1) if input_size > 1 else torch.zeros(0, dtype=torch.long)
        self.register_buffer("readout_config", (others * weights).sum(-1), persistent=False)
        self.register_buffer("readout_bit", bits.T.contiguous(), persistent=False)
        num_sources = input_size + workspace_size - 1
        small = 2**num_sources * num_weights(num_sources, degree) <= _MONOMIAL_TABLE_MAX_ENTRIES
        self.register_buffer("monomials", monomial_table(num_sources, degree) if small else None, persistent=False)

    @property
    def workspace_neurons(self) -> list[QuantumNeuron]:
        """The neurons that write workspace lanes, in the order they act."""
        neurons = list(self.input_stage)
        for stage in self.work_stages:
            neurons.extend(stage.neurons)
        return neurons

    def _tables(self, neurons: list[QuantumNeuron]) -> tuple[torch.Tensor, torch.Tensor]:
        """(cos^m, sin^m) over the source configurations for a list of neurons, in one batched evaluation:
        (#neurons x 2^#sources), with the parameters' leading member axis in front where they have one."""
        weights = torch.stack([n.weights for n in neurons], dim=-2)
        theta = torch.stack([n.theta for n in neurons], dim=-1)
        if weights.dim() == 2:
            # One model computes as a pool of one, so that a pool's members get exactly its numbers.
            weights, theta = weights.unsqueeze(0), theta.unsqueeze(0)
        if self.monomials is not None:
            eta = neuron_angles(weights, theta, self.monomials.to(weights.dtype), self.bias)
        else:
            num_sources = self.input_size + self.workspace_size - 1
            eta = subset_sum_angles(weights, theta, num_sources, self.degree, self.bias)
        return amplified_amplitudes(eta, self.order)

    def workspace_tables(self, rescale: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """(cos^m, sin^m) of every workspace neuron, in the order they act: 2 tables (#neurons x 2^I x 2^(H-1)).

        Entry [n, x, c] is for input word x and the configuration c of the other workspace lanes (in lane
        order, top bit first): a workspace neuron's sources are the other workspace lanes, then the I/O lanes.
        Parameters with a leading member axis (a pool's, see `forward`) give tables with that axis in front.
        With `rescale`, each neuron's pair of tables is divided by its largest entry per input word
        (`rescale_pairs`: the same sequence outputs, no underflow at high order).
        """
        cos_tables, sin_tables = self._member_workspace_tables(rescale)
        return (cos_tables, sin_tables) if self.pooled else (cos_tables[0], sin_tables[0])

    @property
    def pooled(self) -> bool:
        """Whether the parameters carry a leading member axis (a pool's, under `torch.func.functional_call`)."""
        return self.output_stage[0].theta.dim() == 1

    def _member_workspace_tables(self, rescale: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """`workspace_tables` with a leading member axis, also for one model (a pool of one)."""
        cos_all, sin_all = self._tables(self.workspace_neurons)
        shape = (*cos_all.shape[:-1], 2 ** (self.workspace_size - 1), 2**self.input_size)
        cos_tables, sin_tables = cos_all.reshape(shape).transpose(-1, -2), sin_all.reshape(shape).transpose(-1, -2)
        return rescale_pairs(cos_tables, sin_tables) if rescale else (cos_tables, sin_tables)

    def readout_table(self, rescale: bool = False) -> torch.Tensor:
        """`readout` (2^I x 2^H): the amplitude of outcome y after the output stage is `readout[y] * z` for the
        workspace state z (unnormalised; p(y) = |readout[y] * z|^2 / sum over y). One per member along a leading
        axis where the parameters have one; with `rescale`, each output neuron's tables divided by their largest entry
        (`rescale_pairs`: a constant factor of the readout, which leaves the distributions as they are)."""
        readout = self._member_readout_table(rescale)
        return readout if self.pooled else readout[0]

    def _member_readout_table(self, rescale: bool) -> torch.Tensor:
        """`readout_table` with a leading member axis, also for one model (a pool of one)."""
        I, W, X = self.input_size, 2**self.workspace_size, 2**self.input_size
        cos_out, sin_out = self._tables(list(self.output_stage))
        if rescale:
            cos_out, sin_out = rescale_pairs(cos_out, sin_out)
        lead = cos_out.shape[:-2]
        # (..., I, 2^(I-1), W): output neuron j's coefficients per configuration of the other I/O lanes.
        cos_out = cos_out.reshape(*lead, I, W, X // 2).transpose(-1, -2)
        sin_out = sin_out.reshape(*lead, I, W, X // 2).transpose(-1, -2)
        # Lane by lane, each outcome's row picked by index_select and the lanes multiplied in a fixed order (not
        # gather and `prod`, whose orders of summing the gradient and of multiplying depend on the tensor's
        # shape), so that a pool's member computes exactly the numbers of the lone model, forward and backward.
        readout = None
        for lane in range(I):
            config = self.readout_config[lane]
            chosen = torch.where(
                self.readout_bit[lane].unsqueeze(-1).bool(),
                sin_out[..., lane, :, :].index_select(-2, config),
                cos_out[..., lane, :, :].index_select(-2, config),
            )
            readout = chosen if readout is None else readout * chosen
        assert readout is not None
        return readout

    def transfer_tables(self, rescale: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        """The step as two small tables, differentiable in the parameters.

        `kernels` (2^I x 2^H x 2^H): for input word x and workspace state psi, the unnormalised workspace state
        after the input and work stages is `kernels[x] @ psi`.
        `readout`: `readout_table()`.
        Both carry a leading member axis where the parameters have one (a pool's); with `rescale`, they are built
        from the rescaled neuron tables (`rescale_pairs`): each kernel and the readout up to a positive factor, which
        the sequence model's renormalisation removes.
        """
        kernels, readout = self._member_transfer_tables(rescale)
        return (kernels, readout) if self.pooled else (kernels[0], readout[0])

    def _member_transfer_tables(self, rescale: bool) -> tuple[torch.Tensor, torch.Tensor]:
        """`transfer_tables` with a leading member axis, also for one model (a pool of one)."""
        I, H = self.input_size, self.workspace_size
        X, W = 2**I, 2**H
        dtype = self.output_stage[0].weights.dtype
        device = self.readout_bit.device
        # x goes first in the neuron tables: one group of kernel columns per input word (and member).
        neuron_cos, neuron_sin = self._member_workspace_tables(rescale)
        lead = neuron_cos.shape[:-3]
        groups = X * math.prod(lead)
        neuron_cos = neuron_cos.movedim(-3, 0).reshape(-1, groups, W // 2)
        neuron_sin = neuron_sin.movedim(-3, 0).reshape(-1, groups, W // 2)
        # An rY layer is the same for every input word: as one dense Kronecker product while 2^H is small
        # (a matrix product beats H passes over memory), else lane by lane.
        dense_layers = W <= _DENSE_LAYER_MAX_WIDTH
        program: list[tuple[str, int, int]] = [("rotate", j, j) for j in range(H)]
        layer_matrices, rotation_cos, rotation_sin = [], [], []
        for s, stage in enumerate(self.work_stages):
            angles = stage.rotations if self.pooled else stage.rotations.unsqueeze(0)
            if dense_layers:
                program.append(("dense", s, -1))
                rotations = ry_matrices(angles)
                layer_matrices.append(kron_all([rotations[..., j, :, :] for j in range(H)]))
            else:
                program.extend(("rotate", neuron_cos.shape[0] + s * H + j, j) for j in range(H))
                rotation_cos.append(torch.cos(angles / 2).movedim(-1, 0))
                rotation_sin.append(torch.sin(angles / 2).movedim(-1, 0))
            program.extend(("rotate", H * (s + 1) + j, j) for j in range(H))
        if dense_layers:
            cos_tables, sin_tables = neuron_cos, neuron_sin
            dense = torch.stack(layer_matrices) if layer_matrices else neuron_cos.new_zeros(0, *lead, W, W)
        else:
            # Scalar rotations broadcast over the input words and the other lanes.
            per_group = (-1, *lead, 1, 1)
            extra_cos = torch.cat(rotation_cos).view(per_group).expand(-1, *lead, X, W // 2).reshape(-1, groups, W // 2)
            extra_sin = torch.cat(rotation_sin).view(per_group).expand(-1, *lead, X, W // 2).reshape(-1, groups, W // 2)
            cos_tables = torch.cat([neuron_cos, extra_cos])
            sin_tables = torch.cat([neuron_sin, extra_sin])
            dense = neuron_cos.new_zeros(0, *lead, W, W)
        identity = torch.eye(W, dtype=dtype, device=device).expand(groups, W, W)
        kernels = run_rotation_program(identity, program, cos_tables, sin_tables, dense)
        return kernels.view(*lead, X, W, W), self._member_readout_table(rescale)

    def forward(self, rescale: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """The kernel path's tables (`transfer_tables`), always with a leading member axis (one model: a pool of
        one). As the module's forward it runs under `torch.func.functional_call` with a pool's stacked
        parameters."""
        return self._member_transfer_tables(rescale)

    # ---- the slow reference: the same step, gate by gate, on the full register ----

    def apply_step(self, state: torch.Tensor, word: torch.Tensor, explicit: bool = False) -> torch.Tensor:
        """Run the step up to the output stage on batched lane-tensor states with the I/O lanes at 0.

        `state` has I + H lanes (or I + H + order with `explicit`, the extra lanes being the ancillas, at 0);
        `word` (B x I bits) is written onto the I/O lanes and removed again before the output stage. With
        `explicit`, every neuron runs as its repeat-until-success circuit. Returns the renormalised state.
        """
        io_lanes = list(range(self.input_size))
        ancillas = list(range(self.input_size + self.workspace_size, state.dim() - 1))

        def neuron(state: torch.Tensor, n: QuantumNeuron) -> torch.Tensor:
            return run_circuit(state, n.circuit(ancillas)) if explicit else n.apply(state)

        state = flip_lanes(state, io_lanes, word)
        for n in self.input_stage:
            state = neuron(state, n)
        for stage in self.work_stages:
            for j, angle in enumerate(stage.rotations):
                state = apply_matrix(state, ry_matrix(angle, state.dtype), self.input_size + j)
            for n in stage.neurons:
                state = neuron(state, n)
        state = flip_lanes(state, io_lanes, word)
        for n in self.output_stage:
            state = neuron(state, n)
        return normalize(state)

    def output_distribution(self, state: torch.Tensor) -> torch.Tensor:
        """The distribution over the I/O word of lane-tensor states (B x 2^I)."""
        return marginal_probabilities(state, list(range(self.input_size)))
