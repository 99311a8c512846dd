"""`qrnn plot`: figures of tiny training runs, from the run directory and from the checkpoint."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
from helpers import one_line_error

import qrnn
from qrnn.cli import main as cli_main
from qrnn.datasets import lookup
from qrnn.errors import QRNNError
from qrnn.plot import generate_digits, make_plots, read_scalars

pytest.importorskip("matplotlib")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def tiny_run(tmp_path: Path, dataset: str, **options: object) -> qrnn.training.TrainResult:
    """Three epochs of a one-workspace-qubit QRNN, validating every epoch."""
    settings = dict(
        dataset=dataset,
        epochs=3,
        workspace=1,
        stages=1,
        batch_size=1,
        validate_every=1,
        out=str(tmp_path),
        seed=5,
    )
    settings.update(options)
    return qrnn.train(**settings)


def assert_png(path: Path) -> None:
    assert path.is_file() and path.stat().st_size > 5000, path
    assert path.read_bytes()[:8] == PNG_SIGNATURE


def test_mnist_run_gives_curves_and_test_images(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = tiny_run(tmp_path, "mnist01")
    series = read_scalars(Path(result.log_dir))
    assert series["loss/train"][0] == [1, 2, 3]
    assert len(series["loss/validate"][1]) == 3

    written = make_plots(result.log_dir, tmp_path / "from-run", samples=4)
    assert [path.name for path in written] == ["curves.png", "test-predictions.png"]
    for path in written:
        assert_png(path)

    # From the checkpoint: the same figures, the log directory found through the checkpoint.
    capsys.readouterr()  # drop the training's output
    assert cli_main(["plot", str(result.best_checkpoint), "--out", str(tmp_path / "from-checkpoint")]) == 0
    printed = capsys.readouterr().out.split()
    assert printed == [
        str(tmp_path / "from-checkpoint" / name) for name in ("curves.png", "test-predictions.png")
    ]
    for path in printed:
        assert_png(Path(path))


def test_default_output_folder_and_non_mnist_runs(tmp_path: Path) -> None:
    result = tiny_run(tmp_path, "dna", sentence_length=6)
    written = make_plots(result.log_dir)
    assert written == [tmp_path / "plots" / Path(result.log_dir).name / "curves.png"]
    assert_png(written[0])


def test_code_datasets_plot_the_decision_map(tmp_path: Path) -> None:
    result = tiny_run(tmp_path, "mnist-umap-d2-r2")
    written = make_plots(result.final_checkpoint, tmp_path / "plots", samples=20)
    assert [path.name for path in written] == ["curves.png", "test-predictions.png"]
    for path in written:
        assert_png(path)


def test_generated_digits_follow_the_model(tmp_path: Path) -> None:
    result = tiny_run(tmp_path, "mnist01-gen")
    written = make_plots(result.final_checkpoint, tmp_path / "plots")
    assert [path.name for path in written] == ["curves.png", "generated-digits.png"]
    assert_png(written[1])

    # Generation draws each word from the model: output neurons with eta = pi/2 (theta = pi - bias, no
    # weights) write a 1 with certainty, with eta = 0 a 0; lane 0 of every generated word (the image) follows.
    model, _ = qrnn.load_checkpoint(result.final_checkpoint)
    dataset = lookup("mnist01-gen").create(sentence_length=20, batch_size=1, shard=0, num_shards=1, seed=0)
    for theta, pixel in ((math.pi - model.cell.bias, 1), (-model.cell.bias, 0)):
        with torch.no_grad():
            for neuron in model.cell.output_stage:
                neuron.weights.zero_()
                neuron.theta.fill_(theta)
        images = generate_digits(model, dataset, per_label=3, seed=3)
        assert images.shape == (2, 3, 10, 10)
        expected = torch.full((2, 3, 10, 10), pixel)
        expected[:, :, 0, 0] = 1  # the label word's place, drawn as background
        assert torch.equal(images, expected)


def test_bad_targets_fail_in_one_line(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    cases = {
        str(tmp_path / "missing.tar"): "does not exist",
        str(empty): "no TensorBoard event files",
    }
    for target, message in cases.items():
        with pytest.raises(QRNNError, match=message) as caught:
            make_plots(target)
        assert "\n" not in str(caught.value)
    with pytest.raises(QRNNError, match="--samples must be an integer >= 1"):
        make_plots(str(empty), samples=0)


SWEEP = """
description = "tiny DNA length sweep"
seeds = [1, 2]

[train]
dataset = "dna"
batch_size = 2
workspace = 1
stages = 1
epochs = {epochs}
validate_every = 1
num_validation_samples = 0
stop_at_loss = {stop}

[sweep]
sentence_length = [4, 6]
"""


def test_sweep_figure_reads_every_finished_point(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from qrnn.plot import read_sweep
    from qrnn.presets import load_preset
    from qrnn.sweep import Sweep

    sweeps = []
    # One sweep stops at once (any loss is below 100), the other never reaches its threshold.
    for name, epochs, stop in (("reaches", 3, 100.0), ("misses", 2, 1e-9)):
        preset = tmp_path / f"{name}.toml"
        preset.write_text(SWEEP.format(epochs=epochs, stop=stop))
        Sweep(load_preset(preset), tmp_path / "root", printer=lambda _line: None).run()
        sweeps.append(tmp_path / "root" / name)
    capsys.readouterr()  # the training runs' output
    reaches, misses = (read_sweep(folder) for folder in sweeps)
    assert reaches.option == misses.option == "sentence_length"
    assert sorted((row["value"], row["seed"], row["epochs"], row["reached"]) for row in reaches.rows) == [
        (4, 1, 1, True), (4, 2, 1, True), (6, 1, 1, True), (6, 2, 1, True)]
    assert sorted((row["value"], row["seed"], row["epochs"], row["reached"]) for row in misses.rows) == [
        (4, 1, 2, False), (4, 2, 2, False), (6, 1, 2, False), (6, 2, 2, False)]
    assert all(math.isfinite(row["best_validation_loss"]) for row in reaches.rows + misses.rows)
    # DNA length sweeps are the paper's DNA study: its figure, not the generic one.
    assert cli_main(["plot", *map(str, sweeps), "--out", str(tmp_path / "figures")]) == 0
    assert capsys.readouterr().out.split() == [str(tmp_path / "figures" / "dna-lengths.png")]
    assert_png(tmp_path / "figures" / "dna-lengths.png")
    line = one_line_error(capsys, ["plot", str(sweeps[0]), str(tmp_path / "missing.tar")])
    assert "several targets must all be sweep folders" in line


def test_sweep_over_two_options_shows_each_combination(tmp_path: Path) -> None:
    from qrnn.plot import plot_sweeps, read_sweep
    from qrnn.presets import load_preset
    from qrnn.sweep import Sweep

    preset = tmp_path / "pairs.toml"
    text = SWEEP.format(epochs=1, stop=1e-9).replace("seeds = [1, 2]", "seeds = [3]")
    preset.write_text(text + 'optimizer = ["adam", "lbfgs"]\n')
    Sweep(load_preset(preset), tmp_path / "root", printer=lambda _line: None).run()
    result = read_sweep(tmp_path / "root" / "pairs")
    assert result.option == "optimizer, sentence_length"
    assert sorted(row["value"] for row in result.rows) == ["adam, 4", "adam, 6", "lbfgs, 4", "lbfgs, 6"]
    assert_png(plot_sweeps([tmp_path / "root" / "pairs"], tmp_path / "sweep.png"))
