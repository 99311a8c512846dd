"""Classical baselines: parameter counts (the paper's DNA comparison), the QRNN forward contract (shapes,
postselection, sampling, causality), the seeded orthogonal initialisation, learning a tiny DNA task, and the
checkpoint round trip through the model factory."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import qrnn
from qrnn.baselines import ClassicalBaseline, parameter_count
from qrnn.bits import bits_to_int, int_to_bits
from qrnn.errors import QRNNError
from qrnn.presets import load_preset
from qrnn.training import evaluate_checkpoint, load_checkpoint, read_checkpoint
from qrnn.training.config import make_config
from qrnn.training.models import build_model


def expected_count(kind: str, input_size: int, hidden: int) -> int:
    """Parameters of one torch RNN/LSTM layer on one-hot words (2 bias vectors per gate) + linear readout."""
    words = 2**input_size
    gates = 1 if kind == "rnn" else 4
    return gates * (hidden * words + hidden * hidden + 2 * hidden) + hidden * words + words


def test_parameter_counts_of_the_papers_dna_comparison() -> None:
    # The DNA models, built through the training factory from their presets' options (dna words have 3 bits).
    counts = {}
    for preset in ("experiment-5-dna", "dna-rnn", "dna-lstm"):
        options = load_preset(preset).train
        counts[preset] = parameter_count(build_model({**make_config(options).as_dict(), "input_size": 3}))
    assert counts == {"experiment-5-dna": 837, "dna-rnn": 888, "dna-lstm": 888}
    for kind, input_size, hidden in [("rnn", 3, 22), ("lstm", 3, 10), ("rnn", 1, 1), ("lstm", 5, 7), ("rnn", 2, 9)]:
        model = ClassicalBaseline(kind, input_size, hidden)
        assert parameter_count(model) == expected_count(kind, input_size, hidden)
    assert parameter_count(qrnn.QRNN(3, 5, 1, order=2, degree=3)) == 837


@pytest.mark.parametrize("kind", ["rnn", "lstm"])
def test_forward_contract(kind: str) -> None:
    torch.manual_seed(0)
    model = ClassicalBaseline(kind, input_size=3, hidden_size=6).double()
    model.reset_parameters(generator=torch.Generator().manual_seed(5))
    inputs = torch.randint(0, 2, (4, 7, 3))
    targets = torch.randint(0, 2, (4, 7, 3))
    probs, measured, minimum = model(inputs, targets)
    assert probs.shape == (4, 8, 6) and measured.shape == (4, 6, 3) and probs.dtype == torch.float64
    assert torch.allclose(probs.sum(1), torch.ones(4, 6, dtype=torch.float64))
    # Postselected everywhere: the measured words are the targets; the minimum is over their probabilities.
    assert torch.equal(measured, targets[:, 1:])
    target_words = bits_to_int(targets[:, 1:])
    chosen = probs.detach().gather(1, target_words.unsqueeze(1)).squeeze(1)
    assert minimum == pytest.approx(float(chosen.min()))
    # The model is the softmax of a readout of an RNN over one-hot words: recompute it directly.
    with torch.no_grad():
        one_hot = torch.nn.functional.one_hot(bits_to_int(inputs[:, :-1]), 8).double()
        logits = model.readout(model.recurrent(one_hot)[0])
    assert torch.allclose(probs, torch.softmax(logits, -1).transpose(1, 2), atol=1e-12)
    # Teacher forcing and causality: changing the inputs from step 4 on leaves the first four predictions alone.
    changed = inputs.clone()
    changed[:, 4:] = 1 - changed[:, 4:]
    other, _, _ = model(changed, targets)
    assert torch.equal(other[..., :4], probs[..., :4]) and not torch.allclose(other[..., 4:], probs[..., 4:])
    # Unbatched sequences, as for the QRNN.
    single, single_measured, _ = model(inputs[1], targets[1])
    assert single.shape == (8, 6) and torch.allclose(single, probs[1]) and single_measured.shape == (6, 3)


def test_sampling_follows_the_distribution_and_the_generator() -> None:
    model = ClassicalBaseline("lstm", input_size=2, hidden_size=4).double()
    model.reset_parameters(generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        model.readout.weight.mul_(8.0)  # a distribution far from uniform
    samples = 20000
    inputs = torch.tensor([[0, 1], [1, 0]]).expand(samples, 2, 2)
    probs, measured, minimum = model(inputs, inputs, postselect=False, generator=torch.Generator().manual_seed(1))
    assert minimum == 1.0  # nothing postselected
    counts = torch.bincount(bits_to_int(measured[:, 0]), minlength=4).double()
    expected = probs[0, :, 0] * samples
    assert torch.all((counts - expected).abs() <= 5 * expected.clamp_min(1).sqrt()), (counts, expected)
    again = model(inputs, inputs, postselect=False, generator=torch.Generator().manual_seed(1))[1]
    assert torch.equal(again, measured)
    # Per-step postselection: step 0 postselected on the target, step 1 sampled.
    inputs = torch.randint(0, 2, (64, 3, 2))
    _, mixed, _ = model(inputs, inputs, postselect=lambda step, _t: torch.tensor(step == 0),
                        generator=torch.Generator().manual_seed(2))
    assert torch.equal(mixed[:, 0], inputs[:, 1]) and not torch.equal(mixed[:, 1], inputs[:, 2])


def test_initialisation_is_seeded_and_orthogonal() -> None:
    for kind, hidden in [("rnn", 5), ("lstm", 4)]:
        a = ClassicalBaseline(kind, 3, hidden)
        b = ClassicalBaseline(kind, 3, hidden).double()
        a.reset_parameters(generator=torch.Generator().manual_seed(11))
        b.reset_parameters(generator=torch.Generator().manual_seed(11))
        for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters(), strict=True):
            assert torch.allclose(pa.double(), pb, atol=1e-7), name
        recurrent = b.recurrent.weight_hh_l0.detach()
        for block in recurrent.split(hidden):
            assert torch.allclose(block @ block.T, torch.eye(hidden, dtype=torch.float64), atol=1e-12)
        assert torch.all(b.recurrent.weight_ih_l0.abs() <= hidden**-0.5)
        if kind == "lstm":
            forget = b.recurrent.bias_ih_l0[hidden : 2 * hidden] + b.recurrent.bias_hh_l0[hidden : 2 * hidden]
            assert torch.equal(forget, torch.ones(hidden, dtype=torch.float64))
        c = ClassicalBaseline(kind, 3, hidden)
        c.reset_parameters(generator=torch.Generator().manual_seed(12))
        assert not torch.allclose(c.recurrent.weight_hh_l0, a.recurrent.weight_hh_l0)


def test_bad_input_is_one_line() -> None:
    model = ClassicalBaseline("rnn", 3, 4)
    with pytest.raises(QRNNError, match="shape B x L x 3"):
        model(torch.zeros(2, 5, 2, dtype=torch.long), torch.zeros(2, 5, 2, dtype=torch.long))
    with pytest.raises(QRNNError, match="only 0 and 1"):
        model(torch.full((2, 5, 3), 2), torch.zeros(2, 5, 3, dtype=torch.long))
    with pytest.raises(QRNNError, match="hidden width"):
        ClassicalBaseline("lstm", 3, 0)
    with pytest.raises(QRNNError, match="unknown model kind 'gru'; valid: qrnn, rnn, lstm"):
        build_model({**make_config({}).as_dict(), "model": "gru", "input_size": 3})


@pytest.mark.parametrize(("kind", "width"), [("rnn", 22), ("lstm", 10)])
def test_baseline_learns_tiny_dna_and_round_trips(kind: str, width: int, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    # The marker sits at position 1 or 2 of 6 bases; only the last step is scored: the network must carry the
    # marked base over three or four steps.
    result = qrnn.train(model=kind, workspace=width, dataset="dna", sentence_length=6, batch_size=32,
                        learning_rate=0.03, loss="nll", epochs=200, validate_every=50, num_validation_samples=0,
                        seed=3, out=str(tmp_path))
    assert f"dna, {kind} of width {width}, 888 parameters" in capsys.readouterr().out
    assert result.stop_reason == "epochs"
    # An untrained model is near chance (nll ln 4 ~ 1.39 over the four bases); trained: near zero, no errors.
    assert result.best_validation_loss < 0.05 and result.best_character_error_rate == 0.0
    payload = read_checkpoint(result.final_checkpoint)
    assert payload["config"]["model"] == kind and payload["model_config"] == {
        "model": kind, "input_size": 3, "hidden_size": width, "layers": 1, "init": "standard"}
    model, info = load_checkpoint(result.final_checkpoint)
    assert isinstance(model, ClassicalBaseline) and model.kind == kind and info["model"] == kind
    for name, value in payload["model_state_dict"].items():
        assert torch.equal(model.state_dict()[name], value), name
    report = evaluate_checkpoint(result.final_checkpoint, samples=64, batch_size=32)
    assert report.argmax_accuracy == 1.0 and report.character_error_rate < 0.05
    # The model also predicts a sequence written by hand: marker on base 2 (word 6) at position 1.
    inputs = int_to_bits(torch.tensor([[1, 6, 0, 3, 1, 0]]), 3)
    probs, _, _ = model(inputs, inputs)
    assert int(probs[0, :, -1].argmax()) == 2


def test_the_notebooks_networks_two_layers_and_their_start() -> None:
    # The original's comparison notebooks (6850a30): two LSTM layers of width 40 and two RNN layers of width 80
    # on one-hot 3-bit words, a linear readout.
    assert parameter_count(ClassicalBaseline("lstm", 3, 40, layers=2)) == 21448
    assert parameter_count(ClassicalBaseline("rnn", 3, 80, layers=2)) == 20808
    for kind, hidden in [("rnn", 6), ("lstm", 5)]:
        model = ClassicalBaseline(kind, 3, hidden, layers=2, init="notebook").double()
        model.reset_parameters(generator=torch.Generator().manual_seed(5))
        gates = 1 if kind == "rnn" else 4
        for layer, fan_in in [(0, 8), (1, hidden)]:
            weight_ih = getattr(model.recurrent, f"weight_ih_l{layer}").detach()
            xavier = (6 / (fan_in + gates * hidden)) ** 0.5
            assert weight_ih.abs().max() <= xavier and weight_ih.abs().max() > 0.5 * xavier
            for block in getattr(model.recurrent, f"weight_hh_l{layer}").detach().split(hidden):
                assert torch.allclose(block @ block.T, torch.eye(hidden, dtype=torch.float64), atol=1e-12)
            for name in (f"bias_ih_l{layer}", f"bias_hh_l{layer}"):
                assert torch.equal(getattr(model.recurrent, name), torch.zeros(gates * hidden, dtype=torch.float64))
        # The readout as nn.Linear starts it: weight and bias uniform in +-1/sqrt(hidden).
        bias = model.readout.bias.detach()
        assert 0 < bias.abs().max() <= hidden**-0.5 and model.readout.weight.abs().max() <= hidden**-0.5
        standard = ClassicalBaseline(kind, 3, hidden, layers=2)
        assert standard.readout.bias.abs().max() == 0
        if kind == "lstm":
            assert torch.all(standard.recurrent.bias_ih_l1[hidden : 2 * hidden] == 1)
    with pytest.raises(QRNNError, match="at least 1 layer"):
        ClassicalBaseline("lstm", 3, 4, layers=0)
    with pytest.raises(QRNNError, match="unknown baseline initialisation 'xavier'; valid: standard, notebook"):
        ClassicalBaseline("lstm", 3, 4, init="xavier")


def test_the_notebooks_training_every_output_stop_on_training_loss(tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    # dna-every-output with the notebooks' network and stop: the run ends on the first training step whose loss
    # is below the threshold, its checkpoint rebuilds the two-layer network, and a resumed run may change the
    # threshold.
    options = dict(model="lstm", layers=2, workspace=12, baseline_init="notebook", dataset="dna-every-output",
                   sentence_length=6, batch_size=16, learning_rate=0.05, gradient_clip=0.0, loss="nll",
                   stop_at_training_loss=0.05, epochs=400, validate_every=1000, num_validation_samples=0, seed=4,
                   out=str(tmp_path))
    result = qrnn.train(**options)
    out = capsys.readouterr().out
    assert result.stop_reason == "stop-at-training-loss" and result.epoch < 400
    assert f"done: training loss below --stop-at-training-loss after {result.epoch} epochs" in out
    payload = read_checkpoint(result.final_checkpoint)
    assert payload["model_config"] == {"model": "lstm", "input_size": 3, "hidden_size": 12, "layers": 2,
                                       "init": "notebook"}
    model, _ = load_checkpoint(result.final_checkpoint)
    assert isinstance(model, ClassicalBaseline) and model.layers == 2 and model.init == "notebook"
    # Without the threshold the same run trains on past that epoch, identically up to it.
    longer = qrnn.train(**{**options, "stop_at_training_loss": None, "epochs": result.epoch + 5,
                           "out": str(tmp_path / "longer")})
    assert longer.stop_reason == "epochs" and longer.epoch == result.epoch + 5


def test_notebook_options_are_for_baselines_only() -> None:
    for options, message in [
        ({"layers": 2}, "--layers 2 applies to the classical baselines"),
        ({"baseline_init": "notebook"}, "--baseline-init notebook applies to the classical baselines"),
        ({"model": "lstm", "layers": 0}, "--layers must be an integer in \\[1, 8\\], got 0"),
        ({"model": "lstm", "stop_at_training_loss": float("nan")}, "--stop-at-training-loss must be a finite"),
        ({"model": "lstm", "baseline_init": "xavier"}, "unknown baseline-init 'xavier'; valid: standard, notebook"),
    ]:
        with pytest.raises(QRNNError, match=message):
            make_config(options)
