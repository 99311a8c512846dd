"""Operations on batches of real statevectors.

A batch of states over n lanes (qubits) is a tensor of shape (B, 2, ..., 2) with one axis per lane, lane 0 first;
read as an integer, lane 0 is the most significant bit. Nothing here loops over the batch.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import torch

from qrnn.gates import Gate, Operation, Postselect


def zero_state(
    num_lanes: int, batch: int, dtype: torch.dtype = torch.float32, device: torch.device | str | None = None
) -> torch.Tensor:
    """B copies of |0...0> over `num_lanes` lanes."""
    state = torch.zeros((batch,) + (2,) * num_lanes, dtype=dtype, device=device)
    state.view(batch, -1)[:, 0] = 1
    return state


def num_lanes(state: torch.Tensor) -> int:
    """The number of lanes of a batched lane-tensor state."""
    return state.dim() - 1


def apply_matrix(
    state: torch.Tensor, matrix: torch.Tensor, target: int, controls: Sequence[int] = ()
) -> torch.Tensor:
    """Apply the 2x2 `matrix` on lane `target` of every state, on the part where all `controls` lanes are 1."""
    axis = target + 1
    moved = state.movedim(axis, -1)
    new = moved @ matrix.to(state.dtype).T
    if controls:
        mask = torch.zeros((2,) * num_lanes(state), dtype=torch.bool, device=state.device)
        index: list[slice | int] = [slice(None)] * num_lanes(state)
        for lane in controls:
            index[lane] = 1
        mask[tuple(index)] = True
        mask = mask.movedim(target, -1).unsqueeze(0)
        new = torch.where(mask, new, moved)
    return new.movedim(-1, axis)


def apply_rotation_table(
    state: torch.Tensor, target: int, cos_table: torch.Tensor, sin_table: torch.Tensor
) -> torch.Tensor:
    """Apply [[c, -s], [s, c]] on lane `target`, with c and s depending on the other lanes.

    `cos_table` and `sin_table` broadcast against `state` and have size 1 on the target's axis. This one kernel
    is a quantum neuron (c = cos(eta)^m, s = sin(eta)^m as tables over the source lanes) and an rY layer
    (constants), unnormalised.
    """
    axis = target + 1
    shape = [1] * state.dim()
    shape[axis] = 2
    sign = torch.tensor([-1.0, 1.0], dtype=state.dtype, device=state.device).view(shape)
    return cos_table * state + (sin_table * sign) * state.flip(axis)


def flip_lanes(state: torch.Tensor, lanes: Sequence[int], bits: torch.Tensor) -> torch.Tensor:
    """Apply X on lane `lanes[i]` of sample b where `bits[b, i]` is 1 (a classical word written per sample)."""
    batch = state.shape[0]
    for i, lane in enumerate(lanes):
        flip = bits[:, i].bool().view((batch,) + (1,) * num_lanes(state))
        state = torch.where(flip, state.flip(lane + 1), state)
    return state


def normalize(state: torch.Tensor) -> torch.Tensor:
    """Each state divided by its norm."""
    norms = state.reshape(state.shape[0], -1).norm(dim=1)
    return state / norms.view((-1,) + (1,) * num_lanes(state))


def project(state: torch.Tensor, lane: int, value: torch.Tensor | int) -> tuple[torch.Tensor, torch.Tensor]:
    """Project lane `lane` onto `value` (an int, or one per sample) and renormalise.

    Returns the projected states and the probability of that outcome, per sample.
    """
    axis = lane + 1
    batch = state.shape[0]
    values = torch.as_tensor(value, device=state.device).expand(batch)
    keep = torch.arange(2, device=state.device).view(1, 2) == values.view(batch, 1)
    shape = [1] * state.dim()
    shape[0], shape[axis] = batch, 2
    projected = state * keep.view(shape).to(state.dtype)
    probability = projected.reshape(batch, -1).pow(2).sum(1) / state.reshape(batch, -1).pow(2).sum(1)
    return normalize(projected), probability


def marginal_probabilities(state: torch.Tensor, lanes: Sequence[int]) -> torch.Tensor:
    """The distribution over the word on `lanes` (B x 2^len(lanes)), the first lane most significant."""
    n = num_lanes(state)
    others = [lane + 1 for lane in range(n) if lane not in lanes]
    squared = state.pow(2)
    if others:
        squared = squared.sum(dim=others)
    # The remaining axes are in ascending lane order; put them in the requested order.
    order = sorted(lanes)
    squared = squared.permute([0] + [order.index(lane) + 1 for lane in lanes])
    flat = squared.reshape(state.shape[0], -1)
    return flat / flat.sum(1, keepdim=True)


def run_circuit(state: torch.Tensor, operations: Iterable[Operation]) -> torch.Tensor:
    """Apply a circuit (gates and postselections, in order) to a batch of states; renormalise at the end."""
    for operation in operations:
        if isinstance(operation, Gate):
            state = apply_matrix(state, operation.matrix(state.dtype), operation.target, operation.controls)
        elif isinstance(operation, Postselect):
            state, _ = project(state, operation.lane, operation.value)
        else:
            raise TypeError(f"not a circuit operation: {operation!r}")
    return normalize(state)
