"""Importing the original implementation's MNIST data files as qrnn resources (`qrnn data import-original`).

The original ships its preprocessed MNIST in `RVQE/datasets/res/` as gzip-compressed CSV files without a header,
one image per row, one file per digit and split:
- `mnist-simple-{digit}[-deskewed[-large]]-{split}.csv.gz`: P integers 0-7 (P = 100, or 400 for `-large`), the
  3-bit pixel words (bit 2 is view 0), and `mnist-centroids[-deskewed[-large]].csv.gz`: one such row per digit;
- `mnist-pca-8bit-{digit}-{split}.csv.gz`: 8 codes 0-255;
- `mnist-umap-{D}-{digit}-{split}.csv.gz`: D codes 0-255, for D = 2, 3, 4.
`import_original` reads and checks every file first (each inflating to at most `MAX_CSV_BYTES`), then writes the
MNIST resources in format 2 (the shipped file names, see `qrnn.datasets.mnist`), all or none; a missing file or a
malformed row stops it with one line naming the file and the row, before anything is written. Older commits of
the original lack some files (its MNIST pools of late May 2020 trained on the plain 10x10 images of other splits
than 400a5eb's, before the PCA and UMAP codes existed): `--skip-missing` imports the resources whose files are all
there and names the others.
"""

from __future__ import annotations

import gzip
import os
import shutil
import sys
import tempfile
import zlib
from functools import partial
from pathlib import Path

import numpy as np

from qrnn.datasets.base import STAGES
from qrnn.datasets.mnist_build import PCA_RESOURCE, UMAP_RESOURCE
from qrnn.datasets.pipeline import write_npz
from qrnn.errors import QRNNError, RunFault
from qrnn.files import describe_error, path_problem

RESOURCE_FOLDER = Path("RVQE") / "datasets" / "res"
DIGITS = tuple(range(10))
FORMAT_VERSION = np.array([2], dtype=np.int64)
# Resource file name -> (the original's file-name infix, image side).
PIXEL_FILES = {
    "mnist-px10.npz": ("", 10),
    "mnist-px10-ds.npz": ("-deskewed", 10),
    "mnist-px20-ds.npz": ("-deskewed-large", 20),
}
PCA_CODES = 8
# The most a data file may inflate to: about three times the original's largest (the training images of one
# digit, 20x20 pixels: about 5 MB of text). Parsing a CSV takes several times its size in memory.
MAX_CSV_BYTES = 16 * 2**20
UMAP_DIMENSIONS = (2, 3, 4)


def resource_folder(path: Path) -> Path:
    """The folder holding the original's files: `path` itself, or `path/RVQE/datasets/res` for a checkout."""
    path = Path(path).expanduser()
    if (path / RESOURCE_FOLDER).is_dir():
        return path / RESOURCE_FOLDER
    if path.is_dir():
        return path
    raise QRNNError(f"{path} is not a folder; give a checkout of the original (holding RVQE/) or its RVQE/datasets/res")


def read_rows(path: Path, width: int, maximum: int) -> np.ndarray:
    """The rows of one of the original's CSV files as a uint8 N x `width` array of integers 0..`maximum`; one
    line naming the file and the (1-based) row for a missing file or a malformed row."""
    problem = path_problem(path, "data file")
    if problem is not None:
        if problem.endswith("does not exist"):
            raise QRNNError(f"{path} is missing; the original's data files are in its RVQE/datasets/res")
        raise QRNNError(problem)
    try:
        with gzip.open(path, "rb") as stream:
            # Decompress at most one byte more than allowed: a small file may inflate to gigabytes.
            text = stream.read(MAX_CSV_BYTES + 1)
        if len(text) > MAX_CSV_BYTES:
            raise QRNNError(
                f"{path} inflates to more than {MAX_CSV_BYTES:,} bytes; the original's largest data file has about "
                "5 MB, so this is not one of them"
            )
        lines = text.decode("ascii").splitlines()
    except (OSError, EOFError, UnicodeDecodeError, zlib.error) as error:
        raise QRNNError(f"{path} is not a readable gzip-compressed CSV file ({type(error).__name__})") from None
    if not lines:
        raise QRNNError(f"{path} holds no rows")
    try:
        values = np.array([line.split(",") for line in lines], dtype=np.int64)
        if values.ndim == 2 and values.shape[1] == width and values.min() >= 0 and values.max() <= maximum:
            return values.astype(np.uint8)
    except ValueError:
        pass
    for number, line in enumerate(lines, start=1):
        cells = line.split(",")
        valid = len(cells) == width and all(cell.strip().isdigit() and int(cell) <= maximum for cell in cells)
        if not valid:
            shown = line if len(line) <= 60 else line[:57] + "..."
            raise QRNNError(f"{path}: row {number} is not {width} integers 0-{maximum}: {shown!r}")
    raise AssertionError("unreachable: a row must be malformed")  # pragma: no cover


def _per_digit(folder: Path, name: str, width: int, maximum: int) -> dict[str, list[np.ndarray]]:
    """Each split's rows of every digit, from the files `name.format(digit=..., split=...)`."""
    return {
        split: [read_rows(folder / name.format(digit=digit, split=split), width, maximum) for digit in DIGITS]
        for split in STAGES
    }


def _common_arrays(rows: dict[str, list[np.ndarray]]) -> dict[str, np.ndarray]:
    """`format_version`, `counts` and each split's labels (rows grouped by digit)."""
    arrays = {
        "format_version": FORMAT_VERSION,
        "counts": np.array([[len(part) for part in rows[split]] for split in STAGES], dtype=np.int64),
    }
    for split in STAGES:
        arrays[f"{split}_labels"] = np.concatenate(
            [np.full(len(part), digit, dtype=np.uint8) for digit, part in zip(DIGITS, rows[split], strict=True)]
        )
    return arrays


def resource_sources(folder: Path) -> dict[str, list[Path]]:
    """Every MNIST resource (file name) and the original's files it is made from, under `folder`."""
    sources: dict[str, list[Path]] = {}
    for filename, (infix, _side) in PIXEL_FILES.items():
        sources[filename] = [folder / f"mnist-simple-{digit}{infix}-{split}.csv.gz"
                             for split in STAGES for digit in DIGITS] + [folder / f"mnist-centroids{infix}.csv.gz"]
    sources[PCA_RESOURCE] = [folder / f"mnist-pca-8bit-{digit}-{split}.csv.gz" for split in STAGES for digit in DIGITS]
    sources[UMAP_RESOURCE] = [folder / f"mnist-umap-{dimensions}-{digit}-{split}.csv.gz"
                              for dimensions in UMAP_DIMENSIONS for split in STAGES for digit in DIGITS]
    return sources


def _pixels(folder: Path, infix: str, side: int) -> dict[str, np.ndarray]:
    pixels = side * side
    rows = _per_digit(folder, f"mnist-simple-{{digit}}{infix}-{{split}}.csv.gz", pixels, 7)
    centroids = read_rows(folder / f"mnist-centroids{infix}.csv.gz", pixels, 7)
    if len(centroids) != len(DIGITS):
        raise QRNNError(f"{folder / f'mnist-centroids{infix}.csv.gz'} has {len(centroids)} rows, not 10")
    arrays = _common_arrays(rows)
    arrays["side"] = np.array([side], dtype=np.int64)
    arrays["centroids"] = centroids
    for split in STAGES:
        arrays[f"{split}_words"] = np.concatenate(rows[split])
    return arrays


def _pca(folder: Path) -> dict[str, np.ndarray]:
    pca = _per_digit(folder, "mnist-pca-8bit-{digit}-{split}.csv.gz", PCA_CODES, 255)
    arrays = _common_arrays(pca)
    for split in STAGES:
        arrays[f"{split}_codes"] = np.concatenate(pca[split])
    return arrays


def _umap(folder: Path) -> dict[str, np.ndarray]:
    umap: dict[str, np.ndarray] = {}
    for dimensions in UMAP_DIMENSIONS:
        rows = _per_digit(folder, f"mnist-umap-{dimensions}-{{digit}}-{{split}}.csv.gz", dimensions, 255)
        common = _common_arrays(rows)
        if "counts" in umap and not np.array_equal(umap["counts"], common["counts"]):
            raise QRNNError(
                f"the UMAP files of {dimensions} dimensions hold other numbers of rows per digit than those of "
                f"{UMAP_DIMENSIONS[0]} ({common['counts'].tolist()} vs {umap['counts'].tolist()})"
            )
        umap.update(common)
        for split in STAGES:
            umap[f"{split}_d{dimensions}"] = np.concatenate(rows[split])
    return umap


def read_original_data(path: Path, skip_missing: bool = False) -> tuple[dict[str, dict[str, np.ndarray]], list[str]]:
    """Every MNIST resource (file name -> arrays) made from the original's files under `path`, and the notes on
    resources left out; writes nothing. With `skip_missing`, a resource whose files are not all there is left
    out (a note names it and its first missing file) rather than stopping the import: older commits of the
    original lack some of the files. A file that is there is always checked in full."""
    folder = resource_folder(path)
    readers = {filename: partial(_pixels, folder, infix, side) for filename, (infix, side) in PIXEL_FILES.items()}
    readers[PCA_RESOURCE] = partial(_pca, folder)
    readers[UMAP_RESOURCE] = partial(_umap, folder)
    resources: dict[str, dict[str, np.ndarray]] = {}
    skipped: list[str] = []
    for filename, files in resource_sources(folder).items():
        missing = next((file for file in files if not file.exists() and not file.is_symlink()), None)
        if skip_missing and missing is not None:
            skipped.append(f"{filename} (no {missing.name})")
            continue
        resources[filename] = readers[filename]()
    if not resources:
        raise QRNNError(f"{folder} holds none of the original's MNIST resources complete: {'; '.join(skipped)}")
    return resources, skipped


def import_original(path: Path, out: Path, skip_missing: bool = False) -> list[Path]:
    """Read and check all of the original's MNIST files under `path`, then write the resources into `out`
    (created if needed); returns the files written. All or nothing: the files are written into a temporary
    folder beside `out` and moved into `out` only when every one is complete, so a full disk leaves `out` as it
    was (one-line `RunFault`). Resources already in `out` are named in a warning on stderr before they are
    replaced. With `skip_missing`, resources whose files are incomplete are left out and named in a warning
    (`read_original_data`)."""
    resources, skipped = read_original_data(path, skip_missing)
    if skipped:
        print(f"warning: left out {', '.join(skipped)}", file=sys.stderr, flush=True)
    out = Path(out).expanduser()
    if not out.is_dir() and (out.exists() or out.is_symlink()):
        problem = path_problem(out, "--out")
        raise QRNNError(problem or f"--out {out} is a file, not a folder")
    replaced = sorted(name for name in resources if (out / name).exists())
    if replaced:
        print(f"warning: replacing {', '.join(replaced)} in {out}", file=sys.stderr, flush=True)
    created = not out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
        # Inside `out`, so that moving the files into place are renames within one filesystem, which need no
        # space: once every file is complete, they cannot fail on a full disk.
        staging = Path(tempfile.mkdtemp(prefix=".import-original-", dir=out))
    except OSError as error:
        raise RunFault(f"cannot write into {out}: {describe_error(error)}") from None
    try:
        for filename, arrays in resources.items():
            try:
                write_npz(staging / filename, arrays)
            except OSError as error:
                raise RunFault(
                    f"cannot write {out / filename}: {describe_error(error)}; {out} is left as it was"
                ) from None
        written = []
        for filename in resources:
            os.replace(staging / filename, out / filename)
            written.append(out / filename)
        return written
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        if created:
            shutil.rmtree(out, ignore_errors=True)
        raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
