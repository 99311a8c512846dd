"""qrnn: quantum recurrent neural networks (Bausch, NeurIPS 2020), simulated exactly in PyTorch."""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

__all__ = ["QRNN", "__version__", "evaluate", "load_checkpoint", "train", "train_pool"]

if TYPE_CHECKING:
    from qrnn.model import QRNN
    from qrnn.training import evaluate_checkpoint as evaluate
    from qrnn.training import load_checkpoint, train, train_pool

# Everything loads on first use, so that `qrnn --help` does not import torch: `qrnn.QRNN` from the model,
# `qrnn.train(**options)`, `qrnn.evaluate(checkpoint)` and `qrnn.load_checkpoint(path)` from the training program.
_LAZY_EXPORTS = {
    "QRNN": ("qrnn.model", "QRNN"),
    "train": ("qrnn.training", "train"),
    "train_pool": ("qrnn.training", "train_pool"),
    "evaluate": ("qrnn.training", "evaluate_checkpoint"),
    "load_checkpoint": ("qrnn.training", "load_checkpoint"),
}


def __getattr__(name: str) -> object:
    """Load the public names on first use."""
    import importlib

    if name == "datasets":  # `qrnn.datasets.from_arrays(...)` right after `import qrnn`
        return importlib.import_module("qrnn.datasets")
    if name in _LAZY_EXPORTS:
        module, attribute = _LAZY_EXPORTS[name]
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module 'qrnn' has no attribute {name!r}")
