"""The quantum neuron: its closed form against the definition and against the explicit circuit."""

from __future__ import annotations

import itertools
import math

import pytest
import torch

from qrnn.gates import Gate, Postselect
from qrnn.neuron import QuantumNeuron, monomial_table, num_weights, source_subsets
from qrnn.statevector import normalize, run_circuit

DTYPE = torch.float64


def random_neuron(target: int, sources: list[int], order: int, degree: int, seed: int) -> QuantumNeuron:
    neuron = QuantumNeuron(target, sources, order=order, degree=degree).to(DTYPE)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        neuron.weights.copy_(torch.randn(neuron.weights.shape, generator=generator, dtype=DTYPE))
        neuron.theta.copy_(torch.randn((), generator=generator, dtype=DTYPE))
    return neuron


def test_monomials_follow_the_original_order() -> None:
    assert source_subsets(3, 2) == ((0,), (1,), (2,), (0, 1), (0, 2), (1, 2))
    assert num_weights(5, 2) == 15 and num_weights(4, 3) == 14
    table = monomial_table(3, 2, DTYPE)
    # configuration 0b110: source 0 = 1, source 1 = 1, source 2 = 0
    assert table[0b110].tolist() == [1, 1, 0, 1, 0, 0]


def test_closed_form_matches_the_definition() -> None:
    """Amplitudes by the formula, computed configuration by configuration with plain Python floats."""
    sources = [2, 0, 3]
    neuron = random_neuron(1, sources, order=2, degree=2, seed=3)
    lanes = 4
    state = normalize(torch.randn((1,) + (2,) * lanes, generator=torch.Generator().manual_seed(4), dtype=DTYPE))
    result = neuron.apply(state)[0]
    expected = torch.zeros((2,) * lanes, dtype=DTYPE)
    weights = neuron.weights.tolist()
    for bits in itertools.product((0, 1), repeat=lanes):
        source_bits = [bits[lane] for lane in sources]
        total = sum(
            w * math.prod(source_bits[i] for i in subset)
            for w, subset in zip(weights, source_subsets(3, 2), strict=True)
        )
        eta = 0.5 * (total + neuron.theta.item() + math.pi / 2)
        c, s = math.cos(eta) ** 4, math.sin(eta) ** 4
        a0 = state[0][bits[:1] + (0,) + bits[2:]].item()
        a1 = state[0][bits[:1] + (1,) + bits[2:]].item()
        expected[bits] = c * a0 - s * a1 if bits[1] == 0 else c * a1 + s * a0
    assert torch.allclose(result, expected / expected.norm(), atol=1e-14)


@pytest.mark.parametrize("order", [1, 2, 3])
@pytest.mark.parametrize("degree", [1, 2, 3])
def test_explicit_circuit_equals_closed_form(order: int, degree: int) -> None:
    lanes = 4
    neuron = random_neuron(1, [2, 3, 0], order, degree, seed=10 * order + degree)
    generator = torch.Generator().manual_seed(order + 7 * degree)
    state = normalize(torch.randn((3,) + (2,) * lanes, generator=generator, dtype=DTYPE))
    fast = neuron.apply(state)
    register = torch.zeros((3,) + (2,) * (lanes + order), dtype=DTYPE)
    register[(slice(None),) * (lanes + 1) + (0,) * order] = state
    circuit = neuron.circuit(list(range(lanes, lanes + order)))
    out = run_circuit(register, circuit)
    # All ancillas end in |0>, and the register holds exactly the closed form's state.
    assert torch.allclose(out[(slice(None),) * (lanes + 1) + (0,) * order], fast, atol=1e-12)
    assert torch.allclose(out.reshape(3, -1).norm(dim=1), torch.ones(3, dtype=DTYPE), atol=1e-12)


def test_circuit_structure() -> None:
    neuron = random_neuron(0, [1, 2], order=2, degree=2, seed=1)
    circuit = neuron.circuit([3, 4])
    rotations = [op for op in circuit if isinstance(op, Gate) and op.name == "ry"]
    # Level 1 appears twice (in the level-2 preparation and in its inverse), each with its own inverse:
    # 4 x (1 bias + 3 monomials) rotations, plus the inverse of level 1's -iY, which is rY(-pi).
    assert len(rotations) == 4 * (1 + 3) + 1
    assert sum(1 for op in rotations if op.controls == (3,) and op.target == 4) == 1
    assert [op for op in circuit if isinstance(op, Gate) and op.name == "neg_iy"] == [
        Gate("neg_iy", 4, (3,)),
        Gate("neg_iy", 0, (4,)),
    ]
    assert isinstance(circuit[-1], Postselect) and circuit[-1].lane == 4
    with pytest.raises(ValueError):
        neuron.circuit([3])
