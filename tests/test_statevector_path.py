"""The statevector path's parts: the neuron angle tables by subset sums, and the rotation program of a step.
(The path as a whole is tested against the kernel path, the gate-by-gate simulation and the reference vectors in
test_model.py and test_reference_vectors.py.)"""

from __future__ import annotations

import math

import pytest
import torch

from qrnn.errors import QRNNError
from qrnn.neuron import monomial_table, neuron_angles, source_subsets, subset_positions, subset_sum_angles
from qrnn.statevector_sequence import renormalise_every, rotation_program

DTYPE = torch.float64


@pytest.mark.parametrize("num_sources,degree", [(1, 1), (3, 2), (5, 3), (6, 6), (7, 2)])
def test_subset_sums_equal_the_monomial_formula(num_sources: int, degree: int) -> None:
    generator = torch.Generator().manual_seed(num_sources * 10 + degree)
    count = len(source_subsets(num_sources, degree))
    weights = torch.randn(4, count, generator=generator, dtype=DTYPE)
    theta = torch.randn(4, generator=generator, dtype=DTYPE)
    direct = neuron_angles(weights, theta, monomial_table(num_sources, degree, DTYPE), 0.3)
    assert torch.allclose(subset_sum_angles(weights, theta, num_sources, degree, 0.3), direct, atol=1e-13)


def test_subset_sums_by_hand_and_their_gradient() -> None:
    # Sources (a, b, c), degree 2: weights in the order a, b, c, ab, ac, bc.
    assert subset_positions(3, 2) == (0b100, 0b010, 0b001, 0b110, 0b101, 0b011)
    weights = torch.tensor([1.0, 2.0, 4.0, 8.0, 16.0, 32.0], dtype=DTYPE, requires_grad=True)
    theta = torch.tensor(64.0, dtype=DTYPE, requires_grad=True)
    eta = subset_sum_angles(weights, theta, 3, 2, 128.0)
    # Configuration 0b110 (a = b = 1, c = 0): theta + bias + w_a + w_b + w_ab.
    assert eta[0b110].item() == 0.5 * (64 + 128 + 1 + 2 + 8)
    assert eta[0b111].item() == 0.5 * (64 + 128 + 1 + 2 + 4 + 8 + 16 + 32)
    eta.sum().backward()
    # d(sum eta)/d w_S = 0.5 x the number of configurations containing S = 0.5 x 2^(3 - |S|).
    assert weights.grad.tolist() == [2.0, 2.0, 2.0, 1.0, 1.0, 1.0] and theta.grad.item() == 4.0


def test_rotation_program_follows_the_cell() -> None:
    program = rotation_program(3, 2, 2)
    kinds = [(kind, index, lane) for kind, index, lane, _ in program]
    assert kinds[:3] == [("neuron", 0, 0), ("neuron", 1, 1), ("neuron", 2, 2)]
    assert kinds[3:9] == [("layer", 0, 0), ("layer", 1, 1), ("layer", 2, 2)] + [("neuron", 3, 0), ("neuron", 4, 1),
                                                                                   ("neuron", 5, 2)]
    assert kinds[9:12] == [("layer", 3, 0), ("layer", 4, 1), ("layer", 5, 2)]
    assert len(program) == 3 * 3 + 2 * 3
    assert not any(renormalise for *_, renormalise in program)  # 9 neurons of order 2 never need it


def test_renormalisation_keeps_float32_in_range() -> None:
    for order in range(1, 9):
        every = renormalise_every(order)
        # The worst case between renormalisations stays far above float32's smallest normal number, 2^-126.
        assert every >= 1 and (every == 1 or every * (2**order - 1) / 2 <= 40)
    program = rotation_program(6, 1, 6)
    flags = [renormalise for kind, _, _, renormalise in program if kind == "neuron"]
    assert flags == [True] * 11 + [False]  # after every neuron but the last (the readout normalises)
    assert math.isclose((2**6 - 1) / 2, 31.5)


def test_training_offers_the_model_methods() -> None:
    from qrnn.model import METHODS
    from qrnn.training.config import METHODS as TRAINING_METHODS
    from qrnn.training.config import TrainConfig, check_config
    from qrnn.training.models import build_model

    assert TRAINING_METHODS == METHODS
    config = TrainConfig(method="statevector")
    check_config(config)
    model = build_model({**config.as_dict(), "input_size": 2})
    assert model.method == "statevector"
    with pytest.raises(QRNNError, match="unknown method 'fast'; valid: auto, kernel, statevector"):
        check_config(TrainConfig(method="fast"))


def test_both_ways_of_building_the_angle_tables_give_the_same_model(monkeypatch: pytest.MonkeyPatch) -> None:
    from qrnn import QRNN

    torch.manual_seed(5)
    inputs = torch.randint(0, 2, (3, 5, 2))
    models = []
    for limit in (2**20, 0):  # the monomial table, then subset sums
        monkeypatch.setattr("qrnn.cell._MONOMIAL_TABLE_MAX_ENTRIES", limit)
        model = QRNN(2, 3, 1, 2, 3).double()
        model.reset_parameters(1.0, 1.0, 1.0, generator=torch.Generator().manual_seed(6))
        models.append(model)
    assert models[0].cell.monomials is not None and models[1].cell.monomials is None
    first, second = (model(inputs, inputs)[0] for model in models)
    assert torch.allclose(first, second, atol=1e-13)


def test_layer_blocks_cover_each_half_of_the_lanes() -> None:
    from qrnn.statevector_sequence import layer_blocks, step_operations

    assert layer_blocks(1) == ((0, 1),)
    assert layer_blocks(12) == ((0, 6), (6, 6))
    assert layer_blocks(16) == ((0, 4), (4, 4), (8, 4), (12, 4))
    assert layer_blocks(15) == ((0, 3), (3, 4), (7, 4), (11, 4))
    # A step: the neurons in the program's order, each layer replaced by its blocks (offsets of 2^g x 2^g
    # matrices, stage by stage).
    operations = step_operations(rotation_program(12, 2, 2), 12)
    blocks = [(index, first, lanes) for kind, index, first, lanes, _ in operations if kind == "block"]
    assert blocks == [(0, 0, 6), (4096, 6, 6), (8192, 0, 6), (12288, 6, 6)]
    assert [kind for kind, *_ in operations[11:15]] == ["neuron", "block", "block", "neuron"]
    assert len(operations) == 3 * 12 + 4


@pytest.mark.parametrize("workspace", [5, 7])
def test_any_layer_block_size_gives_the_kernel_paths_numbers_and_gradients(
    workspace: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    from qrnn import QRNN

    inputs = torch.randint(0, 2, (3, 4, 2), generator=torch.Generator().manual_seed(workspace))
    results = []
    for method, block_lanes in (("kernel", 6), ("statevector", 1), ("statevector", 2), ("statevector", 6)):
        monkeypatch.setattr("qrnn.statevector_sequence._LAYER_BLOCK_LANES", block_lanes)
        model = QRNN(2, workspace, 2, 2, 2, method=method).double()
        model.reset_parameters(1.0, 1.0, 1.0, generator=torch.Generator().manual_seed(9))
        probs = model(inputs, inputs)[0]
        (probs * torch.arange(probs.numel(), dtype=DTYPE).view_as(probs).cos()).sum().backward()
        results.append((probs.detach(), [p.grad.clone() for p in model.parameters()]))
    for probs, grads in results[1:]:
        assert torch.allclose(probs, results[0][0], atol=1e-12)
        for grad, expected in zip(grads, results[0][1], strict=True):
            assert torch.allclose(grad, expected, atol=1e-11)


def _model_and_inputs(method: str, stages: int) -> tuple[object, torch.Tensor]:
    from qrnn import QRNN

    inputs = torch.randint(0, 2, (4, 6, 2), generator=torch.Generator().manual_seed(3))
    model = QRNN(2, 4 if method == "statevector" else 3, stages, 2, 2, method=method).double()
    model.reset_parameters(1.0, 1.0, 1.0, generator=torch.Generator().manual_seed(4))
    return model, inputs


@pytest.mark.parametrize("method,kind", [("statevector", "statevector steps"), ("kernel", "rotation program")])
def test_a_reused_buffer_changes_nothing(method: str, kind: str) -> None:
    # A finished pass offers its buffer (the statevector path's history, the kernel construction's) to the next.
    from qrnn import statevector

    model, inputs = _model_and_inputs(method, 1 if method == "statevector" else 2)

    def run() -> tuple[torch.Tensor, torch.Tensor]:
        model.zero_grad()
        probs = model(inputs, inputs)[0]
        probs.square().sum().backward()
        return probs.detach(), model.cell.work_stages[0].rotations.grad.clone()

    spares = statevector._spare_buffers
    spares.clear()
    fresh = run()
    assert kind in spares
    spares[kind][0].fill_(float("nan"))
    reused = run()
    assert torch.equal(fresh[0], reused[0]) and torch.equal(fresh[1], reused[1])


def test_a_retained_graph_gets_its_kernel_construction_buffer_back_or_refuses() -> None:
    model, inputs = _model_and_inputs("kernel", 2)
    probs = model(inputs, inputs)[0]
    probs.sum().backward(retain_graph=True)
    probs.sum().backward(retain_graph=True)  # no pass took the buffer in between: it comes back
    model(inputs, inputs)[0].sum().backward()  # another pass takes and offers it
    with pytest.raises(RuntimeError, match="second backward pass"):
        probs.sum().backward()
