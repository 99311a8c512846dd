"""Towards hardware: a trained QRNN step as an explicit quantum circuit (OpenQASM 3, Qiskit), and its cost.

- `step_circuit(model, input_word=None, workspace_state=None)`: one step as data (`StepCircuit`), every neuron as
  its repeat-until-success circuit; `simulate_step` runs it gate by gate;
- `decompose_circuit` / `to_basis`: multi-controlled rotations in CX and rY;
- `to_qasm3(circuit, postselection="discard"|"restart")`: OpenQASM 3 text (no extra packages needed);
- `to_qiskit(circuit)`: a Qiskit `QuantumCircuit` (needs the `qiskit` extra);
- `static_resources` / `postselection_overhead`: qubits, gate counts and depth per step, and the expected
  repetitions that postselection costs on a checkpoint's validation data.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from qrnn.export.circuit import ClassicalFlip, Measure, Section, StepCircuit, simulate_step, step_circuit
    from qrnn.export.decompose import decompose_circuit, to_basis
    from qrnn.export.qasm import to_qasm3

__all__ = [
    "ClassicalFlip",
    "Measure",
    "Section",
    "StepCircuit",
    "decompose_circuit",
    "simulate_step",
    "step_circuit",
    "to_basis",
    "to_qasm3",
]

# Loaded on first use, so that building the command line (`qrnn --help`) does not import torch.
_HOMES = {
    **dict.fromkeys(["ClassicalFlip", "Measure", "Section", "StepCircuit", "simulate_step", "step_circuit"],
                    "qrnn.export.circuit"),
    "decompose_circuit": "qrnn.export.decompose",
    "to_basis": "qrnn.export.decompose",
    "to_qasm3": "qrnn.export.qasm",
}


def __getattr__(name: str) -> object:
    """The public names, imported from their modules on first use."""
    if name in _HOMES:
        import importlib

        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module 'qrnn.export' has no attribute {name!r}")
