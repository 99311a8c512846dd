"""The training configuration: every option of `train`, its default, its help and its checks, in one place.

The command line (`qrnn train`, `./main.py train`), `qrnn.train(**options)` and the checkpoints all use
`TrainConfig`; its fields are the flag names with underscores. Options marked `GLOBAL` are the original's global
options (accepted before and after the subcommand), `TRAIN` the `train` subcommand's, `INTERNAL` are set by
code only.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from qrnn.errors import QRNNError

GLOBAL = "global"
TRAIN = "train"
INTERNAL = "internal"

OPTIMIZERS = ("sgd", "adam", "rmsprop", "lbfgs")
# --lbfgs-line-search: none is the original's fixed step (lr times the quasi-Newton direction); strong_wolfe is
# torch's line search, an opt-in that is not in the original.
LBFGS_LINE_SEARCHES = ("none", "strong_wolfe")
LOSSES = ("original", "nll")
DEVICES = ("cpu", "cuda", "auto")
DTYPES = ("float32", "float64")
# The QRNN, or a classical baseline (`qrnn.baselines`) whose hidden width is --workspace.
MODEL_KINDS = ("qrnn", "rnn", "lstm")
# --alphabet of text:PATH datasets: the file's own characters, or the 5-bit alphabet of simple-quotes.
ALPHABETS = ("file", "original")
# How the QRNN runs a pass (`qrnn.model.METHODS`, spelled out here so that building the parser loads no torch).
METHODS = ("auto", "kernel", "statevector")


def _option(
    default: Any,
    help: str,
    *,
    group: str,
    parse: Callable[[str], Any] | None = None,
    choices: tuple[str, ...] | None = None,
    metavar: str | None = None,
) -> Any:
    """A config field carrying what the argument parser needs to offer it as a flag."""
    metadata = {"help": help, "group": group, "parse": parse, "choices": choices, "metavar": metavar}
    return field(default=default, metadata=metadata)


@dataclass
class TrainConfig:
    """Every training option; plain data (str/int/float/bool/None), stored whole in each checkpoint."""

    # The original's global options.
    port: int = _option(12335, "TCP port for the shards' rendezvous on one machine", group=GLOBAL, parse=int,
                        metavar="P")
    num_shards: int = _option(1, "number of processes training in parallel (data-parallel shards)",
                              group=GLOBAL, parse=int, metavar="N")
    num_validation_samples: int = _option(2, "validation samples printed (and logged) at each validation",
                                          group=GLOBAL, parse=int, metavar="VALS")
    tag: str = _option("", "tag for the names of checkpoints and logs", group=GLOBAL, parse=str, metavar="TAG")
    epochs: int = _option(5000, "number of training epochs (one batch per shard each)", group=GLOBAL,
                          parse=int, metavar="EP")
    timeout: float | None = _option(None, "stop after this many seconds of wall time (checkpoint "
                                    "'interrupted'); None: no limit", group=GLOBAL, parse=float, metavar="SEC")
    stop_at_loss: float | None = _option(None, "stop once the validation loss is below this; None: never",
                                         group=GLOBAL, parse=float, metavar="SAL")
    stop_at_training_loss: float | None = _option(None, "stop once a training step's loss (on the batch it "
                                                  "trained on, averaged over the shards) is below this, as the "
                                                  "original's comparison notebooks stop; None: never",
                                                  group=GLOBAL, parse=float, metavar="STL")
    seed: int = _option(82727, "random seed (initial model, data, sampling)", group=GLOBAL, parse=int,
                        metavar="SEED")
    # The model.
    model: str = _option("qrnn", "model: the QRNN, or a classical baseline (rnn, lstm: one layer of --workspace "
                         "hidden units, a linear readout; --stages/--order/--degree do not apply)", group=TRAIN,
                         parse=str, choices=MODEL_KINDS)
    workspace: int = _option(3, "workspace qubits (rnn, lstm: hidden units)", group=TRAIN, parse=int, metavar="H")
    layers: int = _option(1, "rnn, lstm: stacked recurrent layers of --workspace units each (the QRNN: 1)",
                          group=TRAIN, parse=int, metavar="N")
    baseline_init: str = _option("standard", "rnn, lstm: how the network starts: standard (LSTM forget gates "
                                 "biased open) or notebook (the original's comparison notebooks: Xavier-uniform "
                                 "input weights, zero biases)", group=TRAIN, parse=str,
                                 choices=("standard", "notebook"))
    stages: int = _option(2, "work stages per step", group=TRAIN, parse=int, metavar="S")
    order: int = _option(2, "order of the quantum neurons' amplitude amplification", group=TRAIN, parse=int,
                         metavar="K")
    degree: int = _option(2, "degree of the neurons' polynomial in their inputs", group=TRAIN, parse=int,
                          metavar="D")
    # The data.
    dataset: str = _option("simple-seq", "dataset name (`qrnn datasets` lists them), or your own data: text:PATH "
                           "(a text file), npz:PATH (sequences in an .npz)", group=TRAIN, parse=str,
                           metavar="NAME")
    alphabet: str = _option("file", "text:PATH datasets: the file's own characters (at most 32), or the "
                            "original 5-bit alphabet of simple-quotes", group=TRAIN, parse=str, choices=ALPHABETS)
    sentence_length: int = _option(20, "words per sequence (datasets with a fixed length ignore it)",
                                   group=TRAIN, parse=int, metavar="L")
    batch_size: int | None = _option(None, "sequences per shard and epoch (MNIST-type datasets: per digit); "
                                     "None: 1, or the smallest size the dataset allows with this many shards "
                                     "(simple-seq on one shard: 2)", group=TRAIN, parse=int, metavar="B")
    # The optimisation.
    optimizer: str = _option("adam", "optimizer (adam means AdamW)", group=TRAIN, parse=str, choices=OPTIMIZERS)
    learning_rate: float = _option(0.003, "learning rate", group=TRAIN, parse=float, metavar="LR")
    weight_decay: float = _option(0.0, "weight decay (sgd, adam, rmsprop)", group=TRAIN, parse=float,
                                  metavar="WD")
    lbfgs_line_search: str = _option("none", "lbfgs: none (the original: a fixed step of --learning-rate along "
                                     "the quasi-Newton direction) or strong_wolfe (torch's line search, "
                                     "not in the original)", group=TRAIN, parse=str,
                                     choices=LBFGS_LINE_SEARCHES)
    gradient_clip: float = _option(0.5, "clip the gradient's norm to this before each step (the original: 0.5); "
                                   "0 turns clipping off, as in the paper's L-BFGS runs", group=TRAIN,
                                   parse=float, metavar="NORM")
    initial_bias: float = _option(1.570796, "the fixed bias inside every neuron (the QRNN's `bias`)",
                                  group=TRAIN, parse=float, metavar="IB")
    initial_bias_spread: float = _option(0.1, "std of the neurons' initial thetas", group=TRAIN, parse=float,
                                         metavar="IBS")
    initial_weights_spread: float = _option(0.01, "std of the neurons' initial weights", group=TRAIN,
                                            parse=float, metavar="IWS")
    initial_unitaries_spread: float = _option(0.01, "std of the initial rY angles", group=TRAIN, parse=float,
                                              metavar="IUS")
    loss: str = _option("original", "training loss: the original's cross-entropy over probabilities, or the "
                        "negative log-likelihood", group=TRAIN, parse=str, choices=LOSSES)
    # Where and how it runs.
    device: str = _option("cpu", "device; auto: cuda when available", group=TRAIN, parse=str, choices=DEVICES)
    dtype: str = _option("float32", "floating point precision of the simulation", group=TRAIN, parse=str,
                         choices=DTYPES)
    method: str = _option("auto", "how the QRNN runs a pass (the same numbers either way): kernel (one 2^H x 2^H "
                          "map per input word: small workspaces), statevector (neuron by neuron on the 2^H "
                          "amplitudes: large workspaces) or auto (the cheaper by a cost model)", group=TRAIN,
                          parse=str, choices=METHODS)
    validate_every: int = _option(10, "validate every this many epochs (and after the last)", group=TRAIN,
                                  parse=int, metavar="N")
    out: str = _option(".", "directory under which runs/ (TensorBoard logs) and checkpoints/ go", group=TRAIN,
                       parse=str, metavar="DIR")

    def as_dict(self) -> dict[str, Any]:
        """The configuration as a plain dict (what checkpoints store)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> TrainConfig:
        """A config from stored values; keys this version does not know are an error, missing ones default."""
        unknown = sorted(set(values) - set(option_names()))
        if unknown:
            raise QRNNError(f"unknown training option(s) {', '.join(unknown)}; valid: {', '.join(option_names())}")
        return cls(**dict(values))


def option_names(group: str | None = None) -> list[str]:
    """The config's field names, all or of one group."""
    return [f.name for f in dataclasses.fields(TrainConfig) if group is None or f.metadata["group"] == group]


def flag(name: str) -> str:
    """The command-line flag of a config field (`batch_size` -> `--batch-size`)."""
    return "--" + name.replace("_", "-")


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return (_is_int(value) or isinstance(value, float)) and math.isfinite(value)  # type: ignore[arg-type]


# Upper bounds of options that could otherwise not work (what --workspace, --sentence-length and --batch-size
# may be is bounded by the memory a training pass needs, checked when a run is prepared).
# The neurons raise their amplitudes to the power 2^order: beyond 16 (a power of 65536) an activation is a step
# function with no gradient to learn from, and 2^64 no longer fits the integer the power is computed with.
MAX_ORDER = 16
# Building the model takes about 0.3 ms per stage and workspace qubit (100000 stages: minutes and gigabytes before
# the first epoch); the paper uses at most a handful.
MAX_STAGES = 1000
# A QRNN simulates 2^workspace amplitudes per sequence: 2^64 fit no machine (the memory a training pass needs is
# checked against the free memory when a run is prepared, naming the largest workspace that fits). A baseline's
# --workspace (hidden units) is bounded by that memory check alone.
MAX_QRNN_WORKSPACE = 64
# Why a run stopped when it reached its loss threshold: on the validation loss (--stop-at-loss) or on a training
# step's loss (--stop-at-training-loss). Both count as reaching the loss (the DNA figure's epochs to reach it).
STOP_AT_TRAINING_LOSS = "stop-at-training-loss"
REACHED_LOSS = ("stop-at-loss", STOP_AT_TRAINING_LOSS)
# The classical baselines' deepest stack: the paper's comparisons use one or two layers.
MAX_BASELINE_LAYERS = 8
# The parameters are angles (and a baseline's weights): a step of a million is no longer a learning rate, and
# larger ones overflow inside the optimizers' float arithmetic (AdamW divides by 0.1 at its first step).
MAX_LEARNING_RATE = 1e6


def check_config(config: TrainConfig) -> None:
    """Raise `QRNNError` (one line naming the flag and what is allowed) for the first invalid option."""
    integers = {
        "port": (1, 65535),
        "num_shards": (1, None),
        "num_validation_samples": (0, None),
        "epochs": (1, None),
        "seed": (0, 2**63 - 1),
        "workspace": (1, None),
        "stages": (0, MAX_STAGES),
        "order": (1, MAX_ORDER),
        "degree": (1, None),
        "sentence_length": (2, None),
        "validate_every": (1, None),
        "layers": (1, MAX_BASELINE_LAYERS),
    }
    reasons = {
        "stages": "; more stages take minutes and gigabytes to build",
        "order": "; the neurons' amplitudes are raised to the power 2^order, a step function beyond that",
    }
    for name, (low, high) in integers.items():
        value = getattr(config, name)
        if not _is_int(value) or value < low or (high is not None and value > high):
            allowed = f"an integer >= {low}" if high is None else f"an integer in [{low}, {high}]"
            reason = reasons.get(name, "") if _is_int(value) and high is not None and value > high else ""
            raise QRNNError(f"{flag(name)} must be {allowed}, got {value!r}{reason}")
    if config.model == "qrnn" and (config.layers != 1 or config.baseline_init != "standard"):
        given = f"--layers {config.layers}" if config.layers != 1 else f"--baseline-init {config.baseline_init}"
        raise QRNNError(f"{given} applies to the classical baselines (--model rnn or lstm), not the QRNN")
    if config.model == "qrnn" and config.workspace > MAX_QRNN_WORKSPACE:
        raise QRNNError(
            f"--workspace must be at most {MAX_QRNN_WORKSPACE} for a QRNN (it simulates 2^workspace amplitudes per "
            f"sequence), got {config.workspace}"
        )
    if config.batch_size is not None and (not _is_int(config.batch_size) or config.batch_size < 1):
        raise QRNNError(f"--batch-size must be an integer >= 1, got {config.batch_size!r}")
    non_negative = [
        "weight_decay", "gradient_clip", "initial_bias_spread", "initial_weights_spread", "initial_unitaries_spread"
    ]
    for name in non_negative:
        value = getattr(config, name)
        if not _is_number(value) or value < 0:
            raise QRNNError(f"{flag(name)} must be a finite number >= 0, got {value!r}")
    if config.optimizer == "lbfgs" and config.weight_decay:
        raise QRNNError(f"--optimizer lbfgs has no weight decay; use --weight-decay 0, got {config.weight_decay}")
    if config.lbfgs_line_search != "none" and config.optimizer != "lbfgs":
        raise QRNNError(
            f"--lbfgs-line-search {config.lbfgs_line_search} applies to --optimizer lbfgs only, "
            f"got --optimizer {config.optimizer}; drop the flag or use --optimizer lbfgs"
        )
    if not _is_number(config.learning_rate) or not 0 < config.learning_rate <= MAX_LEARNING_RATE:
        raise QRNNError(
            f"--learning-rate must be a finite number > 0 and at most {MAX_LEARNING_RATE:g}, got "
            f"{config.learning_rate!r}"
        )
    if not _is_number(config.initial_bias):
        raise QRNNError(f"--initial-bias must be a finite number, got {config.initial_bias!r}")
    if config.timeout is not None and (not _is_number(config.timeout) or config.timeout <= 0):
        raise QRNNError(f"--timeout must be a number of seconds > 0, got {config.timeout!r}")
    if config.stop_at_loss is not None and not _is_number(config.stop_at_loss):
        raise QRNNError(f"--stop-at-loss must be a finite number, got {config.stop_at_loss!r}")
    if config.stop_at_training_loss is not None and not _is_number(config.stop_at_training_loss):
        raise QRNNError(f"--stop-at-training-loss must be a finite number, got {config.stop_at_training_loss!r}")
    for f in dataclasses.fields(TrainConfig):
        choices = f.metadata["choices"]
        value = getattr(config, f.name)
        if choices is not None and value not in choices:
            raise QRNNError(f"unknown {flag(f.name)[2:]} {value!r}; valid: {', '.join(choices)}")
    for name in ("tag", "dataset", "out", "alphabet"):
        if not isinstance(getattr(config, name), str):
            raise QRNNError(f"{flag(name)} must be a string, got {getattr(config, name)!r}")
    if "/" in config.tag or "\0" in config.tag:
        raise QRNNError(f"--tag may not contain '/', got {config.tag!r}")


def make_config(options: Mapping[str, Any]) -> TrainConfig:
    """A checked config from keyword options (flag names with underscores); unknown names are an error."""
    unknown = sorted(set(options) - set(option_names()))
    if unknown:
        raise QRNNError(
            f"unknown option(s) {', '.join(unknown)}; valid options: {', '.join(option_names())}"
        )
    config = TrainConfig(**dict(options))
    check_config(config)
    return config
