"""A pool of models is the model with a leading member axis: member p's probabilities, postselection minimum,
loss and gradients equal those of the lone model with member p's parameters."""

from __future__ import annotations

import pytest
import torch
from helpers import REFERENCE_FILES, load_reference, reference_model

from qrnn import QRNN
from qrnn.bits import bits_to_int
from qrnn.errors import QRNNError
from qrnn.loss import original_loss
from qrnn.model import ParameterPool, run_pool

TOLERANCES = {torch.float64: 1e-12, torch.float32: 1e-5}


def _members(count: int, dtype: torch.dtype, method: str, shape=(2, 3, 2), order: int = 2, degree: int = 2):
    members = []
    for seed in range(count):
        model = QRNN(*shape, order=order, degree=degree, method=method).to(dtype)
        # Spreads large enough that every parameter differs between members.
        model.reset_parameters(1.0, 1.0, 1.0, generator=torch.Generator().manual_seed(100 + seed))
        members.append(model)
    return members


def _clones(members):
    clones = []
    for member in members:
        clone = QRNN(**member.config, method=member.method).to(next(member.parameters()).dtype)
        clone.load_state_dict(member.state_dict())
        clones.append(clone)
    return clones


def _relative(actual: torch.Tensor, expected: torch.Tensor) -> float:
    actual, expected = actual.detach(), expected.detach()
    return float((actual - expected).abs().max() / expected.abs().max().clamp_min(1e-300))


@pytest.mark.parametrize("method", ["kernel", "statevector"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("pooled_leaves", [False, True])
@pytest.mark.parametrize("batch", [3, 40])  # 40: the kernel path's padded layout; 3: one product per member
def test_members_equal_lone_models(method: str, dtype: torch.dtype, pooled_leaves: bool, batch: int) -> None:
    tolerance = TOLERANCES[dtype]
    members = _members(4, dtype, method)
    lone = _clones(members)
    pool = ParameterPool(members) if pooled_leaves else None
    generator = torch.Generator().manual_seed(7)
    inputs = torch.randint(0, 2, (4, batch, 6, 2), generator=generator)
    targets = torch.randint(0, 2, (4, batch, 6, 2), generator=generator)
    probs, measured, minimum = run_pool(members, inputs, targets, parameters=pool)
    words = bits_to_int(targets[:, :, 1:])
    sum(original_loss(probs[p], words[p]) for p in range(4)).backward()
    if pool is not None:
        pool.distribute_gradients()
    for p, model in enumerate(lone):
        expected_probs, expected_measured, expected_minimum = model(inputs[p], targets[p])
        assert _relative(probs[p].detach(), expected_probs.detach()) < tolerance
        assert torch.equal(measured[p], expected_measured)
        assert abs(float(minimum[p]) - expected_minimum) <= tolerance * expected_minimum
        original_loss(expected_probs, words[p]).backward()
        for (name, ours), (_, theirs) in zip(members[p].named_parameters(), model.named_parameters(), strict=True):
            assert _relative(ours.grad, theirs.grad) < 10 * tolerance, name


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
def test_members_of_other_depths_equal_lone_models_bit_for_bit(dtype: torch.dtype) -> None:
    # Workspace 8 takes the padded layout, whose blocks are as deep as a kernel's most rows in a step: 11 for
    # member 0 (word 0 on 11 of its 20 samples), 12 for member 1, 8 (the least) for member 2. Each member's
    # products must keep its own row count: float64 products of 11 rows padded to 12 round otherwise (3e-16 apart
    # when the pool padded every member to its deepest).
    members = _members(3, dtype, "kernel", shape=(2, 8, 1))
    lone = _clones(members)
    generator = torch.Generator().manual_seed(3)
    columns = torch.tensor([[0] * 11 + [1, 2, 3] * 3, [3] * 12 + [0, 1, 2] * 2 + [0, 1], [0, 1, 2, 3] * 5])
    inputs = torch.stack([columns // 2, columns % 2], dim=-1)[:, :, None, :].expand(3, 20, 5, 2).contiguous()
    targets = torch.randint(0, 2, (3, 20, 5, 2), generator=generator)
    probs, _, _ = run_pool(members, inputs, targets)
    words = bits_to_int(targets[:, :, 1:])
    sum(original_loss(probs[p], words[p]) for p in range(3)).backward()
    for p, model in enumerate(lone):
        expected, _, _ = model(inputs[p], targets[p])
        assert torch.equal(probs[p], expected)
        original_loss(expected, words[p]).backward()
        for (name, ours), (_, theirs) in zip(members[p].named_parameters(), model.named_parameters(), strict=True):
            assert torch.equal(ours.grad, theirs.grad), name


@pytest.mark.parametrize("method", ["kernel", "statevector"])
def test_sampled_steps_draw_from_each_members_generator(method: str) -> None:
    members = _members(3, torch.float64, method)
    lone = _clones(members)
    generator = torch.Generator().manual_seed(3)
    inputs = torch.randint(0, 2, (3, 5, 7, 2), generator=generator)
    postselected = torch.rand(3 * 5, 6, generator=generator) < 0.5
    probs, measured, minimum = run_pool(
        members, inputs, inputs, postselect=lambda step, _t: postselected[:, step],
        generators=[torch.Generator().manual_seed(s) for s in range(3)],
    )
    for p, model in enumerate(lone):
        rule = postselected[p * 5 : (p + 1) * 5]
        expected = model(inputs[p], inputs[p], postselect=lambda step, _t, rule=rule: rule[:, step],
                         generator=torch.Generator().manual_seed(p))
        assert _relative(probs[p], expected[0]) < 1e-12
        assert torch.equal(measured[p], expected[1])
        assert abs(float(minimum[p]) - expected[2]) <= 1e-12


@pytest.mark.parametrize("path", REFERENCE_FILES, ids=lambda p: p.stem)
@pytest.mark.parametrize("dtype,tolerance", [(torch.float64, 1e-9), (torch.float32, 1e-4)])
def test_every_member_matches_the_reference_vectors(path, dtype: torch.dtype, tolerance: float) -> None:
    # A pool of three copies of the reference model between two other models: the copies match the original.
    reference = load_reference(path)
    model = reference_model(reference, dtype)
    others = [QRNN(**model.config).to(dtype) for _ in range(2)]
    for seed, other in enumerate(others):
        other.reset_parameters(1.0, 1.0, 1.0, generator=torch.Generator().manual_seed(seed))
    members = [others[0], *_clones([model] * 3), others[1]]
    pool = ParameterPool(members)
    inputs = torch.tensor(reference["inputs"]).expand(5, -1, -1, -1)
    targets = torch.tensor(reference["targets"]).expand(5, -1, -1, -1)
    probs, _, minimum = run_pool(members, inputs, targets, parameters=pool)
    expected = torch.tensor(reference["probs"], dtype=torch.float64)
    words = bits_to_int(targets[:, :, 1:])
    losses = [original_loss(probs[p], words[p]) for p in range(5)]
    sum(losses).backward()
    pool.distribute_gradients()
    scale = max(float(torch.tensor(g, dtype=torch.float64).abs().max()) for g in reference["grads"].values())
    for p in (1, 2, 3):
        assert _relative(probs[p].double().detach(), expected) < tolerance
        assert abs(losses[p].item() - reference["loss"]) <= tolerance * max(abs(reference["loss"]), 1.0)
        ours = dict(members[p].named_parameters())
        for old_name, new_name in model.original_parameter_names().items():
            expected_grad = torch.tensor(reference["grads"][old_name], dtype=torch.float64)
            error = float((ours[new_name].grad.double() - expected_grad.reshape(ours[new_name].shape)).abs().max())
            assert error / scale < tolerance, f"member {p} {old_name}"


def test_parameter_pool_members_alias_the_stacked_leaves() -> None:
    members = _members(3, torch.float64, "kernel")
    pool = ParameterPool(members)
    with torch.no_grad():
        members[1].cell.output_stage[0].theta.add_(0.5)
    theta = members[1].cell.output_stage[0].theta.detach()
    assert float(pool.stacked["cell.output_stage.0.theta"][1].detach()) == float(theta)
    state = members[2].state_dict()
    members[0].load_state_dict(state)
    assert torch.equal(pool.stacked["cell.input_stage.0.weights"][0], pool.stacked["cell.input_stage.0.weights"][2])


@pytest.mark.parametrize("order", [1, 2, 3, 4, 5, 6])
def test_paths_agree_at_high_order_in_float32(order: int) -> None:
    # Each neuron shrinks the state by up to 2^((1-2^k)/2): without rescaling, float32 underflowed from order 4.
    generator = torch.Generator().manual_seed(order)
    inputs = torch.randint(0, 2, (4, 6, 3), generator=generator)
    results = {}
    for dtype in (torch.float64, torch.float32):
        for method in ("kernel", "statevector"):
            model = QRNN(3, 3, 2, order=order, degree=2, method=method).to(dtype)
            model.reset_parameters(generator=torch.Generator().manual_seed(1))
            probs, _, minimum = model(inputs, inputs)
            assert torch.isfinite(probs).all() and minimum > 0
            results[dtype, method] = probs.double(), minimum
    exact, exact_minimum = results[torch.float64, "kernel"]
    assert _relative(results[torch.float64, "statevector"][0], exact) < 1e-12
    for method in ("kernel", "statevector"):
        assert _relative(results[torch.float32, method][0], exact) < 1e-4
        assert abs(results[torch.float32, method][1] - exact_minimum) <= 1e-3 * exact_minimum


def test_members_of_different_shapes_cannot_pool() -> None:
    members = [QRNN(2, 3, 1), QRNN(2, 4, 1)]
    with pytest.raises(QRNNError, match="pool member 1"):
        run_pool(members, torch.zeros(2, 1, 3, 2, dtype=torch.long), torch.zeros(2, 1, 3, 2, dtype=torch.long))
    with pytest.raises(QRNNError, match="inputs and targets of shape 2 x B x L x 2"):
        run_pool([QRNN(2, 3, 1)] * 2, torch.zeros(1, 3, 2, dtype=torch.long), torch.zeros(1, 3, 2, dtype=torch.long))
