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
from qrnn.training.checkpoint import out_directory_of, read_checkpoint, timestamp, warn_about_data
from qrnn.training.config import TrainConfig, check_config, flag, make_config, option_names
from qrnn.training.distributed import (
    Launch,
    check_port_free,
    join_process_group,
    leave_process_group,
    synchronise,
    torchrun_launch,
)
from qrnn.training.loop import Resumption, RunInfo, ShardTrainer, StopSignals, TrainResult
from qrnn.training.models import build_model, choose_threads, flush_denormals, resolve_device
from qrnn.training.progress import ProgressDisplay
from qrnn.training.run_log import RunLog

# Options a resumed run may change; the others are fixed by the checkpoint.
RESUME_CHANGEABLE = ("epochs", "timeout", "stop_at_loss", "port", "num_validation_samples")
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


def _prepare_output(out: Path) -> None:
    for sub in ("runs", "checkpoints"):
        try:
            (out / sub).mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise QRNNError(f"cannot create {out / sub} (--out {out}): {error.strerror}") from None
        if not os.access(out / sub, os.W_OK):
            raise QRNNError(f"cannot write into {out / sub}; choose another --out")


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
    resolve_device(config.device, local_rank)
    probe = lookup(config.dataset, alphabet=config.alphabet).create(
        sentence_length=config.sentence_length, batch_size=config.batch_size, shard=0,
        num_shards=config.num_shards, seed=config.seed,
    )
    build_model({**config.as_dict(), "input_size": probe.input_size})
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
        results.put(("error", (str(error), error.exit_code)))
        raise SystemExit(error.exit_code) from None
    if rank == 0:
        results.put(("result", result))
    # Leave without running the interpreter's teardown: destructors of torch.distributed's native threads at
    # exit sometimes abort a finished shard ("terminate called without an active exception"), which the parent
    # would report as a failed run. Everything the shard produced is written and handed over by now.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _spawn(config: TrainConfig, run: RunInfo, resumption: Resumption | None) -> TrainResult:
    """Run `config.num_shards` shard processes on this machine and wait for them; SIGINT/SIGTERM received here
    are passed on to them (a cluster pre-empting the job signals this process)."""
    import torch.multiprocessing as mp
    from torch.multiprocessing.spawn import ProcessExitedException

    results = mp.get_context("spawn").SimpleQueue()
    context = mp.start_processes(
        _spawned_shard, args=(config, run, resumption, results), nprocs=config.num_shards, join=False,
        start_method="spawn",
    )

    def forward(signum: int, _frame: object) -> None:
        for process in context.processes:
            if process.is_alive() and process.pid is not None:
                os.kill(process.pid, signum)

    previous = {signum: signal.signal(signum, forward) for signum in StopSignals.HANDLED}
    try:
        while not context.join():
            pass
    except ProcessExitedException:
        messages = []
        while not results.empty():
            kind, value = results.get()
            if kind == "error":
                messages.append(value)
        if messages:
            message, code = messages[0]
            # A fault at run time (a full disk) keeps its exit code across the process boundary.
            raise (RunFault if code == RunFault.exit_code else QRNNError)(message) from None
        raise
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
    while not results.empty():
        kind, value = results.get()
        if kind == "result":
            return value
    raise RuntimeError("the shards finished without reporting a result")


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
    if launch is None or launch.rank == 0:
        _prepare_output(Path(run.out))
    if (on_validation is not None or lost is not None) and (launch is not None or config.num_shards != 1):
        raise QRNNError("a sweep's training hooks need a run of one shard in this process (--num-shards 1)")
    if launch is not None:
        return run_shard(launch, config, run, resumption)
    if config.num_shards == 1:
        return run_shard(Launch(0, 1, 0, 1, distributed=False), config, run, resumption, on_validation=on_validation,
                         lost=lost)
    return _spawn(config, run, resumption)


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
    them. `dataset` may also be what `qrnn.datasets.from_arrays` returns."""
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
