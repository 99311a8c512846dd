"""Loading the QRNN of a training checkpoint for export; classical baselines have no circuit and are refused."""

from __future__ import annotations

import os
from typing import Any

from qrnn.errors import QRNNError
from qrnn.model import QRNN


def load_qrnn_checkpoint(path: str | os.PathLike[str]) -> tuple[QRNN, dict[str, Any]]:
    """The QRNN of a training checkpoint (float64, eval mode) and its run configuration (`load_checkpoint`'s);
    a one-line `QRNNError` for a missing or foreign file, or a checkpoint of another model kind."""
    from qrnn.training.checkpoint import load_checkpoint, read_checkpoint

    payload = read_checkpoint(path)
    kind = payload.get("config", {}).get("model", "qrnn")
    if kind != "qrnn":
        raise QRNNError(
            f"{path} is a checkpoint of a classical {kind!r} baseline, which has no quantum circuit; "
            "export and resources take checkpoints of QRNNs (model qrnn)"
        )
    model, config = load_checkpoint(path, check_data=False)
    if not isinstance(model, QRNN):
        raise QRNNError(f"{path} does not hold a QRNN (got {type(model).__name__}); export takes QRNN checkpoints")
    # Angles are exported as exact decimals of the trained values; float64 keeps the checks against the model exact.
    return model.double(), config
