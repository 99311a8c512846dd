"""The original implementation's hyperparameter tables: the CSV files in `results/hparam_logs/` of a checkout of
RVQE, one row per training run of a study (TensorBoard's hparams export, or a notebook's table for the classical
baselines). They are read at run time from the user's checkout and never shipped with qrnn.

A table is untrusted input: it is read whole only below `MAX_TABLE_BYTES`, its header must hold the columns the
study needs (others, such as pandas' unnamed index column, are ignored), every number must be finite and every
text cell a short name; a result cell may be empty (the original's initialisation table has a run that logged no
loss), an option cell may not. Anything else stops with one line naming the file, the row and the column.

The training curves of the paper's figure are TensorBoard's scalar CSV exports (`Wall time,Step,Value`), one
file per curve and dataset (`CURVES`), read the same way; their steps must also be whole numbers from 0 that
increase row by row.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from qrnn.errors import QRNNError
from qrnn.files import read_bytes

HPARAM_FOLDER = Path("results") / "hparam_logs"
# The original's largest table has about 90 kB; ten times that leaves room without reading anything huge.
MAX_TABLE_BYTES = 1024 * 1024
# A text cell (an optimizer's name) is a short identifier; anything longer or odd is not one of the original's.
_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_.-]{0,31}")


@dataclass(frozen=True)
class TableSpec:
    """One of the original's published tables: its files (several files are repeats of one grid, read as one
    table), the option columns that name a grid cell, the columns holding text, the result columns, and how a
    row tells whether the run reached its loss threshold (`reached_below`: the best validation loss is below
    it; `last_epoch`: the run stopped before that epoch, for tables that record no usable loss)."""

    name: str
    files: tuple[str, ...]
    keys: tuple[str, ...]
    results: tuple[str, ...]
    text_columns: tuple[str, ...] = ()
    reached_below: float | None = None
    last_epoch: float | None = None

    @property
    def columns(self) -> tuple[str, ...]:
        """Every column a file of this table must have."""
        return self.keys + self.results

    def reached(self, row: dict[str, float | str | None]) -> bool:
        """Whether the run of `row` reached the study's loss threshold before its last epoch."""
        if self.reached_below is not None:
            loss = row["hparams/validate_best"]
            return loss is not None and float(loss) < self.reached_below
        if self.last_epoch is not None:
            return float(row["hparams/epoch"]) < self.last_epoch
        return True


EPOCH, BEST = "hparams/epoch", "hparams/validate_best"
TABLES: dict[str, TableSpec] = {
    spec.name: spec
    for spec in (
        # Three runs (A, B, C) of one grid, each file one run of every cell, each from its own starting model
        # (B is main.py's default seed, 82727); the figure pools them.
        TableSpec(
            "optimizer",
            tuple(f"hparams_table_experiment1-{repeat}.csv" for repeat in "ABC"),
            keys=("optimizer", "learning_rate"),
            results=(BEST,),
            text_columns=("optimizer",),
        ),
        TableSpec(
            "elman-xor-init",
            ("experiment-2-elman-xor-initialization.csv",),
            keys=("initial_bias", "initial_bias_spread", "initial_weights_spread", "initial_unitaries_spread"),
            results=(EPOCH, BEST),
            reached_below=0.001,
        ),
        TableSpec(
            "elman-letter-topology",
            ("experiment-2-elman-letter-topology.csv",),
            keys=("workspace", "stages", "degree"),
            results=(EPOCH, BEST),
            reached_below=0.01,
        ),
        TableSpec(
            "dna", ("experiment-5-dna-pool.csv",), keys=("sentence_length",), results=(EPOCH, BEST),
            reached_below=0.0005,
        ),
        # The notebooks' tables hold 0.0 as the best validation loss (none was logged): the run reached the
        # training-loss threshold when it stopped before its last step (15999).
        TableSpec("dna-lstm", ("long-lstm.csv",), keys=("sentence_length",), results=(EPOCH, BEST),
                  last_epoch=15999),
        TableSpec("dna-rnn", ("long-rnn.csv",), keys=("sentence_length",), results=(EPOCH, BEST),
                  last_epoch=15999),
    )
}


# The original's training curves (one run each): per dataset, the validation loss (every 10 steps) and the
# training batch's minimum postselection probability (every step; the MNIST file is TensorBoard's sample of
# 1000 of them). TensorBoard's scalar export: wall time, step (0-based), value.
CURVE_COLUMNS = ("Wall time", "Step", "Value")
CURVES: dict[str, dict[str, str]] = {
    "simple-seq": {"validation": "val-loss-simple-seq.csv", "postselection": "postsel-simple-seq.csv"},
    "mnist01": {"validation": "val-loss-mnist.csv", "postselection": "postsel-mnist.csv"},
}
# A step beyond this is no step of a training run (and keeps an int conversion exact).
MAX_STEP = 10**9


def hparam_folder(checkout: str | Path) -> Path:
    """`results/hparam_logs` of a checkout of the original; a one-line `QRNNError` if `checkout` is not one."""
    path = Path(checkout).expanduser()
    if not path.is_dir():
        raise QRNNError(f"--original {path} is not a folder; give a checkout of the original RVQE repository")
    folder = path / HPARAM_FOLDER
    if not folder.is_dir():
        raise QRNNError(
            f"--original {path} is not a checkout of the original RVQE repository: it has no {HPARAM_FOLDER}"
        )
    return folder


def read_table(
    path: Path,
    columns: Sequence[str],
    text_columns: Sequence[str] = (),
    optional_columns: Sequence[str] = (),
    step_column: str | None = None,
) -> list[dict[str, float | str | None]]:
    """The rows of one CSV file as {column: value} over `columns`: floats, or names for `text_columns`; None for
    an empty cell of `optional_columns`; `step_column` must hold whole numbers from 0 to `MAX_STEP` that increase
    from row to row. One-line `QRNNError` for a missing or oversized file, a header without the columns, a short
    or long row, a value that is not a finite number, a text cell that is not a short name, or a bad step."""
    data = read_bytes(path, "the original's table", MAX_TABLE_BYTES)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise QRNNError(f"{path} is not a UTF-8 text file; expected one of the original's CSV tables") from None
    if "\0" in text:
        raise QRNNError(f"{path} holds NUL bytes; expected one of the original's CSV tables")
    reader = csv.reader(text.splitlines())
    try:
        header = next(reader)
    except StopIteration:
        raise QRNNError(f"{path} is empty; expected a CSV header with {', '.join(columns)}") from None
    except csv.Error as error:
        raise QRNNError(f"{path}: the header is not CSV ({error})") from None
    header = [cell.strip() for cell in header]
    missing = [column for column in columns if column not in header]
    if missing:
        raise QRNNError(
            f"{path}: the header lacks {', '.join(missing)} (it has {', '.join(header)[:200]}); not the original's "
            "table for this study"
        )
    where = {column: header.index(column) for column in columns}
    rows: list[dict[str, float | str | None]] = []
    last_step: float | None = None
    try:
        for number, cells in enumerate(reader, start=2):
            if not cells:
                continue
            if len(cells) != len(header):
                raise QRNNError(f"{path}, line {number}: {len(cells)} cells where the header has {len(header)}")
            row: dict[str, float | str | None] = {}
            for column, index in where.items():
                cell = cells[index].strip()
                if column in text_columns:
                    if not _NAME.fullmatch(cell):
                        raise QRNNError(f"{path}, line {number}, column {column}: {cell[:40]!r} is not a name")
                    row[column] = cell.lower()
                    continue
                if not cell and column in optional_columns:
                    row[column] = None
                    continue
                try:
                    value = float(cell)
                except ValueError:
                    raise QRNNError(
                        f"{path}, line {number}, column {column}: {cell[:40]!r} is not a number"
                    ) from None
                if not math.isfinite(value):
                    raise QRNNError(f"{path}, line {number}, column {column}: {cell[:40]!r} is not finite")
                if column == step_column:
                    if not (value.is_integer() and 0 <= value <= MAX_STEP):
                        raise QRNNError(
                            f"{path}, line {number}, column {column}: {cell[:40]!r} is not a step (a whole number "
                            f"from 0 to {MAX_STEP:.0e})"
                        )
                    if last_step is not None and value <= last_step:
                        raise QRNNError(
                            f"{path}, line {number}, column {column}: step {value:.0f} does not follow step "
                            f"{last_step:.0f} (a curve's steps increase)"
                        )
                    last_step = value
                row[column] = value
            rows.append(row)
    except csv.Error as error:
        raise QRNNError(f"{path}, line {reader.line_num}: not CSV ({error})") from None
    if not rows:
        raise QRNNError(f"{path} has a header but no rows")
    return rows


def read_original_table(checkout: str | Path, name: str) -> list[dict[str, float | str | None]]:
    """Every row of the original's table `name` (see `TABLES`) from the checkout `checkout`, its files' rows
    together; each row also holds `reached` (1.0 or 0.0, see `TableSpec.reached`) and `file`'s index."""
    spec = TABLES[name]
    folder = hparam_folder(checkout)
    rows: list[dict[str, float | str | None]] = []
    for index, file in enumerate(spec.files):
        path = folder / file
        if not path.exists():
            raise QRNNError(f"{path} is missing: the original's checkout should hold {file} in {HPARAM_FOLDER}")
        for row in read_table(path, spec.columns, spec.text_columns, optional_columns=spec.results):
            row["reached"] = 1.0 if spec.reached(row) else 0.0
            row["file"] = float(index)
            rows.append(row)
    return rows


def read_original_curve(checkout: str | Path, dataset: str, curve: str) -> tuple[list[int], list[float]]:
    """The original's training curve `curve` ("validation" or "postselection", see `CURVES`) of `dataset` from
    the checkout `checkout`: its steps as the file writes them (0-based) and its values. One-line `QRNNError`s
    (see `read_table`)."""
    file = CURVES[dataset][curve]
    path = hparam_folder(checkout) / file
    if not path.exists():
        raise QRNNError(f"{path} is missing: the original's checkout should hold {file} in {HPARAM_FOLDER}")
    rows = read_table(path, CURVE_COLUMNS, step_column="Step")
    steps = [int(step) for row in rows if isinstance(step := row["Step"], float)]
    return steps, [float(value) for row in rows if isinstance(value := row["Value"], float)]
