"""Training QRNNs: the original implementation's training program (train, resume, evaluate), multi-shard
training, checkpoints and TensorBoard logs.

Python API: `train(**options)` (the command line's options, flag names with underscores), `resume(checkpoint)`,
`train_pool(list_of_options)` (runs of one topology trained together as a pool), `load_checkpoint(path)` ->
(model, config), `evaluate_checkpoint(path)`, `evaluate_checkpoints(paths)` (an
ensemble and its members), and `build_model(config)`, the one
factory every model kind goes through. Names load lazily, so importing this package imports no torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "TrainConfig": "qrnn.training.config",
    "TrainResult": "qrnn.training.loop",
    "train": "qrnn.training.launch",
    "resume": "qrnn.training.launch",
    "train_pool": "qrnn.training.pool",
    "load_checkpoint": "qrnn.training.checkpoint",
    "read_checkpoint": "qrnn.training.checkpoint",
    "build_model": "qrnn.training.models",
    "evaluate_checkpoint": "qrnn.training.evaluate",
    "evaluate_checkpoints": "qrnn.training.evaluate",
    "EvaluationReport": "qrnn.training.evaluate",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Import the module defining `name` on first use."""
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'qrnn.training' has no attribute {name!r}")
