"""Training a pool: many runs of one topology as one batched program.

A pool's members are ordinary runs (each its own `ShardTrainer` on one shard: its data stream, initialisation,
optimizer and learning rate, gradient clipping, validation, printed lines, TensorBoard run and checkpoints in its
own folder) whose forward and backward passes run together: `qrnn.model.run_pool` computes every member's step
in one pass over tensors with a leading member axis, reading the members' parameters from one `ParameterPool`.
Each member then clips its own gradient and steps its own optimizer, so that a member's run is its separate run
up to the rounding of the batched arithmetic. A member that stops (its epochs, `--stop-at-loss`, its
`--timeout`, a pruning or a lost claim) leaves the pool with its closing checkpoint, and the pool shrinks.

Members share what fixes the tensors' shapes and the optimizer's code: `POOL_SHARED`. L-BFGS evaluates its
closure a different number of times per member and step, so L-BFGS runs train one after another instead.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from qrnn.errors import QRNNError
from qrnn.training.config import TrainConfig, flag, make_config
from qrnn.training.distributed import Launch
from qrnn.training.loop import Resumption, RunInfo, ShardTrainer, StopSignals, TrainResult, postselect_steps
from qrnn.training.models import choose_threads, flush_denormals, resolve_device
from qrnn.training.progress import ProgressDisplay
from qrnn.training.run_log import RunLog

# The options every member of a pool has in common: they fix the shapes of the pool's tensors (the model, the
# data's word width, batch and length), the optimizer's code and the shared loop. Everything else (seed,
# learning rate, weight decay, gradient clip, initialisation, epochs, stop-at-loss, timeout, tag, out) may differ.
POOL_SHARED = (
    "model", "workspace", "stages", "order", "degree", "initial_bias", "dataset", "alphabet", "sentence_length",
    "batch_size", "optimizer", "loss", "device", "dtype", "method", "validate_every", "num_shards",
)

# Called after each validation of a member with (epoch, validation loss): None to go on, "pruned" to stop the
# member as pruned (with its closing checkpoint), "lost" to stop it at once writing nothing more.
ValidationHook = Callable[[int, float], "str | None"]


@dataclass
class PoolMember:
    """One member of a pool: its configuration, and optionally its run identity (a resumed run's), the
    checkpoint it resumes from, and a hook called after each of its validations (`ValidationHook`)."""

    config: TrainConfig
    run: RunInfo | None = None
    resumption: Resumption | None = None
    on_validation: ValidationHook | None = None


def pool_key(config: TrainConfig | dict[str, Any]) -> tuple[Any, ...] | None:
    """What members must have in common to share a pool (equal keys pool), or None for a run that trains alone
    (L-BFGS, several shards)."""
    values = config.as_dict() if isinstance(config, TrainConfig) else dict(config)
    if values.get("optimizer") == "lbfgs" or int(values.get("num_shards") or 1) != 1:
        return None
    return tuple(values.get(name) for name in POOL_SHARED)


def check_pool_configs(configs: Sequence[TrainConfig]) -> None:
    """One-line errors unless the configurations can train as one pool."""
    if not configs:
        raise QRNNError("a pool needs at least one run")
    first = configs[0]
    for index, config in enumerate(configs[1:], start=1):
        for name in POOL_SHARED:
            if getattr(config, name) != getattr(first, name):
                raise QRNNError(
                    f"pool member {index} has {flag(name)} {getattr(config, name)!r}, member 0 "
                    f"{getattr(first, name)!r}: members share {', '.join(flag(n) for n in POOL_SHARED)}"
                )
    if first.num_shards != 1:
        raise QRNNError(f"a pool trains on one shard per member; got {flag('num_shards')} {first.num_shards}")


class _MemberDisplay:
    """A member's view of the pool's display: its messages, prefixed with its run's name; no status line."""

    def __init__(self, shared: ProgressDisplay, prefix: str, start_epoch: int) -> None:
        self.shared = shared
        self.prefix = prefix
        self.start_epoch = start_epoch
        self.started = time.perf_counter()

    def rate(self, epoch: int) -> float:
        elapsed = time.perf_counter() - self.started
        done = epoch - self.start_epoch
        return done / elapsed if elapsed > 0 and done > 0 else 0.0

    def update(self, epoch: int, loss: float, min_postselection: float) -> None:
        pass

    def message(self, text: str) -> None:
        self.shared.message("\n".join(f"[{self.prefix}] {line}" for line in text.rstrip("\n").split("\n")))

    def close(self) -> None:
        pass


def _pool_forward(
    trainers: Sequence[ShardTrainer], inputs: torch.Tensor, targets: torch.Tensor, postselect: Any,
    generators: Sequence[torch.Generator] | None, parameters: Any,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Every member's pass: one pooled pass for QRNNs; the classical baselines run member by member."""
    from qrnn.model import QRNN, run_pool

    models = [trainer.model for trainer in trainers]
    if isinstance(models[0], QRNN):
        return run_pool(models, inputs, targets, postselect, generators, parameters)  # type: ignore[arg-type]
    batch = inputs.shape[1]
    parts = []
    for p, model in enumerate(models):
        rule = postselect
        if callable(postselect):
            def rule(step: int, step_targets: torch.Tensor, p: int = p) -> torch.Tensor:
                return postselect(step, step_targets)[p * batch : (p + 1) * batch]
        parts.append(model(inputs[p], targets[p], postselect=rule,
                           generator=None if generators is None else generators[p]))
    return (
        torch.stack([part[0] for part in parts]),
        torch.stack([part[1] for part in parts]),
        torch.tensor([part[2] for part in parts], dtype=torch.float64),
    )


class PoolTrainer:
    """Trains the members of a pool together (see the module docstring)."""

    def __init__(self, members: Sequence[PoolMember], device: torch.device) -> None:
        assert all(member.run is not None for member in members)
        self.members = list(members)
        self.trainers = [
            ShardTrainer(Launch(0, 1, 0, 1, distributed=False), device, member.config, member.run,
                         member.resumption)
            for member in self.members
        ]

    def _parameters(self, active: list[int]) -> Any:
        from qrnn.model import ParameterPool

        return ParameterPool([self.trainers[i].model for i in active])

    def _train_step(self, active: list[int], parameters: Any) -> tuple[list[float], list[float]]:
        trainers = [self.trainers[i] for i in active]
        batches = [trainer.training_batch() for trainer in trainers]
        parameters.zero_grad()
        probs, _, minimum = _pool_forward(
            trainers, torch.stack([b.inputs for b in batches]), torch.stack([b.targets for b in batches]), True,
            None, parameters,
        )
        losses = [
            trainer.loss_function(probs[p], batch.target_words, batch.scored)
            for p, (trainer, batch) in enumerate(zip(trainers, batches, strict=True))
        ]
        torch.stack(losses).sum().backward()
        parameters.distribute_gradients()
        for trainer in trainers:
            trainer.clip_gradients()
            trainer.optimizer.step()
        return [float(loss) for loss in torch.stack(losses).detach().cpu()], [float(m) for m in minimum.cpu()]

    @torch.no_grad()
    def _validate(self, due: list[int], parameters: Any) -> list[dict[str, Any]]:
        trainers = [self.trainers[i] for i in due]
        off_schedule = [
            None if trainer.epoch % trainer.config.validate_every == 0 else trainer.validation_streams()
            for trainer in trainers
        ]
        try:
            batches = [trainer.validation_batch() for trainer in trainers]
            postselected = torch.cat([batch.postselected for batch in batches])
            probs, measured, minimum = _pool_forward(
                trainers, torch.stack([b.inputs for b in batches]), torch.stack([b.targets for b in batches]),
                postselect_steps(postselected), [trainer.sampling for trainer in trainers], parameters,
            )
            return [
                trainer.validation_result(batch, probs[p], measured[p], float(minimum[p]))
                for p, (trainer, batch) in enumerate(zip(trainers, batches, strict=True))
            ]
        finally:
            for trainer, streams in zip(trainers, off_schedule, strict=True):
                if streams is not None:
                    trainer.restore_validation_streams(streams)

    def run(self, stop: StopSignals, started: float, display: ProgressDisplay) -> list[TrainResult]:
        """Train every member until it stops; one result per member."""
        results: list[TrainResult | None] = [None] * len(self.trainers)
        first_epochs = [trainer.epoch for trainer in self.trainers]
        active = [i for i, trainer in enumerate(self.trainers) if trainer.epoch < trainer.config.epochs]
        parameters = self._parameters(active) if active else None
        while active:
            step_started = time.perf_counter()
            losses, minima = self._train_step(active, parameters)
            seconds = time.perf_counter() - step_started
            elapsed = time.monotonic() - started
            leaving: dict[int, tuple[str, str]] = {}
            due = []
            for i, loss, minimum in zip(active, losses, minima, strict=True):
                trainer = self.trainers[i]
                trainer.epoch += 1
                trainer.record_training(loss, minimum, seconds)
                if trainer.validation_due():
                    due.append(i)
            train_loss = dict(zip(active, losses, strict=True))
            if due:
                for i, result in zip(due, self._validate(due, parameters), strict=True):
                    trainer = self.trainers[i]
                    if trainer.record_validation(result, train_loss[i]):
                        leaving[i] = ("stop-at-loss", "final")
                        continue
                    hook = self.members[i].on_validation
                    verdict = hook(trainer.epoch, result["loss"]) if hook is not None else None
                    if verdict == "pruned":
                        leaving[i] = ("pruned", "final")
                    elif verdict == "lost":
                        leaving[i] = ("lost", "")
            for i in active:
                trainer = self.trainers[i]
                if i in leaving:
                    continue
                if stop.received is not None:
                    leaving[i] = ("signal", "interrupted")
                elif trainer.config.timeout is not None and elapsed >= trainer.config.timeout:
                    leaving[i] = ("timeout", "interrupted")
                elif trainer.epoch >= trainer.config.epochs:
                    leaving[i] = ("epochs", "final")
            display.update(min(self.trainers[i].epoch for i in active), sum(losses) / len(losses), min(minima))
            for i, (reason, closing_kind) in leaving.items():
                trainer = self.trainers[i]
                if reason == "lost":
                    results[i] = trainer.abandon(first_epochs[i])
                else:
                    results[i] = trainer.finish(reason, closing_kind, first_epochs[i], stop, trainer.config.timeout)
            if leaving:
                active = [i for i in active if i not in leaving]
                parameters = self._parameters(active) if active else None
        for i, trainer in enumerate(self.trainers):
            if results[i] is None:  # resumed at or past its last epoch: nothing to train
                results[i] = trainer.finish("epochs", "final", first_epochs[i], stop, trainer.config.timeout)
        return [result for result in results if result is not None]


def run_pool_training(members: Sequence[PoolMember]) -> list[TrainResult]:
    """Check, then train the members as one pool (L-BFGS or multi-shard runs one after another); one result per
    member."""
    from qrnn.training.launch import _prepare_output, new_run, prepare, run_training

    members = [
        PoolMember(prepare(member.config, None), member.run, member.resumption, member.on_validation)
        for member in members
    ]
    if len(members) > 1 and any(pool_key(member.config) is None for member in members):
        print(f"note: {flag('optimizer')} lbfgs or several shards: the {len(members)} runs train one after another",
              file=sys.stderr)
        return [run_training(member.config, member.run, member.resumption, on_validation=member.on_validation)
                for member in members]
    check_pool_configs([member.config for member in members])
    members = [
        PoolMember(member.config, member.run or new_run(member.config), member.resumption, member.on_validation)
        for member in members
    ]
    for member in members:
        assert member.run is not None
        _prepare_output(Path(member.run.out))
    first = members[0].config
    started = time.monotonic()
    device = resolve_device(first.device)
    threads_before = torch.get_num_threads()
    threads = choose_threads(len(members) * (first.batch_size or 1), first.workspace, 1, device, first.model)
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        with StopSignals(True) as stop, flush_denormals():
            pool = PoolTrainer(members, device)
            display = ProgressDisplay(max(m.config.epochs for m in members), min(t.epoch for t in pool.trainers))
            for member, trainer in zip(members, pool.trainers, strict=True):
                run = trainer.run
                resumption = member.resumption
                trainer.display = _MemberDisplay(display, run.name, trainer.epoch)
                trainer.log = RunLog(run.log_dir, purge_step=trainer.epoch + 1 if resumption else None)
                note = f"resumed from {resumption.path} at epoch {trainer.epoch}" if resumption else ""
                trainer.log.arguments(trainer.config.as_dict(), trainer.epoch, note)
            display.message(
                f"training a pool of {len(members)} runs: {first.dataset}, {first.model} workspace "
                f"{first.workspace}, batch {first.batch_size}, {device}, {first.dtype}"
            )
            try:
                results = pool.run(stop, started, display)
            finally:
                display.close()
                for trainer in pool.trainers:
                    if trainer.log is not None:
                        trainer.log.hyperparameters(
                            trainer.config.as_dict(),
                            {
                                "best_validation_loss": trainer.best_validation_loss,
                                "best_character_error_rate": trainer.best_character_error_rate,
                            },
                        )
                        trainer.log.close()
    finally:
        torch.set_num_threads(threads_before)
    return results


def train_pool(
    options: Sequence[dict[str, Any]], resume_from: Sequence[str | None] | None = None
) -> list[TrainResult]:
    """Train several runs as one pool, from Python: one dict of the command line's options per member (as
    `qrnn.train` takes them; see `POOL_SHARED` for what they must have in common), and optionally per member a
    checkpoint of its own earlier run to resume from (None: a fresh run). One `TrainResult` per member."""
    from qrnn.training.checkpoint import out_directory_of, read_checkpoint

    if resume_from is not None and len(resume_from) != len(options):
        raise QRNNError(f"resume_from needs one entry per member ({len(options)}), got {len(resume_from)}")
    members = []
    for index, member_options in enumerate(options):
        config = make_config(member_options)
        path = resume_from[index] if resume_from is not None else None
        if path is None:
            members.append(PoolMember(config))
            continue
        payload = read_checkpoint(path)
        run = RunInfo(name=payload["run"]["name"], run_id=payload["run"]["id"],
                      out=str(out_directory_of(Path(path), config.out)))
        members.append(PoolMember(config, run, Resumption(str(path))))
    return run_pool_training(members)
