"""Sweeps: stable point ids, exclusive claims and stale-lock takeover, two concurrent sweep processes sharing
the points, a killed point (stale lock of a dead pid) resumed exactly from its checkpoint, a signalled sweep
resuming from its "interrupted" checkpoint, failed points, --max-points, and the status table."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from qrnn.cli import main as qrnn_main
from qrnn.errors import QRNNError
from qrnn.presets import load_preset
from qrnn.sweep import DONE_FILE, FAILED_FILE, Sweep, expand, point_id, try_claim
from qrnn.training import read_checkpoint, train

TINY = """
description = "tiny elman-xor sweep"
seeds = [1, 2]

[train]
dataset = "elman-xor"
sentence_length = 9
batch_size = 4
workspace = 2
stages = 1
epochs = {epochs}
validate_every = 4
num_validation_samples = 0

[sweep]
learning_rate = {rates}
"""


def tiny_preset(directory: Path, name: str = "tiny", epochs: int = 4, rates: str = "[0.01, 0.1]",
                seeds: str = "[1, 2]") -> Path:
    path = directory / f"{name}.toml"
    path.write_text(TINY.format(epochs=epochs, rates=rates).replace("seeds = [1, 2]", f"seeds = {seeds}"))
    return path


def quiet_sweep(preset: Path, root: Path, **kwargs: object) -> Sweep:
    return Sweep(load_preset(preset), root, printer=lambda _line: None, **kwargs)  # type: ignore[arg-type]


# A sweep process that kills itself (signal NAME) right after writing its first "best" checkpoint: a
# deterministic stand-in for a job killed mid-point.
DYING_SWEEP = """
import os, signal, sys
from qrnn.training import loop
original = loop.ShardTrainer.write_checkpoint
def write_then_signal(self, kind):
    path = original(self, kind)
    if kind == "best":
        os.kill(os.getpid(), signal.{name})
    return path
loop.ShardTrainer.write_checkpoint = write_then_signal
from qrnn.cli import main
sys.exit(main(["sweep", {preset!r}, "--root", {root!r}]))
"""


def run_dying_sweep(preset: Path, root: Path, name: str) -> subprocess.CompletedProcess[str]:
    code = DYING_SWEEP.format(name=name, preset=str(preset), root=str(root))
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_point_ids_are_stable_and_distinct(tmp_path: Path) -> None:
    points = expand(load_preset(tiny_preset(tmp_path)))
    assert [p.id for p in points] == [p.id for p in expand(load_preset(tiny_preset(tmp_path)))]
    assert len({p.id for p in points}) == 4 and all(len(p.id) == 12 for p in points)
    assert points[0].varying == {"learning_rate": 0.01, "seed": 1} and "out" not in points[0].options
    assert points[0].options["optimizer"] == "adam"  # the full option set, defaults included
    # A grid that gains a value keeps the ids of the points it had; a changed [train] option changes them all.
    grown = expand(load_preset(tiny_preset(tmp_path, rates="[0.01, 0.1, 0.3]")))
    assert {p.id for p in points} < {p.id for p in grown} and len(grown) == 6
    longer = expand(load_preset(tiny_preset(tmp_path, epochs=5)))
    assert not {p.id for p in points} & {p.id for p in longer}


def test_point_ids_survive_options_added_later() -> None:
    # The ids the L-BFGS seed study's points had before --gradient-clip existed (results/REPORT.md cites them).
    points = expand(load_preset("mnist36-lbfgs"))
    ids = {(p.varying["lbfgs_line_search"], p.varying["learning_rate"], p.varying["seed"]): p.id for p in points}
    assert ids[("none", 0.02, 1)] == "c63270308bd2" and ids[("strong_wolfe", 1.0, 4)] == "d2e76bd1010e"
    assert all(p.options["gradient_clip"] == 0.5 for p in points)
    # Away from its default, an option added later is part of the id.
    options = dict(points[0].options)
    assert point_id({**options, "gradient_clip": 0.0}) != points[0].id == point_id(options)


def test_claims_are_exclusive_and_stale_locks_are_taken_over(tmp_path: Path) -> None:
    point = tmp_path / "point"
    first = try_claim(point, stale_after=60)
    assert first is not None and first.path.name == "lock.0"
    holder = json.loads(first.path.read_text())
    assert holder["host"] == socket.gethostname() and holder["pid"] == os.getpid() and holder["started"]
    assert try_claim(point, stale_after=60) is None  # held by a live process
    first.release()
    assert not list(point.glob("lock.*"))
    second = try_claim(point, stale_after=60)
    assert second is not None and second.path.name == "lock.0"
    second.release()

    # Same host, dead pid: stale at once; exactly one of two claimants takes it over (the next generation).
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    (point / "lock.0").write_text(json.dumps({"host": socket.gethostname(), "pid": int(dead.stdout)}))
    takeover = try_claim(point, stale_after=60)
    assert takeover is not None and takeover.path.name == "lock.1"
    assert try_claim(point, stale_after=60) is None
    assert takeover.still_owned()
    takeover.release(everything=True)
    assert not list(point.glob("lock.*"))

    # Another host: live while its heartbeat (the file's mtime) is fresh, stale once it is older than the timeout.
    other = point / "lock.0"
    other.write_text(json.dumps({"host": "elsewhere", "pid": 1}))
    assert try_claim(point, stale_after=60) is None
    old = time.time() - 61
    os.utime(other, (old, old))
    claim = try_claim(point, stale_after=60)
    assert claim is not None and claim.path.name == "lock.1"
    # The heartbeat keeps our own lock fresh.
    os.utime(claim.path, (old, old))
    claim._stop.set()
    claim._thread.join()
    heartbeat = try_claim(point / "beating", stale_after=0.2)
    assert heartbeat is not None
    os.utime(heartbeat.path, (old, old))
    time.sleep(0.1)
    assert time.time() - heartbeat.path.stat().st_mtime < 1
    heartbeat.release()


def test_two_processes_share_the_points(tmp_path: Path) -> None:
    preset = tiny_preset(tmp_path)
    root = tmp_path / "root"
    command = [sys.executable, "-m", "qrnn.cli", "sweep", str(preset), "--root", str(root)]
    processes = [subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
                 for _ in range(2)]
    outputs = [process.communicate(timeout=180) for process in processes]
    assert [process.returncode for process in processes] == [0, 0], outputs
    sweep = quiet_sweep(preset, root)
    assert len(sweep.points) == 4
    runners: list[int] = []
    for point in sweep.points:
        directory = sweep.point_directory(point)
        done = json.loads((directory / DONE_FILE).read_text())
        runners.append(done["pid"])
        assert done["epoch"] == 4 and done["stop_reason"] == "epochs" and done["resumed_from"] is None
        assert len(list((directory / "runs").iterdir())) == 1  # trained once, by one process
        assert not list(directory.glob("lock.*"))
    pids = {process.pid for process in processes}
    assert set(runners) <= pids
    # Each process reports how many points it finished; together exactly the four.
    finished = [int(out.split("this process finished ")[1].split()[0]) for out, _ in outputs]
    assert sum(finished) == 4 and sorted(finished) == sorted(runners.count(pid) for pid in pids)


def test_killed_point_resumes_exactly_from_its_checkpoint(tmp_path: Path) -> None:
    preset = tiny_preset(tmp_path, epochs=12, rates="[0.05]", seeds="[3]")
    root = tmp_path / "root"
    killed = run_dying_sweep(preset, root, "SIGKILL")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    sweep = quiet_sweep(preset, root)
    (point,) = sweep.points
    directory = sweep.point_directory(point)
    (lock,) = directory.glob("lock.*")
    assert lock.name == "lock.0" and json.loads(lock.read_text())["pid"] > 0  # left behind by the dead process
    (best,) = (directory / "checkpoints").glob("*-best-*.tar")
    assert read_checkpoint(best)["epoch"] == 4
    status = sweep.status(point)
    assert (status.state, status.detail) == ("interrupted", "resumes from epoch 4")
    assert status.best_validation_loss == pytest.approx(read_checkpoint(best)["best"]["validation_loss"])

    assert sweep.run() == 0
    done = json.loads((directory / DONE_FILE).read_text())
    assert done["resumed_from"] == str(best) and done["epoch"] == 12 and done["stop_reason"] == "epochs"
    assert len(list((directory / "runs").iterdir())) == 1  # the same run continued
    assert not list(directory.glob("lock.*")) and sweep.status(point).state == "done"
    # Exactly the model an uninterrupted run trains.
    straight = train(**point.options, out=str(tmp_path / "straight"))
    resumed = read_checkpoint(done["final_checkpoint"])["model_state_dict"]
    for name, value in read_checkpoint(straight.final_checkpoint)["model_state_dict"].items():
        assert torch.equal(resumed[name], value), name
    assert done["best_validation_loss"] == pytest.approx(straight.best_validation_loss, abs=1e-7)


def test_signalled_sweep_stops_and_resumes_from_interrupted(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    from qrnn.training import loop

    preset = tiny_preset(tmp_path, epochs=8, rates="[0.05]", seeds="[3]")
    sweep = quiet_sweep(preset, tmp_path / "root")
    (point,) = sweep.points
    directory = sweep.point_directory(point)
    original = loop.ShardTrainer.write_checkpoint

    def write_then_terminate(self: loop.ShardTrainer, kind: str) -> str | None:
        # SIGTERM, as a cluster pre-empting the job sends it, right after the first "best" checkpoint.
        path = original(self, kind)
        if kind == "best":
            os.kill(os.getpid(), signal.SIGTERM)
        return path

    monkeypatch.setattr(loop.ShardTrainer, "write_checkpoint", write_then_terminate)
    assert sweep.run() == 128 + signal.SIGTERM
    assert not list(directory.glob("lock.*"))  # released on the way out
    (interrupted,) = (directory / "checkpoints").glob("*-interrupted-*.tar")
    assert read_checkpoint(interrupted)["epoch"] == 5  # the signal came during epoch 4's validation
    assert sweep.status(point).state == "interrupted" and not (directory / DONE_FILE).exists()
    monkeypatch.setattr(loop.ShardTrainer, "write_checkpoint", original)
    assert sweep.run() == 0
    done = json.loads((directory / DONE_FILE).read_text())
    assert done["resumed_from"] == str(interrupted) and done["epoch"] == 8


def test_failed_points_max_points_and_status(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    import qrnn.training.launch as launch

    preset = tiny_preset(tmp_path)
    root = tmp_path / "root"
    sweep = quiet_sweep(preset, root)
    assert sweep.run(max_points=1) == 0
    states = [sweep.status(point).state for point in sweep.points]
    assert states == ["done", "pending", "pending", "pending"]

    real_train = launch.train

    def train_failing_at_high_rates(**options: object) -> object:
        if options["learning_rate"] == 0.1:
            raise QRNNError("--learning-rate 0.1 is refused by this test")
        return real_train(**options)

    monkeypatch.setattr(launch, "train", train_failing_at_high_rates)
    assert sweep.run() == 1  # a point failed in this process
    assert [sweep.status(point).state for point in sweep.points] == ["done", "failed", "done", "failed"]
    failed = json.loads((sweep.point_directory(sweep.points[1]) / FAILED_FILE).read_text())
    assert failed["reason"] == "--learning-rate 0.1 is refused by this test"

    capsys.readouterr()
    assert qrnn_main(["sweep", str(preset), "--root", str(root), "--status"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0] == (f"sweep tiny in {root / 'tiny'}: 4 points: 2 done, 0 running, 0 interrupted, 2 failed, "
                        "0 pending")
    assert table[1].split() == ["id", "learning_rate", "seed", "state", "best", "val", "loss", "detail"]
    rows = {row.split()[0]: row.split() for row in table[2:]}
    first, second = sweep.points[0], sweep.points[1]
    done = json.loads((sweep.point_directory(first) / DONE_FILE).read_text())
    assert rows[first.id][:5] == [first.id, "0.01", "1", "done", f"{done['best_validation_loss']:.4g}"]
    assert rows[second.id][:5] == [second.id, "0.1", "1", "failed", "-"]
    assert " ".join(rows[second.id][5:]) == failed["reason"]

    # Failed points are skipped by a restarted sweep, and run again with --retry-failed.
    monkeypatch.setattr(launch, "train", real_train)
    assert sweep.run() == 0 and sweep.status(sweep.points[1]).state == "failed"
    assert sweep.run(retry_failed=True) == 0
    assert [sweep.status(point).state for point in sweep.points] == ["done"] * 4


def test_sweep_command_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert qrnn_main(["sweep", "no-such-preset", "--root", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("qrnn: error: unknown preset 'no-such-preset'")
    preset = tiny_preset(tmp_path)
    assert qrnn_main(["sweep", str(preset), "--root", str(tmp_path), "--max-points", "0"]) == 2
    assert capsys.readouterr().err == "qrnn: error: --max-points must be an integer >= 1, got 0\n"
    assert qrnn_main(["sweep", str(preset), "--root", str(tmp_path), "--stale-after", "0"]) == 2
    assert "--stale-after must be a number of seconds > 0" in capsys.readouterr().err
    assert not (tmp_path / "tiny").exists()  # nothing started
