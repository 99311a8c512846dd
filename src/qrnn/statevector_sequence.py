"""The statevector path of the sequence model: the same function as the kernel path (`qrnn.model`), at a cost
that grows as 2^H instead of 4^H.

Between steps the I/O lanes are zero, and during the input and work stages they hold the classical input word x,
so each sample's state is a real vector of 2^H workspace amplitudes throughout. A workspace neuron is then a
rotation [[c, -s], [s, c]] of its lane, with c = cos(eta)^m and s = sin(eta)^m read, per sample, from the
neuron's table at (x, the other workspace lanes): it acts on a (B, 2^p, 2, 2^(H-1-p)) view of the batch, p the
lane's position in the state's index bits, O(B 2^H) per neuron. An rY layer is the same rotation of each lane
for every sample, so it acts as a few dense Kronecker blocks of up to 6 lanes, one matrix product each
(`layer_blocks`). No 2^H x 2^H matrix ever exists. The output stage is the kernel path's diagonal readout, and
postselection and sampling follow `qrnn.sequences` exactly as there.

Speed at these sizes is mostly the number of tensor operations and how well each streams through memory: a
neuron on a lane near the bottom of the index bits has runs of only 2^(H-1-p) contiguous amplitudes, which
makes every elementwise operation several times slower. So the upper half of the lanes acts with the index bits
cyclically rotated to put lane H//2 on top (`lane_layouts`: a transposing copy at each change, two per pass
over the lanes); the neuron tables are reordered to match once per pass.

The whole sequence is one autograd node with a hand-written backward pass. The forward pass saves only each
step's input state (L x B x 2^H); the backward pass recomputes one step at a time from it, keeping that step's
per-operation inputs (one step's working set), and runs the operations backwards. Where every step's operation
inputs fit in HISTORY_CACHE_BYTES, the forward pass keeps them and the backward pass recomputes nothing; on the
CPU the buffer is then kept for the next pass (touching fresh pages cost a quarter of a step at H = 12).

Every neuron shrinks the norm by up to sqrt(cos^2m + sin^2m) >= 2^((1-m)/2), which at high order would take
float32 amplitudes to zero within a step. So the state is renormalised every few neurons by a per-sample factor
treated as a constant: the step's outputs (the distribution over outcomes and the renormalised state) do not
change when z is scaled, so neither do they nor their gradients.
"""

from __future__ import annotations

from typing import Any

import torch

from qrnn.cell import kron_all
from qrnn.gates import ry_matrix
from qrnn.sequences import sample_outcomes
from qrnn.statevector import keep_buffer, reusable_buffer

# Up to this many bytes, the forward pass keeps every operation's input of every step, and the backward pass
# skips recomputing the steps (a quarter of its work); above it, memory stays O(L B 2^H) plus one step's.
HISTORY_CACHE_BYTES = 256 * 2**20

# Renormalise before the accumulated worst-case shrinking of the norm passes 2^-this (float32 reaches 2^-126).
_SHRINK_BITS_BEFORE_RENORMALISING = 40


def renormalise_every(order: int) -> int:
    """How many neurons may act before the state is renormalised (see the module docstring)."""
    bits_per_neuron = (2**order - 1) / 2
    return max(1, int(_SHRINK_BITS_BEFORE_RENORMALISING // bits_per_neuron))


def rotation_program(workspace_size: int, stages: int, order: int) -> tuple[tuple[str, int, int, bool], ...]:
    """The rotations of one step in the order they act: (kind, table index, workspace lane, renormalise after).

    kind "neuron" reads row `index` of the neuron tables (`QRNNCell.workspace_tables`); "layer" reads the
    constant (cos, sin) pair `index` of the rY layers (stage-major, lane order).
    """
    every = renormalise_every(order)
    program: list[tuple[str, int, int, bool]] = []
    neurons = 0

    def add_neurons(first: int) -> None:
        nonlocal neurons
        for lane in range(workspace_size):
            neurons += 1
            program.append(("neuron", first + lane, lane, neurons % every == 0))

    add_neurons(0)
    for s in range(stages):
        program.extend(("layer", s * workspace_size + lane, lane, False) for lane in range(workspace_size))
        add_neurons((s + 1) * workspace_size)
    # The readout normalises at the end of the step anyway.
    if program and program[-1][3]:
        program[-1] = program[-1][:3] + (False,)
    return tuple(program)


def lane_layouts(workspace_size: int) -> tuple[int, ...]:
    """For each workspace lane, the layout its rotations act in: the lane at the top of the state's index bits
    (which then run cyclically: that lane, the next, ..., H-1, 0, ...).

    A rotation acts on the pairs of a (B, 2^p, 2, 2^(H-1-p)) view, p the lane's position in the layout; when
    2^(H-1-p) is small, the strided halves make every elementwise operation several times slower. So the lanes
    of the upper half act with the state's bits rotated to put lane H//2 on top: every rotation then has at least
    2^(H//2) contiguous amplitudes per run, at the price of two transposing copies per pass over the lanes.
    """
    split = workspace_size // 2
    return tuple(0 if lane < split else split for lane in range(workspace_size))


# An rY layer acts as dense blocks of up to this many lanes: the same matrix for every sample, and one product with
# a 2^6 x 2^6 matrix costs less than six passes of elementwise operations over the state (forward and backward).
_LAYER_BLOCK_LANES = 6


def layer_blocks(workspace_size: int) -> tuple[tuple[int, int], ...]:
    """The blocks an rY layer is applied in, as (first lane, number of lanes): each half of the lanes (as in
    `lane_layouts`, so that a block's lanes are consecutive in every layout) in runs of at most
    _LAYER_BLOCK_LANES lanes, as even as possible."""
    split = workspace_size // 2
    blocks = []
    for first, end in ((0, split), (split, workspace_size)):
        lanes = end - first
        runs = -(-lanes // _LAYER_BLOCK_LANES)
        for i in range(runs):
            start, stop = first + lanes * i // runs, first + lanes * (i + 1) // runs
            blocks.append((start, stop - start))
    return tuple(blocks)


def layer_block_matrices(angles: torch.Tensor, workspace_size: int) -> torch.Tensor:
    """The rY layers as their blocks (`layer_blocks`), stage by stage: each block the Kronecker product of its
    lanes' rY(angle) (its first lane the most significant), flattened, all concatenated; differentiable in
    `angles` (S*H, stage-major, in lane order)."""
    matrices = [
        kron_all([ry_matrix(angle, angles.dtype) for angle in stage[first : first + count]]).reshape(-1)
        for stage in angles.view(-1, workspace_size)
        for first, count in layer_blocks(workspace_size)
    ]
    return torch.cat(matrices) if matrices else angles.new_zeros(0)


def _relayout(source: torch.Tensor, target: torch.Tensor, source_top: int, target_top: int) -> None:
    """Copy (B, 2^H) states from the layout with lane `source_top` on top to that with `target_top` on top."""
    lanes = (target_top - source_top) % (target.shape[-1].bit_length() - 1)
    batch = source.shape[0]
    target.view(batch, -1, 2**lanes).copy_(source.view(batch, 2**lanes, -1).transpose(1, 2))


def _neuron_tables_in_layouts(
    table: torch.Tensor, program: tuple[tuple[str, int, int, bool], ...], layouts: tuple[int, ...], inverse: bool
) -> torch.Tensor:
    """The neuron tables (#neurons x 2^I x 2^(H-1)) with each neuron's configurations of the other lanes
    reordered from lane order to its lane's layout (`lane_layouts`), word-major (2^I x #neurons x 2^(H-1)) so
    that a step gathers whole rows; or, with `inverse`, such tables back to the neurons' tables."""
    if inverse:
        table = table.transpose(0, 1)
    words, half = table.shape[1:]
    rows = list(table.unbind(0))
    for kind, index, lane, _ in program:
        top = layouts[lane]
        if kind == "neuron" and top:
            # Lane order puts lanes 0..top-1 first; the layout moves them after the others.
            shape = (words, half >> top, 2**top) if inverse else (words, 2**top, half >> top)
            rows[index] = table[index].reshape(shape).transpose(1, 2).reshape(words, half)
    return torch.stack(rows, dim=0 if inverse else 1)


def _halves(state: torch.Tensor, position: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The amplitudes with the lane at index bit `position` (from the top) at 0 and at 1: (..., 2^position,
    2^(H-1-position)) views of states (..., 2^H)."""
    view = state.view(*state.shape[:-1], 2**position, 2, -1)
    return view[..., 0, :], view[..., 1, :]


def _multiply_block(matrix: torch.Tensor, source: torch.Tensor, output: torch.Tensor) -> None:
    """output = matrix @ source for (N, 2^g, rest) views (as one matrix product where rest is 1)."""
    if source.shape[-1] == 1:
        torch.mm(source.view(source.shape[0], -1), matrix.T, out=output.view(output.shape[0], -1))
    else:
        torch.matmul(matrix, source, out=output)


def step_operations(
    program: tuple[tuple[str, int, int, bool], ...], workspace_size: int
) -> list[tuple[str, int, int, int, bool]]:
    """A step as the statevector path runs it: (kind, index, first lane, lanes, renormalise after). The neurons
    of `program` ("neuron", table row, lane, 1, ...); each rY layer as its blocks (`layer_blocks`): ("block",
    offset of the block's matrix in `layer_block_matrices`, first lane, lanes, False)."""
    blocks = layer_blocks(workspace_size)
    block_size = sum(4**count for _, count in blocks)
    operations = []
    for kind, index, lane, renormalise in program:
        if kind == "neuron":
            operations.append(("neuron", index, lane, 1, renormalise))
        elif lane == 0:
            offset = (index // workspace_size) * block_size
            for first, count in blocks:
                operations.append(("block", offset, first, count, False))
                offset += 4**count
    return operations


class _Step:
    """One step's operations on (B, 2^H) states, forward (optionally keeping every operation's input) and
    backward (accumulating the gradients of the tables and of the layers' blocks).

    A neuron on lane j is a rotation of the pairs (lane j at 0, at 1) of a (B, 2^p, 2, 2^(H-1-p)) view, p the
    lane's position in its layout (`lane_layouts`; the state moves between layouts by a transposing copy), with
    the coefficients of each sample's input word: the neuron tables (already in their lanes' layouts) are
    gathered for the whole batch once per step. An rY layer is a few dense blocks (`layer_blocks`), each one
    matrix product on a (B 2^p, 2^g, rest) view in whatever layout the state is in. The buffers and every view of
    them that a rotation needs are made once per pass, not once per rotation: at the workspace sizes where this
    path runs, making views costs about as much as the arithmetic.
    """

    def __init__(
        self,
        operations: list[tuple[str, int, int, int, bool]],
        layouts: tuple[int, ...],
        neuron_cos: torch.Tensor,
        neuron_sin: torch.Tensor,
        layer_matrices: torch.Tensor,
        batch: int,
    ) -> None:
        self.operations = operations
        self.neuron_cos, self.neuron_sin = neuron_cos, neuron_sin
        self.layer_matrices = layer_matrices
        self.batch = batch
        half = neuron_cos.shape[-1]
        self.lanes = lanes = half.bit_length()
        # The layout (top lane) of each operation's input, and of the step's result (lane order): a neuron acts
        # in its lane's layout, a layer's block in the layout the state is in.
        self.tops: list[int] = []
        top = 0
        for kind, _, lane, _, _ in operations:
            top = layouts[lane] if kind == "neuron" else top
            self.tops.append(top)
        self.tops.append(0)
        self.positions = [
            (lane - top) % lanes for (_, _, lane, _, _), top in zip(operations, self.tops[:-1], strict=True)
        ]
        self.step_cos = neuron_cos.new_empty(batch, neuron_cos.shape[1], half)
        self.step_sin = torch.empty_like(self.step_cos)
        self.step_grad_cos = torch.empty_like(self.step_cos)
        self.step_grad_sin = torch.empty_like(self.step_cos)
        # Two buffers to alternate between, and a third for a result before it changes layout.
        self.buffers = neuron_cos.new_empty(3, batch, 2 * half)
        self.buffer_halves = [[_halves(buffer, p) for p in range(lanes)] for buffer in self.buffers]
        self.coefficients: list[tuple[torch.Tensor, ...]] = []
        self.grad_parts: list[tuple[torch.Tensor, ...]] = []
        for (kind, index, _, count, _), position in zip(operations, self.positions, strict=True):
            if kind == "block":
                size = 2**count
                self.coefficients.append((layer_matrices[index : index + size * size].view(size, size),))
                self.grad_parts.append(())
            else:
                shape = (batch, 2**position, -1)
                self.coefficients.append((self.step_cos[:, index].view(shape), self.step_sin[:, index].view(shape)))
                self.grad_parts.append(
                    (self.step_grad_cos[:, index].view(shape), self.step_grad_sin[:, index].view(shape))
                )

    def changes_layout(self, k: int) -> bool:
        """Whether operation k's result changes layout before the next operation (or the step's end)."""
        return self.tops[k + 1] != self.tops[k]

    def history_views(self, history: torch.Tensor) -> list[tuple[torch.Tensor, ...]]:
        """For histories (..., #operations + 1, B, 2^H): per operation, its input (the halves for a neuron) and
        its output where it is written there directly (not through the third buffer, to change layout)."""
        views = []
        for k, ((kind, *_), position) in enumerate(zip(self.operations, self.positions, strict=True)):
            before, after = history[..., k, :, :], history[..., k + 1, :, :]
            if kind == "block":
                views.append((before,) if self.changes_layout(k) else (before, after))
            else:
                outputs = () if self.changes_layout(k) else _halves(after, position)
                views.append(_halves(before, position) + outputs)
        return views

    def gather(self, words: torch.Tensor) -> None:
        """This step's coefficients: (B, #neurons, 2^(H-1)) for the samples' input words."""
        torch.index_select(self.neuron_cos, 0, words, out=self.step_cos)
        torch.index_select(self.neuron_sin, 0, words, out=self.step_sin)

    def _block_view(self, state: torch.Tensor, k: int) -> torch.Tensor:
        """(B 2^p, 2^g, rest) view of states (B, 2^H) for block operation k on lanes at positions p..p+g-1."""
        count = self.operations[k][3]
        return state.view(self.batch << self.positions[k], 2**count, -1)

    def forward(
        self,
        state: torch.Tensor,
        words: torch.Tensor,
        history: torch.Tensor | None,
        views: list[tuple[torch.Tensor, ...]] | None,
        factors: list[torch.Tensor],
    ) -> torch.Tensor:
        """The unnormalised state after the operations. With `history` (#operations + 1 x B x 2^H) and its
        `history_views`, every operation's input and the result are written there; `factors` receives the
        renormalisation factors. Without, the result is one of the step's buffers."""
        self.gather(words)
        if history is not None:
            history[0].copy_(state)
        else:
            self.buffers[0].copy_(state)
        current = 0
        for k, (kind, _, _, _, renormalise) in enumerate(self.operations):
            position = self.positions[k]
            relayout = self.changes_layout(k)
            if views is not None and history is not None:
                inputs = views[k]
                if relayout:
                    outputs = self.buffer_halves[2][position] if kind == "neuron" else (self.buffers[2],)
                else:
                    outputs = inputs[2:] if kind == "neuron" else inputs[1:]
                after = history[k + 1] if relayout or renormalise else None
            else:
                inputs = self.buffer_halves[current][position] if kind == "neuron" else (self.buffers[current],)
                written = 2 if relayout else 1 - current
                outputs = self.buffer_halves[written][position] if kind == "neuron" else (self.buffers[written],)
                current = 1 - current
                after = self.buffers[current]
            if kind == "block":
                (matrix,) = self.coefficients[k]
                _multiply_block(matrix, self._block_view(inputs[0], k), self._block_view(outputs[0], k))
            else:
                c, s = self.coefficients[k]
                low, high = inputs[:2]
                new_low, new_high = outputs[:2]
                torch.mul(low, c, out=new_low)
                new_low.addcmul_(high, s, value=-1)
                torch.mul(high, c, out=new_high)
                new_high.addcmul_(low, s)
            if relayout:
                assert after is not None
                _relayout(self.buffers[2], after, self.tops[k], self.tops[k + 1])
            if renormalise:
                assert after is not None
                factor = torch.rsqrt((after * after).sum(1, keepdim=True))
                after.mul_(factor)
                factors.append(factor)
        return history[-1] if history is not None else self.buffers[current]

    def backward(
        self,
        grad: torch.Tensor,
        words: torch.Tensor,
        views: list[tuple[torch.Tensor, ...]],
        factors: list[torch.Tensor],
        grads: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    ) -> torch.Tensor:
        """The gradient at the step's input from the gradient at its output, after `forward` with a history
        (whose `views` these are) on the same step; accumulates the gradients of the neuron tables and the
        layers' blocks into `grads` = (neuron cos, neuron sin, layer blocks). The result is one of the step's
        buffers."""
        grad_neuron_cos, grad_neuron_sin, grad_layers = grads
        self.buffers[0].copy_(grad)
        current = 0
        factor_index = len(factors)
        for k in range(len(self.operations) - 1, -1, -1):
            kind, index, _, count, renormalise = self.operations[k]
            if renormalise:
                factor_index -= 1
                self.buffers[current].mul_(factors[factor_index])
            if self.changes_layout(k):
                _relayout(self.buffers[current], self.buffers[1 - current], self.tops[k + 1], self.tops[k])
                current = 1 - current
            if kind == "block":
                (matrix,) = self.coefficients[k]
                size = 2**count
                grad_matrix = grad_layers[index : index + size * size].view(size, size)
                grad_output = self._block_view(self.buffers[current], k)
                source = self._block_view(views[k][0], k)
                # y = M x per (B 2^p) slice: dM = sum of dy x^T, dx = M^T dy.
                if source.shape[-1] == 1:
                    grad_matrix.addmm_(grad_output.squeeze(-1).T, source.squeeze(-1))
                else:
                    grad_matrix += torch.matmul(grad_output, source.transpose(1, 2)).sum(0)
                _multiply_block(matrix.T, grad_output, self._block_view(self.buffers[1 - current], k))
                current = 1 - current
                continue
            position = self.positions[k]
            c, s = self.coefficients[k]
            low, high = views[k][:2]
            grad_low, grad_high = self.buffer_halves[current][position]
            new_low, new_high = self.buffer_halves[1 - current][position]
            cos_part, sin_part = self.grad_parts[k]
            # d/dc: grad_low * low + grad_high * high; d/ds: grad_high * low - grad_low * high.
            torch.mul(grad_low, low, out=cos_part)
            cos_part.addcmul_(grad_high, high)
            torch.mul(grad_high, low, out=sin_part)
            sin_part.addcmul_(grad_low, high, value=-1)
            torch.mul(grad_low, c, out=new_low)
            new_low.addcmul_(grad_high, s)
            torch.mul(grad_high, c, out=new_high)
            new_high.addcmul_(grad_low, s, value=-1)
            current = 1 - current
        grad_neuron_cos.index_add_(0, words, self.step_grad_cos)
        grad_neuron_sin.index_add_(0, words, self.step_grad_sin)
        return self.buffers[current]


class StatevectorSequence(torch.autograd.Function):
    """The sequence of steps on (B, 2^H) workspace states, with a hand-written backward pass that recomputes
    one step at a time (see the module docstring). Same arguments and results as the kernel path's node, with
    the neuron tables (#neurons x 2^I x 2^(H-1), cos and sin) and the rY layers' (cos, sin) of half the angles
    (S*H each) in place of the kernels."""

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        neuron_cos: torch.Tensor,
        neuron_sin: torch.Tensor,
        layer_matrices: torch.Tensor,
        readout: torch.Tensor,
        words: torch.Tensor,
        targets: torch.Tensor,
        postselected: torch.Tensor,
        uniforms: torch.Tensor,
        program: tuple[tuple[str, int, int, bool], ...],
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        steps, batch = words.shape
        width = readout.shape[1]
        layouts = lane_layouts(width.bit_length() - 1)
        operations = step_operations(program, len(layouts))
        # The tables in the layouts are what the backward pass reads too: saved instead of the inputs.
        layout_cos = _neuron_tables_in_layouts(neuron_cos, program, layouts, inverse=False)
        layout_sin = _neuron_tables_in_layouts(neuron_sin, program, layouts, inverse=False)
        step = _Step(operations, layouts, layout_cos, layout_sin, layer_matrices, batch)
        sampling = not bool(postselected.all())
        measured = torch.empty(steps, batch, dtype=torch.long, device=readout.device) if sampling else targets
        squared_readout_t = (readout * readout).T.contiguous()
        psi = readout.new_zeros(batch, width)
        psi[:, 0] = 1
        states = psi.new_empty(steps, batch, width)
        cached = steps * (len(operations) + 1) * batch * width * psi.element_size() <= HISTORY_CACHE_BYTES
        histories = reusable_buffer("statevector steps", (steps, len(operations) + 1, batch, width) if cached else (0,),
                                    psi)
        step_factors: list[list[torch.Tensor]] = []
        all_views = step.history_views(histories) if cached else None
        weights = psi.new_empty(steps, batch, readout.shape[0])
        inverse_norms = psi.new_empty(steps, batch, 1)
        for t in range(steps):
            states[t].copy_(psi)
            step_factors.append([])
            if all_views is not None:
                views = [tuple(view[t] for view in rotation) for rotation in all_views]
                z = step.forward(psi, words[t], histories[t], views, step_factors[t])
            else:
                z = step.forward(psi, words[t], None, None, step_factors[t])
            u = torch.mm(z * z, squared_readout_t, out=weights[t])
            if sampling:
                sampled = sample_outcomes(u / u.sum(1, keepdim=True), uniforms[t])
                y = torch.where(postselected[t], targets[t], sampled)
                measured[t] = y
            else:
                y = targets[t]
            inverse_norm = torch.rsqrt(u.gather(1, y.unsqueeze(1)), out=inverse_norms[t])
            psi = readout[y] * inverse_norm * z
        probs = weights / weights.sum(2, keepdim=True)
        chosen_probability = probs.gather(2, measured.unsqueeze(2)).squeeze(2)
        selected = chosen_probability[postselected]
        minimum = selected.min() if selected.numel() else chosen_probability.new_ones(())
        ctx.save_for_backward(
            layout_cos, layout_sin, layer_matrices, readout, words, measured, states, weights, inverse_norms, probs
        )
        ctx.program = program
        ctx.histories = histories if cached else None
        ctx.step_factors = step_factors
        measured_out = measured if sampling else measured.clone()
        ctx.mark_non_differentiable(measured_out, minimum)
        return probs.permute(1, 2, 0), measured_out, minimum

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: Any, grad_probs: torch.Tensor | None, _grad_measured: Any, _grad_minimum: Any
    ) -> tuple[torch.Tensor | None, ...]:
        (
            layout_cos, layout_sin, layer_matrices, readout, words, measured, states, weights, inverse_norms, probs
        ) = ctx.saved_tensors
        program = ctx.program
        steps, batch, width = states.shape
        outcomes = readout.shape[0]
        layouts = lane_layouts(width.bit_length() - 1)
        operations = step_operations(program, len(layouts))
        step = _Step(operations, layouts, layout_cos, layout_sin, layer_matrices, batch)
        squared_readout = readout * readout
        if grad_probs is None:
            grad_probs = probs.new_zeros(batch, outcomes, steps)
        grad_probs = grad_probs.permute(2, 0, 1)
        # u -> p = u / sum(u): the part of dL/du that comes from the output distributions, for all steps.
        grad_weights = (grad_probs - (grad_probs * probs).sum(2, keepdim=True)) / weights.sum(2, keepdim=True)
        grads = (
            torch.zeros_like(layout_cos),
            torch.zeros_like(layout_sin),
            torch.zeros_like(layer_matrices),
        )
        grad_readout_direct = torch.zeros_like(readout)
        grad_squared_readout = torch.zeros_like(readout)
        histories = ctx.histories
        if histories is None:
            history = states.new_empty(len(operations) + 1, batch, width)
            history_views = step.history_views(history)
        else:
            all_views = step.history_views(histories)
        grad_psi = states.new_zeros(batch, width)
        for t in range(steps - 1, -1, -1):
            if histories is None:
                factors: list[torch.Tensor] = []
                views = history_views
                z = step.forward(states[t], words[t], history, views, factors)
            else:
                views = [tuple(view[t] for view in rotation) for rotation in all_views]
                factors = ctx.step_factors[t]
                step.gather(words[t])
                z = histories[t, -1]
            y = measured[t]
            inverse_norm = inverse_norms[t]
            chosen_readout = readout[y]
            # Through psi' = readout[y] * z / sqrt(u_y): directly, and through u_y (the correction).
            # (r^2 times the renormalised state, not r^3 times z: r^3 overflows float32 where u_y is tiny.)
            scaled_grad = grad_psi * chosen_readout
            outputs = chosen_readout * z * inverse_norm
            correction = (grad_psi * outputs).sum(1, keepdim=True) * (-0.5 * inverse_norm * inverse_norm)
            step_grad_weights = grad_weights[t].scatter_add(1, y.unsqueeze(1), correction)
            grad_readout_direct.index_add_(0, y, grad_psi * z * inverse_norm)
            squared_z = z * z
            grad_squared_readout.addmm_(step_grad_weights.T, squared_z)
            grad_z = 2 * z * (step_grad_weights @ squared_readout)
            grad_z.addcmul_(scaled_grad, inverse_norm)
            grad_psi = step.backward(grad_z, words[t], views, factors, grads)
        if histories is not None:
            ctx.histories = None
            keep_buffer("statevector steps", histories)
        grad_readout = grad_readout_direct + 2 * readout * grad_squared_readout
        # Back to the neurons' tables one at a time (at large H each is hundreds of MB).
        grad_layers = grads[2]
        grad_layout_cos, grad_layout_sin = grads[0], grads[1]
        del grads, step, layout_cos, layout_sin
        grad_neuron_cos = _neuron_tables_in_layouts(grad_layout_cos, program, layouts, inverse=True)
        del grad_layout_cos
        grad_neuron_sin = _neuron_tables_in_layouts(grad_layout_sin, program, layouts, inverse=True)
        return (grad_neuron_cos, grad_neuron_sin, grad_layers, grad_readout, None, None, None, None, None)
