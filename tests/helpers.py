"""Test helpers: reference vectors of the original implementation, and a slow gate-by-gate simulator."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch

from qrnn import QRNN
from qrnn.cli import main as qrnn_main
from qrnn.statevector import flip_lanes, project, zero_state

REFERENCE_DIR = Path(__file__).parent / "data" / "reference-vectors"
REFERENCE_FILES = sorted(REFERENCE_DIR.glob("*.json"))


def load_reference(path: Path) -> dict:
    """One reference file, parsed."""
    return json.loads(path.read_text())


def reference_model(reference: dict, dtype: torch.dtype = torch.float64) -> QRNN:
    """A QRNN with the reference file's configuration and parameters."""
    c = reference["config"]
    model = QRNN(c["input_size"], c["workspace_size"], c["stages"], c["order"], c["degree"], c["bias"]).to(dtype)
    state_dict = {
        name: torch.tensor(values, dtype=torch.float64).reshape(reference["parameter_shapes"][name])
        for name, values in reference["parameters"].items()
    }
    model.load_original_state_dict(state_dict)
    return model


def slow_sequence(
    model: QRNN, inputs: torch.Tensor, targets: torch.Tensor, explicit: bool = False
) -> tuple[torch.Tensor, float]:
    """The training-mode sequence, simulated gate by gate on the full register (with the neurons' ancillas when
    `explicit`): the independent reference for the fast path. Returns probs (B x 2^I x (L-1)) and the min
    postselection probability."""
    cell = model.cell
    batch, length, width = inputs.shape
    lanes = model.num_qubits + (cell.order if explicit else 0)
    dtype = cell.output_stage[0].weights.dtype
    state = zero_state(lanes, batch, dtype)
    probs, minimum = [], 1.0
    for t in range(length - 1):
        state = cell.apply_step(state, inputs[:, t], explicit=explicit)
        if explicit:
            # The ancillas were postselected on 0 inside every neuron: drop them for the readout.
            io_and_work = state[(slice(None),) + (slice(None),) * model.num_qubits + (0,) * cell.order]
            distribution = cell.output_distribution(io_and_work)
        else:
            distribution = cell.output_distribution(state)
        probs.append(distribution)
        for lane in range(width):
            state, _ = project(state, lane, targets[:, t + 1, lane])
        index = torch.zeros(batch, dtype=torch.long)
        for lane in range(width):
            index = index * 2 + targets[:, t + 1, lane]
        minimum = min(minimum, float(distribution.detach().gather(1, index.unsqueeze(1)).min()))
        state = flip_lanes(state, list(range(width)), targets[:, t + 1])
    return torch.stack(probs, dim=2), minimum


def one_line_error(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """Run the CLI expecting a one-line error; return that line."""
    with pytest.raises(SystemExit) as exit_info:
        raise SystemExit(qrnn_main(argv))
    assert exit_info.value.code == 2
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err and captured.out == ""
    return lines[0]


def one_line_fault(capsys: pytest.CaptureFixture[str], argv: list[str]) -> str:
    """Run the CLI expecting a fault at run time: exit code 1 and one line on stderr (stdout may hold the run's
    progress); return that line."""
    code = qrnn_main(argv)
    captured = capsys.readouterr()
    assert code == 1, captured.err
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1, captured.err
    assert "Traceback" not in captured.err and "Traceback" not in captured.out
    return lines[0]


def terminate_after_best(monkeypatch: pytest.MonkeyPatch, at_epoch: int | None = None) -> None:
    """Make training send itself SIGTERM (as a cluster pre-empting a job does) right after writing a "best"
    checkpoint: the first one, or the one at `at_epoch`; once. `monkeypatch.undo()` (or the test's end) restores
    the loop."""
    import os
    import signal

    from qrnn.training import loop

    original = loop.ShardTrainer.write_checkpoint
    sent: list[int] = []

    def write_then_terminate(self: loop.ShardTrainer, kind: str) -> str | None:
        path = original(self, kind)
        if kind == "best" and not sent and (at_epoch is None or self.epoch == at_epoch):
            sent.append(self.epoch)
            os.kill(os.getpid(), signal.SIGTERM)
        return path

    monkeypatch.setattr(loop.ShardTrainer, "write_checkpoint", write_then_terminate)


def chart_svg(runs: list[np.ndarray], log_values: bool) -> str:
    """An SVG chart of `runs` (each an N x 2 array of step, value) with TensorBoard's layout: the value axis in
    a group translated by (40, 0), the step axis by (49, 378), the lines by (49, 0), all inside (0, 8)."""
    y_ticks = [0.07, 0.1, 0.2, 0.5, 1.0] if log_values else [0.0, 0.25, 0.5, 0.75, 1.0]

    def y_pixel(value: float) -> float:
        fraction = (math.log10(value) - math.log10(0.05)) / (math.log10(1.2) - math.log10(0.05)) if log_values else (
            value + 0.1
        ) / 1.2
        return 370.0 - 340.0 * fraction

    def x_pixel(step: float) -> float:
        return 103.0 + 0.76 * step  # after the (49, ...) translation: step 0 at 152

    ticks_y = "".join(
        f'<text style="text-anchor: end;" x="0" y="{y_pixel(v)}" dy="0.3em">{v:g}</text>' for v in y_ticks
    )
    labels = {0: "0", 500: "500", 1000: "1k", 1500: "1.5k"}
    ticks_x = "".join(
        f'<text style="text-anchor: middle;" x="{x_pixel(s)}" y="0" dy="0.95em">{t}</text>'
        for s, t in labels.items()
    )
    colours = ["rgb(0, 119, 187)", "rgb(255, 112, 67)", "rgb(187, 187, 187)"]
    paths = "".join(
        f'<path style="fill: none;" stroke="{colours[i % 3]}" stroke-width="2px" d="'
        + "".join(f"{'M' if j == 0 else 'L'}{x_pixel(s)},{y_pixel(v)}" for j, (s, v) in enumerate(run))
        + '"></path>'
        for i, run in enumerate(runs)
    )
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" width="1400" height="420"><g transform="translate(0, 8)">'
        f'<g transform="translate(40, 0)">{ticks_y}</g>'
        f'<g transform="translate(49, 378)">{ticks_x}</g>'
        f'<g transform="translate(49, 0)">{paths}<path d="M0,0C1,1 2,2 3,3"></path></g>'
        "</g></svg>"
    )
