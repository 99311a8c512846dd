"""What a training run is made of, built from its configuration: the model, the optimizer, the loss, the
device and the dtype. Every model kind goes through `build_model`, so adding a baseline is one branch there.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import torch
from torch import nn

from qrnn.errors import QRNNError
from qrnn.loss import nll_loss, original_loss
from qrnn.training.config import LBFGS_LINE_SEARCHES

LossFunction = Callable[[torch.Tensor, torch.Tensor, "torch.Tensor | None"], torch.Tensor]

DTYPES = {"float32": torch.float32, "float64": torch.float64}
LOSS_FUNCTIONS: dict[str, LossFunction] = {"original": original_loss, "nll": nll_loss}


def build_model(config: Mapping[str, Any]) -> nn.Module:
    """A fresh model (CPU, float32) of the kind `config["model"]` for words of `config["input_size"]` bits.

    `config` holds the training options (`TrainConfig.as_dict()`) plus `input_size` (the dataset's word width).
    Every model kind has the forward signature of `qrnn.QRNN`:
    `probs, measured, min_postselection_probability = model(inputs, targets, postselect, generator)`, and a
    `reset_parameters(bias_spread, weights_spread, unitaries_spread, generator)`.
    """
    kind = config.get("model", "qrnn")
    if kind == "qrnn":
        from qrnn.model import QRNN

        return QRNN(
            input_size=int(config["input_size"]),
            workspace_size=int(config["workspace"]),
            stages=int(config["stages"]),
            order=int(config["order"]),
            degree=int(config["degree"]),
            bias=float(config["initial_bias"]),
            method=str(config.get("method", "auto")),
        )
    if kind in ("rnn", "lstm"):
        from qrnn.baselines import ClassicalBaseline

        # A baseline's hidden width is --workspace, so that one flag sizes every model kind.
        # Checkpoints from before --layers and --baseline-init hold neither: one layer, the standard start.
        return ClassicalBaseline(kind, input_size=int(config["input_size"]), hidden_size=int(config["workspace"]),
                                 layers=int(config.get("layers", 1)),
                                 init=str(config.get("baseline_init", "standard")))
    raise QRNNError(f"unknown model kind {kind!r}; valid: qrnn, rnn, lstm")


def initialise_model(model: nn.Module, config: Mapping[str, Any]) -> None:
    """The original's initialisation with a generator seeded by `--seed`: the same model on every shard."""
    generator = torch.Generator().manual_seed(int(config["seed"]))
    model.reset_parameters(  # type: ignore[operator]
        bias_spread=float(config["initial_bias_spread"]),
        weights_spread=float(config["initial_weights_spread"]),
        unitaries_spread=float(config["initial_unitaries_spread"]),
        generator=generator,
    )


# The original's L-BFGS keeps the last 40 curvature pairs (torch's default is 100); its 20 iterations per step
# are torch's default.
LBFGS_HISTORY_SIZE = 40


def build_optimizer(
    name: str,
    parameters: Iterable[nn.Parameter],
    learning_rate: float,
    weight_decay: float,
    lbfgs_line_search: str = "none",
) -> torch.optim.Optimizer:
    """The optimizer `name` (sgd, adam = AdamW, rmsprop, lbfgs) over `parameters`; `lbfgs_line_search` is
    "none" (the original's fixed step) or "strong_wolfe"."""
    params = list(parameters)
    # foreach: torch's multi-tensor step, also on the CPU (where torch defaults to one tensor at a time): the
    # same numbers, bit for bit, in fewer operations; a pool steps many members' optimizers as one.
    if name == "sgd":
        return torch.optim.SGD(params, lr=learning_rate, weight_decay=weight_decay, foreach=True)
    if name == "adam":
        return torch.optim.AdamW(params, lr=learning_rate, weight_decay=weight_decay, foreach=True)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=learning_rate, weight_decay=weight_decay, foreach=True)
    if name == "lbfgs":
        # torch's L-BFGS has no weight decay; check_config rejects a non-zero --weight-decay with it.
        if lbfgs_line_search not in LBFGS_LINE_SEARCHES:
            raise QRNNError(
                f"unknown lbfgs line search {lbfgs_line_search!r}; valid: {', '.join(LBFGS_LINE_SEARCHES)}"
            )
        return torch.optim.LBFGS(
            params,
            lr=learning_rate,
            history_size=LBFGS_HISTORY_SIZE,
            line_search_fn=None if lbfgs_line_search == "none" else lbfgs_line_search,
        )
    raise QRNNError(f"unknown optimizer {name!r}; valid: sgd, adam, rmsprop, lbfgs")


def set_learning_rate(optimizer: torch.optim.Optimizer, learning_rate: float) -> None:
    """Overwrite the learning rate of every parameter group (resume --override-learning-rate)."""
    for group in optimizer.param_groups:
        group["lr"] = learning_rate


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """The torch device for `--device` (cpu, cuda, auto) on the process with this local rank; one-line error
    if CUDA was asked for but is not there."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda":
        if not torch.cuda.is_available():
            raise QRNNError("--device cuda was asked for, but CUDA is not available here; use --device cpu or auto")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    raise QRNNError(f"unknown device {name!r}; valid: cpu, cuda, auto")


@contextlib.contextmanager
def flush_denormals() -> Iterator[bool]:
    """Within the block, the CPU flushes subnormal floats to zero (torch.set_flush_denormal); yields whether
    this CPU supports it, and restores torch's default (off) on exit.

    A trained QRNN's postselected branches carry amplitudes and gradients far below 1e-38 (float32's smallest
    normal number); arithmetic on such subnormals takes a slow path on x86 CPUs. On MNIST 3 vs 6 after 2400
    epochs a training step ran 2.9 times faster with them flushed, with the same losses to every printed digit:
    what is flushed is below 1e-38 of the values that matter."""
    supported = torch.set_flush_denormal(True)
    try:
        yield supported
    finally:
        torch.set_flush_denormal(False)


# Below this many amplitudes per step (batch x 2^workspace), torch's intra-op threads cost more than they save:
# on simple-seq (2 x 2^3) one thread ran 5x faster than two on a busy 2-core machine.
_SMALL_STATE = 2**16


def choose_threads(
    batch: int, workspace: int, shards_here: int, device: torch.device, model: str = "qrnn"
) -> int | None:
    """Intra-op CPU threads for one process, or None to leave torch's setting: one thread for small states,
    else this machine's cores shared by the `shards_here` processes on it. An explicit OMP_NUM_THREADS is the
    user's choice and wins. For a classical baseline (`model` rnn, lstm) --workspace counts hidden units, so its
    state per step is batch x workspace numbers, not batch x 2^workspace amplitudes."""
    if device.type != "cpu" or "OMP_NUM_THREADS" in os.environ:
        return None
    state = batch * 2**workspace if model == "qrnn" else batch * workspace
    if state < _SMALL_STATE:
        return 1
    # The cores this process may run on (a cluster job's allocation), not all of the machine's.
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // shards_here)
