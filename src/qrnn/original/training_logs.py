"""The original implementation's published training logs: TensorBoard scalar charts exported as SVG.

The original repository ships, per experiment, `results/training-logs/<experiment>/<tag>.svg`: TensorBoard's
export of one scalar chart (e.g. `loss_validate`) with one line per run of the experiment's pool, and CSV files
for a few of those runs only. The SVG is the only record of the whole pool: how many runs there were and how far
each got. `read_chart` recovers every line's (step, value) points from the drawing: each axis' tick labels give
the map from pixels to data (linear in steps; linear or logarithmic in values, whichever fits the ticks), and
each line's path gives its points. On the original's charts this reproduces the published CSV values to 1e-12.

The file is untrusted input: it is read whole only below `MAX_CHART_BYTES` (the original's largest chart is about
1.1 MB) and parsed with the standard library's XML parser, which resolves no external entity; nothing in it is
executed.

`POOL_CHARTS` names, per dataset of a training-curves study, the chart of the pool of the paper's runs on that
dataset; `read_pool_chart` reads it from a checkout of the original.
"""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ElementTree
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qrnn.errors import QRNNError
from qrnn.files import read_bytes

MAX_CHART_BYTES = 16 * 2**20
# The validation-loss chart of the paper's pool on a training-curves study's dataset (CLEconomides/RVQE):
# - mnist01: experiment-3-mnist01.sh of 454e997 (27 May 2020), 30 seeds; one of its runs is the paper's MNIST curve;
# - mnist36: experiment-3-mnist-2digit.sh of 254083e (28 May 2020) called with mnist36, 30 seeds; the paper
#   published no curve of it, its MNIST 3 vs 6 row is the best of such pools;
# - mnist36-ds: the same script of 7385b1c (29 May 2020) called with mnist36-ds, the runs starting a minute after
#   that commit, the first on truly deskewed images (until 82efed9 that morning, `-ds` read the plain ones).
POOL_CHARTS = {
    "mnist01": "results/training-logs/mnist01/loss_validate.svg",
    "mnist36": "results/training-logs/mnist36/loss_validate.svg",
    "mnist36-ds": "results/training-logs/mnist36-ds/loss_validate.svg",
}

_SVG = "{http://www.w3.org/2000/svg}"
_TRANSLATE = re.compile(r"translate\(\s*([-+0-9.eE]+)[\s,]+([-+0-9.eE]+)\s*\)")
_NUMBER = re.compile(r"[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
# TensorBoard abbreviates large step labels: 1.2k, 3M.
_SUFFIXES = {"": 1.0, "k": 1e3, "M": 1e6, "G": 1e9}
_TICK = re.compile(r"^\s*([-+−]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?)\s*([kMG]?)\s*$")
# A run's line is an absolute polyline (M/L only); curves and arcs draw markers and icons.
_POLYLINE = re.compile(r"[\sML0-9.,eE+-]*")


@dataclass(frozen=True)
class Run:
    """One line of a chart: its stroke colour (TensorBoard's only label for it in the SVG) and its points."""

    colour: str
    steps: np.ndarray
    values: np.ndarray

    @property
    def best(self) -> float:
        """The lowest value of the line (for a loss: the run's best)."""
        return float(self.values.min())

    @property
    def best_step(self) -> int:
        """The step of the lowest value (the first, on a tie)."""
        return int(round(float(self.steps[int(np.argmin(self.values))])))

    @property
    def last_step(self) -> int:
        """The last step the run logged."""
        return int(round(float(self.steps[-1])))

    def best_until(self, step: float) -> float:
        """The lowest value logged at or before `step` (inf if none)."""
        mask = self.steps <= step + 1e-9
        return float(self.values[mask].min()) if mask.any() else math.inf


@dataclass(frozen=True)
class Chart:
    """A chart's runs and whether its value axis is logarithmic."""

    path: str
    runs: tuple[Run, ...]
    log_values: bool

    def ranked(self) -> list[Run]:
        """The runs, lowest best value first."""
        return sorted(self.runs, key=lambda run: run.best)

    def count_below(self, threshold: float, until: float | None = None) -> int:
        """How many runs logged a value below `threshold` (by step `until`, if given)."""
        return sum((run.best if until is None else run.best_until(until)) < threshold for run in self.runs)


def _tick_value(text: str) -> float | None:
    match = _TICK.match(text.replace("\u2212", "-"))
    if match is None:
        return None
    return float(match.group(1)) * _SUFFIXES[match.group(2)]


def _offset(element: ElementTree.Element) -> tuple[float, float]:
    dx = dy = 0.0
    for match in _TRANSLATE.finditer(element.get("transform", "")):
        dx += float(match.group(1))
        dy += float(match.group(2))
    return dx, dy


def _walk(
    element: ElementTree.Element, dx: float, dy: float
) -> Iterator[tuple[ElementTree.Element, float, float]]:
    ox, oy = _offset(element)
    dx, dy = dx + ox, dy + oy
    yield element, dx, dy
    for child in element:
        yield from _walk(child, dx, dy)


def _tag(element: ElementTree.Element) -> str:
    return element.tag[len(_SVG) :] if element.tag.startswith(_SVG) else element.tag


def _fit(pixels: np.ndarray, values: np.ndarray) -> tuple[float, float, float]:
    """Least squares values = a * pixels + b; returns a, b and the largest residual relative to the span."""
    a, b = np.polyfit(pixels, values, 1)
    span = float(np.ptp(values)) or 1.0
    return float(a), float(b), float(np.abs(a * pixels + b - values).max()) / span


def _axis(ticks: dict[float, list[tuple[float, float]]], min_ticks: int = 3) -> list[tuple[float, float]]:
    """The largest group of ticks sharing one coordinate (an axis' labels line up)."""
    groups = [group for group in ticks.values() if len({value for _, value in group}) >= min_ticks]
    if not groups:
        return []
    return max(groups, key=len)


def read_chart(path: str | Path) -> Chart:
    """Every run (line) of a TensorBoard scalar chart exported as SVG, in data units (steps, values).

    Raises `QRNNError` with a one-line reason if the file is not such a chart."""
    path = Path(path)
    data = read_bytes(path, "the chart", MAX_CHART_BYTES)
    try:
        root = ElementTree.fromstring(data)
    except ElementTree.ParseError as error:
        raise QRNNError(f"{path}: not an SVG file ({error})") from None
    by_row: dict[float, list[tuple[float, float]]] = {}
    by_column: dict[float, list[tuple[float, float]]] = {}
    lines: list[tuple[str, list[tuple[float, float]]]] = []
    for element, dx, dy in _walk(root, 0.0, 0.0):
        tag = _tag(element)
        if tag == "text":
            value = _tick_value("".join(element.itertext()))
            if value is None:
                continue
            x = dx + float(element.get("x", "0") or 0)
            y = dy + float(element.get("y", "0") or 0)
            by_row.setdefault(round(y, 3), []).append((x, value))
            by_column.setdefault(round(x, 3), []).append((y, value))
        elif tag == "path" and (data := element.get("d")):
            numbers = [float(n) for n in _NUMBER.findall(data)]
            if len(numbers) < 2 or len(numbers) % 2 or not _POLYLINE.fullmatch(data):
                continue
            colour = element.get("stroke") or _style(element, "stroke") or "?"
            points = [(dx + numbers[i], dy + numbers[i + 1]) for i in range(0, len(numbers), 2)]
            lines.append((colour, points))
    x_ticks, y_ticks = _axis(by_row), _axis(by_column)
    if not x_ticks or not y_ticks:
        raise QRNNError(f"{path}: no axis tick labels found; expected a TensorBoard scalar chart exported as SVG")
    if not lines:
        raise QRNNError(f"{path}: the chart has no lines")
    x_pixels, x_values = np.array(x_ticks).T
    step_a, step_b, step_error = _fit(x_pixels, x_values)
    y_pixels, y_values = np.array(y_ticks).T
    linear = _fit(y_pixels, y_values)
    log_values = False
    value_a, value_b, value_error = linear
    if (y_values > 0).all():
        logarithmic = _fit(y_pixels, np.log10(y_values))
        if logarithmic[2] < linear[2]:
            value_a, value_b, value_error = logarithmic
            log_values = True
    if step_error > 1e-3 or value_error > 1e-3:
        raise QRNNError(f"{path}: the axis tick labels are not evenly spaced; not a chart this reader knows")
    runs = []
    for colour, points in lines:
        pixels = np.array(points)
        steps = step_a * pixels[:, 0] + step_b
        values = value_a * pixels[:, 1] + value_b
        runs.append(Run(colour=colour, steps=steps, values=10.0**values if log_values else values))
    return Chart(path=str(path), runs=tuple(runs), log_values=log_values)


def _style(element: ElementTree.Element, key: str) -> str | None:
    for item in element.get("style", "").split(";"):
        name, _, value = item.partition(":")
        if name.strip() == key:
            return value.strip()
    return None


def summarise(chart: Chart, thresholds: Sequence[float], by_step: float | None = None) -> str:
    """A text table of a chart's runs (best value first) and how many runs got below each threshold."""
    runs = chart.ranked()
    lines = [f"{chart.path}: {len(runs)} runs ({'log' if chart.log_values else 'linear'} value axis)"]
    lines.append(f"  {'run':>4}  {'colour':<20} {'points':>6} {'last step':>9} {'best':>8} {'at step':>8}")
    for index, run in enumerate(runs, start=1):
        lines.append(
            f"  {index:>4}  {run.colour:<20} {len(run.steps):>6} {run.last_step:>9} {run.best:>8.4f} "
            f"{run.best_step:>8}"
        )
    for threshold in thresholds:
        count = chart.count_below(threshold, by_step)
        when = "" if by_step is None else f" by step {by_step:g}"
        lines.append(f"  runs below {threshold:g}{when}: {count} of {len(runs)}")
    return "\n".join(lines)


def read_pool_chart(checkout: str | Path, dataset: str) -> Chart | None:
    """The validation-loss chart of the paper's pool on the training-curves study's dataset `dataset`
    (`POOL_CHARTS`) in the checkout `checkout` of the original; None where the study has no such pool or the
    checkout lacks the file (older commits). One-line `QRNNError` for a file that is not such a chart."""
    if dataset not in POOL_CHARTS:
        return None
    path = Path(checkout).expanduser() / POOL_CHARTS[dataset]
    if not path.exists() and not path.is_symlink():
        return None
    return read_chart(path)
