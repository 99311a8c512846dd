"""Exporting a QRNN step as a circuit, without Qiskit: the circuit as data against the model, the CX/rY
decomposition against exact matrices, the OpenQASM 3 text, the resource report and the one-line errors."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import torch

import qrnn
from qrnn import QRNN
from qrnn.bits import bits_to_int, int_to_bits
from qrnn.cli import main as qrnn_main
from qrnn.errors import QRNNError
from qrnn.export import decompose_circuit, simulate_step, step_circuit, to_qasm3
from qrnn.export.decompose import controlled_ry, multiplexed_ry, prepare_real_state
from qrnn.export.resources import (
    circuit_depth,
    gate_counts,
    neuron_success_probability,
    replay_sequences,
    static_resources,
)
from qrnn.gates import Gate
from qrnn.neuron import QuantumNeuron
from qrnn.statevector import apply_matrix, zero_state

WORDS = ["00", "01", "10", "11"]


def random_model(seed: int = 1, input_size: int = 2, workspace: int = 2, stages: int = 1, order: int = 2) -> QRNN:
    """A float64 QRNN with parameters spread widely enough that every gate matters."""
    model = QRNN(input_size, workspace, stages, order=order, degree=2).double()
    model.reset_parameters(1.0, 1.0, 1.0, generator=torch.Generator().manual_seed(seed))
    return model


def random_workspace_states(count: int, workspace: int, seed: int) -> torch.Tensor:
    """Real normalised workspace states with mixed signs."""
    states = torch.randn(count, 2**workspace, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return states / states.norm(dim=1, keepdim=True)


def model_distribution(model: QRNN, word: str, workspace_states: torch.Tensor | None = None) -> torch.Tensor:
    """The model's distribution over the I/O word after one step (QRNNCell.apply_step) from the given workspace
    states (default |0...0>)."""
    cell = model.cell
    I, H = cell.input_size, cell.workspace_size
    if workspace_states is None:
        state = zero_state(I + H, 1, torch.float64)
    else:
        full = torch.zeros(workspace_states.shape[0], 2**I, 2**H, dtype=torch.float64)
        full[:, 0] = workspace_states
        state = full.reshape((-1,) + (2,) * (I + H))
    bits = torch.tensor([[int(b) for b in word]] * state.shape[0])
    return cell.output_distribution(cell.apply_step(state, bits))


# ---- the circuit as data against the model ----


@pytest.mark.parametrize(("decomposed", "order"), [(False, 1), (False, 2), (False, 3), (True, 1), (True, 2)])
def test_step_circuit_matches_the_model_on_words_and_workspace_states(decomposed: bool, order: int) -> None:
    model = random_model(order=order)
    states = random_workspace_states(3, 2, seed=5)
    for fixed in (False, True):
        for word in WORDS:
            circuit = step_circuit(model, word if fixed else None)
            if decomposed:
                circuit = decompose_circuit(circuit)
            distribution, success = simulate_step(circuit, word)
            torch.testing.assert_close(distribution, model_distribution(model, word), rtol=0, atol=1e-12)
            assert 0 < float(success) < 1
            distribution, _ = simulate_step(circuit, word, workspace_state=states)
            torch.testing.assert_close(distribution, model_distribution(model, word, states), rtol=0, atol=1e-12)


def test_prepared_workspace_state_gives_the_same_step() -> None:
    model = random_model(seed=2)
    state = random_workspace_states(1, 2, seed=9)[0]
    for word in WORDS:
        prepared = step_circuit(model, word, workspace_state=state)
        assert prepared.prepared and prepared.sections[0].title == "prepare the workspace state"
        distribution, _ = simulate_step(prepared)
        torch.testing.assert_close(distribution, model_distribution(model, word, state[None]), rtol=0, atol=1e-12)


def test_exported_steps_follow_a_sequence_of_the_fast_path() -> None:
    # Step t+1 of the fast path is one exported step on the workspace state the sequence carries after step t.
    model = random_model(seed=3, stages=2)
    inputs = torch.tensor([[0, 1], [1, 1], [1, 0], [0, 0]])
    targets = torch.tensor([[0, 0], [1, 0], [0, 1], [1, 1]])
    probs, _, _ = model(inputs, targets, postselect=True)
    kernels, readout = model.cell.transfer_tables()
    workspace = torch.zeros(4, dtype=torch.float64)
    workspace[0] = 1
    for t in range(3):
        word = "".join(map(str, inputs[t].tolist()))
        distribution, _ = simulate_step(step_circuit(model, word), workspace_state=workspace)
        torch.testing.assert_close(distribution[0], probs[:, t], rtol=0, atol=1e-6)
        z = kernels[int(bits_to_int(inputs[t]))] @ workspace
        carried = readout[int(bits_to_int(targets[t + 1]))] * z
        workspace = carried / carried.norm()


def test_redundant_postselections_are_dropped_and_every_neuron_frees_its_ancillas() -> None:
    model = random_model(order=3)
    circuit = step_circuit(model)
    raw = model.cell.input_stage[0].circuit(circuit.ancilla_lanes)
    section = circuit.sections[1]
    kept = [op for op in section.operations if not isinstance(op, Gate)]
    assert len(kept) < sum(not isinstance(op, Gate) for op in raw)
    # A neuron ends with every ancilla postselected, so the next one meets them in |0>.
    assert {op.lane for op in kept[-3:]} == set(circuit.ancilla_lanes)


# ---- decomposition into cx and ry ----


def unitary(gates: list[Gate], lanes: int) -> torch.Tensor:
    """The matrix of a gate list on `lanes` lanes (lane 0 the most significant bit), column j = image of |j>."""
    basis = torch.eye(2**lanes, dtype=torch.float64).reshape((2**lanes,) + (2,) * lanes)
    for gate in gates:
        basis = apply_matrix(basis, gate.matrix(torch.float64), gate.target, gate.controls)
    return basis.reshape(2**lanes, 2**lanes).T


@pytest.mark.parametrize("controls", [0, 1, 2, 3, 4])
def test_controlled_ry_decomposition_is_exact(controls: int) -> None:
    lanes = controls + 2  # one spectator lane, and the target in the middle
    target = 1
    control_lanes = [lane for lane in range(lanes) if lane != target][:controls]
    angle = 0.7331
    exact = unitary([Gate("ry", target, tuple(control_lanes), angle)], lanes)
    gates = controlled_ry(target, control_lanes, angle)
    assert all(g.name == "ry" and not g.controls or g.name == "x" and len(g.controls) == 1 for g in gates)
    assert sum(g.name == "x" for g in gates) == (2**controls if controls else 0)
    torch.testing.assert_close(unitary(gates, lanes), exact, rtol=0, atol=1e-12)


def test_multiplexed_ry_turns_by_each_configurations_angle() -> None:
    angles = [0.3, -1.1, 2.0, 0.0, 0.5, -0.25, 1.7, 3.0]
    gates = multiplexed_ry(3, [0, 2, 1], angles)
    matrix = unitary(gates, 4)
    for x, angle in enumerate(angles):
        bits = int_to_bits(torch.tensor(x), 3).tolist()
        lanes = {0: bits[0], 2: bits[1], 1: bits[2]}
        for t in (0, 1):
            index = lanes[0] * 8 + lanes[1] * 4 + lanes[2] * 2 + t
            column = matrix[:, index]
            expected = torch.zeros(16, dtype=torch.float64)
            c, s = math.cos(angle / 2), math.sin(angle / 2)
            expected[index - t] = c if t == 0 else -s
            expected[index - t + 1] = s if t == 0 else c
            torch.testing.assert_close(column, expected, rtol=0, atol=1e-12)


def test_real_state_preparation_is_exact_with_signs_and_zeros() -> None:
    for amplitudes in (
        torch.tensor([0.5, -0.5, 0.5, -0.5, 0.0, 0.0, 0.0, 0.0], dtype=torch.float64),
        random_workspace_states(1, 3, seed=4)[0],
        torch.tensor([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.0], dtype=torch.float64),
    ):
        gates = prepare_real_state([1, 2, 3], amplitudes)
        state = zero_state(4, 1, torch.float64)
        for gate in gates:
            state = apply_matrix(state, gate.matrix(torch.float64), gate.target, gate.controls)
        torch.testing.assert_close(state.reshape(2, 8)[0], amplitudes, rtol=0, atol=1e-12)


# ---- OpenQASM 3 ----


def test_qasm_text_declares_registers_and_writes_every_operation() -> None:
    model = random_model()
    circuit = step_circuit(model)
    text = to_qasm3(circuit)
    lines = text.splitlines()
    assert lines[:2] == ["OPENQASM 3.0;", 'include "stdgates.inc";']
    assert "input bit[2] word;" in lines and "qubit[6] q;" in lines
    assert f"bit[{circuit.num_postselections}] postselect;" in lines and "bit[2] outcome;" in lines
    assert circuit.num_postselections == 18  # 6 neurons of order 2, 3 ancilla measurements each
    assert sum(line.startswith("postselect[") for line in lines) == 18
    assert lines.count("if (word[0]) { x q[0]; }") == 2 and lines.count("if (word[1]) { x q[1]; }") == 2
    assert [line for line in lines if line.startswith("outcome[")] == [
        "outcome[0] = measure q[0];",
        "outcome[1] = measure q[1];",
    ]
    assert lines[-2:] == ["if (outcome[0]) { x q[0]; }", "if (outcome[1]) { x q[1]; }"]
    counts = gate_counts(circuit)["gates"]
    assert sum(line.startswith("ctrl(2) @ ry(") for line in lines) == counts["ry"]["2"]
    assert lines.count("ctrl @ ry(pi) q[4], q[5];") >= 1
    assert sum(bool(re.fullmatch(r"ry\(-?[0-9.e-]+\) q\[\d\];", line)) for line in lines) == counts["ry"]["0"]
    # A fixed word is X gates; the decomposed text has only cx and ry gates.
    fixed = to_qasm3(decompose_circuit(step_circuit(model, "10")))
    assert "input bit" not in fixed and fixed.count("\nx q[0];") == 2 and "\nx q[1];" not in fixed
    declarations = ("//", "OPENQASM", "include", "qubit", "bit", "postselect[", "outcome[", "if (")
    statements = [line for line in fixed.splitlines() if line and not line.startswith(declarations)]
    assert len(statements) > 100 and all(line.startswith(("ry(", "cx ", "x ")) for line in statements)


def test_qasm_restart_mode_loops_until_every_ancilla_reads_zero() -> None:
    circuit = step_circuit(random_model(), "01")
    text = to_qasm3(circuit, postselection="restart")
    lines = text.splitlines()
    start = lines.index("while (!success) {")
    end = lines.index("}", start)
    assert lines[start - 1] == "bool success = false;" and lines[start + 1] == "  reset q;"
    assert lines[end - 1] == "  success = true;"
    body = lines[start:end]
    assert sum(line.strip().startswith("if (postselect[") and "continue;" in line for line in body) == 18
    assert all(not line.startswith("outcome[") for line in body)
    assert lines[end + 3 :].count("outcome[0] = measure q[0];") == 1
    assert text.count("{") == text.count("}")


@pytest.mark.parametrize("mode", ["discard", "restart"])
def test_qasm_parses_with_the_reference_parser(mode: str) -> None:
    openqasm3 = pytest.importorskip("openqasm3", reason="the OpenQASM 3 reference parser (openqasm3) is not installed")
    pytest.importorskip("antlr4", reason="the openqasm3 parser needs antlr4-python3-runtime")
    for circuit in (step_circuit(random_model()), decompose_circuit(step_circuit(random_model(), "11"))):
        program = openqasm3.parse(to_qasm3(circuit, postselection=mode))
        assert program.version == "3.0"


# ---- resources ----


def test_gate_counts_and_depth_of_a_tiny_config_by_hand() -> None:
    # I=1, H=1, no work stage, order 1, degree 1: two neurons with one source each. Each neuron: rY(theta+bias)
    # and a 1-controlled rY(weight) onto the ancilla, a controlled -iY, the two inverses, one postselection.
    model = QRNN(1, 1, 0, order=1, degree=1)
    report = static_resources(model)
    assert report["qubits"] == {"io": 1, "workspace": 1, "ancillas": 1, "total": 3}
    native = report["step"]["native"]
    assert native["gates"] == {"neg_iy": {"1": 2}, "ry": {"0": 4, "1": 4}}
    assert native["total_gates"] == 10 and native["controlled_gates"] == 6
    assert native["mid_circuit_measurements"] == 2 and native["final_measurements"] == 1
    assert native["classically_controlled_x"] == 3  # the word on and off, the outcome reset
    # Depth by hand: flip/rY(a) | c-rY | c-(-iY) | c-rY^-1 | rY^-1 | measure a, then the output neuron's six.
    assert native["depth"] == 12
    decomposed = report["step"]["cx,ry"]
    # Each controlled rotation (4 c-rY, 2 c-(-iY)) becomes 2 rY and 2 CX.
    assert decomposed["gates"] == {"ry": {"0": 16}, "x": {"1": 12}}
    assert decomposed["depth"] == 28


def test_gate_counts_follow_the_neuron_formula() -> None:
    # A neuron of order k with W monomials: 2^k (1 + W) rotations (one of the 2^k - 1 controlled -iY becomes its
    # inverse rY(-pi) in each nested inverse), 2^k - 1 controlled -iY or inverses, 2^k - 1 ancilla measurements.
    model = QRNN(2, 2, 1, order=2, degree=2)
    counts = gate_counts(step_circuit(model))
    neurons, monomials = 6, 3 + 3
    assert counts["gates"]["ry"]["0"] == neurons * 4 + 2  # plus the rY layer of the work stage
    assert counts["gates"]["ry"]["2"] == neurons * 4 * 3
    assert counts["gates"]["ry"]["1"] + counts["gates"]["neg_iy"]["1"] == neurons * (4 * 3 + 3)
    assert counts["total_gates"] == neurons * (4 * (1 + monomials) + 3) + 2
    assert counts["mid_circuit_measurements"] == neurons * 3
    assert circuit_depth(step_circuit(model)) >= counts["total_gates"] // 2


def test_neuron_success_probability_is_what_the_explicit_circuit_keeps() -> None:
    for order in (1, 2, 3):
        neuron = QuantumNeuron(0, [1, 2], order=order, degree=2).double()
        with torch.no_grad():
            neuron.weights.copy_(torch.tensor([0.4, -0.9, 1.3], dtype=torch.float64))
            neuron.theta.fill_(0.2)
        state = torch.randn((3,) + (2,) * 3, generator=torch.Generator().manual_seed(order), dtype=torch.float64)
        state = state / state.reshape(3, -1).norm(dim=1).view(3, 1, 1, 1)
        lanes = 3 + order
        full = torch.zeros((3,) + (2,) * lanes, dtype=torch.float64)
        full[(slice(None),) * 4 + (0,) * order] = state
        kept = full
        for operation in neuron.circuit(list(range(3, lanes))):
            if isinstance(operation, Gate):
                kept = apply_matrix(kept, operation.matrix(torch.float64), operation.target, operation.controls)
            else:
                kept = kept.clone()
                kept.select(operation.lane + 1, 1).zero_()
        expected = kept.reshape(3, -1).pow(2).sum(1)
        torch.testing.assert_close(neuron_success_probability(neuron, state), expected, rtol=1e-12, atol=1e-15)


def test_replay_matches_the_model_and_the_explicit_step() -> None:
    model = random_model(seed=4)
    inputs = torch.tensor([[[1, 0], [0, 1], [1, 1]], [[0, 0], [1, 1], [0, 1]]])
    targets = torch.tensor([[[0, 0], [1, 1], [0, 1]], [[0, 0], [0, 0], [1, 0]]])
    probs, measured, _ = model(inputs, targets, postselect=True)
    names, success, distributions = replay_sequences(model, inputs, measured)
    assert names == ["input.0", "input.1", "work.0.0", "work.0.1", "output.0", "output.1"]
    torch.testing.assert_close(distributions, probs, rtol=0, atol=1e-12)
    # The first step starts from |0...0>: the product of its neurons' success probabilities is the probability
    # that every ancilla measurement of the exported circuit reads 0.
    for sample in range(2):
        word = "".join(map(str, inputs[sample, 0].tolist()))
        _, explicit = simulate_step(step_circuit(model, word))
        torch.testing.assert_close(success[:, sample, 0].prod(), explicit[0], rtol=1e-10, atol=0)


# ---- the command line, on a tiny trained checkpoint ----


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("export-run")
    result = qrnn.train(dataset="elman-xor", epochs=2, workspace=2, stages=1, sentence_length=6,
                        validate_every=2, seed=3, out=str(out))
    return Path(result.final_checkpoint)


def test_export_qasm_from_a_checkpoint(checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "step.qasm"
    assert qrnn_main(["export", str(checkpoint), "--format", "qasm3", "--input", "01", "--out", str(out)]) == 0
    text = out.read_text()
    assert text.startswith("OPENQASM 3.0;\n") and "bit[18] postselect;" in text and "\nx q[1];" in text
    # The angles are the checkpoint's parameters, written exactly.
    model, _ = qrnn.load_checkpoint(checkpoint)
    theta = float(model.cell.input_stage[0].theta.detach().double() + model.cell.bias)
    assert f"ry({theta!r}) q[4];" in text


def test_resources_json_on_a_checkpoint(checkpoint: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert qrnn_main(["resources", str(checkpoint), "--json", "--samples", "4"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) == {"config", "qubits", "step", "checkpoint", "repetitions"}
    assert report["qubits"]["total"] == 6 and set(report["step"]) == {"native", "cx,ry"}
    repetitions = report["repetitions"]
    assert repetitions["dataset"] == "elman-xor" and repetitions["samples"] == 4
    assert repetitions["steps_per_sequence"] == 5
    output, neurons = repetitions["output"], repetitions["neurons"]
    # elman-xor scores one step in three: the other three steps of five are postselected on their target.
    assert output["postselected_steps_per_sequence"] == 3
    assert 0 < output["min_probability"] <= output["mean_probability"] <= 1
    assert output["mean_expected_repetitions_per_step"] >= 1 / output["mean_probability"] >= 1
    assert output["expected_sequence_runs"] >= output["mean_expected_repetitions_per_step"]
    assert len(neurons["per_neuron"]) == 6
    for entry in neurons["per_neuron"]:
        assert 0 < entry["mean_success_probability"] <= 1 and entry["mean_expected_attempts"] >= 1
    assert neurons["mean_expected_attempts_per_step"] >= 6
    assert neurons["mean_expected_step_restarts"] >= neurons["mean_expected_attempts_per_step"] / 6
    sequence = repetitions["sequence"]
    assert sequence["expected_runs"] >= max(output["expected_sequence_runs"], neurons["expected_sequence_runs"])
    assert sequence["log10_expected_runs"] == pytest.approx(math.log10(sequence["expected_runs"]))


def test_resources_text_without_a_checkpoint(capsys: pytest.CaptureFixture[str]) -> None:
    assert qrnn_main(["resources", "--input-size", "1", "--workspace", "1", "--stages", "0", "--order", "1",
                      "--degree", "1"]) == 0
    out = capsys.readouterr().out
    assert "qubits: 3 (1 I/O, 1 workspace, 1 ancilla)" in out
    assert "per step, in cx and ry: 28 gates (16 ry, 12 cx), depth 28" in out


def baseline_checkpoint(checkpoint: Path, folder: Path) -> Path:
    """A copy of `checkpoint` that says it holds a classical baseline (as `--model rnn` runs will)."""
    from qrnn.training.models import build_model

    payload = torch.load(checkpoint, weights_only=True)
    payload["config"]["model"] = "rnn"
    # Loading checks that the parameters are the ones the configuration builds.
    model = build_model({**payload["config"], "input_size": payload["input_size"]})
    payload["model_state_dict"] = model.state_dict()
    path = folder / "baseline.tar"
    torch.save(payload, path)
    return path


def test_bad_input_is_one_line(checkpoint: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cases = [
        (["export", str(baseline_checkpoint(checkpoint, tmp_path)), "--format", "qasm3"], "classical 'rnn' baseline"),
        (["export", str(checkpoint), "--format", "qasm3", "--input", "011"], "--input must be a word of 2 bits"),
        (["export", str(checkpoint), "--format", "qasm3", "--input", "0a"], "--input must be a word of 2 bits"),
        (["export", str(checkpoint), "--format", "qasm3", "--basis", "cz,rx"], "unknown basis 'cz,rx'; valid: none"),
        (["export", str(checkpoint), "--format", "quil"], "unknown format 'quil'; valid: qasm3, qiskit"),
        (["export", str(checkpoint), "--format", "qasm3", "--postselection", "pray"], "unknown postselection"),
        (["export", str(tmp_path / "missing.tar"), "--format", "qasm3"], "does not exist"),
        (["export", str(checkpoint), "--format", "qasm3", "--out", str(tmp_path / "no" / "f.qasm")], "does not exist"),
        (["resources", str(tmp_path / "missing.tar")], "does not exist"),
        (["resources", str(checkpoint), "--workspace", "3"], "not both"),
        (["resources", "--input-size", "2"], "missing --workspace, --stages"),
        (["resources", "--input-size", "2", "--workspace", "0", "--stages", "1"], "workspace_size must be"),
        (["resources", str(checkpoint), "--samples", "0"], "--samples must be an integer >= 1"),
    ]
    for argv, message in cases:
        assert qrnn_main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("qrnn: error: ") and message in err and err.count("\n") == 1, (argv, err)


def test_python_api_errors() -> None:
    model = random_model()
    with pytest.raises(QRNNError, match="2\\^2 = 4 amplitudes"):
        step_circuit(model, "01", workspace_state=[1.0, 0.0])
    with pytest.raises(QRNNError, match="zero vector"):
        step_circuit(model, "01", workspace_state=[0.0] * 4)
    with pytest.raises(QRNNError, match="give the input word"):
        simulate_step(step_circuit(model))
    with pytest.raises(QRNNError, match="unknown postselection mode"):
        to_qasm3(step_circuit(model), postselection="retry")
