"""Gates and statevector operations against exact matrices."""

from __future__ import annotations

import math

import torch

from qrnn.gates import Gate, Postselect, neg_iy_matrix, ry_matrix, x_matrix
from qrnn.statevector import (
    apply_matrix,
    apply_rotation_table,
    flip_lanes,
    marginal_probabilities,
    normalize,
    project,
    run_circuit,
    run_rotation_program,
    zero_state,
)

DTYPE = torch.float64


def full_operator(matrix: torch.Tensor, target: int, controls: tuple[int, ...], lanes: int) -> torch.Tensor:
    """The 2^n x 2^n matrix of a controlled single-qubit gate, built entry by entry (lane 0 the top bit)."""
    size = 2**lanes
    operator = torch.zeros(size, size, dtype=DTYPE)
    for column in range(size):
        bits = [(column >> (lanes - 1 - lane)) & 1 for lane in range(lanes)]
        if not all(bits[c] for c in controls):
            operator[column, column] = 1
            continue
        for value in (0, 1):
            row_bits = list(bits)
            row_bits[target] = value
            row = sum(b << (lanes - 1 - lane) for lane, b in enumerate(row_bits))
            operator[row, column] += matrix[value, bits[target]]
    return operator


def random_states(batch: int, lanes: int, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return normalize(torch.randn((batch,) + (2,) * lanes, generator=generator, dtype=DTYPE))


def test_exact_gate_matrices() -> None:
    assert torch.allclose(
        ry_matrix(math.pi / 3), torch.tensor([[math.cos(math.pi / 6), -0.5], [0.5, math.cos(math.pi / 6)]], dtype=DTYPE)
    )
    assert torch.allclose(ry_matrix(math.pi), neg_iy_matrix(), atol=1e-15)
    assert torch.equal(x_matrix() @ x_matrix(), torch.eye(2, dtype=DTYPE))
    state = ry_matrix(0.8) @ torch.tensor([1.0, 0.0], dtype=DTYPE)
    assert torch.allclose(state, torch.tensor([math.cos(0.4), math.sin(0.4)], dtype=DTYPE))
    for gate in (Gate("ry", 0, (), 0.3), Gate("x", 0), Gate("neg_iy", 0)):
        assert torch.allclose(gate.inverse().matrix() @ gate.matrix(), torch.eye(2, dtype=DTYPE), atol=1e-15)


def test_apply_matrix_matches_full_operator() -> None:
    lanes = 4
    states = random_states(3, lanes)
    matrix = ry_matrix(0.7)
    for target, controls in [(0, ()), (2, ()), (3, (0,)), (1, (0, 3)), (2, (1, 3, 0))]:
        expected = states.reshape(3, -1) @ full_operator(matrix, target, controls, lanes).T
        actual = apply_matrix(states, matrix, target, controls).reshape(3, -1)
        assert torch.allclose(actual, expected, atol=1e-14), (target, controls)


def test_rotation_table_matches_controlled_rotations() -> None:
    # A table that depends on lane 0 only equals two controlled rotations.
    lanes = 3
    states = random_states(2, lanes, seed=1)
    angles = torch.tensor([0.4, 1.3], dtype=DTYPE)
    cos_table = torch.cos(angles / 2).view(2, 1, 1)
    sin_table = torch.sin(angles / 2).view(2, 1, 1)
    actual = apply_rotation_table(states, 2, cos_table, sin_table)
    expected = apply_matrix(states, x_matrix(), 0)
    expected = apply_matrix(expected, ry_matrix(angles[0]), 2, (0,))
    expected = apply_matrix(expected, x_matrix(), 0)
    expected = apply_matrix(expected, ry_matrix(angles[1]), 2, (0,))
    assert torch.allclose(actual, expected, atol=1e-14)


def test_flip_project_and_marginals() -> None:
    lanes = 3
    states = zero_state(lanes, 2, DTYPE)
    flipped = flip_lanes(states, [0, 2], torch.tensor([[1, 0], [1, 1]]))
    assert flipped.reshape(2, -1).argmax(1).tolist() == [0b100, 0b101]
    superposed = apply_matrix(states, ry_matrix(2 * math.atan(math.sqrt(3))), 1)  # p(lane1 = 1) = 3/4
    distribution = marginal_probabilities(superposed, [1])
    assert torch.allclose(distribution, torch.tensor([[0.25, 0.75]] * 2, dtype=DTYPE))
    projected, probability = project(superposed, 1, torch.tensor([0, 1]))
    assert torch.allclose(probability, torch.tensor([0.25, 0.75], dtype=DTYPE))
    assert projected.reshape(2, -1).argmax(1).tolist() == [0b000, 0b010]
    # Marginals in a requested lane order: lane 2 then lane 0.
    word = flip_lanes(states, [2], torch.tensor([[1], [0]]))
    assert marginal_probabilities(word, [2, 0])[0].tolist() == [0.0, 0.0, 1.0, 0.0]


def test_run_circuit_postselects_and_renormalises() -> None:
    states = zero_state(2, 1, DTYPE)
    circuit = [Gate("ry", 0, (), 2 * math.pi / 3), Gate("x", 1, (0,)), Postselect(0, 1)]
    out = run_circuit(states, circuit)
    assert torch.allclose(out.reshape(-1), torch.tensor([0, 0, 0, 1.0], dtype=DTYPE))


def test_rotation_program_matches_gate_by_gate_and_gradcheck() -> None:
    lanes, groups = 3, 2
    width = 2**lanes
    generator = torch.Generator().manual_seed(5)
    cos_tables = torch.rand(3, groups, width // 2, generator=generator, dtype=DTYPE, requires_grad=True)
    sin_tables = torch.rand(3, groups, width // 2, generator=generator, dtype=DTYPE, requires_grad=True)
    dense = torch.rand(1, width, width, generator=generator, dtype=DTYPE, requires_grad=True)
    program = [("rotate", 0, 0), ("rotate", 1, 2), ("dense", 0, -1), ("rotate", 2, 1)]
    columns = torch.rand(groups, width, 3, generator=generator, dtype=DTYPE)
    result = run_rotation_program(columns, program, cos_tables, sin_tables, dense)
    # The same by the lane-tensor kernel, one group at a time (states as a batch of lane tensors).
    for g in range(groups):
        states = columns[g].T.reshape((3,) + (2,) * lanes)
        for kind, index, lane in program:
            if kind == "dense":
                states = (states.reshape(3, -1) @ dense[index].T).reshape(states.shape)
                continue
            shape = [2] * lanes
            shape[lane] = 1
            states = apply_rotation_table(
                states, lane, cos_tables[index, g].reshape(shape), sin_tables[index, g].reshape(shape)
            )
        assert torch.allclose(result[g], states.reshape(3, -1).T, atol=1e-13)
    assert torch.autograd.gradcheck(
        lambda c, s, d: run_rotation_program(columns, program, c, s, d), (cos_tables, sin_tables, dense)
    )
