"""The command lines about the original implementation: `qrnn convert-reference` (`checkpoints`). Kept apart
from the converter so that building the parser does not import torch (the converter needs it at import time)."""

from __future__ import annotations

import argparse
from typing import Any


def command_convert_reference(args: argparse.Namespace) -> int:
    """`convert-reference OLD NEW`: convert a checkpoint of the original implementation."""
    from qrnn.original.checkpoints import convert_original_checkpoint

    summary = convert_original_checkpoint(args.old, args.new, force=args.force)
    print(summary.to_text())
    return 0


def register(subparsers: Any) -> None:
    """Add `convert-reference` to a command line's subcommands."""
    from qrnn.training.commands import HELP_FORMATTER

    parser = subparsers.add_parser(
        "convert-reference",
        help="convert a checkpoint of the original implementation (e.g. the paper's) to qrnn's format",
        description="Read a torch.save checkpoint of the original implementation without executing "
        "anything from it (a restricted unpickler: tensors, OrderedDict and argparse.Namespace only; the "
        "script's `func` is kept as a name) and write it as a qrnn checkpoint that `qrnn evaluate`, "
        "`qrnn resume` and `qrnn.load_checkpoint` accept. The Adam/SGD/RMSprop state is converted, "
        "L-BFGS state dropped.",
        formatter_class=HELP_FORMATTER,
    )
    parser.add_argument("old", metavar="OLD", help="the original implementation's checkpoint file")
    parser.add_argument("new", metavar="NEW", help="the qrnn checkpoint to write")
    parser.add_argument("--force", action="store_true", help="overwrite NEW if it exists")
    parser.set_defaults(func=command_convert_reference)
