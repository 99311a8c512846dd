"""`qrnn export` (a trained step as OpenQASM 3 or a Qiskit circuit) and `qrnn resources` (its cost).

Heavy imports (torch, qiskit) stay inside the handlers so that `qrnn --help` stays fast.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path
from typing import Any

from qrnn.errors import QRNNError

FORMATS = ("qasm3", "qiskit")


def _write_text(text: str, out: str | None) -> None:
    if out is None:
        sys.stdout.write(text)
        return
    try:
        Path(out).write_text(text)
    except OSError as error:
        raise QRNNError(f"cannot write {out}: {error.strerror}; choose another --out") from None


def command_export(args: argparse.Namespace) -> int:
    """`export`: one step of a checkpoint's QRNN as a circuit."""
    from qrnn.export.decompose import check_basis, to_basis
    from qrnn.export.qasm import check_postselection

    if args.format not in FORMATS:
        raise QRNNError(f"unknown format {args.format!r}; valid: {', '.join(FORMATS)}")
    check_basis(args.basis)
    check_postselection(args.postselection)
    if args.format == "qiskit":
        from qrnn.export.qiskit import require_qiskit

        require_qiskit()
        if args.postselection != "discard":
            raise QRNNError("--format qiskit expresses postselection as a `postselect` register; use --postselection "
                            "discard (restart is for --format qasm3)")
    if args.out is not None and not Path(args.out).parent.is_dir():
        raise QRNNError(f"--out {args.out}: the folder {Path(args.out).parent} does not exist")
    from qrnn.export.checkpoint import load_qrnn_checkpoint
    from qrnn.export.circuit import parse_input_word, step_circuit

    model, _ = load_qrnn_checkpoint(args.checkpoint)
    word = parse_input_word(args.input, model.cell.input_size)
    circuit = to_basis(step_circuit(model, word), args.basis)
    if args.format == "qasm3":
        from qrnn.export.qasm import to_qasm3

        _write_text(to_qasm3(circuit, args.postselection), args.out)
        return 0
    from qrnn.export.qiskit import save_qpy, to_qiskit

    quantum_circuit = to_qiskit(circuit)
    if args.out is None:
        print(quantum_circuit.draw(output="text"))
    else:
        save_qpy(quantum_circuit, args.out)
    return 0


def _json_safe(value: Any) -> Any:
    """NaN and infinities as null (JSON has neither)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {key: _json_safe(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_json_safe(item) for item in value]
    return value


def command_resources(args: argparse.Namespace) -> int:
    """`resources`: qubits, gates, depth and postselection repetitions."""
    sizes = {
        "--input-size": args.input_size,
        "--workspace": args.workspace,
        "--stages": args.stages,
        "--order": args.order,
        "--degree": args.degree,
    }
    given = [name for name, value in sizes.items() if value is not None]
    if args.checkpoint is not None and given:
        raise QRNNError(f"give a checkpoint or the model's sizes, not both (got the checkpoint and {given[0]})")
    if args.checkpoint is None:
        missing = [name for name in ("--input-size", "--workspace", "--stages") if sizes[name] is None]
        if missing:
            raise QRNNError(
                "give a checkpoint, or the model's sizes --input-size, --workspace and --stages "
                f"(--order and --degree default to 2); missing {', '.join(missing)}"
            )
        if args.samples is not None or args.seed is not None:
            raise QRNNError("--samples and --seed need a checkpoint (they choose its validation data)")
        from qrnn.export.resources import static_resources
        from qrnn.model import QRNN

        order = 2 if args.order is None else args.order
        degree = 2 if args.degree is None else args.degree
        report = static_resources(QRNN(args.input_size, args.workspace, args.stages, order, degree))
        report["repetitions"] = None
    else:
        from qrnn.export.resources import checkpoint_resources

        samples = 16 if args.samples is None else args.samples
        report = checkpoint_resources(args.checkpoint, samples=samples, seed=args.seed)
    if args.json:
        print(json.dumps(_json_safe(report), indent=2))
    else:
        from qrnn.export.resources import format_report

        print(format_report(report))
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add `qrnn export` and `qrnn resources`."""

    export = subparsers.add_parser(
        "export",
        help="write one step of a trained QRNN as a quantum circuit (OpenQASM 3 or Qiskit)",
        description=(
            "Write one step of a checkpoint's QRNN as an explicit circuit: the input word's flips, every "
            "neuron as its repeat-until-success circuit (ancilla measurements that must read 0), the rY layers "
            "and the measurement of the I/O word. Qubits: I/O lanes first (q[0] the most significant bit), "
            "then the workspace, then the neurons' ancillas."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    export.add_argument("checkpoint", help="a training checkpoint of a QRNN")
    export.add_argument("--format", required=True, metavar="FORMAT",
                        help=f"qasm3 (OpenQASM 3 text) or qiskit (a QPY file with --out, else a drawing); "
                        f"one of {', '.join(FORMATS)}")
    export.add_argument("--input", default=None, metavar="WORD",
                        help="a fixed input word of I bits (e.g. 01, lane 0 first); default: a run-time input "
                        "(qasm3: `input bit[I] word`; qiskit: a parameter vector `word`)")
    export.add_argument("--basis", default="none", metavar="BASIS",
                        help="none (multi-controlled rY) or cx,ry (every rotation decomposed into CX and rY)")
    export.add_argument("--postselection", default="discard", metavar="MODE",
                        help="qasm3 only: discard (keep shots whose `postselect` bits are all 0; fits any step) "
                        "or restart (a while loop repeating the step from |0...0> until every ancilla reads 0)")
    export.add_argument("--out", default=None, metavar="FILE", help="write here instead of standard output")
    export.set_defaults(func=command_export)

    resources = subparsers.add_parser(
        "resources",
        help="qubits, gates, depth and postselection repetitions of one QRNN step",
        description=(
            "The cost of one QRNN step on a quantum computer: qubits, gate counts by number of controls and "
            "depth, native and in CX and rY. With a checkpoint, also the expected repetitions that the output "
            "and neuron postselections cost on validation data of its dataset."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    resources.add_argument("checkpoint", nargs="?", default=None, help="a training checkpoint of a QRNN")
    resources.add_argument("--input-size", type=int, default=None, metavar="I",
                           help="I/O qubits (without a checkpoint)")
    resources.add_argument("--workspace", type=int, default=None, metavar="H", help="workspace qubits")
    resources.add_argument("--stages", type=int, default=None, metavar="S", help="work stages")
    resources.add_argument("--order", type=int, default=None, metavar="K", help="neuron order (default 2)")
    resources.add_argument("--degree", type=int, default=None, metavar="D", help="neuron degree (default 2)")
    resources.add_argument("--samples", type=int, default=None, metavar="N",
                           help="validation sequences to estimate repetitions on (default 16; checkpoint only)")
    resources.add_argument("--seed", type=int, default=None, metavar="SEED",
                           help="seed of the validation data and sampling (default: the run's seed)")
    resources.add_argument("--json", action="store_true", help="print the report as JSON")
    resources.set_defaults(func=command_resources)
