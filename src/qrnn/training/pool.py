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

import dataclasses
import math
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from qrnn.errors import QRNNError
from qrnn.training.config import STOP_AT_TRAINING_LOSS, TrainConfig, flag, make_config
from qrnn.training.distributed import Launch
from qrnn.training.loop import (
    Resumption,
    RunInfo,
    ShardTrainer,
    StopSignals,
    TrainResult,
    first_non_finite,
    postselect_steps,
)
from qrnn.training.models import choose_threads, flush_denormals, resolve_device
from qrnn.training.progress import ProgressDisplay
from qrnn.training.run_log import RunLog

# The options every member of a pool has in common: they fix the shapes of the pool's tensors (the model, the
# data's word width, batch and length), the optimizer's code and the shared loop. Everything else (seed,
# learning rate, weight decay, gradient clip, initialisation, epochs, stop-at-loss, timeout, tag, out) may differ.
POOL_SHARED = (
    "model", "workspace", "layers", "stages", "order", "degree", "initial_bias", "dataset", "alphabet",
    "sentence_length", "batch_size", "optimizer", "loss", "device", "dtype", "method", "validate_every", "num_shards",
)

# Called after each validation of a member with (epoch, validation loss): None to go on, "pruned" to stop the
# member as pruned (with its closing checkpoint), "lost" to stop it at once writing nothing more.
ValidationHook = Callable[[int, float], "str | None"]


@dataclass
class PoolMember:
    """One member of a pool: its configuration, and optionally its run identity (a resumed run's), the
    checkpoint it resumes from, a hook called after each of its validations (`ValidationHook`), an event set
    by another thread once its claim is lost (a sweep's trial taken over: it stops writing anything more), and a
    hook called with its result as soon as it has left the pool (a sweep records the point then, not when the
    whole pool ends)."""

    config: TrainConfig
    run: RunInfo | None = None
    resumption: Resumption | None = None
    on_validation: ValidationHook | None = None
    lost: threading.Event | None = None
    on_finish: Callable[[TrainResult], None] | None = None


def pool_key(config: TrainConfig | dict[str, Any]) -> tuple[Any, ...] | None:
    """What members must have in common to share a pool (equal keys pool), or None for a run that trains alone
    (L-BFGS, several shards)."""
    values = config.as_dict() if isinstance(config, TrainConfig) else dict(config)
    if values.get("optimizer") == "lbfgs" or int(values.get("num_shards") or 1) != 1:
        return None
    return tuple(values.get(name) for name in POOL_SHARED)


# The largest pool a sweep chooses by itself (`default_pool_size`): past it the gains of the paper's shapes level
# off, and a pool's members all wait for its slowest step.
DEFAULT_POOL_LIMIT = 32


def default_pool_size(options: dict[str, Any]) -> int:
    """How many runs like `options` a sweep trains as one pool when not told: 1 where pools do not batch the
    work (L-BFGS, several shards, the classical baselines, the statevector path), else as many as a quarter of
    the free memory holds, at most DEFAULT_POOL_LIMIT."""
    from qrnn.model import available_memory
    from qrnn.training.launch import prepare
    from qrnn.training.models import build_model

    config = make_config(options)
    if pool_key(config) is None or config.model != "qrnn":
        return 1
    config = prepare(config, None)
    from qrnn.datasets import lookup

    dataset = lookup(config.dataset, alphabet=config.alphabet).create(
        sentence_length=config.sentence_length, batch_size=config.batch_size, shard=0, num_shards=1,
        seed=config.seed,
    )
    model = build_model({**config.as_dict(), "input_size": dataset.input_size})
    batch, length = dataset.batch("train").inputs.shape[:2]  # the dataset's own length (MNIST's is fixed)
    if model.choose_method(batch, length) != "kernel":  # type: ignore[operator]
        return 1
    need = max(1, model.estimate_memory_bytes(batch, length))  # type: ignore[operator]
    available = available_memory(resolve_device(config.device)) or need * DEFAULT_POOL_LIMIT * 4
    return int(max(1, min(DEFAULT_POOL_LIMIT, available // 4 // need)))


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


def optimizer_group_key(optimizer: torch.optim.Optimizer) -> tuple[Any, ...]:
    """What members' optimizers must share to step as one: class, hyperparameters and the number of steps
    taken (resumed members may have taken different numbers)."""
    if len(optimizer.param_groups) != 1:
        raise QRNNError("a pool's optimizers must have one parameter group each")
    hyper = {k: repr(v) for k, v in optimizer.param_groups[0].items() if k != "params"}
    steps = sorted({repr(state.get("step")) for state in optimizer.state.values()})
    return (type(optimizer).__name__, tuple(sorted(hyper.items())), tuple(steps))


class PooledOptimizers:
    """Steps the members' optimizers of a pool.

    With `stacked` (the members' gradients land in the `ParameterPool`'s flat leaf), members whose optimizers
    share `optimizer_group_key` (a pool of seeds: all of them; they must be consecutive members) step as ONE
    optimizer of their class over their rows of the flat leaf: torch's own step, once for the group, on one
    tensor. An optimizer's update is elementwise in each tensor, its state and hyperparameters, so every member
    gets exactly the numbers its own optimizer would have computed. The members' optimizer states become views of
    the group's state (their `state_dict`, and so their checkpoints, stay current and ordinary). Without
    `stacked`, each member's optimizer steps on its own.
    """

    def __init__(self, parameters: Any, optimizers: Sequence[torch.optim.Optimizer], stacked: bool = True) -> None:
        self.parameters = parameters
        self.optimizers = list(optimizers)
        # (first member, end, group optimizer, its leaf: rows first..end of the flat parameters) per run of
        # members with the same key.
        self.groups: list[tuple[int, int, torch.optim.Optimizer, torch.Tensor]] = []
        self.aliased = False
        if not stacked:
            return
        keys = [optimizer_group_key(optimizer) for optimizer in self.optimizers]
        start = 0
        for index in range(1, len(keys) + 1):
            if index == len(keys) or keys[index] != keys[start]:
                self.groups.append(self._group(start, index))
                start = index

    def _group(self, start: int, end: int) -> tuple[int, int, torch.optim.Optimizer, torch.Tensor]:
        first = self.optimizers[start]
        leaf = self.parameters.flat.detach()[start:end].requires_grad_()
        hyper = {k: v for k, v in first.param_groups[0].items() if k != "params"}
        group = type(first)([{"params": [leaf], **hyper}], lr=hyper["lr"])
        members = range(start, end)
        states = [[self.optimizers[m].state.get(p) for p in self.optimizers[m].param_groups[0]["params"]]
                  for m in members]
        if states[0][0]:
            # Resumed members: the group's state lays theirs out as the flat leaf (and their states become views
            # of it below). Members of one group have taken the same number of steps (`optimizer_group_key`).
            keys = states[0][0].keys()
            group.state[leaf] = {
                key: states[0][0][key] if key == "step" or not isinstance(states[0][0][key], torch.Tensor)
                else torch.stack([torch.cat([state[key].reshape(-1) for state in row]) for row in states])
                for key in keys
            }
        return start, end, group, leaf

    def _alias_states(self) -> None:
        """Make each member's optimizer state views of its group's state (and share its step)."""
        for start, end, group, leaf in self.groups:
            stacked_state = group.state[leaf]
            pieces = {
                key: self.parameters.split(value)
                for key, value in stacked_state.items() if isinstance(value, torch.Tensor) and key != "step"
            }
            for m in range(start, end):
                optimizer = self.optimizers[m]
                for index, parameter in enumerate(optimizer.param_groups[0]["params"]):
                    optimizer.state[parameter] = {
                        key: pieces[key][index][m - start] if key in pieces else value
                        for key, value in stacked_state.items()
                    }
        self.aliased = True

    def step(self) -> None:
        """One step of every member's optimizer (after the gradients are in place and clipped)."""
        if not self.groups:
            for optimizer in self.optimizers:
                optimizer.step()
            return
        grad = self.parameters.flat.grad
        for start, end, group, leaf in self.groups:
            leaf.grad = None if grad is None else grad[start:end]
            group.step()
        if not self.aliased:
            self._alias_states()


def clip_pool_gradients(parameters: Any, max_norms: Sequence[float]) -> bool:
    """Clip each member's gradient norm to its `max_norms[p]` (0: not clipped), on the pool's flat gradient:
    torch's `clip_grad_norm_` arithmetic, per member (the norm of each parameter's gradient, the norm of those,
    the factor max_norm / (norm + 1e-6) clamped at 1), one norm per parameter name for all members and one
    scaling. False (nothing done) where the members' gradients are not in the flat leaf (a pass that ran member
    by member)."""
    flat_grad = parameters.flat.grad
    if flat_grad is None or not any(norm > 0 for norm in max_norms):
        return flat_grad is not None
    members = len(max_norms)
    grads = parameters.split(flat_grad)
    norms = torch.stack([torch.linalg.vector_norm(grad.reshape(members, -1), dim=1) for grad in grads], dim=1)
    total = torch.linalg.vector_norm(norms, dim=1)
    limits = torch.tensor(max_norms, dtype=total.dtype, device=total.device)
    factor = torch.clamp((total + 1e-6).reciprocal() * limits, max=1.0)
    factor = torch.where(limits > 0, factor, torch.ones_like(factor))
    flat_grad.mul_(factor.view(members, 1))
    return True


def pool_non_finite(members: Sequence[Any], parameters: Any, losses: Sequence[float]) -> list[str | None]:
    """For each member after a pool's step: what is not finite (`first_non_finite`'s words), or None. One check
    of the flat gradient and parameters for all members, and per name only for a member that failed it; member
    by member where the members' gradients are their own (a pass that ran member by member)."""
    flat_grad = parameters.flat.grad
    if flat_grad is None:
        return [first_non_finite(loss, member.model) for member, loss in zip(members, losses, strict=True)]
    flat = parameters.flat.detach()
    finite = (torch.isfinite(flat_grad).all(dim=1) & torch.isfinite(flat).all(dim=1)).tolist()
    found: list[str | None] = []
    for p, loss in enumerate(losses):
        if not math.isfinite(loss):
            found.append(f"the training loss ({loss})")
        elif finite[p]:
            found.append(None)
        else:
            checks = [(f"the gradient of {name}", grad[p]) for name, grad in
                      zip(parameters.names, parameters.split(flat_grad), strict=True)]
            checks += [(f"parameter {name}", value[p]) for name, value in
                       zip(parameters.names, parameters.split(flat), strict=True)]
            found.append(next(what for what, tensor in checks if not bool(torch.isfinite(tensor).all())))
    return found


def pool_step(
    members: Sequence[Any],
    parameters: Any,
    optimizers: PooledOptimizers,
    inputs: torch.Tensor,
    targets: torch.Tensor,
    losses_of: Callable[[int, int, torch.Tensor], torch.Tensor],
    max_norms: Sequence[float],
) -> tuple[list[float], list[float]]:
    """One training step of a pool: the pooled forward pass with postselection on the targets (P x B x L x I),
    the losses of members start..end-1 as `losses_of(start, end, probs)` from their probabilities (one per
    member, in one batched evaluation: the loss functions take a leading member axis), one backward pass, each
    member's gradient clipped to its `max_norms[p]`, and the members' optimizers stepped. `members` have `.model`
    and `.clip_gradients()` (a `ShardTrainer`); `parameters` is their models' `ParameterPool`. Returns the
    losses and the smallest postselection probabilities."""
    from qrnn.model import pool_chunks

    parameters.zero_grad()
    losses: list[float] = []
    minima: list[float] = []
    for start, end in pool_chunks(members[0].model, len(members), inputs.shape[1], inputs.shape[2]):
        stacked = {name: leaf[start:end] for name, leaf in parameters.stacked.items()}
        probs, _, minimum = _pool_forward(
            members[start:end], inputs[start:end], targets[start:end], True, None, stacked
        )
        chunk_losses = losses_of(start, end, probs)
        chunk_losses.sum().backward()
        losses.extend(chunk_losses.detach().cpu().tolist())
        minima.extend(minimum.cpu().tolist())
    if not optimizers.groups:
        # The members' own optimizers step: they read their parameters' gradients.
        parameters.distribute_gradients()
    if not clip_pool_gradients(parameters, max_norms):
        for member in members:
            member.clip_gradients()
    optimizers.step()
    return losses, minima


class PoolTrainer:
    """Trains the members of a pool together (see the module docstring)."""

    def __init__(self, members: Sequence[PoolMember], device: torch.device) -> None:
        assert all(member.run is not None for member in members)
        self.members = list(members)
        self.trainers = [
            ShardTrainer(Launch(0, 1, 0, 1, distributed=False), device, member.config, member.run,
                         member.resumption, lost=member.lost)
            for member in self.members
        ]

    def _parameters(self, active: list[int]) -> list[Any]:
        """The pool of the `active` members (in that order: `run` keeps members that can step their optimizers
        as one consecutive): their `ParameterPool`, and their `PooledOptimizers` once the first step shows the
        batch's shape."""
        from qrnn.model import ParameterPool

        return [ParameterPool([self.trainers[i].model for i in active]), None]

    def _optimizers(self, trainers: list[ShardTrainer], pool: Any, batch: int, length: int) -> PooledOptimizers:
        from qrnn.model import QRNN

        first = trainers[0].model
        # Where the pass runs member by member (the statevector path, the baselines), the gradients are the
        # members' own, and so are the optimizer steps.
        stacked = isinstance(first, QRNN) and first.choose_method(batch, length) == "kernel"
        return PooledOptimizers(pool, [t.optimizer for t in trainers], stacked=stacked)

    def _train_step(self, active: list[int], parameters: Any) -> tuple[list[float], list[float], list[str | None]]:
        trainers = [self.trainers[i] for i in active]
        batches = [trainer.training_batch() for trainer in trainers]
        pool, optimizers = parameters
        if optimizers is None:
            optimizers = parameters[1] = self._optimizers(trainers, pool, *batches[0].inputs.shape[:2])
        losses, minima = pool_step(
            trainers, pool, optimizers,
            torch.stack([b.inputs for b in batches]), torch.stack([b.targets for b in batches]),
            lambda start, end, probs: trainers[0].loss_function(
                probs, torch.stack([b.target_words for b in batches[start:end]]),
                torch.stack([b.scored for b in batches[start:end]]),
            ),
            [trainer.config.gradient_clip for trainer in trainers],
        )
        return losses, minima, pool_non_finite(trainers, pool, losses)

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
                postselect_steps(postselected), [trainer.sampling for trainer in trainers], parameters[0],
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
        # Members whose optimizers can step as one, next to each other.
        active.sort(key=lambda i: repr(optimizer_group_key(self.trainers[i].optimizer)))
        parameters = self._parameters(active) if active else None
        while active:
            step_started = time.perf_counter()
            losses, minima, faults = self._train_step(active, parameters)
            seconds = time.perf_counter() - step_started
            elapsed = time.monotonic() - started
            leaving: dict[int, tuple[str, str]] = {}
            due = []
            for i, loss, minimum, fault in zip(active, losses, minima, faults, strict=True):
                trainer = self.trainers[i]
                trainer.epoch += 1
                if fault is not None:
                    # Before anything is logged or written: a NaN never reaches a checkpoint.
                    leaving[i] = ("fault", trainer.non_finite_line(fault))
                    continue
                if trainer.lost is not None and trainer.lost.is_set():
                    leaving[i] = ("lost", "")
                    continue
                trainer.record_training(loss, minimum, seconds)
                if trainer.validation_due():
                    due.append(i)
            train_loss = dict(zip(active, losses, strict=True))
            if due:
                for i, result in zip(due, self._validate(due, parameters), strict=True):
                    trainer = self.trainers[i]
                    # Asked before the validation is recorded: a lost member writes neither report nor checkpoint.
                    hook = self.members[i].on_validation
                    verdict = hook(trainer.epoch, result["loss"]) if hook is not None else None
                    if verdict == "lost":
                        leaving[i] = ("lost", "")
                    elif trainer.record_validation(result, train_loss[i]):
                        leaving[i] = ("stop-at-loss", "final")
                    elif verdict == "pruned":
                        leaving[i] = ("pruned", "final")
            for i in active:
                trainer = self.trainers[i]
                if i in leaving:
                    continue
                if trainer.reached_training_loss(train_loss[i]):
                    leaving[i] = (STOP_AT_TRAINING_LOSS, "final")
                elif stop.received is not None:
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
                elif reason == "fault":
                    results[i] = trainer.fail(first_epochs[i], closing_kind)
                else:
                    results[i] = trainer.finish(reason, closing_kind, first_epochs[i], stop, trainer.config.timeout)
                self._finished(i, results[i])
            if leaving:
                active = [i for i in active if i not in leaving]
                parameters = self._parameters(active) if active else None
        for i, trainer in enumerate(self.trainers):
            if results[i] is None:  # resumed at or past its last epoch: nothing to train
                results[i] = trainer.finish("epochs", "final", first_epochs[i], stop, trainer.config.timeout)
                self._finished(i, results[i])
        return [result for result in results if result is not None]

    def _finished(self, index: int, result: TrainResult | None) -> None:
        hook = self.members[index].on_finish
        if hook is not None and result is not None:
            hook(result)


def run_pool_training(members: Sequence[PoolMember]) -> list[TrainResult]:
    """Check, then train the members as one pool (L-BFGS or multi-shard runs one after another); one result per
    member."""
    from qrnn.training.launch import new_run, prepare, prepare_output, run_training

    members = [dataclasses.replace(member, config=prepare(member.config, None)) for member in members]
    if len(members) > 1 and any(pool_key(member.config) is None for member in members):
        print(f"note: {flag('optimizer')} lbfgs or several shards: the {len(members)} runs train one after another",
              file=sys.stderr)
        results = []
        for member in members:
            result = run_training(member.config, member.run, member.resumption, on_validation=member.on_validation,
                                  lost=member.lost)
            if member.on_finish is not None:
                member.on_finish(result)
            results.append(result)
        return results
    check_pool_configs([member.config for member in members])
    members = [dataclasses.replace(member, run=member.run or new_run(member.config)) for member in members]
    for member in members:
        assert member.run is not None
        prepare_output(Path(member.run.out))
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
                trainer.log = RunLog(run.log_dir, purge_step=trainer.epoch + 1 if resumption else None,
                                     write_through=member.lost is not None)
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
                    if trainer.log is not None and not (trainer.lost is not None and trainer.lost.is_set()):
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
                      out=str(out_directory_of(Path(path))))
        members.append(PoolMember(config, run, Resumption(str(path))))
    return run_pool_training(members)
