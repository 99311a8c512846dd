"""A step circuit as a Qiskit `QuantumCircuit` (needs the `qiskit` extra: `pip install 'qrnn[qiskit]'`).

Qubit q[i] is lane i (Qiskit reads q[0] as the least significant bit of its indices; lane 0 is the most
significant bit of a QRNN word, so read `outcome` bit by bit, or reverse it). Classical registers:
- `postselect`: one bit per ancilla measurement, in order; a shot counts only if it is all 0 (a simulator's
  postselection; on hardware, see `qrnn.export.qasm` for what a failed measurement means);
- `outcome`: the measured I/O word, outcome[i] from lane i; afterwards the I/O lanes are flipped back to 0 where
  outcome[i] is 1 (`if_test`), ready for the next step.
Without a fixed input word the circuit has a parameter vector `word` (bind 0 or 1 per lane with
`assign_parameters`): lane i is turned by rY(pi * word[i]) to write the word and rY(-pi * word[i]) to remove
it. The I/O lanes are |0> when the word is written, so these are exactly the X flips (rY(pi)|0> = |1>,
rY(-pi)|1> = |0>) while staying unitary gates a parameter can switch.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from qrnn.errors import QRNNError
from qrnn.export.circuit import ClassicalFlip, Measure, StepCircuit
from qrnn.gates import Gate, Postselect


def require_qiskit() -> Any:
    """The qiskit module, or a one-line error saying how to install it."""
    try:
        import qiskit
    except ImportError:
        raise QRNNError("the qiskit format needs Qiskit: pip install 'qrnn[qiskit]' (or use --format qasm3)") from None
    return qiskit


def to_qiskit(circuit: StepCircuit) -> Any:
    """The step circuit as a `qiskit.QuantumCircuit` (see the module docstring)."""
    require_qiskit()
    from qiskit import ClassicalRegister, QuantumCircuit, QuantumRegister
    from qiskit.circuit import ParameterVector
    from qiskit.circuit.library import RYGate, XGate

    qubits = QuantumRegister(circuit.num_qubits, "q")
    postselect = ClassicalRegister(circuit.num_postselections, "postselect")
    outcome = ClassicalRegister(circuit.input_size, "outcome")
    registers = [qubits] + ([postselect] if circuit.num_postselections else []) + [outcome]
    result = QuantumCircuit(*registers, name="qrnn_step")
    word = ParameterVector("word", circuit.input_size) if circuit.input_word is None else None
    postselect_bit = 0
    for operation in circuit.operations:
        if isinstance(operation, Gate):
            if operation.name == "ry":
                gate = RYGate(float(operation.angle))  # type: ignore[arg-type]
            elif operation.name == "neg_iy":
                gate = RYGate(math.pi)  # -iY is exactly rY(pi)
            elif operation.name == "x":
                gate = XGate()
            else:
                raise ValueError(f"no Qiskit gate for {operation.name!r}")
            if operation.controls:
                gate = gate.control(len(operation.controls), annotated=False)
            result.append(gate, [qubits[lane] for lane in (*operation.controls, operation.target)])
        elif isinstance(operation, Postselect):
            result.measure(qubits[operation.lane], postselect[postselect_bit])
            postselect_bit += 1
        elif isinstance(operation, ClassicalFlip):
            if operation.register == "word":
                assert word is not None
                sign = -1 if operation.undo else 1
                result.ry(sign * math.pi * word[operation.bit], qubits[operation.lane])
            else:
                with result.if_test((outcome[operation.bit], 1)):
                    result.x(qubits[operation.lane])
        elif isinstance(operation, Measure):
            result.measure(qubits[operation.lane], outcome[operation.bit])
        else:
            raise TypeError(f"not a step operation: {operation!r}")
    return result


def simulate_postselected(quantum_circuit: Any, initial_state: Any = None) -> tuple[Any, float]:
    """Run an exported circuit on a Qiskit `Statevector` up to its first `outcome` measurement, projecting each
    `postselect` measurement onto 0 instead of sampling it. Returns the (normalised) state and the probability
    that every postselection succeeded. `initial_state`: a `Statevector` (default |0...0>)."""
    require_qiskit()
    from qiskit.quantum_info import Operator, Statevector

    state = Statevector.from_int(0, 2**quantum_circuit.num_qubits) if initial_state is None else initial_state
    keep_zero = Operator(np.diag([1.0, 0.0]))
    success = 1.0
    for instruction in quantum_circuit.data:
        operation = instruction.operation
        qargs = [quantum_circuit.find_bit(qubit).index for qubit in instruction.qubits]
        if operation.name == "measure":
            register = quantum_circuit.find_bit(instruction.clbits[0]).registers[0][0]
            if register.name != "postselect":
                break
            before = float(np.real(state.inner(state)))
            state = state.evolve(keep_zero, qargs=qargs)
            after = float(np.real(state.inner(state)))
            success *= after / before
            state = state * (1 / math.sqrt(after))
        elif operation.name == "barrier":
            continue
        else:
            state = state.evolve(operation, qargs=qargs)
    return state, success


def save_qpy(quantum_circuit: Any, path: str) -> None:
    """Write the circuit to `path` in Qiskit's QPY format (`qiskit.qpy.load` reads it back)."""
    require_qiskit()
    from qiskit import qpy

    with open(path, "wb") as stream:
        qpy.dump(quantum_circuit, stream)
