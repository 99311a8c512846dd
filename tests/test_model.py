"""The sequence model: fast path against the gate-by-gate simulation, gradients, sampling, and bad input."""

from __future__ import annotations

import math

import pytest
import torch
from helpers import slow_sequence

import qrnn.cell
from qrnn import QRNN
from qrnn.bits import bits_to_int
from qrnn.errors import QRNNError
from qrnn.loss import best_original_loss, nll_loss, original_loss

DTYPE = torch.float64


def random_model(
    input_size: int, workspace: int, stages: int, order: int, degree: int, seed: int, method: str = "auto"
) -> QRNN:
    model = QRNN(input_size, workspace, stages, order, degree, method=method).to(DTYPE)
    model.reset_parameters(1.0, 1.0, 1.0, generator=torch.Generator().manual_seed(seed))
    return model


def random_bits(batch: int, length: int, width: int, seed: int) -> torch.Tensor:
    return torch.randint(0, 2, (batch, length, width), generator=torch.Generator().manual_seed(seed))


@pytest.fixture(params=["kernel-grouped", "kernel-all-kernels", "statevector-cached", "statevector-recomputed"])
def method(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Run a test on each path: the kernel path with each per-step layout of the batch (see
    `qrnn.model._StepLayout`), and the statevector path with the backward pass reading the forward pass's
    cached rotation inputs or recomputing each step. Returns the `method` to construct the model with."""
    if request.param.startswith("statevector"):
        if request.param == "statevector-recomputed":
            monkeypatch.setattr("qrnn.statevector_sequence.HISTORY_CACHE_BYTES", 0)
        return "statevector"
    monkeypatch.setattr("qrnn.model._OPERATION_COST_IN_FLOPS", 0 if request.param == "kernel-grouped" else 10**12)
    return "kernel"


@pytest.mark.parametrize("sizes", [(1, 2, 0, 1, 1), (2, 3, 1, 2, 2), (3, 2, 2, 1, 3), (2, 4, 2, 3, 2)], ids=str)
def test_fast_path_equals_gate_by_gate(sizes: tuple[int, ...], method: str) -> None:
    model = random_model(*sizes, seed=sum(sizes), method=method)
    inputs, targets = random_bits(3, 5, sizes[0], 1), random_bits(3, 5, sizes[0], 2)
    probs, measured, minimum = model(inputs, targets)
    slow_probs, slow_minimum = slow_sequence(model, inputs, targets)
    assert torch.allclose(probs, slow_probs, atol=1e-12)
    assert torch.equal(measured, targets[:, 1:])
    assert math.isclose(minimum, slow_minimum, rel_tol=1e-9)


@pytest.mark.parametrize("method", ["kernel", "statevector"])
def test_fast_path_equals_explicit_circuits(method: str) -> None:
    model = random_model(2, 2, 1, 2, 2, seed=4, method=method)
    inputs, targets = random_bits(2, 4, 2, 5), random_bits(2, 4, 2, 6)
    probs, _, _ = model(inputs, targets)
    explicit_probs, _ = slow_sequence(model, inputs, targets, explicit=True)
    assert torch.allclose(probs, explicit_probs, atol=1e-12)


def test_lane_by_lane_rotation_layers_equal_dense_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    model = random_model(2, 3, 2, 2, 2, seed=8, method="kernel")
    inputs, targets = random_bits(4, 6, 2, 9), random_bits(4, 6, 2, 10)
    dense_probs, _, _ = model(inputs, targets)
    monkeypatch.setattr(qrnn.cell, "_DENSE_LAYER_MAX_WIDTH", 0)
    lane_probs, _, _ = model(inputs, targets)
    assert torch.allclose(dense_probs, lane_probs, atol=1e-13)


def test_batched_equals_one_by_one(method: str) -> None:
    model = random_model(3, 3, 1, 2, 2, seed=11, method=method)
    inputs, targets = random_bits(5, 7, 3, 12), random_bits(5, 7, 3, 13)
    probs, _, _ = model(inputs, targets)
    for b in range(5):
        single, measured, _ = model(inputs[b], targets[b])
        assert single.shape == (8, 6) and measured.shape == (6, 3)
        assert torch.allclose(probs[b], single, atol=1e-14)


@pytest.mark.parametrize("sizes", [(2, 2, 1, 2, 2), (1, 4, 2, 3, 3)], ids=str)
def test_gradients_match_finite_differences(sizes: tuple[int, ...], method: str) -> None:
    model = random_model(*sizes, seed=21, method=method)
    inputs, targets = random_bits(3, 5, sizes[0], 22), random_bits(3, 5, sizes[0], 23)
    words = bits_to_int(targets[:, 1:])
    scored = torch.rand(3, 4, generator=torch.Generator().manual_seed(1)) < 0.7
    parameters = list(model.parameters())

    def loss_of(*values: torch.Tensor) -> torch.Tensor:
        for parameter, value in zip(parameters, values, strict=True):
            parameter.data = value
        probs, _, _ = model(inputs, targets)
        return original_loss(probs, words, scored) + nll_loss(probs, words, scored)

    loss = loss_of(*[p.detach().clone() for p in parameters])
    grads = torch.autograd.grad(loss, parameters)
    generator = torch.Generator().manual_seed(2)
    for _ in range(3):
        direction = [torch.randn(p.shape, generator=generator, dtype=DTYPE) for p in parameters]
        base = [p.detach().clone() for p in parameters]
        step = 1e-6
        with torch.no_grad():
            plus = loss_of(*[b + step * d for b, d in zip(base, direction, strict=True)])
            minus = loss_of(*[b - step * d for b, d in zip(base, direction, strict=True)])
        numeric = (plus - minus) / (2 * step)
        analytic = sum((g * d).sum() for g, d in zip(grads, direction, strict=True))
        assert math.isclose(float(numeric), float(analytic), rel_tol=1e-6, abs_tol=1e-9)
        loss_of(*base)


@pytest.mark.parametrize("method", ["kernel", "statevector"])
def test_sampling_follows_the_distribution(method: str) -> None:
    model = random_model(2, 2, 1, 1, 2, seed=31, method=method)
    inputs = random_bits(1, 3, 2, 32).expand(20000, 3, 2)
    targets = random_bits(1, 3, 2, 33).expand(20000, 3, 2)
    probs, measured, minimum = model(inputs, targets, postselect=False, generator=torch.Generator().manual_seed(5))
    assert minimum == 1.0  # nothing was postselected
    expected = probs[0, :, 0].detach()
    counts = torch.bincount(bits_to_int(measured[:, 0]), minlength=4).double()
    chi_square = float(((counts - 20000 * expected) ** 2 / (20000 * expected)).sum())
    assert chi_square < 16.3  # the 99.9 % quantile of chi-square with 3 degrees of freedom
    # The second step's distribution depends on what was measured at the first: same measured word, same probs.
    first = bits_to_int(measured[:, 0])
    for word in range(4):
        rows = probs[first == word, :, 1]
        if rows.shape[0] > 1:
            assert torch.allclose(rows, rows[0].expand_as(rows), atol=1e-14)


def test_sampling_is_seeded_and_postselection_callable_mixes(method: str) -> None:
    model = random_model(2, 3, 1, 2, 2, seed=41, method=method)
    inputs, targets = random_bits(6, 8, 2, 42), random_bits(6, 8, 2, 43)
    first = model(inputs, targets, postselect=False, generator=torch.Generator().manual_seed(9))
    second = model(inputs, targets, postselect=False, generator=torch.Generator().manual_seed(9))
    assert torch.equal(first[1], second[1]) and torch.equal(first[0], second[0])

    def even_steps(step: int, targets_at_step: torch.Tensor) -> torch.Tensor:
        return torch.full((targets_at_step.shape[0],), step % 2 == 0)

    probs, measured, minimum = model(inputs, targets, postselect=even_steps, generator=torch.Generator().manual_seed(3))
    assert torch.equal(measured[:, 0::2], targets[:, 1::2])
    chosen = probs.detach().gather(1, bits_to_int(measured).unsqueeze(1)).squeeze(1)
    assert math.isclose(minimum, float(chosen[:, 0::2].min()), rel_tol=1e-12)
    # Postselecting on what was sampled reproduces the sampled run exactly.
    replay, _, _ = model(inputs, torch.cat([targets[:, :1], measured], dim=1), postselect=True)
    assert torch.allclose(replay, probs, atol=1e-14)


def test_losses() -> None:
    probs = torch.tensor([[[1.0, 0.5], [0.0, 0.5]]], dtype=DTYPE)  # B=1, I=1, T=2
    words = torch.tensor([[0, 1]])
    assert math.isclose(best_original_loss(1), -1 + math.log(1 + math.e))
    first_step = torch.nn.functional.cross_entropy(probs[:, :, :1], words[:, :1])
    assert math.isclose(
        float(original_loss(probs, words, torch.tensor([[True, False]]))),
        float(first_step) - best_original_loss(1),
        abs_tol=1e-15,
    )
    assert math.isclose(float(original_loss(probs, words, torch.tensor([[True, False]]))), 0.0, abs_tol=1e-15)
    assert math.isclose(float(nll_loss(probs, words)), math.log(2) / 2, rel_tol=1e-12)


def test_original_state_dict_round_trip_and_errors() -> None:
    model = random_model(2, 3, 2, 2, 2, seed=51)
    state = model.original_state_dict()
    assert "cell.kernel_layer.1.0.θs" in state and state["cell.input_layer.0.φ"].shape == (10,)
    other = QRNN(2, 3, 2, 2, 2).to(DTYPE)
    other.load_original_state_dict({f"module.{k}": v for k, v in state.items()})
    for (name, a), (_, b) in zip(model.named_parameters(), other.named_parameters(), strict=True):
        assert torch.equal(a, b), name
    missing = dict(state)
    del missing["cell.output_layer.1.θ"]
    with pytest.raises(QRNNError, match="missing 'cell.output_layer.1.θ'"):
        other.load_original_state_dict(missing)
    with pytest.raises(QRNNError, match="unexpected entry 'cell.extra'"):
        other.load_original_state_dict({**state, "cell.extra": torch.zeros(1)})
    with pytest.raises(QRNNError, match="has shape"):
        other.load_original_state_dict({**state, "cell.input_layer.0.φ": torch.zeros(3)})


def test_reset_parameters_is_seeded_and_spreads() -> None:
    a, b = QRNN(2, 3, 1), QRNN(2, 3, 1)
    a.reset_parameters(0.1, 0.01, 0.01, generator=torch.Generator().manual_seed(7))
    b.reset_parameters(0.1, 0.01, 0.01, generator=torch.Generator().manual_seed(7))
    assert all(torch.equal(x, y) for x, y in zip(a.parameters(), b.parameters(), strict=True))
    a.reset_parameters(0.0, 1e-12, 0.5, generator=torch.Generator().manual_seed(7))
    assert a.cell.input_stage[0].theta.item() == 0.0 and not a.cell.input_stage[0].weights.any()
    assert a.cell.work_stages[0].rotations.detach().abs().sum() > 0


def test_qubit_counts_and_config() -> None:
    model = QRNN(2, 8, 2, order=2, degree=2)
    assert model.num_qubits == 10 and model.hardware_qubits == 12
    assert model.config == {
        "input_size": 2,
        "workspace_size": 8,
        "stages": 2,
        "order": 2,
        "degree": 2,
        "bias": math.pi / 2,
    }


@pytest.mark.parametrize(
    "arguments,message",
    [
        ((2, 0, 1), "workspace_size must be an integer >= 1"),
        ((0, 2, 1), "input_size must be an integer >= 1"),
        ((2, 2, -1), "stages must be an integer >= 0"),
        ((2, 2, 1, 0), "order must be an integer >= 1"),
        ((2, 2, 1, 2, 0), "degree must be an integer >= 1"),
    ],
)
def test_invalid_sizes_fail_at_construction(arguments: tuple, message: str) -> None:
    with pytest.raises(QRNNError, match=message):
        QRNN(*arguments)


def test_bad_inputs_fail_with_clear_messages() -> None:
    model = QRNN(2, 2, 1)
    good = torch.zeros(2, 4, 2, dtype=torch.long)
    with pytest.raises(QRNNError, match=r"shape B x L x 2"):
        model(torch.zeros(2, 4, 3, dtype=torch.long), good)
    with pytest.raises(QRNNError, match="only 0 and 1"):
        model(good + 2, good)
    with pytest.raises(QRNNError, match="integer or bool"):
        model(good.float(), good)
    with pytest.raises(QRNNError, match="same shape"):
        model(good, torch.zeros(2, 5, 2, dtype=torch.long))
    with pytest.raises(QRNNError, match="length >= 2"):
        model(good[:, :1], good[:, :1])


def test_too_large_a_pass_fails_before_allocating(monkeypatch: pytest.MonkeyPatch) -> None:
    model = QRNN(3, 5, 1)
    monkeypatch.setattr("qrnn.model.available_memory", lambda device: 10 * 2**20)
    bits = torch.zeros(128, 1000, 3, dtype=torch.long)
    with pytest.raises(QRNNError, match=r"needs about .* GiB, but only .* GiB is free"):
        model(bits, bits)


def test_auto_picks_the_path_that_fits_and_the_check_estimates_it(monkeypatch: pytest.MonkeyPatch) -> None:
    small, large = QRNN(2, 6, 2), QRNN(2, 13, 1)
    assert small.choose_method(160, 5) == "kernel"  # the paper's umap shape
    assert QRNN(3, 5, 1).choose_method(128, 1000) == "kernel"  # DNA at length 1000
    assert QRNN(2, 16, 1).choose_method(16, 20) == "statevector"
    # Workspace 13: the kernels alone need 2^2 x 4^13 x 4 bytes x (#rotations) (tens of GiB); the statevector
    # path fits easily, so auto runs it where only 1 GiB is free, and only the forced kernel path is refused.
    assert large.estimate_memory_bytes(4, 3, "kernel") > 32 * 2**30
    assert large.estimate_memory_bytes(4, 3, "statevector") < 2**27
    monkeypatch.setattr("qrnn.model.available_memory", lambda device: 2**30)
    bits = random_bits(4, 3, 2, 81)
    probs, _, _ = large(bits, bits)
    assert probs.shape == (4, 4, 2) and torch.allclose(probs.sum(1), torch.ones(4, 2))
    large.method = "kernel"
    with pytest.raises(QRNNError, match=r"by the kernel method needs about"):
        large(bits, bits)


def test_method_must_be_known() -> None:
    with pytest.raises(QRNNError, match="method must be one of auto, kernel, statevector, got 'fast'"):
        QRNN(2, 2, 1, method="fast")


def test_statevector_path_renormalises_at_high_order_in_float32() -> None:
    # Order 6: every neuron may shrink the norm by 2^-31.5, so 12 neurons would take float32 to zero.
    model = random_model(1, 6, 1, 6, 2, seed=91, method="statevector")
    inputs, targets = random_bits(3, 4, 1, 92), random_bits(3, 4, 1, 93)
    probs64, _, _ = model(inputs, targets)
    probs32, _, _ = model.float()(inputs, targets)
    loss = original_loss(probs32, bits_to_int(targets[:, 1:]))
    loss.backward()
    assert torch.isfinite(probs32).all() and all(torch.isfinite(p.grad).all() for p in model.parameters())
    assert torch.allclose(probs32.double(), probs64, atol=1e-4)


def test_float32_matches_float64(method: str) -> None:
    model = random_model(2, 4, 2, 2, 2, seed=61, method=method)
    inputs, targets = random_bits(4, 20, 2, 62), random_bits(4, 20, 2, 63)
    probs64, _, _ = model(inputs, targets)
    probs32, _, _ = model.float()(inputs, targets)
    assert probs32.dtype == torch.float32
    assert torch.allclose(probs32.double(), probs64, atol=1e-4)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device on this machine")
@pytest.mark.parametrize("method", ["kernel", "statevector"])
def test_cuda_matches_cpu(method: str) -> None:
    model = random_model(2, 3, 1, 2, 2, seed=71, method=method)
    inputs, targets = random_bits(4, 6, 2, 72), random_bits(4, 6, 2, 73)
    probs, _, _ = model(inputs, targets)
    (probs * probs).sum().backward()
    grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    probs_cuda, _, _ = model.cuda()(inputs.cuda(), targets.cuda())
    (probs_cuda * probs_cuda).sum().backward()
    assert torch.allclose(probs_cuda.cpu(), probs, atol=1e-12)
    for grad, parameter in zip(grads, model.parameters(), strict=True):
        assert torch.allclose(parameter.grad.cpu(), grad, atol=1e-10)
