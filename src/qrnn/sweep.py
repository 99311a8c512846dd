"""Sweeps on Optuna: every point of a preset's grid (seeds x hyperparameters) is a trial of an Optuna study, and
as many worker processes as you like, on one machine or on many, share the study through its storage.

Storage: `--storage URL`, any Optuna storage (`sqlite:///PATH`, `postgresql://...`, `mysql://...`) or a journal file
(`journal:PATH`, or a path ending in `.journal` or `.log`); default: the journal file `<root>/<preset>/study.journal`
(Optuna's journal file is made for shared filesystems, with its own lock; SQLite locks badly on NFS).

Points and folders: `<root>/<preset>/<point id>/` per point, the point id being a short hash of the point's full
training options (stable: a restarted sweep, or one whose grid gained values, finds its finished points again).
Each grid point is queued once as a WAITING trial with the user attribute `point_id` (idempotent: a point with
a trial is not queued again). Each point folder is the run's `--out` (its `runs/` and `checkpoints/`) and holds
- `point.json`: the point's options;
- `done.json`: the result summary (best validation loss, checkpoints, ...), written when the run finished; the
  trial completes with the best validation loss;
- `failed.json`: the one-line reason a point failed (the trial fails with the user attribute `failed`; skipped
  by later sweeps unless `--retry-failed`), and where training diverged, the epoch (`non_finite_at_epoch`).
A folder with `done.json` but no finished trial (a sweep of qrnn's earlier lock-file era, or a worker killed
between the two writes) is recorded as a completed trial without training.

Workers: a worker takes a WAITING trial atomically through the storage (exactly one worker wins it), records
Optuna heartbeats while it trains, and reports every validation loss as an intermediate value. A trial whose
heartbeat is older than `--stale-after` seconds is failed by the next worker that looks (Optuna's
`fail_stale_trials`) and queued again (Optuna's retry callback); the worker that takes the retry resumes the point
from its newest checkpoint ("interrupted" or "best") in the same folder. Workers keep going while any trial is
waiting or running (a running one may go stale), so survivors finish a dead peer's points. A worker whose trial
is no longer RUNNING in the storage (taken over), or whose point another trial ran first, stops that run at once
and writes nothing more into the folder; ownership rests on the storage's trial states only, never on hosts or
process ids. Nothing here imports torch or Optuna until a sweep runs.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, BinaryIO

from qrnn.errors import NonFiniteFault, QRNNError
from qrnn.files import write_atomically
from qrnn.presets import Preset, check_points, load_preset

DEFAULT_ROOT = "runs/sweeps"
# A trial whose heartbeat is older than this (seconds) is stale: failed and queued again.
DEFAULT_STALE_AFTER = 600.0
POINT_FILE = "point.json"
DONE_FILE = "done.json"
FAILED_FILE = "failed.json"
# failed.json's key for the epoch whose step left a non-finite loss, gradient or parameter.
NON_FINITE_AT = "non_finite_at_epoch"
ID_LENGTH = 12

# Point states, as `--status` shows them (and a trial's WAITING state), and outcomes of a worker's training.
DONE, FAILED, RUNNING, INTERRUPTED, PENDING = "done", "failed", "running", "interrupted", "pending"
WAITING, PRUNED, LOST = "waiting", "pruned", "lost"


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
    """What `--status` shows for a point: its state, a detail (running trial, failure reason, stop reason), the
    best validation loss so far (None if unknown) and how many earlier attempts ended (stale, interrupted,
    failed)."""

    point: SweepPoint
    state: str
    detail: str
    best_validation_loss: float | None
    retries: int = 0


# Training options added after sweeps first wrote their point ids. At its default such an option is left out of
# the id, so that the points of a sweep started with an older qrnn keep their ids.
LATER_OPTIONS = ("gradient_clip", "layers", "baseline_init", "stop_at_training_loss")


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


# ---- storages ----

# The default storage: a journal file in the sweep's folder (see `open_storage`).
DEFAULT_STORAGE_FILE = "study.journal"
JOURNAL_PREFIX = "journal:"
JOURNAL_SUFFIXES = (".journal", ".log")
# Where a journal file's trials keep their heartbeat (the writer's clock, seconds since the epoch).
HEARTBEAT_ATTR = "qrnn:heartbeat"
# Trial user attributes: the point (folder) a trial trains, and why a trial failed.
POINT_ATTR = "point_id"
FAILED_ATTR = "failed"
DUPLICATE_ATTR = "duplicate_of"
INTERRUPTED_ATTR = "interrupted"
# A worker checks at least this often (seconds) whether its trials are still its own.
OWNERSHIP_CHECK_EVERY = 5.0


def heartbeat_settings(stale_after: float) -> tuple[int, int]:
    """(heartbeat interval, grace period) in whole seconds, as Optuna's storages take them: a trial whose last
    heartbeat is older than `stale_after` is stale; heartbeats come about five times within it."""
    grace = max(1, math.ceil(stale_after))
    return max(1, grace // 5), grace


def _retry_callback() -> Callable[[Any, Any], None]:
    """Optuna's callback that queues a stale trial again (a WAITING copy: same params and user attributes, and
    the retry history), under its name in the installed Optuna; the copy leaves the stale heartbeat behind, so
    that it does not look stale itself once a worker takes it."""
    import copy

    import optuna

    retry_class = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)
    if retry_class is None:  # Optuna < 4.9
        retry_class = optuna.storages.RetryFailedTrialCallback
    retry = retry_class(max_retry=None)

    def queue_again(study: Any, trial: Any) -> None:
        trial = copy.deepcopy(trial)
        trial.system_attrs.pop(HEARTBEAT_ATTR, None)
        retry(study, trial)

    return queue_again


def _journal_storage_class() -> type:
    """A JournalStorage with heartbeats: Optuna's journal has none, so a trial's heartbeat is a system attribute
    (the writer's clock) and a trial is stale when it is older than the grace period on the reader's clock (the
    nodes' clocks must agree to well within `--stale-after`, as NTP keeps them). With it, Optuna's own
    `fail_stale_trials` and retry callback work on the journal as on a database."""
    from optuna.storages import JournalStorage
    from optuna.storages._heartbeat import BaseHeartbeat
    from optuna.trial import TrialState

    class HeartbeatJournalStorage(JournalStorage, BaseHeartbeat):
        def __init__(self, backend: Any, interval: int, grace: int, callback: Callable[[Any, Any], None]) -> None:
            super().__init__(backend)
            self.heartbeat_interval = interval
            self.grace_period = grace
            self.heartbeat_stale_trial_callback = callback

        def record_heartbeat(self, trial_id: int) -> None:
            self.set_trial_system_attr(trial_id, HEARTBEAT_ATTR, time.time())

        def _get_stale_trial_ids(self, study_id: int) -> list[int]:
            now = time.time()
            return [
                trial._trial_id
                for trial in self.get_all_trials(study_id, deepcopy=False, states=(TrialState.RUNNING,))
                if now - float(trial.system_attrs.get(HEARTBEAT_ATTR, now)) > self.grace_period
            ]

        def get_heartbeat_interval(self) -> int | None:
            return self.heartbeat_interval

        def get_heartbeat_stale_trial_callback(self) -> Callable[[Any, Any], None] | None:
            return self.heartbeat_stale_trial_callback

        def get_failed_trial_callback(self) -> Callable[[Any, Any], None] | None:
            return self.heartbeat_stale_trial_callback

    return HeartbeatJournalStorage


def storage_kind(url: str | None) -> str:
    """"journal" or "database" for a `--storage` value (None: the default journal file); one-line error for
    anything else."""
    if url is None or url.startswith(JOURNAL_PREFIX) or url.endswith(JOURNAL_SUFFIXES):
        return "journal"
    if "://" in url:
        return "database"
    raise QRNNError(
        f"--storage {url!r} is no storage: give a database URL (sqlite:///PATH, postgresql://..., mysql://...) "
        f"or a journal file ({JOURNAL_PREFIX}PATH, or a path ending in {' or '.join(JOURNAL_SUFFIXES)})"
    )


def check_storage(url: str | None) -> None:
    """One-line errors for a `--storage` value, before anything is created: its kind, and for SQLite the folder
    of the database file."""
    storage_kind(url)
    if url is not None and url.startswith("sqlite:///"):
        database = Path(url[len("sqlite:///"):])
        if not database.parent.is_dir():
            raise QRNNError(f"--storage {url}: the folder {database.parent} does not exist")


def journal_path(url: str | None, default: Path) -> Path:
    """The journal file a `--storage` value names (None: `default`)."""
    if url is None:
        return default
    return Path(url[len(JOURNAL_PREFIX):] if url.startswith(JOURNAL_PREFIX) else url)


def open_storage(url: str | None, default: Path, stale_after: float, create: bool = True) -> Any:
    """The Optuna storage of `--storage URL` with heartbeats every `heartbeat_settings(stale_after)` and stale
    trials queued again; None when `create` is false and the storage does not exist yet. One-line errors."""
    import optuna

    _quiet_optuna()
    interval, grace = heartbeat_settings(stale_after)
    if storage_kind(url) == "journal":
        path = journal_path(url, default).resolve()
        if not path.exists():
            if not create:
                return None
            try:
                path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as error:
                raise QRNNError(f"cannot create the folder of the journal {path}: {error.strerror}") from None
        from optuna.storages.journal import JournalFileBackend

        try:
            backend = JournalFileBackend(str(path))
        except OSError as error:
            raise QRNNError(f"cannot open the journal {path}: {error.strerror}") from None
        return _journal_storage_class()(backend, interval, grace, _retry_callback())
    assert url is not None
    if url.startswith("sqlite:///"):
        if not Path(url[len("sqlite:///"):]).exists() and not create:
            return None
        check_storage(url)
    import inspect

    parameters = inspect.signature(optuna.storages.RDBStorage).parameters
    callback = "heartbeat_stale_trial_callback" if "heartbeat_stale_trial_callback" in parameters else \
        "failed_trial_callback"
    # SQLite: wait for a busy database rather than fail (several workers write to one file).
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite:") else None
    attempts = 5
    for attempt in range(attempts):
        try:
            return optuna.storages.RDBStorage(url, engine_kwargs=engine, heartbeat_interval=interval,
                                              grace_period=grace, **{callback: _retry_callback()})
        except ImportError as error:
            raise QRNNError(f"--storage {url}: its database driver is not installed "
                            f"({error.__cause__ or error})") from None
        except Exception as error:  # SQLAlchemy's errors: a bad URL, a server that does not answer
            # Workers starting at once race to create the tables (one wins, the others see them half made:
            # SQLite and MySQL say OperationalError or IntegrityError, PostgreSQL a ProgrammingError that the
            # relation already exists): try again a few times before calling it an error.
            if attempt + 1 < attempts and _lost_schema_race(error):
                time.sleep(0.5 * (attempt + 1))
                continue
            first = (str(error).strip().splitlines() or [""])[0]
            raise QRNNError(f"--storage {url}: {type(error).__name__}: {first}") from None
    raise AssertionError("unreachable")


def _lost_schema_race(error: Exception) -> bool:
    """Whether a storage's error may come from another worker creating the same tables at the same moment."""
    kind = type(error).__name__
    return kind in ("OperationalError", "IntegrityError") or (kind == "ProgrammingError"
                                                              and "already exists" in str(error))


def _quiet_optuna() -> None:
    """Optuna's own log lines and its warnings about experimental features (heartbeats) say nothing to a sweep's
    user; qrnn prints what happens."""
    import warnings

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    warnings.filterwarnings("ignore", category=FutureWarning, module="optuna")
    # `Study.ask` warns that heartbeats are meant for `Study.optimize`; qrnn's workers record them themselves.
    warnings.filterwarnings("ignore", message="Heartbeat of storage is supposed to be used with Study.optimize")


def open_study(storage: Any, name: str, directory: Path, sampler: Any = None, pruner: Any = None) -> Any:
    """The study `name` in `storage` (created if new, minimising the best validation loss), bound to the folder
    `directory`: a study of that name that belongs to another folder is a one-line error."""
    import optuna

    study = optuna.create_study(storage=storage, study_name=name, direction="minimize", load_if_exists=True,
                                sampler=sampler, pruner=pruner)
    owner = study.user_attrs.get("directory")
    if owner is None:
        study.set_user_attr("directory", str(directory))
    elif owner != str(directory):
        raise QRNNError(f"the storage's study {name!r} belongs to the folder {owner}, not {directory}; give "
                        "that --root, or another --storage")
    return study


class _LostFlag(threading.Event):
    """Set once a trial is no longer ours. `is_set` (the training reads it every epoch) also asks the storage at
    once when the keeper has not confirmed ownership for a while: a process that was paused (SIGSTOP, a suspended
    VM) or cut off from the storage may have lost its trial meanwhile, and must know before it writes again."""

    def __init__(self, keeper: _Keeper) -> None:
        super().__init__()
        self._keeper = keeper
        self._next_check = 0.0

    def is_set(self) -> bool:
        if super().is_set():
            return True
        now = time.monotonic()
        if now - self._keeper.confirmed > self._keeper.patience and now >= self._next_check:
            self._next_check = now + self._keeper.step  # an unreachable storage is asked again, not every epoch
            if not self._keeper.owned():
                self.set()
        return super().is_set()


class _Keeper:
    """Keeps a claimed trial alive and watches that it stays ours: a thread records the storage's heartbeat
    every `interval` seconds and checks ownership at least every `OWNERSHIP_CHECK_EVERY` seconds. `lost` is
    set once the trial is no longer ours (no longer RUNNING: failed as stale by a peer, or finished; or another
    trial of the same point ran first), and the training stops on it writing nothing more. Ownership rests on
    the storage's trial states only, never on hosts or process ids."""

    def __init__(self, study: Any, trial_id: int, point: str, interval: float,
                 warn: Callable[[str], None]) -> None:
        self.study = study
        self.trial_id = trial_id
        self.point = point
        self.interval = interval
        self.step = min(interval, OWNERSHIP_CHECK_EVERY)
        # Ownership unconfirmed for longer than this is checked by the training itself (see `_LostFlag`); a
        # trial cannot be taken over in less than the grace period, of which the interval is a fifth.
        self.patience = 2 * self.step
        self.confirmed = time.monotonic()
        self.lost = _LostFlag(self)
        self._warn = warn
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name=f"keeper of trial {trial_id}", daemon=True)

    def start(self) -> _Keeper:
        """Record a heartbeat now, then keep doing so in the thread."""
        self._beat()
        self._thread.start()
        return self

    def _beat(self) -> None:
        try:
            self.study._storage.record_heartbeat(self.trial_id)
        except Exception as error:  # noqa: BLE001 - said out loud, and the ownership check decides what it means
            if not self.owned():
                self.lost.set()
            else:
                self._warn(f"warning: heartbeat of trial {self.trial_id} failed ({type(error).__name__}: {error})")

    def _watch(self) -> None:
        last_beat = time.monotonic()
        while not self._stop.wait(self.step):
            if time.monotonic() - last_beat >= self.interval - self.step / 2:
                self._beat()
                last_beat = time.monotonic()
            if self.lost.is_set() or not self.owned():
                self.lost.set()
                return

    def owned(self) -> bool:
        """Whether the trial is still this worker's (a storage that cannot be read says nothing: True, but the
        time of the last confirmation stays behind)."""
        from optuna.trial import TrialState

        asked = time.monotonic()
        try:
            mine = self.study._storage.get_trial(self.trial_id)
            if mine.state != TrialState.RUNNING:
                return False
            for other in self.study.get_trials(deepcopy=False):
                if other.number == mine.number or other.user_attrs.get(POINT_ATTR) != self.point:
                    continue
                if other.state in (TrialState.COMPLETE, TrialState.PRUNED):
                    return False
                if other.state == TrialState.RUNNING and other.number < mine.number:
                    return False
            self.confirmed = asked
            return True
        except Exception as error:  # noqa: BLE001 - a storage hiccup is no proof of a loss
            self._warn(f"warning: cannot read trial {self.trial_id} from the storage ({type(error).__name__}: "
                       f"{error})")
            return True

    def stop(self) -> None:
        """Stop heartbeats and checks (the trial finished, or was lost)."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join()


# ---- pools ----

def pool_key(options: dict[str, Any]) -> str:
    """Points whose keys are equal may train together in one pool: what the training's pools need in common
    (`qrnn.training.pool.POOL_SHARED`: topology, dataset, optimizer kind, batch, length, dtype, device, ...).
    A point that trains alone (L-BFGS: its closure runs a different number of times per member; several shards)
    gets a key of its own."""
    from qrnn.training.pool import pool_key as shared_key

    key = shared_key(options)
    return "alone/" + point_id(options) if key is None else json.dumps(key, default=str)


# ---- workers ----


@dataclass
class Member:
    """A trial this worker claimed: the Optuna trial, the point (folder) it trains, its full options, and what
    `point.json` records."""

    trial: Any
    key: str
    options: dict[str, Any]
    directory: Path
    label: str
    record: dict[str, Any]
    pruning: bool = False


class _Worker:
    """What grid sweeps and searches share: a study in a storage, point folders under `directory`, and the
    training of claimed trials with heartbeats, ownership checks, intermediate values and pruning."""

    def __init__(self, directory: Path, storage_url: str | None, stale_after: float, pool_size: int | None,
                 printer: Callable[[str], None] | None) -> None:
        if not isinstance(stale_after, int | float) or not stale_after >= 2:
            raise QRNNError(f"--stale-after must be a number of seconds >= 2, got {stale_after!r}")
        if pool_size is not None and (not isinstance(pool_size, int) or pool_size < 1):
            raise QRNNError(f"--pool-size must be an integer >= 1 (or left out: chosen from the shapes and free "
                            f"memory), got {pool_size!r}")
        check_storage(storage_url)  # a bad --storage is an error before anything is created
        self.directory = directory
        self.storage_url = storage_url
        self.stale_after = float(stale_after)
        self.pool_size = pool_size
        self._print = printer or (lambda line: print(line, flush=True))
        self.interval = float(heartbeat_settings(self.stale_after)[0])

    # The study's name in its storage, and the sampler and pruner it runs with (a search's; None for grids).
    study_name = ""
    sampler: Any = None
    pruner: Any = None

    def open(self, create: bool = True) -> Any:
        """The study (None when `create` is false and its storage or the study does not exist yet)."""
        storage = open_storage(self.storage_url, self.default_storage, self.stale_after, create)
        if storage is None:
            return None
        import optuna

        if not create:
            try:
                return optuna.load_study(study_name=self.study_name, storage=storage)
            except KeyError:
                return None
        return open_study(storage, self.study_name, self.directory, self.sampler, self.pruner)

    @property
    def default_storage(self) -> Path:
        """The journal file used without --storage."""
        return self.directory / DEFAULT_STORAGE_FILE

    def storage_label(self) -> str:
        """The storage as messages name it."""
        if storage_kind(self.storage_url) == "journal":
            return f"journal {journal_path(self.storage_url, self.default_storage)}"
        # A database URL's password stays out of printed tables and logs.
        return re.sub(r"(://[^:/@]+):[^@]*@", r"\1:***@", str(self.storage_url))

    def _wait(self, signals: _BetweenPointsSignals, seconds: float) -> None:
        """Sleep up to `seconds`, waking early on a signal."""
        end = time.monotonic() + seconds
        while signals.received is None and time.monotonic() < end:
            time.sleep(min(0.2, max(end - time.monotonic(), 0.0)))

    def _claim(self, study: Any, trial_id: int) -> bool:
        """Take the WAITING trial `trial_id` atomically through the storage (with a heartbeat recorded first, so
        that a worker dying right after the claim leaves a trial that goes stale); False if another took it."""
        from optuna.exceptions import UpdateFinishedTrialError
        from optuna.trial import TrialState

        storage = study._storage
        try:
            storage.record_heartbeat(trial_id)
            return bool(storage.set_trial_state_values(trial_id, TrialState.RUNNING))
        except (UpdateFinishedTrialError, KeyError):
            return False

    def _train_members(self, study: Any, members: list[Member]) -> list[tuple[str, int]]:
        """Train the claimed `members` (points that may share a pool, see `pool_key`); one (outcome, signal
        number) each. Several members train as one pool (`qrnn.training.pool`); a signal stops the worker, and
        its other claims go back at once."""
        if len(members) > 1:
            return self._train_pool(study, members)
        return [self._train_member(study, members[0])]

    def _train_pool(self, study: Any, members: list[Member]) -> list[tuple[str, int]]:
        from qrnn.training.pool import run_pool_training

        outcomes: list[tuple[str, int] | None] = [None] * len(members)
        plans: list[tuple[int, Any, _Keeper, str | None, float]] = []
        for index, member in enumerate(members):
            keeper = _Keeper(study, member.trial._trial_id, member.key, self.interval, self._print).start()
            started = time.monotonic()
            try:
                prepared = self._prepare(study, member, keeper)
            except QRNNError as error:
                outcomes[index] = (self._fail(study, member, keeper, str(error)), 0)
                continue
            if isinstance(prepared, tuple) and isinstance(prepared[0], str):
                keeper.stop()
                outcomes[index] = prepared
                continue
            pool_member, resumed_from = prepared

            def finished(result: Any, index: int = index, keeper: _Keeper = keeper,
                         resumed_from: str | None = resumed_from, started: float = started) -> None:
                # Recorded as soon as the member leaves the pool: a long pool's early finishers are in the ledger
                # (done.json) while the others train on.
                try:
                    outcomes[index] = self._finish(study, members[index], keeper, result, resumed_from, started)
                finally:
                    keeper.stop()

            pool_member = dataclasses.replace(pool_member, on_finish=finished)
            plans.append((index, pool_member, keeper, resumed_from, started))
        if plans:
            self._print(f"training {len(plans)} point(s) as one pool: "
                        + ", ".join(members[index].key for index, *_ in plans))
            try:
                run_pool_training([plan[1] for plan in plans])
            except Exception as error:  # a fault of the pool fails its unfinished points, not the whole sweep
                reason = str(error) if isinstance(error, QRNNError) else (
                    f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[0]}")
                for index, _, keeper, _, _ in plans:
                    if outcomes[index] is None:
                        outcomes[index] = (self._fail(study, members[index], keeper, reason), 0)
        return [outcome if outcome is not None else (FAILED, 0) for outcome in outcomes]

    def _prepare(self, study: Any, member: Member, keeper: _Keeper) -> Any:
        """Before training a claimed trial: its folder and `point.json`; an (outcome, signal) pair where nothing
        is left to train (lost, or finished and only recorded now), else the `PoolMember` to train and the
        checkpoint it resumes from (or None)."""
        from qrnn.training import launch
        from qrnn.training.config import make_config
        from qrnn.training.pool import PoolMember

        if not keeper.owned():
            return self._lost(member)
        directory = member.directory
        directory.mkdir(parents=True, exist_ok=True)
        _write_json_atomically(directory / POINT_FILE, member.record)
        (directory / FAILED_FILE).unlink(missing_ok=True)
        recorded = read_json(directory / DONE_FILE)
        if recorded is not None:  # finished, but its trial was not told (a worker killed right after)
            self._print(f"point {member.key} had finished ({DONE_FILE}); recording it")
            self._tell_done(study, member, recorded)
            return DONE, 0
        config = make_config(member.options)
        checkpoints = _checkpoints(directory)
        final = _latest(checkpoints, ("final",))
        latest = _latest(checkpoints, ("interrupted", "best"))
        if final is None and latest is not None and latest["epoch"] >= config.epochs:
            final = latest  # stopped by a signal during its last epoch: nothing left to train
        if final is not None:
            self._print(f"point {member.key} had finished training (checkpoint {final['path']}); recording it")
            summary = _summary_from_checkpoint(final, config.epochs, config.stop_at_loss)
            return self._record(study, member, keeper, summary, None, time.monotonic())
        hook = self._validation_hook(member, keeper)
        if latest is None:
            return PoolMember(make_config({**member.options, "out": str(directory)}), on_validation=hook,
                              lost=keeper.lost), None
        self._print(f"point {member.key}: resuming from {latest['kind']} checkpoint at epoch {latest['epoch']}")
        # The point's own values of what a resume may change: a checkpoint written under other values (a
        # --timeout, say) must not carry them on.
        changeable = {name: getattr(config, name) for name in launch.RESUME_CHANGEABLE}
        resumed_config, run, resumption = launch.prepare_resume(latest["path"], **changeable)
        return PoolMember(resumed_config, run, resumption, on_validation=hook, lost=keeper.lost), str(latest["path"])

    def _finish(self, study: Any, member: Member, keeper: _Keeper, result: Any, resumed_from: str | None,
                started: float) -> tuple[str, int]:
        """After a claimed trial's training: requeue it (a signal), or record it done, pruned, lost or failed."""
        if result.stop_reason == "lost":
            return self._lost(member)
        if result.fault is not None:  # a pool member's fault at run time (a lone run raises it): a non-finite number
            return self._fail(study, member, keeper, result.fault, non_finite_at=result.epoch), 0
        if result.stop_reason == "signal":
            keeper.stop()
            self._requeue(study, member)
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
        return self._record(study, member, keeper, summary, resumed_from, started)

    def _requeue(self, study: Any, member: Member) -> None:
        """Give a claimed trial back (this worker stops): it fails marked as interrupted, and a WAITING copy
        (Optuna's retry) queues the point again at once, without waiting for its heartbeat to go stale."""
        from optuna.trial import TrialState

        storage = study._storage
        try:
            frozen = storage.get_trial(member.trial._trial_id)
            if frozen.state != TrialState.RUNNING:
                return
            storage.set_trial_user_attr(frozen._trial_id, INTERRUPTED_ATTR, True)
            if storage.set_trial_state_values(frozen._trial_id, TrialState.FAIL):
                _retry_callback()(study, storage.get_trial(frozen._trial_id))
        except Exception as error:  # noqa: BLE001 - its heartbeat stops now; it goes stale and is retried then
            self._print(f"warning: could not give trial {member.trial.number} back ({type(error).__name__}: "
                        f"{error}); it is retried once its heartbeat is stale")

    def _train_member(self, study: Any, member: Member) -> tuple[str, int]:
        """Train (or resume, or record) one claimed trial in its point folder; mark it done, pruned or failed in
        the folder and in the storage. Returns (outcome, signal number)."""
        from qrnn.training import launch

        keeper = _Keeper(study, member.trial._trial_id, member.key, self.interval, self._print).start()
        started = time.monotonic()
        try:
            prepared = self._prepare(study, member, keeper)
            if isinstance(prepared, tuple) and isinstance(prepared[0], str):
                return prepared
            plan, resumed_from = prepared
            hook, lost = plan.on_validation, plan.lost
            if plan.config.num_shards != 1:
                # Shards in processes of their own take no hooks: such a point is not pruned and, if taken over,
                # is stopped only at its end (it then records nothing).
                hook = lost = None
            result = launch.run_training(plan.config, plan.run, plan.resumption, on_validation=hook, lost=lost)
            return self._finish(study, member, keeper, result, resumed_from, started)
        except QRNNError as error:
            non_finite_at = error.epoch if isinstance(error, NonFiniteFault) else None
            return self._fail(study, member, keeper, str(error), non_finite_at=non_finite_at), 0
        except Exception as error:  # a bug or a resource problem in one point must not stop the whole sweep
            first_line = (str(error).strip().splitlines() or [""])[0]
            return self._fail(study, member, keeper, f"{type(error).__name__}: {first_line}"), 0
        finally:
            keeper.stop()

    def _record(self, study: Any, member: Member, keeper: _Keeper, summary: dict[str, Any],
                resumed_from: str | None, started: float) -> tuple[str, int]:
        """Write the point's `done.json` and complete its trial (unless the trial was lost meanwhile)."""
        summary.update(
            preset=member.record.get("preset"),
            id=member.key,
            varying=member.record.get("varying"),
            trial=member.trial.number,
            resumed_from=resumed_from,
            host=socket.gethostname(),
            pid=os.getpid(),
            seconds=round(time.monotonic() - started, 3),
            finished=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        )
        if keeper.lost.is_set() or not keeper.owned():
            return self._lost(member)
        directory = member.directory
        if not _publish_once(directory / DONE_FILE, summary):
            self._print(f"point {member.key}: already recorded as done")
            summary = read_json(directory / DONE_FILE) or summary
        self._tell_done(study, member, summary)
        loss = summary["best_validation_loss"]
        self._print(f"point {member.key} {'pruned' if summary['stop_reason'] == 'pruned' else 'done'}: "
                    f"{summary['stop_reason']} at epoch {summary['epoch']}, best validation loss "
                    f"{'-' if loss is None else f'{loss:.4g}'}")
        return (PRUNED if summary["stop_reason"] == "pruned" else DONE), 0

    def _validation_hook(self, member: Member, keeper: _Keeper) -> Callable[[int, float], str | None]:
        """The training's per-validation hook: "lost" once the trial is not ours; the loss reported to Optuna as
        the intermediate value at that epoch; "pruned" where the study's pruner says so (searches only)."""
        from optuna.exceptions import UpdateFinishedTrialError

        def on_validation(epoch: int, loss: float) -> str | None:
            if keeper.lost.is_set():
                return "lost"
            try:
                if math.isfinite(loss):
                    member.trial.report(loss, epoch)
            except UpdateFinishedTrialError:
                keeper.lost.set()
                return "lost"
            except Exception as error:  # noqa: BLE001 - a storage hiccup must not end a run; heartbeats decide
                self._print(f"warning: cannot report trial {member.trial.number}'s loss ({type(error).__name__})")
            if member.pruning and member.trial.should_prune():
                return "pruned"
            return None

        return on_validation

    def _lost(self, member: Member) -> tuple[str, int]:
        self._print(f"point {member.key}: trial {member.trial.number} was taken over by another worker (its "
                    "heartbeat went stale); stopped here without writing anything more")
        return LOST, 0

    def _tell_done(self, study: Any, member: Member, summary: dict[str, Any]) -> None:
        from optuna.trial import TrialState

        loss = summary.get("best_validation_loss")
        value = float(loss) if loss is not None and math.isfinite(loss) else math.inf
        member.trial.set_user_attr("stop_reason", summary.get("stop_reason"))
        if summary.get("stop_reason") == "pruned":
            study.tell(member.trial, state=TrialState.PRUNED, skip_if_finished=True)
        else:
            study.tell(member.trial, value, skip_if_finished=True)

    def _fail(self, study: Any, member: Member, keeper: _Keeper, reason: str, non_finite_at: int | None = None) -> str:
        from optuna.trial import TrialState

        keeper.stop()
        reason = " ".join(reason.split())
        if keeper.lost.is_set() or not keeper.owned():
            self._print(f"point {member.key}: failed after another worker took it over ({reason}); nothing "
                        "written")
            return LOST
        _write_json_atomically(
            member.directory / FAILED_FILE,
            {
                "preset": member.record.get("preset"),
                "id": member.key,
                "varying": member.record.get("varying"),
                "trial": member.trial.number,
                "reason": reason,
                # Training diverged at this epoch (a non-finite number), as opposed to a point that could not run.
                **({} if non_finite_at is None else {NON_FINITE_AT: non_finite_at}),
                "host": socket.gethostname(),
                "pid": os.getpid(),
                "failed": datetime.now(timezone.utc).isoformat(timespec="seconds"),
            },
        )
        member.trial.set_user_attr(FAILED_ATTR, reason)
        study.tell(member.trial, state=TrialState.FAIL, skip_if_finished=True)
        self._print(f"point {member.key} failed: {reason}")
        return FAILED


def point_trials(trials: list[Any]) -> dict[str, list[Any]]:
    """A study's trials by the point they train (user attribute `point_id`), oldest first."""
    grouped: dict[str, list[Any]] = {}
    for trial in sorted(trials, key=lambda t: t.number):
        key = trial.user_attrs.get(POINT_ATTR)
        if key is not None:
            grouped.setdefault(key, []).append(trial)
    return grouped


def trials_state(trials: list[Any]) -> str:
    """The state of a point from its trials: done (a trial completed, or was pruned), running, waiting, failed
    (its newest attempt failed in training), or pending (no trial yet, or only attempts that went stale, were
    interrupted or were duplicates: it needs a trial)."""
    from optuna.trial import TrialState

    states = {trial.state for trial in trials}
    if TrialState.COMPLETE in states or TrialState.PRUNED in states:
        return DONE
    if TrialState.RUNNING in states:
        return RUNNING
    if TrialState.WAITING in states:
        return WAITING
    attempts = [t for t in trials if t.state == TrialState.FAIL and DUPLICATE_ATTR not in t.user_attrs]
    if attempts and FAILED_ATTR in attempts[-1].user_attrs:
        return FAILED
    return PENDING


def retries(trials: list[Any]) -> int:
    """How many times a point was tried again (after a stale heartbeat, a signal, or a failure with
    --retry-failed): its attempts but the first, duplicates left out."""
    return max(0, sum(DUPLICATE_ATTR not in t.user_attrs for t in trials) - 1)


class Sweep(_Worker):
    """The points of `preset` under `<root>/<preset name>`, as trials of the Optuna study `<preset name>` in
    `storage` (default: the journal file `<root>/<preset name>/study.journal`): their status, and running them
    (see the module docstring)."""

    def __init__(
        self,
        preset: Preset,
        root: str | os.PathLike[str] = DEFAULT_ROOT,
        stale_after: float = DEFAULT_STALE_AFTER,
        printer: Callable[[str], None] | None = None,
        storage: str | None = None,
        pool_size: int = 1,
    ) -> None:
        super().__init__(Path(root).resolve() / preset.name, storage, stale_after, pool_size, printer)
        self.preset = preset
        self.points = expand(preset)

    def point_directory(self, point: SweepPoint) -> Path:
        """Where `point` runs and keeps its bookkeeping."""
        return self.directory / point.id

    @property
    def study_name(self) -> str:
        """The study's name in its storage: the preset's."""
        return self.preset.name

    def _member(self, point: SweepPoint, trial: Any) -> Member:
        record = {"preset": self.preset.name, "id": point.id, "varying": point.varying, "options": point.options}
        return Member(trial, point.id, point.options, self.point_directory(point), point.label(), record)

    # ---- the queue ----

    def enqueue(self, study: Any, retry_failed: bool = False) -> int:
        """Give every point that needs one a WAITING trial, once (idempotent by point id): points without a
        trial, and those whose attempts went stale or were interrupted without a retry queued (with
        `retry_failed`, failed ones too). A point folder holding `done.json` (a sweep of the lock-file era, or
        a worker killed between writing it and telling the study) becomes a completed trial instead; one holding
        only `failed.json` a failed one. Returns how many trials were queued."""
        import optuna
        from optuna.trial import TrialState

        by_point = point_trials(study.get_trials(deepcopy=False))
        queued = 0
        for point in self.points:
            trials = by_point.get(point.id, [])
            state = trials_state(trials)
            if state in (DONE, RUNNING, WAITING) or (state == FAILED and not retry_failed):
                continue
            directory = self.point_directory(point)
            attrs = {POINT_ATTR: point.id, **{f"option:{k}": v for k, v in point.varying.items()}}
            done = read_json(directory / DONE_FILE)
            if done is not None:
                loss = done.get("best_validation_loss")
                value = float(loss) if isinstance(loss, int | float) and math.isfinite(loss) else math.inf
                study.add_trial(optuna.trial.create_trial(
                    state=TrialState.COMPLETE, value=value,
                    user_attrs={**attrs, "stop_reason": done.get("stop_reason"), "recorded_from": DONE_FILE}))
                continue
            failed = read_json(directory / FAILED_FILE)
            if failed is not None and not trials and not retry_failed:
                study.add_trial(optuna.trial.create_trial(
                    state=TrialState.FAIL, user_attrs={**attrs, FAILED_ATTR: str(failed.get("reason", ""))}))
                continue
            study.enqueue_trial({}, user_attrs=attrs)
            queued += 1
        return queued

    def claim(self, study: Any, limit: int) -> list[Member]:
        """Claim up to `limit` waiting points that can share a pool (`pool_key`), in grid order. Of several
        trials of one point (two workers queued it at once), only the oldest waiting one is taken, and a point
        already running or done has its waiting duplicates closed as failed (`duplicate_of`)."""
        from optuna.trial import Trial, TrialState

        claimed: list[Member] = []
        key: str | None = None
        by_point = point_trials(study.get_trials(deepcopy=False))
        for point in self.points:
            trials = by_point.get(point.id, [])
            waiting = [t for t in trials if t.state == TrialState.WAITING]
            if not waiting:
                continue
            ahead = [t for t in trials if t.state in (TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED)]
            if ahead:
                for duplicate in waiting:
                    self._close_duplicate(study, duplicate, ahead[0].number)
                continue
            if key is not None and pool_key(point.options) != key:
                continue
            trial = waiting[0]
            if not self._claim(study, trial._trial_id):
                continue
            # Two trials of one point may have been claimed at once (queued twice): the older one trains.
            fresh = point_trials(study.get_trials(deepcopy=False)).get(point.id, [])
            rivals = [t for t in fresh if t.number != trial.number and (
                t.state in (TrialState.COMPLETE, TrialState.PRUNED)
                or (t.state == TrialState.RUNNING and t.number < trial.number))]
            if rivals:
                self._close_duplicate(study, trial, rivals[0].number, claimed=True)
                continue
            claimed.append(self._member(point, Trial(study, trial._trial_id)))
            key = pool_key(point.options)
            if len(claimed) >= limit:
                break
        return claimed

    def _close_duplicate(self, study: Any, trial: Any, of: int, claimed: bool = False) -> None:
        from optuna.trial import TrialState

        if not claimed and not self._claim(study, trial._trial_id):
            return
        study._storage.set_trial_user_attr(trial._trial_id, DUPLICATE_ATTR, of)
        study._storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)

    # ---- running ----

    def run(self, max_points: int | None = None, retry_failed: bool = False) -> int:
        """Train points until every one is finished: take waiting trials, and while none is waiting but a peer's
        trial runs, wait (its heartbeat may go stale: it is then failed and queued again, and taken here). Stops
        after `max_points` points ran here. Returns the exit code: 0, 1 if a point failed here, 128 + signal
        number if a signal stopped the sweep (the point it interrupted is queued again at once)."""
        from optuna.storages import fail_stale_trials
        from optuna.trial import TrialState

        if max_points is not None and (not isinstance(max_points, int) or max_points < 1):
            raise QRNNError(f"--max-points must be an integer >= 1, got {max_points!r}")
        check_points(self.preset)
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise QRNNError(f"cannot create the sweep folder {self.directory}: {error.strerror}") from None
        study = self.open()
        self.enqueue(study, retry_failed=retry_failed)
        counts = {DONE: 0, FAILED: 0, LOST: 0}
        with _BetweenPointsSignals() as signals:
            while signals.received is None:
                if max_points is not None and counts[DONE] + counts[FAILED] >= max_points:
                    break
                fail_stale_trials(study)  # a dead peer's trials fail, and Optuna's callback queues them again
                self.enqueue(study)  # points whose stale trial got no retry (its callback's worker died)
                if self.pool_size is None:
                    from qrnn.training.pool import default_pool_size

                    # Chosen once, from the grid's first point: its shapes and this machine's free memory.
                    self.pool_size = default_pool_size(self.points[0].options) if self.points else 1
                limit = self.pool_size if max_points is None else min(self.pool_size,
                                                                      max_points - counts[DONE] - counts[FAILED])
                members = self.claim(study, limit)
                if not members:
                    mine = {point.id for point in self.points}
                    running = [t for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,))
                               if t.user_attrs.get(POINT_ATTR) in mine]
                    if not running:
                        break
                    # A peer's point is running: wait, as its worker may die and leave it to this one.
                    self._wait(signals, min(self.interval, OWNERSHIP_CHECK_EVERY))
                    continue
                for member in members:
                    index = next(i for i, p in enumerate(self.points, start=1) if p.id == member.key)
                    self._print(f"sweep {self.preset.name}: point {member.key} ({member.label}) "
                                f"[{index}/{len(self.points)}] trial {member.trial.number} in {member.directory}")
                for outcome, signum in self._train_members(study, members):
                    if outcome == INTERRUPTED:
                        self._print(f"sweep {self.preset.name}: stopped by a signal; its point(s) are queued "
                                    "again and resume in the next worker")
                        return 128 + signum
                    counts[outcome if outcome in counts else DONE] += 1
            if signals.received is not None:
                self._print(f"sweep {self.preset.name}: stopped by a signal between points")
                return 128 + signals.received
        lost = f", {counts[LOST]} taken over by other workers" if counts[LOST] else ""
        self._print(f"sweep {self.preset.name}: this process finished {counts[DONE]} point(s), "
                    f"{counts[FAILED]} failed{lost}; `qrnn sweep {_command_name(self.preset)} --status` shows all")
        return 1 if counts[FAILED] else 0

    # ---- status ----

    def status(self, point: SweepPoint, trials: list[Any] | None = None) -> PointStatus:
        """The state of `point` from its trials and its folder: done, failed, running, interrupted (queued or
        needing a trial, with a checkpoint to resume from) or pending."""
        from optuna.trial import TrialState

        if trials is None:
            study = self.open(create=False)
            trials = point_trials(study.get_trials(deepcopy=False)).get(point.id, []) if study else []
        directory = self.point_directory(point)
        state = trials_state(trials)
        done = read_json(directory / DONE_FILE)
        count = retries(trials)
        if state == DONE or (done is not None and state != RUNNING):
            if done is not None:
                return PointStatus(point, DONE, str(done.get("stop_reason", "")), done.get("best_validation_loss"),
                                   count)
            finished = next(t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED))
            return PointStatus(point, DONE, str(finished.user_attrs.get("stop_reason", "")), finished.value, count)
        failed = read_json(directory / FAILED_FILE)
        if state == FAILED or (state == PENDING and not trials and failed is not None):
            reason = trials[-1].user_attrs.get(FAILED_ATTR) if trials else None
            return PointStatus(point, FAILED, str(reason or (failed or {}).get("reason", "")), None, count)
        checkpoints = _checkpoints(directory) if directory.is_dir() else []
        best = _latest(checkpoints, ("best", "interrupted", "final"))
        loss = best["best_validation_loss"] if best is not None else None
        if state == RUNNING:
            trial = next(t for t in trials if t.state == TrialState.RUNNING)
            epoch = f", epoch {max(trial.intermediate_values)} validated" if trial.intermediate_values else ""
            return PointStatus(point, RUNNING, f"trial {trial.number}{epoch}", loss, count)
        if best is not None:
            return PointStatus(point, INTERRUPTED, f"resumes from epoch {best['epoch']}", loss, count)
        return PointStatus(point, PENDING, "queued" if state == WAITING else "", None, count)

    def status_table(self) -> str:
        """The `--status` table: one line per point (id, varying options, state, best validation loss, retries,
        detail), then the counts per state."""
        study = self.open(create=False)
        by_point = point_trials(study.get_trials(deepcopy=False)) if study is not None else {}
        statuses = [self.status(point, by_point.get(point.id, [])) for point in self.points]
        names = self.preset.varying()
        header = ["id", *names, "state", "best val loss", "retries", "detail"]
        rows = []
        for status in statuses:
            loss = "-" if status.best_validation_loss is None else f"{status.best_validation_loss:.4g}"
            values = [format_value(status.point.varying[name]) for name in names]
            rows.append([status.point.id, *values, status.state, loss, str(status.retries), status.detail])
        lines = _table(header, rows)
        counts = {state: sum(s.state == state for s in statuses) for state in (DONE, RUNNING, INTERRUPTED, FAILED,
                                                                                 PENDING)}
        total = ", ".join(f"{count} {state}" for state, count in counts.items())
        lines.insert(0, f"sweep {self.preset.name} in {self.directory} ({self.storage_label()}): "
                        f"{len(statuses)} points: {total}")
        known = {point.id for point in self.points}
        strays = [p.name for p in self.directory.glob("*") if p.is_dir() and p.name not in known]
        if strays:
            lines.append(f"{len(strays)} point folder(s) not in the current grid (the preset changed?): "
                         f"{', '.join(sorted(strays)[:5])}{' ...' if len(strays) > 5 else ''}")
        return "\n".join(lines)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    """Rows as aligned columns (the last one left ragged)."""
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header) - 1)]
    return [
        "  ".join([*(cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)), row[-1]]).rstrip()
        for row in [header, *rows]
    ]




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
    storage: str | None = None,
    pool_size: int | None = None,
) -> int:
    """Run the sweep of `preset` (a shipped preset's name or a .toml path) under `root`, its study in `storage`
    (an Optuna storage URL or journal file; default: `<root>/<preset>/study.journal`), up to `pool_size` points
    at a time as one pool (None: chosen from the shapes and free memory); the exit code (see `Sweep.run`)."""
    sweep = Sweep(load_preset(preset), root, stale_after, storage=storage, pool_size=pool_size)
    return sweep.run(max_points=max_points, retry_failed=retry_failed)


# ---- command line ----


def add_worker_arguments(parser: argparse.ArgumentParser) -> None:
    """The options `qrnn sweep` and `qrnn tune` share."""
    parser.add_argument("preset", metavar="PRESET", help="a preset name (`qrnn presets` lists them) or a .toml file")
    parser.add_argument("--root", default=DEFAULT_ROOT, metavar="DIR",
                        help="folder holding the point folders (shared between the machines of a cluster)")
    parser.add_argument("--storage", default=None, metavar="URL",
                        help="the Optuna storage of the study: sqlite:///PATH, postgresql://..., mysql://..., or a "
                        f"journal file ({JOURNAL_PREFIX}PATH, or a path ending in .journal or .log); default: "
                        f"the journal file {DEFAULT_STORAGE_FILE} in the study's folder under --root")
    parser.add_argument("--status", action="store_true",
                        help="show the points (id, varying options, state, best validation loss, retries) and exit")
    parser.add_argument("--stale-after", type=float, default=DEFAULT_STALE_AFTER, metavar="SEC",
                        help="a trial whose worker has sent no heartbeat for this long is failed and queued again "
                        "(its worker is presumed dead); the next worker resumes it from its newest checkpoint")
    parser.add_argument("--pool-size", type=int, default=None, metavar="N",
                        help="claim up to N points that can share a pool (same topology, dataset, optimizer kind, "
                        "batch, length, dtype, device) and train them together as one pool; 1: one by one; "
                        "default: sweeps choose from the shapes and free memory (up to 32), tune 1; L-BFGS "
                        "points never share")


def register(subparsers: Any) -> None:
    """Add the `sweep` subcommand."""
    parser = subparsers.add_parser(
        "sweep",
        help="run every point of a preset's grid (seeds x hyperparameters); many processes may share it",
        description="Run a preset's sweep: every point (one seed and one value of each swept option) is a trial "
        "of an Optuna study and trains under <root>/<preset>/<point id>/. Start as many copies as you like, on "
        "this machine or on others sharing the storage and the folder (e.g. a SLURM array job, see examples/): "
        "each point is taken by one worker through the storage, finished points are skipped, and a point whose "
        "worker died (no heartbeat for --stale-after seconds) is queued again and resumes from its newest "
        "checkpoint.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_worker_arguments(parser)
    parser.add_argument("--max-points", type=int, default=None, metavar="N",
                        help="run at most N points in this process (None: until none is left)")
    parser.add_argument("--retry-failed", action="store_true", help="run failed points again")
    parser.set_defaults(func=command_sweep)


def command_sweep(args: argparse.Namespace) -> int:
    """`qrnn sweep PRESET`: run the sweep, or with --status show it."""
    sweep = Sweep(load_preset(args.preset), args.root, args.stale_after, storage=args.storage,
                  pool_size=args.pool_size)
    if args.status:
        print(sweep.status_table())
        return 0
    return sweep.run(max_points=args.max_points, retry_failed=args.retry_failed)
