"""Datasets, by name: a registry of small classes producing bit-tensor batches (see `base`).

`qrnn.datasets.get_dataset(name, ...)`, `lookup`, `dataset_names` and the other names below work right after
`import qrnn.datasets`. Your own data: `--dataset text:PATH` or `npz:PATH`, or `from_arrays(...)` from Python
(`qrnn.datasets.files`); your own class: subclass `Dataset` and `register` it (see `Dataset`).

The modules that register datasets and resource builders are imported on first use of the registry rather than
by the import itself, so that importing this package (which every `qrnn` command line does, to register its
subcommands) does not import torch and `qrnn --help` stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from qrnn.datasets.base import (
        STAGES,
        Batch,
        Dataset,
        DatasetFamily,
        DatasetInfo,
        canonical_name,
        dataset_families,
        dataset_label,
        dataset_names,
        derive_seed,
        get_dataset,
        lookup,
        lookup_run,
        register,
        register_family,
    )
    from qrnn.datasets.files import from_arrays

# Every module that registers datasets (`base.register`) or resource builders (`pipeline.register_builder`).
DATASET_MODULES = (
    "qrnn.datasets.synthetic",
    "qrnn.datasets.text",
    "qrnn.datasets.shakespeare",
    "qrnn.datasets.mnist",
    "qrnn.datasets.files",
)

__all__ = [
    "DATASET_MODULES",
    "STAGES",
    "Batch",
    "Dataset",
    "DatasetFamily",
    "DatasetInfo",
    "canonical_name",
    "dataset_families",
    "dataset_label",
    "dataset_names",
    "derive_seed",
    "from_arrays",
    "get_dataset",
    "load_all",
    "lookup",
    "lookup_run",
    "register",
    "register_family",
]


def load_all() -> None:
    """Import every registering module, filling the dataset and builder registries (cheap after the first
    call: Python imports a module once)."""
    for module in DATASET_MODULES:
        importlib.import_module(module)


def __getattr__(name: str) -> Any:
    """The registry's public names, loaded with every dataset on first access."""
    if name == "from_arrays":
        load_all()
        from qrnn.datasets import files

        return files.from_arrays
    if name in __all__:
        load_all()
        from qrnn.datasets import base

        return getattr(base, name)
    raise AttributeError(f"module 'qrnn.datasets' has no attribute {name!r}")
