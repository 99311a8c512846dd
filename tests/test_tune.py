"""`qrnn tune`: a TPE + ASHA search on a real journal storage finishes its trials and prunes some, a restarted
finished search runs nothing more, a signalled trial is retried in its own folder with its own values, and bad
`[search]` tables or options are one-line errors naming the file and the key."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest
from helpers import terminate_after_best

from qrnn.cli import main as qrnn_main
from qrnn.presets import load_preset
from qrnn.sweep import DONE_FILE, point_trials
from qrnn.tune import Tune

SEARCH = """
description = "tiny elman-xor search"

[train]
dataset = "elman-xor"
sentence_length = 9
batch_size = 4
workspace = 2
stages = 1
epochs = 12
validate_every = 2
num_validation_samples = 0
seed = 3

[search]
{search}
"""

SPACE = """learning_rate = { low = 0.001, high = 0.3, log = true }
initial_weights_spread = { low = 0.001, high = 1.0, log = true }"""


def search_preset(directory: Path, search: str = SPACE) -> Path:
    path = directory / "tiny.toml"
    path.write_text(SEARCH.format(search=search))
    return path


def test_tpe_with_asha_finishes_and_prunes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    preset = search_preset(tmp_path)
    root = tmp_path / "root"
    arguments = ["tune", str(preset), "--root", str(root), "--trials", "8", "--sampler", "tpe", "--pruner", "asha"]
    assert qrnn_main(arguments) == 0
    out = capsys.readouterr().out
    tune = Tune(load_preset(preset), root, 8)
    study = tune.open(create=False)
    states = [trial.state.name for trial in study.get_trials()]
    assert len(states) == 8 and set(states) <= {"COMPLETE", "PRUNED"}
    assert states.count("PRUNED") >= 1 and states.count("COMPLETE") >= 1, states
    for trial in study.get_trials():
        folder = root / "tiny-tune" / f"trial-{trial.number:04d}"
        done = json.loads((folder / DONE_FILE).read_text())
        assert done["stop_reason"] == ("pruned" if trial.state.name == "PRUNED" else "epochs")
        assert json.loads((folder / "point.json").read_text())["varying"] == trial.params
        assert sorted(trial.intermediate_values) == list(range(2, done["epoch"] + 1, 2))
    best = min((t for t in study.get_trials() if t.state.name == "COMPLETE"), key=lambda t: t.value)
    assert f"qrnn evaluate {root / 'tiny-tune' / f'trial-{best.number:04d}'}" in out
    assert "qrnn resume " in out and "--epochs 24" in out

    # Restarted when finished: nothing more runs. --status lists every trial.
    assert qrnn_main(arguments) == 0
    assert len(tune.open(create=False).get_trials()) == 8
    capsys.readouterr()
    assert qrnn_main([*arguments, "--status"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith(f"search tiny-tune in {root / 'tiny-tune'}") and "8 trials of 8" in table[0]
    assert table[1].split()[:3] == ["id", "learning_rate", "initial_weights_spread"]
    assert len(table) == 10 and table[2].split()[0] == "trial-0000"


def test_signalled_trial_is_retried_in_its_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:

    preset = search_preset(tmp_path)
    tune = Tune(load_preset(preset), tmp_path / "root", 1, pruner="none", printer=lambda _line: None)
    terminate_after_best(monkeypatch)
    assert tune.run() == 128 + signal.SIGTERM
    monkeypatch.undo()
    assert tune.run() == 0
    first, retry = tune.open(create=False).get_trials()
    assert (first.state.name, retry.state.name) == ("FAIL", "COMPLETE") and first.params == retry.params
    assert point_trials([first, retry]) == {"trial-0000": [first, retry]}
    done = json.loads((tmp_path / "root" / "tiny-tune" / "trial-0000" / DONE_FILE).read_text())
    assert "-interrupted-" in done["resumed_from"] and done["epoch"] == 12


@pytest.mark.parametrize(
    ("search", "message"),
    [
        ("learning_rate = { low = 0.1, high = 0.01 }", "[search] learning_rate: needs finite low < high"),
        ("learning_rate = { low = 0.0, high = 0.1, log = true }", "[search] learning_rate: a log range needs low > 0"),
        ("learning_rate = { low = 0.01, hi = 0.1 }", "[search] learning_rate: unknown key 'hi'"),
        ("learning_rate = 0.1", "[search] learning_rate: must be a table"),
        ("optimizer = { low = 1, high = 2 }", "[search] optimizer: must be str, got 1"),
        ("optimizer = { choices = [\"adam\", \"nope\"] }", "[search] optimizer = 'nope'"),
        ("workspace = { low = 2.5, high = 4 }", "[search] workspace: must be int, got 2.5"),
        ("learning_rat = { low = 0.01, high = 0.1 }", "[search] unknown option 'learning_rat'"),
    ],
)
def test_bad_search_entries_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str], search: str,
                                                message: str) -> None:
    preset = search_preset(tmp_path, search)
    assert qrnn_main(["tune", str(preset), "--root", str(tmp_path / "root")]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"qrnn: error: preset {preset}: ") and message in err and err.count("\n") == 1, err
    assert not (tmp_path / "root").exists()


def test_tune_option_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    preset = search_preset(tmp_path)
    root = str(tmp_path / "root")
    assert qrnn_main(["tune", str(preset), "--root", root, "--sampler", "grid"]) == 2
    assert "[search] learning_rate: --sampler grid needs choices or an integer range" in capsys.readouterr().err
    assert qrnn_main(["tune", str(preset), "--root", root, "--trials", "0"]) == 2
    assert "--trials must be an integer >= 1" in capsys.readouterr().err
    assert qrnn_main(["tune", "experiment-1-topology", "--root", root]) == 2
    assert "has no [search] table" in capsys.readouterr().err
    try:
        import cmaes  # noqa: F401
    except ImportError:
        assert qrnn_main(["tune", str(preset), "--root", root, "--sampler", "cmaes"]) == 2
        assert capsys.readouterr().err == "qrnn: error: --sampler cmaes needs the cmaes package: pip install cmaes\n"
    assert not Path(root).exists()
    # The shipped presets with a [search] table load, and a grid sampler takes a choices-only space.
    assert set(load_preset("experiment-1-optimizer").search) == {"optimizer", "learning_rate"}
    assert load_preset("experiment-2-elman-xor-initialization").search["learning_rate"] == {
        "low": 0.0005, "high": 0.05, "log": True}
