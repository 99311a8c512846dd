"""The `qrnn` command line: one subcommand per module, each registering its own parser.

Command modules keep heavy imports (torch) inside their handlers so that `qrnn --help` stays fast.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys

from qrnn.errors import QRNNError

# Each module defines `register(subparsers)`, adding one or more subcommands whose parsers set `func`, and may
# define `register_global(parser)` for options accepted before the subcommand too (the original's global options).
COMMAND_MODULES = [
    "qrnn.bench",
    "qrnn.datasets.commands",
    "qrnn.training.commands",
    "qrnn.presets.commands",
    "qrnn.sweep",
    "qrnn.original.commands",
    "qrnn.plot",
    "qrnn.export.commands",
]


def build_parser(prog: str = "qrnn") -> argparse.ArgumentParser:
    """The full argument parser with every registered subcommand."""
    from qrnn import __version__

    parser = OneLineErrorParser(
        prog=prog,
        description="Quantum recurrent neural networks: train, evaluate and benchmark QRNNs.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"qrnn {__version__}")
    modules = [importlib.import_module(name) for name in COMMAND_MODULES]
    for module in modules:
        if hasattr(module, "register_global"):
            module.register_global(parser)
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineErrorParser)
    for module in modules:
        module.register(subparsers)
    from qrnn.datasets.commands import add_to_data_commands

    add_to_data_commands(subparsers)
    return parser


class OneLineErrorParser(argparse.ArgumentParser):
    """An argument parser that reports a bad command line in one line on stderr (exit code 2)."""

    def error(self, message: str) -> None:  # type: ignore[override]
        """Print `<prog>: error: <message>` and exit with code 2."""
        self.exit(2, f"{self.prog}: error: {message}; see {self.prog} --help\n")


def main(argv: list[str] | None = None, prog: str = "qrnn") -> int:
    """Entry point of the `qrnn` console script (and of `./main.py`, the original's name for it)."""
    parser = build_parser(prog)
    args = parser.parse_args(argv)
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 0
    try:
        return int(args.func(args) or 0)
    except QRNNError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        return error.exit_code
    except BrokenPipeError:
        # The reader went away (`qrnn sweep --status | head`): what it wanted has been printed. Point stdout
        # at devnull so that the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
