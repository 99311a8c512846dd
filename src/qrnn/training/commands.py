"""The `train`, `resume` and `evaluate` subcommands (for `qrnn` and for `./main.py`).

The original's global options (`--port`, `--num-shards`, `--num-validation-samples`, `--tag`, `--epochs`,
`--timeout`, `--stop-at-loss`, `--seed`) go before the subcommand in `./main.py` and are accepted after it too
(`qrnn train --epochs 100`); a value given after the subcommand wins. They are registered with SUPPRESS
defaults so that the code can tell given options from defaults (`resume` must know what the user changed).
Heavy imports (torch) stay inside the handlers so that `--help` is fast.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from typing import Any

from qrnn.training.config import GLOBAL, LOSSES, TRAIN, TrainConfig, flag

HELP_FORMATTER = argparse.ArgumentDefaultsHelpFormatter


def _config_field(name: str) -> dataclasses.Field[Any]:
    return next(f for f in dataclasses.fields(TrainConfig) if f.name == name)


def _add_config_option(parser: argparse.ArgumentParser | Any, name: str, suppress: bool) -> None:
    """Add the flag of config field `name`; `suppress`: no default in the namespace (shown in the help)."""
    option = _config_field(name)
    meta = option.metadata
    help_text = meta["help"]
    if suppress:
        help_text += f" (default: {option.default!r})" if isinstance(option.default, str) else (
            f" (default: {option.default})"
        )
    kwargs: dict[str, Any] = {"dest": name, "type": meta["parse"], "help": help_text}
    if meta["choices"] is not None:
        kwargs["choices"] = meta["choices"]
    else:
        kwargs["metavar"] = meta["metavar"]
    kwargs["default"] = argparse.SUPPRESS if suppress else option.default
    parser.add_argument(flag(name), **kwargs)


def add_global_options(parser: argparse.ArgumentParser) -> None:
    """The original's global options, as a group of their own, given values only (SUPPRESS defaults)."""
    group = parser.add_argument_group("global options (also accepted before the subcommand in ./main.py)")
    for option in dataclasses.fields(TrainConfig):
        if option.metadata["group"] == GLOBAL:
            _add_config_option(group, option.name, suppress=True)


def add_train_options(parser: argparse.ArgumentParser) -> None:
    """The `train` subcommand's options, given values only (SUPPRESS defaults, shown in the help): a preset's
    values must yield to the flags the user typed, and only to those."""
    group = parser.add_argument_group("training options")
    group.add_argument("--preset", default=None, metavar="NAME",
                       help="start from this preset's options (`qrnn presets` lists them; or a .toml file); "
                       "flags given here override them")
    for option in dataclasses.fields(TrainConfig):
        if option.metadata["group"] == TRAIN:
            _add_config_option(group, option.name, suppress=True)


def _given_options(args: argparse.Namespace) -> dict[str, Any]:
    return {f.name: getattr(args, f.name) for f in dataclasses.fields(TrainConfig) if hasattr(args, f.name)}


def command_train(args: argparse.Namespace) -> int:
    """`train`: a new run with the given options (on top of the preset's, if one is named)."""
    from qrnn.training.launch import train

    return train(preset=args.preset, **_given_options(args)).exit_code


def command_resume(args: argparse.Namespace) -> int:
    """`resume CHECKPOINT`: continue a run where it stopped."""
    from qrnn.training.launch import resume

    return resume(
        args.checkpoint,
        override_learning_rate=args.override_learning_rate,
        override_batch_size=args.override_batch_size,
        override_loss=args.override_loss,
        **_given_options(args),
    ).exit_code


def command_evaluate(args: argparse.Namespace) -> int:
    """`evaluate CHECKPOINT...`: the character error rate, argmax accuracy, loss (and for classification
    datasets the sampled and the exact class accuracy), of one checkpoint or an ensemble and its members."""
    from qrnn.training.evaluate import evaluate_checkpoints

    report = evaluate_checkpoints(
        args.checkpoints,
        stage=args.stage,
        samples=args.samples,
        batch_size=args.batch_size,
        seed=args.seed,
        device=args.device,
        dataset=args.dataset,
    )
    print(report.to_json() if args.json else report.to_text())
    sys.stdout.flush()
    return 0


def register_global(parser: argparse.ArgumentParser) -> None:
    """The original's global options on the top-level parser, so `qrnn --epochs 5 train` works as `main.py`."""
    add_global_options(parser)


def register(subparsers: Any) -> None:
    """Add `train`, `resume` and `evaluate` to a command line's subcommands."""
    train = subparsers.add_parser(
        "train",
        help="train a QRNN (the original's training program)",
        description="Train a QRNN on a dataset; checkpoints go to <out>/checkpoints, TensorBoard logs to "
        "<out>/runs. Several shards: --num-shards N here, or run under torchrun.",
        formatter_class=HELP_FORMATTER,
    )
    add_train_options(train)
    add_global_options(train)
    train.set_defaults(func=command_train)

    resume = subparsers.add_parser(
        "resume",
        help="continue a training run from its checkpoint",
        description="Continue a run exactly where its checkpoint stopped: model, optimizer, random states, "
        "epoch counter, best values and log directory. Of the global options only --epochs, --timeout, "
        "--stop-at-loss, --port and --num-validation-samples may change.",
        formatter_class=HELP_FORMATTER,
    )
    resume.add_argument("checkpoint", metavar="CHECKPOINT", help="checkpoint file to resume from")
    resume.add_argument("--override-learning-rate", type=float, default=None, metavar="LR",
                        help="continue with this learning rate (None: the checkpoint's)")
    resume.add_argument("--override-batch-size", type=int, default=None, metavar="B",
                        help="continue with this batch size per shard (None: the checkpoint's)")
    resume.add_argument("--override-loss", default=None, choices=LOSSES,
                        help="continue with this training loss, e.g. nll to sharpen the label distributions of "
                        "a model trained with the original's (None: the checkpoint's)")
    add_global_options(resume)
    resume.set_defaults(func=command_resume)

    evaluate = subparsers.add_parser(
        "evaluate",
        help="evaluate checkpoints: character error rate, argmax accuracy, loss, class accuracies",
        description="Score a checkpoint's model: the character error rate of sampled outputs on the scored "
        "steps (the paper's measure, with its standard error over batches), the exact argmax accuracy "
        "with teacher forcing, the loss, and for classification datasets the sampled label accuracy (the "
        "paper's), the exact class accuracy (argmax of the class probabilities) and confusion matrices. "
        "Several checkpoints of the same dataset are scored as an ensemble (the mean of their class "
        "probabilities) and one by one.",
        formatter_class=HELP_FORMATTER,
    )
    evaluate.add_argument("checkpoints", nargs="+", metavar="CHECKPOINT",
                          help="checkpoint file(s) to evaluate; several form an ensemble")
    evaluate.add_argument("--stage", choices=("validate", "test"), default="test", help="data split")
    evaluate.add_argument("--samples", type=int, default=None, metavar="N",
                          help="sequences to score (None: the whole split of a dataset with a fixed split, "
                          "such as MNIST; 100 generated sequences otherwise)")
    evaluate.add_argument("--batch-size", type=int, default=None, metavar="B",
                          help="sequences per batch (None: 250 for a fixed split, "
                               "else the run's batch over all its shards)")
    evaluate.add_argument("--seed", type=int, default=None, metavar="SEED",
                          help="seed of the data and of the sampling (None: the run's seed)")
    evaluate.add_argument("--dataset", default=None, metavar="NAME",
                          help="score on this dataset instead of the one the runs trained on: the same word "
                          "width and classes, e.g. a mnist36-ds model on the plain mnist36 images (None: the "
                          "runs' own)")
    evaluate.add_argument("--device", choices=("cpu", "cuda", "auto"), default="cpu", help="device")
    evaluate.add_argument("--json", action="store_true", help="print the report as JSON (for scripts)")
    evaluate.set_defaults(func=command_evaluate)
