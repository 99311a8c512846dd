"""OpenQASM 3 text of a step circuit (no extra packages needed).

Postselection, two ways (`postselection=`):
- "discard" (default): every ancilla measurement goes into its own bit of the register `postselect`; a shot
  counts only if all of `postselect` reads 0, and the `outcome` of the kept shots follows the model's
  distribution exactly. A failed measurement has disturbed the workspace, which carries the sequence's state, so
  a discarded shot means running the sequence again from its start. The program acts on whatever state the
  workspace holds when it starts (|0...0> at the first step of a sequence), so it fits any step of a sequence.
- "restart": repeat-until-success with OpenQASM 3 control flow: the step runs inside
  `while (!success) { reset q; ... }`; after each ancilla measurement `if (postselect[k]) { continue; }` starts
  the attempt over from |0...0> (and the prepared workspace state, if the circuit prepares one), and the I/O word
  is measured once an attempt has passed every postselection. Exact, since every attempt starts from the same
  state; it fits the first step of a sequence, or a step from a prepared state.

Why not retry a failed neuron in place, as repeat-until-success circuits do for basis-state inputs? A failed
measurement leaves the target turned by a fixed rotation, which could be undone, but it also reweights the
superposition of the neuron's source lanes by the failure amplitude sin(2 eta(x)) / sqrt(2), which cannot; the
workspace is in superposition, so a local retry would not give the state the model computes.

Without a fixed input word the program declares `input bit[I] word;` and flips lane i where `word[i]` is 1.
After the measurement the I/O lanes are flipped back to 0 where `outcome[i]` is 1, ready for the next step.
"""

from __future__ import annotations

import math

from qrnn import __version__
from qrnn.errors import QRNNError
from qrnn.export.circuit import ClassicalFlip, Measure, StepCircuit
from qrnn.gates import Gate, Postselect

POSTSELECTION_MODES = ("discard", "restart")


def check_postselection(mode: str) -> str:
    """The postselection mode as given, or a one-line error listing the known ones."""
    if mode not in POSTSELECTION_MODES:
        raise QRNNError(f"unknown postselection mode {mode!r}; valid: {', '.join(POSTSELECTION_MODES)}")
    return mode


def format_angle(angle: float) -> str:
    """An angle as OpenQASM text: pi and -pi by name, anything else as the shortest exact decimal."""
    if angle == math.pi:
        return "pi"
    if angle == -math.pi:
        return "-pi"
    return repr(float(angle))


def gate_line(gate: Gate) -> str:
    """One gate as an OpenQASM 3 statement (controls first, then the target)."""
    qubits = ", ".join(f"q[{lane}]" for lane in (*gate.controls, gate.target))
    count = len(gate.controls)
    modifier = "" if count == 0 else ("ctrl @ " if count == 1 else f"ctrl({count}) @ ")
    if gate.name == "x":
        if count == 1:
            return f"cx {qubits};"
        return f"{modifier}x {qubits};"
    if gate.name == "ry":
        return f"{modifier}ry({format_angle(float(gate.angle))}) {qubits};"  # type: ignore[arg-type]
    if gate.name == "neg_iy":
        # -iY is exactly rY(pi).
        return f"{modifier}ry(pi) {qubits};"
    raise ValueError(f"no OpenQASM form for gate {gate.name!r}")


def _header(circuit: StepCircuit, mode: str) -> list[str]:
    c = circuit.config
    io, work, ancillas = circuit.io_lanes, circuit.workspace_lanes, circuit.ancilla_lanes

    def span(lanes: list[int]) -> str:
        return f"q[{lanes[0]}]..q[{lanes[-1]}]" if len(lanes) > 1 else f"q[{lanes[0]}]"

    config = ", ".join(
        f"{key}={value:.10g}" if isinstance(value, float) else f"{key}={value}" for key, value in c.items()
    )
    lines = [
        "OPENQASM 3.0;",
        'include "stdgates.inc";',
        "",
        f"// One step of a QRNN cell, exported by qrnn {__version__} ({config}).",
        f"// Qubits: {span(io)} I/O (q[0] the most significant bit of a word), {span(work)} workspace, "
        f"{span(ancillas)} the neurons' ancillas.",
        "// Gates: " + ("cx and ry (rotations decomposed exactly), x for classical words." if circuit.decomposed
                        else "multi-controlled ry; each neuron's controlled -iY is ctrl @ ry(pi)."),
    ]
    if circuit.input_word is not None:
        lines.append(f"// Input word: {''.join(map(str, circuit.input_word))} (fixed).")
    else:
        lines.append("// Input word: the run-time input `word` (word[0] onto q[0]).")
    if mode == "discard":
        lines += [
            "// Postselection: each neuron measures its ancillas into `postselect`. Keep a shot only if every bit",
            "// of `postselect` is 0: the kept shots' `outcome` follows the QRNN's distribution exactly. A discarded",
            "// shot disturbed the workspace state, so its sequence must be run again from the start.",
        ]
        if circuit.prepared:
            lines.append("// Workspace: prepared at the start from |0...0>.")
        else:
            lines.append("// Workspace: the state it holds when the step starts (|0...0> at a sequence's first step).")
    else:
        lines += [
            "// Postselection: repeat until success. Every attempt starts from |0...0>"
            + (" and prepares the workspace state;" if circuit.prepared else " (a sequence's first step);"),
            "// an ancilla measuring 1 starts the next attempt at once. The I/O word is measured after the first",
            "// attempt that passes every postselection: its distribution is exactly the QRNN's.",
        ]
    return lines


def to_qasm3(circuit: StepCircuit, postselection: str = "discard") -> str:
    """The circuit as an OpenQASM 3 program (see the module docstring for the two postselection modes)."""
    mode = check_postselection(postselection)
    lines = _header(circuit, mode)
    if circuit.input_word is None:
        lines.append(f"input bit[{circuit.input_size}] word;")
    lines.append(f"qubit[{circuit.num_qubits}] q;")
    if circuit.num_postselections:
        lines.append(f"bit[{circuit.num_postselections}] postselect;")
    lines.append(f"bit[{circuit.input_size}] outcome;")
    restart = mode == "restart"
    indent = "  " if restart else ""
    if restart:
        lines += ["", "bool success = false;", "while (!success) {", f"{indent}reset q;"]
    postselect_bit = 0
    for section in circuit.sections:
        if indent and any(isinstance(op, Measure) for op in section.operations):
            # The attempt passed every postselection: leave the loop and measure.
            lines += [f"{indent}success = true;", "}"]
            indent = ""
        lines += ["", f"{indent}// {section.title}"]
        for operation in section.operations:
            if isinstance(operation, Gate):
                lines.append(indent + gate_line(operation))
            elif isinstance(operation, Postselect):
                if operation.value != 0:
                    raise ValueError("the exported circuits postselect ancillas on 0 only")
                lines.append(f"{indent}postselect[{postselect_bit}] = measure q[{operation.lane}];")
                if restart:
                    lines.append(f"{indent}if (postselect[{postselect_bit}]) {{ continue; }}")
                postselect_bit += 1
            elif isinstance(operation, ClassicalFlip):
                lines.append(f"{indent}if ({operation.register}[{operation.bit}]) {{ x q[{operation.lane}]; }}")
            elif isinstance(operation, Measure):
                lines.append(f"{indent}outcome[{operation.bit}] = measure q[{operation.lane}];")
            else:
                raise TypeError(f"not a step operation: {operation!r}")
    if indent:
        lines += [f"{indent}success = true;", "}"]
    return "\n".join(lines) + "\n"
