"""The paper's hyperparameter studies, recognised in sweep folders, and how far a sweep agrees with the original's
published table of the same study.

A study is known by what its sweep trains: the dataset (`dna-every-output` counts as `dna`), the model, and the
options it varies besides the seed (a subset of the study's grid options, so a copy of a preset with other seeds
or fewer values is the same study).
Its grid cells are the combinations of those grid options; an option the sweep keeps fixed takes its value from
the points' options (a sweep of the spreads at one bias is the bias-1.5708 slice of the initialisation study).

Agreement, per cell present on both sides: our median over our seeds and the original's median over its rows,
and whether the original's median lies within our seeds' range (min..max; "n/a" for a cell with one seed: one run
gives no range, and a fixed factor band would claim a spread nobody measured). Over the cells: the fraction
within, and Spearman's rank correlation of the two medians (scipy.stats.spearmanr). Cells present on one side
only are counted and listed. Option values are matched by numeric closeness (relative 1e-3), since the original's
tables and our presets write the same value differently (1.5708, 1.570796).

The metric is the best validation loss, except for the DNA length studies: the epochs until the run reached its
loss threshold, a run that never did counting as not reached (infinitely many epochs: the median is "not
reached" where more than half the runs did not reach the loss).

The training-curves studies (`CURVES`: the paper's figure of one simple-seq run and one MNIST 0 vs 1 run, and
the pools of MNIST 3 vs 6 runs, plain and deskewed, whose training-log charts the original publishes) vary nothing
but the seed: a sweep of simple-seq, mnist01, mnist36 or mnist36-ds with the QRNN whose points differ only in their
seed (or a single point) is one.
Their agreement is with the original's curves, step by step, and with its pool where it published one
(`qrnn.study_curves`).
"""

from __future__ import annotations

import csv
import io
import json
import math
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

BEST_LOSS = "best_validation_loss"
EPOCHS_TO_REACH = "epochs_to_reach"
CURVES = "training_curves"
# Relative tolerance for matching option values written with different precision (1.5708 vs 1.570796).
MATCH_TOLERANCE = 1e-3
NOT_REACHED = "not reached"
# Datasets that are another one's task scored otherwise: the DNA strings scored at every output (as the
# original's comparison notebooks train their LSTM and RNN) are the DNA figure's task.
DATASET_OF_STUDY = {"dna-every-output": "dna"}
# Two runs' values of a cell count as the same result within this relative difference (run pairs).
PAIR_TOLERANCE = 0.05


@dataclass(frozen=True)
class Study:
    """One of the paper's hyperparameter studies: what its sweeps train (dataset, model), its grid options, the
    agreement metric, the original's table (a key of `qrnn.original.hparam_tables.TABLES`, None if none was
    published; for the `CURVES` studies a key of its `CURVES`, of `qrnn.original.training_logs.POOL_CHARTS`, or
    of both) and the figure that draws it (`figure`;
    `figure_file` is shared by studies drawn together). A study without grid options (`keys` empty) is a
    sweep over seeds only."""

    name: str
    title: str
    dataset: str
    model: str
    keys: tuple[str, ...]
    metric: str
    table: str | None
    figure: str
    figure_file: str


STUDIES: tuple[Study, ...] = (
    Study("optimizer", "optimizers and learning rates (simple-seq)", "simple-seq", "qrnn",
          ("optimizer", "learning_rate"), BEST_LOSS, "optimizer", "optimizer", "optimizer"),
    Study("topology", "topology (simple-seq)", "simple-seq", "qrnn", ("order", "degree", "stages", "workspace"),
          BEST_LOSS, None, "marginals-loss", "topology"),
    Study("elman-xor-init", "initialisation (Elman XOR)", "elman-xor", "qrnn",
          ("initial_bias", "initial_bias_spread", "initial_weights_spread", "initial_unitaries_spread"),
          BEST_LOSS, "elman-xor-init", "boxes", "elman-xor-init"),
    Study("elman-letter-topology", "topology (Elman letters)", "elman-letter", "qrnn",
          ("workspace", "stages", "degree"), BEST_LOSS, "elman-letter-topology", "marginals-epochs",
          "elman-letter-topology"),
    Study("dna", "DNA lengths, QRNN", "dna", "qrnn", ("sentence_length",), EPOCHS_TO_REACH, "dna", "lengths",
          "dna-lengths"),
    Study("dna-lstm", "DNA lengths, LSTM", "dna", "lstm", ("sentence_length",), EPOCHS_TO_REACH, "dna-lstm",
          "lengths", "dna-lengths"),
    Study("dna-rnn", "DNA lengths, RNN", "dna", "rnn", ("sentence_length",), EPOCHS_TO_REACH, "dna-rnn",
          "lengths", "dna-lengths"),
    Study("curves-simple-seq", "training curves (simple-seq)", "simple-seq", "qrnn", (), CURVES, "simple-seq",
          "curves", "curves-simple-seq"),
    Study("curves-mnist01", "training curves (MNIST 0 vs 1)", "mnist01", "qrnn", (), CURVES, "mnist01", "curves",
          "curves-mnist01"),
    Study("curves-mnist36", "training curves (MNIST 3 vs 6)", "mnist36", "qrnn", (), CURVES, "mnist36", "curves",
          "curves-mnist36"),
    Study("curves-mnist36-ds", "training curves (MNIST 3 vs 6, deskewed)", "mnist36-ds", "qrnn", (), CURVES,
          "mnist36-ds", "curves", "curves-mnist36-ds"),
)


@dataclass
class Run:
    """One run on either side: its grid cell (values of the study's keys), seed, epochs, whether it reached the
    loss threshold, and its best validation loss (None if it never validated)."""

    cell: tuple[Any, ...]
    seed: Any
    epochs: float
    reached: bool
    best_validation_loss: float | None

    def metric(self, metric: str) -> float | None:
        """The run's value of `metric` (infinite epochs where it did not reach the loss)."""
        if metric == EPOCHS_TO_REACH:
            return float(self.epochs) if self.reached else math.inf
        return self.best_validation_loss


def identify(options: Sequence[dict[str, Any]], varied: Sequence[str]) -> Study | None:
    """The study a sweep belongs to, from its points' full options and the options it varies besides the seed;
    None when it is none of them. A sweep that varies nothing but the seed is a training-curves study (of its
    dataset, if the paper has one), never a grid study: its one cell says nothing about how an option acts;
    except a DNA sweep of one length, which is that length's seeds of the DNA figure (its model's lengths study),
    drawn and compared with the model's other sweeps."""
    datasets = {DATASET_OF_STUDY.get(point.get("dataset"), point.get("dataset")) for point in options}
    models = {point.get("model", "qrnn") for point in options}
    if len(datasets) != 1 or len(models) != 1:
        return None
    dataset, model = datasets.pop(), models.pop()
    for study in STUDIES:
        if study.dataset != dataset or study.model != model:
            continue
        # Seed-only sweeps match only the studies without grid options, and the other way round.
        if (not varied) == (not study.keys) and set(varied) <= set(study.keys):
            return study
    if not varied:
        return next((s for s in STUDIES if s.dataset == dataset and s.model == model and s.figure == "lengths"), None)
    return None


def sweep_runs(study: Study, rows: Sequence[dict[str, Any]]) -> list[Run]:
    """Our runs, from `qrnn.plot.read_sweep`'s rows (each with its full `options`). A run that diverged counts as
    one that spent its whole budget of epochs without reaching the loss, as the original's notebooks record it."""
    runs = []
    for row in rows:
        cell = tuple(row["options"].get(key) for key in study.keys)
        loss = row.get("best_validation_loss")
        epochs = row["epochs"]
        if row.get("diverged") and isinstance(row["options"].get("epochs"), int):
            epochs = row["options"]["epochs"]
        runs.append(Run(cell, row.get("seed"), float(epochs), bool(row["reached"]),
                        None if loss is None else float(loss)))
    return runs


def original_runs(study: Study, table: Sequence[dict[str, Any]]) -> list[Run]:
    """The original's runs, from `qrnn.original.hparam_tables.read_original_table`'s rows. A run's `seed` is the
    row's seed, or for a table published as several files of one grid (the optimizer's repeats A, B and C) the
    name of its file: each file is one run of every cell. None where neither tells runs apart."""
    from qrnn.original.hparam_tables import BEST, EPOCH, TABLES

    files = TABLES[study.table].files if study.table in TABLES else ()

    def label(row: dict[str, Any]) -> Any:
        if row.get("seed") is not None:
            return row["seed"]
        if len(files) > 1 and row.get("file") is not None:
            return Path(files[int(row["file"])]).stem
        return None

    # The optimizer tables record no epochs (every run trained all of them): NaN, which no figure of that study
    # reads.
    return [
        Run(tuple(_plain(row[key]) for key in study.keys), label(row), _float(row.get(EPOCH)),
            bool(row["reached"]), None if row[BEST] is None else float(row[BEST]))
        for row in table
    ]


def _float(value: Any) -> float:
    return math.nan if value is None else float(value)


def _plain(value: Any) -> Any:
    """A table's float that is a whole number as an int (workspace 3.0 -> 3), for labels and JSON."""
    return int(value) if isinstance(value, float) and value.is_integer() and abs(value) < 2**53 else value


def same_value(a: Any, b: Any) -> bool:
    """Whether two option values are the same setting: equal names (any case), or numbers within a relative
    `MATCH_TOLERANCE` (zero only matches zero)."""
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and a.lower() == b.lower()
    if a is None or b is None:
        return a is b
    a, b = float(a), float(b)
    return a == b or abs(a - b) <= MATCH_TOLERANCE * max(abs(a), abs(b))


def same_cell(a: Sequence[Any], b: Sequence[Any]) -> bool:
    """Whether two grid cells are the same (every value the same setting)."""
    return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))


def group(runs: Sequence[Run]) -> list[tuple[tuple[Any, ...], list[Run]]]:
    """The runs by cell (matched by `same_cell`), cells in order of first appearance."""
    cells: list[tuple[tuple[Any, ...], list[Run]]] = []
    exact: dict[tuple[Any, ...], int] = {}
    for run in runs:
        index = exact.get(run.cell)
        if index is None:
            # One side writes a value one way throughout: look for a near match only for a new spelling.
            index = next((i for i, (cell, _) in enumerate(cells) if same_cell(cell, run.cell)), None)
            if index is None:
                index = len(cells)
                cells.append((run.cell, []))
            exact[run.cell] = index
        cells[index][1].append(run)
    return cells


def median(values: Sequence[float]) -> float | None:
    """The median (infinite values count as the largest: a median of them is "not reached"); None if empty."""
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    low, high = ordered[middle - 1], ordered[middle]
    return high if math.isinf(high) else (low + high) / 2


@dataclass
class CellAgreement:
    """One grid cell: our values (one per seed) and the original's (one per row), their medians, our range and
    whether the original's median lies in it (None: one side is missing, or we have a single seed), and the other
    way round whether our median lies in the original's range (None: one side missing, or it has a single row:
    the measure for a sweep of one seed against the original's several)."""

    cell: dict[str, Any]
    ours: list[float]
    original: list[float]
    ours_median: float | None = None
    original_median: float | None = None
    low: float | None = None
    high: float | None = None
    within: bool | None = None
    ours_within_original: bool | None = None

    def __post_init__(self) -> None:
        self.ours_median, self.original_median = median(self.ours), median(self.original)
        if self.ours:
            self.low, self.high = min(self.ours), max(self.ours)
        if len(self.ours) >= 2 and self.original_median is not None:
            self.within = self.low <= self.original_median <= self.high
        if len(self.original) >= 2 and self.ours_median is not None:
            self.ours_within_original = min(self.original) <= self.ours_median <= max(self.original)


class WithinCounts:
    """How many of the items `judged()` returns (cells, or a curve's points, each with a `within` of True, False or
    None) could be compared (we have a range: two seeds or more) and how many of those lie within our range."""

    def judged(self) -> Sequence[Any]:
        """The items judged: each has `within` (True, False, or None where nothing could be compared)."""
        raise NotImplementedError

    @property
    def compared(self) -> int:
        """Items where we have a range (two seeds or more)."""
        return sum(item.within is not None for item in self.judged())

    @property
    def within(self) -> int:
        """Items whose original value (or median) lies within our seeds' range."""
        return sum(item.within is True for item in self.judged())

    @property
    def within_fraction(self) -> float | None:
        """`within` / `compared` (None where nothing could be compared)."""
        return self.within / self.compared if self.compared else None


@dataclass(frozen=True)
class RunPair:
    """One of our seeds against one of the original's runs (a repeat of its grid, or a seed), over the cells both
    ran: in how many the two values agree within `PAIR_TOLERANCE` (relative; two runs that never reached the loss
    agree), and Spearman's rank correlation of the two runs' values. A pair that agrees cell by cell is the same
    run on both sides; medians alone cannot tell that."""

    ours: Any
    original: Any
    cells: int
    close: int
    spearman: float | None

    def to_json(self) -> dict[str, Any]:
        """The pair as JSON-ready values."""
        return asdict(self)


def _close(a: float, b: float) -> bool:
    if math.isinf(a) or math.isinf(b):
        return a == b
    return abs(a - b) <= PAIR_TOLERANCE * max(abs(a), abs(b))


def run_pairs(metric: str, ours: Sequence[Run], original: Sequence[Run]) -> list[RunPair]:
    """Every pair of our seed and the original's run, where the original's runs are told apart (each of its runs
    has a label and at most one row per cell; else none): cells matched as in `agreement`, pairs with fewer
    than three common cells left out."""
    def runs_by_label(runs: Sequence[Run]) -> dict[Any, list[Run]] | None:
        labelled: dict[Any, list[Run]] = {}
        for run in runs:
            if run.seed is None or run.metric(metric) is None:
                continue
            same = labelled.setdefault(run.seed, [])
            if any(same_cell(run.cell, other.cell) for other in same):
                return None
            same.append(run)
        return labelled

    theirs = runs_by_label(original) if all(run.seed is not None for run in original) else None
    mine = runs_by_label(ours)
    if not theirs or not mine:
        return []
    pairs = []
    for seed, our_runs in mine.items():
        for label, their_runs in theirs.items():
            values = [(run.metric(metric), other.metric(metric)) for run in our_runs for other in their_runs
                      if same_cell(run.cell, other.cell)]
            if len(values) < 3:
                continue
            rho, _ = spearman([a for a, _ in values], [b for _, b in values])
            pairs.append(RunPair(seed, label, len(values), sum(_close(a, b) for a, b in values), rho))
    return sorted(pairs, key=lambda pair: (str(pair.ours), str(pair.original)))


def closest_pairs(pairs: Sequence[RunPair]) -> list[RunPair]:
    """For each of our seeds, the original's run it agrees with in the most cells (then by rank correlation; the
    first such pair on a tie)."""
    def closeness(pair: RunPair) -> tuple[float, float]:
        return pair.close / pair.cells, -math.inf if pair.spearman is None else pair.spearman

    seeds = dict.fromkeys(pair.ours for pair in pairs)
    return [max((pair for pair in pairs if pair.ours == seed), key=closeness) for seed in seeds]


@dataclass
class Agreement(WithinCounts):
    """A sweep against the original's table of its study: every cell (`cells`: both sides first, then ours
    only, then the original's only) and the summary numbers over the cells on both sides."""

    study: Study
    sweep: str
    metric: str
    cells: list[CellAgreement]
    unscored: int = 0
    original_unscored: int = 0
    spearman: float | None = None
    spearman_p: float | None = None
    matched: list[CellAgreement] = field(default_factory=list)
    only_ours: list[CellAgreement] = field(default_factory=list)
    only_original: list[CellAgreement] = field(default_factory=list)
    pairs: list[RunPair] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.matched = [cell for cell in self.cells if cell.ours and cell.original]
        self.only_ours = [cell for cell in self.cells if cell.ours and not cell.original]
        self.only_original = [cell for cell in self.cells if cell.original and not cell.ours]
        self.spearman, self.spearman_p = spearman(
            [cell.ours_median for cell in self.matched], [cell.original_median for cell in self.matched]
        )

    def judged(self) -> Sequence[Any]:
        """The cells on both sides (see `WithinCounts`)."""
        return self.matched

    @property
    def compared_with_original_range(self) -> int:
        """Cells on both sides where the original has a range (two rows or more)."""
        return sum(cell.ours_within_original is not None for cell in self.matched)

    @property
    def ours_within_original_range(self) -> int:
        """Cells whose median of ours lies within the range of the original's rows."""
        return sum(cell.ours_within_original is True for cell in self.matched)

    def summary(self) -> dict[str, Any]:
        """The numbers over the cells, for JSON and the printed table."""
        return {
            "study": self.study.name,
            "sweep": self.sweep,
            "metric": self.metric,
            "cells_both": len(self.matched),
            "cells_only_ours": len(self.only_ours),
            "cells_only_original": len(self.only_original),
            "cells_compared": self.compared,
            "cells_within": self.within,
            "within_fraction": self.within_fraction,
            "cells_compared_with_original_range": self.compared_with_original_range,
            "cells_ours_within_original_range": self.ours_within_original_range,
            "spearman": self.spearman,
            "spearman_p": self.spearman_p,
            "runs_without_loss": self.unscored,
            "original_rows_without_loss": self.original_unscored,
            "closest_run_pairs": [pair.to_json() for pair in closest_pairs(self.pairs)],
        }

    def to_json(self) -> dict[str, Any]:
        """The summary and every cell; infinite epochs (not reached) as the string "not reached"."""
        return {
            **self.summary(),
            "run_pairs": [pair.to_json() for pair in self.pairs],
            "cells": [
                {
                    "cell": cell.cell,
                    "ours": [_json_value(value) for value in cell.ours],
                    "original": [_json_value(value) for value in cell.original],
                    "ours_median": _json_value(cell.ours_median),
                    "original_median": _json_value(cell.original_median),
                    "ours_min": _json_value(cell.low),
                    "ours_max": _json_value(cell.high),
                    "within": cell.within,
                    "ours_within_original_range": cell.ours_within_original,
                }
                for cell in self.cells
            ],
        }


def _json_value(value: float | None) -> float | str | None:
    return NOT_REACHED if value is not None and math.isinf(value) else value


def spearman(ours: Sequence[float | None], original: Sequence[float | None]) -> tuple[float | None, float | None]:
    """Spearman's rank correlation of the two medians over the cells, and its p-value; None where it is not
    defined (fewer than three cells, or one side constant). Infinite values rank above every finite one."""
    pairs = [(a, b) for a, b in zip(ours, original, strict=True) if a is not None and b is not None]
    if len(pairs) < 3:
        return None, None
    from scipy.stats import spearmanr

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a constant side: the coefficient is undefined, reported as None
        result = spearmanr([a for a, _ in pairs], [b for _, b in pairs])
    rho, p = float(result.statistic), float(result.pvalue)
    return (None, None) if math.isnan(rho) else (rho, p)


def agreement(study: Study, sweep: str, ours: Sequence[Run], original: Sequence[Run]) -> Agreement:
    """Every cell of either side with its medians and range (see the module docstring)."""
    metric = study.metric
    # A run that logged no loss has no value of the metric (for the epochs to reach the loss it simply did not).
    scored = [run for run in ours if run.metric(metric) is not None]
    original_scored = [run for run in original if run.metric(metric) is not None]
    ours_cells = group(scored)
    original_cells = group(original_scored)
    taken: set[int] = set()
    cells: list[CellAgreement] = []
    only_ours: list[CellAgreement] = []
    for cell, runs in ours_cells:
        index = next(
            (i for i, (other, _) in enumerate(original_cells) if i not in taken and same_cell(cell, other)), None
        )
        values = [run.metric(metric) for run in runs]
        named = dict(zip(study.keys, cell, strict=True))
        if index is None:
            only_ours.append(CellAgreement(named, values, []))
            continue
        taken.add(index)
        cells.append(CellAgreement(named, values, [run.metric(metric) for run in original_cells[index][1]]))
    only_original = [
        CellAgreement(dict(zip(study.keys, cell, strict=True)), [], [run.metric(metric) for run in runs])
        for i, (cell, runs) in enumerate(original_cells)
        if i not in taken
    ]
    def order(cell: CellAgreement) -> tuple[tuple[int, Any], ...]:
        return tuple((0, value) if isinstance(value, str) else (1, float(value)) for value in cell.cell.values())

    return Agreement(study, sweep, metric, sorted(cells, key=order) + sorted(only_ours, key=order)
                     + sorted(only_original, key=order), unscored=len(ours) - len(scored),
                     original_unscored=len(original) - len(original_scored),
                     pairs=run_pairs(metric, ours, original))


# ---- writing ----


def _number(value: float | None) -> str:
    if value is None:
        return "-"
    if math.isinf(value):
        return NOT_REACHED
    return f"{value:.4g}"


def _option(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _is_curves(result: Any) -> bool:
    """Whether `result` is a training-curves agreement (`qrnn.study_curves.CurvesAgreement`), which writes its
    own rows and lines."""
    return getattr(result, "metric", None) == CURVES


def cell_columns(cell: CellAgreement, show: Callable[[float | None], str] = _number) -> dict[str, str]:
    """A cell's columns in an agreement table: our runs, median and range, the original's runs and median."""
    return {
        "ours_runs": str(len(cell.ours)),
        "ours_median": show(cell.ours_median),
        "ours_min": show(cell.low),
        "ours_max": show(cell.high),
        "original_runs": str(len(cell.original)),
        "original_median": show(cell.original_median),
    }


def table_rows(result: Any, printed: bool = False) -> list[dict[str, str]]:
    """The cells as rows of text (for agreement.csv; `printed`: for the printed table, which leaves out the
    curves studies' step-by-step rows)."""
    if _is_curves(result):
        return result.table_rows(printed)
    rows = []
    for cell in result.cells:
        within = "n/a" if cell.within is None else ("yes" if cell.within else "no")
        if not cell.original:
            within = "only ours"
        elif not cell.ours:
            within = "only original"
        rows.append({
            "study": result.study.name,
            **{key: _option(value) for key, value in cell.cell.items()},
            **cell_columns(cell),
            "within": within,
        })
    return rows


def summary_lines(result: Any) -> list[str]:
    """The numbers over the cells, in words."""
    if _is_curves(result):
        return result.summary_lines()
    fraction = result.within_fraction
    rho = "n/a (fewer than 3 cells or a constant side)" if result.spearman is None else (
        f"{result.spearman:.3f} (p = {result.spearman_p:.2g}, {len(result.matched)} cells)"
    )
    metric = "best validation loss" if result.metric == BEST_LOSS else "epochs to reach the loss"
    lines = [
        f"{result.study.name} ({result.sweep}): {metric}, {len(result.matched)} cells on both sides, "
        f"{len(result.only_ours)} only in the sweep, {len(result.only_original)} only in the original's table",
        "original's median within our seeds' range: "
        + ("n/a (no cell with two seeds or more)" if fraction is None
           else f"{result.within} of {result.compared} cells ({fraction:.0%})"),
        f"Spearman rank correlation of the medians: {rho}",
    ]
    if result.compared_with_original_range:
        lines.insert(2, f"our median within the original's range: {result.ours_within_original_range} of "
                        f"{result.compared_with_original_range} cells")
    for pair in closest_pairs(result.pairs):
        rho = "n/a" if pair.spearman is None else f"{pair.spearman:.3f}"
        lines.append(f"our seed {pair.ours} is closest to the original's run {pair.original}: the same result "
                     f"(within {PAIR_TOLERANCE:.0%}) in {pair.close} of {pair.cells} cells, Spearman {rho}")
    if result.unscored:
        lines.append(f"{result.unscored} finished runs logged no validation loss and are left out")
    if result.original_unscored:
        lines.append(f"{result.original_unscored} of the original's rows have no loss and are left out")
    return lines


def format_table(result: Any) -> str:
    """The agreement as a text table with its summary lines."""
    rows = table_rows(result, printed=True)
    header = list(rows[0]) if rows else ["study"]
    widths = {key: max([len(key), *(len(row[key]) for row in rows)]) for key in header}
    lines = ["  ".join(key.rjust(widths[key]) for key in header)]
    lines += ["  ".join(row[key].rjust(widths[key]) for key in header) for row in rows]
    return "\n".join(lines + summary_lines(result))


def agreement_csv(results: Sequence[Any]) -> str:
    """agreement.csv: one row per cell of every study (each study's own option columns)."""
    buffer = io.StringIO()
    rows = [row for result in results for row in table_rows(result)]
    columns: list[str] = []
    for row in rows:
        columns += [key for key in row if key not in columns]
    writer = csv.DictWriter(buffer, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def agreement_json(results: Sequence[Any], files: Sequence[str] = ()) -> str:
    """agreement.json: every study's summary and cells (and the files written, when given)."""
    payload: dict[str, Any] = {"studies": [result.to_json() for result in results]}
    if files:
        payload["files"] = list(files)
    return json.dumps(payload, indent=1)
