"""The reader of the original's published training-log charts (TensorBoard SVG exports): charts drawn here from
known data, in the layout TensorBoard exports (nested translated groups, tick labels, one path per run)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from helpers import chart_svg

from qrnn.cli import main
from qrnn.errors import QRNNError
from qrnn.original.training_logs import read_chart


def _runs() -> list[np.ndarray]:
    generator = np.random.default_rng(7)
    runs = []
    for length, floor, decay in [(40, 0.08, 300.0), (25, 0.3, 400.0), (60, 0.009, 200.0)]:
        steps = np.arange(length) * 25.0
        values = np.maximum(floor, 0.6 * np.exp(-steps / decay) * generator.uniform(0.8, 1.2, length))
        runs.append(np.stack([steps, values], axis=1))
    return runs


@pytest.mark.parametrize("log_values", [True, False])
def test_read_chart_recovers_the_drawn_points(tmp_path: Path, log_values: bool) -> None:
    runs = _runs()
    path = tmp_path / "loss_validate.svg"
    path.write_text(chart_svg(runs, log_values))
    chart = read_chart(path)
    assert chart.log_values is log_values
    assert len(chart.runs) == 3  # the curved path (a marker) is not a run
    for run, expected in zip(chart.runs, runs, strict=True):
        np.testing.assert_allclose(run.steps, expected[:, 0], atol=1e-9)
        np.testing.assert_allclose(run.values, expected[:, 1], rtol=1e-9)
        assert run.best == pytest.approx(expected[:, 1].min(), rel=1e-9)
        assert run.best_step == int(expected[np.argmin(expected[:, 1]), 0])
        assert run.last_step == int(expected[-1, 0])
    assert chart.count_below(0.1) == 2
    assert chart.count_below(0.01) == 1
    reached = [run.best_until(200.0) for run in chart.runs]
    assert chart.count_below(0.5, until=200.0) == sum(value < 0.5 for value in reached)


def test_original_logs_command_lists_runs_and_counts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "loss_validate.svg"
    path.write_text(chart_svg(_runs(), True))
    assert main(["original-logs", str(path), "--below", "0.1", "0.01"]) == 0
    text = capsys.readouterr().out
    assert "3 runs (log value axis)" in text
    assert "runs below 0.1: 2 of 3" in text
    assert "runs below 0.01: 1 of 3" in text
    assert main(["original-logs", str(path), "--below", "0.1", "--json"]) == 0
    record = json.loads(capsys.readouterr().out)[0]
    assert record["below"] == {"0.1": 2}
    assert [run["best"] for run in record["runs"]] == sorted(run["best"] for run in record["runs"])


def test_original_logs_rejects_what_is_not_a_chart(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(QRNNError, match="missing.svg does not exist"):
        read_chart(tmp_path / "missing.svg")
    broken = tmp_path / "broken.svg"
    broken.write_text("<svg><g>")
    with pytest.raises(QRNNError, match="not an SVG file"):
        read_chart(broken)
    empty = tmp_path / "empty.svg"
    empty.write_text('<svg xmlns="http://www.w3.org/2000/svg"><path d="M0,0L1,1"/></svg>')
    with pytest.raises(QRNNError, match="no axis tick labels"):
        read_chart(empty)
    good = tmp_path / "good.svg"
    good.write_text(chart_svg(_runs(), True))
    assert main(["original-logs", str(good), "--below", "0"]) == 2
    assert "--below takes positive values" in capsys.readouterr().err
