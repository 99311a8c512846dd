"""qrnn: quantum recurrent neural networks (Bausch, NeurIPS 2020), simulated exactly in PyTorch."""

from __future__ import annotations

__version__ = "0.1.0"

from qrnn.model import QRNN  # noqa: E402

__all__ = ["QRNN", "__version__"]
