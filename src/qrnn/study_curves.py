"""The training-curves studies: a sweep over seeds of one setting (simple-seq, MNIST 0 vs 1 or MNIST 3 vs 6)
against the one run of the paper's figure (the original's `results/hparam_logs/val-loss-*.csv` and
`postsel-*.csv`; none for MNIST 3 vs 6) and the pool of runs it came from, where the original publishes one.

Two curves: the validation loss (`loss/validate`) and the training batch's minimum postselection probability
(`min_postsel_prob/train`), read from every seed's TensorBoard logs.

Steps are aligned as training steps done. The original logs at step s (0-based) the values after its (s+1)-th
optimizer step (its validation at step 0 follows the first update); we log at epoch e (1-based) the values after
the e-th. So the original's step s is our step s + 1 (`ORIGINAL_STEP_OFFSET`), and every number and figure here
counts steps that way. Each of the original's points is compared with our seeds' values at our nearest logged step
(ties: the earlier), provided that step is at most one logging interval away (the median gap between our logged
steps): an original step further away (beyond the end of our runs) is counted apart, not compared.

Agreement, per curve: at each compared step, whether the original's value lies within our seeds' range (min..max;
"n/a" where fewer than two seeds logged that step), and the fraction of such steps; Spearman's rank correlation
of the original's values and our median over the seeds at those steps; and per measure, our value per seed (its
median and range) against the original's value:
- the validation loss: the first step at which it falls below 0.01 and below 0.001 ("not reached" where it never
  did; the median is "not reached" where more than half the seeds did not reach it);
- both curves: the median of the run's values over its last 10% of training steps (the logged points after
  90% of its last step).
The postselection agreement is on the probability as logged; the figure draws it as the notebook does, as the
postselection overhead 1/sqrt(p) (the factor amplitude amplification needs).

The pool (`PoolAgreement`, where the original publishes the training-log chart of the paper's pool of runs on
the dataset: MNIST 0 vs 1 and MNIST 3 vs 6, 30 seeds each): our seeds as a pool against its runs, each run's
lowest validation loss within the first H training steps, H the shortest of our runs (the original's runs that
ended more than one logging interval before H are left out and counted). Per side the median and range; whether
the original's median lies within our range and ours within its range; how many runs of each side got below
each of `POOL_THRESHOLDS`; and the two-sided Mann-Whitney U test of the two samples (scipy.stats.mannwhitneyu; a
large p: nothing tells the pools apart).
"""

from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from qrnn.studies import (
    CURVES,
    CellAgreement,
    Study,
    WithinCounts,
    _json_value,
    cell_columns,
    median,
    spearman,
)

# The original's step s holds the values after s + 1 optimizer steps; ours at epoch e after e (module docstring).
ORIGINAL_STEP_OFFSET = 1
VALIDATION, POSTSELECTION = "validation", "postselection"
# Our runs' TensorBoard tags of the two curves (`qrnn.training.run_log`).
CURVE_TAGS = {VALIDATION: "loss/validate", POSTSELECTION: "min_postsel_prob/train"}
CURVE_LABELS = {VALIDATION: "validation loss", POSTSELECTION: "min. postselection probability (training)"}
# The validation losses whose first crossing is compared (the paper's simple-seq run ends just above 0.001).
THRESHOLDS = (0.01, 0.001)
LAST_FRACTION = 0.1
# The validation losses by which the pools are counted (those `qrnn original-logs` reports for the paper's pools).
POOL_THRESHOLDS = (0.2, 0.1, 0.05, 0.01)


@dataclass
class Curve:
    """One run's series of one curve: steps (increasing) and values."""

    steps: list[int]
    values: list[float]

    def shifted(self, offset: int) -> Curve:
        """The same values at steps + `offset`."""
        return Curve([step + offset for step in self.steps], list(self.values))


@dataclass
class SeedCurves:
    """One of our runs: its seed and its curves (keys `VALIDATION`, `POSTSELECTION`; an empty curve where the
    run did not log it)."""

    seed: Any
    curves: dict[str, Curve]


def original_aligned(steps: Sequence[int], values: Sequence[float]) -> Curve:
    """The original's curve as read from its file, on our steps (training steps done)."""
    return Curve(list(steps), list(values)).shifted(ORIGINAL_STEP_OFFSET)


def logging_interval(steps: Sequence[int]) -> int:
    """The median gap between consecutive logged steps (1 for fewer than two)."""
    ordered = sorted(set(steps))
    gaps = [b - a for a, b in zip(ordered, ordered[1:], strict=False)]
    return max(1, round(median(gaps))) if gaps else 1


def nearest(steps: Sequence[int], target: int) -> int:
    """The step of the sorted `steps` nearest to `target` (ties: the earlier)."""
    index = bisect.bisect_left(steps, target)
    candidates = steps[max(0, index - 1) : index + 1]
    return min(candidates, key=lambda step: (abs(step - target), step))


def first_below(curve: Curve, threshold: float) -> float:
    """The first step at which the curve is below `threshold`; infinite where it never is."""
    return next((float(step) for step, value in zip(curve.steps, curve.values, strict=True) if value < threshold),
                math.inf)


def tail_median(curve: Curve) -> float | None:
    """The median of the values logged over the last `LAST_FRACTION` of the run's training steps (None for an
    empty curve)."""
    if not curve.steps:
        return None
    cutoff = (1 - LAST_FRACTION) * curve.steps[-1]
    tail = [value for step, value in zip(curve.steps, curve.values, strict=True) if step > cutoff]
    return median(tail or curve.values[-1:])


def by_step(curves: Sequence[Curve]) -> dict[int, list[float]]:
    """Every logged step of any of the curves, with the values of those that logged it."""
    found: dict[int, list[float]] = {}
    for curve in curves:
        for step, value in zip(curve.steps, curve.values, strict=True):
            found.setdefault(step, []).append(value)
    return dict(sorted(found.items()))


def median_curve(curves: Sequence[Curve]) -> Curve:
    """The median over the curves at every step any of them logged."""
    values = by_step(curves)
    # Every step has at least one value, so every median is a number.
    return Curve(list(values), [middle for found in values.values() if (middle := median(found)) is not None])


@dataclass
class CurveAgreement(WithinCounts):
    """One curve: every compared point (cell {"curve", "step", "original_step"}: our seeds' values at our nearest
    logged step against the original's value), the original's steps beyond ours, the measures (cell {"curve",
    "measure"}; their values in the order of `seeds`, the seeds that logged this curve), our logging interval and
    Spearman's rank correlation over the points."""

    key: str
    seeds: list[Any]
    points: list[CellAgreement]
    beyond: list[int]
    measures: list[CellAgreement]
    interval: int
    spearman: float | None = None
    spearman_p: float | None = None

    def __post_init__(self) -> None:
        self.spearman, self.spearman_p = spearman(
            [point.ours_median for point in self.points], [point.original_median for point in self.points]
        )

    @property
    def label(self) -> str:
        """The curve's name in words."""
        return CURVE_LABELS[self.key]

    def judged(self) -> Sequence[Any]:
        """The original's points compared with ours (see `WithinCounts`)."""
        return self.points

    def summary(self) -> dict[str, Any]:
        """The numbers over the points, for JSON."""
        return {
            "curve": self.key,
            "tag": CURVE_TAGS[self.key],
            "seeds": self.seeds,
            "original_points": len(self.points) + len(self.beyond),
            "points_beyond_ours": len(self.beyond),
            "points_compared": self.compared,
            "points_within": self.within,
            "within_fraction": self.within_fraction,
            "spearman": self.spearman,
            "spearman_p": self.spearman_p,
            "our_logging_interval": self.interval,
        }


def compare_curve(key: str, ours: Sequence[tuple[Any, Curve]], original: Curve) -> CurveAgreement:
    """One curve of our seeds ((seed, curve) pairs; a seed that did not log it is left out) against the
    original's (already on our steps, see `original_aligned`)."""
    seeds = [seed for seed, curve in ours if curve.steps]
    ours = [curve for _, curve in ours if curve.steps]
    values = by_step(ours)
    steps = list(values)
    interval = logging_interval(steps)
    points, beyond = [], []
    for step, value in zip(original.steps, original.values, strict=True):
        found = nearest(steps, step) if steps else None
        if found is None or abs(found - step) > interval:
            beyond.append(step - ORIGINAL_STEP_OFFSET)
            continue
        points.append(CellAgreement({"curve": key, "step": found, "original_step": step - ORIGINAL_STEP_OFFSET},
                                    list(values[found]), [value]))
    measures = []
    if key == VALIDATION:
        for threshold in THRESHOLDS:
            measures.append(CellAgreement(
                {"curve": key, "measure": f"first step below {threshold:g}"},
                [first_below(curve, threshold) for curve in ours], [first_below(original, threshold)],
            ))
    tails = [tail for curve in ours if (tail := tail_median(curve)) is not None]
    original_tail = tail_median(original)
    measures.append(CellAgreement({"curve": key, "measure": f"median over the last {LAST_FRACTION:.0%} of steps"},
                                  tails, [] if original_tail is None else [original_tail]))
    return CurveAgreement(key, seeds, points, beyond, measures, interval)


def _step(value: float | None) -> str:
    if value is None:
        return "-"
    return "not reached" if math.isinf(value) else f"{value:.0f}"


def _value(value: float | None) -> str:
    return "-" if value is None else f"{value:.4g}"


def _within(cell: CellAgreement) -> str:
    if not cell.original:
        return "only ours"
    if not cell.ours:
        return "only original"
    return "n/a" if cell.within is None else ("yes" if cell.within else "no")


def _our_range_json(cell: CellAgreement) -> dict[str, Any]:
    """Our median and range of a cell, for JSON (infinite steps as "not reached")."""
    return {"ours_median": _json_value(cell.ours_median), "ours_min": _json_value(cell.low),
            "ours_max": _json_value(cell.high)}


@dataclass
class PoolAgreement:
    """Our seeds as a pool against the original's pool (module docstring): each run's lowest validation loss by
    training step `horizon` (`lowest`: a cell {"curve", "measure"} with our values in the order of `seeds` and
    the original's, one per run of its chart that trained that far), the original's runs left out as shorter,
    and the Mann-Whitney U test's p-value (None with fewer than two runs a side)."""

    chart: str
    horizon: int
    seeds: list[Any]
    lowest: CellAgreement
    left_out: int
    p_value: float | None

    def below(self, threshold: float) -> tuple[int, int]:
        """How many of our runs and of the original's got below `threshold` by the horizon."""
        return (sum(value < threshold for value in self.lowest.ours),
                sum(value < threshold for value in self.lowest.original))

    def to_json(self) -> dict[str, Any]:
        """The numbers, for JSON."""
        cell = self.lowest
        return {
            "chart": self.chart,
            "horizon": self.horizon,
            "seeds": self.seeds,
            "ours": cell.ours,
            "original": cell.original,
            "original_runs_left_out": self.left_out,
            **_our_range_json(cell),
            "original_median": cell.original_median,
            "within": cell.within,
            "ours_within_original": cell.ours_within_original,
            "below": {f"{threshold:g}": dict(zip(("ours", "original"), self.below(threshold), strict=True))
                      for threshold in POOL_THRESHOLDS},
            "mann_whitney_p": self.p_value,
        }

    def summary_lines(self) -> list[str]:
        """The numbers in words."""
        cell = self.lowest

        def side(median_value: float | None, values: list[float]) -> str:
            return f"median {_value(median_value)} ({_value(min(values))}..{_value(max(values))}, {len(values)} runs)"

        def yes(flag: bool | None) -> str:
            return "n/a" if flag is None else ("yes" if flag else "no")

        left = f"; {self.left_out} of its runs ended earlier and are left out" if self.left_out else ""
        p_value = "n/a" if self.p_value is None else f"{self.p_value:.2g}"
        counts = ", ".join(f"{threshold:g}: {ours} of {len(cell.ours)} against {original} of {len(cell.original)}"
                           for threshold in POOL_THRESHOLDS for ours, original in [self.below(threshold)])
        return [
            f"pool against the original's ({self.chart}): lowest validation loss by step {self.horizon}, ours "
            f"{side(cell.ours_median, cell.ours)}, the original's {side(cell.original_median, cell.original)}{left}",
            f"  original's median within our range: {yes(cell.within)}; ours within its range: "
            f"{yes(cell.ours_within_original)}; Mann-Whitney U p = {p_value}",
            f"  runs below, ours against the original's: {counts}",
        ]


def pool_agreement(ours: Sequence[SeedCurves], pool: Sequence[Curve], chart: str) -> PoolAgreement | None:
    """Our seeds' validation curves against the runs of the original's pool (`pool`: its chart's lines, already
    on our steps, see `original_aligned`); None where either side has no run to compare."""
    seeds = [seed.seed for seed in ours if seed.curves[VALIDATION].steps]
    curves = [seed.curves[VALIDATION] for seed in ours if seed.curves[VALIDATION].steps]
    if not curves:
        return None
    horizon = min(curve.steps[-1] for curve in curves)

    def lowest(curve: Curve) -> float | None:
        found = [value for step, value in zip(curve.steps, curve.values, strict=True) if step <= horizon]
        return min(found) if found else None

    interval = logging_interval([step for curve in pool for step in curve.steps])
    theirs = [value for curve in pool if curve.steps and curve.steps[-1] >= horizon - interval
              if (value := lowest(curve)) is not None]
    if not theirs:
        return None
    found = [(seed, value) for seed, curve in zip(seeds, curves, strict=True) if (value := lowest(curve)) is not None]
    seeds, mine = [seed for seed, _ in found], [value for _, value in found]
    p_value = None
    if len(mine) >= 2 and len(theirs) >= 2:
        from scipy.stats import mannwhitneyu

        p_value = float(mannwhitneyu(mine, theirs, alternative="two-sided").pvalue)
    cell = CellAgreement({"curve": VALIDATION, "measure": f"pool: lowest by step {horizon}"}, mine, theirs)
    return PoolAgreement(chart, horizon, seeds, cell, len(pool) - len(theirs), p_value)


@dataclass
class CurvesAgreement:
    """A sweep of a training-curves study against the original's run: one `CurveAgreement` per curve, the number
    of our seeds and of finished runs without logs (left out), and where the original publishes the pool of that
    run, our seeds against it (`pool`)."""

    study: Study
    sweep: str
    curves: list[CurveAgreement]
    seeds: int
    runs_without_logs: int = 0
    metric: str = field(default=CURVES)
    pool: PoolAgreement | None = None

    def summary(self) -> dict[str, Any]:
        """The numbers over the curves, for JSON."""
        return {
            "study": self.study.name,
            "sweep": self.sweep,
            "metric": self.metric,
            "seeds": self.seeds,
            "runs_without_logs": self.runs_without_logs,
            "steps": f"training steps done: our epoch (1-based), the original's step + {ORIGINAL_STEP_OFFSET} "
                     "(its steps are 0-based and log the values after that step's update)",
        }

    def to_json(self) -> dict[str, Any]:
        """The summary, and per curve its numbers, measures and points (infinite steps as "not reached")."""
        def cell_json(cell: CellAgreement) -> dict[str, Any]:
            return {
                **{name: value for name, value in cell.cell.items() if name != "curve"},
                "ours": [_json_value(value) for value in cell.ours],
                "original": _json_value(cell.original_median),
                **_our_range_json(cell),
                "within": cell.within,
            }

        return {
            **self.summary(),
            "curves": [
                {**curve.summary(), "measures": [cell_json(cell) for cell in curve.measures],
                 "original_steps_beyond_ours": curve.beyond, "points": [cell_json(cell) for cell in curve.points]}
                for curve in self.curves
            ],
            **({} if self.pool is None else {"pool": self.pool.to_json()}),
        }

    def table_rows(self, printed: bool = False) -> list[dict[str, str]]:
        """The measures of every curve as rows of text, and (unless `printed`: they are too many to print) every
        point, with its step (ours) and the original's."""
        rows = []
        for curve in self.curves:
            for cell in curve.measures:
                is_step = cell.cell["measure"].startswith("first step")
                show = _step if is_step else _value
                row = {"study": self.study.name, "curve": curve.label, "measure": cell.cell["measure"]}
                if not printed:
                    row.update({"step": "", "original_step": ""})
                rows.append({
                    **row,
                    **cell_columns(cell, show),
                    "within": _within(cell),
                })
        if self.pool is not None:
            row = {"study": self.study.name, "curve": CURVE_LABELS[VALIDATION],
                   "measure": self.pool.lowest.cell["measure"]}
            if not printed:
                row.update({"step": "", "original_step": ""})
            rows.append({**row, **cell_columns(self.pool.lowest, _value), "within": _within(self.pool.lowest)})
        if printed:
            return rows
        for curve in self.curves:
            for cell in curve.points:
                rows.append({
                    "study": self.study.name, "curve": curve.label, "measure": "value at step",
                    "step": str(cell.cell["step"]), "original_step": str(cell.cell["original_step"]),
                    "ours_runs": str(len(cell.ours)), "ours_median": _value(cell.ours_median),
                    "ours_min": _value(cell.low), "ours_max": _value(cell.high), "original_runs": "1",
                    "original_median": _value(cell.original_median), "within": _within(cell),
                })
        return rows

    def summary_lines(self) -> list[str]:
        """The numbers over each curve's points, in words."""
        lines = [
            f"{self.study.name} ({self.sweep}): {self.seeds} seeds against the original's run; steps are training "
            f"steps done (our epoch, the original's step + {ORIGINAL_STEP_OFFSET}); each of the original's points "
            "is compared at our nearest logged step"
            if self.curves else
            f"{self.study.name} ({self.sweep}): {self.seeds} seeds; the original published no run of this study, "
            "only its pool's chart"
        ]
        for curve in self.curves:
            total = len(curve.points) + len(curve.beyond)
            fraction = curve.within_fraction
            within = ("n/a (no step logged by two seeds or more)" if fraction is None
                      else f"{curve.within} of {curve.compared} steps ({fraction:.0%})")
            rho = "n/a (fewer than 3 steps or a constant side)" if curve.spearman is None else (
                f"{curve.spearman:.3f} (p = {curve.spearman_p:.2g}, {len(curve.points)} steps)")
            lines.append(f"{curve.label}: {total} points of the original's, compared at our steps at most "
                         f"{curve.interval} away" + (f", {len(curve.beyond)} beyond our runs" if curve.beyond else ""))
            lines.append(f"  original's value within our seeds' range: {within}")
            lines.append(f"  Spearman rank correlation of the original's curve and our median: {rho}")
        if self.pool is not None:
            lines += self.pool.summary_lines()
        if self.runs_without_logs:
            lines.append(f"{self.runs_without_logs} finished runs have no TensorBoard logs and are left out")
        return lines


def curves_agreement(study: Study, sweep: str, ours: Sequence[SeedCurves], original: dict[str, Curve],
                     runs_without_logs: int = 0, pool: PoolAgreement | None = None) -> CurvesAgreement:
    """The curves of our seeds against the original's that it published (on our steps, see
    `original_aligned`; `original` holds none for a study of which only the pool was published), and the pool
    against its pool where given (`pool_agreement`)."""
    return CurvesAgreement(
        study, sweep,
        [compare_curve(key, [(seed.seed, seed.curves.get(key, Curve([], []))) for seed in ours], original[key])
         for key in (VALIDATION, POSTSELECTION) if key in original],
        seeds=len(ours), runs_without_logs=runs_without_logs, pool=pool,
    )
