"""What one QRNN step costs on a quantum computer: qubits, gates, depth, and the repetitions postselection adds.

Static cost (`static_resources`): the step circuit with a run-time input word (`qrnn.export.circuit`), native and
decomposed into CX and rY: gates by name and number of controls, the classically controlled flips, the
mid-circuit (ancilla) and final measurements, and the depth: the number of layers when every operation
(gates, measurements, classical flips) is placed as early as the lanes it touches allow.

Repetitions (`postselection_overhead`), on the validation data of a checkpoint's dataset, run as the training's
validation runs it (the dataset's advice steps, `Batch.postselection`, postselected on their target, the others
sampled):
- output: on a postselected step the target word must come out; it does with probability p_t (the model's
  `probs`), so 1/p_t tries are expected; on hardware a wrong word has collapsed the workspace, so the whole
  sequence starts over: 1/prod_t p_t runs of the sequence are expected;
- neurons: a neuron succeeds (all its ancillas read 0) with the squared norm its postselection keeps, which for
  the state psi is sum_x P(sources = x) (cos(eta_x)^2m + sin(eta_x)^2m) (m = 2^order; the same number the
  explicit circuit gives, see the tests). Reported: the mean expected attempts 1/p per neuron; per step, the sum
  of 1/p over its neurons (the attempts if each neuron could be retried in place, as for basis-state inputs) and
  1/prod p (the attempts of the whole step when a failure restarts it); per sequence, with the outputs, the
  expected number of runs 1/prod over all postselections of the sequence, averaged over the sequences.
Expected numbers of runs are means over the validation sequences of 1/P(sequence succeeds), computed in log space
(and also given as log10) because they overflow for long sequences.
"""

from __future__ import annotations

import copy
import math
from collections import Counter
from typing import Any

import torch

from qrnn.bits import bits_to_int
from qrnn.errors import QRNNError
from qrnn.export.circuit import (
    ClassicalFlip,
    Measure,
    NeuronApplication,
    Rotation,
    StepCircuit,
    WordFlip,
    step_circuit,
    step_plan,
)
from qrnn.export.decompose import decompose_circuit
from qrnn.gates import Gate, Postselect, ry_matrix
from qrnn.model import QRNN
from qrnn.neuron import QuantumNeuron, amplified_amplitudes
from qrnn.statevector import apply_matrix, flip_lanes, marginal_probabilities, project, zero_state

# ---- static cost ----


def gate_counts(circuit: StepCircuit) -> dict[str, Any]:
    """Gates by name and number of controls ({"ry": {"0": 8, "2": 24}, ...}), classical flips, measurements."""
    gates: dict[str, Counter[int]] = {}
    classical = measured = postselections = 0
    for operation in circuit.operations:
        if isinstance(operation, Gate):
            gates.setdefault(operation.name, Counter())[len(operation.controls)] += 1
        elif isinstance(operation, Postselect):
            postselections += 1
        elif isinstance(operation, ClassicalFlip):
            classical += 1
        elif isinstance(operation, Measure):
            measured += 1
    by_controls = {
        name: {str(k): counts[k] for k in sorted(counts)} for name, counts in sorted(gates.items())
    }
    total = sum(sum(counts.values()) for counts in gates.values())
    multi_qubit = sum(count for counts in gates.values() for k, count in counts.items() if k > 0)
    return {
        "gates": by_controls,
        "total_gates": total,
        "controlled_gates": multi_qubit,
        "classically_controlled_x": classical,
        "mid_circuit_measurements": postselections,
        "final_measurements": measured,
    }


def circuit_depth(circuit: StepCircuit) -> int:
    """Layers when every operation (gate, measurement, classical flip) goes as early as its lanes allow."""
    level = [0] * circuit.num_qubits
    for operation in circuit.operations:
        if isinstance(operation, Gate):
            lanes = [*operation.controls, operation.target]
        else:
            lanes = [operation.lane]
        layer = max(level[lane] for lane in lanes) + 1
        for lane in lanes:
            level[lane] = layer
    return max(level, default=0)


def static_resources(model: QRNN) -> dict[str, Any]:
    """Qubits, and gate counts and depth per step, native and in CX and rY (see the module docstring)."""
    native = step_circuit(model)
    decomposed = decompose_circuit(native)
    cell = model.cell
    return {
        "config": dict(model.config),
        "qubits": {
            "io": cell.input_size,
            "workspace": cell.workspace_size,
            "ancillas": cell.order,
            "total": model.hardware_qubits,
        },
        "step": {
            "native": {**gate_counts(native), "depth": circuit_depth(native)},
            "cx,ry": {**gate_counts(decomposed), "depth": circuit_depth(decomposed)},
        },
    }


# ---- repetitions from postselection ----


def neuron_success_probability(neuron: QuantumNeuron, state: torch.Tensor) -> torch.Tensor:
    """The probability (per state of the batch) that the neuron's ancillas all read 0: the squared norm its
    postselection keeps, sum_x P(sources = x) (cos^2m + sin^2m)(eta_x)."""
    cos_table, sin_table = amplified_amplitudes(neuron.angles().to(state.dtype), neuron.order)
    return marginal_probabilities(state, neuron.sources) @ (cos_table.pow(2) + sin_table.pow(2))


@torch.no_grad()
def replay_sequences(
    model: QRNN, inputs: torch.Tensor, measured: torch.Tensor
) -> tuple[list[str], torch.Tensor, torch.Tensor]:
    """Follow sequences step by step on the full register (the model's dtype), the I/O word of step t being
    `measured[:, t]` (postselected or sampled). Returns the neurons' names, their success probabilities
    (#neurons x B x (L-1)) and the output distributions (B x 2^I x (L-1)) met on the way."""
    cell = model.cell
    batch, steps = measured.shape[0], measured.shape[1]
    io_lanes = list(range(cell.input_size))
    dtype = cell.output_stage[0].weights.dtype
    plan = step_plan(model)
    names = [part.name for part in plan if isinstance(part, NeuronApplication)]
    success = torch.empty(len(names), batch, steps, dtype=dtype)
    distributions = torch.empty(batch, 2**cell.input_size, steps, dtype=dtype)
    state = zero_state(model.num_qubits, batch, dtype)
    for t in range(steps):
        index = 0
        for part in plan:
            if isinstance(part, WordFlip):
                state = flip_lanes(state, io_lanes, inputs[:, t])
            elif isinstance(part, Rotation):
                state = apply_matrix(state, ry_matrix(part.angle, dtype), part.lane)
            else:
                success[index, :, t] = neuron_success_probability(part.neuron, state)
                state = part.neuron.apply(state)
                index += 1
        distributions[:, :, t] = marginal_probabilities(state, io_lanes)
        for lane in io_lanes:
            state, _ = project(state, lane, measured[:, t, lane])
        state = flip_lanes(state, io_lanes, measured[:, t])
    return names, success, distributions


def _mean_inverse(log_probability: torch.Tensor) -> tuple[float | None, float]:
    """The mean of 1/P over samples from their log P, as (value, log10 value); value None if it overflows."""
    log_mean = float(torch.logsumexp(-log_probability, 0)) - math.log(log_probability.numel())
    value = math.exp(log_mean) if log_mean < 700 else None
    return value, log_mean / math.log(10)


def postselection_overhead(
    model: QRNN,
    dataset: str,
    sentence_length: int,
    batch_size: int,
    samples: int = 16,
    seed: int = 0,
    alphabet: str = "file",
) -> dict[str, Any]:
    """Expected repetitions from the output and neuron postselections on `samples` validation sequences of
    `dataset` (see the module docstring), drawn with `seed` in batches of `batch_size`; `alphabet` is the run's
    `--alphabet` (text:PATH datasets)."""
    from qrnn.datasets import lookup
    from qrnn.training.loop import postselect_steps, sampling_seed

    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise QRNNError(f"--samples must be an integer >= 1, got {samples!r}")
    entry = lookup(dataset, alphabet=alphabet)
    entry.check_options(sentence_length=sentence_length, batch_size=batch_size, num_shards=1)
    data = entry.create(sentence_length=sentence_length, batch_size=batch_size, shard=0, num_shards=1, seed=seed)
    model = copy.deepcopy(model).double()
    sampling = torch.Generator().manual_seed(sampling_seed(seed, 0))
    neuron_parts, output_parts, selected_parts = [], [], []
    names: list[str] = []
    remaining = samples
    with torch.no_grad():
        while remaining > 0:
            batch = data.batch("validate")
            take = min(remaining, batch.inputs.shape[0])
            remaining -= take
            batch = batch.take(take)
            inputs, targets, postselected = batch.inputs, batch.targets, batch.postselection()
            probs, measured, _ = model(inputs, targets, postselect=postselect_steps(postselected), generator=sampling)
            names, success, _ = replay_sequences(model, inputs, measured)
            target_words = bits_to_int(targets[:, 1:])
            neuron_parts.append(success)
            output_parts.append(probs.gather(1, target_words.unsqueeze(1)).squeeze(1))
            selected_parts.append(postselected)
    neuron_p = torch.cat(neuron_parts, dim=1)  # neurons x B x T
    output_p = torch.cat(output_parts)  # B x T
    selected = torch.cat(selected_parts)  # B x T: steps postselected on their target
    log_output = torch.where(selected, output_p.log(), torch.zeros_like(output_p)).sum(1)
    log_neurons = neuron_p.log().sum(dim=(0, 2))
    per_step_attempts = (1 / neuron_p).sum(0)
    step_restarts = 1 / neuron_p.prod(0)
    output_runs, output_runs_log10 = _mean_inverse(log_output)
    neuron_runs, neuron_runs_log10 = _mean_inverse(log_neurons)
    runs, runs_log10 = _mean_inverse(log_output + log_neurons)
    chosen = output_p[selected]
    return {
        "dataset": dataset,
        "samples": int(output_p.shape[0]),
        "steps_per_sequence": int(output_p.shape[1]),
        "seed": seed,
        "output": {
            "postselected_steps_per_sequence": float(selected.sum(1).double().mean()),
            "mean_probability": float(chosen.mean()) if chosen.numel() else None,
            "min_probability": float(chosen.min()) if chosen.numel() else None,
            "mean_expected_repetitions_per_step": float((1 / chosen).mean()) if chosen.numel() else 1.0,
            "expected_sequence_runs": output_runs,
            "log10_expected_sequence_runs": output_runs_log10,
        },
        "neurons": {
            "per_neuron": [
                {
                    "name": name,
                    "mean_success_probability": float(neuron_p[k].mean()),
                    "mean_expected_attempts": float((1 / neuron_p[k]).mean()),
                }
                for k, name in enumerate(names)
            ],
            "mean_expected_attempts_per_neuron": float((1 / neuron_p).mean()),
            "mean_expected_attempts_per_step": float(per_step_attempts.mean()),
            "mean_expected_step_restarts": float(step_restarts.mean()),
            "expected_sequence_runs": neuron_runs,
            "log10_expected_sequence_runs": neuron_runs_log10,
        },
        "sequence": {
            "expected_runs": runs,
            "log10_expected_runs": runs_log10,
        },
    }


def checkpoint_resources(path: str, samples: int = 16, seed: int | None = None) -> dict[str, Any]:
    """Static cost and postselection repetitions of a checkpoint's QRNN on its dataset's validation data (the
    run's seed unless `seed` is given)."""
    from qrnn.export.checkpoint import load_qrnn_checkpoint

    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise QRNNError(f"--seed must be an integer >= 0, got {seed!r}")
    model, config = load_qrnn_checkpoint(path)
    report = static_resources(model)
    report["checkpoint"] = str(path)
    report["repetitions"] = postselection_overhead(
        model,
        config["dataset"],
        int(config["sentence_length"]),
        int(config["batch_size"]) * int(config["num_shards"]),
        samples,
        int(config["seed"]) if seed is None else seed,
        alphabet=config.get("alphabet", "file"),
    )
    return report


def _gate_label(name: str, controls: int) -> str:
    if name == "x":
        return {0: "x", 1: "cx"}.get(controls, f"{controls}-controlled x")
    base = "-iY" if name == "neg_iy" else name
    return base if controls == 0 else f"{controls}-controlled {base}"


def _format_counts(counts: dict[str, Any]) -> str:
    return ", ".join(
        f"{count} {_gate_label(name, int(controls))}"
        for name, by_controls in counts["gates"].items()
        for controls, count in by_controls.items()
    )


def format_report(report: dict[str, Any]) -> str:
    """A human-readable resource report."""
    q = report["qubits"]
    c = report["config"]
    lines = [
        f"QRNN input_size={c['input_size']} workspace={c['workspace_size']} stages={c['stages']} "
        f"order={c['order']} degree={c['degree']}",
        f"qubits: {q['total']} ({q['io']} I/O, {q['workspace']} workspace, {q['ancillas']} "
        f"ancilla{'s' if q['ancillas'] != 1 else ''})",
    ]
    for basis, title in (("native", "native gates"), ("cx,ry", "in cx and ry")):
        s = report["step"][basis]
        lines.append(
            f"per step, {title}: {s['total_gates']} gates ({_format_counts(s)}), depth {s['depth']}, "
            f"{s['mid_circuit_measurements']} ancilla measurements, {s['classically_controlled_x']} classically "
            f"controlled x, {s['final_measurements']} final measurements"
        )
    repetitions = report.get("repetitions")
    if repetitions:
        out, neurons, sequence = repetitions["output"], repetitions["neurons"], repetitions["sequence"]

        def runs(value: float | None, log10: float) -> str:
            return f"{value:.4g}" if value is not None else f"10^{log10:.1f}"

        lines.append(
            f"postselection on {repetitions['samples']} validation sequences of {repetitions['dataset']} "
            f"({repetitions['steps_per_sequence']} steps each):"
        )
        if out["mean_probability"] is None:
            lines.append("  output: every step is sampled, no output postselection")
        else:
            lines.append(
                f"  output: {out['postselected_steps_per_sequence']:.3g} postselected steps per sequence, "
                f"mean p {out['mean_probability']:.4g} (min {out['min_probability']:.3g}), "
                f"{out['mean_expected_repetitions_per_step']:.4g} expected repetitions per step, "
                f"{runs(out['expected_sequence_runs'], out['log10_expected_sequence_runs'])} expected runs per sequence"
            )
        lines.append(
            f"  neurons: {neurons['mean_expected_attempts_per_neuron']:.4g} expected attempts per neuron, "
            f"{neurons['mean_expected_attempts_per_step']:.4g} neuron attempts per step (retried in place), "
            f"{neurons['mean_expected_step_restarts']:.4g} attempts per step (restarted on failure), "
            f"{runs(neurons['expected_sequence_runs'], neurons['log10_expected_sequence_runs'])} runs per sequence"
        )
        worst = max(neurons["per_neuron"], key=lambda entry: entry["mean_expected_attempts"])
        lines.append(f"  hardest neuron: {worst['name']}, {worst['mean_expected_attempts']:.4g} expected attempts")
        lines.append(
            f"  sequence (outputs and neurons): "
            f"{runs(sequence['expected_runs'], sequence['log10_expected_runs'])} expected runs"
        )
    return "\n".join(lines)
