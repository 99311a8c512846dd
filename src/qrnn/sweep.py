"""Sweeps: every point of a preset's grid (seeds x hyperparameters), trained one after another, by as many
processes as like, on one machine or on many sharing a filesystem (a cluster's array job).

Layout: `<root>/<preset>/<point id>/` per point, the point id being a short hash of the point's full training
options (so it is stable: a restarted sweep, or one whose grid gained values, finds its finished points again).
Each point folder is the run's `--out` (its `runs/` and `checkpoints/`) and holds the sweep's bookkeeping:
- `point.json`: the point's options;
- `lock.<generation>`: the claim of the process running it, created with O_CREAT|O_EXCL (exactly one process
  wins), holding host, pid and start time; its mtime is the heartbeat, touched while the point runs. A lock is
  stale when its process is gone (same host) or its heartbeat is older than `stale_after` seconds (any host); a
  stale lock is taken over by creating the next generation's file, again with O_EXCL, so that of several
  processes finding the same stale lock exactly one takes it over;
- `done.json`: the result summary (best validation loss, checkpoints, ...), written when the run finished;
- `failed.json`: the one-line reason a point failed (skipped by later sweeps unless `--retry-failed`).
A claimed point with checkpoints is resumed from the latest one ("interrupted" or "best"), so a sweep killed or
pre-empted mid-point continues where it stopped. Nothing here imports torch until a point runs.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO

from qrnn.errors import QRNNError
from qrnn.files import write_atomically
from qrnn.presets import Preset, check_points, load_preset

DEFAULT_ROOT = "runs/sweeps"
# A lock whose heartbeat is older than this is stale; heartbeats come every tenth of it.
DEFAULT_STALE_AFTER = 600.0
HEARTBEATS_PER_TIMEOUT = 10
POINT_FILE = "point.json"
DONE_FILE = "done.json"
FAILED_FILE = "failed.json"
LOCK_PREFIX = "lock."
ID_LENGTH = 12

# Point states, as `--status` shows them.
DONE, FAILED, RUNNING, INTERRUPTED, PENDING = "done", "failed", "running", "interrupted", "pending"


@dataclass(frozen=True)
class SweepPoint:
    """One point of a sweep: its id, its full training options (without `out`), and the values of the options
    that vary over the grid."""

    id: str
    options: dict[str, Any]
    varying: dict[str, Any]

    def label(self) -> str:
        """The varying values as `name=value, ...` (for messages)."""
        return ", ".join(f"{name}={value}" for name, value in self.varying.items()) or "(the only point)"


@dataclass
class PointStatus:
    """What `--status` shows for a point: its state, a detail (lock holder, failure reason, stop reason) and the
    best validation loss so far (None if unknown)."""

    point: SweepPoint
    state: str
    detail: str
    best_validation_loss: float | None


# Training options added after sweeps first wrote their point ids. At its default such an option is left out of
# the id, so that the points of a sweep started with an older qrnn keep their ids.
LATER_OPTIONS = ("gradient_clip",)


def point_id(options: dict[str, Any]) -> str:
    """A stable id of a full option set: the first hex digits of the SHA-256 of its canonical JSON (the
    `LATER_OPTIONS` left out while at their default)."""
    from qrnn.training.config import TrainConfig

    defaults = TrainConfig()
    hashed = {
        name: value
        for name, value in options.items()
        if not (name in LATER_OPTIONS and value == getattr(defaults, name))
    }
    canonical = json.dumps(hashed, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()[:ID_LENGTH]


def expand(preset: Preset) -> list[SweepPoint]:
    """The preset's grid as points: every option filled in (defaults included, `out` left out, as the sweep
    chooses it), in the order of `Preset.grid`."""
    from qrnn.training.config import make_config

    varying = preset.varying()
    points = []
    for options in preset.grid():
        full = make_config(options).as_dict()
        del full["out"]
        points.append(SweepPoint(point_id(full), full, {name: options[name] for name in varying}))
    return points


# ---- files ----


def _json_writer(payload: dict[str, Any]) -> Callable[[BinaryIO], None]:
    def write(stream: BinaryIO) -> None:
        stream.write((json.dumps(payload, indent=2, sort_keys=True) + "\n").encode())

    return write


def _write_json_atomically(path: Path, payload: dict[str, Any]) -> None:
    """Replace `path` with `payload` as JSON, so that readers see the old or the new file, never a part."""
    write_atomically(path, _json_writer(payload))


def _publish_once(path: Path, payload: dict[str, Any]) -> bool:
    """Create `path` with `payload` unless it exists (complete content or nothing); False if it existed."""
    return write_atomically(path, _json_writer(payload), exclusive=True)


def read_json(path: Path) -> dict[str, Any] | None:
    """A JSON file's contents, or None if it is missing, partly written or not JSON."""
    try:
        with open(path) as stream:
            value = json.load(stream)
    except (OSError, ValueError):
        return None
    return value if isinstance(value, dict) else None


# ---- locks ----


def _pid_alive(pid: int) -> bool:
    """Whether process `pid` exists on this host and is not a zombie (a killed child its parent has not reaped)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    try:
        with open(f"/proc/{pid}/stat") as stream:
            # The state follows the parenthesised command name, which may itself contain spaces or parentheses.
            return stream.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return True


def _generation(path: Path) -> int:
    suffix = path.name[len(LOCK_PREFIX) :]
    return int(suffix) if suffix.isdigit() else -1


def _locks(directory: Path) -> list[Path]:
    """The point's lock files, oldest generation first."""
    found = [path for path in directory.glob(f"{LOCK_PREFIX}*") if _generation(path) >= 0]
    return sorted(found, key=_generation)


@dataclass
class LockInfo:
    """A lock file as read: who holds it (None where the file is being written), and its heartbeat age."""

    path: Path
    holder: dict[str, Any] | None
    age: float

    def describe(self) -> str:
        """`host:pid` of the holder."""
        if self.holder is None:
            return "being claimed"
        return f"{self.holder.get('host')}:{self.holder.get('pid')}"


def _read_lock(path: Path) -> LockInfo | None:
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return None
    return LockInfo(path, read_json(path), age)


def _is_stale(lock: LockInfo, stale_after: float) -> bool:
    """A lock is stale when its heartbeat is older than `stale_after`, or when it was taken on this host by a
    process that is gone. A lock still being written (no holder yet) is live until it is that old."""
    if lock.age > stale_after:
        return True
    holder = lock.holder
    if holder is not None and holder.get("host") == socket.gethostname():
        pid = holder.get("pid")
        return isinstance(pid, int) and not _pid_alive(pid)
    return False


class Claim:
    """This process's claim on a point: the lock file it created, with a heartbeat thread touching it."""

    def __init__(self, path: Path, stale_after: float) -> None:
        self.path = path
        self._stop = threading.Event()
        interval = max(stale_after / HEARTBEATS_PER_TIMEOUT, 0.01)
        self._thread = threading.Thread(target=self._beat, args=(interval,), name=f"heartbeat {path}", daemon=True)
        self._thread.start()

    def _beat(self, interval: float) -> None:
        while not self._stop.wait(interval):
            try:
                os.utime(self.path)
            except FileNotFoundError:
                return  # released (or removed by hand): nothing left to keep alive

    def still_owned(self) -> bool:
        """False if another process took the point over (a newer lock generation exists)."""
        return all(_generation(lock) <= _generation(self.path) for lock in _locks(self.path.parent))

    def release(self, everything: bool = False) -> None:
        """Stop the heartbeat and remove this lock (with `everything`, the older generations too: the point is
        finished, no claim on it matters any more)."""
        self._stop.set()
        self._thread.join()
        for lock in _locks(self.path.parent):
            if lock == self.path or (everything and _generation(lock) < _generation(self.path)):
                lock.unlink(missing_ok=True)


def try_claim(directory: Path, stale_after: float = DEFAULT_STALE_AFTER) -> Claim | None:
    """Claim the point in `directory`: create the first lock, or take over a stale one by creating the next
    generation; None if a live process holds it or another process won the race."""
    directory.mkdir(parents=True, exist_ok=True)
    locks = _locks(directory)
    generation = 0
    if locks:
        newest = _read_lock(locks[-1])
        if newest is not None and not _is_stale(newest, stale_after):
            return None
        generation = _generation(locks[-1]) + 1
    path = directory / f"{LOCK_PREFIX}{generation}"
    try:
        descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return None
    holder = {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "generation": generation,
    }
    with os.fdopen(descriptor, "w") as stream:
        json.dump(holder, stream)
        stream.flush()
        os.fsync(stream.fileno())
    return Claim(path, stale_after)


# ---- checkpoints of a point ----


def _checkpoints(directory: Path) -> list[dict[str, Any]]:
    """The readable checkpoints of a point: path, kind, epoch and best validation loss of each."""
    from qrnn.training.checkpoint import SUFFIX, read_checkpoint

    found = []
    for path in sorted((directory / "checkpoints").glob(f"checkpoint-*{SUFFIX}")):
        try:
            payload = read_checkpoint(path)
        except QRNNError:
            continue  # unreadable: a foreign or damaged file is no state to resume from
        found.append(
            {
                "path": path,
                "kind": payload["kind"],
                "epoch": int(payload["epoch"]),
                "best_validation_loss": payload["best"]["validation_loss"],
                "best_character_error_rate": payload["best"]["character_error_rate"],
                "last_validation_loss": (payload["last_validation"] or {}).get("loss"),
                "best_checkpoint": payload["best_checkpoint"],
                "log_dir": str(Path(directory) / "runs" / payload["run"]["name"]),
            }
        )
    return found


def _latest(checkpoints: list[dict[str, Any]], kinds: tuple[str, ...]) -> dict[str, Any] | None:
    """The checkpoint of one of `kinds` with the most epochs (an "interrupted" one wins a tie with a "best")."""
    chosen = [c for c in checkpoints if c["kind"] in kinds]
    return max(chosen, key=lambda c: (c["epoch"], c["kind"] == "interrupted"), default=None)


# ---- the sweep ----


class Sweep:
    """The points of `preset` under `<root>/<preset name>`: their status, and running them (see the module
    docstring)."""

    def __init__(
        self,
        preset: Preset,
        root: str | os.PathLike[str] = DEFAULT_ROOT,
        stale_after: float = DEFAULT_STALE_AFTER,
        printer: Callable[[str], None] | None = None,
    ) -> None:
        if not stale_after > 0:
            raise QRNNError(f"--stale-after must be a number of seconds > 0, got {stale_after!r}")
        self.preset = preset
        self.directory = Path(root).resolve() / preset.name
        self.stale_after = stale_after
        self.points = expand(preset)
        self._print = printer or (lambda line: print(line, flush=True))

    def point_directory(self, point: SweepPoint) -> Path:
        """Where `point` runs and keeps its bookkeeping."""
        return self.directory / point.id

    # ---- status ----

    def status(self, point: SweepPoint) -> PointStatus:
        """The state of `point` as the files say (done, failed, running, interrupted, pending)."""
        directory = self.point_directory(point)
        done = read_json(directory / DONE_FILE)
        if done is not None:
            return PointStatus(point, DONE, str(done.get("stop_reason", "")), done.get("best_validation_loss"))
        failed = read_json(directory / FAILED_FILE)
        if failed is not None:
            return PointStatus(point, FAILED, str(failed.get("reason", "")), None)
        if not directory.is_dir():
            return PointStatus(point, PENDING, "", None)
        checkpoints = _checkpoints(directory)
        best = _latest(checkpoints, ("best", "interrupted", "final"))
        loss = best["best_validation_loss"] if best is not None else None
        locks = _locks(directory)
        lock = _read_lock(locks[-1]) if locks else None
        if lock is not None and not _is_stale(lock, self.stale_after):
            epoch = f", epoch {best['epoch']} checkpointed" if best is not None else ""
            return PointStatus(point, RUNNING, f"{lock.describe()}{epoch}", loss)
        if best is not None:
            return PointStatus(point, INTERRUPTED, f"resumes from epoch {best['epoch']}", loss)
        if lock is not None:
            return PointStatus(point, INTERRUPTED, f"stale lock of {lock.describe()}, no checkpoint", None)
        return PointStatus(point, PENDING, "", None)

    def status_table(self) -> str:
        """The `--status` table: one line per point (id, varying options, state, best validation loss), then
        the counts per state."""
        statuses = [self.status(point) for point in self.points]
        names = self.preset.varying()
        header = ["id", *names, "state", "best val loss", "detail"]
        rows = []
        for status in statuses:
            loss = "-" if status.best_validation_loss is None else f"{status.best_validation_loss:.4g}"
            values = [format_value(status.point.varying[name]) for name in names]
            rows.append([status.point.id, *values, status.state, loss, status.detail])
        widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
        lines = [
            "  ".join([*(cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)), row[-1]]).rstrip()
            for row in [header, *rows]
        ]
        counts = {state: sum(s.state == state for s in statuses) for state in (DONE, RUNNING, INTERRUPTED, FAILED,
                                                                                 PENDING)}
        total = ", ".join(f"{count} {state}" for state, count in counts.items())
        lines.insert(0, f"sweep {self.preset.name} in {self.directory}: {len(statuses)} points: {total}")
        known = {point.id for point in self.points}
        strays = [p.name for p in self.directory.glob("*") if p.is_dir() and p.name not in known]
        if strays:
            lines.append(f"{len(strays)} point folder(s) not in the current grid (the preset changed?): "
                         f"{', '.join(sorted(strays)[:5])}{' ...' if len(strays) > 5 else ''}")
        return "\n".join(lines)

    # ---- running ----

    def run(self, max_points: int | None = None, retry_failed: bool = False) -> int:
        """Run the points nobody has finished or is running, one after another, until all are taken or
        `max_points` ran here. Returns the exit code: 0, 1 if a point failed here, 128 + signal number if a
        signal stopped the sweep (the point it interrupted resumes in the next sweep)."""
        if max_points is not None and (not isinstance(max_points, int) or max_points < 1):
            raise QRNNError(f"--max-points must be an integer >= 1, got {max_points!r}")
        check_points(self.preset)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise QRNNError(f"cannot create the sweep folder {self.directory}: {error.strerror}") from None
        counts = {DONE: 0, FAILED: 0}
        with _BetweenPointsSignals() as signals:
            for index, point in enumerate(self.points, start=1):
                if max_points is not None and counts[DONE] + counts[FAILED] >= max_points:
                    break
                if signals.received is not None:
                    break
                directory = self.point_directory(point)
                if (directory / DONE_FILE).exists() or ((directory / FAILED_FILE).exists() and not retry_failed):
                    continue
                claim = try_claim(directory, self.stale_after)
                if claim is None:
                    continue
                # Another process may have finished the point between the check above and the claim.
                if (directory / DONE_FILE).exists() or ((directory / FAILED_FILE).exists() and not retry_failed):
                    claim.release()
                    continue
                self._print(f"sweep {self.preset.name}: point {point.id} ({point.label()}) "
                            f"[{index}/{len(self.points)}] in {directory}")
                outcome, signum = self._run_point(point, claim)
                if outcome == INTERRUPTED:
                    self._print(f"sweep {self.preset.name}: stopped by a signal; point {point.id} resumes in the "
                                "next sweep")
                    return 128 + signum
                counts[outcome] += 1
            if signals.received is not None:
                self._print(f"sweep {self.preset.name}: stopped by a signal between points")
                return 128 + signals.received
        self._print(f"sweep {self.preset.name}: this process finished {counts[DONE]} point(s), "
                    f"{counts[FAILED]} failed; `qrnn sweep {_command_name(self.preset)} --status` shows all")
        return 1 if counts[FAILED] else 0

    def _run_point(self, point: SweepPoint, claim: Claim) -> tuple[str, int]:
        """Train (or resume) `point` under `claim`; mark it done or failed. Returns (outcome, signal number)."""
        from qrnn.training.config import make_config
        from qrnn.training.launch import RESUME_CHANGEABLE, resume, train

        directory = self.point_directory(point)
        _write_json_atomically(
            directory / POINT_FILE,
            {"preset": self.preset.name, "id": point.id, "varying": point.varying, "options": point.options},
        )
        (directory / FAILED_FILE).unlink(missing_ok=True)
        started = time.monotonic()
        resumed_from: str | None = None
        try:
            config = make_config(point.options)
            checkpoints = _checkpoints(directory)
            final = _latest(checkpoints, ("final",))
            latest = _latest(checkpoints, ("interrupted", "best"))
            if final is None and latest is not None and latest["epoch"] >= config.epochs:
                final = latest  # stopped by a signal during its last epoch: nothing left to train
            if final is not None:
                self._print(f"point {point.id} had finished training (checkpoint {final['path']}); recording it")
                summary = _summary_from_checkpoint(final, config.epochs, config.stop_at_loss)
            else:
                if latest is not None:
                    resumed_from = str(latest["path"])
                    self._print(f"point {point.id}: resuming from {latest['kind']} checkpoint at epoch "
                                f"{latest['epoch']}")
                    # The point's own values of what a resume may change: a checkpoint written under other
                    # values (a --timeout, say) must not carry them on.
                    changeable = {name: getattr(config, name) for name in RESUME_CHANGEABLE}
                    result = resume(latest["path"], **changeable)
                else:
                    result = train(**point.options, out=str(directory))
                if result.stop_reason == "signal":
                    claim.release()
                    return INTERRUPTED, result.exit_code - 128
                summary = {
                    "stop_reason": result.stop_reason,
                    "epoch": result.epoch,
                    "best_validation_loss": result.best_validation_loss,
                    "best_character_error_rate": result.best_character_error_rate,
                    "last_validation_loss": result.last_validation_loss,
                    "best_checkpoint": result.best_checkpoint,
                    "final_checkpoint": result.final_checkpoint,
                    "log_dir": result.log_dir,
                }
        except QRNNError as error:
            return self._fail(point, claim, str(error)), 0
        except Exception as error:  # a bug or a resource problem in one point must not stop the whole sweep
            first_line = (str(error).strip().splitlines() or [""])[0]
            return self._fail(point, claim, f"{type(error).__name__}: {first_line}"), 0
        summary.update(
            preset=self.preset.name,
            id=point.id,
            varying=point.varying,
            resumed_from=resumed_from,
            host=socket.gethostname(),
            pid=os.getpid(),
            seconds=round(time.monotonic() - started, 3),
            finished=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )
        if not claim.still_owned():
            self._print(f"point {point.id}: another process took this point over (our heartbeat looked stale); "
                        "the first to finish records it")
        if not _publish_once(directory / DONE_FILE, summary):
            self._print(f"point {point.id}: already recorded as done by another process")
        claim.release(everything=True)
        loss = summary["best_validation_loss"]
        self._print(f"point {point.id} done: {summary['stop_reason']} at epoch {summary['epoch']}, best validation "
                    f"loss {'-' if loss is None else f'{loss:.4g}'}")
        return DONE, 0

    def _fail(self, point: SweepPoint, claim: Claim, reason: str) -> str:
        reason = " ".join(reason.split())
        _write_json_atomically(
            self.point_directory(point) / FAILED_FILE,
            {
                "preset": self.preset.name,
                "id": point.id,
                "varying": point.varying,
                "reason": reason,
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "failed": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            },
        )
        claim.release(everything=True)
        self._print(f"point {point.id} failed: {reason}")
        return FAILED


def _summary_from_checkpoint(checkpoint: dict[str, Any], epochs: int, stop_at_loss: float | None) -> dict[str, Any]:
    """The result summary of a run that finished training but was not recorded (killed right after)."""
    last = checkpoint["last_validation_loss"]
    if checkpoint["epoch"] >= epochs:
        reason = "epochs"
    elif stop_at_loss is not None and last is not None and last < stop_at_loss:
        reason = "stop-at-loss"
    else:
        reason = "final checkpoint"
    best = checkpoint["best_checkpoint"]
    return {
        "stop_reason": reason,
        "epoch": checkpoint["epoch"],
        "best_validation_loss": checkpoint["best_validation_loss"],
        "best_character_error_rate": checkpoint["best_character_error_rate"],
        "last_validation_loss": last,
        "best_checkpoint": str(Path(checkpoint["path"]).parent / best) if best else None,
        "final_checkpoint": str(checkpoint["path"]),
        "log_dir": checkpoint["log_dir"],
    }


def format_value(value: Any) -> str:
    """An option value as sweep tables and figures show it (floats in %g form)."""
    return f"{value:g}" if isinstance(value, float) else str(value)


def _command_name(preset: Preset) -> str:
    """How to name `preset` on the command line: a shipped one by name, any other by its path."""
    from qrnn.presets import PRESET_DIRECTORY

    return preset.name if preset.path.resolve().parent == PRESET_DIRECTORY else str(preset.path)


class _BetweenPointsSignals:
    """Notes SIGINT/SIGTERM that arrive between points, so the sweep stops before claiming another one (during
    a point the training's own handlers take over and end the run with an "interrupted" checkpoint)."""

    HANDLED = (signal.SIGINT, signal.SIGTERM)

    def __init__(self) -> None:
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, _frame: object) -> None:
        self.received = signum

    def __enter__(self) -> _BetweenPointsSignals:
        if threading.current_thread() is threading.main_thread():
            for signum in self.HANDLED:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *_exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def run_sweep(
    preset: str | os.PathLike[str],
    root: str | os.PathLike[str] = DEFAULT_ROOT,
    max_points: int | None = None,
    retry_failed: bool = False,
    stale_after: float = DEFAULT_STALE_AFTER,
) -> int:
    """Run the sweep of `preset` (a shipped preset's name or a .toml path) under `root`; the exit code (see
    `Sweep.run`)."""
    return Sweep(load_preset(preset), root, stale_after).run(max_points=max_points, retry_failed=retry_failed)


# ---- command line ----


def register(subparsers: Any) -> None:
    """Add the `sweep` subcommand."""
    parser = subparsers.add_parser(
        "sweep",
        help="run every point of a preset's grid (seeds x hyperparameters); many processes may share it",
        description="Run a preset's sweep: every point (one seed and one value of each swept option) trains under "
        "<root>/<preset>/<point id>/. Start as many copies as you like, on this machine or on others sharing "
        "the folder (e.g. a SLURM array job, see examples/): each point is claimed by one process, finished "
        "points are skipped, interrupted ones resume from their latest checkpoint.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("preset", metavar="PRESET", help="a preset name (`qrnn presets` lists them) or a .toml file")
    parser.add_argument("--root", default=DEFAULT_ROOT, metavar="DIR",
                        help="folder holding the sweeps (shared between the machines of a cluster)")
    parser.add_argument("--status", action="store_true",
                        help="show the points (id, varying options, state, best validation loss) and exit")
    parser.add_argument("--max-points", type=int, default=None, metavar="N",
                        help="run at most N points in this process (None: until none is left)")
    parser.add_argument("--retry-failed", action="store_true", help="run failed points again")
    parser.add_argument("--stale-after", type=float, default=DEFAULT_STALE_AFTER, metavar="SEC",
                        help="a point whose lock has had no heartbeat for this long is taken over (its process "
                        "is presumed dead; on the same host a dead process is noticed at once)")
    parser.set_defaults(func=command_sweep)


def command_sweep(args: argparse.Namespace) -> int:
    """`qrnn sweep PRESET`: run the sweep, or with --status show it."""
    sweep = Sweep(load_preset(args.preset), args.root, args.stale_after)
    if args.status:
        print(sweep.status_table())
        return 0
    return sweep.run(max_points=args.max_points, retry_failed=args.retry_failed)

