"""Starting and resuming training runs: every check before any work, then one shard here, N spawned shards, or
this process's shard of a torchrun job. `train` and `resume` are the Python API behind the command line.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from qrnn.errors import QRNNError, RunFault
from qrnn.training.checkpoint import (
    checkpoint_name,
    out_directory_of,
    read_checkpoint,
    timestamp,
    warn_about_data,
)
from qrnn.training.config import TrainConfig, check_config, flag, make_config, option_names
from qrnn.training.distributed import (
    Launch,
    check_port_free,
    join_process_group,
    leave_process_group,
    open_rendezvous,
    synchronise,
    torchrun_launch,
)
from qrnn.training.loop import Resumption, RunInfo, ShardTrainer, StopSignals, TrainResult
from qrnn.training.models import DTYPES, build_model, choose_threads, flush_denormals, resolve_device
from qrnn.training.progress import ProgressDisplay
from qrnn.training.run_log import RunLog

# Options a resumed run may change; the others are fixed by the checkpoint.
RESUME_CHANGEABLE = ("epochs", "timeout", "stop_at_loss", "stop_at_training_loss", "port", "num_validation_samples")
# The longest file name common file systems allow (ext4, XFS, APFS, NTFS: 255 bytes or UTF-16 units).
MAX_NAME_BYTES = 255
# Largest batch size tried when looking for the one a dataset needs (simple-seq: 2, simple-quotes: 6).
_LARGEST_AUTOMATIC_BATCH = 64


def resolve_batch_size(config: TrainConfig) -> int:
    """The batch size per shard: the given one once the dataset accepts it, or by default the smallest the
    dataset accepts with this many shards (1 for most; simple-seq on one shard: 2). One-line errors."""
    from qrnn.datasets import lookup

    entry = lookup(config.dataset, alphabet=config.alphabet)
    if config.batch_size is not None:
        entry.check_options(
            sentence_length=config.sentence_length, batch_size=config.batch_size, num_shards=config.num_shards
        )
        return config.batch_size
    first_error: QRNNError | None = None
    for candidate in range(1, _LARGEST_AUTOMATIC_BATCH + 1):
        try:
            entry.check_options(
                sentence_length=config.sentence_length, batch_size=candidate, num_shards=config.num_shards
            )
            return candidate
        except QRNNError as error:
            first_error = first_error or error
    assert first_error is not None
    raise first_error


def prepare_output(out: Path) -> None:
    """Create `out`'s `runs/` and `checkpoints/` folders; one-line errors where they cannot be written."""
    for sub in ("runs", "checkpoints"):
        try:
            (out / sub).mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise QRNNError(f"cannot create {out / sub} (--out {out}): {error.strerror}") from None
        if not os.access(out / sub, os.W_OK):
            raise QRNNError(f"cannot write into {out / sub}; choose another --out")


def check_name_lengths(config: TrainConfig) -> None:
    """One-line error when `--tag` makes the run's log folder or checkpoint names longer than a file name may be
    (255 bytes on every common file system)."""
    from qrnn.datasets import dataset_label

    label = dataset_label(config.dataset)
    # The longest names a run writes: its log folder, and a checkpoint of the longest kind.
    longest = max(
        len(checkpoint_name(config.tag, label, "0" * 6, "interrupted").encode()),
        len(f"{config.tag}-{label}--{'0' * 6}-{timestamp()}".encode()),
    )
    if longest > MAX_NAME_BYTES:
        room = MAX_NAME_BYTES - (longest - len(config.tag.encode()))
        raise QRNNError(
            f"--tag of {len(config.tag.encode())} bytes makes checkpoint names of {longest} bytes, longer than a file "
            f"name may be ({MAX_NAME_BYTES}); use a --tag of at most {max(room, 0)} bytes with this dataset"
        )


def check_memory(
    config: TrainConfig, input_size: int, batch: int, length: int, device: torch.device, shards_here: int
) -> None:
    """One-line error, before any work, when a training pass over `batch` sequences of `length` words needs more
    memory than `device` has free (`shards_here` shards share a CPU's memory), naming the option to change and how
    far: the largest workspace that fits, or else the longest sequences (or a smaller batch)."""
    from qrnn.model import available_memory

    available = available_memory(device)
    if available is None:
        return
    if device.type == "cpu":
        available //= max(shards_here, 1)
    estimators: dict[int, Callable[[int, int], int]] = {}

    def fits(workspace: int, steps: int = length) -> bool:
        if workspace not in estimators:
            estimators[workspace] = _memory_estimator(config, input_size, workspace)
        return estimators[workspace](batch, steps) <= available

    if fits(config.workspace):
        return
    required = estimators[config.workspace](batch, length)
    where = f"{available / 2**30:.1f} GiB is free on {device}" + (
        f" for each of {shards_here} shards" if device.type == "cpu" and shards_here > 1 else ""
    )
    if fits(1):
        width = "hidden units" if config.model != "qrnn" else "workspace qubits"
        raise QRNNError(
            f"--workspace {config.workspace} needs about {required / 2**30:.3g} GiB for a training pass over "
            f"batch {batch} x length {length}, but only {where}; at most --workspace "
            f"{_largest(1, config.workspace, fits)} ({width}) fits"
        )
    advice = "use a smaller --batch-size"
    # Where --sentence-length sets the length (datasets with a fixed length ignore it), say how long fits.
    if length == config.sentence_length and fits(config.workspace, 2):
        longest = _largest(2, length, lambda steps: fits(config.workspace, steps))
        advice = f"at most --sentence-length {longest} fits with --workspace {config.workspace}, or {advice}"
    raise QRNNError(
        f"a training pass over batch {batch} x length {length} needs about {required / 2**30:.3g} GiB, but only "
        f"{where}, too little even for --workspace 1; {advice}"
    )


def _largest(low: int, high: int, fits: Callable[[int], bool]) -> int:
    """The largest value in [low, high) that `fits`, given that `low` fits, `high` does not and the need grows
    with the value: a bisection (a baseline's workspace or a sequence length may be in the millions)."""
    while high - low > 1:
        middle = (low + high) // 2
        low, high = (middle, high) if fits(middle) else (low, middle)
    return low


def _memory_estimator(config: TrainConfig, input_size: int, workspace: int) -> Callable[[int, int], int]:
    """(batch, length) -> the bytes a training pass needs at `workspace`: the model's own estimate (a QRNN's for
    its method; a baseline's from its sizes, before building it, since building a huge baseline is itself the
    allocation that fails)."""
    itemsize = DTYPES[config.dtype].itemsize
    if config.model != "qrnn":
        from qrnn.baselines import estimate_memory_bytes

        return lambda batch, length: estimate_memory_bytes(config.model, input_size, workspace, batch, length, itemsize,
                                                           config.layers)
    model = build_model({**config.as_dict(), "workspace": workspace, "input_size": input_size})
    model.to(DTYPES[config.dtype])
    return lambda batch, length: int(model.estimate_memory_bytes(batch, length))  # type: ignore[operator]


def prepare(config: TrainConfig, launch: Launch | None) -> TrainConfig:
    """Check everything that can be checked before work starts; a copy of `config` with the shard count and
    batch size settled. Raises `QRNNError` (one line)."""
    check_config(config)
    config = dataclasses.replace(config)
    from qrnn.datasets import canonical_name, lookup

    # A file dataset is recorded by its absolute path, so that resume and evaluate work from any directory.
    config.dataset = canonical_name(config.dataset)
    if launch is not None and launch.torchrun:
        # Under torchrun the job's size is WORLD_SIZE, whatever --num-shards says.
        config.num_shards = launch.world_size
    config.batch_size = resolve_batch_size(config)
    local_rank = launch.local_rank if launch is not None else 0
    device = resolve_device(config.device, local_rank)
    check_name_lengths(config)
    probe = lookup(config.dataset, alphabet=config.alphabet).create(
        sentence_length=config.sentence_length, batch_size=config.batch_size, shard=0,
        num_shards=config.num_shards, seed=config.seed,
    )
    shards_here = launch.local_world_size if launch is not None else config.num_shards
    check_memory(config, probe.input_size, probe.sequences_per_batch, probe.sequence_length, device, shards_here)
    if (launch is None or not launch.torchrun) and config.num_shards > 1:
        check_port_free(config.port)
    return config


def new_run(config: TrainConfig) -> RunInfo:
    """A fresh run identity: `<tag>-<dataset>--<6 hex>-<timestamp>` under the resolved `--out`."""
    from qrnn.datasets import dataset_label

    started = timestamp()
    fingerprint = json.dumps(config.as_dict(), sort_keys=True) + f"/{time.time_ns()}/{os.getpid()}"
    run_id = hashlib.sha256(fingerprint.encode()).hexdigest()[:6]
    return RunInfo(name=f"{config.tag}-{dataset_label(config.dataset)}--{run_id}-{started}", run_id=run_id,
                   out=str(Path(config.out).resolve()))


def run_shard(
    launch: Launch,
    config: TrainConfig,
    run: RunInfo,
    resumption: Resumption | None,
    address: str | None = None,
    escalate: bool = True,
    on_validation: Callable[[int, float], str | None] | None = None,
    lost: threading.Event | None = None,
) -> TrainResult:
    """Train this process's shard to the end (the result is complete on shard 0); `on_validation` and `lost`
    are a sweep's hooks (see `ShardTrainer`)."""
    started = time.monotonic()
    device = resolve_device(config.device, launch.local_rank)
    threads_before = torch.get_num_threads()
    threads = choose_threads(config.batch_size or 1, config.workspace, launch.local_world_size, device, config.model)
    if threads is not None:
        torch.set_num_threads(threads)
    join_process_group(launch, device, address, config.port if address is not None else None)
    try:
        with StopSignals(escalate) as stop, flush_denormals():
            leader = launch.rank == 0
            trainer = ShardTrainer(launch, device, config, run, resumption, on_validation=on_validation, lost=lost)
            if leader:
                trainer.display = ProgressDisplay(config.epochs, trainer.epoch)
                trainer.log = RunLog(run.log_dir, purge_step=trainer.epoch + 1 if resumption else None,
                                     write_through=lost is not None)
                note = f"resumed from {resumption.path} at epoch {trainer.epoch}" if resumption else ""
                trainer.log.arguments(config.as_dict(), trainer.epoch, note)
                trainer.display.message(
                    f"{'resuming' if resumption else 'training'} run {run.name}: {config.dataset}, "
                    f"{describe_model(trainer.model)}, {config.num_shards} shard(s) "
                    f"x batch {config.batch_size}, {device}, {config.dtype}; logs in {run.log_dir}"
                )
            try:
                result = trainer.run_epochs(stop, config.timeout, started)
                # Every shard must be done with its last collective before any of them tears the group down:
                # a shard leaving while another still talks to it aborts that one (gloo's threads terminate).
                synchronise(launch)
            finally:
                if trainer.display is not None:
                    trainer.display.close()
                if trainer.log is not None and not (lost is not None and lost.is_set()):
                    trainer.log.hyperparameters(
                        config.as_dict(),
                        {
                            "best_validation_loss": trainer.best_validation_loss,
                            "best_character_error_rate": trainer.best_character_error_rate,
                        },
                    )
                    trainer.log.close()
    finally:
        leave_process_group(launch)
        torch.set_num_threads(threads_before)
    return result


def _spawned_shard(rank: int, config: TrainConfig, run: RunInfo, resumption: Resumption | None, results: Any) -> None:
    """Entry point of a spawned shard process (module level, so the spawn start method can import it)."""
    launch = Launch(rank, config.num_shards, rank, config.num_shards, distributed=True)
    try:
        # Ctrl-C reaches every process of the terminal's group and the parent forwards it as well: only note it.
        result = run_shard(launch, config, run, resumption, address="127.0.0.1", escalate=False)
    except QRNNError as error:
        # The error itself (its class carries the exit code); shard 0's names the checkpoints it wrote.
        results.put(("error", rank, error))
        _leave(error.exit_code)
    if rank == 0:
        results.put(("result", rank, result))
    _leave(0)


def _leave(code: int) -> None:
    # Leave without running the interpreter's teardown: destructors of torch.distributed's native threads at
    # exit sometimes abort a finished shard ("terminate called without an active exception"), which the parent
    # would report as a failed run. Everything the shard produced is written and handed over by now.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


# After a shard fails, how long the others get to notice (their next collective fails) and exit by themselves
# before they are terminated, and how long after SIGTERM before SIGKILL.
_SHARD_GRACE_SECONDS = 10.0


def _wait_for_shards(processes: list[Any]) -> int | None:
    """Wait until every shard exited; the index of the first that failed (the others are then stopped), or None
    when all succeeded."""
    from multiprocessing.connection import wait

    while True:
        running = {process.sentinel: index for index, process in enumerate(processes) if process.exitcode is None}
        if not running:
            return None
        for sentinel in wait(list(running)):
            process = processes[running[sentinel]]
            process.join()
            if process.exitcode != 0:
                _stop_shards(processes)
                return running[sentinel]


def _stop_shards(processes: list[Any]) -> None:
    deadline = time.monotonic() + _SHARD_GRACE_SECONDS
    for process in processes:
        process.join(max(deadline - time.monotonic(), 0.0))
    for stop in ("terminate", "kill"):
        alive = [process for process in processes if process.is_alive()]
        for process in alive:
            getattr(process, stop)()
        for process in alive:
            process.join(_SHARD_GRACE_SECONDS)


def last_checkpoint(run: RunInfo, resumption: Resumption | None = None) -> str | None:
    """The newest complete checkpoint of `run` in its checkpoints folder (or the one a resume started from),
    None when it has none: what a run stopped by a fault leaves to continue from."""
    mine = [path for path in run.checkpoint_dir.glob(f"checkpoint-*--{run.run_id}-*.tar") if path.is_file()]
    if mine:
        return str(max(mine, key=lambda path: path.stat().st_mtime_ns))
    return resumption.path if resumption is not None else None


def _shard_exception(context: Any, index: int) -> str:
    """The last line of the traceback a spawned shard left (torch.multiprocessing writes it to a file), or its exit
    code."""
    import pickle

    try:
        with open(context.error_files[index], "rb") as stream:
            trace = pickle.load(stream)  # written by torch.multiprocessing in our own child: a str
        return str(trace).strip().splitlines()[-1]
    except (OSError, EOFError, pickle.UnpicklingError, IndexError):
        return f"exit code {context.processes[index].exitcode}"


def _spawn(config: TrainConfig, run: RunInfo, resumption: Resumption | None) -> TrainResult:
    """Run `config.num_shards` shard processes on this machine and wait for them; SIGINT/SIGTERM received here
    are passed on to them (a cluster pre-empting the job signals this process). A shard that raised a one-line
    error ends the run with it; a shard that died (killed, crashed) ends it with one line naming the shard and
    the last good checkpoint."""
    import torch.multiprocessing as mp

    results = mp.get_context("spawn").SimpleQueue()
    context = mp.start_processes(
        _spawned_shard, args=(config, run, resumption, results), nprocs=config.num_shards, join=False,
        start_method="spawn",
    )
    processes = context.processes

    def forward(signum: int, _frame: object) -> None:
        for process in processes:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signum)

    previous = {signum: signal.signal(signum, forward) for signum in StopSignals.HANDLED}
    try:
        failed = _wait_for_shards(processes)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    reports = []
    while not results.empty():
        reports.append(results.get())
    reports.sort(key=lambda report: report[1])
    if failed is None:
        for kind, _rank, value in reports:
            if kind == "result":
                return value
        raise RuntimeError("the shards finished without reporting a result")
    errors = [value for kind, _rank, value in reports if kind == "error"]
    if errors:
        raise errors[0]  # the lowest shard's: shard 0's names the checkpoints it wrote
    # A shard killed by a signal is the cause; the others then fail on their next collective.
    died = next((index for index, process in enumerate(processes) if (process.exitcode or 0) < 0), failed)
    code = processes[died].exitcode or 0
    how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"failed ({_shard_exception(context, died)})"
    good = last_checkpoint(run, resumption)
    kept = f"the last good checkpoint is {good}; continue with `qrnn resume {good}`" if good else (
        "no checkpoint was written"
    )
    raise RunFault(f"shard {died} of {config.num_shards} {how}; the run stopped and {kept}")


def run_training(
    config: TrainConfig,
    run: RunInfo | None = None,
    resumption: Resumption | None = None,
    on_validation: Callable[[int, float], str | None] | None = None,
    lost: threading.Event | None = None,
) -> TrainResult:
    """Check, then train (here, spawned, or as this process's torchrun shard); the result of shard 0 (under
    torchrun every process returns its shard's view, complete on rank 0). `on_validation` (one process only):
    called after each validation with (epoch, loss); `lost` (one process only): set by another thread when the
    run's claim is taken over; see `ShardTrainer`."""
    launch = torchrun_launch()
    config = prepare(config, launch)
    run = run or new_run(config)
    spawning = launch is None and config.num_shards > 1
    # Bound before any folder is made or shard started: a taken port leaves nothing behind.
    store = open_rendezvous(config.port) if spawning else None
    if launch is None or launch.rank == 0:
        prepare_output(Path(run.out))
    if (on_validation is not None or lost is not None) and (launch is not None or config.num_shards != 1):
        raise QRNNError("a sweep's training hooks need a run of one shard in this process (--num-shards 1)")
    if launch is not None:
        return run_shard(launch, config, run, resumption)
    if not spawning:
        return run_shard(Launch(0, 1, 0, 1, distributed=False), config, run, resumption,
                         on_validation=on_validation, lost=lost)
    try:
        return _spawn(config, run, resumption)
    finally:
        del store  # closes the rendezvous port


def describe_model(model: torch.nn.Module) -> str:
    """What the start-of-training line says about the model: its size, and its qubits for a QRNN."""
    from qrnn.baselines import parameter_count

    qubits = getattr(model, "num_qubits", None)
    if qubits is not None:
        return f"{qubits} qubits simulated, {parameter_count(model)} parameters"
    config = getattr(model, "config", {})
    size = f"{config.get('model', 'model')} of width {config.get('hidden_size', '?')}"
    return f"{size}, {parameter_count(model)} parameters"


def train(preset: str | os.PathLike[str] | None = None, **options: Any) -> TrainResult:
    """Train from Python with the command line's options (flag names with underscores, e.g.
    `train(dataset="elman-xor", epochs=500, learning_rate=0.01)`); returns the `TrainResult`. With `preset` (a
    shipped preset's name or a .toml path), its `[train]` options are the starting point and `options` override
    them. `dataset` may also be what `qrnn.datasets.from_arrays` returns. Raises `QRNNError` (one line) for options
    that cannot work, before any work, and `RunFault` (a `QRNNError`) when training meets a non-finite number or a
    shard dies; the checkpoints written before the fault stay."""
    if "dataset" in options:
        from qrnn.datasets.files import dataset_name_of

        options = {**options, "dataset": dataset_name_of(options["dataset"])}
    if preset is not None:
        from qrnn.presets import load_preset

        loaded = load_preset(preset)
        options = loaded.train_options(options)
        if loaded.sweep or (loaded.seeds is not None and len(loaded.seeds) > 1) or loaded.first_seed is not None:
            print(
                f"note: preset {loaded.name} defines a sweep ({loaded.summary()}); train uses its [train] options "
                f"only; `qrnn sweep {preset}` runs every point",
                file=sys.stderr,
            )
    return run_training(make_config(options))


def prepare_resume(
    checkpoint: str | os.PathLike[str],
    override_learning_rate: float | None = None,
    override_batch_size: int | None = None,
    override_loss: str | None = None,
    **options: Any,
) -> tuple[TrainConfig, RunInfo, Resumption]:
    """Everything `resume` checks and settles before training: the run's configuration (with the allowed
    changes), its identity and the `Resumption`. One-line errors."""
    path = Path(checkpoint)
    payload = read_checkpoint(path)
    warn_about_data(payload, path)
    config = TrainConfig.from_dict(payload["config"])
    for name, value in options.items():
        if name not in option_names():
            raise QRNNError(f"unknown option {name!r} for resume; it may change: {', '.join(RESUME_CHANGEABLE)}")
        if name in RESUME_CHANGEABLE:
            setattr(config, name, value)
        elif getattr(config, name) != value:
            raise QRNNError(
                f"{flag(name)} cannot change on resume (the checkpoint has {getattr(config, name)!r}); "
                f"resume may change: {', '.join(flag(n) for n in RESUME_CHANGEABLE)}"
            )
    if override_batch_size is not None:
        config.batch_size = override_batch_size
    if override_learning_rate is not None:
        config.learning_rate = override_learning_rate
    changes_loss = override_loss is not None and override_loss != config.loss
    if override_loss is not None:
        # A fine-tuning stage: the checkpoints written from here on record the loss in use.
        config.loss = override_loss
    check_config(config)
    from qrnn.datasets.files import check_dataset_file

    check_dataset_file(payload.get("dataset_file"), config.dataset, config.alphabet, str(path))
    done = int(payload["epoch"])
    if config.epochs <= done:
        raise QRNNError(
            f"checkpoint {path} has already trained {done} epochs (of --epochs {config.epochs}); "
            f"pass --epochs greater than {done} to continue"
        )
    shards = len(payload["random_states"])
    launch = torchrun_launch()
    world = launch.world_size if launch is not None else config.num_shards
    if world != shards:
        raise QRNNError(f"checkpoint {path} was written by {shards} shard(s); resume it with {shards}, not {world}")
    run = RunInfo(
        name=payload["run"]["name"], run_id=payload["run"]["id"], out=str(out_directory_of(path))
    )
    return config, run, Resumption(str(path), override_learning_rate, reset_best=changes_loss)


def resume(
    checkpoint: str | os.PathLike[str],
    override_learning_rate: float | None = None,
    override_batch_size: int | None = None,
    override_loss: str | None = None,
    *,
    on_validation: Callable[[int, float], str | None] | None = None,
    lost: threading.Event | None = None,
    **options: Any,
) -> TrainResult:
    """Continue the run of `checkpoint` where it stopped (model, optimizer, random states, epoch, best values,
    log directory). `options` may change only `RESUME_CHANGEABLE`; others must match the checkpoint.
    `on_validation` and `lost`: a sweep's hooks, as for `run_training`."""
    config, run, resumption = prepare_resume(
        checkpoint, override_learning_rate, override_batch_size, override_loss, **options
    )
    return run_training(config, run, resumption, on_validation=on_validation, lost=lost)
