"""Sweeps on Optuna studies, with real storages (the journal file, SQLite, and a PostgreSQL server where one can
be started), no mocks of the engine: stable point ids, two worker processes sharing the points, one of them
killed with SIGKILL and its point resumed and finished by the survivor, a worker whose trial is taken over
stopping without writing, a live worker never taken over, a grid that grows, a restarted finished sweep, a root
of the lock-file era, a signalled sweep, failed points, --max-points and the status table."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from helpers import terminate_after_best

from qrnn.cli import main as qrnn_main
from qrnn.errors import QRNNError
from qrnn.presets import load_preset
from qrnn.sweep import DONE_FILE, FAILED_FILE, Sweep, expand, point_id, point_trials, pool_key
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


def one_by_one(extra: tuple[str, ...]) -> tuple[str, ...]:
    """The fault tests follow one point at a time (a pool's members checkpoint at once): --pool-size 1 unless
    the test says otherwise."""
    return extra if "--pool-size" in extra else (*extra, "--pool-size", "1")


def sweep_command(preset: Path, root: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "qrnn.cli", "sweep", str(preset), "--root", str(root), *one_by_one(extra)]


def trials_of(sweep: Sweep) -> dict[str, list[object]]:
    study = sweep.open(create=False)
    assert study is not None
    return point_trials(study.get_trials(deepcopy=False))


def states_of(sweep: Sweep) -> dict[str, list[str]]:
    """The states of each point's trials, oldest first; duplicates (a point queued twice by workers starting at
    once, closed unrun) left out."""
    return {key: [t.state.name for t in trials if "duplicate_of" not in t.user_attrs]  # type: ignore[attr-defined]
            for key, trials in trials_of(sweep).items()}


def storage_url(kind: str, tmp_path: Path) -> list[str]:
    return [] if kind == "journal" else ["--storage", f"sqlite:///{tmp_path / 'study.db'}"]


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
sys.exit(main({arguments!r}))
"""


def dying_sweep_code(preset: Path, root: Path, name: str, *extra: str) -> str:
    return DYING_SWEEP.format(name=name, arguments=["sweep", str(preset), "--root", str(root), *one_by_one(extra)])


def run_dying_sweep(preset: Path, root: Path, name: str, *extra: str) -> subprocess.CompletedProcess[str]:
    code = dying_sweep_code(preset, root, name, *extra)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def kill_one_of_two_workers(preset: Path, root: Path, extra: list[str]) -> tuple[int, str]:
    """Two workers on one sweep, one of which kills itself with SIGKILL right after its first "best"
    checkpoint; the survivor must exit 0. Returns the survivor's pid and output."""
    dying = subprocess.Popen([sys.executable, "-c", dying_sweep_code(preset, root, "SIGKILL", *extra)],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    survivor = subprocess.Popen(sweep_command(preset, root, *extra), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
    assert dying.wait(timeout=120) == -signal.SIGKILL, dying.communicate()
    out, err = survivor.communicate(timeout=180)
    assert survivor.returncode == 0, out + err
    return survivor.pid, out


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
    for name, value in (("layers", 2), ("baseline_init", "notebook"), ("stop_at_training_loss", 0.001)):
        assert point_id({**options, name: value}) != points[0].id


@pytest.mark.parametrize("storage", ["journal", "sqlite"])
def test_survivor_finishes_a_killed_workers_point(tmp_path: Path, storage: str) -> None:
    # Two workers share the points; one kills itself with SIGKILL right after its first "best" checkpoint. The
    # survivor takes the other points, waits while the dead worker's trial still looks alive, then (its
    # heartbeat stale) resumes that point from the checkpoint, and exits 0 with every point done once.
    preset = tiny_preset(tmp_path, epochs=8, rates="[0.05]", seeds="[1, 2]")
    root = tmp_path / "root"
    extra = ["--stale-after", "4", *storage_url(storage, tmp_path)]
    survivor_pid, out = kill_one_of_two_workers(preset, root, extra)
    sweep = quiet_sweep(preset, root, storage=extra[3] if len(extra) > 2 else None)
    resumed = []
    for point in sweep.points:
        directory = sweep.point_directory(point)
        done = json.loads((directory / DONE_FILE).read_text())
        assert done["epoch"] == 8 and done["stop_reason"] == "epochs" and done["pid"] == survivor_pid
        assert len(list((directory / "runs").iterdir())) == 1  # one run per point: the killed one continued
        assert not (directory / FAILED_FILE).exists()
        if done["resumed_from"] is not None:
            resumed.append(point.id)
            assert "-best-" in done["resumed_from"]
    (killed,) = resumed
    states = states_of(sweep)
    # The killed worker's trial failed as stale and its retry completed; every other point is one trial.
    assert states == {p.id: ["FAIL", "COMPLETE"] if p.id == killed else ["COMPLETE"] for p in sweep.points}
    assert f"point {killed}: resuming from best checkpoint at epoch 4" in out
    assert [sweep.status(point).state for point in sweep.points] == ["done"] * 2
    assert (root / "tiny" / "study.journal").is_file() == (storage == "journal")  # the default storage
    assert sweep.status(next(p for p in sweep.points if p.id == killed)).retries == 1


def test_killed_point_resumes_exactly_from_its_checkpoint(tmp_path: Path) -> None:
    preset = tiny_preset(tmp_path, epochs=12, rates="[0.05]", seeds="[3]")
    root = tmp_path / "root"
    killed = run_dying_sweep(preset, root, "SIGKILL", "--stale-after", "2")
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    sweep = quiet_sweep(preset, root, stale_after=2)
    (point,) = sweep.points
    directory = sweep.point_directory(point)
    (best,) = (directory / "checkpoints").glob("*-best-*.tar")
    assert read_checkpoint(best)["epoch"] == 4
    assert states_of(sweep) == {point.id: ["RUNNING"]}  # the dead worker's trial, until its heartbeat is stale
    status = sweep.status(point)
    assert status.state == "running" and status.detail == "trial 0, epoch 4 validated"
    assert status.best_validation_loss == pytest.approx(read_checkpoint(best)["best"]["validation_loss"])

    assert sweep.run() == 0  # waits for the trial to go stale, then resumes it
    done = json.loads((directory / DONE_FILE).read_text())
    assert done["resumed_from"] == str(best) and done["epoch"] == 12 and done["stop_reason"] == "epochs"
    assert len(list((directory / "runs").iterdir())) == 1  # the same run continued
    assert states_of(sweep) == {point.id: ["FAIL", "COMPLETE"]} and sweep.status(point).state == "done"
    # Exactly the model an uninterrupted run trains.
    straight = train(**point.options, out=str(tmp_path / "straight"))
    resumed = read_checkpoint(done["final_checkpoint"])["model_state_dict"]
    for name, value in read_checkpoint(straight.final_checkpoint)["model_state_dict"].items():
        assert torch.equal(resumed[name], value), name
    assert done["best_validation_loss"] == pytest.approx(straight.best_validation_loss, abs=1e-7)
    # The trial's value is the best validation loss, its intermediate values the validations.
    trial = trials_of(sweep)[point.id][-1]
    assert trial.value == pytest.approx(done["best_validation_loss"])  # type: ignore[attr-defined]
    assert sorted(trial.intermediate_values) == [8, 12]  # type: ignore[attr-defined]


# A worker that, right after its first "best" checkpoint, waits until the file RELEASE exists, then goes on
# training: a fixed place for the test to pause it (SIGSTOP) at.
HANGING_SWEEP = """
import os, sys, time
from qrnn.training import loop
hanging = []
original = loop.ShardTrainer.write_checkpoint
def write_then_hang(self, kind):
    path = original(self, kind)
    if kind == "best" and not hanging:
        hanging.append(True)
        print("hanging", flush=True)
        while not os.path.exists({release!r}):
            time.sleep(0.05)
    return path
loop.ShardTrainer.write_checkpoint = write_then_hang
from qrnn.cli import main
sys.exit(main({arguments!r}))
"""


def folder_snapshot(directory: Path) -> dict[str, tuple[int, int]]:
    return {str(path.relative_to(directory)): (path.stat().st_size, path.stat().st_mtime_ns)
            for path in directory.rglob("*") if path.is_file()}


def test_worker_whose_trial_is_taken_over_stops_and_writes_nothing(tmp_path: Path) -> None:
    preset = tiny_preset(tmp_path, epochs=12, rates="[0.05]", seeds="[3]")
    root = tmp_path / "root"
    release = tmp_path / "release"
    code = HANGING_SWEEP.format(release=str(release),
                                arguments=["sweep", str(preset), "--root", str(root), "--stale-after", "2",
                                           "--pool-size", "1"])
    hanging = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True)
    assert hanging.stdout is not None
    for line in hanging.stdout:
        if line.strip() == "hanging":
            break
    # The worker is paused (as by SIGSTOP, a suspended VM, a long stall): its heartbeats stop. Another worker
    # finds its trial stale, takes the retry and finishes the point from the checkpoint.
    os.kill(hanging.pid, signal.SIGSTOP)
    release.touch()
    sweep = quiet_sweep(preset, root, stale_after=2)
    assert sweep.run() == 0
    (point,) = sweep.points
    directory = sweep.point_directory(point)
    done = json.loads((directory / DONE_FILE).read_text())
    assert done["pid"] == os.getpid() and done["epoch"] == 12 and done["resumed_from"] is not None
    before = folder_snapshot(directory)
    # The paused worker goes on: its trial is no longer its own, so it stops and writes nothing more.
    os.kill(hanging.pid, signal.SIGCONT)
    out, err = hanging.communicate(timeout=60)
    assert hanging.returncode == 0, out + err
    assert "was taken over by another worker" in out and "taken over by other workers" in out
    assert folder_snapshot(directory) == before, out + err
    assert states_of(sweep) == {point.id: ["FAIL", "COMPLETE"]}


def test_live_worker_is_never_taken_over(tmp_path: Path) -> None:
    # Ownership rests on heartbeats in the storage, not on hosts or pids: a second worker (as in another PID
    # namespace on the same host) waits for a live worker's point instead of taking it over.
    preset = tiny_preset(tmp_path, epochs=150, rates="[0.05]", seeds="[3]")
    root = tmp_path / "root"
    first = subprocess.Popen(sweep_command(preset, root, "--stale-after", "20"), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
    sweep = quiet_sweep(preset, root, stale_after=20)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not (sweep.open(create=False) and states_of(sweep)
                                               and next(iter(states_of(sweep).values())) == ["RUNNING"]):
        time.sleep(0.1)
    lines: list[str] = []
    second = Sweep(load_preset(preset), root, stale_after=20, printer=lines.append)
    assert second.run() == 0  # waits while the first worker runs the point, then has nothing left
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, out + err
    assert lines[-1].startswith("sweep tiny: this process finished 0 point(s), 0 failed;")
    (point,) = sweep.points
    assert json.loads((sweep.point_directory(point) / DONE_FILE).read_text())["pid"] == first.pid
    assert states_of(sweep) == {point.id: ["COMPLETE"]} and sweep.status(point).retries == 0


def test_grown_grid_restarted_sweep_and_old_roots(tmp_path: Path) -> None:
    root = tmp_path / "root"
    url = f"sqlite:///{tmp_path / 'study.db'}"
    one = quiet_sweep(tiny_preset(tmp_path, rates="[0.01]", seeds="[1]"), root, storage=url)
    assert one.run() == 0
    (first,) = one.points
    done = (one.point_directory(first) / DONE_FILE).read_text()
    # Restarted after everything finished: nothing trains again, no trial is added.
    lines: list[str] = []
    again = Sweep(load_preset(tiny_preset(tmp_path, rates="[0.01]", seeds="[1]")), root, storage=url,
                  printer=lines.append)
    assert again.run() == 0 and lines == [lines[-1]] and "finished 0 point(s)" in lines[-1]
    assert states_of(again) == {first.id: ["COMPLETE"]}
    # The grid grows: the finished point keeps its id and result; only the new one trains.
    grown = quiet_sweep(tiny_preset(tmp_path, rates="[0.01, 0.1]", seeds="[1]"), root, storage=url)
    assert grown.points[0].id == first.id
    assert grown.run() == 0
    assert states_of(grown) == {point.id: ["COMPLETE"] for point in grown.points}
    assert (one.point_directory(first) / DONE_FILE).read_text() == done
    # A root of the lock-file era (point folders, no study): its done.json files become completed trials, and a
    # stale lock file left there is ignored.
    (one.point_directory(first) / "lock.0").write_text("{}")
    fresh = quiet_sweep(grown.preset.path, root)  # another storage: the default journal, empty
    assert fresh.run() == 0
    assert states_of(fresh) == {point.id: ["COMPLETE"] for point in grown.points}
    assert all(len(list((fresh.point_directory(p) / "runs").iterdir())) == 1 for p in grown.points)
    study = fresh.open(create=False)
    assert all(t.user_attrs["recorded_from"] == DONE_FILE for t in study.get_trials())


def test_signalled_sweep_stops_and_resumes_from_interrupted(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:

    preset = tiny_preset(tmp_path, epochs=8, rates="[0.05]", seeds="[3]")
    sweep = quiet_sweep(preset, tmp_path / "root")
    (point,) = sweep.points
    directory = sweep.point_directory(point)
    terminate_after_best(monkeypatch)
    assert sweep.run() == 128 + signal.SIGTERM
    (interrupted,) = (directory / "checkpoints").glob("*-interrupted-*.tar")
    assert read_checkpoint(interrupted)["epoch"] == 5  # the signal came during epoch 4's validation
    assert sweep.status(point).state == "interrupted" and not (directory / DONE_FILE).exists()
    # Given back at once: failed as interrupted, with a waiting retry (no waiting for a stale heartbeat).
    assert states_of(sweep) == {point.id: ["FAIL", "WAITING"]}
    monkeypatch.undo()
    assert sweep.run() == 0
    done = json.loads((directory / DONE_FILE).read_text())
    assert done["resumed_from"] == str(interrupted) and done["epoch"] == 8
    assert states_of(sweep) == {point.id: ["FAIL", "COMPLETE"]}


def test_failed_points_max_points_and_status(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    import qrnn.training.launch as launch

    preset = tiny_preset(tmp_path)
    root = tmp_path / "root"
    sweep = quiet_sweep(preset, root)
    assert sweep.run(max_points=1) == 0
    states = [sweep.status(point).state for point in sweep.points]
    assert states == ["done", "pending", "pending", "pending"]

    real_run_training = launch.run_training

    def run_failing_at_high_rates(config: object, *args: object, **kwargs: object) -> object:
        if config.learning_rate == 0.1:  # type: ignore[attr-defined]
            raise QRNNError("--learning-rate 0.1 is refused by this test")
        return real_run_training(config, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(launch, "run_training", run_failing_at_high_rates)
    assert sweep.run() == 1  # a point failed in this process
    assert [sweep.status(point).state for point in sweep.points] == ["done", "failed", "done", "failed"]
    failed = json.loads((sweep.point_directory(sweep.points[1]) / FAILED_FILE).read_text())
    assert failed["reason"] == "--learning-rate 0.1 is refused by this test"

    capsys.readouterr()
    assert qrnn_main(["sweep", str(preset), "--root", str(root), "--status"]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0] == (f"sweep tiny in {root / 'tiny'} (journal {root / 'tiny' / 'study.journal'}): 4 points: "
                        "2 done, 0 running, 0 interrupted, 2 failed, 0 pending")
    assert table[1].split() == ["id", "learning_rate", "seed", "state", "best", "val", "loss", "retries", "detail"]
    rows = {row.split()[0]: row.split() for row in table[2:]}
    first, second = sweep.points[0], sweep.points[1]
    done = json.loads((sweep.point_directory(first) / DONE_FILE).read_text())
    assert rows[first.id][:6] == [first.id, "0.01", "1", "done", f"{done['best_validation_loss']:.4g}", "0"]
    assert rows[second.id][:6] == [second.id, "0.1", "1", "failed", "-", "0"]
    assert " ".join(rows[second.id][6:]) == failed["reason"]

    # Failed points are skipped by a restarted sweep, and run again with --retry-failed.
    monkeypatch.setattr(launch, "run_training", real_run_training)
    assert sweep.run() == 0 and sweep.status(sweep.points[1]).state == "failed"
    assert sweep.run(retry_failed=True) == 0
    assert [sweep.status(point).state for point in sweep.points] == ["done"] * 4
    assert sweep.status(sweep.points[1]).retries == 1
    assert not (sweep.point_directory(sweep.points[1]) / FAILED_FILE).exists()


def test_pool_keys() -> None:
    points = expand(load_preset("experiment-1-optimizer"))
    by_optimizer = {}
    for point in points:
        by_optimizer.setdefault(point.options["optimizer"], set()).add(pool_key(point.options))
    # Seeds and learning rates share a pool; optimizer kinds do not; no two L-BFGS points share one.
    assert all(len(keys) == 1 for name, keys in by_optimizer.items() if name != "lbfgs")
    assert len({key for name, keys in by_optimizer.items() if name != "lbfgs" for key in keys}) == 3
    assert len(by_optimizer["lbfgs"]) == sum(p.options["optimizer"] == "lbfgs" for p in points)


def test_sweep_command_errors_are_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert qrnn_main(["sweep", "no-such-preset", "--root", str(tmp_path)]) == 2
    assert capsys.readouterr().err.startswith("qrnn: error: unknown preset 'no-such-preset'")
    preset = tiny_preset(tmp_path)
    assert qrnn_main(["sweep", str(preset), "--root", str(tmp_path), "--max-points", "0"]) == 2
    assert capsys.readouterr().err == "qrnn: error: --max-points must be an integer >= 1, got 0\n"
    assert qrnn_main(["sweep", str(preset), "--root", str(tmp_path), "--stale-after", "1"]) == 2
    assert "--stale-after must be a number of seconds >= 2" in capsys.readouterr().err
    assert qrnn_main(["sweep", str(preset), "--root", str(tmp_path), "--pool-size", "0"]) == 2
    assert "--pool-size must be an integer >= 1" in capsys.readouterr().err
    assert qrnn_main(["sweep", str(preset), "--root", str(tmp_path), "--storage", "nowhere"]) == 2
    assert capsys.readouterr().err.startswith("qrnn: error: --storage 'nowhere' is no storage: give a database URL")
    assert qrnn_main(["sweep", str(preset), "--root", str(tmp_path), "--storage",
                      f"sqlite:///{tmp_path}/missing/x.db"]) == 2
    assert "the folder" in capsys.readouterr().err
    assert not (tmp_path / "tiny").exists()  # nothing started


def postgres_programs() -> Path | None:
    """The folder of PostgreSQL's server programs (initdb, pg_ctl): on PATH, or Debian's versioned folder."""
    import glob
    import shutil

    found = shutil.which("initdb")
    if found:
        return Path(found).parent
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(versions[-1]).parent if versions else None


@pytest.fixture
def postgres_url() -> object:
    """A PostgreSQL server of its own for one test (a throwaway cluster on a Unix socket in a temporary folder),
    and its URL; the test is skipped where no server programs or no psycopg driver are installed."""
    import shutil
    import tempfile

    programs = postgres_programs()
    if programs is None:
        pytest.skip("no PostgreSQL server programs (initdb, pg_ctl): apt-get install postgresql")
    pytest.importorskip("psycopg", reason="no psycopg driver: pip install 'psycopg[binary]'")
    folder = Path(tempfile.mkdtemp(prefix="qrnn-postgres-"))
    # The server refuses to run as root: as root, run it as the postgres user, owning the folder.
    as_user: list[str] = []
    if os.geteuid() == 0:
        import pwd

        user = pwd.getpwnam("postgres")
        os.chown(folder, user.pw_uid, user.pw_gid)
        as_user = ["runuser", "-u", "postgres", "--"]
    port = str(50000 + os.getpid() % 10000)  # names the socket file only: no TCP
    subprocess.run([*as_user, str(programs / "initdb"), "-D", str(folder / "data"), "-A", "trust", "-U", "postgres",
                    "-N"], check=True, capture_output=True)
    subprocess.run([*as_user, str(programs / "pg_ctl"), "-D", str(folder / "data"), "-l", str(folder / "log"),
                    "-o", f"-k {folder} -c listen_addresses= -p {port} -F", "-w", "start"], check=True,
                   capture_output=True)
    try:
        yield f"postgresql+psycopg://postgres@/postgres?host={folder}&port={port}"
    finally:
        subprocess.run([*as_user, str(programs / "pg_ctl"), "-D", str(folder / "data"), "-m", "immediate", "stop"],
                       capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


def test_survivor_finishes_a_killed_workers_point_on_postgresql(tmp_path: Path, postgres_url: str) -> None:
    # The SIGKILL case on a real PostgreSQL server, the storage of a cluster with a database.
    preset = tiny_preset(tmp_path, epochs=8, rates="[0.05]", seeds="[1, 2]")
    root = tmp_path / "root"
    extra = ["--stale-after", "4", "--storage", postgres_url]
    survivor_pid, out = kill_one_of_two_workers(preset, root, extra)
    sweep = quiet_sweep(preset, root, storage=postgres_url)
    dones = [json.loads((sweep.point_directory(point) / DONE_FILE).read_text()) for point in sweep.points]
    assert all(done["epoch"] == 8 and done["pid"] == survivor_pid for done in dones)
    assert sum(done["resumed_from"] is not None for done in dones) == 1
    assert sorted(states_of(sweep).values()) == [["COMPLETE"], ["FAIL", "COMPLETE"]]
    assert all(len(list((sweep.point_directory(p) / "runs").iterdir())) == 1 for p in sweep.points)


def test_pooled_sweep_gives_every_point_its_separate_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The same grid with --pool-size 4 (its four points as one pool) and --pool-size 1 (one by one): every point
    # ends with the same best validation loss and the same final parameters, bit for bit; SIGTERM mid-pool
    # hands every point back, and the rerun resumes each from its own checkpoint.
    preset = tiny_preset(tmp_path, epochs=12)
    pooled, alone = (quiet_sweep(preset, tmp_path / name, pool_size=size) for name, size in (("p", 4), ("a", 1)))
    terminate_after_best(monkeypatch, at_epoch=8)
    assert pooled.run() == 128 + signal.SIGTERM
    monkeypatch.undo()
    assert all(state == ["FAIL", "WAITING"] for state in states_of(pooled).values())
    assert pooled.run() == 0 and alone.run() == 0
    for point in pooled.points:
        mine = json.loads((pooled.point_directory(point) / DONE_FILE).read_text())
        theirs = json.loads((alone.point_directory(point) / DONE_FILE).read_text())
        assert mine["resumed_from"] is not None and theirs["resumed_from"] is None
        assert mine["best_validation_loss"] == theirs["best_validation_loss"] and mine["epoch"] == 12
        left = read_checkpoint(mine["final_checkpoint"])["model_state_dict"]
        right = read_checkpoint(theirs["final_checkpoint"])["model_state_dict"]
        assert all(torch.equal(left[name], right[name]) for name in left)


def test_workers_opening_a_fresh_postgresql_database_at_once_all_get_the_storage(tmp_path: Path,
                                                                                 postgres_url: str) -> None:
    # Worker processes started together on an empty database race to create Optuna's tables; PostgreSQL tells
    # the losers that a relation already exists. Every worker must still get the storage (this failed CI once).
    code = ("import sys, time; from pathlib import Path; from qrnn.sweep import open_storage; "
            "time.sleep(max(0.0, float(sys.argv[2]) - time.time())); "
            "open_storage(sys.argv[1], Path('unused.log'), stale_after=60)")
    start_at = time.time() + 8  # past every process's imports, so that they open the storage together
    workers = [subprocess.Popen([sys.executable, "-c", code, postgres_url, str(start_at)], cwd=tmp_path,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(6)]
    failures = [err for worker in workers for _out, err in [worker.communicate(timeout=120)]
                if worker.returncode != 0]
    assert failures == [], failures[0]
