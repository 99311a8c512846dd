"""The model computes exactly the original implementation's function: outputs, loss and gradients."""

from __future__ import annotations

import pytest
import torch
from helpers import REFERENCE_FILES, load_reference, reference_model

from qrnn.bits import bits_to_int
from qrnn.loss import original_loss


def test_reference_files_are_present() -> None:
    assert len(REFERENCE_FILES) >= 4


def _relative_error(actual: torch.Tensor, expected: torch.Tensor) -> float:
    return float((actual.detach() - expected).abs().max() / expected.abs().max().clamp_min(1e-300))


@pytest.mark.parametrize("method", ["kernel", "statevector", "statevector-recomputed"])
@pytest.mark.parametrize("dtype,tolerance", [(torch.float64, 1e-9), (torch.float32, 1e-4)])
@pytest.mark.parametrize("path", REFERENCE_FILES, ids=lambda p: p.stem)
def test_matches_reference(
    path, dtype: torch.dtype, tolerance: float, method: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference = load_reference(path)
    model = reference_model(reference, dtype)
    model.method = method.removesuffix("-recomputed")
    if method.endswith("-recomputed"):  # the backward pass recomputes each step instead of reading a cache
        monkeypatch.setattr("qrnn.statevector_sequence.HISTORY_CACHE_BYTES", 0)
    inputs = torch.tensor(reference["inputs"])
    targets = torch.tensor(reference["targets"])
    probs, measured, minimum = model(inputs, targets, postselect=True)
    expected = torch.tensor(reference["probs"], dtype=torch.float64)
    assert probs.shape == expected.shape
    assert _relative_error(probs.double(), expected) < tolerance
    assert torch.equal(measured, targets[:, 1:])
    assert abs(minimum - reference["min_postselection_probability"]) <= tolerance * max(
        reference["min_postselection_probability"], 1e-12
    ) + (1e-12 if dtype == torch.float64 else 1e-7)

    loss = original_loss(probs, bits_to_int(targets[:, 1:]))
    assert abs(loss.item() - reference["loss"]) <= tolerance * max(abs(reference["loss"]), 1.0)
    loss.backward()
    ours = dict(model.named_parameters())
    for old_name, new_name in model.original_parameter_names().items():
        expected_grad = torch.tensor(reference["grads"][old_name], dtype=torch.float64)
        expected_grad = expected_grad.reshape(ours[new_name].shape)
        scale = max(float(torch.tensor(g, dtype=torch.float64).abs().max()) for g in reference["grads"].values())
        error = float((ours[new_name].grad.double() - expected_grad).abs().max()) / scale
        assert error < tolerance, f"{old_name}: relative gradient error {error:.3g}"
