"""The statevector path of the sequence model: the same function as the kernel path (`qrnn.model`), at a cost
that grows as 2^H instead of 4^H.

Between steps the I/O lanes are zero, and during the input and work stages they hold the classical input word x,
so each sample's state is a real vector of 2^H workspace amplitudes throughout. A workspace neuron is then a
rotation [[c, -s], [s, c]] of its lane, with c = cos(eta)^m and s = sin(eta)^m read, per sample, from the
neuron's table at (x, the other workspace lanes); an rY layer is a constant rotation of each lane. Each acts on a
(B, 2^j, 2, 2^(H-1-j)) view of the batch: O(B 2^H) per neuron, and no 2^H x 2^H matrix ever exists. The output
stage is the kernel path's diagonal readout, and postselection and sampling follow `qrnn.sequences` exactly as
there.

The whole sequence is one autograd node with a hand-written backward pass. The forward pass saves only each
step's input state (L x B x 2^H); the backward pass recomputes one step at a time from it, keeping that step's
per-rotation inputs (one step's working set), and runs the rotations backwards.

Every neuron shrinks the norm by up to sqrt(cos^2m + sin^2m) >= 2^((1-m)/2), which at high order would take
float32 amplitudes to zero within a step. So the state is renormalised every few neurons by a per-sample factor
treated as a constant: the step's outputs (the distribution over outcomes and the renormalised state) do not
change when z is scaled, so neither do they nor their gradients.
"""

from __future__ import annotations

from typing import Any

import torch

from qrnn.sequences import sample_outcomes

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


def _move_first_lane_last(source: torch.Tensor, destination: torch.Tensor) -> torch.Tensor:
    """Copy (B, 2^H) real states into `destination` with the first lane axis moved to the end."""
    batch, width = source.shape
    destination.view(batch, width // 2, 2).copy_(source.view(batch, 2, width // 2).transpose(1, 2))
    return destination


def _move_last_lane_first(source: torch.Tensor, destination: torch.Tensor) -> torch.Tensor:
    """The inverse of `_move_first_lane_last`."""
    batch, width = source.shape
    destination.view(batch, 2, width // 2).copy_(source.view(batch, width // 2, 2).transpose(1, 2))
    return destination


def _pairs(state: torch.Tensor) -> torch.Tensor:
    """A (B, 2^H) real state as (B, 2^(H-1)) complex numbers low + i high of its last lane (a view)."""
    return torch.view_as_complex(state.view(state.shape[0], -1, 2))


def cyclic_tables(cos_table: torch.Tensor, sin_table: torch.Tensor, workspace_size: int) -> torch.Tensor:
    """Neuron tables (#neurons x 2^I x 2^(H-1), other lanes in lane order) as complex c + i s, with the other
    lanes in the cyclic order the step's layout has when neuron n's lane j = n mod H is last: j+1, ..., H-1,
    0, ..., j-1."""
    neurons, words, half = cos_table.shape
    tables = torch.complex(cos_table, sin_table)
    result = torch.empty_like(tables)
    for lane in range(workspace_size):
        rows = tables[lane::workspace_size].view(-1, words, 2**lane, half >> lane)
        result[lane::workspace_size].view(-1, words, half >> lane, 2**lane).copy_(rows.transpose(2, 3))
    return result


def standard_tables(tables: torch.Tensor, workspace_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The inverse of `cyclic_tables`: (real parts, imaginary parts) in lane order."""
    neurons, words, half = tables.shape
    result = torch.empty_like(tables)
    for lane in range(workspace_size):
        rows = tables[lane::workspace_size].view(-1, words, half >> lane, 2**lane)
        result[lane::workspace_size].view(-1, words, 2**lane, half >> lane).copy_(rows.transpose(2, 3))
    return result.real.contiguous(), result.imag.contiguous()


class _Step:
    """One step's rotations on (B, 2^H) real states, forward and backward.

    Before the rotation of lane j the state's lanes are laid out cyclically, j+1, ..., H-1, 0, ..., j, so the
    pairs (lane j at 0, at 1) are adjacent: as complex numbers low + i high, the rotation [[c, -s], [s, c]] is
    the product with c + i s. Moving the first lane axis to the end before each rotation walks the lanes
    0, 1, ..., H-1 in the order the program visits them, and back to lane order after every H rotations.

    The backward pass needs conj(v) g (the table's gradient) and conj(c + i s) g (the state's). So its
    recomputation runs on conjugated states (the conjugate tables, and each move also flips the sign that
    conjugation puts on the new last lane and removes the one on the old): both products are then plain.
    """

    def __init__(
        self, program: tuple[tuple[str, int, int, bool], ...], neuron_tables: torch.Tensor, layers: torch.Tensor
    ) -> None:
        self.program = program
        self.neuron_tables = neuron_tables
        self.layers = layers
        self.conj_neuron_tables = neuron_tables.conj().resolve_conj()
        self.conj_layers = layers.conj().resolve_conj()
        one = neuron_tables.real.new_ones(())
        # Signs over (the old last lane, the new last lane), applied while moving a conjugated state.
        self.first_signs = torch.stack([one, -one]).view(1, 1, 1, 2)
        self.signs = torch.stack([one, -one, -one, one]).view(1, 1, 2, 2)

    def _move_conjugated(self, source: torch.Tensor, destination: torch.Tensor, first: bool) -> torch.Tensor:
        batch, width = source.shape
        if width == 2:  # one lane: moving changes nothing, and a conjugated state stays conjugated
            destination.copy_(source)
            if first:
                destination[:, 1].neg_()
            return destination
        torch.mul(
            source.view(batch, 2, width // 4, 2).permute(0, 2, 3, 1),
            self.first_signs if first else self.signs,
            out=destination.view(batch, width // 4, 2, 2),
        )
        return destination

    def forward(
        self,
        state: torch.Tensor,
        words: torch.Tensor,
        history: torch.Tensor | None = None,
        factors: list[torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """The unnormalised state after the rotations (lane order). With `history` (#rotations x B x 2^H), the
        run is conjugated: every rotation's conjugated input goes there and the renormalisation factors into
        `factors` (the result is the true state all the same)."""
        conjugated = history is not None
        tables = (self.conj_neuron_tables if conjugated else self.neuron_tables).index_select(1, words)
        layers = self.conj_layers if conjugated else self.layers
        moved_buffer = torch.empty_like(state)
        after = torch.empty_like(state)
        current = state
        for k, (kind, index, _lane, renormalise) in enumerate(self.program):
            if history is not None:
                moved = self._move_conjugated(current, history[k], k == 0)
            else:
                moved = _move_first_lane_last(current, moved_buffer)
            factor = tables[index] if kind == "neuron" else layers[index]
            torch.mul(_pairs(moved), factor, out=_pairs(after))
            if renormalise:
                scale = torch.rsqrt((after * after).sum(1, keepdim=True))
                after.mul_(scale)
                if factors is not None:
                    factors.append(scale)
            current = after
        if conjugated:
            current.view(-1, 2)[:, 1].neg_()
        return current

    def backward(
        self,
        grad: torch.Tensor,
        words: torch.Tensor,
        history: torch.Tensor,
        factors: list[torch.Tensor],
        grad_tables: torch.Tensor,
        grad_layers: torch.Tensor,
    ) -> torch.Tensor:
        """The gradient at the step's input (lane order) from the gradient at its output (`grad`, overwritten),
        given the conjugated `forward` run's history; accumulates the complex tables' gradients (real part:
        cos, imaginary part: sin)."""
        tables = self.conj_neuron_tables.index_select(1, words)
        step_grads = torch.empty_like(tables)
        spare = torch.empty_like(grad)
        factor_index = len(factors)
        for k in range(len(self.program) - 1, -1, -1):
            kind, index, _lane, renormalise = self.program[k]
            if renormalise:
                factor_index -= 1
                grad.mul_(factors[factor_index])
            conj_input, pairs = _pairs(history[k]), _pairs(grad)
            if kind == "neuron":
                torch.mul(conj_input, pairs, out=step_grads[index])
                torch.mul(tables[index], pairs, out=_pairs(spare))
            else:
                grad_layers[index] += torch.dot(conj_input.reshape(-1), pairs.reshape(-1))
                torch.mul(self.conj_layers[index], pairs, out=_pairs(spare))
            _move_last_lane_first(spare, grad)
        grad_tables.index_add_(1, words, step_grads)
        return grad


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
        layer_cos: torch.Tensor,
        layer_sin: torch.Tensor,
        readout: torch.Tensor,
        words: torch.Tensor,
        targets: torch.Tensor,
        postselected: torch.Tensor,
        uniforms: torch.Tensor,
        program: tuple[tuple[str, int, int, bool], ...],
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        steps, batch = words.shape
        width = readout.shape[1]
        workspace_size = width.bit_length() - 1
        step = _Step(
            program, cyclic_tables(neuron_cos, neuron_sin, workspace_size), torch.complex(layer_cos, layer_sin)
        )
        sampling = not bool(postselected.all())
        measured = torch.empty(steps, batch, dtype=torch.long, device=readout.device) if sampling else targets
        squared_readout_t = (readout * readout).T.contiguous()
        psi = readout.new_zeros(batch, width)
        psi[:, 0] = 1
        states = psi.new_empty(steps, batch, width)
        weights = psi.new_empty(steps, batch, readout.shape[0])
        inverse_norms = psi.new_empty(steps, batch, 1)
        for t in range(steps):
            states[t].copy_(psi)
            z = step.forward(psi, words[t])
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
            neuron_cos, neuron_sin, layer_cos, layer_sin, readout, words, measured, states, weights, inverse_norms,
            probs,
        )
        ctx.program = program
        measured_out = measured if sampling else measured.clone()
        ctx.mark_non_differentiable(measured_out, minimum)
        return probs.permute(1, 2, 0), measured_out, minimum

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: Any, grad_probs: torch.Tensor | None, _grad_measured: Any, _grad_minimum: Any
    ) -> tuple[torch.Tensor | None, ...]:
        (
            neuron_cos, neuron_sin, layer_cos, layer_sin, readout, words, measured, states, weights, inverse_norms,
            probs,
        ) = ctx.saved_tensors
        program = ctx.program
        steps, batch, width = states.shape
        outcomes = readout.shape[0]
        workspace_size = width.bit_length() - 1
        step = _Step(
            program, cyclic_tables(neuron_cos, neuron_sin, workspace_size), torch.complex(layer_cos, layer_sin)
        )
        squared_readout = readout * readout
        if grad_probs is None:
            grad_probs = probs.new_zeros(batch, outcomes, steps)
        grad_probs = grad_probs.permute(2, 0, 1)
        # u -> p = u / sum(u): the part of dL/du that comes from the output distributions, for all steps.
        grad_weights = (grad_probs - (grad_probs * probs).sum(2, keepdim=True)) / weights.sum(2, keepdim=True)
        grad_tables = torch.zeros_like(step.neuron_tables)
        grad_layers = torch.zeros_like(step.layers)
        grad_readout_direct = torch.zeros_like(readout)
        grad_squared_readout = torch.zeros_like(readout)
        history = states.new_empty(len(program), batch, width)
        grad_psi = states.new_zeros(batch, width)
        for t in range(steps - 1, -1, -1):
            factors: list[torch.Tensor] = []
            z = step.forward(states[t], words[t], history, factors)
            y = measured[t]
            inverse_norm = inverse_norms[t]
            chosen_readout = readout[y]
            # Through psi' = readout[y] * z / sqrt(u_y): directly, and through u_y (the correction).
            scaled_grad = grad_psi * chosen_readout
            correction = (scaled_grad * z).sum(1, keepdim=True) * (-0.5 * inverse_norm**3)
            step_grad_weights = grad_weights[t].scatter_add(1, y.unsqueeze(1), correction)
            grad_readout_direct.index_add_(0, y, grad_psi * z * inverse_norm)
            squared_z = z * z
            grad_squared_readout.addmm_(step_grad_weights.T, squared_z)
            grad_z = 2 * z * (step_grad_weights @ squared_readout)
            grad_z.addcmul_(scaled_grad, inverse_norm)
            grad_psi = step.backward(grad_z, words[t], history, factors, grad_tables, grad_layers)
        grad_readout = grad_readout_direct + 2 * readout * grad_squared_readout
        grad_cos, grad_sin = standard_tables(grad_tables, workspace_size)
        return grad_cos, grad_sin, grad_layers.real, grad_layers.imag, grad_readout, None, None, None, None, None
