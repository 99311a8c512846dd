"""The training loop of one shard, with the original implementation's semantics.

Per epoch: one training batch per shard, forward with postselection on the targets, the loss on the scored steps,
backward (DistributedDataParallel averages the gradients over shards), the gradient norm clipped to
`--gradient-clip` (the original's 0.5; 0: not clipped), an optimizer step (through a closure, which L-BFGS
needs); the loss value is averaged over shards so every shard sees the same number. Every `--validate-every`
epochs and after the last: a validation batch that postselects the dataset's advice steps (`Batch.postselection`:
the original's `ignore_output_at_step`) and samples the others, with the loss and the character error rate over
the scored steps (the original's `filter`); minimum postselection probability gathered over shards; samples
printed; a "best" checkpoint when the validation loss is the best so far. The run stops at `--epochs` ("final"
checkpoint), when the validation loss falls below `--stop-at-loss` ("final"), at `--timeout` or on SIGINT/SIGTERM
("interrupted"). A non-finite loss, gradient or parameter (`first_non_finite`) stops it at once with a `RunFault`
and no closing checkpoint.
"""

from __future__ import annotations

import math
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from qrnn import __version__
from qrnn.bits import bits_to_int
from qrnn.datasets.base import dataset_label
from qrnn.errors import NonFiniteFault, QRNNError, RunFault
from qrnn.files import remove_stale_temporaries
from qrnn.training.checkpoint import (
    FORMAT,
    FORMAT_VERSION,
    SUFFIX,
    capture_random_state,
    checkpoint_name,
    checkpoint_prefix,
    data_record,
    read_checkpoint,
    restore_random_state,
    save_atomically,
)
from qrnn.training.config import STOP_AT_TRAINING_LOSS, TrainConfig
from qrnn.training.distributed import Collectives, Launch
from qrnn.training.models import (
    DTYPES,
    LOSS_FUNCTIONS,
    build_model,
    build_optimizer,
    initialise_model,
    set_learning_rate,
)


@dataclass
class RunInfo:
    """A run's identity, fixed at its start and kept across resumes: the name of its log directory (and the
    stem of its checkpoint names), its 6-hex id, and the folder holding `runs/` and `checkpoints/`."""

    name: str
    run_id: str
    out: str

    @property
    def log_dir(self) -> Path:
        """Where TensorBoard logs go."""
        return Path(self.out) / "runs" / self.name

    @property
    def checkpoint_dir(self) -> Path:
        """Where checkpoints go."""
        return Path(self.out) / "checkpoints"


@dataclass
class TrainResult:
    """What a training run did. Losses and rates are None where no validation ran."""

    best_validation_loss: float | None
    best_character_error_rate: float | None
    last_validation_loss: float | None
    epoch: int
    epochs_run: int
    stop_reason: str
    exit_code: int
    checkpoints: list[str] = field(default_factory=list)
    best_checkpoint: str | None = None
    final_checkpoint: str | None = None
    log_dir: str = ""
    # A pool member's fault at run time (its one line; stop reason "fault"): a lone run raises `RunFault` instead.
    fault: str | None = None


@dataclass
class TrainingBatch:
    """A training batch on the device: bits B x L x I, the scored steps B x (L-1), the target words."""

    inputs: torch.Tensor
    targets: torch.Tensor
    scored: torch.Tensor
    target_words: torch.Tensor


@dataclass
class ValidationBatch:
    """A validation batch on the device, with the steps to postselect (B x (L-1)); the others are sampled."""

    inputs: torch.Tensor
    targets: torch.Tensor
    scored: torch.Tensor
    postselected: torch.Tensor


@dataclass
class Resumption:
    """What `resume` hands to every shard: the checkpoint to continue from and the learning rate that
    overrides the one in its optimizer state (None: keep it)."""

    path: str
    override_learning_rate: float | None = None
    # The loss changed (resume --override-loss): validation losses of the two losses do not compare, so the
    # best values start afresh.
    reset_best: bool = False


class StopSignals:
    """SIGINT/SIGTERM handlers that only note the signal; the loop finishes its step, writes an "interrupted"
    checkpoint and returns. With `escalate`, a second SIGINT aborts at once (a user pressing Ctrl-C twice)."""

    HANDLED = (signal.SIGINT, signal.SIGTERM)

    def __init__(self, escalate: bool) -> None:
        self.escalate = escalate
        self.received: int | None = None
        self._previous: dict[int, Any] = {}

    def _handle(self, signum: int, _frame: object) -> None:
        if self.escalate and self.received is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        if self.received is None:
            self.received = signum

    def __enter__(self) -> StopSignals:
        # Handlers can only be installed from the main thread (a training started from another thread simply
        # keeps the default behaviour).
        if threading.current_thread() is threading.main_thread():
            for signum in self.HANDLED:
                self._previous[signum] = signal.signal(signum, self._handle)
                # Restart interrupted system calls: a signal landing in a thread of torch.distributed's
                # transport must not surface there as an error (gloo aborts the process on it).
                signal.siginterrupt(signum, False)
        return self

    def __exit__(self, *_exc: object) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()


def sampling_seed(seed: int, shard: int) -> int:
    """The seed of a shard's sampling generator (validation draws measurement outcomes from it)."""
    import hashlib

    digest = hashlib.sha256(f"qrnn-sampling/{seed}/{shard}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


def postselect_steps(postselected: torch.Tensor) -> Callable[[int, torch.Tensor], torch.Tensor]:
    """The validation's postselection rule for the model: postselect the steps marked in `postselected` (bool
    B x (L-1), usually `Batch.postselection()`), sample the others."""
    return lambda step, _targets: postselected[:, step]


def first_non_finite(loss: float | torch.Tensor, model: nn.Module) -> str | None:
    """What is not finite after a training step, in words ("the training loss (nan)", "the gradient of NAME",
    "parameter NAME"), or None when the loss, every gradient and every parameter are finite. One device sync for
    all tensors together."""
    if not math.isfinite(float(loss)):
        return f"the training loss ({float(loss)})"
    named = list(model.named_parameters())
    checks = [(f"the gradient of {name}", p.grad) for name, p in named if p.grad is not None]
    checks += [(f"parameter {name}", p.detach()) for name, p in named]
    if not checks:
        return None
    finite = torch.stack([torch.isfinite(tensor).all() for _, tensor in checks]).tolist()
    return next((what for (what, _), ok in zip(checks, finite, strict=True) if not ok), None)


class ShardTrainer:
    """Trains one shard of a run (see the module docstring); shard 0 also prints, logs and checkpoints."""

    def __init__(
        self,
        launch: Launch,
        device: torch.device,
        config: TrainConfig,
        run: RunInfo,
        resumption: Resumption | None = None,
        display: Any = None,
        on_validation: Callable[[int, float], str | None] | None = None,
        lost: threading.Event | None = None,
    ) -> None:
        from qrnn.datasets import lookup

        self.launch = launch
        self.device = device
        self.config = config
        self.run = run
        self.resumption = resumption
        # Called after each validation with (epoch, loss): None goes on, "pruned" stops the run with its closing
        # checkpoint, "lost" (the run's claim in a sweep was taken over) stops it at once, writing nothing more.
        self.on_validation = on_validation
        # Set by another thread once the run's claim is lost (a sweep's trial taken over): the run stops after the
        # current step, writing nothing more, even between validations.
        self.lost = lost
        self.collectives = Collectives(launch, device)
        self.is_leader = launch.rank == 0
        self.dataset = lookup(config.dataset, alphabet=config.alphabet).create(
            sentence_length=config.sentence_length,
            batch_size=config.batch_size,
            shard=launch.rank,
            num_shards=launch.world_size,
            seed=config.seed,
        )
        self.input_size = self.dataset.input_size
        model = build_model({**config.as_dict(), "input_size": self.input_size})
        model.to(DTYPES[config.dtype])
        initialise_model(model, config.as_dict())
        model.to(device)
        self.model = model
        self.network: nn.Module = model
        if launch.distributed:
            from torch.nn.parallel import DistributedDataParallel

            self.network = DistributedDataParallel(model, device_ids=[device] if device.type == "cuda" else None)
        self.optimizer = build_optimizer(
            config.optimizer, model.parameters(), config.learning_rate, config.weight_decay,
            config.lbfgs_line_search,
        )
        self.loss_function = LOSS_FUNCTIONS[config.loss]
        self.sampling = torch.Generator().manual_seed(sampling_seed(config.seed, launch.rank))
        self.epoch = 0
        self.best_validation_loss: float | None = None
        self.best_character_error_rate: float | None = None
        self.last_validation_loss: float | None = None
        self.best_checkpoint: str | None = None
        self.written: list[str] = []
        self.display = display
        self.log: Any = None
        if resumption is not None:
            self._restore(resumption)
        if self.is_leader:
            # Temporary files of this run's checkpoints that a killed process left behind.
            remove_stale_temporaries(self.run.checkpoint_dir, self._own_prefix())

    # ---- state ----

    def _restore(self, resumption: Resumption) -> None:
        payload = read_checkpoint(resumption.path, map_location="cpu")
        self.model.load_state_dict(payload["model_state_dict"])
        try:
            self.optimizer.load_state_dict(payload["optimizer_state_dict"])
        except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as error:
            raise QRNNError(
                f"checkpoint {resumption.path}: its optimizer state does not fit --optimizer {self.config.optimizer}"
                f" and the model ({type(error).__name__}); it was not written by qrnn for this run"
            ) from None
        if resumption.override_learning_rate is not None:
            set_learning_rate(self.optimizer, resumption.override_learning_rate)
        self.epoch = int(payload["epoch"])
        self.best_validation_loss = payload["best"]["validation_loss"]
        self.best_character_error_rate = payload["best"]["character_error_rate"]
        if resumption.reset_best:
            self.best_validation_loss = self.best_character_error_rate = None
        self.last_validation_loss = payload["last_validation"]["loss"] if payload["last_validation"] else None
        self.best_checkpoint = payload["best_checkpoint"]
        states = payload["random_states"]
        if len(states) != self.launch.world_size:
            raise QRNNError(
                f"checkpoint {resumption.path} holds {len(states)} shard(s), this run has "
                f"{self.launch.world_size}; resume with --num-shards {len(states)}"
            )
        # A changed batch size (--override-batch-size) keeps the generators: the data stream continues.
        restore_random_state(states[self.launch.rank], self.dataset, self.sampling, self.device)

    def _payload(self, kind: str, random_states: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "qrnn_version": __version__,
            "kind": kind,
            "model_kind": self.config.model,
            "input_size": self.input_size,
            "model_config": dict(getattr(self.model, "config", {})),
            "config": self.config.as_dict(),
            "dataset_file": self.dataset.dataset_file,
            "run": {"name": self.run.name, "id": self.run.run_id},
            "model_state_dict": _to_cpu(dict(self.model.state_dict())),
            "optimizer_state_dict": _to_cpu(self.optimizer.state_dict()),
            "epoch": self.epoch,
            "best": {
                "validation_loss": self.best_validation_loss,
                "character_error_rate": self.best_character_error_rate,
            },
            "last_validation": None if self.last_validation_loss is None else {"loss": self.last_validation_loss},
            "best_checkpoint": self.best_checkpoint,
            "random_states": random_states,
            **data_record(self.dataset),
        }

    def write_checkpoint(self, kind: str) -> str | None:
        """Write a checkpoint of kind `kind` ("best", "final", "interrupted"); a collective call (every shard
        hands its random states to shard 0, which writes). Returns the path on shard 0."""
        states = self.collectives.gather(capture_random_state(self.dataset, self.sampling, self.device))
        if not self.is_leader:
            return None
        name = checkpoint_name(self.config.tag, dataset_label(self.config.dataset), self.run.run_id, kind)
        path = self.run.checkpoint_dir / name
        previous_best = self.best_checkpoint
        if kind == "best":
            self.best_checkpoint = name
        try:
            save_atomically(self._payload(kind, states), path)
        except QRNNError:
            self.best_checkpoint = previous_best
            raise
        self.written.append(str(path))
        if kind == "best":
            self._drop_old_bests(name)
            self.written = [written for written in self.written if Path(written).exists()]
        self._message(f"checkpoint: {path}")
        if self.log is not None:
            self.log.text("checkpoints", f"{kind}: {name}", self.epoch)
        return str(path)

    def _own_prefix(self) -> str:
        return checkpoint_prefix(self.config.tag, dataset_label(self.config.dataset), self.run.run_id)

    def _drop_old_bests(self, newest: str) -> None:
        # Keep one "best" per run: the older ones are superseded (also those a killed run left behind, and the
        # one a resume started from, unless the resume changed the loss: that best is of the other loss). Only
        # regular files named as this run's bests in its own checkpoints folder are removed; a name read from a
        # checkpoint never chooses what is deleted.
        prefix = self._own_prefix() + "best-"
        keep = {newest}
        if self.resumption is not None and self.resumption.reset_best:
            keep.add(Path(self.resumption.path).name)
        try:
            entries = list(os.scandir(self.run.checkpoint_dir))
        except OSError:
            return
        for entry in entries:
            if entry.name not in keep and entry.name.startswith(prefix) and entry.name.endswith(SUFFIX):
                if entry.is_file(follow_symlinks=False):
                    Path(entry.path).unlink(missing_ok=True)

    # ---- steps ----

    def training_batch(self) -> TrainingBatch:
        """This shard's next training batch, on the device."""
        batch = self.dataset.batch("train")
        targets = batch.targets.to(self.device)
        return TrainingBatch(
            batch.inputs.to(self.device), targets, batch.scored.to(self.device), bits_to_int(targets[:, 1:])
        )

    def clip_gradients(self) -> None:
        """Clip the model's gradient norm to `--gradient-clip` (0: not clipped)."""
        if self.config.gradient_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.config.gradient_clip)

    def train_epoch(self) -> tuple[float, float]:
        """One optimisation step on this shard's next training batch; returns the loss (averaged over shards)
        and this shard's minimum postselection probability."""
        batch = self.training_batch()
        evaluations: list[tuple[torch.Tensor, float]] = []

        def closure() -> torch.Tensor:
            self.optimizer.zero_grad()
            probs, _, min_postselection = self.network(batch.inputs, batch.targets, postselect=True)
            loss = self.loss_function(probs, batch.target_words, batch.scored)
            loss.backward()
            self.clip_gradients()
            # L-BFGS decides its line search on this value: the shards must all see the same number.
            shared = self.collectives.mean(loss.detach())
            evaluations.append((shared, min_postselection))
            return shared

        self.optimizer.step(closure)
        # As the original reports it: the last evaluation's (L-BFGS evaluates several times per step).
        loss, min_postselection = evaluations[-1]
        return float(loss), min_postselection

    @torch.no_grad()
    def validate(self, on_schedule: bool = True) -> dict[str, Any]:
        """One validation batch per shard, sampling the steps not postselected; results combined over shards. Shard 0
        also gets `samples`: the first `--num-validation-samples` (inputs, targets, measured) over shards.

        A validation off the `--validate-every` schedule (after the last epoch) leaves the validation data and
        sampling streams as it found them, so that a finished run extended by `resume --epochs` validates on
        exactly the data an uninterrupted longer run would have."""
        streams = None if on_schedule else self.validation_streams()
        try:
            batch = self.validation_batch()
            probs, measured, min_postselection = self.model(
                batch.inputs, batch.targets, postselect=postselect_steps(batch.postselected), generator=self.sampling
            )
            return self.validation_result(batch, probs, measured, min_postselection)
        finally:
            if streams is not None:
                self.restore_validation_streams(streams)

    def validation_streams(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The states of the validation data and sampling streams (for a validation off the schedule)."""
        return self.dataset.generator("validate").get_state(), self.sampling.get_state()

    def restore_validation_streams(self, streams: tuple[torch.Tensor, torch.Tensor]) -> None:
        """Put the validation data and sampling streams back to `streams`."""
        self.dataset.generator("validate").set_state(streams[0])
        self.sampling.set_state(streams[1])

    def validation_batch(self) -> ValidationBatch:
        """This shard's next validation batch, on the device, with the steps to postselect."""
        batch = self.dataset.batch("validate")
        return ValidationBatch(
            batch.inputs.to(self.device), batch.targets.to(self.device), batch.scored.to(self.device),
            batch.postselection().to(self.device),
        )

    def validation_result(
        self, batch: ValidationBatch, probs: torch.Tensor, measured: torch.Tensor, min_postselection: float
    ) -> dict[str, Any]:
        """The validation's numbers from the model's outputs on `batch`, combined over shards."""
        target_words = bits_to_int(batch.targets[:, 1:])
        loss = self.loss_function(probs, target_words, batch.scored)
        errors = ((bits_to_int(measured) != target_words) & batch.scored).sum()
        totals = self.collectives.sum(
            torch.stack([loss.double().cpu(), errors.double().cpu(), batch.scored.sum().double().cpu()])
        )
        minimum = -float(self.collectives.max(torch.tensor([-min_postselection], dtype=torch.float64))[0])
        wanted = self.config.num_validation_samples
        inputs, targets = batch.inputs, batch.targets
        mine = [(inputs[i].cpu(), targets[i].cpu(), measured[i].cpu()) for i in range(min(wanted, len(inputs)))]
        gathered = self.collectives.gather(mine) if wanted else []
        return {
            "loss": float(totals[0]) / self.launch.world_size,
            "character_error_rate": float(totals[1]) / max(float(totals[2]), 1.0),
            "min_postselection": minimum,
            "samples": [sample for shard_samples in gathered for sample in shard_samples][:wanted],
        }

    # ---- the loop ----

    def _message(self, text: str) -> None:
        if self.is_leader and self.display is not None:
            self.display.message(text)

    def _report_validation(self, result: dict[str, Any], is_best: bool, train_loss: float) -> None:
        rate = self.display.rate(self.epoch) if self.display is not None else 0.0
        header = (
            f"epoch {self.epoch}/{self.config.epochs}  train loss {train_loss:.4f}  "
            f"validation loss {result['loss']:.4f}{' (best)' if is_best else ''}  "
            f"character error rate {result['character_error_rate']:.4f}  "
            f"min postsel {result['min_postselection']:.3g}  {rate:.1f} epochs/s"
        )
        pictures = [self.dataset.format(*sample) for sample in result["samples"]]
        self._message("\n".join([header, *pictures]))
        if self.log is not None:
            self.log.scalars(
                self.epoch,
                {
                    "loss/validate": result["loss"],
                    "loss/validate_best": self.best_validation_loss,
                    "min_postsel_prob/validate": result["min_postselection"],
                    "accuracy/character_error_rate_current": result["character_error_rate"],
                    "accuracy/character_error_rate_best": self.best_character_error_rate,
                },
            )
            if pictures:
                self.log.text("validation/samples", "\n\n".join(pictures), self.epoch)

    def record_training(self, train_loss: float, min_postselection: float, seconds: float) -> None:
        """Log and show the training step that made `self.epoch`."""
        if self.log is not None:
            self.log.scalars(
                self.epoch,
                {
                    "loss/train": train_loss,
                    "min_postsel_prob/train": min_postselection,
                    "time/seconds_per_epoch": seconds,
                },
            )
        if self.display is not None and self.is_leader:
            self.display.update(self.epoch, train_loss, min_postselection)

    def validation_due(self) -> bool:
        """Whether a validation follows the epoch just done: on the `--validate-every` schedule, or the last."""
        return self.epoch % self.config.validate_every == 0 or self.epoch == self.config.epochs

    def record_validation(self, result: dict[str, Any], train_loss: float) -> bool:
        """Take a validation's result: best values, report, "best" checkpoint. True when the run stops here
        (validation loss below `--stop-at-loss`)."""
        self.last_validation_loss = result["loss"]
        is_best = math.isfinite(result["loss"]) and (
            self.best_validation_loss is None or result["loss"] < self.best_validation_loss
        )
        if is_best:
            self.best_validation_loss = result["loss"]
        if self.best_character_error_rate is None or result["character_error_rate"] < self.best_character_error_rate:
            self.best_character_error_rate = result["character_error_rate"]
        self._report_validation(result, is_best, train_loss)
        if is_best:
            self.write_checkpoint("best")
        stop_at = self.config.stop_at_loss
        return stop_at is not None and result["loss"] < stop_at

    def reached_training_loss(self, train_loss: float) -> bool:
        """Whether the step just done stops the run under `--stop-at-training-loss`."""
        threshold = self.config.stop_at_training_loss
        return threshold is not None and train_loss < threshold

    def run_epochs(self, stop: StopSignals, timeout: float | None, started: float) -> TrainResult:
        """Train until a stop condition; write the closing checkpoint; the result (meaningful on shard 0)."""
        config = self.config
        first_epoch = self.epoch
        stop_reason = "epochs"
        closing_kind = "final"
        while self.epoch < config.epochs:
            step_started = time.perf_counter()
            train_loss, min_postselection = self.train_epoch()
            self.epoch += 1
            seconds = time.perf_counter() - step_started
            # One collective per epoch agrees on stopping (a signal or timeout on any shard stops all of them at
            # the same epoch) and on the smallest postselection probability.
            timed_out = timeout is not None and time.monotonic() - started >= timeout
            # Checked every epoch, before anything is logged or written: a NaN must never reach a checkpoint.
            non_finite = first_non_finite(train_loss, self.model)
            flags = self.collectives.max(
                torch.tensor(
                    [float(stop.received is not None), float(timed_out), -min_postselection, float(bool(non_finite))],
                    dtype=torch.float64,
                )
            )
            if flags[3] > 0:
                raise NonFiniteFault(self._non_finite_line(non_finite), self.epoch)
            min_postselection = -float(flags[2])
            if self.lost is not None and self.lost.is_set():
                return self.abandon(first_epoch)
            self.record_training(train_loss, min_postselection, seconds)
            if self.validation_due():
                on_schedule = self.epoch % config.validate_every == 0
                result = self.validate(on_schedule)
                # Asked before the validation is recorded: a lost run must not write its report or checkpoint.
                verdict = self.on_validation(self.epoch, result["loss"]) if self.on_validation else None
                if verdict == "lost":
                    return self.abandon(first_epoch)
                if self.record_validation(result, train_loss):
                    stop_reason = "stop-at-loss"
                    break
                if verdict == "pruned":
                    stop_reason = "pruned"
                    break
            if self.reached_training_loss(train_loss):
                stop_reason = STOP_AT_TRAINING_LOSS
                break
            if flags[0] > 0:
                stop_reason, closing_kind = "signal", "interrupted"
                break
            if flags[1] > 0:
                stop_reason, closing_kind = "timeout", "interrupted"
                break
        return self.finish(stop_reason, closing_kind, first_epoch, stop, timeout)

    def result(
        self, first_epoch: int, stop_reason: str, exit_code: int = 0, final_checkpoint: str | None = None,
        fault: str | None = None,
    ) -> TrainResult:
        """The run's result as it stands, stopped for `stop_reason`."""
        return TrainResult(
            best_validation_loss=self.best_validation_loss,
            best_character_error_rate=self.best_character_error_rate,
            last_validation_loss=self.last_validation_loss,
            epoch=self.epoch,
            epochs_run=self.epoch - first_epoch,
            stop_reason=stop_reason,
            exit_code=exit_code,
            checkpoints=list(self.written),
            best_checkpoint=str(self.run.checkpoint_dir / self.best_checkpoint) if self.best_checkpoint else None,
            final_checkpoint=final_checkpoint,
            log_dir=str(self.run.log_dir),
            fault=fault,
        )

    def abandon(self, first_epoch: int) -> TrainResult:
        """Stop at once without writing anything more (the run's claim was lost to another worker)."""
        self._message(f"stopped at epoch {self.epoch}: this run's claim was taken over; nothing more written")
        return self.result(first_epoch, "lost")

    def finish(
        self, stop_reason: str, closing_kind: str, first_epoch: int, stop: StopSignals, timeout: float | None
    ) -> TrainResult:
        """Write the closing checkpoint (`closing_kind`) and say why the run stopped; the run's result."""
        closing = self.write_checkpoint(closing_kind)
        exit_code = 0
        if stop_reason == "signal":
            # 128 + the signal this process got: 130 for SIGINT, 143 for SIGTERM (a shard stopped because
            # another shard got the signal reports SIGTERM's code).
            exit_code = 128 + int(stop.received or signal.SIGTERM)
        if self.is_leader:
            self._message(_closing_line(stop_reason, self.epoch, timeout))
        return self.result(first_epoch, stop_reason, exit_code, closing)

    def fail(self, first_epoch: int, line: str) -> TrainResult:
        """Stop at once after a fault at run time (a pool member's non-finite numbers): nothing more written,
        the one line kept in the result."""
        self._message(line)
        return self.result(first_epoch, "fault", RunFault.exit_code, fault=line)

    def non_finite_line(self, what: str | None) -> str:
        """The one line for non-finite numbers found after this epoch's step (`what`, see `first_non_finite`)."""
        return self._non_finite_line(what)

    def _non_finite_line(self, what: str | None) -> str:
        # The last checkpoint written before the fault (or the one a resume started from) holds finite numbers.
        good = self.written[-1] if self.written else (self.resumption.path if self.resumption else None)
        kept = f"the last good checkpoint is {good}" if good else "no checkpoint was written"
        return (
            f"{what or 'a number on another shard'} is not finite at epoch {self.epoch}; training stopped and "
            f"{kept}; try a smaller --learning-rate or smaller --initial-* values"
        )


def _closing_line(stop_reason: str, epoch: int, timeout: float | None) -> str:
    return {
        "epochs": f"done: {epoch} epochs",
        "stop-at-loss": f"done: validation loss below --stop-at-loss after {epoch} epochs",
        STOP_AT_TRAINING_LOSS: f"done: training loss below --stop-at-training-loss after {epoch} epochs",
        "timeout": f"stopped after --timeout {timeout:g} s at epoch {epoch}; continue with `resume`"
        if timeout is not None
        else "",
        "signal": f"interrupted at epoch {epoch}; continue with `resume`",
        "pruned": f"pruned at epoch {epoch}",
    }[stop_reason]


def _to_cpu(value: Any) -> Any:
    """A copy of a nested state with every tensor on the CPU (checkpoints load on any machine), each in storage
    of its own: a pool member's parameters and optimizer state are views of the pool's, and `torch.save` writes
    a view's whole storage (every member's numbers, in every member's checkpoint)."""
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    if isinstance(value, dict):
        return {key: _to_cpu(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_to_cpu(item) for item in value]
    if isinstance(value, tuple):
        return tuple(_to_cpu(item) for item in value)
    return value
