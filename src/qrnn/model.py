"""The QRNN sequence model: one word per step, the output distribution read from the statevector, then
postselection (on the target) or sampling, and a reset of the I/O lanes.

Between steps the I/O lanes are all zero, so the state is a vector of 2^H workspace amplitudes per sample. A step
is then `z = kernels[x] @ psi`, `p(y) ~ sum_w (readout[y, w] z[w])^2`, `psi' = readout[y] * z / |readout[y] * z|`
(see `QRNNCell.transfer_tables`). The whole sequence runs inside one autograd node (`_SequenceFunction`) with a
hand-written backward pass: it saves only the per-step workspace vectors (L x B x 2^H), so a thousand-step
sequence costs megabytes, and the per-step work is a handful of tensor operations for the whole batch.

That is the kernel path, the fastest for small workspaces. Building the kernels costs O(2^I 4^H), so large
workspaces take the statevector path instead (`qrnn.statevector_sequence`: the same steps, neuron by neuron on
the B x 2^H amplitudes); `QRNN(method=...)` chooses, by default from a cost model of the shapes.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import nn

from qrnn.bits import bits_to_int, int_to_bits
from qrnn.cell import QRNNCell
from qrnn.errors import QRNNError
from qrnn.sequences import Postselect, check_sequences, postselection_mask, sample_outcomes, sampling_uniforms
from qrnn.statevector import keep_buffer, retain_freed_memory, reusable_buffer
from qrnn.statevector_sequence import (
    HISTORY_CACHE_BYTES,
    StatevectorSequence,
    layer_block_matrices,
    rotation_program,
)

# The ways to run a sequence (see `QRNN`): "auto" picks the cheaper of the other two for each pass.
METHODS = ("auto", "kernel", "statevector")

# The per-step products psi[b] @ kernels[x_b]^T run either as one product with all kernels followed by a gather
# (few words, small kernels: fewer operations) or one product per group of samples sharing a word (the batch
# sorted by word at every step: fewer flops). One extra small operation costs about this many multiply-adds.
_OPERATION_COST_IN_FLOPS = 160_000

# A pool's training step runs its members in chunks (forward and backward) of at most about this many bytes of
# working memory each (`pool_chunks`): a pass over a whole pool of large members (MNIST) ran slower than member
# by member, its working set far outside the caches. Every chunk costs a lone model's fixed cost (a few thousand
# small operations), so chunks are as large as this allows: at 32 MiB a pool of 30 umap models ran as 3 chunks and
# about 15% slower than as one (2-core CPU; MNIST's members, 54 MiB each, run two at a time).
POOL_CHUNK_BYTES = 128 << 20

# For `QRNN.estimate_cost`: a matrix product's multiply-add and one tensor operation's fixed cost, in elementwise
# operations on single numbers.
_MATMUL_COST = 0.1
_OPERATION_COST = 5_000


def _padded_layout(
    words: torch.Tensor, members: int, count: int, min_depth: int
) -> tuple[torch.Tensor, list[tuple[int, torch.Tensor, int]], int]:
    """A padded layout of the entries of `words` (N x R kernel indices, member p's word x is p count + x): each of
    member p's kernels gets `depth_p` consecutive rows, its k-th entry of a row of `words` at the kernel's first
    row + k, where `depth_p` is the most entries any of p's kernels has in any row of `words`, at least
    `min_depth`. Members of equal depth lie together, so that one batched product per depth serves them.

    Returns the entries' rows (N x R), the groups (depth, the group's kernels in order, first row) and the rows in
    all. A member's depth is its own, not the pool's: a batched product's rounding depends on its row count."""
    kernels = members * count
    order = torch.argsort(words, dim=1, stable=True)
    counts = torch.zeros(words.shape[0], kernels, dtype=torch.long, device=words.device)
    counts.scatter_add_(1, words, torch.ones_like(words))
    starts = counts.cumsum(1) - counts
    ranks_sorted = torch.arange(words.shape[1], device=words.device) - starts.gather(1, words.gather(1, order))
    ranks = torch.empty_like(ranks_sorted).scatter_(1, order, ranks_sorted)
    most = counts.view(-1, members, count).amax(dim=(0, 2)) if counts.numel() else counts.new_zeros(members)
    depths = most.clamp_min(min_depth).tolist()
    first_row = torch.empty(kernels, dtype=torch.long, device=words.device)
    groups: list[tuple[int, torch.Tensor, int]] = []
    row = 0
    for depth in sorted(set(depths)):
        chosen = torch.tensor([m for m, d in enumerate(depths) if d == depth], device=words.device)
        group = (chosen[:, None] * count + torch.arange(count, device=words.device)).flatten()
        first_row[group] = row + torch.arange(group.numel(), device=words.device) * depth
        groups.append((depth, group, row))
        row += group.numel() * depth
    return first_row[words] + ranks, groups, row


# The padded layout gives each kernel at least this many rows: batched products with fewer rows run a different
# kernel (other rounding), and a pool's member must get exactly the lone model's numbers whatever its depth.
_PADDED_MIN_DEPTH = 8


class _StepLayout:
    """The per-sample kernel products of each step.

    The batch holds P members' samples (a pool; P = 1 for one model), member-major: rows [p B, (p + 1) B) are
    member p's; `flat_words` index the members' kernels laid end to end (member p's word x is p X + x). Two
    ways to multiply each row by its own kernel, chosen by the shapes of one member (so that a member of a pool
    computes exactly as the lone model):
    - "every": per member, one batched product with all its kernels, then a gather (few words, small kernels:
      fewest operations);
    - "gathered": each row's kernel copied next to it, then one batched product of rows by their kernels (fewer
      samples per member than words: the copies are less memory to stream than all the kernels);
    - "padded": the rows scattered into a zero-padded block per kernel (each member's blocks of its own depth), one
      batched product per depth, gathered back (many words or large kernels: fewest flops, and a handful of
      operations however many members and words).
    Every product is batched over the members with the same shapes per member as for one model: the rounding of
    a matrix product depends on its shape.
    """

    def __init__(self, kernels: torch.Tensor, flat_words: torch.Tensor) -> None:
        members, count, width = kernels.shape[0], kernels.shape[1], kernels.shape[-1]
        rows = flat_words.shape[1]
        batch = rows // members
        self.members = members
        self.step_words = flat_words
        sparse = batch * (count - 1) * width * width > count * _OPERATION_COST_IN_FLOPS
        self.mode = "padded" if sparse else "gathered" if batch < count else "every"
        if self.mode == "gathered":
            self.flat_kernels = kernels.reshape(members * count, width, width)
            self.gathered = kernels.new_empty(rows, width, width)
        elif self.mode == "padded":
            self.pad_index, self.groups, total = _padded_layout(flat_words, members, count, _PADDED_MIN_DEPTH)
            self.padded_rows = kernels.new_zeros(total, width)
            self.padded_products = torch.empty_like(self.padded_rows)
            flat = kernels.reshape(members * count, width, width)
            # One group (a lone model, or members of one depth) takes the kernels as they are; several take each
            # group's kernels once per pass, in the same layout.
            grouped = [flat] if len(self.groups) == 1 else [flat.index_select(0, group) for _, group, _ in self.groups]
            self.forward_matrices = [matrices.transpose(1, 2) for matrices in grouped]
            self.backward_matrices = grouped
        else:
            row_numbers = torch.arange(rows, device=flat_words.device)
            # Row b's product with its word's kernel, in the (rows x count) products with every kernel.
            self.flat_index = row_numbers * count + (flat_words - row_numbers // batch * count)
            # Per member: psi @ [kernels[0]^T | kernels[1]^T | ...] (W x XW), and the same for the backward pass.
            self.forward_matrices = kernels.transpose(2, 3).permute(0, 2, 1, 3).reshape(members, width, count * width)
            self.backward_matrices = kernels.permute(0, 2, 1, 3).reshape(members, width, count * width)

    def products(self, t: int, rows: torch.Tensor, backward: bool, out: torch.Tensor) -> torch.Tensor:
        """rows[b] @ kernels[x_b]^T (forward) or rows[b] @ kernels[x_b] (backward) at step t."""
        width = rows.shape[1]
        if self.mode == "gathered":
            torch.index_select(self.flat_kernels, 0, self.step_words[t], out=self.gathered)
            kernels = self.gathered if backward else self.gathered.transpose(1, 2)
            torch.bmm(rows.view(-1, 1, width), kernels, out=out.view(-1, 1, width))
            return out
        matrices = self.backward_matrices if backward else self.forward_matrices
        if self.mode == "every":
            every = torch.bmm(rows.view(self.members, -1, width), matrices)
            return torch.index_select(every.view(-1, width), 0, self.flat_index[t], out=out)
        self.padded_rows.index_copy_(0, self.pad_index[t], rows)
        for (depth, group, first), group_matrices in zip(self.groups, matrices, strict=True):
            shape = (group.numel(), depth, width)
            end = first + group.numel() * depth
            torch.bmm(self.padded_rows[first:end].view(shape), group_matrices,
                      out=self.padded_products[first:end].view(shape))
        return torch.index_select(self.padded_products, 0, self.pad_index[t], out=out)

    def kernel_gradients(self, states: torch.Tensor, grad_products: torch.Tensor, count: int) -> torch.Tensor:
        """For every member's kernel x: the sum over steps and the member's rows with word x of
        outer(grad_products, states), (P X) x W x W. Each member's sums are the lone model's: a batched product
        over its words, padded to its own depth (the most rows any of its words has), run for all the members of
        one depth at once (a batched product computes each of its matrices alike, however many there are).
        The rows go from their (steps x P B) places straight to their padded ones, with no member-major copy."""
        width = states.shape[-1]
        words = count // self.members
        flat_words = self.step_words.reshape(-1)
        total = flat_words.numel()
        # Each row's rank among its member's rows with the same word, in (step, sample) order.
        order = torch.argsort(flat_words, stable=True)
        counts = torch.bincount(flat_words, minlength=count)
        starts = counts.cumsum(0) - counts
        ranks = torch.empty_like(order)
        ranks[order] = torch.arange(total, device=order.device) - starts[flat_words[order]]
        depths = counts.view(self.members, words).amax(1).clamp_min(1).tolist()
        # Members of one depth get consecutive padded blocks (words x depth rows each).
        groups: dict[int, list[int]] = {}
        for p, depth in enumerate(depths):
            groups.setdefault(depth, []).append(p)
        bases = [0] * self.members
        runs = []
        offset = 0
        for depth, members in groups.items():
            runs.append((depth, members, offset))
            for p in members:
                bases[p] = offset
                offset += words * depth
        member_of_row = torch.div(flat_words, words, rounding_mode="floor")
        base = torch.tensor(bases, device=flat_words.device)[member_of_row]
        depth_of_row = torch.tensor(depths, device=flat_words.device)[member_of_row]
        index = base + (flat_words - member_of_row * words) * depth_of_row + ranks
        # Reused buffers (a fresh one costs its page faults) with zeros where no row lands.
        buffer = reusable_buffer("kernel gradients", (2, offset, width), states)
        padded_states, padded_grads = buffer[0], buffer[1]
        if offset > total:
            unused = torch.ones(offset, dtype=torch.bool, device=index.device).index_fill_(0, index, False)
            padding = unused.nonzero().squeeze(1)
            padded_states.index_fill_(0, padding, 0)
            padded_grads.index_fill_(0, padding, 0)
        padded_states.index_copy_(0, index, states.reshape(total, width))
        padded_grads.index_copy_(0, index, grad_products.reshape(total, width))
        if len(runs) == 1:
            shape = (self.members * words, runs[0][0], width)
            gradients = torch.bmm(padded_grads.view(shape).transpose(1, 2), padded_states.view(shape))
        else:
            gradients = states.new_empty(self.members, words, width, width)
            for depth, members, start in runs:
                end = start + len(members) * words * depth
                shape = (len(members) * words, depth, width)
                block = torch.bmm(
                    padded_grads[start:end].view(shape).transpose(1, 2), padded_states[start:end].view(shape)
                )
                member_index = torch.tensor(members, device=flat_words.device)
                gradients.index_copy_(0, member_index, block.view(len(members), words, width, width))
        keep_buffer("kernel gradients", buffer)
        return gradients.view(self.members * words, width, width)


class _SequenceFunction(torch.autograd.Function):
    """The sequence of steps with a hand-written backward pass (see the module docstring), for P members of a pool
    at once (P = 1 for one model): kernels (P x 2^I x 2^H x 2^H), readout (P x 2^I x 2^H), and per step the
    P x B samples member-major.

    Everything the backward pass needs is saved per step; the parts of the backward pass that do not depend on
    later steps are computed for all steps at once, so that the recursion over steps is a handful of operations.
    """

    @staticmethod
    def forward(  # type: ignore[override]
        ctx: Any,
        kernels: torch.Tensor,
        readout: torch.Tensor,
        words: torch.Tensor,
        targets: torch.Tensor,
        postselected: torch.Tensor,
        uniforms: torch.Tensor,
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        steps, rows = words.shape
        members, outcomes, width = readout.shape
        batch = rows // members
        # Member p's words and outcomes index its own kernels and readout rows: p 2^I + x.
        offsets = torch.arange(members, device=words.device).repeat_interleave(batch) * outcomes
        layout = _StepLayout(kernels, words + offsets)
        flat_readout = readout.reshape(members * outcomes, width)
        sampling = not bool(postselected.all())
        if sampling:
            measured = torch.empty(steps, rows, dtype=torch.long, device=kernels.device)
        else:
            measured = targets
            chosen_readout = _rows(flat_readout, targets + offsets)
        squared_readout_t = (readout * readout).transpose(1, 2).contiguous()
        # Step t's input state is chain[t], its output chain[t + 1] (the next step's input, not copied).
        chain = torch.empty(steps + 1, rows, width, dtype=kernels.dtype, device=kernels.device)
        psi = chain[0].zero_()
        psi[:, 0] = 1
        states, outputs = chain[:-1], chain[1:]
        products = torch.empty_like(states)
        scales = torch.empty_like(states)
        weights = psi.new_empty(steps, rows, outcomes)
        inverse_norms = psi.new_empty(steps, rows, 1)
        member_weights = weights.view(steps, members, batch, outcomes)
        squares = torch.empty_like(psi)
        for t in range(steps):
            z = layout.products(t, psi, False, products[t])
            torch.mul(z, z, out=squares)
            torch.bmm(squares.view(members, batch, width), squared_readout_t, out=member_weights[t])
            u = weights[t]
            if sampling:
                p = u / u.sum(1, keepdim=True)
                sampled = sample_outcomes(p, uniforms[t])
                y = torch.where(postselected[t], targets[t], sampled)
                measured[t] = y
                step_readout = flat_readout[y + offsets]
            else:
                y = targets[t]
                step_readout = chosen_readout[t]
            inverse_norm = torch.rsqrt(u.gather(1, y.unsqueeze(1)), out=inverse_norms[t])
            torch.mul(step_readout, inverse_norm, out=scales[t])
            psi = torch.mul(scales[t], z, out=outputs[t])
        probs = weights / weights.sum(2, keepdim=True)
        chosen_probability = probs.gather(2, measured.unsqueeze(2)).squeeze(2)
        minimum = _member_minimum(chosen_probability, postselected, members)
        ctx.save_for_backward(
            kernels, readout, measured, chain, products, scales, weights, inverse_norms, probs, offsets
        )
        ctx.layout = layout
        probs_out = probs.permute(1, 2, 0)
        measured_out = measured if sampling else measured.clone()
        ctx.mark_non_differentiable(measured_out, minimum)
        return probs_out, measured_out, minimum

    @staticmethod
    def backward(  # type: ignore[override]
        ctx: Any, grad_probs: torch.Tensor | None, _grad_measured: Any, _grad_minimum: Any
    ) -> tuple[torch.Tensor | None, ...]:
        kernels, readout, measured, chain, products, scales, weights, inverse_norms, probs, offsets = ctx.saved_tensors
        states, outputs = chain[:-1], chain[1:]
        layout: _StepLayout = ctx.layout
        steps, rows, width = products.shape
        members, outcomes = readout.shape[0], readout.shape[1]
        batch = rows // members
        count = members * outcomes
        squared_readout = readout * readout
        flat_measured = measured + offsets
        if grad_probs is None:
            grad_probs = probs.new_zeros(rows, outcomes, steps)
        grad_probs = grad_probs.permute(2, 0, 1)
        # u -> p = u / sum(u): the part of dL/du that comes from the output distributions, for all steps.
        totals = weights.sum(2, keepdim=True)
        grad_weights = (grad_probs - (grad_probs * probs).sum(2, keepdim=True)) / totals
        # dL/dz = 2 z (dL/du @ readout^2) + the terms through psi' = readout[y] * z / sqrt(u_y): its direct
        # dependence on z (scales) and on u_y (a multiple of 2 z readout[y]^2, known once dL/dpsi' is).
        spread = torch.matmul(grad_weights.view(steps, members, batch, outcomes), squared_readout)
        # In place where it can be: at a pool's sizes every fresh temporary costs its page faults.
        base = spread.view(steps, rows, width).mul_(products).mul_(2)
        through_norm = _rows(squared_readout.view(count, width), flat_measured).mul_(products).mul_(2)
        norm_factor = -0.5 * inverse_norms * inverse_norms
        # grad_outputs[t]: dL/d(step t's output) through the later steps, written there by step t + 1's product.
        grad_outputs = torch.empty_like(products)
        grad_outputs[-1].zero_()
        grad_norms = torch.empty_like(inverse_norms)
        grad_products = torch.empty_like(products)
        grad_rows = torch.empty(rows, width, dtype=kernels.dtype, device=kernels.device)
        scratch = torch.empty_like(grad_rows)
        for t in range(steps - 1, -1, -1):
            grad_next = grad_outputs[t]
            overlap = torch.mul(grad_next, outputs[t], out=scratch).sum(1, keepdim=True)
            correction = torch.mul(overlap, norm_factor[t], out=grad_norms[t])
            grad_z = torch.addcmul(base[t], grad_next, scales[t], out=grad_products[t])
            grad_z.addcmul_(correction, through_norm[t])
            layout.products(t, grad_z, True, grad_outputs[t - 1] if t else grad_rows)
        grad_weights.scatter_add_(2, measured.unsqueeze(2), grad_norms)
        grad_kernels = layout.kernel_gradients(states, grad_products, count)
        # Per member: sum over steps and samples of dL/du (outcomes) times z^2 (workspace states).
        member_grad_weights = grad_weights.view(steps, members, batch, outcomes).transpose(0, 1)
        # z^2 written member-major in one pass (not squared, then transposed by a copy).
        member_squares = products.new_empty(members, steps, batch, width)
        torch.mul(products.view(steps, members, batch, width), products.view(steps, members, batch, width),
                  out=member_squares.transpose(0, 1))
        grad_squared_readout = torch.matmul(
            member_grad_weights.reshape(members, -1, outcomes).transpose(1, 2),
            member_squares.view(members, -1, width),
        )
        grad_readout = torch.zeros(count, width, dtype=readout.dtype, device=readout.device).index_add_(
            0, flat_measured.reshape(-1), grad_outputs.mul_(products).mul_(inverse_norms).reshape(-1, width)
        )
        grad_readout = grad_readout.view_as(readout) + 2 * readout * grad_squared_readout
        return grad_kernels.view_as(kernels), grad_readout, None, None, None, None


def _rows(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """table[index] for a 2-D table and an index tensor of any shape: the rows copied by `index_select` (far
    faster than advanced indexing)."""
    return torch.index_select(table, 0, index.reshape(-1)).view(*index.shape, table.shape[1])


def _member_minimum(chosen_probability: torch.Tensor, postselected: torch.Tensor, members: int) -> torch.Tensor:
    """Each member's smallest probability of a postselected outcome (steps x P B in) -> (P,), 1 where none."""
    masked = torch.where(postselected, chosen_probability, torch.ones_like(chosen_probability))
    return masked.view(masked.shape[0], members, -1).amin(dim=(0, 2)) if masked.numel() else masked.new_ones(members)


class QRNN(nn.Module):
    """A quantum recurrent neural network on `input_size` I/O qubits and `workspace_size` workspace qubits.

    `stages` work stages, neurons of amplification `order` and polynomial `degree`, each with the fixed `bias`
    (pi/2 in the paper). Float32 by default; `.double()` for float64; any device. Call it as
    `probs, measured, min_postselection_probability = model(inputs, targets, postselect=True)`.

    `method` says how a pass runs; every method computes the same function. "kernel" builds one 2^H x 2^H map
    per input word per pass (`QRNNCell.transfer_tables`; fastest for small workspaces, O(2^I 4^H) memory),
    "statevector" applies the neurons one by one to the B x 2^H amplitudes (`qrnn.statevector_sequence`;
    O(B 2^H) per neuron), and "auto" picks by a cost model of the shapes (`choose_method`).
    """

    def __init__(
        self,
        input_size: int,
        workspace_size: int,
        stages: int,
        order: int = 2,
        degree: int = 2,
        bias: float = math.pi / 2,
        method: str = "auto",
    ) -> None:
        super().__init__()
        if method not in METHODS:
            raise QRNNError(f"method must be one of {', '.join(METHODS)}, got {method!r}")
        self.cell = QRNNCell(input_size, workspace_size, stages, order, degree, bias)
        self.method = method

    @property
    def config(self) -> dict[str, Any]:
        """The constructor arguments, as plain data."""
        c = self.cell
        return {
            "input_size": c.input_size,
            "workspace_size": c.workspace_size,
            "stages": c.stages,
            "order": c.order,
            "degree": c.degree,
            "bias": c.bias,
        }

    @property
    def num_qubits(self) -> int:
        """Qubits the simulation tracks: the I/O and workspace lanes."""
        return self.cell.input_size + self.cell.workspace_size

    @property
    def hardware_qubits(self) -> int:
        """Qubits a quantum computer needs: I/O, workspace and the `order` ancillas the neurons share."""
        return self.num_qubits + self.cell.order

    def extra_repr(self) -> str:
        return ", ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}" for k, v in self.config.items())

    @torch.no_grad()
    def reset_parameters(
        self,
        bias_spread: float = 0.1,
        weights_spread: float = 0.01,
        unitaries_spread: float = 0.01,
        generator: torch.Generator | None = None,
    ) -> None:
        """The original's initialisation: neuron thetas ~ N(0, bias_spread), neuron weights ~ N(0,
        weights_spread), rY angles ~ N(0, unitaries_spread); a spread below 1e-10 means the constant 0.
        Draws happen on the CPU in a fixed order, so a seed gives the same model on every device and shard."""

        def draw(parameter: torch.Tensor, spread: float) -> None:
            if spread < 1e-10:
                parameter.zero_()
                return
            values = torch.randn(parameter.shape, generator=generator, dtype=torch.float64) * spread
            parameter.copy_(values.to(parameter.dtype))

        for name, parameter in self.cell.named_parameters():
            if name.endswith(".theta"):
                draw(parameter, bias_spread)
            elif name.endswith(".weights"):
                draw(parameter, weights_spread)
            else:
                draw(parameter, unitaries_spread)

    # ---- the original implementation's parameter names ----

    def original_parameter_names(self) -> dict[str, str]:
        """The original implementation's name of every parameter -> its name here (`named_parameters`)."""
        names: dict[str, str] = {}
        for j in range(self.cell.workspace_size):
            names[f"cell.input_layer.{j}.φ"] = f"cell.input_stage.{j}.weights"
            names[f"cell.input_layer.{j}.θ"] = f"cell.input_stage.{j}.theta"
        for s in range(self.cell.stages):
            names[f"cell.kernel_layer.{s}.0.θs"] = f"cell.work_stages.{s}.rotations"
            for j in range(self.cell.workspace_size):
                names[f"cell.kernel_layer.{s}.{j + 1}.φ"] = f"cell.work_stages.{s}.neurons.{j}.weights"
                names[f"cell.kernel_layer.{s}.{j + 1}.θ"] = f"cell.work_stages.{s}.neurons.{j}.theta"
        for j in range(self.cell.input_size):
            names[f"cell.output_layer.{j}.φ"] = f"cell.output_stage.{j}.weights"
            names[f"cell.output_layer.{j}.θ"] = f"cell.output_stage.{j}.theta"
        return names

    def original_state_dict(self) -> dict[str, torch.Tensor]:
        """The parameters under the original implementation's names (detached copies)."""
        ours = dict(self.named_parameters())
        return {old: ours[new].detach().clone() for old, new in self.original_parameter_names().items()}

    def load_original_state_dict(self, state_dict: dict[str, torch.Tensor]) -> None:
        """Load parameters named as in the original implementation, with or without a leading `module.` (as
        its DDP checkpoints have them). Errors name the first missing, unexpected or mis-shaped entry."""
        stripped = {(k[len("module.") :] if k.startswith("module.") else k): v for k, v in state_dict.items()}
        names = self.original_parameter_names()
        ours = dict(self.named_parameters())
        for old in names:
            if old not in stripped:
                raise QRNNError(f"original state dict is missing {old!r} (model {self.extra_repr()})")
        for old in stripped:
            if old not in names:
                raise QRNNError(f"original state dict has unexpected entry {old!r} (model {self.extra_repr()})")
        for old, new in names.items():
            value = torch.as_tensor(stripped[old])
            if value.shape != ours[new].shape:
                raise QRNNError(
                    f"original state dict entry {old!r} has shape {tuple(value.shape)}, "
                    f"expected {tuple(ours[new].shape)}"
                )
        with torch.no_grad():
            for old, new in names.items():
                ours[new].copy_(torch.as_tensor(stripped[old]))

    # ---- running sequences ----

    def estimate_memory_bytes(self, batch: int, length: int, method: str | None = None) -> int:
        """Bytes a forward and backward pass of this size holds at its peak (an upper estimate), for `method`
        ("kernel" or "statevector"; default: the one `choose_method` picks)."""
        method = method or self.choose_method(batch, length)
        itemsize = self.cell.output_stage[0].weights.element_size()
        c = self.cell
        words, width = 2**c.input_size, 2**c.workspace_size
        neurons = (1 + c.stages) * c.workspace_size
        # The output neurons' tables, their intermediates and gradients, and the readout.
        readout = 8 * c.input_size * words * width * itemsize
        if method == "kernel":
            # Saved per step: the sorted input states, outputs, kernel products and their gradients (5 vectors
            # of 2^H), the outcome weights, probabilities and their gradients (4 of 2^I), and three index rows.
            per_step = batch * (5 * width + 4 * words) * itemsize + 3 * batch * 8
            # The kernel construction keeps every intermediate kernel (one per rotation or layer) for its
            # backward.
            operations = neurons + c.stages * c.workspace_size
            tables = (operations + 4) * words * width * width * itemsize
            return length * per_step + tables + readout
        # Saved per step: the input state, the outcome weights, probabilities and their gradients, indices.
        per_step = batch * (width + 4 * words) * itemsize + 3 * batch * 8
        # One step's working set in the backward pass: every rotation's input, the step's gathered neuron
        # coefficients and their gradients (2 x #neurons states), and a few more states; and the cache of every
        # step's rotation inputs where it is small enough.
        rotations = neurons + c.stages * c.workspace_size
        working = (rotations + 2 * neurons + 8) * batch * width * itemsize
        cache = length * (rotations + 1) * batch * width * itemsize
        working += cache if cache <= HISTORY_CACHE_BYTES else 0
        # The neuron tables (2^I x 2^(H-1) each): eta, cos^m, sin^m and their gradients, with the temporaries
        # of building them, and the copies of cos^m, sin^m and their gradients reordered for the path's layouts.
        tables = 14 * neurons * words * (width // 2) * itemsize
        return length * per_step + working + tables + readout

    def estimate_cost(self, batch: int, length: int, method: str) -> float:
        """A relative cost of a training step (forward and backward) by `method`: elementwise operations on
        single numbers, with matrix products and the fixed cost of each tensor operation in the same unit
        (fitted to timings on a 2-core CPU; only the comparison between methods matters)."""
        c = self.cell
        X, W, H, S = 2**c.input_size, 2**c.workspace_size, c.workspace_size, c.stages
        steps = length - 1
        neurons = (1 + S) * H
        tables = neurons * X * (W // 2) * (c.input_size + H + 12)
        if method == "kernel":
            dense = W <= 256
            rotations = neurons + (0 if dense else S * H)
            build = 6 * X * W * W * rotations + (S * X * W**3 * _MATMUL_COST if dense else 0)
            build += _OPERATION_COST * 20 * (rotations + S)
            # One product with a kernel forward and one backward per step and sample, and the kernels' gradient.
            apply = 3 * steps * batch * W * W * _MATMUL_COST + steps * _OPERATION_COST * (20 + 4 * min(X, batch))
            return tables + build + apply
        rotations = neurons + S * H
        per_step = rotations * (14 * batch * W + 26 * _OPERATION_COST) + 40 * _OPERATION_COST
        return tables + steps * per_step

    def choose_method(self, batch: int, length: int) -> str:
        """The method a pass of this size runs: `self.method`, or for "auto" the cheaper by `estimate_cost`
        among those that fit in the free memory (the cheaper one when neither fits)."""
        if self.method != "auto":
            return self.method
        ranked = sorted(("kernel", "statevector"), key=lambda m: self.estimate_cost(batch, length, m))
        available = available_memory(self.cell.readout_bit.device)
        if available is not None:
            for method in ranked:
                if self.estimate_memory_bytes(batch, length, method) <= available:
                    return method
        return ranked[0]

    def _check_memory(self, batch: int, length: int, device: torch.device, method: str, members: int = 1) -> None:
        need = members * self.estimate_memory_bytes(batch, length, method)
        available = available_memory(device)
        if available is not None and need > available:
            pool = f"a pool of {members} models x " if members > 1 else ""
            raise QRNNError(
                f"a pass over {pool}batch {batch} x length {length} by the {method} method needs about "
                f"{need / 2**30:.1f} GiB, but only {available / 2**30:.1f} GiB is free on {device}; use a smaller "
                f"{'pool, ' if members > 1 else ''}batch or shorter sequences"
            )

    def forward(
        self,
        inputs: torch.Tensor,
        targets: torch.Tensor,
        postselect: Postselect = True,
        generator: torch.Generator | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor, float]:
        """Run sequences. `inputs`, `targets`: integer bits, B x L x I (or L x I). Step t feeds `inputs[:, t]`
        and measures the word compared with `targets[:, t + 1]`.

        `postselect`: True (postselect every step on the target: training), False (sample every step), or a
        callable `(step, targets_at_step) -> bool tensor B` choosing per sample which steps are postselected.
        Sampling draws from `generator`. Returns `probs` (B x 2^I x (L-1), the distribution over the I/O word
        after each step, lane 0 the most significant bit), `measured` (B x (L-1) x I, the words postselected or
        sampled) and the smallest probability of a postselected word (1.0 if none was postselected).
        This is `run_pool` with a pool of one.
        """
        unbatched = inputs.dim() == 2
        inputs, targets = check_sequences(inputs, targets, self.cell.input_size)
        generators = None if generator is None else [generator]
        probs, measured, minimum = run_pool([self], inputs.unsqueeze(0), targets.unsqueeze(0), postselect, generators)
        if unbatched:
            return probs[0, 0], measured[0, 0], float(minimum[0])
        return probs[0], measured[0], float(minimum[0])

    def _statevector_pass(
        self, words: torch.Tensor, targets: torch.Tensor, postselected: torch.Tensor, uniforms: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        c = self.cell
        neuron_cos, neuron_sin = c.workspace_tables(rescale=True)
        if c.stages:
            angles = torch.cat([stage.rotations for stage in c.work_stages])
        else:
            angles = neuron_cos.new_zeros(0)
        program = rotation_program(c.workspace_size, c.stages, c.order)
        return StatevectorSequence.apply(
            neuron_cos,
            neuron_sin,
            layer_block_matrices(angles, c.workspace_size),
            c.readout_table(rescale=True),
            words,
            targets,
            postselected,
            uniforms,
            program,
        )


def stack_parameters(members: Sequence[nn.Module]) -> dict[str, torch.Tensor]:
    """The members' parameters stacked along a leading member axis, by name (differentiable: gradients flow back
    to each member's own parameters)."""
    tables = [dict(member.named_parameters()) for member in members]
    return {name: torch.stack([table[name] for table in tables]) for name in tables[0]}


class ParameterPool:
    """The parameters of a pool's members as ONE leaf tensor `flat` (P x N: member p's parameters flattened and
    laid end to end, in `named_parameters` order), each member's parameter aliasing its piece of row p
    (`param.data` becomes a view of the flat storage).

    A pooled pass reads per-name views of the leaf (`stacked`: one `split`, so autograd gathers the gradient
    with one concatenation), and the rest of a step works on one tensor for all members and names: the
    gradient is one P x N tensor, clipping scales it once, and an optimizer over the pool's rows steps one tensor
    (an optimizer's update is elementwise, so each member still gets exactly its own optimizer's numbers). Each
    member keeps its own `nn.Parameter` objects: its own optimizer can update them in place (and so the flat
    storage), and `state_dict`, `load_state_dict` and checkpoints work as for a lone model. After a backward pass,
    `distribute_gradients` gives each member's parameters their pieces of the flat gradient.
    Set it up after the members have their final dtype and device (`.to` would break the aliasing).
    """

    def __init__(self, members: Sequence[nn.Module]) -> None:
        check_pool(members)
        self.members = list(members)
        if _dtype_and_device(self.members[0])[1].type == "cpu":
            # A pool's passes allocate and free tens of megabytes per step: keep that memory mapped.
            retain_freed_memory()
        tables = [dict(member.named_parameters()) for member in self.members]
        self.names = list(tables[0])
        self.member_parameters = [[table[name] for name in self.names] for table in tables]
        self.shapes = [tuple(parameter.shape) for parameter in self.member_parameters[0]]
        self.sizes = [math.prod(shape) for shape in self.shapes]
        with torch.no_grad():
            self.flat = torch.stack([
                torch.cat([parameter.detach().reshape(-1) for parameter in row]) for row in self.member_parameters
            ]).requires_grad_()
            for p, row in enumerate(self.member_parameters):
                for parameter, piece in zip(row, self.split(self.flat.detach()[p : p + 1]), strict=True):
                    parameter.data = piece[0]

    def split(self, rows: torch.Tensor) -> list[torch.Tensor]:
        """Per-name views (R x shape, in `names` order) of R rows laid out as `flat` (its values, gradient or an
        optimizer state)."""
        pieces = rows.split(self.sizes, dim=1)
        return [piece.view(rows.shape[0], *shape) for piece, shape in zip(pieces, self.shapes, strict=True)]

    @property
    def stacked(self) -> dict[str, torch.Tensor]:
        """The members' parameters by name with a leading member axis: differentiable views of `flat`."""
        return dict(zip(self.names, self.split(self.flat), strict=True))

    def zero_grad(self) -> None:
        """Clear the flat and the members' gradients."""
        self.flat.grad = None
        for row in self.member_parameters:
            for parameter in row:
                if parameter.grad is not None:
                    parameter.grad = None

    def distribute_gradients(self) -> None:
        """Each member parameter's gradient: a view of its piece of the flat gradient. Where a pass used the
        members' own parameters instead (the statevector path runs member by member), their gradients stay."""
        if self.flat.grad is None:
            return
        for index, grads in enumerate(self.split(self.flat.grad)):
            for p, row in enumerate(self.member_parameters):
                row[index].grad = grads[p]


def pool_chunks(model: nn.Module, members: int, batch: int, length: int) -> list[tuple[int, int]]:
    """The runs of members (start, end) that a pool's training step computes one after another, forward and
    backward: on the CPU as many members each as fit in about POOL_CHUNK_BYTES of working memory (all of them
    for the paper's small models, one at a time for MNIST's), on a GPU as many as half its free memory holds."""
    estimate = getattr(model, "estimate_memory_bytes", None)
    if estimate is None:
        return [(0, members)]
    need = max(1, estimate(batch, length))
    device = next(model.parameters()).device
    if device.type == "cuda":
        # A GPU wants the whole pool at once: as many members as half its free memory holds.
        budget = available_memory(device) or need * members
        size = max(1, budget // 2 // need)
    else:
        size = max(1, POOL_CHUNK_BYTES // need)
    # As few chunks as that allows, of sizes as even as can be (31 members at 30 a chunk: 16 and 15, not 30 and 1).
    count = -(-members // size)
    bounds = [members * k // count for k in range(count + 1)]
    return list(zip(bounds[:-1], bounds[1:], strict=True))


def check_pool(members: Sequence[nn.Module]) -> None:
    """One-line errors unless `members` are models that can run as one pool: at least one, all of the same
    class, configuration (topology), dtype and device."""
    if not members:
        raise QRNNError("a pool needs at least one model")
    facts = [(type(m).__name__, getattr(m, "config", None), *_dtype_and_device(m)) for m in members]
    for index, fact in enumerate(facts[1:], start=1):
        if fact != facts[0]:
            raise QRNNError(
                f"pool member {index} ({fact[0]} {fact[1]}, {fact[2]}, {fact[3]}) differs from member 0 "
                f"({facts[0][0]} {facts[0][1]}, {facts[0][2]}, {facts[0][3]}): members share the model, its "
                "configuration, dtype and device"
            )


def _dtype_and_device(model: nn.Module) -> tuple[torch.dtype, torch.device]:
    parameter = next(model.parameters())
    return parameter.dtype, parameter.device


def run_pool(
    members: Sequence[QRNN],
    inputs: torch.Tensor,
    targets: torch.Tensor,
    postselect: Postselect = True,
    generators: Sequence[torch.Generator | None] | None = None,
    parameters: ParameterPool | dict[str, torch.Tensor] | None = None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Run P models of the same topology as one pool: member p's sequences `inputs[p]`, `targets[p]` (P x B x L x
    I bits, the same B and L for all) through member p's parameters, in one pass whose tensors carry a leading
    member axis (the members' parameters are stacked for it, so each keeps its own parameters, gradients and
    optimizer). Member p's results equal `members[p](inputs[p], targets[p], ...)`.

    `postselect` as in `QRNN.forward`, a callable seeing the P B samples member-major; `generators`: one per
    member (or None) for the sampled steps. `parameters`: the members' `ParameterPool` (or its stacked tensors, or
    slices of them along the member axis for these members), if they have one: then the pass reads those, and
    gradients land in the pool's flat leaf; else it stacks the members' parameters, and gradients flow back to
    each. Returns `probs` (P x B x 2^I x (L-1)), `measured` (P x B x (L-1) x
    I) and each member's smallest postselection probability (P).
    """
    if parameters is None:
        # A ParameterPool checked its members when it was made (and its tensors are what this pass reads).
        check_pool(members)
    first = members[0]
    cell = first.cell
    if inputs.dim() != 4 or targets.dim() != 4 or inputs.shape[0] != len(members):
        raise QRNNError(
            f"a pool of {len(members)} models takes inputs and targets of shape {len(members)} x B x L x "
            f"{cell.input_size}, got {tuple(inputs.shape)} and {tuple(targets.shape)}"
        )
    size, batch, length = inputs.shape[:3]
    flat_inputs, flat_targets = check_sequences(
        inputs.reshape(size * batch, length, -1), targets.reshape(size * batch, length, -1), cell.input_size
    )
    device = cell.readout_bit.device
    method = first.choose_method(batch, length)
    first._check_memory(batch, length, device, method, members=size)
    words = bits_to_int(flat_inputs[:, :-1]).T.contiguous().to(device)
    target_words = bits_to_int(flat_targets[:, 1:]).T.contiguous().to(device)
    postselected = postselection_mask(postselect, flat_targets, device)
    dtype = cell.output_stage[0].weights.dtype
    if generators is not None and len(generators) != size:
        raise QRNNError(f"a pool of {size} models takes {size} generators, got {len(generators)}")
    if bool(postselected.all()):
        uniforms = torch.empty(0, dtype=dtype, device=device)
    else:
        streams = generators if generators is not None else [None] * size
        uniforms = torch.cat([sampling_uniforms(length - 1, batch, g, device, dtype) for g in streams], dim=1)
    if method == "kernel":
        if parameters is None and size == 1:
            kernels, readout = cell(True)
        else:
            if parameters is None:
                stacked = stack_parameters(members)
            else:
                stacked = parameters.stacked if isinstance(parameters, ParameterPool) else parameters
            prefix = "cell."
            # A pool of one reads its parameters without the member axis, exactly as the lone model does.
            cell_parameters = {
                name[len(prefix) :]: value[0] if size == 1 else value for name, value in stacked.items()
            }
            kernels, readout = torch.func.functional_call(cell, cell_parameters, (True,))
        probs, measured, minimum = _SequenceFunction.apply(
            kernels, readout, words, target_words, postselected, uniforms
        )
    else:
        # The statevector path runs member by member: it is chosen for large workspaces, where one member's
        # pass already fills the machine.
        parts = []
        for p, member in enumerate(members):
            columns = slice(p * batch, (p + 1) * batch)
            member_uniforms = uniforms[:, columns] if uniforms.numel() else uniforms
            parts.append(member._statevector_pass(
                words[:, columns], target_words[:, columns], postselected[:, columns], member_uniforms
            ))
        probs = torch.cat([part[0] for part in parts])
        measured = torch.cat([part[1] for part in parts], dim=1)
        minimum = torch.stack([part[2] for part in parts])
    measured_bits = int_to_bits(measured.T, cell.input_size)
    return (
        probs.view(size, batch, *probs.shape[1:]),
        measured_bits.view(size, batch, *measured_bits.shape[1:]),
        minimum.detach(),
    )


def available_memory(device: torch.device) -> int | None:
    """Free memory on `device` in bytes, or None where it cannot be told."""
    if device.type == "cuda":
        return torch.cuda.mem_get_info(device)[0]
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None
