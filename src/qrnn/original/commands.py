"""The command lines about the original implementation: `qrnn convert-reference` (`checkpoints`) and `qrnn
original-logs` (`training_logs`). Kept apart from the converter so that building the parser does not import
torch (the converter needs it at import time)."""

from __future__ import annotations

import argparse
from typing import Any


def command_convert_reference(args: argparse.Namespace) -> int:
    """`convert-reference OLD NEW`: convert a checkpoint of the original implementation."""
    from qrnn.original.checkpoints import convert_original_checkpoint

    summary = convert_original_checkpoint(args.old, args.new, force=args.force)
    print(summary.to_text())
    return 0


def command_original_logs(args: argparse.Namespace) -> int:
    """`original-logs SVG [SVG ...]`: the runs of the original's published training-log charts."""
    import json

    from qrnn.errors import QRNNError
    from qrnn.original.training_logs import read_chart, summarise

    for threshold in args.below:
        if not threshold > 0:
            raise QRNNError(f"--below takes positive values, got {threshold:g}")
    if args.by_step is not None and args.by_step < 0:
        raise QRNNError(f"--by-step must be at least 0, got {args.by_step:g}")
    charts = [read_chart(path) for path in args.charts]
    if args.json:
        records = [
            {
                "chart": chart.path,
                "log_values": chart.log_values,
                "runs": [
                    {"colour": run.colour, "points": len(run.steps), "last_step": run.last_step,
                     "best": run.best, "best_step": run.best_step}
                    for run in chart.ranked()
                ],
                "below": {f"{t:g}": chart.count_below(t, args.by_step) for t in args.below},
                "by_step": args.by_step,
            }
            for chart in charts
        ]
        print(json.dumps(records, indent=2))
    else:
        print("\n\n".join(summarise(chart, args.below, args.by_step) for chart in charts))
    return 0


def register(subparsers: Any) -> None:
    """Add `convert-reference` and `original-logs` to a command line's subcommands."""
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

    logs = subparsers.add_parser(
        "original-logs",
        help="list the runs of the original's published training-log charts (TensorBoard SVG exports)",
        description="Read TensorBoard scalar charts exported as SVG, as the original repository ships them in "
        "results/training-logs/<experiment>/ (e.g. loss_validate.svg: one line per run of the experiment's "
        "pool), and list every run: its points, last step, best (lowest) value and the step of it, best first; "
        "then how many runs got below each --below value. The values are recovered from the drawing through "
        "the axis tick labels; on the original's charts they equal its published CSV files.",
        formatter_class=HELP_FORMATTER,
    )
    logs.add_argument("charts", metavar="SVG", nargs="+", help="a chart exported by TensorBoard as SVG")
    logs.add_argument(
        "--below", type=float, nargs="+", default=[0.1, 0.05, 0.01], metavar="V",
        help="count the runs whose lowest value is below each V",
    )
    logs.add_argument("--by-step", type=float, default=None, metavar="S", help="count only values up to step S")
    logs.add_argument("--json", action="store_true", help="print JSON instead of a table")
    logs.set_defaults(func=command_original_logs)
