"""Training checkpoints: names, atomic writing, safe loading, and the random states that make resuming exact.

A checkpoint is a `torch.save` file (a zip) holding only tensors and plain data, so it loads with
`torch.load(..., weights_only=True)`, which never executes code from the file. It holds the model and optimizer
states, the whole configuration, the epoch counter, the best values, the run's identity (log directory), and
every shard's random states (torch CPU and CUDA, the sampling generator, the data generators, Python's and
NumPy's global generators), so that `resume` continues exactly where the run stopped.
"""

from __future__ import annotations

import os
import random
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from qrnn.datasets.base import STAGES, Dataset
from qrnn.errors import QRNNError
from qrnn.files import write_atomically

FORMAT = "qrnn-training-checkpoint"
# Bump when the layout changes incompatibly; loading refuses files of a newer version with one line.
FORMAT_VERSION = 1
SUFFIX = ".tar"
TIMESTAMP_FORMAT = "%Y-%m-%d--%H-%M-%S"
_ZIP_MAGIC = b"PK\x03\x04"


def timestamp(when: datetime | None = None) -> str:
    """The timestamp used in run and checkpoint names."""
    return (when or datetime.now()).strftime(TIMESTAMP_FORMAT)


def checkpoint_name(tag: str, dataset: str, run_id: str, extra: str, when: datetime | None = None) -> str:
    """The original's naming: `checkpoint-<tag>-<dataset>--<run id>-<extra>-<timestamp>.tar`."""
    return f"checkpoint-{tag}-{dataset}--{run_id}-{extra}-{timestamp(when)}{SUFFIX}"


def save_atomically(payload: dict[str, Any], path: Path) -> None:
    """Write `payload` to `path` so that readers only ever see a complete file (see `qrnn.files`)."""
    write_atomically(path, lambda stream: torch.save(payload, stream))


def read_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The contents of a qrnn training checkpoint, loaded without executing anything from the file; one-line
    `QRNNError`s for a missing, truncated, foreign or newer-format file."""
    path = Path(path)
    if not path.exists():
        raise QRNNError(f"checkpoint {path} does not exist")
    if not path.is_file():
        raise QRNNError(f"checkpoint {path} is not a file")
    with open(path, "rb") as stream:
        head = stream.read(len(_ZIP_MAGIC))
    if head != _ZIP_MAGIC:
        raise QRNNError(f"{path} is not a qrnn checkpoint (not a torch zip file)")
    try:
        payload = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises many types for bad files; all mean "cannot use this file"
        message = str(error)
        if "Weights only load failed" in message:
            raise QRNNError(
                f"{path} is not a qrnn checkpoint: it holds pickled Python objects, which are never loaded "
                "(a checkpoint of the original implementation needs converting first)"
            ) from None
        raise QRNNError(f"checkpoint {path} is truncated or corrupt ({type(error).__name__})") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise QRNNError(f"{path} is not a qrnn training checkpoint (it holds other torch data)")
    version = payload.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise QRNNError(
            f"checkpoint {path} has format version {version}, newer than this qrnn reads ({FORMAT_VERSION}); "
            f"it was written by qrnn {payload.get('qrnn_version')}: upgrade qrnn to use it"
        )
    return payload


def out_directory_of(path: Path, configured_out: str) -> Path:
    """Where a resumed run writes: the folder holding `checkpoints/` with this file in it (so a moved run
    directory keeps working), else the configured `--out`."""
    path = path.resolve()
    if path.parent.name == "checkpoints":
        return path.parent.parent
    return Path(configured_out).resolve()


# ---- random states ----


def _python_random_state() -> dict[str, Any]:
    version, internal, gauss_next = random.getstate()
    return {"version": version, "internal": torch.tensor(internal, dtype=torch.int64), "gauss_next": gauss_next}


def _set_python_random_state(state: dict[str, Any]) -> None:
    internal = tuple(int(value) for value in state["internal"].tolist())
    random.setstate((state["version"], internal, state["gauss_next"]))


def _numpy_random_state() -> dict[str, Any]:
    name, keys, position, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    return {
        "name": name,
        "keys": torch.from_numpy(keys.astype(np.int64)),
        "position": int(position),
        "has_gauss": int(has_gauss),
        "cached_gaussian": float(cached_gaussian),
    }


def _set_numpy_random_state(state: dict[str, Any]) -> None:
    keys = state["keys"].numpy().astype(np.uint32)
    np.random.set_state((state["name"], keys, state["position"], state["has_gauss"], state["cached_gaussian"]))


def capture_random_state(dataset: Dataset, sampling: torch.Generator, device: torch.device) -> dict[str, Any]:
    """One shard's random states: global generators, the sampling generator and the dataset's generators (and
    the dataset's own `state_dict()`, for datasets that keep other mutable state)."""
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state(device) if device.type == "cuda" else None,
        "python": _python_random_state(),
        "numpy": _numpy_random_state(),
        "sampling": sampling.get_state(),
        "dataset_generators": {stage: dataset.generator(stage).get_state() for stage in STAGES},
        "dataset_state": dataset.state_dict() if hasattr(dataset, "state_dict") else None,
    }
    return state


def restore_random_state(
    state: dict[str, Any], dataset: Dataset, sampling: torch.Generator, device: torch.device
) -> None:
    """Put back what `capture_random_state` captured (on the same shard of a run with as many shards)."""
    torch.set_rng_state(state["torch"].cpu())
    if device.type == "cuda" and state["cuda"] is not None:
        torch.cuda.set_rng_state(state["cuda"].cpu(), device)
    _set_python_random_state(state["python"])
    _set_numpy_random_state(state["numpy"])
    sampling.set_state(state["sampling"].cpu())
    for stage, generator_state in state["dataset_generators"].items():
        dataset.generator(stage).set_state(generator_state.cpu())
    if state["dataset_state"] is not None:
        dataset.load_state_dict(state["dataset_state"])  # type: ignore[attr-defined]


# ---- the data a checkpoint was trained on ----


def data_record(dataset: type[Dataset] | Dataset, source: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a checkpoint records about its data: the dataset's layout version and where its resources came
    from (`qrnn.datasets.resources.data_source`, by default the files read so far in this process)."""
    from qrnn.datasets.resources import data_source

    return {"dataset_layout_version": int(dataset.layout_version), "data": source or data_source()}


def check_data(payload: dict[str, Any], path: str | os.PathLike[str]) -> str | None:
    """Refuse (one-line `QRNNError`) a checkpoint trained on an older layout of its dataset than the current
    one; return a one-line warning when the data now in use (`--data-dir`, `QRNN_DATA_DIR`) is not the data
    it was trained on, else None. Checkpoints written before layouts were recorded count as layout 1."""
    from qrnn.datasets import lookup_run
    from qrnn.datasets.resources import source_mismatch

    name = payload["config"]["dataset"]
    current = lookup_run(payload["config"]).cls.layout_version
    recorded = payload.get("dataset_layout_version", 1)
    if not isinstance(recorded, int) or recorded < current:
        raise QRNNError(
            f"checkpoint {path} was made with the old layout of dataset {name} (layout version {recorded}, now "
            f"{current}: the original's sequence layout and scoring); it must be retrained"
        )
    mismatch = source_mismatch(payload.get("data"))
    if mismatch is None:
        return None
    return f"warning: checkpoint {Path(path).name} was trained on {mismatch}"


def warn_about_data(payload: dict[str, Any], path: str | os.PathLike[str]) -> None:
    """`check_data`, printing its warning (if any) on stderr."""
    import sys

    warning = check_data(payload, path)
    if warning is not None:
        print(warning, file=sys.stderr, flush=True)


# ---- models for notebooks ----


def load_checkpoint(
    path: str | os.PathLike[str], device: str | torch.device = "cpu", check_data: bool = True
) -> tuple[nn.Module, dict[str, Any]]:
    """The model of a training checkpoint, ready to evaluate (eval mode, the run's dtype, on `device`), and the
    run's configuration (the training options as a dict, plus `input_size`, `epoch`, the best values and
    `data_source`, the data it was trained on). `check_data` refuses a checkpoint of an older dataset layout and
    warns about other data (`check_data`); export turns it off, since a circuit does not depend on the data."""
    from qrnn.training.models import DTYPES, build_model

    payload = read_checkpoint(path, map_location="cpu")
    if check_data:
        warn_about_data(payload, path)
    config = dict(payload["config"])
    config["input_size"] = payload["input_size"]
    model = build_model(config)
    model.to(DTYPES[config["dtype"]])
    model.load_state_dict(payload["model_state_dict"])
    model.to(torch.device(device))
    model.eval()
    info = dict(config)
    info.update(
        epoch=payload["epoch"],
        best_validation_loss=payload["best"]["validation_loss"],
        best_character_error_rate=payload["best"]["character_error_rate"],
        checkpoint_kind=payload["kind"],
        data_source=payload.get("data"),
        dataset_file=payload.get("dataset_file"),
    )
    return model, info
