"""One QRNN step as an explicit circuit, as data: the gates a quantum computer would run.

Lanes (qubits): 0..I-1 the I/O lanes (lane 0 the most significant bit of a word), I..I+H-1 the workspace,
I+H..I+H+k-1 the k = `order` ancillas that every neuron shares (each neuron returns them to |0>).

A step, in order (the same as `QRNNCell.apply_step`):
1. write the input word onto the I/O lanes: X on lane i where bit i is 1 (a fixed word), or, with no fixed word,
   a `ClassicalFlip` that applies X where the classical input bit is 1 (OpenQASM 3: an `input bit[I] word`);
2. the input stage, then each work stage (an rY layer on the workspace, then its neurons), every neuron as its
   explicit repeat-until-success circuit (`QuantumNeuron.circuit`): multi-controlled rY rotations onto an
   ancilla, a controlled -iY onto the target, the inverse rotations, postselection of the ancillas on 0;
3. remove the input word (the same flips again);
4. the output stage (a neuron onto each I/O lane);
5. measure the I/O lanes (`Measure`), then return them to 0 by flipping where the outcome bit is 1, ready for
   the next step.

The workspace carries the recurrent state from step to step: the first step of a sequence starts from |0...0>,
and one exported step is a step on whatever workspace state the hardware holds when it starts. For a step from
a known state, `step_circuit(..., workspace_state=psi)` prepends a circuit preparing the real state psi on the
workspace (a tree of uniformly controlled rY rotations, in CX and rY).

Postselection: every neuron's ancilla measurements must read 0. A redundant second postselection of a lane that
no gate has touched since its last one (the nested circuits of order >= 2 produce them) is dropped: a projection
is idempotent, so the circuit's action is unchanged. How a failed measurement is handled (discard the shot, or
restart) is the business of the writers (`qrnn.export.qasm`, `qrnn.export.qiskit`).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace

import torch

from qrnn.errors import QRNNError
from qrnn.gates import Gate, Postselect
from qrnn.model import QRNN
from qrnn.neuron import QuantumNeuron
from qrnn.statevector import apply_matrix, marginal_probabilities, project, zero_state


@dataclass(frozen=True)
class ClassicalFlip:
    """X on `lane` where classical bit `bit` of register `register` is 1.

    `register` is "word" (the step's input word, given at run time) or "outcome" (the I/O word just measured).
    `undo` marks the second flip by the input word (which returns the I/O lane to 0): writers that express the
    flip as a rotation (Qiskit: rY(+-pi * word[i])) need to know which one it is.
    """

    lane: int
    register: str
    bit: int
    undo: bool = False


@dataclass(frozen=True)
class Measure:
    """Measure `lane` into bit `bit` of the `outcome` register (the I/O word of the step)."""

    lane: int
    bit: int


StepOperation = Gate | Postselect | ClassicalFlip | Measure


@dataclass(frozen=True)
class Section:
    """A titled part of a step circuit (e.g. one neuron); writers print the title as a comment."""

    title: str
    operations: tuple[StepOperation, ...]


@dataclass(frozen=True)
class StepCircuit:
    """One QRNN step as sections of operations on `num_qubits` lanes (see the module docstring).

    `input_word`: the fixed input word (bits, lane 0 first), or None where the word is a run-time input.
    `prepared`: whether the first section prepares a given workspace state (so the circuit needs |0...0> only).
    `decomposed`: False for the native gates (multi-controlled rY, controlled -iY), True in CX and rY (after
    `qrnn.export.decompose.decompose_circuit`).
    `config`: the model's configuration (for the writers' header).
    """

    input_size: int
    workspace_size: int
    num_ancillas: int
    sections: tuple[Section, ...]
    input_word: tuple[int, ...] | None = None
    prepared: bool = False
    decomposed: bool = False
    config: dict[str, object] = field(default_factory=dict)

    @property
    def num_qubits(self) -> int:
        """All lanes: I/O, workspace and ancillas."""
        return self.input_size + self.workspace_size + self.num_ancillas

    @property
    def io_lanes(self) -> list[int]:
        """The I/O lanes, lane 0 the most significant bit of a word."""
        return list(range(self.input_size))

    @property
    def workspace_lanes(self) -> list[int]:
        """The workspace lanes."""
        return list(range(self.input_size, self.input_size + self.workspace_size))

    @property
    def ancilla_lanes(self) -> list[int]:
        """The neurons' ancillas."""
        start = self.input_size + self.workspace_size
        return list(range(start, start + self.num_ancillas))

    @property
    def operations(self) -> list[StepOperation]:
        """Every operation, in order."""
        return [operation for section in self.sections for operation in section.operations]

    @property
    def num_postselections(self) -> int:
        """How many ancilla measurements must read 0 (the size of the `postselect` register)."""
        return sum(isinstance(operation, Postselect) for operation in self.operations)


# ---- the step's structure, shared with the resource estimate ----


@dataclass(frozen=True)
class WordFlip:
    """Write (or, with `undo`, remove) the input word on the I/O lanes."""

    undo: bool = False


@dataclass(frozen=True)
class Rotation:
    """The rY rotation of a work stage on one workspace lane; `angle` is the model's parameter entry."""

    name: str
    lane: int
    angle: torch.Tensor


@dataclass(frozen=True)
class NeuronApplication:
    """One neuron of the step, with its name (input.j, work.s.j, output.j)."""

    name: str
    neuron: QuantumNeuron


StepPart = WordFlip | Rotation | NeuronApplication


def step_plan(model: QRNN) -> list[StepPart]:
    """The parts of one step in the order they act (see the module docstring), before the measurement."""
    cell = model.cell
    parts: list[StepPart] = [WordFlip()]
    parts.extend(NeuronApplication(f"input.{j}", neuron) for j, neuron in enumerate(cell.input_stage))
    for s, stage in enumerate(cell.work_stages):
        for j, angle in enumerate(stage.rotations):
            parts.append(Rotation(f"work.{s}.rotation.{j}", cell.input_size + j, angle))
        parts.extend(NeuronApplication(f"work.{s}.{j}", neuron) for j, neuron in enumerate(stage.neurons))
    parts.append(WordFlip(undo=True))
    parts.extend(NeuronApplication(f"output.{j}", neuron) for j, neuron in enumerate(cell.output_stage))
    return parts


# ---- building the circuit ----


def parse_input_word(word: str | Sequence[int] | None, input_size: int) -> tuple[int, ...] | None:
    """An input word as bits (lane 0 first) from a string like "0110" or a sequence of 0/1; None stays None."""
    if word is None:
        return None
    bits = list(word) if not isinstance(word, str) else [int(c) if c in "01" else c for c in word.strip()]
    if len(bits) != input_size or any(bit not in (0, 1) or isinstance(bit, bool) for bit in bits):
        shown = word if isinstance(word, str) else list(word)
        example = ("01" * input_size)[:input_size]
        raise QRNNError(
            f"--input must be a word of {input_size} bits (0 or 1, lane 0 first), e.g. {example}; got {shown!r}"
        )
    return tuple(int(bit) for bit in bits)


def check_workspace_state(state: torch.Tensor | Sequence[float], workspace_size: int) -> torch.Tensor:
    """A workspace state as a float64 vector of 2^H real amplitudes (lane I the most significant bit), normalised;
    one-line errors for a wrong length, non-real or non-finite values, or the zero vector."""
    vector = torch.as_tensor(state)
    width = 2**workspace_size
    if vector.is_complex():
        if vector.imag.abs().max() > 1e-12:
            raise QRNNError("the workspace state must be real (a QRNN's amplitudes are real numbers)")
        vector = vector.real
    vector = vector.to(torch.float64).reshape(-1)
    if vector.numel() != width:
        raise QRNNError(f"the workspace state must have 2^{workspace_size} = {width} amplitudes, got {vector.numel()}")
    if not bool(torch.isfinite(vector).all()):
        raise QRNNError("the workspace state has non-finite amplitudes")
    norm = vector.norm()
    if norm < 1e-12:
        raise QRNNError("the workspace state is the zero vector; give a state with norm 1")
    return vector / norm


def _float_gate(gate: Gate) -> Gate:
    """The gate with its angle as a Python float (circuits as data must not hold the model's tensors)."""
    if gate.angle is None or isinstance(gate.angle, float):
        return gate
    return replace(gate, angle=float(gate.angle.detach()))


def drop_redundant_postselections(
    operations: Iterable[Gate | Postselect], fresh: Iterable[int]
) -> list[Gate | Postselect]:
    """Drop each postselection of a lane onto 0 that is already known to be |0>: the lanes in `fresh` at the
    start, and a lane postselected onto 0 that no gate has targeted since. Projections commute with gates that
    only use the lane as a control, and are idempotent, so the circuit's action is unchanged."""
    known_zero = set(fresh)
    kept: list[Gate | Postselect] = []
    for operation in operations:
        if isinstance(operation, Postselect):
            if operation.value == 0 and operation.lane in known_zero:
                continue
            if operation.value == 0:
                known_zero.add(operation.lane)
            else:
                known_zero.discard(operation.lane)
        else:
            known_zero.discard(operation.target)
        kept.append(operation)
    return kept


def _neuron_title(name: str, neuron: QuantumNeuron) -> str:
    stage, *rest = name.split(".")
    where = f"work stage {rest[0]}, neuron {rest[1]}" if stage == "work" else f"{stage} stage, neuron {rest[0]}"
    return f"{where}: lane {neuron.target} <- lanes {', '.join(map(str, neuron.sources))}"


def step_circuit(
    model: QRNN,
    input_word: str | Sequence[int] | None = None,
    workspace_state: torch.Tensor | Sequence[float] | None = None,
) -> StepCircuit:
    """One step of `model` as an explicit circuit (see the module docstring).

    `input_word`: a fixed word ("0110" or bits, lane 0 first): X gates; None: classical flips by a run-time
    `word` input. `workspace_state`: 2^H real amplitudes to prepare on the workspace first (None: the circuit
    acts on whatever workspace state the register holds; the first step of a sequence starts from |0...0>).
    """
    cell = model.cell
    word = parse_input_word(input_word, cell.input_size)
    io_lanes = list(range(cell.input_size))
    ancillas = list(range(model.num_qubits, model.hardware_qubits))
    sections: list[Section] = []
    if workspace_state is not None:
        from qrnn.export.decompose import prepare_real_state

        amplitudes = check_workspace_state(workspace_state, cell.workspace_size)
        workspace = list(range(cell.input_size, model.num_qubits))
        sections.append(Section("prepare the workspace state", tuple(prepare_real_state(workspace, amplitudes))))
    for part in step_plan(model):
        if isinstance(part, WordFlip):
            title = "remove the input word from" if part.undo else "write the input word onto"
            title += " the I/O lanes"
            flips: list[StepOperation]
            if word is None:
                flips = [ClassicalFlip(lane, "word", lane, undo=part.undo) for lane in io_lanes]
            else:
                flips = [Gate("x", lane) for lane in io_lanes if word[lane]]
            sections.append(Section(title, tuple(flips)))
        elif isinstance(part, Rotation):
            if part.lane == cell.input_size:
                sections.append(Section(f"work stage {part.name.split('.')[1]}: rY layer on the workspace", ()))
            gate = Gate("ry", part.lane, (), float(part.angle.detach()))
            last = sections[-1]
            sections[-1] = Section(last.title, last.operations + (gate,))
        else:
            raw = [_float_gate(op) if isinstance(op, Gate) else op for op in part.neuron.circuit(ancillas)]
            operations = tuple(drop_redundant_postselections(raw, ancillas))
            sections.append(Section(_neuron_title(part.name, part.neuron), operations))
    sections.append(Section("measure the I/O word", tuple(Measure(lane, lane) for lane in io_lanes)))
    sections.append(
        Section(
            "return the I/O lanes to 0 for the next step",
            tuple(ClassicalFlip(lane, "outcome", lane) for lane in io_lanes),
        )
    )
    return StepCircuit(
        input_size=cell.input_size,
        workspace_size=cell.workspace_size,
        num_ancillas=cell.order,
        sections=tuple(sections),
        input_word=word,
        prepared=workspace_state is not None,
        config=dict(model.config),
    )


# ---- simulating the circuit as data ----


def simulate_step(
    circuit: StepCircuit,
    input_word: str | Sequence[int] | None = None,
    workspace_state: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Run the circuit gate by gate (float64) up to its measurement; return the distribution over the I/O word
    (B x 2^I, lane 0 the most significant bit) and the probability that every ancilla measurement reads 0 (B).

    `input_word` is needed where the circuit takes the word at run time (and must match a fixed one otherwise).
    `workspace_state` (2^H or B x 2^H real amplitudes) is the workspace's state when the step starts (default
    |0...0>); a circuit that prepares its own state needs none.
    """
    word = parse_input_word(input_word, circuit.input_size)
    if circuit.input_word is None and word is None:
        raise QRNNError("this circuit takes its input word at run time; give the input word to simulate it")
    if circuit.input_word is not None and word is not None and word != circuit.input_word:
        raise QRNNError(f"this circuit has the fixed input word {circuit.input_word}, not {word}")
    if circuit.prepared and workspace_state is not None:
        raise QRNNError("this circuit prepares its own workspace state; simulate it without another one")
    lanes = circuit.num_qubits
    if workspace_state is None:
        state = zero_state(lanes, 1, torch.float64)
    else:
        work = torch.as_tensor(workspace_state, dtype=torch.float64).reshape(-1, 2**circuit.workspace_size)
        state = torch.zeros((work.shape[0], 2**circuit.input_size, 2**circuit.workspace_size, 2**circuit.num_ancillas),
                            dtype=torch.float64)
        state[:, 0, :, 0] = work / work.norm(dim=1, keepdim=True)
        state = state.reshape((work.shape[0],) + (2,) * lanes)
    success = torch.ones(state.shape[0], dtype=torch.float64)
    for operation in circuit.operations:
        if isinstance(operation, Gate):
            state = apply_matrix(state, operation.matrix(torch.float64), operation.target, operation.controls)
        elif isinstance(operation, Postselect):
            state, probability = project(state, operation.lane, operation.value)
            success = success * probability
        elif isinstance(operation, ClassicalFlip):
            if operation.register != "word":
                raise ValueError("a flip by the outcome can only come after the measurement")
            if word is not None and word[operation.bit]:
                state = apply_matrix(state, Gate("x", operation.lane).matrix(torch.float64), operation.lane)
        elif isinstance(operation, Measure):
            break
    return marginal_probabilities(state, circuit.io_lanes), success
