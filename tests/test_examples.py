"""The examples run (the notebook has its own test, `test_notebook.py`), and a text run folded with
`--alphabet original` trains, resumes and evaluates on a file of more than 32 characters: every place that
rebuilds a run's dataset takes the run's recorded options."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from qrnn.cli import main as qrnn_main
from qrnn.training import evaluate_checkpoints, read_checkpoint, train

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
# More than 32 different characters: only `--alphabet original` (the 5-bit alphabet of simple-quotes) takes it.
WIDE_TEXT = "The Quick brown fox; jumps over the lazy dog! 0123456789 [] {} ()\n" * 20


def wide_text(directory: Path) -> Path:
    path = directory / "wide.txt"
    path.write_text(WIDE_TEXT, encoding="utf-8")
    assert len(set(WIDE_TEXT)) > 32
    return path


def test_a_folded_text_run_trains_resumes_and_evaluates(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    text = wide_text(tmp_path)
    first = train(dataset=f"text:{text}", alphabet="original", epochs=3, validate_every=3,
                  num_validation_samples=0, out=str(tmp_path / "out"))
    assert first.final_checkpoint is not None
    capsys.readouterr()
    assert qrnn_main(["resume", first.final_checkpoint, "--epochs", "5"]) == 0
    assert "done: 5 epochs" in capsys.readouterr().out
    resumed = sorted((tmp_path / "out" / "checkpoints").glob("*-final-*.tar"), key=lambda p: p.stat().st_mtime)[-1]
    assert read_checkpoint(resumed)["epoch"] == 5
    assert qrnn_main(["evaluate", str(resumed), "--samples", "8"]) == 0
    assert "character error rate" in capsys.readouterr().out
    # The Python API and an ensemble of the two checkpoints as well.
    report = evaluate_checkpoints([first.final_checkpoint, str(resumed)], samples=8)
    assert len(report.members) == 2


def test_train_text_file_example_runs(tmp_path: Path) -> None:
    text = wide_text(tmp_path)
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "train_text_file.py"), "--text", str(text), "--epochs", "3",
         "--out", str(tmp_path / "runs")],
        cwd=tmp_path, capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr
    assert "character error rate" in done.stdout
    assert "continue with: qrnn resume" in done.stdout
