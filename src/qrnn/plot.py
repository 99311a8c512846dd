"""`qrnn plot`: PNG figures of a training run and of its model.

- `curves.png`: training and validation loss, character error rate and minimum postselection probability over
  the epochs, read from the run's TensorBoard event files;
- MNIST pixel datasets: `test-predictions.png`, a grid of test images with the labels the model gives them
  (sampled on the label steps, the other steps postselected, as `qrnn evaluate` does);
- MNIST PCA and UMAP datasets: `test-predictions.png`, the test points by their first two code coordinates,
  coloured by true class, the model's mistakes marked; for 2-d UMAP codes the background shows the class the
  model finds most probable (exactly, by teacher forcing every label) in every cell of the code grid;
- `mnist01-gen`: `generated-digits.png`, digits sampled pixel by pixel from the model after each label word.

A target is a run's log directory (`<out>/runs/<run name>`; its newest "best" checkpoint, else its newest
checkpoint, in `<out>/checkpoints` gives the model) or a checkpoint (its run's log directory gives the curves
when it is still there).

Targets may instead be one or more sweep folders (`<root>/<preset>` of `qrnn sweep`): `sweep.png` shows, for each
sweep, the epochs each finished point trained (filled where it reached `--stop-at-loss`, hollow where it stopped
for another reason) and its best validation loss, against the option the sweep varies besides the seed (or each
combination of the options, when it varies several), for sweeps that are none of the paper's studies.

Sweeps of the paper's hyperparameter studies (`qrnn.studies`: optimizer, topology, Elman XOR initialisation,
Elman letter topology, DNA lengths) get that study's figure instead, as the original's notebook draws it, and with
`--original` (a checkout of RVQE) the study's published table beside it and the agreement cell by cell
(`agreement.csv`, `agreement.json`, `agreement.png`). A sweep over seeds only of simple-seq or MNIST 0 vs 1 is
the training-curves study (`qrnn.study_curves`): `curves-<dataset>.png`, every seed's validation loss and
postselection overhead over the training steps, with `--original` beside the original's run, and the agreement
step by step (in `agreement.csv`, `agreement.json`); for MNIST 0 vs 1 also beside the pool that run came from
(the original's training-log chart of its 30 seeds): a third panel ranks both pools' lowest validation losses.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import statistics
import textwrap
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from qrnn.errors import QRNNError
from qrnn.training.config import REACHED_LOSS

# Scalars of `qrnn.training.run_log`, grouped into the panels of curves.png: (tag, label, style).
CURVE_PANELS: tuple[tuple[str, bool, tuple[tuple[str, str, str], ...]], ...] = (
    (
        "loss",
        True,
        (
            ("loss/train", "training", "-"),
            ("loss/validate", "validation", "-"),
            ("loss/validate_best", "best validation", "--"),
        ),
    ),
    (
        "character error rate",
        False,
        (
            ("accuracy/character_error_rate_current", "validation", "-"),
            ("accuracy/character_error_rate_best", "best", "--"),
        ),
    ),
    (
        "min. postselection probability",
        True,
        (("min_postsel_prob/train", "training", "-"), ("min_postsel_prob/validate", "validation", "-")),
    ),
)
_TIMESTAMP_LENGTH = len("2020-05-28--09-47-01")
MAX_GRID_IMAGES = 48
GENERATED_PER_LABEL = 8


@dataclass
class PlotSource:
    """What a plot target resolves to: the run's name, its log directory and checkpoint (either may be
    None)."""

    name: str
    log_dir: Path | None
    checkpoint: Path | None


def _checkpoint_for_run(log_dir: Path) -> Path | None:
    """The newest "best" checkpoint of the run logged in `log_dir`, else its newest checkpoint of any kind."""
    name = log_dir.name
    checkpoints = log_dir.parent.parent / "checkpoints"
    if len(name) <= _TIMESTAMP_LENGTH + 1 or not checkpoints.is_dir():
        return None
    # Run `<tag>-<dataset>--<id>-<timestamp>` writes
    # `checkpoint-<tag>-<dataset>--<id>-<kind>-<timestamp>.tar`.
    stem = "checkpoint-" + name[: -_TIMESTAMP_LENGTH - 1] + "-"
    candidates = sorted(checkpoints.glob(stem + "*.tar"), key=lambda path: path.stat().st_mtime)
    best = [path for path in candidates if path.name[len(stem) :].startswith("best-")]
    return (best or candidates or [None])[-1]


def resolve_target(target: str | os.PathLike[str]) -> PlotSource:
    """A run's log directory or a checkpoint file, resolved to both where they exist. One-line errors."""
    from qrnn.files import path_problem
    from qrnn.training.checkpoint import out_directory_of, read_checkpoint

    path = Path(target)
    if path.is_dir():
        if not any(path.glob("events.out.tfevents.*")):
            raise QRNNError(
                f"{path} holds no TensorBoard event files; give a run directory (<out>/runs/<run name>) "
                "or a checkpoint file"
            )
        return PlotSource(name=path.name, log_dir=path, checkpoint=_checkpoint_for_run(path))
    problem = path_problem(path, "plot target")
    if problem is not None:
        raise QRNNError(f"{problem}; give a run directory (<out>/runs/<run name>) or a checkpoint")
    payload = read_checkpoint(path)
    run_name = payload["run"]["name"]
    log_dir = out_directory_of(path) / "runs" / run_name
    return PlotSource(name=run_name, log_dir=log_dir if log_dir.is_dir() else None, checkpoint=path)


def read_scalars(log_dir: Path) -> dict[str, tuple[list[int], list[float]]]:
    """Every scalar series of a run's event files: tag -> (epochs, values), one value per epoch (the last
    written, so a resumed run's rewritten epochs count once)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    accumulator = EventAccumulator(str(log_dir), size_guidance={"scalars": 0})
    accumulator.Reload()
    series: dict[str, tuple[list[int], list[float]]] = {}
    for tag in accumulator.Tags().get("scalars", []):
        by_step = {event.step: event.value for event in accumulator.Scalars(tag)}
        steps = sorted(by_step)
        series[tag] = (steps, [by_step[step] for step in steps])
    return series


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise QRNNError(
            "plotting needs matplotlib: pip install 'qrnn[plot]' (or pip install matplotlib)"
        ) from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _smoothed(values: list[float], window: int) -> list[float]:
    """A trailing moving average (the per-epoch training values are noisy: one batch each)."""
    result, total = [], 0.0
    for index, value in enumerate(values):
        total += value
        if index >= window:
            total -= values[index - window]
        result.append(total / min(index + 1, window))
    return result


def _decades(axis: Any) -> float:
    low, high = axis.get_ylim()
    return math.log10(high / low) if low > 0 and high > 0 else 0.0


def _title(text: str, width: int = 80) -> str:
    """A figure title wrapped to lines of at most `width` characters (long checkpoint names)."""
    return "\n".join(textwrap.fill(line, width) for line in text.split("\n"))


def plot_curves(series: dict[str, tuple[list[int], list[float]]], title: str, path: Path) -> Path:
    """Loss, character error rate and minimum postselection probability over the epochs, one panel each."""
    plt = _pyplot()
    from matplotlib import ticker

    figure, axes = plt.subplots(1, len(CURVE_PANELS), figsize=(5.2 * len(CURVE_PANELS), 4.2), squeeze=False)
    for axis, (panel, logarithmic, lines) in zip(axes[0], CURVE_PANELS, strict=True):
        drawn = False
        for tag, label, style in lines:
            if tag not in series or not series[tag][0]:
                continue
            steps, values = series[tag]
            if logarithmic:
                # A loss can reach 0 (or just below, in float32): clip so the log axis can show it.
                values = [max(value, 1e-8) for value in values]
            if tag.endswith("/train") and len(values) > 50:
                window = max(5, len(values) // 50)
                axis.plot(steps, values, style, color="0.8", linewidth=0.6)
                axis.plot(
                    steps,
                    _smoothed(values, window),
                    style,
                    linewidth=1.4,
                    label=f"{label} (mean of {window})",
                )
            else:
                axis.plot(
                    steps, values, style, linewidth=1.4, marker="." if len(values) < 40 else None, label=label
                )
            drawn = True
        axis.set_title(panel)
        axis.set_xlabel("epoch")
        axis.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
        axis.grid(True, alpha=0.3)
        if logarithmic and drawn:
            axis.set_yscale("log")
            # Plain numbers (0.05, not 5 x 10^-2) also on the minor ticks of a narrow range.
            plain = ticker.FuncFormatter(lambda value, _: f"{value:.3g}")
            axis.yaxis.set_major_formatter(plain)
            axis.yaxis.set_minor_formatter(plain if _decades(axis) < 1.5 else ticker.NullFormatter())
            axis.tick_params(axis="y", which="minor", labelsize=7)
        if not logarithmic:
            axis.set_ylim(-0.02, 1.02)
        if drawn:
            axis.legend(fontsize=8)
        else:
            axis.text(0.5, 0.5, "not logged", ha="center", va="center", transform=axis.transAxes, color="0.5")
    figure.suptitle(_title(title, 160), fontsize=10)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


# ---- the model on test data ----


@dataclass
class _Predictions:
    inputs: Any
    truth: Any
    predicted: Any


def _predict(model: Any, dataset: Any, seed: int) -> _Predictions:
    """One test batch with the labels sampled as `qrnn evaluate` samples them."""
    import torch

    from qrnn.training.loop import postselect_steps, sampling_seed

    batch = dataset.batch("test")
    with torch.no_grad():
        _, measured, _ = model(
            batch.inputs,
            batch.targets,
            postselect=postselect_steps(batch.postselection()),
            generator=torch.Generator().manual_seed(sampling_seed(seed, 0)),
        )
    return _Predictions(
        batch.inputs, dataset.decode_labels(batch.targets[:, 1:]), dataset.decode_labels(measured)
    )


def _class_name(dataset: Any, index: int) -> str:
    return dataset.classes[index] if index >= 0 else "invalid"


def plot_test_images(model: Any, dataset: Any, seed: int, title: str, path: Path) -> Path:
    """A grid of test images, each titled with the model's (sampled) label; wrong ones in red."""
    plt = _pyplot()
    result = _predict(model, dataset, seed)
    side, steps = dataset.side, dataset.content_steps()
    count = min(len(result.inputs), MAX_GRID_IMAGES)
    columns = min(count, 12)
    rows = math.ceil(count / columns)
    figure, axes = plt.subplots(rows, columns, figsize=(1.25 * columns, 1.45 * rows + 0.6), squeeze=False)
    wrong = 0
    for index, axis in enumerate(axes.flat):
        axis.axis("off")
        if index >= count:
            continue
        # Lane 0 is the image row by row, 1 = background: show ink dark.
        image = 1 - result.inputs[index, :steps, 0].reshape(side, side).numpy()
        axis.imshow(image, cmap="gray_r", vmin=0, vmax=1, interpolation="nearest")
        truth, predicted = int(result.truth[index]), int(result.predicted[index])
        is_right = truth == predicted
        wrong += not is_right
        label = f"→ {_class_name(dataset, predicted)}" + (
            "" if is_right else f" (is {_class_name(dataset, truth)})"
        )
        axis.set_title(label, fontsize=9, color="black" if is_right else "red")
    figure.suptitle(
        _title(f"{title}\n{count - wrong} of {count} test images labelled right (sampled labels)", 100),
        fontsize=9,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def _code_levels(dataset: Any, inputs: Any) -> Any:
    """The content of code datasets as levels per coordinate (B x coordinates)."""
    from qrnn.bits import bits_to_int
    from qrnn.datasets.mnist import MnistPca

    steps = dataset.content_steps()
    if isinstance(dataset, MnistPca):
        return bits_to_int(inputs[:, :steps])  # one component per step
    return bits_to_int(inputs[:, :steps].transpose(1, 2))  # UMAP: bit planes per step, most significant first


def _decision_map(model: Any, dataset: Any) -> Any:
    """For a 2-d code dataset: the most probable class of every cell of the code grid, exactly (teacher
    forcing each class's label words; a label's probability is the product over its words)."""
    import torch

    from qrnn.bits import bits_to_int, int_to_bits

    steps, width = dataset.content_steps(), dataset.input_size
    levels = 2**steps
    grid = torch.cartesian_prod(torch.arange(levels), torch.arange(levels))  # (x, y) per cell
    planes = int_to_bits(grid, steps)  # cells x 2 x steps
    content = planes.transpose(1, 2)  # cells x steps x 2
    classes = dataset.num_classes()
    labels = dataset.label_words(torch.arange(classes))  # classes x K x I
    cells = len(grid)
    length = dataset.sequence_length
    inputs = torch.zeros(classes * cells, length, width, dtype=torch.long)
    inputs[:, :steps] = content.repeat(classes, 1, 1)
    targets = torch.zeros_like(inputs)
    label_start = length - labels.shape[1]  # the label words end the sequence (after the dataset's gap)
    targets[:, label_start:] = labels.repeat_interleave(cells, dim=0)
    with torch.no_grad():
        probs, _, _ = model(inputs, targets, postselect=True)
    label_steps = range(label_start - 1, length - 1)
    words = torch.stack([bits_to_int(targets[:, t + 1]) for t in label_steps], 1)
    chosen = torch.stack(
        [probs[:, :, t].gather(1, words[:, i : i + 1])[:, 0] for i, t in enumerate(label_steps)], 1
    )
    likelihood = chosen.prod(1).reshape(classes, levels, levels)
    return likelihood.argmax(0).T.numpy()  # rows: y level, columns: x level


def plot_test_codes(model: Any, dataset: Any, seed: int, title: str, path: Path) -> Path:
    """Test points by their first two code coordinates (jittered inside their cell), coloured by true class;
    the model's mistakes (sampled labels) circled in red; for 2-d UMAP codes the model's decision map
    behind."""
    import numpy as np

    from qrnn.datasets.mnist import MnistUmap

    plt = _pyplot()
    result = _predict(model, dataset, seed)
    levels = _code_levels(dataset, result.inputs).numpy()
    if levels.shape[1] < 2:
        levels = np.concatenate([levels, np.zeros_like(levels)], axis=1)
    classes = dataset.num_classes()
    colours = plt.get_cmap("tab10" if classes <= 10 else "tab20")
    figure, axis = plt.subplots(figsize=(6.4, 5.6))
    if isinstance(dataset, MnistUmap) and dataset.input_size == 2:
        decision = _decision_map(model, dataset)
        top = 2 ** dataset.content_steps()
        axis.imshow(
            decision,
            origin="lower",
            extent=(-0.5, top - 0.5, -0.5, top - 0.5),
            cmap=colours,
            vmin=-0.5,
            vmax=colours.N - 0.5,
            alpha=0.35,
            interpolation="nearest",
        )
    jitter = np.random.default_rng(seed).uniform(-0.3, 0.3, size=levels[:, :2].shape)
    points = levels[:, :2] + jitter
    truth, predicted = result.truth.numpy(), result.predicted.numpy()
    for index in range(classes):
        chosen = truth == index
        axis.scatter(
            points[chosen, 0],
            points[chosen, 1],
            s=14,
            color=colours(index),
            label=_class_name(dataset, index),
        )
    wrong = truth != predicted
    axis.scatter(
        points[wrong, 0],
        points[wrong, 1],
        s=60,
        facecolors="none",
        edgecolors="red",
        linewidths=1.2,
        label="labelled wrong",
    )
    from matplotlib import ticker

    axis.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    axis.yaxis.set_major_locator(ticker.MaxNLocator(integer=True))
    axis.set_xlabel("code coordinate 1 (level)")
    axis.set_ylabel("code coordinate 2 (level)")
    axis.legend(fontsize=7, loc="center left", bbox_to_anchor=(1.0, 0.5))
    right = int((~wrong).sum())
    axis.set_title(
        _title(f"{title}\n{right} of {len(truth)} test points labelled right (sampled labels)", 64),
        fontsize=9,
    )
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def generate_digits(model: Any, dataset: Any, per_label: int, seed: int) -> Any:
    """Images (labels x per_label x side x side bits, 1 = background) sampled pixel by pixel from the model
    after each label word: each next word is drawn from the model's distribution given the words so far
    (postselecting the prefix on the words drawn is conditioning on them), then fed as the next input."""
    import torch

    from qrnn.bits import int_to_bits

    labels = len(dataset.label_names)
    width, length = dataset.input_size, dataset.sequence_length
    generator = torch.Generator().manual_seed(seed)
    words = torch.zeros(labels * per_label, length, width, dtype=torch.long)
    words[:, 0] = int_to_bits(torch.arange(labels).repeat_interleave(per_label), width)
    with torch.no_grad():
        for step in range(length - 1):
            prefix = words[:, : step + 2]
            probs, _, _ = model(prefix, prefix, postselect=True)
            drawn = torch.multinomial(probs[:, :, step].double().clamp_min(0), 1, generator=generator)[:, 0]
            words[:, step + 1] = int_to_bits(drawn, width)
    side = dataset.side
    images = words[:, :, 0].reshape(labels, per_label, side, side)
    images[:, :, 0, 0] = 1  # the first word is the label, not a pixel: show it as background
    return images


def plot_generated_digits(model: Any, dataset: Any, seed: int, title: str, path: Path) -> Path:
    """A row of generated digits for each label word."""
    plt = _pyplot()
    images = generate_digits(model, dataset, GENERATED_PER_LABEL, seed)
    labels, per_label = images.shape[:2]
    figure, axes = plt.subplots(
        labels, per_label, figsize=(1.2 * per_label, 1.5 * labels + 0.6), squeeze=False
    )
    for row in range(labels):
        for column in range(per_label):
            axis = axes[row, column]
            axis.imshow(
                1 - images[row, column].numpy(), cmap="gray_r", vmin=0, vmax=1, interpolation="nearest"
            )
            axis.axis("off")
        axes[row, 0].set_title(f"label {dataset.label_names[row]}", fontsize=9, loc="left")
    figure.suptitle(_title(f"{title}\ndigits sampled pixel by pixel after each label word", 100), fontsize=9)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_model(checkpoint: Path, out: Path, samples: int, seed: int | None) -> list[Path]:
    """The figures of the checkpoint's model on its dataset (MNIST datasets only); [] for other datasets."""
    import torch

    from qrnn.datasets import lookup_run
    from qrnn.datasets.mnist import MnistDataset, MnistGenerative, MnistPixels
    from qrnn.training.checkpoint import load_checkpoint

    model, config = load_checkpoint(checkpoint)
    seed = config["seed"] if seed is None else seed
    entry = lookup_run(config)
    if not issubclass(entry.cls, MnistDataset):
        return []
    # MNIST batches hold `batch_size` images of each digit of the dataset.
    per_digit = max(1, math.ceil(samples / len(entry.cls.digits)))
    dataset = entry.create(
        sentence_length=config["sentence_length"], batch_size=per_digit, shard=0, num_shards=1, seed=seed
    )
    title = f"{checkpoint.name} (epoch {config['epoch']}, {config['dataset']})"
    threads = torch.get_num_threads()
    try:
        if isinstance(dataset, MnistGenerative):
            return [plot_generated_digits(model, dataset, seed, title, out / "generated-digits.png")]
        if isinstance(dataset, MnistPixels):
            return [plot_test_images(model, dataset, seed, title, out / "test-predictions.png")]
        return [plot_test_codes(model, dataset, seed, title, out / "test-predictions.png")]
    finally:
        torch.set_num_threads(threads)


def make_plots(
    target: str | os.PathLike[str],
    out: str | os.PathLike[str] | None = None,
    samples: int = 36,
    seed: int | None = None,
) -> list[Path]:
    """Write the figures of a run or checkpoint (see the module docstring) into `out` (default:
    `plots/<run name>` beside the run's `runs/` and `checkpoints/`, or beside a lone checkpoint); returns
    the paths."""
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise QRNNError(f"--samples must be an integer >= 1, got {samples!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise QRNNError(f"--seed must be an integer >= 0, got {seed!r}")
    _pyplot()
    source = resolve_target(target)
    if out is None:
        if source.log_dir is not None:
            out = source.log_dir.parent.parent / "plots" / source.name
        else:
            assert source.checkpoint is not None
            out = source.checkpoint.parent / f"plots-{source.checkpoint.stem}"
    out_dir = Path(out)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise QRNNError(f"cannot create --out {out_dir}: {error.strerror}") from None
    written: list[Path] = []
    if source.log_dir is not None:
        series = read_scalars(source.log_dir)
        if series:
            written.append(plot_curves(series, source.name, out_dir / "curves.png"))
    if source.checkpoint is not None:
        written.extend(plot_model(source.checkpoint, out_dir, samples, seed))
    if not written:
        raise QRNNError(
            f"nothing to plot for {target}: its run logged no scalars yet and its dataset has no "
            "model figures"
        )
    return written


@dataclass
class SweepResult:
    """The finished points of one sweep folder: the option it varies (besides the seed) and, per point, that
    option's value, the seed, the epochs trained, whether it stopped at `--stop-at-loss`, its best validation
    loss and its full options (`options`); `varied` names the options varied besides the seed. A point whose
    training diverged (failed on a non-finite number) is a row with `diverged` true, its epochs those it reached,
    never reaching the loss and with no validation loss; other failed and unfinished points are `unfinished`."""

    name: str
    option: str
    rows: list[dict[str, Any]]
    unfinished: int
    varied: tuple[str, ...] = ()


def is_sweep_folder(path: Path) -> bool:
    """Whether `path` is a sweep's folder (`<root>/<preset>`: point folders holding point.json)."""
    return path.is_dir() and any(path.glob("*/point.json"))


def read_sweep(folder: Path) -> SweepResult:
    """The finished points of the sweep in `folder` (see `SweepResult`); one-line errors."""
    from qrnn.sweep import DONE_FILE, FAILED_FILE, NON_FINITE_AT, POINT_FILE, format_value, read_json

    rows: list[dict[str, Any]] = []
    options: set[str] = set()
    unfinished = 0
    name = folder.name
    for point_file in sorted(folder.glob(f"*/{POINT_FILE}")):
        point = read_json(point_file)
        if point is None:
            raise QRNNError(f"cannot read the sweep point {point_file}: not a JSON file")
        done = read_json(point_file.parent / DONE_FILE)  # None: not finished (or its record is being written)
        name = str(point.get("preset", name))
        varying = {key: value for key, value in dict(point.get("varying", {})).items() if key != "seed"}
        options.update(varying)
        diverged_at = None
        if done is None:
            failed = read_json(point_file.parent / FAILED_FILE) or {}
            diverged_at = failed.get(NON_FINITE_AT)
            if not isinstance(diverged_at, int) or isinstance(diverged_at, bool) or diverged_at < 0:
                unfinished += 1
                continue
            done = {"epoch": diverged_at}
        rows.append({
            # A point written before the grid grew records fewer varying options: its full options say all.
            "combination": {**dict(point.get("options", {})), **varying},
            # Where its TensorBoard logs are (`_point_log_dir`), for the curves studies.
            "point_dir": point_file.parent,
            "log_dir": done.get("log_dir"),
            "seed": point.get("varying", {}).get("seed"),
            "epochs": int(done["epoch"]),
            "reached": done.get("stop_reason") in REACHED_LOSS,
            "best_validation_loss": done.get("best_validation_loss"),
            "diverged": diverged_at is not None,
        })
    names = sorted(options)
    for row in rows:
        # Every row keeps its full options: a study's grid cell may include options this sweep keeps fixed.
        combination = row["options"] = row.pop("combination")
        if len(names) == 1:
            row["value"] = combination.get(names[0])
        else:
            # Several options vary: each combination is one category, labelled by its values.
            row["value"] = ", ".join(format_value(combination.get(name)) for name in names)
    if not rows:
        raise QRNNError(f"the sweep in {folder} has no finished points yet ({unfinished} unfinished)")
    return SweepResult(
        name=name, option=", ".join(names) or "seed", rows=rows, unfinished=unfinished, varied=tuple(names)
    )


def plot_sweeps(folders: list[Path], path: Path) -> Path:
    """`sweep.png`: epochs trained and best validation loss against the swept option, one series per sweep
    (every seed a marker, the median over seeds a line)."""
    import statistics

    plt = _pyplot()
    sweeps = [read_sweep(folder) for folder in folders]
    option = sweeps[0].option
    if any(sweep.option != option for sweep in sweeps):
        raise QRNNError(
            "the sweeps vary different options (" + ", ".join(f"{s.name}: {s.option}" for s in sweeps) + "); "
            "plot sweeps over the same option together"
        )
    values = sorted({row["value"] for sweep in sweeps for row in sweep.rows}, key=lambda v: (str(type(v)), v))
    numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
    position = {value: (float(value) if numeric else float(index)) for index, value in enumerate(values)}
    figure, axes = plt.subplots(1, 2, figsize=(11.0, 4.4), squeeze=False)
    panels = (("epochs", "epochs trained (filled: reached --stop-at-loss)"), ("best_validation_loss",
                                                                                  "best validation loss"))
    for axis, (key, label) in zip(axes[0], panels, strict=True):
        for index, sweep in enumerate(sweeps):
            colour = f"C{index}"
            offset = 0.0 if numeric else (index - (len(sweeps) - 1) / 2) * 0.12
            medians = []
            for value in values:
                rows = [row for row in sweep.rows if row["value"] == value and row[key] is not None]
                if not rows:
                    continue
                x = position[value] + offset
                for row in rows:
                    axis.scatter([x], [row[key]], s=28, edgecolors=colour,
                                 facecolors=colour if row["reached"] or key != "epochs" else "none", zorder=3)
                medians.append((x, statistics.median(row[key] for row in rows)))
            axis.plot([m[0] for m in medians], [m[1] for m in medians], "-", color=colour, alpha=0.7,
                      label=f"{sweep.name} ({len(sweep.rows)} runs)")
        axis.set_yscale("log")
        axis.set_ylabel(label)
        axis.set_xlabel(option)
        if numeric:
            if min(values) > 0 and max(values) / min(values) >= 20:
                axis.set_xscale("log")
        else:
            axis.set_xticks(range(len(values)), [str(v) for v in values])
            axis.set_xlim(-0.5, len(values) - 0.5)
        axis.grid(True, which="both", alpha=0.3)
    axes[0][0].legend(fontsize=8)
    unfinished = sum(sweep.unfinished for sweep in sweeps)
    title = ", ".join(sweep.name for sweep in sweeps) + (f" ({unfinished} points unfinished)" if unfinished else "")
    figure.suptitle(_title(title))
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


# ---- the paper's hyperparameter studies ----


@dataclass
class StudySweep:
    """A sweep folder recognised as one of the paper's studies: its finished points as `qrnn.studies.Run`s
    and, with `--original`, the original's runs of the same study (None: not asked for, or no table). For the
    training-curves studies also every run's curves (`qrnn.study_curves.SeedCurves`), the finished runs without
    TensorBoard logs, and with `--original` the original's curves on our steps (keys of `CURVE_TAGS`) and, where
    it publishes the chart of the pool behind its run, that pool's validation curves on our steps and our seeds'
    agreement with it (`qrnn.study_curves.PoolAgreement`)."""

    folder: Path
    sweep: SweepResult
    study: Any
    ours: list[Any]
    original: list[Any] | None = None
    curves: list[Any] = field(default_factory=list)
    runs_without_logs: int = 0
    original_curves: dict[str, Any] | None = None
    original_pool: list[Any] | None = None
    pool: Any = None


def _point_log_dir(row: dict[str, Any]) -> Path | None:
    """The TensorBoard log directory of a finished sweep point: the one its done.json names, looked up by name
    under the point's `runs/` (the sweep folder may have moved since); else the point's only run directory with
    event files, or the one written last (a point retried after a crash may hold an abandoned one)."""
    runs = Path(row["point_dir"]) / "runs"
    named = row.get("log_dir")
    if isinstance(named, str) and named:
        candidate = runs / Path(named).name
        if any(candidate.glob("events.out.tfevents.*")):
            return candidate
    found = [path for path in runs.glob("*") if path.is_dir() and any(path.glob("events.out.tfevents.*"))]
    if not found:
        return None

    def written(path: Path) -> float:
        return max(event.stat().st_mtime for event in path.glob("events.out.tfevents.*"))

    return max(found, key=written)


def _seed_curves(entry: StudySweep) -> None:
    """Read every finished run's curves of a training-curves sweep into `entry` (one-line error when none has
    logs)."""
    from qrnn.study_curves import CURVE_TAGS, Curve, SeedCurves

    for row in entry.sweep.rows:
        log_dir = _point_log_dir(row)
        if log_dir is None:
            entry.runs_without_logs += 1
            continue
        series = read_scalars(log_dir)
        entry.curves.append(SeedCurves(row.get("seed"), {
            key: Curve(*series.get(tag, ([], []))) for key, tag in CURVE_TAGS.items()}))
    if not entry.curves:
        raise QRNNError(
            f"the sweep in {entry.folder} is the {entry.study.name} study, but none of its finished points has "
            "TensorBoard logs (<point>/runs/<run name>/events.out.tfevents.*)"
        )


# The notebook's colours for the DNA figure: QRNN red, RNN green, LSTM blue.
_MODEL_COLOURS = {"qrnn": "tab:red", "rnn": "tab:green", "lstm": "tab:blue"}
_OURS_STYLE = {"marker": "o", "linestyle": "-"}
_ORIGINAL_STYLE = {"marker": "x", "linestyle": "--"}


def recognise_sweeps(folders: list[Path]) -> list[StudySweep] | None:
    """The sweeps as the paper's studies (see `qrnn.studies`), or None when any of them is none."""
    from qrnn.studies import EPOCHS_TO_REACH, identify, sweep_runs

    entries: list[StudySweep] = []
    for folder in folders:
        sweep = read_sweep(folder)
        study = identify([row["options"] for row in sweep.rows], sweep.varied)
        if study is None:
            return None
        if study.metric != EPOCHS_TO_REACH:
            # A diverged run has no loss to compare, and the original logged nothing for its own (Elman XOR at
            # bias 0): only the studies of steps to a loss count it, as a run that never got there.
            kept = [row for row in sweep.rows if not row["diverged"]]
            if not kept:
                raise QRNNError(f"the sweep in {folder} has no finished points yet (every point failed)")
            sweep = dataclasses.replace(sweep, rows=kept, unfinished=sweep.unfinished + len(sweep.rows) - len(kept))
        same = next((e for e in entries if e.study.name == study.name), None)
        if same is None:
            entries.append(StudySweep(folder, sweep, study, sweep_runs(study, sweep.rows)))
            continue
        # Several sweeps of one study (a grid grown in parts: more seeds at some lengths, or a pool's seeds run in
        # halves) count as one: their finished points together, a point that both hold (the same options) once.
        def point(row: dict[str, Any]) -> str:
            return json.dumps(row["options"], sort_keys=True, default=str)

        seen = {point(row) for row in same.sweep.rows}
        rows = same.sweep.rows + [row for row in sweep.rows if point(row) not in seen]
        same.sweep = dataclasses.replace(
            same.sweep, name=f"{same.sweep.name} + {sweep.name}", rows=rows,
            unfinished=same.sweep.unfinished + sweep.unfinished,
            varied=tuple(dict.fromkeys(same.sweep.varied + sweep.varied)),
        )
        same.ours = sweep_runs(study, rows)
    # Only once every sweep is known to be a study: a seed-only sweep of no study must not cost a log read.
    for entry in entries:
        if entry.study.figure == "curves":
            _seed_curves(entry)
    return entries


def _sides(entry: StudySweep) -> list[tuple[str, list[Any], dict[str, str]]]:
    sides = [("qrnn", entry.ours, _OURS_STYLE)]
    if entry.original is not None:
        sides.append(("original", entry.original, _ORIGINAL_STYLE))
    return sides


def _distinct(values: list[Any]) -> list[Any]:
    """The values once each (matched as `qrnn.studies.same_value`; None dropped), sorted (names in their first
    order)."""
    from qrnn.studies import same_value

    found: list[Any] = []
    for value in values:
        if value is None:  # an option a point does not record: no place on an axis
            continue
        if not any(same_value(value, seen) for seen in found):
            found.append(value)
    return found if any(isinstance(value, str) for value in found) else sorted(found)


def _quantile(values: list[float], fraction: float) -> float:
    """The nearest-rank quantile (defined with infinite values, which an interpolating quantile is not)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def _draw_optimizer(plt: Any, entry: StudySweep) -> Any:
    """Best validation loss against the learning rate, log-log, one colour per optimizer: each run a marker and
    the median over the runs of a rate a line (the paper's figure pools the original's repeats A, B, C)."""
    from qrnn.studies import group, median, same_value

    figure, axis = plt.subplots(figsize=(7.2, 5.0))
    known = ("sgd", "rmsprop", "adam", "lbfgs")  # the paper's order, so each keeps its colour in every figure
    optimizers = sorted(_distinct([run.cell[0] for _, runs, _ in _sides(entry) for run in runs]),
                        key=lambda name: (known.index(name) if name in known else len(known), name))
    for index, optimizer in enumerate(optimizers):
        colour = f"C{index}"
        for side, runs, style in _sides(entry):
            chosen = [r for r in runs if same_value(r.cell[0], optimizer) and r.best_validation_loss is not None]
            if not chosen:
                continue
            # A loss can reach 0: clip so the log axis can show it.
            axis.scatter([r.cell[1] for r in chosen], [max(r.best_validation_loss, 1e-8) for r in chosen],
                         marker=style["marker"], color=colour, s=20, alpha=0.55, zorder=3)
            medians = sorted((cell[1], median([max(r.best_validation_loss, 1e-8) for r in cell_runs]))
                             for cell, cell_runs in group(chosen))
            axis.plot([m[0] for m in medians], [m[1] for m in medians], style["linestyle"], color=colour,
                      label=f"{optimizer} ({side}, {len(chosen)} runs)")
    axis.set_xscale("log")
    axis.set_yscale("log")
    axis.set_xlabel("learning rate")
    axis.set_ylabel("best validation loss")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=8)
    return figure


def _draw_boxes(plt: Any, entry: StudySweep) -> Any:
    """The paper's initialisation figure: box plots of the epochs trained against each option's value, over
    every run with that value (top row), and over the runs at bias pi/2 only (bottom row); qrnn's boxes left
    of the original's."""
    from qrnn.studies import same_value

    keys = entry.study.keys
    figure, axes = plt.subplots(2, len(keys), figsize=(3.6 * len(keys), 7.0), squeeze=False)
    rows = (("all runs", lambda run: True), ("bias 1.5708 only", lambda run: same_value(run.cell[0], 1.5708)))
    sides = _sides(entry)
    for row, (label, keep) in enumerate(rows):
        for column, key in enumerate(keys):
            axis = axes[row][column]
            values = _distinct([run.cell[column] for _, runs, _ in sides for run in runs if keep(run)])
            for offset_index, (side, runs, _) in enumerate(sides):
                offset = (offset_index - (len(sides) - 1) / 2) * 0.38
                data, positions = [], []
                for position, value in enumerate(values):
                    epochs = [run.epochs for run in runs if keep(run) and same_value(run.cell[column], value)]
                    if epochs:
                        data.append(epochs)
                        positions.append(position + offset)
                if not data:
                    continue
                colour = "C0" if side == "qrnn" else "C1"
                parts = axis.boxplot(data, positions=positions, widths=0.34, patch_artist=True,
                                     flierprops={"markersize": 3, "markeredgecolor": colour})
                for box in parts["boxes"]:
                    box.set(facecolor=colour, alpha=0.45)
                axis.plot([], [], "s", color=colour, alpha=0.6, label=side)
            axis.set_xticks(range(len(values)), [f"{value:.2f}" for value in values])
            axis.set_xlim(-0.6, len(values) - 0.4)
            axis.set_xlabel(key.replace("initial_", ""))
            axis.grid(True, axis="y", alpha=0.3)
            if column == 0:
                axis.set_ylabel(f"epochs trained ({label})")
    axes[0][0].legend(fontsize=8)
    return figure


def _draw_marginals(plt: Any, entry: StudySweep, on_epochs: bool) -> Any:
    """A panel per grid option: the epochs trained (Elman letters, as the paper draws it) or the best
    validation loss (simple-seq topology) of every run against that option's value, the median over the runs
    with that value a line and their quartiles a band."""
    keys = entry.study.keys
    figure, axes = plt.subplots(1, len(keys), figsize=(3.8 * len(keys), 4.0), squeeze=False, sharey=True)
    for column, key in enumerate(keys):
        axis = axes[0][column]
        for index, (side, runs, style) in enumerate(_sides(entry)):
            colour = f"C{index}"
            points = [(run.cell[column], run.epochs if on_epochs else run.best_validation_loss) for run in runs]
            points = [(x, max(y, 1e-8)) for x, y in points if y is not None and x is not None]
            if not points:
                continue
            xs = sorted({x for x, _ in points})
            per_value = [[y for x, y in points if x == value] for value in xs]
            jitter = (index - 0.5) * 0.08
            axis.scatter([x + jitter for x, _ in points], [y for _, y in points], s=8, color=colour, alpha=0.3,
                         marker=style["marker"])
            axis.plot(xs, [statistics.median(ys) for ys in per_value], style["linestyle"], color=colour,
                      label=f"{side} ({len(points)} runs)")
            axis.fill_between(xs, [_quantile(ys, 0.25) for ys in per_value],
                              [_quantile(ys, 0.75) for ys in per_value], color=colour, alpha=0.15)
        axis.set_xlabel(key)
        axis.grid(True, alpha=0.3)
        from matplotlib import ticker

        axis.xaxis.set_major_locator(ticker.MaxNLocator(integer=True))  # the topology options are counts
        if not on_epochs:
            axis.set_yscale("log")
    axes[0][0].set_ylabel("epochs trained" if on_epochs else "best validation loss")
    axes[0][0].legend(fontsize=8)
    return figure


def _draw_lengths(plt: Any, entries: list[StudySweep]) -> Any:
    """The paper's DNA figure: epochs to reach the loss against the sequence length (log), a colour per model
    (several sweeps together); every run a marker (hollow: did not reach the loss, at the epochs it trained),
    the median line (runs that never reached count as not reached: no line where more than half did not) and
    the band between the quartiles. The original's tables in a panel beside, on the same axes. (The paper's
    figure shows the mean over the runs that reached the loss only.)"""
    from qrnn.studies import median

    with_original = any(entry.original is not None for entry in entries)
    figure, axes = plt.subplots(1, 1 + with_original, figsize=(6.4 * (1 + with_original), 4.6), squeeze=False,
                                sharey=True, sharex=True)
    models = [entry.study.model for entry in entries]
    for index, entry in enumerate(entries):
        model = entry.study.model
        colour = _MODEL_COLOURS[model] if models.count(model) == 1 else f"C{index}"
        for panel, (side, runs, style) in enumerate(_sides(entry)):
            axis = axes[0][panel]
            lengths = sorted({run.cell[0] for run in runs})
            if not runs:
                continue
            for reached in (True, False):
                chosen = [run for run in runs if run.reached == reached]
                # The original's crosses cannot be hollow: its unreached runs are circles.
                marker = style["marker"] if reached else "o"
                paint = {"color": colour} if marker == "x" else {
                    "facecolors": colour if reached else "none", "edgecolors": colour}
                axis.scatter([r.cell[0] for r in chosen], [max(r.epochs, 1) for r in chosen], s=14, alpha=0.5,
                             marker=marker, **paint)
            values = [[run.epochs if run.reached else math.inf for run in runs if run.cell[0] == length]
                      for length in lengths]
            top = max(run.epochs for run in runs)
            # The median of the agreement tables (the mean of the middle two for an even count).
            medians = [(length, median(v)) for length, v in zip(lengths, values, strict=True)]
            finite = [(x, y) for x, y in medians if y is not None and math.isfinite(y)]
            # The sweeps are named in the title; a legend of (merged) sweeps' names would cover the axes.
            count = f"{len(runs)} runs"
            label = f"{model}, {count}" if side == "qrnn" else f"{entry.study.table} ({model}, {count})"
            axis.plot([x for x, _ in finite], [y for _, y in finite], style["linestyle"], color=colour, label=label)
            band = [(length, _quantile(v, 0.25), min(_quantile(v, 0.75), top))
                    for length, v in zip(lengths, values, strict=True) if math.isfinite(_quantile(v, 0.25))]
            if band:
                axis.fill_between([b[0] for b in band], [b[1] for b in band], [b[2] for b in band], color=colour,
                                  alpha=0.15)
    for panel, axis in enumerate(axes[0]):
        axis.set_xscale("log")
        axis.set_yscale("log")
        axis.set_xlabel("sequence length")
        axis.set_title("qrnn sweeps" if panel == 0 else "the original's tables", fontsize=10)
        axis.grid(True, which="both", alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=8)
    axes[0][0].set_ylabel("epochs to reach the loss (hollow: did not)")
    return figure


# Below this a postselection probability counts as this (a log axis cannot show 0, and 1/sqrt(0) is infinite).
_SMALLEST_PROBABILITY = 1e-12


def _draw_curves(plt: Any, entry: StudySweep) -> Any:
    """The paper's training-curves figure: the validation loss and the postselection overhead 1/sqrt(p) of the
    training batch's minimum postselection probability p (as the original's notebook draws it: the factor by
    which amplitude amplification repeats a step) against the training steps, log y; every seed a thin line, the
    median over the seeds a bold one, the original's run dashed, on our steps (its step + 1)."""
    from qrnn.study_curves import POSTSELECTION, VALIDATION, Curve, median_curve

    def overhead(curve: Curve) -> Curve:
        return Curve(curve.steps, [1 / math.sqrt(max(p, _SMALLEST_PROBABILITY)) for p in curve.values])

    def loss(curve: Curve) -> Curve:
        # A loss can reach 0 (or just below, in float32): clip so the log axis can show it.
        return Curve(curve.steps, [max(value, 1e-8) for value in curve.values])

    panels = ((VALIDATION, "validation loss", loss), (POSTSELECTION, "postselection overhead 1/sqrt(p_min)",
                                                      overhead))
    pool = entry.pool
    figure, axes = plt.subplots(1, 2 if pool is None else 3, figsize=(12.0 if pool is None else 17.0, 4.6),
                                squeeze=False)
    for axis, (key, label, transform) in zip(axes[0], panels, strict=False):
        if key == VALIDATION and entry.original_pool:
            for index, curve in enumerate(entry.original_pool):
                curve = transform(curve)
                axis.plot(curve.steps, curve.values, "-", color="C3", linewidth=0.5, alpha=0.18,
                          label=f"the original's pool, each of {len(entry.original_pool)} runs" if index == 0
                          else None)
        ours = [transform(seed.curves[key]) for seed in entry.curves if seed.curves[key].steps]
        for index, curve in enumerate(ours):
            axis.plot(curve.steps, curve.values, "-", color="C0", linewidth=0.6, alpha=0.35,
                      label=f"qrnn, each of {len(ours)} seeds" if index == 0 else None)
        if ours:
            middle = median_curve(ours)
            axis.plot(middle.steps, middle.values, "-", color="C0", linewidth=2.2, label="qrnn, median over seeds")
        if entry.original_curves is not None:
            original = transform(entry.original_curves[key])
            axis.plot(original.steps, original.values, "--", color="C3", linewidth=1.6,
                      label="the original's run (its step + 1)")
        if key == VALIDATION:
            from qrnn.study_curves import THRESHOLDS

            for threshold in THRESHOLDS:  # the losses whose first crossing the agreement compares
                axis.axhline(threshold, color="0.5", linestyle=":", linewidth=0.8)
        axis.set_yscale("log")
        axis.set_xlabel("training steps")
        axis.set_ylabel(label)
        axis.grid(True, which="both", alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(fontsize=8)
        else:
            axis.text(0.5, 0.5, "not logged", ha="center", va="center", transform=axis.transAxes, color="0.5")
    if pool is not None:
        _draw_pool(axes[0][2], pool)
    return figure


def _draw_pool(axis: Any, pool: Any) -> None:
    """Both pools' lowest validation loss by the horizon, each side's runs ranked (x: the fraction of the pool
    at or below the value), log y, with the thresholds the pools are counted by."""
    from qrnn.study_curves import POOL_THRESHOLDS

    for values, label, colour, marker in ((pool.lowest.ours, "qrnn, each seed", "C0", "o"),
                                          (pool.lowest.original, "the original's pool, each run", "C3", "x")):
        ranked = sorted(max(value, 1e-8) for value in values)
        axis.plot([(index + 1) / len(ranked) for index in range(len(ranked))], ranked, marker=marker,
                  linestyle="-", color=colour, label=f"{label} ({len(ranked)})")
    for threshold in POOL_THRESHOLDS:
        axis.axhline(threshold, color="0.5", linestyle=":", linewidth=0.8)
    axis.set_yscale("log")
    axis.set_xlabel("fraction of the pool's runs")
    axis.set_ylabel(f"lowest validation loss by step {pool.horizon}")
    p_value = "n/a" if pool.p_value is None else f"{pool.p_value:.2g}"
    axis.set_title(f"pools, ranked (Mann-Whitney p = {p_value})", fontsize=9)
    axis.grid(True, which="both", alpha=0.3)
    axis.legend(fontsize=8)


def _draw_agreement(plt: Any, results: list[Any]) -> Any:
    """Per study, each cell on both sides as a point (the original's median, our median) with our seeds'
    range as a bar, and the diagonal: points on it agree."""
    from qrnn.studies import BEST_LOSS

    figure, axes = plt.subplots(1, len(results), figsize=(5.0 * len(results), 4.8), squeeze=False)
    for axis, result in zip(axes[0], results, strict=True):
        cells = [c for c in result.matched if math.isfinite(c.ours_median) and math.isfinite(c.original_median)]
        floor = 1e-8
        xs = [max(c.original_median, floor) for c in cells]
        ys = [max(c.ours_median, floor) for c in cells]
        low = [y - max(c.low, floor) if math.isfinite(c.low) else 0 for c, y in zip(cells, ys, strict=True)]
        high = [max(c.high, floor) - y if math.isfinite(c.high) else 0 for c, y in zip(cells, ys, strict=True)]
        colours = ["C2" if c.within else ("C3" if c.within is False else "C7") for c in cells]
        axis.errorbar(xs, ys, yerr=[low, high], fmt="none", ecolor="0.7", elinewidth=0.8, zorder=1)
        axis.scatter(xs, ys, c=colours, s=16, zorder=2)
        if xs:
            span = [min(xs + ys), max(xs + ys)]
            axis.plot(span, span, "k--", linewidth=0.8)
        axis.set_xscale("log")
        axis.set_yscale("log")
        what = "best validation loss" if result.metric == BEST_LOSS else "epochs to reach the loss"
        axis.set_xlabel(f"original: median {what}")
        axis.set_ylabel(f"qrnn: median {what} (bar: seeds' range)")
        fraction = "n/a" if result.within_fraction is None else f"{result.within_fraction:.0%}"
        rho = "n/a" if result.spearman is None else f"{result.spearman:.2f}"
        skipped = len(result.matched) - len(cells)
        axis.set_title(_title(f"{result.study.name}: {len(result.matched)} cells, within {fraction} (green), "
                              f"Spearman {rho}" + (f"; {skipped} not reached, not shown" if skipped else ""), 60),
                       fontsize=9)
        axis.grid(True, which="both", alpha=0.3)
    return figure


def _save(plt: Any, figure: Any, title: str, path: Path) -> Path:
    figure.suptitle(_title(title, 100), fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def plot_studies(entries: list[StudySweep], out: Path) -> list[Path]:
    """Each study's figure (`<study>.png`; the DNA sweeps of every model together in `dna-lengths.png`)."""
    plt = _pyplot()
    written = []
    for figure_file in dict.fromkeys(entry.study.figure_file for entry in entries):
        chosen = [entry for entry in entries if entry.study.figure_file == figure_file]
        kind = chosen[0].study.figure
        if kind == "lengths":
            figure = _draw_lengths(plt, chosen)
        elif kind == "optimizer":
            figure = _draw_optimizer(plt, chosen[0])
        elif kind == "boxes":
            figure = _draw_boxes(plt, chosen[0])
        elif kind == "curves":
            figure = _draw_curves(plt, chosen[0])
        else:
            figure = _draw_marginals(plt, chosen[0], on_epochs=kind == "marginals-epochs")
        unfinished = sum(entry.sweep.unfinished for entry in chosen)
        name = "DNA lengths" if kind == "lengths" else chosen[0].study.title  # the models share the figure
        title = f"{name}: " + ", ".join(entry.sweep.name for entry in chosen) + (
            f" ({unfinished} points unfinished)" if unfinished else "")
        if kind == "curves":
            title += f", {len(chosen[0].curves)} seeds"
        if any(entry.original is not None or entry.original_curves is not None for entry in chosen):
            title += "; beside the original's published " + ("run" if kind == "curves" else "runs")
            if kind == "curves" and chosen[0].pool is not None:
                title += " and its pool's training-log chart"
        elif kind == "curves" and chosen[0].pool is not None:
            title += "; beside the original's pool (its training-log chart)"
        written.append(_save(plt, figure, title, out / f"{figure_file}.png"))
    return written


def study_plots(folders: list[Path], out: Path, original: str | os.PathLike[str] | None) -> tuple[
        list[Path], list[Any], list[str]] | None:
    """For sweeps of the paper's studies: their figures and, with `original` (a checkout of RVQE), the
    agreement with the original's tables (agreement.png/.csv/.json in `out`). Returns the files written, the
    `qrnn.studies.Agreement`s and notes on studies without a table; None when a sweep is none of the studies."""
    from qrnn.original.hparam_tables import CURVES as ORIGINAL_CURVES
    from qrnn.original.hparam_tables import hparam_folder, read_original_curve, read_original_table
    from qrnn.original.training_logs import POOL_CHARTS, read_pool_chart
    from qrnn.studies import CURVES, agreement, agreement_csv, agreement_json, original_runs
    from qrnn.study_curves import CURVE_TAGS, curves_agreement, original_aligned, pool_agreement

    if original is not None:
        hparam_folder(original)  # a wrong path fails before anything is drawn
    entries = recognise_sweeps(folders)
    if entries is None:
        return None
    results, notes = [], []
    for entry in entries:
        if original is None:
            continue
        if entry.study.table is None:
            notes.append(f"{entry.study.name} ({entry.sweep.name}): the original published no table of this study")
            continue
        if entry.study.metric == CURVES:
            if entry.study.table in ORIGINAL_CURVES:
                entry.original_curves = {
                    key: original_aligned(*read_original_curve(original, entry.study.table, key)) for key in CURVE_TAGS}
            chart = read_pool_chart(original, entry.study.table)
            if chart is not None:
                entry.original_pool = [original_aligned([round(float(step)) for step in run.steps],
                                                        [float(value) for value in run.values])
                                       for run in chart.runs]
                entry.pool = pool_agreement(entry.curves, entry.original_pool, POOL_CHARTS[entry.study.table])
            if entry.original_curves is None and entry.pool is None:
                notes.append(f"{entry.study.name} ({entry.sweep.name}): the original published no run of this study, "
                             f"and the checkout holds no chart of its pool ({POOL_CHARTS.get(entry.study.table)})")
                continue
            results.append(curves_agreement(entry.study, entry.sweep.name, entry.curves, entry.original_curves or {},
                                            entry.runs_without_logs, entry.pool))
            continue
        entry.original = original_runs(entry.study, read_original_table(original, entry.study.table))
        results.append(agreement(entry.study, entry.sweep.name, entry.ours, entry.original))
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise QRNNError(f"cannot create --out {out}: {error.strerror}") from None
    written = plot_studies(entries, out)
    # The curves studies' figure already draws the original's run over ours: agreement.png is for grid cells.
    cells = [result for result in results if result.metric != CURVES]
    if cells:
        plt = _pyplot()
        written.append(_save(plt, _draw_agreement(plt, cells), "qrnn against the original, cell by cell",
                             out / "agreement.png"))
    if results:
        for name, text in (("agreement.csv", agreement_csv(results)), ("agreement.json", agreement_json(results))):
            (out / name).write_text(text)
            written.append(out / name)
    return written, results, notes


def command_plot(args: argparse.Namespace) -> int:
    """`plot RUN_OR_CHECKPOINT` or `plot SWEEP [SWEEP ...]`: write the figures and print their paths (and, for
    the paper's studies with `--original`, the agreement tables)."""
    targets = [Path(target) for target in args.target]
    sweeps = [is_sweep_folder(target) for target in targets]
    if all(sweeps):
        from qrnn.studies import agreement_json, format_table

        _pyplot()
        out = Path(args.out) if args.out is not None else targets[0].parent / "plots"
        found = study_plots(targets, out, args.original)
        if found is None:
            if args.original is not None:
                raise QRNNError(
                    "--original compares sweeps of the paper's studies (optimizer, topology, Elman XOR "
                    "initialisation, Elman letter topology, DNA lengths, training curves of simple-seq, "
                    "mnist01, mnist36 or mnist36-ds over seeds only); "
                    + ", ".join(map(str, targets)) + " is not one of them"
                )
            print(plot_sweeps(targets, out / "sweep.png"))
            return 0
        written, results, notes = found
        if args.json:
            print(agreement_json(results, [str(path) for path in written]))
            return 0
        for result in results:
            print(format_table(result) + "\n")
        for note in notes:
            print(note)
        for path in written:
            print(path)
        return 0
    if args.original is not None or args.json:
        raise QRNNError("--original and --json are for sweep folders (<root>/<preset>), not runs or checkpoints")
    if len(targets) > 1:
        raise QRNNError(
            "several targets must all be sweep folders (<root>/<preset>); give one run directory or checkpoint "
            "at a time"
        )
    for path in make_plots(args.target[0], args.out, samples=args.samples, seed=args.seed):
        print(path)
    return 0


def register(subparsers: Any) -> None:
    """Add `plot` to a command line's subcommands."""
    from qrnn.training.commands import HELP_FORMATTER

    parser = subparsers.add_parser(
        "plot",
        help="plot a run's training curves and its model's test predictions (PNG)",
        description="Write PNG figures of a run: loss, character error rate and minimum postselection "
        "probability over the epochs (from its TensorBoard logs); for MNIST datasets the model's labels "
        "for "
        "test images (pixel datasets), for test codes (PCA/UMAP) or generated digits (mnist01-gen). Give "
        "a run directory (<out>/runs/<run name>) or a checkpoint; or sweep folders of `qrnn sweep` "
        "(<root>/<preset>) for sweep.png, the epochs and best validation loss of every point against the "
        "swept option, or for sweeps of the paper's hyperparameter studies that study's figure (with --original, "
        "beside the original's published table, and their agreement; a sweep over seeds only of simple-seq or "
        "mnist01 gives the training curves of the paper's figure). Prints the paths written.",
        formatter_class=HELP_FORMATTER,
    )
    parser.add_argument(
        "target",
        metavar="RUN_OR_CHECKPOINT",
        nargs="+",
        help="a run's log directory or a checkpoint file; or one or more sweep folders (<root>/<preset>) for "
        "sweep.png or their study's figure",
    )
    parser.add_argument(
        "--out",
        metavar="DIR",
        default=None,
        help="folder for the PNGs (None: <out>/plots/<run name>, or plots-<name> beside a lone checkpoint)",
    )
    parser.add_argument(
        "--original",
        metavar="PATH",
        default=None,
        help="for sweeps of the paper's studies: a checkout of the original RVQE repository; its published table "
        "of the study (results/hparam_logs/*.csv) is drawn beside the sweep and compared cell by cell "
        "(agreement.csv, agreement.json, agreement.png); for the training curves its run's curves "
        "(val-loss-*.csv, postsel-*.csv), compared step by step, and for MNIST 0 vs 1 and 3 vs 6 the chart of "
        "the paper's pool (results/training-logs/mnist01|mnist36/loss_validate.svg), compared as a pool",
    )
    parser.add_argument(
        "--json", action="store_true", help="with --original: print the agreement as JSON instead of tables"
    )
    parser.add_argument(
        "--samples", type=int, default=36, metavar="N", help="test sequences to show (spread over the digits)"
    )
    parser.add_argument(
        "--seed",
        type=int,
        default=None,
        metavar="SEED",
        help="seed of the test data and of the sampling (None: the run's seed)",
    )
    parser.set_defaults(func=command_plot)
