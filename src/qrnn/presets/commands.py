"""The `qrnn presets` command: list the shipped presets, or show one."""

from __future__ import annotations

import argparse
from typing import Any


def register(subparsers: Any) -> None:
    """Add the `presets` subcommand."""
    parser = subparsers.add_parser(
        "presets",
        help="list the experiment presets (for `qrnn train --preset` and `qrnn sweep`)",
        description="List the presets shipped with qrnn, one line each: name, grid size, description. With a "
        "NAME (or a .toml path): its file, and the size of its sweep.",
    )
    parser.add_argument("name", nargs="?", default=None, metavar="NAME", help="show this preset")
    parser.set_defaults(func=command_presets)


def command_presets(args: argparse.Namespace) -> int:
    """`qrnn presets [NAME]`."""
    from qrnn.presets import list_presets, load_preset

    if args.name is not None:
        preset = load_preset(args.name)
        print(f"# {preset.path}\n# sweep: {preset.summary()}\n")
        print(preset.path.read_text().rstrip())
        return 0
    presets = list_presets()
    width = max(len(preset.name) for preset in presets)
    for preset in presets:
        points = len(preset.grid())
        print(f"{preset.name.ljust(width)}  {str(points).rjust(4)} point{'s' if points != 1 else ' '}  "
              f"{preset.description}")
    return 0
