"""The presets named after the original's experiment scripts (CLEconomides/RVQE at 400a5eb) and the settings
behind its CSVs: each loads, expands to the script's number of runs, and holds the script's values; the
`first_seed`/`repeats` form of a preset (the scripts that count a seed up per run). Grids are expanded, nothing is
trained."""

from __future__ import annotations

from pathlib import Path

import pytest

from qrnn.baselines import parameter_count
from qrnn.errors import QRNNError
from qrnn.presets import PRESET_DIRECTORY, load_preset, preset_names
from qrnn.training.config import make_config
from qrnn.training.models import build_model

# The experiment scripts at 400a5eb; experiment-resume.sh resumes given checkpoints and has no preset.
SCRIPTS = [
    "experiment-1-optimizer", "experiment-1-topology", "experiment-2-elman-letter-topology",
    "experiment-2-elman-xor-initialization", "experiment-2-elman-xor-optimizer", "experiment-3-memoize-quotes",
    "experiment-3-mnist-2digit", "experiment-3-mnist-full", "experiment-4-mnist-pca", "experiment-4-mnist-umap",
    "experiment-5-dna",
]
# Runs per preset, counted from the scripts' loops (and, for the -csv ones, the older scripts' and CSVs' grids).
POINTS = {
    "experiment-1-optimizer": 380,  # 4 optimizers x 19 rates x 5 seeds
    "experiment-1-optimizer-csv": 57,  # 3 optimizers x 19 rates, default seed
    "experiment-1-topology": 225,  # order 3 x degree 3 x stages 5 x workspace 5, one seed
    "experiment-2-elman-xor-initialization": 1250,  # 5 x 5 x 5 spreads x 10 seeds
    "experiment-2-elman-xor-initialization-csv": 5000,  # 4 biases x 125 x 10 seeds
    "experiment-2-elman-letter-topology": 960,  # workspace 6 x stages 4 x degree 4 x 10 seeds
    "experiment-2-elman-letter-topology-csv": 960,
    "experiment-2-elman-xor-optimizer": 30,  # 3 optimizers x 10 seeds
    "experiment-3-memoize-quotes": 25,  # 25 seeds
    "experiment-3-mnist-2digit": 20,  # 5 repeats x 4 rates x 1 degree
    "experiment-3-mnist-full": 9,  # 9 seeds
    "experiment-4-mnist-pca": 6,  # 6 seeds
    "experiment-4-mnist-umap": 486,  # 3 repeats x 9 datasets x 3 rates x 3 workspaces x 2 degrees
    "experiment-5-dna": 30,  # length 1000 x 30 seeds
    "experiment-5-dna-csv": 210,  # 7 lengths x 30 seeds
    "long-sequence-comparisons-lstm": 240,  # 8 lengths x 30 seeds
    "long-sequence-comparisons-rnn": 40,  # 8 lengths x 5 seeds
    "long-sequence-comparisons-lstm-csv": 240,  # 8 lengths x 30 seeds
    "long-sequence-comparisons-rnn-csv": 240,  # 8 lengths x 30 seeds
}
ELMAN_SEEDS = [6936, 5081, 3774, 7427, 700, 1664, 7262, 499, 9736, 6654]
DNA_SEEDS = [29885, 27489, 31509, 25388, 27175, 32030, 31615, 30680, 34899, 25969, 32780, 30084, 33470, 26845,
             32630, 28785, 30883, 26159, 30762, 34317, 26305, 33016, 29421, 25127, 33282, 33391, 34143, 31087,
             30698, 27968]
NOTEBOOK_SEEDS = [9120, 2783, 2057, 6549, 3201, 7063, 5243, 3102, 5303, 5819, 3693, 4884, 2231, 5514, 8850, 6861,
                  3106, 2378, 8697, 1821, 9480, 8483, 1633, 9678, 6596, 4509, 8618, 9765, 6346, 2969]
RATES = [10.0, 5.0, 2.0, 1.0, 0.5, 0.2, 0.1, 0.05, 0.02, 0.01, 0.005, 0.002, 0.001, 0.0005, 0.0002, 0.0001, 5e-05,
         2e-05, 1e-05]


def pick(mapping: dict, *keys: str) -> dict:
    return {key: mapping[key] for key in keys}


def test_every_script_has_its_preset() -> None:
    assert set(SCRIPTS) | set(POINTS) <= set(preset_names())
    assert set(SCRIPTS) <= set(POINTS)


@pytest.mark.parametrize("name", sorted(POINTS))
def test_preset_loads_expands_to_the_scripts_runs_and_names_its_source(name: str) -> None:
    preset = load_preset(name)
    grid = preset.grid()
    assert len(grid) == POINTS[name]
    # Every point is a different run (no two points share all their options).
    assert len({tuple(sorted(point.items())) for point in grid}) == len(grid)
    text = (PRESET_DIRECTORY / f"{name}.toml").read_text()
    first = text.splitlines()[0]
    assert first.startswith("# ") and "CLEconomides/RVQE" in text
    source = name.removesuffix("-csv")
    assert source in text  # the script (or notebook) it follows
    assert ("400a5eb" in text) and (not name.endswith("-csv") or "results/hparam_logs/" in text)


def test_experiment_1() -> None:
    optimizer = load_preset("experiment-1-optimizer")
    assert optimizer.seeds == [112, 113, 114, 115, 116]
    assert optimizer.sweep == {"optimizer": ["sgd", "rmsprop", "adam", "lbfgs"], "learning_rate": RATES}
    assert pick(optimizer.train, "dataset", "batch_size", "workspace", "stages", "order", "degree", "epochs",
                "stop_at_loss", "initial_bias_spread", "initial_weights_spread", "initial_unitaries_spread") == {
        "dataset": "simple-seq", "batch_size": 2, "workspace": 5, "stages": 2, "order": 2, "degree": 3,
        "epochs": 500, "stop_at_loss": 5e-6, "initial_bias_spread": 0.5, "initial_weights_spread": 0.5,
        "initial_unitaries_spread": 0.5}
    csv = load_preset("experiment-1-optimizer-csv")
    assert csv.seeds == [82727] and csv.sweep == {"optimizer": ["sgd", "rmsprop", "adam"], "learning_rate": RATES}
    # experiment-1.sh of 7 May 2020 and main.py of then (the CSVs' hparams/cer_best column dates them).
    assert pick(csv.train, "batch_size", "workspace", "stages", "degree", "epochs", "gradient_clip", "initial_bias",
                "initial_bias_spread", "initial_weights_spread", "initial_unitaries_spread") == {
        "batch_size": 2, "workspace": 3, "stages": 2, "degree": 2, "epochs": 500, "gradient_clip": 0.0,
        "initial_bias": 0.785398, "initial_bias_spread": 0.0, "initial_weights_spread": 0.5,
        "initial_unitaries_spread": 0.0}
    assert "stop_at_loss" not in csv.train
    topology = load_preset("experiment-1-topology")
    assert topology.seeds == [2349711]
    assert topology.sweep == {"order": [1, 2, 3], "degree": [1, 2, 3], "stages": [1, 2, 3, 4, 5],
                              "workspace": [1, 2, 3, 4, 5]}
    assert pick(topology.train, "optimizer", "learning_rate", "sentence_length", "batch_size", "epochs") == {
        "optimizer": "rmsprop", "learning_rate": 0.01, "sentence_length": 20, "batch_size": 2, "epochs": 500}
    assert "stop_at_loss" not in topology.train


def test_experiment_2() -> None:
    spreads = [0.0, 0.01, 0.1, 1.0, 10.0]
    init = load_preset("experiment-2-elman-xor-initialization")
    assert init.seeds == ELMAN_SEEDS
    assert init.sweep == {"initial_bias_spread": spreads, "initial_weights_spread": spreads,
                          "initial_unitaries_spread": spreads}
    assert pick(init.train, "dataset", "workspace", "stages", "order", "degree", "optimizer", "learning_rate",
                "sentence_length", "batch_size", "initial_bias", "epochs", "stop_at_loss") == {
        "dataset": "elman-xor", "workspace": 4, "stages": 1, "order": 2, "degree": 3, "optimizer": "adam",
        "learning_rate": 0.005, "sentence_length": 36, "batch_size": 16, "initial_bias": 1.5708, "epochs": 1000,
        "stop_at_loss": 0.001}
    csv = load_preset("experiment-2-elman-xor-initialization-csv")
    assert csv.sweep == {"initial_bias": [0.0, 0.785398, 1.5708, 3.14159], **init.sweep}
    assert csv.seeds == ELMAN_SEEDS and {k: v for k, v in csv.train.items() if k != "initial_bias"} == {
        k: v for k, v in init.train.items() if k != "initial_bias"}
    letters = load_preset("experiment-2-elman-letter-topology")
    assert letters.seeds == ELMAN_SEEDS
    assert letters.sweep == {"workspace": [3, 4, 5, 6, 7, 8], "stages": [1, 2, 3, 4], "degree": [1, 2, 3, 4]}
    assert pick(letters.train, "dataset", "order", "optimizer", "learning_rate", "sentence_length", "batch_size",
                "epochs", "stop_at_loss", "initial_weights_spread") == {
        "dataset": "elman-letter", "order": 2, "optimizer": "adam", "learning_rate": 0.005, "sentence_length": 36,
        "batch_size": 8, "epochs": 1000, "stop_at_loss": 0.01, "initial_weights_spread": 0.01}
    letters_csv = load_preset("experiment-2-elman-letter-topology-csv")
    assert letters_csv.train == {**letters.train, "initial_weights_spread": 0.0}
    assert letters_csv.sweep == letters.sweep and letters_csv.seeds == letters.seeds
    optimizers = load_preset("experiment-2-elman-xor-optimizer")
    assert optimizers.seeds == [720, 7292, 4402, 5427, 4269, 7928, 3475, 5114, 3975, 2733]
    assert optimizers.sweep == {"optimizer": ["rmsprop", "sgd", "adam"]}
    assert pick(optimizers.train, "workspace", "stages", "degree", "learning_rate", "weight_decay", "batch_size",
                "epochs") == {"workspace": 6, "stages": 3, "degree": 4, "learning_rate": 0.01, "weight_decay": 0.0,
                              "batch_size": 24, "epochs": 1000}


def test_experiments_3_and_4() -> None:
    quotes = load_preset("experiment-3-memoize-quotes")
    assert len(quotes.seeds or []) == 25 and (quotes.seeds or [])[12] == 2
    assert pick(quotes.train, "dataset", "workspace", "stages", "degree", "optimizer", "learning_rate",
                "batch_size", "epochs") == {
        "dataset": "simple-quotes", "workspace": 6, "stages": 3, "degree": 3, "optimizer": "rmsprop",
        "learning_rate": 0.005, "batch_size": 6, "epochs": 1000}
    two = load_preset("experiment-3-mnist-2digit")
    assert (two.first_seed, two.repeats, two.seeds) == (20043, 5, None)
    assert pick(two.train, "dataset", "workspace", "batch_size", "epochs", "timeout") == {
        "dataset": "mnist01", "workspace": 8, "batch_size": 100, "epochs": 5000, "timeout": 42300.0}
    grid = two.grid()
    # The script's counter: repeat 3 (index 2) at rate 0.03 (index 2) is its run 2 * 4 + 2 = 10.
    assert [(p["learning_rate"], p["seed"]) for p in grid[:5]] == [
        (0.3, 20043), (0.1, 20044), (0.03, 20045), (0.01, 20046), (0.3, 20047)]
    assert grid[10]["learning_rate"] == 0.03 and grid[10]["seed"] == 20053 and grid[-1]["seed"] == 20062
    full = load_preset("experiment-3-mnist-full")
    assert pick(full.train, "dataset", "workspace", "degree", "optimizer", "learning_rate", "batch_size") == {
        "dataset": "mnist8", "workspace": 7, "degree": 3, "optimizer": "lbfgs", "learning_rate": 0.02,
        "batch_size": 8}
    pca = load_preset("experiment-4-mnist-pca")
    assert pca.seeds == list(range(28258, 28264))
    assert pick(pca.train, "dataset", "workspace", "learning_rate", "batch_size", "epochs") == {
        "dataset": "mnist-pca-r3-p8", "workspace": 10, "learning_rate": 0.005, "batch_size": 64, "epochs": 10000}
    umap = load_preset("experiment-4-mnist-umap")
    assert (umap.first_seed, umap.repeats) == (100043, 3)
    assert list(umap.sweep) == ["dataset", "learning_rate", "workspace", "degree"]  # the script's loop order
    assert len(umap.sweep["dataset"]) == 9 and all("r5" not in d and "r8" not in d for d in umap.sweep["dataset"])
    assert pick(umap.train, "batch_size", "epochs", "timeout") == {"batch_size": 128, "epochs": 500, "timeout": 7200.0}
    point = umap.grid()[162 + 3 * 18 + 1 * 6 + 1 * 2 + 1]  # repeat 2, d3-r2, rate 0.03, workspace 6, degree 3
    assert pick(point, "dataset", "learning_rate", "workspace", "degree", "seed") == {
        "dataset": "mnist-umap-d3-r2", "learning_rate": 0.03, "workspace": 6, "degree": 3, "seed": 100268}
    assert "seed" in umap.varying()
    assert umap.summary() == (
        "486 points: dataset (9) x learning_rate (3) x workspace (3) x degree (2) x 3 repeats "
        "(seeds 100043..100528, one per point)")


def test_experiment_5_and_the_baselines() -> None:
    dna = load_preset("experiment-5-dna")
    assert dna.seeds == DNA_SEEDS and dna.sweep == {}
    assert pick(dna.train, "sentence_length", "workspace", "stages", "order", "degree", "learning_rate",
                "batch_size", "epochs", "stop_at_loss", "timeout") == {
        "sentence_length": 1000, "workspace": 5, "stages": 1, "order": 2, "degree": 3, "learning_rate": 0.01,
        "batch_size": 128, "epochs": 5000, "stop_at_loss": 0.001, "timeout": 42840.0}
    csv = load_preset("experiment-5-dna-csv")
    assert csv.seeds == DNA_SEEDS and csv.sweep == {"sentence_length": [5, 10, 20, 50, 100, 200, 500]}
    assert pick(csv.train, "workspace", "stages", "learning_rate", "batch_size", "epochs", "stop_at_loss") == {
        "workspace": 6, "stages": 2, "learning_rate": 0.005, "batch_size": 256, "epochs": 1000, "stop_at_loss": 0.0005}
    lengths = [5, 10, 20, 50, 100, 200, 500, 1000]
    for name, model, width, rate, seeds in (("lstm", "lstm", 10, 0.1, NOTEBOOK_SEEDS),
                                            ("rnn", "rnn", 22, 0.01, NOTEBOOK_SEEDS[:5])):
        baseline = load_preset(f"long-sequence-comparisons-{name}")
        assert baseline.seeds == seeds and baseline.sweep == {"sentence_length": lengths}
        assert pick(baseline.train, "model", "workspace", "learning_rate", "batch_size", "gradient_clip", "loss",
                    "stop_at_loss", "validate_every", "epochs") == {
            "model": model, "workspace": width, "learning_rate": rate, "batch_size": 128, "gradient_clip": 0.0,
            "loss": "nll", "stop_at_loss": 0.001, "validate_every": 1, "epochs": 99999}
    # The tables' notebooks (6850a30): two layers, their start, every output scored, batch 16, the training-loss
    # stop within 15999 steps; 21448 and 20808 parameters.
    for name, model, width, rate, count in (("lstm", "lstm", 40, 0.05, 21448), ("rnn", "rnn", 80, 0.01, 20808)):
        table = load_preset(f"long-sequence-comparisons-{name}-csv")
        assert table.seeds == NOTEBOOK_SEEDS and table.sweep == {"sentence_length": lengths}
        assert pick(table.train, "dataset", "model", "workspace", "layers", "baseline_init", "learning_rate",
                    "batch_size", "gradient_clip", "loss", "stop_at_training_loss", "epochs") == {
            "dataset": "dna-every-output", "model": model, "workspace": width, "layers": 2,
            "baseline_init": "notebook", "learning_rate": rate, "batch_size": 16, "gradient_clip": 0.0,
            "loss": "nll", "stop_at_training_loss": 0.0005, "epochs": 15999}
        network = build_model({**make_config(table.train).as_dict(), "input_size": 3})
        assert parameter_count(network) == count


def test_first_seed_and_repeats(tmp_path: Path) -> None:
    text = 'description = "x"\nfirst_seed = 7\nrepeats = 2\n[train]\nworkspace = 2\n[sweep]\nstages = [1, 2]\n'
    path = tmp_path / "counted.toml"
    path.write_text(text)
    preset = load_preset(path)
    assert [(p["stages"], p["seed"]) for p in preset.grid()] == [(1, 7), (2, 8), (1, 9), (2, 10)]
    assert preset.varying() == ["stages", "seed"]
    assert preset.summary() == "4 points: stages (2) x 2 repeats (seeds 7..10, one per point)"
    path.write_text('description = "x"\nfirst_seed = 3\n')  # repeats defaults to 1: one point, seed 3
    single = load_preset(path)
    assert single.grid() == [{"seed": 3}] and single.varying() == []
    bad = [
        ('first_seed = 1\nseeds = [1]\n', "give either seeds = [...] or first_seed"),
        ('repeats = 2\n', "repeats: needs first_seed"),
        ('first_seed = 1\nrepeats = 0\n', "repeats: must be an integer >= 1"),
        ('first_seed = 1\nrepeats = true\n', "repeats: must be an integer >= 1"),
        ('first_seed = "a"\n', "first_seed: must be int"),
        ('first_seed = -1\n', "first_seed -1: --seed must be an integer"),
    ]
    for body, message in bad:
        path.write_text('description = "x"\n' + body)
        with pytest.raises(QRNNError) as caught:
            load_preset(path)
        assert str(caught.value).startswith(f"preset {path}") and message in str(caught.value)


def test_a_counted_seed_preset_expands_into_distinct_sweep_points() -> None:
    from qrnn.sweep import expand

    points = expand(load_preset("experiment-3-mnist-2digit"))
    assert len({point.id for point in points}) == 20
    assert [point.varying for point in points[:2]] == [
        {"learning_rate": 0.3, "seed": 20043}, {"learning_rate": 0.1, "seed": 20044}]
