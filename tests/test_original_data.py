"""Importing the original implementation's data files (`qrnn data import-original`), reading resources from a
data directory (`--data-dir`, `QRNN_DATA_DIR`), and what checkpoints record about their data."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from qrnn.cli import build_parser
from qrnn.cli import main as qrnn_main
from qrnn.datasets import lookup, mnist, resources
from qrnn.errors import QRNNError
from qrnn.original.data import import_original
from qrnn.training import read_checkpoint, train
from qrnn.training.checkpoint import check_data

SPLITS = ("train", "validate", "test")
RESOURCE_NAMES = ["mnist-px10.npz", "mnist-px10-ds.npz", "mnist-px20-ds.npz", "mnist-pca.npz", "mnist-umap.npz"]


@pytest.fixture(autouse=True)
def fresh_resources(monkeypatch: pytest.MonkeyPatch):
    """No data directory set; loaded resources forgotten before and after (tests swap the data)."""
    monkeypatch.delenv(resources.DATA_DIR_VARIABLE, raising=False)
    resources.clear_cache()
    yield
    resources.clear_cache()


def _write_csv(path: Path, rows: list[list[int]]) -> None:
    with gzip.open(path, "wt") as stream:
        stream.write("".join(",".join(map(str, row)) + "\n" for row in rows))


def write_original_files(folder: Path) -> dict[str, list[list[int]]]:
    """A tiny copy of the original's `RVQE/datasets/res`: digit d has d % 3 + 1 rows in every split (so row
    counts differ by digit), with values derived from (digit, split, row). Returns the rows by file name."""
    folder.mkdir(parents=True)
    written: dict[str, list[list[int]]] = {}

    def put(name: str, width: int, maximum: int, digit: int, split_index: int) -> None:
        rows = [
            [(digit * 31 + split_index * 7 + row * 5 + column) % (maximum + 1) for column in range(width)]
            for row in range(digit % 3 + 1)
        ]
        _write_csv(folder / name, rows)
        written[name] = rows

    for digit in range(10):
        for split_index, split in enumerate(SPLITS):
            for infix, side in (("", 10), ("-deskewed", 10), ("-deskewed-large", 20)):
                put(f"mnist-simple-{digit}{infix}-{split}.csv.gz", side * side, 7, digit, split_index)
            put(f"mnist-pca-8bit-{digit}-{split}.csv.gz", 8, 255, digit, split_index)
            for dimensions in (2, 3, 4):
                put(f"mnist-umap-{dimensions}-{digit}-{split}.csv.gz", dimensions, 255, digit, split_index)
    for infix, side in (("", 10), ("-deskewed", 10), ("-deskewed-large", 20)):
        rows = [[(digit + column) % 8 for column in range(side * side)] for digit in range(10)]
        _write_csv(folder / f"mnist-centroids{infix}.csv.gz", rows)
        written[f"mnist-centroids{infix}.csv.gz"] = rows
    return written


def test_import_writes_format_2_resources_that_the_datasets_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = write_original_files(tmp_path / "RVQE" / "datasets" / "res")
    out = tmp_path / "data"
    written = import_original(tmp_path, out)  # a checkout: the folder holding RVQE/
    assert sorted(path.name for path in written) == sorted(RESOURCE_NAMES)
    counts = [[digit % 3 + 1 for digit in range(10)]] * 3
    with np.load(out / "mnist-px10-ds.npz", allow_pickle=False) as pixels:
        assert pixels["format_version"].tolist() == [2] and pixels["counts"].tolist() == counts
        assert pixels["side"].tolist() == [10]
        assert pixels["validate_labels"].tolist() == [d for d in range(10) for _ in range(d % 3 + 1)]
        # Digit 2 of validation: rows 3..5 (after 1 row of digit 0 and 2 of digit 1).
        assert pixels["validate_words"][3:6].tolist() == rows["mnist-simple-2-deskewed-validate.csv.gz"]
        assert pixels["centroids"].tolist() == rows["mnist-centroids-deskewed.csv.gz"]
    with np.load(out / "mnist-umap.npz", allow_pickle=False) as umap:
        assert umap["test_d3"][-1:].tolist() == rows["mnist-umap-3-9-test.csv.gz"]  # digit 9: one row
    with np.load(out / "mnist-px20-ds.npz", allow_pickle=False) as large:
        assert large["train_words"].shape == (sum(counts[0]), 400)

    monkeypatch.setenv(resources.DATA_DIR_VARIABLE, str(out))
    dataset = lookup("mnist36").create(sentence_length=0, batch_size=1)
    assert dataset.split_size("test") == 1 + 1  # digits 3 and 6 have one row each
    batch = next(iter(dataset.split_batches("test", 10)))
    first = rows["mnist-simple-3-test.csv.gz"][0]
    # Lane 0 is bit 2 of each pixel word, lane 1 bit 1 (the first two of the original's three views).
    assert batch.inputs[0].tolist() == [[value >> 2 & 1, value >> 1 & 1] for value in first]
    assert batch.labels.tolist() == [0, 1] and batch.targets[1, -1].tolist() == [0, 1]
    pca = lookup("mnist-pca-r4-p2").create(sentence_length=0, batch_size=1)
    codes = rows["mnist-pca-8bit-0-test.csv.gz"][0]
    assert next(iter(pca.split_batches("test", 1))).inputs[0].tolist() == [
        [code >> (7 - bit) & 1 for bit in range(4)] for code in codes[:2]
    ]


def test_missing_file_and_bad_row_are_one_line_and_nothing_is_written(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "res"
    write_original_files(folder)
    (folder / "mnist-umap-4-9-test.csv.gz").unlink()
    out = tmp_path / "data"
    assert qrnn_main(["data", "import-original", str(folder), "--out", str(out)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "mnist-umap-4-9-test.csv.gz is missing" in error
    assert not out.exists()

    _write_csv(folder / "mnist-umap-4-9-test.csv.gz", [[1, 2, 3, 4], [1, 2, 3, 256]])
    with pytest.raises(QRNNError, match=r"mnist-umap-4-9-test.csv.gz: row 2 is not 4 integers 0-255: '1,2,3,256'"):
        import_original(folder, out)
    _write_csv(folder / "mnist-umap-4-9-test.csv.gz", [[1, 2, 3, 4]])
    _write_csv(folder / "mnist-simple-5-train.csv.gz", [[0] * 100, [1] * 99, [2] * 100])
    with pytest.raises(QRNNError, match=r"mnist-simple-5-train.csv.gz: row 2 is not 100 integers 0-7"):
        import_original(folder, out)
    _write_csv(folder / "mnist-simple-5-train.csv.gz", [[0] * 100, ["x"] + [1] * 99])
    with pytest.raises(QRNNError, match=r"row 2 is not 100 integers 0-7: 'x,1,1"):
        import_original(folder, out)
    assert not out.exists()
    with pytest.raises(QRNNError, match="is not a folder"):
        import_original(tmp_path / "nowhere", out)


def test_data_dir_option_sets_the_variable_before_or_after_the_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv(resources.DATA_DIR_VARIABLE, "")  # restored after the test
    assert resources.data_directory() == resources.DATA_DIR
    build_parser().parse_args(["--data-dir", str(tmp_path), "datasets"])
    assert resources.data_directory() == tmp_path.resolve()
    monkeypatch.setenv(resources.DATA_DIR_VARIABLE, "")
    args = build_parser().parse_args(["evaluate", "x.tar", "--data-dir", str(tmp_path)])
    assert args.data_dir == str(tmp_path.resolve()) and resources.data_directory() == tmp_path.resolve()
    for command in ("train", "resume", "sweep", "plot"):
        assert "--data-dir" in build_parser()._subparsers._group_actions[0].choices[command].format_help()
    with pytest.raises(SystemExit) as exit_info:
        build_parser().parse_args(["--data-dir", str(tmp_path / "missing"), "datasets"])
    assert exit_info.value.code == 2 and "no such folder" in capsys.readouterr().err
    # A data directory without the file: one line naming the directory and both ways to fill it.
    with pytest.raises(QRNNError, match=r"missing from the data directory .*import-original"):
        lookup("mnist01").check_options(sentence_length=0, batch_size=1, num_shards=1)


def _payload(**fields: object) -> dict[str, object]:
    return {"config": {"dataset": "mnist01"}, **fields}


def test_old_layouts_are_refused_and_other_data_is_warned_about(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for old in ({}, {"dataset_layout_version": 1}):
        with pytest.raises(QRNNError, match="made with the old layout of dataset mnist01 .* must be retrained"):
            check_data(_payload(**old), "old.tar")
    shipped = _payload(dataset_layout_version=2, data={"kind": "shipped"})
    assert check_data(shipped, "a.tar") is None
    assert check_data(_payload(dataset_layout_version=2), "a.tar") is None  # no record: nothing to compare
    shutil.copy(resources.DATA_DIR / "mnist-px10.npz", tmp_path / "mnist-px10.npz")
    monkeypatch.setenv(resources.DATA_DIR_VARIABLE, str(tmp_path))
    warning = check_data(shipped, "runs/a.tar")
    expected = f"checkpoint a.tar was trained on the shipped resources, not the data directory {tmp_path}"
    assert warning == f"warning: {expected}"
    record = resources.data_source(["mnist-px10.npz"])
    assert record["kind"] == "directory" and record["files"] == ["mnist-px10.npz"]
    trained_here = _payload(dataset_layout_version=2, data=record)
    assert check_data(trained_here, "a.tar") is None
    other = tmp_path / "other"
    other.mkdir()
    (other / "mnist-px10.npz").write_bytes(b"other data")
    monkeypatch.setenv(resources.DATA_DIR_VARIABLE, str(other))
    assert "was trained on the data directory" in check_data(trained_here, "a.tar")
    # The original's own checkpoints: fine on a data directory (its imported files), warned on shipped data.
    original = _payload(dataset_layout_version=2, data={"kind": "original"})
    assert check_data(original, "a.tar") is None
    monkeypatch.delenv(resources.DATA_DIR_VARIABLE)
    assert "the original implementation's data files, not the shipped resources" in check_data(original, "a.tar")


def test_a_run_records_its_data_and_evaluation_on_other_data_warns(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    result = train(dataset="mnist-pca-r2-p2", epochs=1, batch_size=1, validate_every=1, out=str(tmp_path / "run"))
    payload = read_checkpoint(result.final_checkpoint)
    assert payload["dataset_layout_version"] == mnist.MnistDataset.layout_version == 2
    assert payload["data"] == {"kind": "shipped"}
    data = tmp_path / "data"
    data.mkdir()
    shutil.copy(resources.DATA_DIR / "mnist-pca.npz", data / "mnist-pca.npz")
    capsys.readouterr()
    monkeypatch.setenv(resources.DATA_DIR_VARIABLE, "")
    argv = ["--data-dir", str(data), "evaluate", result.final_checkpoint, "--samples", "20", "--json"]
    assert qrnn_main(argv) == 0
    captured = capsys.readouterr()
    assert json.loads(captured.out)["samples"] == 20
    assert captured.err.count("\n") == 1
    assert "was trained on the shipped resources, not the data directory" in captured.err
    payload["dataset_layout_version"] = 1
    old = tmp_path / "old.tar"
    torch.save(payload, old)
    assert qrnn_main(["evaluate", str(old)]) == 2
    assert "made with the old layout of dataset mnist-pca-r2-p2" in capsys.readouterr().err


def test_skip_missing_imports_the_complete_resources_of_an_older_checkout(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "res"
    rows = write_original_files(folder)
    # As at the original's commits of May 2020: no 20x20 images, and one PCA file gone.
    for path in folder.glob("mnist-*deskewed-large*"):
        path.unlink()
    (folder / "mnist-pca-8bit-7-validate.csv.gz").unlink()
    out = tmp_path / "data"
    assert qrnn_main(["data", "import-original", str(folder), "--out", str(out)]) == 2
    assert not out.exists()
    capsys.readouterr()
    assert qrnn_main(["data", "import-original", str(folder), "--out", str(out), "--skip-missing"]) == 0
    captured = capsys.readouterr()
    assert sorted(path.name for path in out.iterdir()) == ["mnist-px10-ds.npz", "mnist-px10.npz", "mnist-umap.npz"]
    assert captured.err.count("\n") == 1 and "mnist-px20-ds.npz (no mnist-simple-0-deskewed-large-train.csv.gz)" in (
        captured.err) and "mnist-pca.npz (no mnist-pca-8bit-7-validate.csv.gz)" in captured.err
    with np.load(out / "mnist-px10.npz", allow_pickle=False) as pixels:
        assert pixels["test_words"][-1:].tolist() == rows["mnist-simple-9-test.csv.gz"]
    # A present file is still checked in full.
    _write_csv(folder / "mnist-simple-4-test.csv.gz", [[8] * 100])
    with pytest.raises(QRNNError, match=r"mnist-simple-4-test.csv.gz: row 1 is not 100 integers 0-7"):
        import_original(folder, tmp_path / "again", skip_missing=True)
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(QRNNError, match=r"holds none of the original's MNIST resources complete: mnist-px10.npz \(no"):
        import_original(empty, tmp_path / "again", skip_missing=True)
