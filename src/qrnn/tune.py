"""Searches: `qrnn tune PRESET` samples the preset's `[search]` space (TPE, random, grid or CMA-ES) as trials of
the Optuna study `<preset>-tune`, prunes runs that lag (median, ASHA or Hyperband on the validation loss at each
validation), and prints the best trials with the commands that evaluate or continue each one.

Each trial trains in `<root>/<preset>-tune/trial-<number>/` (the number of its first attempt: a retry after a
stale heartbeat or a signal resumes in the same folder) with the preset's `[train]` options and the trial's
sampled values. The workers, storages, heartbeats and faults are those of `qrnn sweep` (see `qrnn.sweep`); the
study holds `--trials` trials in all, however many workers share it.
"""

from __future__ import annotations

import argparse
import math
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qrnn.errors import QRNNError
from qrnn.presets import Preset, load_preset
from qrnn.sweep import (
    DEFAULT_ROOT,
    DEFAULT_STALE_AFTER,
    DONE,
    DONE_FILE,
    DUPLICATE_ATTR,
    FAILED,
    FAILED_ATTR,
    INTERRUPTED,
    LOST,
    OWNERSHIP_CHECK_EVERY,
    POINT_ATTR,
    PRUNED,
    Member,
    _BetweenPointsSignals,
    _table,
    _Worker,
    add_worker_arguments,
    format_value,
    point_trials,
    pool_key,
    read_json,
    retries,
    trials_state,
)

SAMPLERS = ("tpe", "random", "grid", "cmaes")
PRUNERS = ("none", "median", "asha", "hyperband")
# How many of the best trials the end of a search prints.
BEST_SHOWN = 5


class Tune(_Worker):
    """The search over `preset`'s `[search]` space: `trials` trials in the study `<preset>-tune` (see the module
    docstring)."""

    def __init__(
        self,
        preset: Preset,
        root: str | os.PathLike[str] = DEFAULT_ROOT,
        trials: int = 20,
        sampler: str = "tpe",
        pruner: str = "asha",
        storage: str | None = None,
        stale_after: float = DEFAULT_STALE_AFTER,
        pool_size: int = 1,
        printer: Callable[[str], None] | None = None,
    ) -> None:
        if not preset.search:
            raise QRNNError(f"preset {preset.path} has no [search] table: add one (option = {{ low = ..., high = "
                            f"... }} or {{ choices = [...] }}), or run its grid with `qrnn sweep`")
        if not isinstance(trials, int) or trials < 1:
            raise QRNNError(f"--trials must be an integer >= 1, got {trials!r}")
        if sampler not in SAMPLERS:
            raise QRNNError(f"--sampler must be one of {', '.join(SAMPLERS)}, got {sampler!r}")
        if pruner not in PRUNERS:
            raise QRNNError(f"--pruner must be one of {', '.join(PRUNERS)}, got {pruner!r}")
        self.name = f"{preset.name}-tune"
        super().__init__(Path(root).resolve() / self.name, storage, stale_after, pool_size, printer)
        from qrnn.training.config import make_config

        self.preset = preset
        self.trials = trials
        self.sampler_name = sampler
        self.pruner_name = pruner
        self.base = make_config(preset.train_options()).as_dict()
        del self.base["out"]
        self.sampler = self._sampler()  # errors (a grid over a float range, cmaes missing) before any work
        self.pruner = self._pruner()

    # ---- the search space ----

    def _sampler(self) -> Any:
        import optuna

        seed = int(self.base["seed"])
        if self.sampler_name == "tpe":
            return optuna.samplers.TPESampler(seed=seed)
        if self.sampler_name == "random":
            return optuna.samplers.RandomSampler(seed=seed)
        if self.sampler_name == "grid":
            space: dict[str, list[Any]] = {}
            for key, entry in self.preset.search.items():
                if "choices" in entry:
                    space[key] = list(entry["choices"])
                elif isinstance(entry["low"], int) and not isinstance(entry["low"], float):
                    space[key] = list(range(entry["low"], entry["high"] + 1))
                else:
                    raise QRNNError(f"preset {self.preset.path}: [search] {key}: --sampler grid needs choices or an "
                                    "integer range, not a float range")
            return optuna.samplers.GridSampler(space, seed=seed)
        try:
            import cmaes  # noqa: F401 - Optuna's CMA-ES sampler needs it
        except ImportError:
            raise QRNNError("--sampler cmaes needs the cmaes package: pip install cmaes") from None
        return optuna.samplers.CmaEsSampler(seed=seed)

    def _pruner(self) -> Any:
        import optuna

        every = int(self.base["validate_every"])
        epochs = int(self.base["epochs"])
        if self.pruner_name == "none":
            return optuna.pruners.NopPruner()
        if self.pruner_name == "median":
            return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=every)
        if self.pruner_name == "asha":
            # Intermediate values come at validations (epochs): the first rung is the first validation.
            return optuna.pruners.SuccessiveHalvingPruner(min_resource=every)
        return optuna.pruners.HyperbandPruner(min_resource=every, max_resource=epochs)

    def suggest(self, trial: Any) -> dict[str, Any]:
        """The trial's values of the searched options (a retried trial gets its first attempt's values)."""
        values = {}
        for key, entry in self.preset.search.items():
            if "choices" in entry:
                values[key] = trial.suggest_categorical(key, entry["choices"])
            elif isinstance(entry["low"], int) and not isinstance(entry["low"], float):
                values[key] = trial.suggest_int(key, entry["low"], entry["high"], log=entry["log"])
            else:
                values[key] = trial.suggest_float(key, entry["low"], entry["high"], log=entry["log"])
        return values

    @property
    def study_name(self) -> str:  # type: ignore[override]
        """The search's study name."""
        return self.name

    def _member(self, trial: Any) -> Member:
        values = self.suggest(trial)
        key = trial.user_attrs.get(POINT_ATTR)
        if key is None:  # a first attempt: its folder (a retry copies the attribute, and so trains there too)
            key = f"trial-{trial.number:04d}"
            trial.set_user_attr(POINT_ATTR, key)
        options = {**self.base, **values}
        label = ", ".join(f"{name}={format_value(value)}" for name, value in values.items())
        record = {"preset": self.preset.name, "id": key, "varying": values, "options": options,
                  "trial": trial.number}
        return Member(trial, key, options, self.directory / key, label, record, pruning=True)

    # ---- running ----

    def run(self) -> int:
        """Run trials until the study holds `trials` of them finished (here and in other workers); then print
        the best ones. Returns the exit code: 0, 1 if a trial failed here, 128 + signal number if a signal
        stopped the search (its trial is queued again at once)."""
        from optuna.storages import fail_stale_trials
        from optuna.trial import TrialState

        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise QRNNError(f"cannot create the search folder {self.directory}: {error.strerror}") from None
        study = self.open()
        counts = {DONE: 0, PRUNED: 0, FAILED: 0, LOST: 0}
        with _BetweenPointsSignals() as signals:
            while signals.received is None:
                fail_stale_trials(study)
                trials = study.get_trials(deepcopy=False)
                counted = [t for t in trials if DUPLICATE_ATTR not in t.user_attrs
                           and (t.state != TrialState.FAIL or FAILED_ATTR in t.user_attrs)]
                waiting = sum(t.state == TrialState.WAITING for t in trials)
                wanted = min(self.pool_size, max(waiting, self.trials - len(counted)))
                if wanted <= 0:
                    if not any(t.state == TrialState.RUNNING for t in trials):
                        break
                    self._wait(signals, min(self.interval, OWNERSHIP_CHECK_EVERY))  # a peer's trial may go stale
                    continue
                members = []
                for _ in range(wanted):
                    trial = study.ask()  # a waiting retry first, else a new sample
                    self._claimed_now(study, trial)
                    members.append(self._member(trial))
                groups: dict[str, list[Member]] = {}
                for member in members:
                    groups.setdefault(pool_key(member.options), []).append(member)
                for group in groups.values():
                    for member in group:
                        self._print(f"tune {self.name}: trial {member.trial.number} ({member.label}) in "
                                    f"{member.directory}")
                    for outcome, signum in self._train_members(study, group):
                        if outcome == INTERRUPTED:
                            self._print(f"tune {self.name}: stopped by a signal; its trial(s) are queued again")
                            return 128 + signum
                        counts[outcome] += 1
            if signals.received is not None:
                self._print(f"tune {self.name}: stopped by a signal between trials")
                return 128 + signals.received
        self._print(f"tune {self.name}: this process finished {counts[DONE]} trial(s), pruned {counts[PRUNED]}, "
                    f"{counts[FAILED]} failed")
        self._print(self.best_table(study))
        return 1 if counts[FAILED] else 0

    def _claimed_now(self, study: Any, trial: Any) -> None:
        # `ask` set the trial RUNNING: its first heartbeat at once, so that a worker dying now leaves a trial
        # that goes stale (the keeper records them from here on).
        try:
            study._storage.record_heartbeat(trial._trial_id)
        except Exception as error:  # noqa: BLE001 - the keeper tries again and says so
            self._print(f"warning: first heartbeat of trial {trial.number} failed ({type(error).__name__})")

    # ---- reports ----

    def best_table(self, study: Any) -> str:
        """The best completed trials (lowest best validation loss), with the commands that evaluate the best
        checkpoint of each and continue its run."""
        from optuna.trial import TrialState

        trials = study.get_trials(deepcopy=False)
        complete = sorted((t for t in trials if t.state == TrialState.COMPLETE and t.value is not None),
                          key=lambda t: t.value)
        pruned = sum(t.state == TrialState.PRUNED for t in trials)
        failed = sum(t.state == TrialState.FAIL and FAILED_ATTR in t.user_attrs for t in trials)
        lines = [f"search {self.name} in {self.directory} ({self.storage_label()}): {len(complete)} complete, "
                 f"{pruned} pruned, {failed} failed; best {min(BEST_SHOWN, len(complete))}:"]
        names = list(self.preset.search)
        header = ["trial", "best val loss", *names, "folder"]
        rows = []
        commands = []
        for trial in complete[:BEST_SHOWN]:
            key = trial.user_attrs.get(POINT_ATTR, "")
            values = [format_value(trial.params.get(name, "-")) for name in names]
            rows.append([str(trial.number), f"{trial.value:.4g}", *values, str(self.directory / key)])
            done = read_json(self.directory / key / DONE_FILE) or {}
            more = int(self.base["epochs"]) * 2
            if done.get("best_checkpoint"):
                commands.append(f"  trial {trial.number}: qrnn evaluate {done['best_checkpoint']}")
            if done.get("final_checkpoint"):
                commands.append(f"  trial {trial.number}: qrnn resume {done['final_checkpoint']} --epochs {more}")
        if rows:
            lines += ["  " + line for line in _table(header, rows)]
            lines += commands
        return "\n".join(lines)

    def status_table(self) -> str:
        """The `--status` table: one line per trial folder (id, searched values, state, best validation loss,
        retries, detail)."""
        from optuna.trial import TrialState

        study = self.open(create=False)
        if study is None:
            return f"search {self.name} in {self.directory} ({self.storage_label()}): no trials yet"
        by_point = point_trials(study.get_trials(deepcopy=False))
        names = list(self.preset.search)
        header = ["id", *names, "state", "best val loss", "retries", "detail"]
        rows = []
        states = []
        for key, trials in sorted(by_point.items()):
            state = trials_state(trials)
            if state == "waiting":
                state = "pending"
            newest = trials[-1]
            finished = [t for t in trials if t.state in (TrialState.COMPLETE, TrialState.PRUNED)]
            detail = ""
            loss: float | None = None
            if finished:
                trial = finished[0]
                state = "pruned" if trial.state == TrialState.PRUNED else DONE
                reported = list(trial.intermediate_values.values())
                # A pruned trial's value is its last reported loss; its best is the lowest one.
                loss = min(reported) if state == "pruned" and reported else trial.value
                detail = str(trial.user_attrs.get("stop_reason", ""))
            else:
                reported = [v for t in trials for v in t.intermediate_values.values()]
                loss = min(reported) if reported else None
                detail = str(newest.user_attrs.get(FAILED_ATTR, "")) if state == FAILED else ""
                if state == "running":
                    running = next(t for t in trials if t.state == TrialState.RUNNING)
                    detail = f"trial {running.number}"
            states.append(state)
            values = [format_value(trials[0].params.get(name, "-")) for name in names]
            shown = "-" if loss is None or not math.isfinite(loss) else f"{loss:.4g}"
            rows.append([key, *values, state, shown, str(retries(trials)), detail])
        counts = {state: states.count(state) for state in (DONE, "pruned", "running", FAILED, "pending")}
        total = ", ".join(f"{count} {state}" for state, count in counts.items())
        lines = [f"search {self.name} in {self.directory} ({self.storage_label()}): {len(rows)} trials of "
                 f"{self.trials}: {total}", *_table(header, rows)]
        return "\n".join(lines)


def register(subparsers: Any) -> None:
    """Add the `tune` subcommand."""
    parser = subparsers.add_parser(
        "tune",
        help="search a preset's [search] space (TPE, random, grid, CMA-ES) with pruning; many processes may share it",
        description="Search a preset's [search] space: every trial trains the preset's [train] options with sampled "
        "values under <root>/<preset>-tune/trial-<number>/, reports its validation losses to the pruner, and the "
        "best trials are printed with the commands that evaluate or continue them. Start as many copies as you "
        "like on a shared storage, as with `qrnn sweep`.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    add_worker_arguments(parser)
    parser.add_argument("--trials", type=int, default=20, metavar="N", help="trials in the study, all workers together")
    parser.add_argument("--sampler", choices=SAMPLERS, default="tpe",
                        help="how trials are chosen (cmaes needs the cmaes package; grid needs choices or integer "
                        "ranges)")
    parser.add_argument("--pruner", choices=PRUNERS, default="asha",
                        help="how lagging trials are stopped, on the validation loss at each validation")
    parser.set_defaults(func=command_tune)


def command_tune(args: argparse.Namespace) -> int:
    """`qrnn tune PRESET`: run the search, or with --status show it."""
    tune = Tune(load_preset(args.preset), args.root, args.trials, args.sampler, args.pruner, storage=args.storage,
                stale_after=args.stale_after, pool_size=args.pool_size or 1)
    if args.status:
        print(tune.status_table())
        return 0
    return tune.run()
