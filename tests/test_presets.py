"""Presets: every shipped preset parses and every point of its grid validates against its dataset; the paper's
values where the brief pins them; grid expansion; override order (preset < explicit flags, for `qrnn train`,
`./main.py` and the Python API); one-line errors naming the file and the key; `qrnn presets`."""

from __future__ import annotations

import math
import re
from pathlib import Path

import pytest

import qrnn
from qrnn.cli import main as cli_main
from qrnn.cli import main as qrnn_main
from qrnn.errors import QRNNError
from qrnn.presets import check_points, list_presets, load_preset, preset_names
from qrnn.training import read_checkpoint

EXPERIMENTS = {
    # Each adds what the scripts lack (its file says what): the Table 1 runs, and the DNA baselines trained as the QRNN.
    "mnist01", "mnist36", "mnist36-lbfgs", "dna-rnn", "dna-lstm",
    # One per experiment script of the original, and the settings behind its CSVs (tests/test_experiment_presets.py).
    "experiment-1-optimizer", "experiment-1-optimizer-csv", "experiment-1-topology",
    "experiment-2-elman-xor-initialization", "experiment-2-elman-xor-initialization-csv",
    "experiment-2-elman-letter-topology", "experiment-2-elman-letter-topology-csv", "experiment-2-elman-xor-optimizer",
    "experiment-3-memoize-quotes", "experiment-3-mnist-2digit", "experiment-3-mnist-full", "experiment-4-mnist-pca",
    "experiment-4-mnist-umap", "experiment-5-dna", "experiment-5-dna-csv", "long-sequence-comparisons-lstm",
    "long-sequence-comparisons-rnn", "long-sequence-comparisons-lstm-csv", "long-sequence-comparisons-rnn-csv",
}
# A preset small enough to train in a blink (2-bit words, 4 qubits).
TINY = """
description = "tiny elman-xor"
seeds = [4, 5]

[train]
dataset = "elman-xor"
sentence_length = 9
batch_size = 4
workspace = 4
stages = 1
learning_rate = 0.02
epochs = 2
validate_every = 2
num_validation_samples = 0

[sweep]
learning_rate = [0.01, 0.1]
"""


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize("name", sorted(EXPERIMENTS))
def test_every_shipped_preset_parses_and_its_points_validate(name: str) -> None:
    assert set(preset_names()) == EXPERIMENTS
    preset = load_preset(name)
    assert preset.name == name and preset.description and "\n" not in preset.description
    try:
        check_points(preset)
    except QRNNError as error:
        if "mnist" in name and "resource" in str(error):
            pytest.skip(f"{name}: MNIST resource not built here ({error})")
        raise
    grid = preset.grid()
    seeds = preset.seeds or [preset.train.get("seed", 82727)]
    assert len(grid) == len(seeds) * preset.repeats * math.prod(len(values) for values in preset.sweep.values())


def test_presets_hold_the_papers_values() -> None:
    dna = load_preset("experiment-5-dna")
    for name, width in (("dna-rnn", 22), ("dna-lstm", 10)):
        baseline = load_preset(name)
        assert baseline.train["model"] == name.split("-")[1] and baseline.train["workspace"] == width
        # Trained exactly as the QRNN of the script: same data, optimizer, batch, stop and epochs.
        shared = ("dataset", "optimizer", "learning_rate", "batch_size", "stop_at_loss", "epochs")
        assert {k: baseline.train[k] for k in shared} == {k: dna.train[k] for k in shared}
        assert baseline.sweep == {"sentence_length": [5, 10, 20, 50, 100, 200, 500, 1000]}
    for name in ("mnist01", "mnist36"):
        train = load_preset(name).train
        assert (train["dataset"], train["workspace"], train["stages"], train["order"], train["degree"],
                train["optimizer"], train["batch_size"]) == (name, 8, 2, 2, 2, "adam", 50)
    lbfgs = load_preset("mnist36-lbfgs")
    assert {k: lbfgs.train[k] for k in ("dataset", "optimizer", "learning_rate", "batch_size", "workspace")} == {
        "dataset": "mnist36", "optimizer": "lbfgs", "learning_rate": 0.02, "batch_size": 100, "workspace": 6}
    assert lbfgs.sweep == {"lbfgs_line_search": ["none", "strong_wolfe"], "learning_rate": [0.02, 1.0]}
    # Every preset that is not named after a script says what it adds to them.
    for name in EXPERIMENTS:
        if not name.startswith(("experiment-", "long-sequence-comparisons-")):
            assert "What it adds to the original's scripts" in load_preset(name).path.read_text(), name


def test_grid_expansion(tmp_path: Path) -> None:
    preset = load_preset(write(tmp_path / "tiny.toml", TINY))
    assert preset.name == "tiny"
    grid = preset.grid()
    # Seeds outer, swept values inner; ints written for floats become floats.
    assert [(p["seed"], p["learning_rate"]) for p in grid] == [(4, 0.01), (4, 0.1), (5, 0.01), (5, 0.1)]
    assert all(p["workspace"] == 4 and p["dataset"] == "elman-xor" for p in grid)
    assert preset.varying() == ["learning_rate", "seed"]
    assert preset.summary() == "4 points: learning_rate (2) x 2 seeds"
    # Without seeds and sweep: one point with the [train] seed.
    single = load_preset(write(tmp_path / "one.toml", 'description = "one"\n[train]\nseed = 9\nworkspace = 2\n'))
    assert single.grid() == [{"seed": 9, "workspace": 2}] and single.varying() == []
    integer = load_preset(write(tmp_path / "int.toml", 'description = "x"\n[train]\nlearning_rate = 1\n'))
    assert integer.train["learning_rate"] == 1.0 and isinstance(integer.train["learning_rate"], float)


def test_override_order_preset_then_flags(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    preset = write(tmp_path / "tiny.toml", TINY)
    out = tmp_path / "cli"
    # --workspace 3 is the default value, typed explicitly: it must still win over the preset's 4.
    code = qrnn_main(["train", "--preset", str(preset), "--workspace", "3", "--epochs", "3", "--out", str(out)])
    assert code == 0
    captured = capsys.readouterr()
    assert "defines a sweep (4 points" in captured.err
    config = read_checkpoint(next((out / "checkpoints").glob("*-final-*.tar")))["config"]
    assert (config["workspace"], config["epochs"]) == (3, 3)  # flags
    assert (config["dataset"], config["stages"], config["learning_rate"], config["batch_size"]) == (
        "elman-xor", 1, 0.02, 4)  # the preset
    assert (config["optimizer"], config["seed"]) == ("adam", 82727)  # defaults (sweep seeds are not used)
    # ./main.py: a global option before the subcommand overrides the preset too.
    out = tmp_path / "main"
    assert cli_main(["--epochs", "1", "train", "--preset", str(preset), "--out", str(out)], prog="main.py") == 0
    config = read_checkpoint(next((out / "checkpoints").glob("*-final-*.tar")))["config"]
    assert (config["epochs"], config["workspace"]) == (1, 4)
    # The Python API.
    result = qrnn.train(preset=str(preset), learning_rate=0.05, out=str(tmp_path / "api"))
    config = read_checkpoint(result.final_checkpoint)["config"]
    assert (config["learning_rate"], config["epochs"], config["workspace"]) == (0.05, 2, 4)


HEAD = 'description = "x"\n'
BAD_PRESETS = [
    (HEAD + 'foo = 1\n', "unknown key 'foo'"),
    (HEAD + '[train]\nlearning-rate = 0.1\n', "[train] unknown option 'learning-rate' (did you mean learning_rate?)"),
    (HEAD + '[train]\nworkspace = "five"\n', "[train] workspace: must be int, got 'five'"),
    (HEAD + '[train]\nlearning_rate = -1\n', "[train] learning_rate: --learning-rate must be a finite number > 0"),
    (HEAD + '[train]\noptimizer = "adamw"\n', "[train] optimizer: unknown optimizer 'adamw'"),
    (HEAD + '[train]\ndataset = "dnaa"\n', "[train] dataset: unknown dataset 'dnaa' (did you mean dna?)"),
    (HEAD + '[train]\nout = "/tmp"\n', "[train] out: not allowed in a preset"),
    (HEAD + '[sweep]\nworkspace = [2, 0]\n', "[sweep] workspace = 0: --workspace must be an integer >= 1"),
    (HEAD + '[sweep]\nworkspace = 3\n', "[sweep] workspace: must be a non-empty list"),
    (HEAD + '[sweep]\nseed = [1, 2]\n', "[sweep] seed: list the seeds as a top-level seeds"),
    (HEAD + 'seeds = [1, 1]\n', "seeds lists a seed twice"),
    (HEAD + 'seeds = [1.5]\n', "seeds: must be int, got 1.5"),
    ('[train]\nworkspace = 2\n', "description must be a one-line string"),
    (HEAD + '[train\n', "is not valid TOML"),
    (HEAD + '[train]\noptimizer = "lbfgs"\nweight_decay = 0.1\n', "[train] weight_decay: --optimizer lbfgs"),
]


@pytest.mark.parametrize(("text", "message"), BAD_PRESETS)
def test_bad_presets_name_file_and_key(tmp_path: Path, text: str, message: str) -> None:
    path = write(tmp_path / "bad.toml", text)
    with pytest.raises(QRNNError) as caught:
        load_preset(path)
    assert str(caught.value).startswith(f"preset {path}")
    assert message in str(caught.value) and "\n" not in str(caught.value)


def test_bad_preset_on_the_command_line_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = write(tmp_path / "bad.toml", 'description = "x"\n[train]\nstages = -1\n')
    assert qrnn_main(["train", "--preset", str(path), "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err == f"qrnn: error: preset {path}: [train] stages: --stages must be an integer in [0, 1000], got -1\n"
    assert not (tmp_path / "checkpoints").exists()  # nothing started
    assert qrnn_main(["train", "--preset", "dna-lsmt"]) == 2
    assert "unknown preset 'dna-lsmt' (did you mean dna-lstm?); valid: dna-lstm, dna-rnn" in capsys.readouterr().err
    assert qrnn_main(["train", "--preset", str(tmp_path / "missing.toml")]) == 2
    assert "preset file" in capsys.readouterr().err
    # A point that only its dataset rejects (simple-seq needs shards x batch = 2) is caught before a sweep starts.
    path = write(tmp_path / "point.toml", 'description = "x"\n[train]\ndataset = "simple-seq"\n'
                 '[sweep]\nbatch_size = [2, 3]\n')
    with pytest.raises(QRNNError, match=r"point batch_size=3: simple-seq needs shards x batch = 2"):
        check_points(load_preset(path))


def test_presets_command_lists_every_preset(capsys: pytest.CaptureFixture[str]) -> None:
    assert qrnn_main(["presets"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split()[0] for line in lines] == sorted(EXPERIMENTS)
    by_name = {line.split()[0]: line for line in lines}
    assert "24 points" in by_name["dna-rnn"] and load_preset("dna-rnn").description in by_name["dna-rnn"]
    assert len(list_presets()) == len(EXPERIMENTS)
    assert qrnn_main(["presets", "dna-lstm"]) == 0
    shown = capsys.readouterr().out
    assert "# sweep: 24 points: sentence_length (8) x 3 seeds" in shown and 'model = "lstm"' in shown


def test_a_file_on_a_base_preset_replaces_its_seeds_and_entries(tmp_path: Path) -> None:
    base = load_preset("experiment-1-optimizer-csv")
    path = write(tmp_path / "subset.toml", 'description = "two seeds"\nbase = "experiment-1-optimizer-csv"\n'
                 'seeds = [5, 6]\n[train]\nepochs = 7\n[sweep]\noptimizer = ["adam"]\n')
    preset = load_preset(path)
    assert preset.name == "subset" and preset.description == "two seeds" and preset.seeds == [5, 6]
    assert preset.train == {**base.train, "epochs": 7}
    assert preset.sweep == {**base.sweep, "optimizer": ["adam"]}
    assert len(preset.grid()) == 2 * len(base.sweep["learning_rate"])
    # Without seeds of its own the base's stand; a base's first_seed gives way to the file's seeds.
    same = load_preset(write(tmp_path / "same.toml", 'description = "x"\nbase = "experiment-1-optimizer-csv"\n'))
    assert same.grid() == base.grid()
    counted = load_preset(write(tmp_path / "counted.toml", 'description = "x"\nbase = "experiment-4-mnist-umap"\n'
                                'seeds = [1]\n'))
    assert counted.first_seed is None and counted.seeds == [1]
    for text, message in (
        ('base = "experiment-1-optimiser"', "base: 'experiment-1-optimiser' is not a shipped preset (did you mean "
                                            "experiment-1-optimizer?)"),
        ("base = 3", "base: 3 is not a shipped preset"),
        ('base = "dna-lstm"\ntrain = 1', "train must be a table"),
        ('base = "dna-lstm"\n[train]\nepochs = -1', "[train] epochs"),
    ):
        with pytest.raises(QRNNError, match=re.escape(message)):
            load_preset(write(tmp_path / "bad.toml", f'description = "x"\n{text}\n'))
