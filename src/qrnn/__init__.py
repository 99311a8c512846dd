"""qrnn: quantum recurrent neural networks (Bausch, NeurIPS 2020), simulated exactly in PyTorch."""

from __future__ import annotations

__version__ = "0.1.0"

from qrnn.model import QRNN  # noqa: E402

__all__ = ["QRNN", "__version__", "load_checkpoint", "train"]

# The training API loads on first use (it pulls in the datasets and TensorBoard).
_TRAINING_EXPORTS = ("train", "load_checkpoint")


def __getattr__(name: str) -> object:
    """`qrnn.train(**options)` and `qrnn.load_checkpoint(path)`, from `qrnn.training`."""
    if name in _TRAINING_EXPORTS:
        from qrnn import training

        return getattr(training, name)
    raise AttributeError(f"module 'qrnn' has no attribute {name!r}")
