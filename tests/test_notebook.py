"""The quickstart notebook runs from top to bottom (with tiny sizes), so that it keeps working."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOK = Path(__file__).resolve().parent.parent / "examples" / "quickstart.ipynb"


def test_notebook_is_stored_without_outputs() -> None:
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    code = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code and all(not cell.outputs and cell.execution_count is None for cell in code)


def test_quickstart_notebook_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("QRNN_QUICKSTART_EPOCHS", "4")
    monkeypatch.setenv("QRNN_QUICKSTART_OUT", str(tmp_path / "runs"))
    # The kernel imports the qrnn this test imports (a source checkout without installing works too).
    source = str(Path(__import__("qrnn").__file__).resolve().parent.parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [source, os.environ.get("PYTHONPATH")])))
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    resources = {"metadata": {"path": str(tmp_path)}}
    NotebookClient(notebook, timeout=120, kernel_name="python3", resources=resources).execute()
    produced = [output for cell in notebook.cells if cell.cell_type == "code" for output in cell.outputs]
    outputs = "".join(output.get("text", "") for output in produced)
    assert "epochs 4 epochs; best validation loss" in outputs
    assert "character error rate (sampled, scored steps):" in outputs
    images = [output for output in produced if "image/png" in output.get("data", {})]
    assert len(images) == 2  # the loss curve and the output distribution
    assert list((tmp_path / "runs" / "checkpoints").glob("checkpoint--arrays-*-final-*.tar"))
