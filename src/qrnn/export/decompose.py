"""Multi-controlled rY rotations in CX and single-qubit rY, exactly and without ancillas; real state preparation.

A uniformly controlled rotation ("multiplexor") on `target` with controls c_1..c_k turns the target by rY(alpha_x)
for each control configuration x. With the Gray code g_0, g_1, ..., g_{N-1} (N = 2^k, g_i = i xor (i >> 1)), the
circuit

    rY(beta_0), CX(c_{d_0} -> target), rY(beta_1), CX(c_{d_1} -> target), ..., rY(beta_{N-1}), CX(c_{d_{N-1}})

where c_{d_i} is the control whose bit differs between g_i and g_{i+1} (cyclically), turns the target by
sum_i (-1)^{x . g_i} beta_i on configuration x: conjugating rY(b) by X gives rY(-b), and before rY(beta_i) the
CX gates have flipped the target x . g_i times; the cycle of CX gates flips it an even number of times in all.
So beta = H alpha / N with the Walsh-Hadamard matrix H_{i,x} = (-1)^{x . g_i} (Moettoenen et al., "Quantum
circuits for general multiqubit gates", PRL 93, 130502, 2004). A k-controlled rY(theta) is the multiplexor with
alpha = (0, ..., 0, theta): 2^k rY and 2^k CX (k = 0: the rY alone).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import torch

from qrnn.errors import QRNNError
from qrnn.export.circuit import Section, StepCircuit, StepOperation
from qrnn.gates import Gate

# The bases a circuit can be written in: the native gates, or CX and single-qubit rY (plus the X flips of
# classical words, which are not rotations and stay as they are).
BASES = ("none", "cx,ry")


def check_basis(basis: str) -> str:
    """The basis name as given, or a one-line error listing the known ones."""
    if basis not in BASES:
        raise QRNNError(f"unknown basis {basis!r}; valid: {', '.join(BASES)} (none keeps multi-controlled rotations)")
    return basis


def _gray(i: int) -> int:
    return i ^ (i >> 1)


def multiplexed_ry(target: int, controls: Sequence[int], angles: Sequence[float]) -> list[Gate]:
    """rY(angles[x]) on `target` for each configuration x of `controls` (controls[0] the most significant bit of
    x), as rY and CX gates (see the module docstring)."""
    k = len(controls)
    count = 2**k
    if len(angles) != count:
        raise ValueError(f"a multiplexor with {k} controls needs {count} angles, got {len(angles)}")
    if k == 0:
        return [Gate("ry", target, (), float(angles[0]))]
    gates: list[Gate] = []
    for i in range(count):
        code = _gray(i)
        beta = sum(
            angle * (-1) ** bin(x & code).count("1") for x, angle in enumerate(angles) if angle != 0.0
        ) / count
        gates.append(Gate("ry", target, (), float(beta)))
        changed = code ^ _gray((i + 1) % count)
        bit = changed.bit_length() - 1
        gates.append(Gate("x", target, (controls[k - 1 - bit],)))
    return gates


def controlled_ry(target: int, controls: Sequence[int], angle: float) -> list[Gate]:
    """The k-controlled rY(angle) (rotating where every control is 1) as 2^k rY and 2^k CX gates."""
    count = 2 ** len(controls)
    return multiplexed_ry(target, controls, [0.0] * (count - 1) + [float(angle)])


def prepare_real_state(lanes: Sequence[int], amplitudes: torch.Tensor) -> list[Gate]:
    """Gates taking |0...0> on `lanes` to the real state `amplitudes` (2^n, normalised, lanes[0] the most
    significant bit): level l turns lanes[l] by a multiplexor over lanes[:l], with angles splitting each prefix's
    weight between its two halves; the last level uses the signed amplitudes, so signs come out exactly."""
    n = len(lanes)
    amplitudes = torch.as_tensor(amplitudes, dtype=torch.float64).reshape(-1)
    if amplitudes.numel() != 2**n:
        raise ValueError(f"{n} lanes hold 2^{n} amplitudes, got {amplitudes.numel()}")
    gates: list[Gate] = []
    for level in range(n):
        halves = amplitudes.reshape(2**level, 2, -1)
        if level == n - 1:
            low, high = halves[:, 0, 0], halves[:, 1, 0]
        else:
            low, high = halves[:, 0].norm(dim=1), halves[:, 1].norm(dim=1)
        angles = [2 * math.atan2(float(h), float(lo)) for lo, h in zip(low, high, strict=True)]
        gates.extend(multiplexed_ry(lanes[level], list(lanes[:level]), angles))
    return gates


def decompose_operation(operation: StepOperation) -> list[StepOperation]:
    """One operation in the cx,ry basis: controlled rY and -iY (= rY(pi)) as multiplexors; X, CX, measurements
    and classical flips unchanged."""
    if not isinstance(operation, Gate):
        return [operation]
    if operation.name == "ry":
        return list(controlled_ry(operation.target, operation.controls, float(operation.angle)))  # type: ignore[arg-type]
    if operation.name == "neg_iy":
        return list(controlled_ry(operation.target, operation.controls, math.pi))
    if operation.name == "x" and len(operation.controls) <= 1:
        return [operation]
    raise ValueError(f"cannot decompose {operation!r} into cx and ry")


def decompose_circuit(circuit: StepCircuit) -> StepCircuit:
    """The circuit in the cx,ry basis (every section decomposed gate by gate)."""
    if circuit.decomposed:
        return circuit
    sections = tuple(
        Section(section.title, tuple(g for op in section.operations for g in decompose_operation(op)))
        for section in circuit.sections
    )
    return replace(circuit, sections=sections, decomposed=True)


def to_basis(circuit: StepCircuit, basis: str) -> StepCircuit:
    """The circuit in `basis`: "none" leaves it as it is, "cx,ry" decomposes it."""
    return decompose_circuit(circuit) if check_basis(basis) == "cx,ry" else circuit
