"""Training a pool: each member's run is its separate run, bit for bit (losses, validations, checkpoints), it
stops on its own, resumes from its own checkpoints, and its checkpoints are ordinary ones."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import qrnn
from qrnn.errors import QRNNError
from qrnn.training import read_checkpoint, resume, train
from qrnn.training.config import make_config
from qrnn.training.pool import PoolMember, run_pool_training, train_pool

BASE = {"dataset": "simple-seq", "workspace": 2, "stages": 1, "validate_every": 5, "num_validation_samples": 0}


def _members(tmp_path: Path, kind: str) -> list[dict]:
    # Members that differ in every option a member may: seed, rate, clip, spreads, epochs and stop-at-loss.
    return [
        {**BASE, "seed": 1, "learning_rate": 0.05, "epochs": 20, "out": str(tmp_path / kind / "a")},
        {**BASE, "seed": 2, "learning_rate": 0.01, "epochs": 15, "gradient_clip": 0.0,
         "initial_weights_spread": 0.5, "out": str(tmp_path / kind / "b")},
        {**BASE, "seed": 3, "learning_rate": 0.05, "epochs": 20, "stop_at_loss": 0.45, "weight_decay": 0.01,
         "initial_bias_spread": 1.0, "initial_unitaries_spread": 0.3, "out": str(tmp_path / kind / "c")},
    ]


def _same(a: object, b: object, where: str) -> None:
    """Equal, bit for bit, through nested dicts and lists of tensors."""
    if isinstance(a, torch.Tensor):
        assert isinstance(b, torch.Tensor) and torch.equal(a, b), where
        # A member's tensors come from views of the pool's; the file must hold only the member's own numbers.
        assert a.untyped_storage().nbytes() == b.untyped_storage().nbytes() == a.numel() * a.element_size(), where
    elif isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), where
        for key in a:
            _same(a[key], b[key], f"{where}.{key}")
    elif isinstance(a, (list, tuple)):
        assert isinstance(b, (list, tuple)) and len(a) == len(b), where
        for index, (x, y) in enumerate(zip(a, b, strict=True)):
            _same(x, y, f"{where}[{index}]")
    else:
        assert a == b, where


def _same_checkpoint(left: str, right: str) -> None:
    a, b = read_checkpoint(left), read_checkpoint(right)
    for key in ("epoch", "best", "last_validation", "model_state_dict", "optimizer_state_dict"):
        _same(a[key], b[key], key)
    # The run's own streams; not the process-wide generator, which nothing in a run draws from (a baseline's
    # constructor advances it before the seeded initialisation overwrites its parameters).
    for stream in ("sampling", "dataset_generators", "dataset_state", "python", "numpy"):
        _same(a["random_states"][0][stream], b["random_states"][0][stream], stream)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_members_train_exactly_as_their_separate_runs(tmp_path: Path, dtype: str) -> None:
    options = [{**member, "dtype": dtype} for member in _members(tmp_path, "pool")]
    pooled = train_pool(options)
    alone = [train(**{**member, "out": member["out"].replace("pool", "alone")}) for member in options]
    for mine, theirs in zip(pooled, alone, strict=True):
        assert mine.best_validation_loss == theirs.best_validation_loss
        assert mine.last_validation_loss == theirs.last_validation_loss
        assert (mine.epoch, mine.stop_reason) == (theirs.epoch, theirs.stop_reason)
        _same_checkpoint(mine.final_checkpoint, theirs.final_checkpoint)
        _same_checkpoint(mine.best_checkpoint, theirs.best_checkpoint)
    # Each member stopped on its own: at its epochs, or below its stop-at-loss.
    assert [r.epoch for r in pooled][:2] == [20, 15]


def test_a_pool_resumes_from_its_members_checkpoints(tmp_path: Path) -> None:
    first = [{**member, "epochs": 10} for member in _members(tmp_path, "pool")[:2]]
    halves = train_pool(first)
    longer = [{**member, "epochs": 20} for member in first]
    resumed = train_pool(longer, resume_from=[result.final_checkpoint for result in halves])
    straight = [train(**{**member, "out": member["out"].replace("pool", "straight")}) for member in longer]
    for mine, theirs in zip(resumed, straight, strict=True):
        _same_checkpoint(mine.final_checkpoint, theirs.final_checkpoint)
    # A member's checkpoint is an ordinary one: `resume` and `evaluate` take it alone.
    continued = resume(resumed[0].final_checkpoint, epochs=25)
    assert continued.epoch == 25
    assert qrnn.evaluate(continued.final_checkpoint).samples > 0


def test_baseline_members_train_as_their_separate_runs(tmp_path: Path) -> None:
    options = [{**member, "model": "lstm", "workspace": 4} for member in _members(tmp_path, "pool")[:2]]
    pooled = train_pool(options)
    alone = [train(**{**member, "out": member["out"].replace("pool", "alone")}) for member in options]
    for mine, theirs in zip(pooled, alone, strict=True):
        _same_checkpoint(mine.final_checkpoint, theirs.final_checkpoint)


def test_lbfgs_members_train_one_after_another(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    options = [{**member, "optimizer": "lbfgs", "learning_rate": 0.02, "epochs": 4, "gradient_clip": 0.0}
               for member in _members(tmp_path, "pool")[:2]]
    pooled = train_pool(options)
    assert "train one after another" in capsys.readouterr().err
    alone = train(**{**options[1], "out": options[1]["out"].replace("pool", "alone")})
    _same_checkpoint(pooled[1].final_checkpoint, alone.final_checkpoint)


def test_members_that_cannot_share_a_pool_are_refused_in_one_line(tmp_path: Path) -> None:
    options = _members(tmp_path, "pool")[:2]
    options[1] = {**options[1], "workspace": 3}
    with pytest.raises(QRNNError, match="pool member 1 has --workspace 3, member 0 2"):
        train_pool(options)
    assert not (tmp_path / "pool" / "a" / "runs").exists()


def test_a_pruned_member_leaves_and_a_lost_one_writes_nothing_more(tmp_path: Path) -> None:
    options = _members(tmp_path, "pool")[:2]
    verdicts = {0: "pruned", 1: "lost"}
    members = [
        PoolMember(make_config({**member, "epochs": 20}), on_validation=lambda epoch, loss, i=i: verdicts[i])
        for i, member in enumerate(options)
    ]
    pruned, lost = run_pool_training(members)
    assert (pruned.stop_reason, pruned.epoch) == ("pruned", 5) and pruned.final_checkpoint is not None
    assert (lost.stop_reason, lost.epoch) == ("lost", 5) and lost.final_checkpoint is None
    # Lost at its first validation: asked before anything of it is recorded, so no checkpoint at all.
    assert lost.best_checkpoint is None
    assert list((tmp_path / "pool" / "b" / "checkpoints").iterdir()) == []


def test_a_member_with_non_finite_numbers_leaves_and_the_others_go_on(tmp_path: Path) -> None:
    healthy, broken = _members(tmp_path, "pool")[:2]
    broken = {**broken, "initial_weights_spread": 1e308}
    first, second = train_pool([healthy, broken])
    assert second.stop_reason == "fault" and second.exit_code == 1 and second.final_checkpoint is None
    assert "is not finite at epoch 1" in second.fault and "no checkpoint was written" in second.fault
    assert not list((tmp_path / "pool" / "b" / "checkpoints").iterdir())
    alone = train(**{**healthy, "out": healthy["out"].replace("pool", "alone")})
    _same_checkpoint(first.final_checkpoint, alone.final_checkpoint)


def test_a_member_is_reported_as_soon_as_it_leaves_the_pool(tmp_path: Path) -> None:
    # The short member's result reaches its hook while the long one still trains (a sweep writes its done.json
    # then), and its final checkpoint is already on disk.
    options = _members(tmp_path, "pool")[:2]
    events: list[tuple[str, int]] = []

    def finished(result, name: str) -> None:
        assert Path(result.final_checkpoint).is_file()
        events.append((f"{name} finished", result.epoch))

    members = [
        PoolMember(make_config({**member, "epochs": epochs}), on_finish=lambda r, n=name: finished(r, n),
                   on_validation=lambda epoch, loss, n=name: events.append((f"{n} validated", epoch)) and None)
        for member, epochs, name in zip(options, (5, 15), ("short", "long"), strict=True)
    ]
    short, long = run_pool_training(members)
    assert (short.epoch, long.epoch) == (5, 15)
    assert events.index(("short finished", 5)) < events.index(("long validated", 10))
    assert events[-1] == ("long finished", 15)


def test_a_member_stops_on_its_own_training_loss(tmp_path: Path) -> None:
    # Two-layer baselines with the notebooks' start; the member with --stop-at-training-loss leaves the pool at
    # the same step as its separate run, the other trains all its epochs, both as their separate runs.
    common = {**BASE, "model": "lstm", "workspace": 6, "layers": 2, "baseline_init": "notebook", "epochs": 30}
    options = [{**common, "seed": 1, "learning_rate": 0.05, "out": str(tmp_path / "pool" / "a")},
               {**common, "seed": 2, "learning_rate": 0.05, "stop_at_training_loss": 0.6,
                "out": str(tmp_path / "pool" / "b")}]
    pooled = train_pool(options)
    alone = [train(**{**member, "out": member["out"].replace("pool", "alone")}) for member in options]
    assert [result.stop_reason for result in pooled] == ["epochs", "stop-at-training-loss"]
    assert pooled[1].epoch < 30 and pooled[1].epoch == alone[1].epoch
    for mine, theirs in zip(pooled, alone, strict=True):
        _same_checkpoint(mine.final_checkpoint, theirs.final_checkpoint)
