"""Training checkpoints: names, atomic writing, safe loading, and the random states that make resuming exact.

A checkpoint is a `torch.save` file (a zip) holding only tensors and plain data, so it loads with
`torch.load(..., weights_only=True)`, which never executes code from the file. It holds the model and optimizer
states, the whole configuration, the epoch counter, the best values, the run's identity (log directory), and
every shard's random states (torch CPU and CUDA, the sampling generator, the data generators, Python's and
NumPy's global generators), so that `resume` continues exactly where the run stopped.

`read_checkpoint` checks a file before anything in it is used (see its docstring): integrity (zip CRCs), sizes
(declared before inflating, bounded by what the configuration needs), and every key, type and name.
"""

from __future__ import annotations

import io
import math
import os
import random
import re
import zipfile
import zlib
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from qrnn.datasets.base import STAGES, Dataset
from qrnn.errors import QRNNError, RunFault
from qrnn.files import check_name, describe_error, read_bytes, write_atomically
from qrnn.training.config import TrainConfig, check_config
from qrnn.training.models import LBFGS_HISTORY_SIZE

FORMAT = "qrnn-training-checkpoint"
# Bump when the layout changes incompatibly; loading refuses files of a newer version with one line.
FORMAT_VERSION = 1
SUFFIX = ".tar"
TIMESTAMP_FORMAT = "%Y-%m-%d--%H-%M-%S"
_ZIP_MAGIC = b"PK\x03\x04"
# A checkpoint is read whole into memory (once: what is checked is what is loaded). qrnn's own are far smaller:
# the models are small, and even a wide classical baseline with Adam's state stays in the tens of MB.
MAX_CHECKPOINT_BYTES = 2 * 2**30
# The pickled part holds plain data only (configuration, names, numbers); the tensors are other zip members.
MAX_PICKLE_BYTES = 16 * 2**20
# Tensor bytes a checkpoint may hold besides the model's parameters: the optimizer's state, up to L-BFGS's
# history of two vectors per step (`PARAMETER_COPIES` times the parameters), and per shard the random states (a
# few KB) and a dataset's own state (MNIST's sampling orders, under 2 MB).
PARAMETER_COPIES = 2 * LBFGS_HISTORY_SIZE + 8
SHARD_STATE_BYTES = 16 * 2**20
_RUN_ID = re.compile(r"[0-9a-f]{6}")
_TENSOR_MEMBER = re.compile(r"/data/\d+$")
# What zipfile raises for a damaged archive: bad structure or CRC, bad deflate data, an unknown compression
# method or an encrypted member.
_ZIP_ERRORS = (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError, OSError, ValueError)
KINDS = ("best", "final", "interrupted", "converted")
_KIND = re.compile(r"[a-z][a-z-]{0,31}")


def timestamp(when: datetime | None = None) -> str:
    """The timestamp used in run and checkpoint names."""
    return (when or datetime.now()).strftime(TIMESTAMP_FORMAT)


def checkpoint_name(tag: str, dataset: str, run_id: str, extra: str, when: datetime | None = None) -> str:
    """The original's naming: `checkpoint-<tag>-<dataset>--<run id>-<extra>-<timestamp>.tar`."""
    return f"{checkpoint_prefix(tag, dataset, run_id)}{extra}-{timestamp(when)}{SUFFIX}"


def checkpoint_prefix(tag: str, dataset: str, run_id: str) -> str:
    """How the names of a run's checkpoints start: `checkpoint-<tag>-<dataset>--<run id>-`."""
    return f"checkpoint-{tag}-{dataset}--{run_id}-"


def save_atomically(payload: dict[str, Any], path: Path) -> None:
    """Write `payload` to `path` so that readers only ever see a complete file (see `qrnn.files`). A failed
    write (a full disk) is a one-line `RunFault`; the file that was at `path`, if any, stays as it was."""
    try:
        write_atomically(path, lambda stream: torch.save(payload, stream))
    except OSError as error:
        raise RunFault(f"cannot write checkpoint {path}: {describe_error(error)}") from None


def read_checkpoint(path: str | os.PathLike[str], map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """The contents of a qrnn training checkpoint, loaded without executing anything from the file; one-line
    `QRNNError`s for a missing, truncated, corrupted, foreign, newer-format or malformed file.

    The file is read once, then checked before it is used: the zip's declared sizes (a bounded total, a small
    pickle), the pickle's CRC, the plain data without the tensors (every key and type, names and paths, a model
    state of exactly the shapes the configuration builds, tensors no larger than the configuration needs), the
    CRCs of all members, and after loading the random states (each restored into a scratch generator)."""
    path = Path(path)
    data = read_bytes(path, "checkpoint", MAX_CHECKPOINT_BYTES)
    if not data.startswith(_ZIP_MAGIC):
        raise QRNNError(f"{path} is not a qrnn checkpoint (not a torch zip file)")
    corrupt = QRNNError(f"checkpoint {path} is truncated or corrupt (a zip member fails its CRC check)")
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
        pickles = [info for info in archive.infolist() if info.filename.endswith("/data.pkl")]
        if len(pickles) != 1:
            raise QRNNError(f"{path} is not a qrnn checkpoint (no torch data record)")
        # Tensors are the members `<archive>/data/<key>`; the others (the pickle, torch's version and byte
        # order records) are small, and torch reads them whole even when the tensors stay on the meta device.
        tensors = [info for info in archive.infolist() if _TENSOR_MEMBER.search(info.filename)]
        tensor_bytes = sum(info.file_size for info in tensors)
        plain = max((info.file_size for info in archive.infolist() if info not in tensors), default=0)
        if plain > MAX_PICKLE_BYTES or tensor_bytes > MAX_CHECKPOINT_BYTES:
            raise QRNNError(
                f"checkpoint {path} declares {plain:,} bytes of plain data and {tensor_bytes:,} of tensors; qrnn "
                f"loads at most {MAX_PICKLE_BYTES:,} and {MAX_CHECKPOINT_BYTES:,}"
            )
        _check_crcs(archive, pickles)
    except QRNNError:
        raise
    except _ZIP_ERRORS as error:
        raise (corrupt if "CRC" in str(error) else _corrupt(path, error)) from None
    # The tensors stay on the meta device: nothing but the small pickle is inflated before the sizes are known.
    _check_payload(_torch_load(data, path, "meta"), path, tensor_bytes)
    try:
        _check_crcs(archive, archive.infolist())
    except _ZIP_ERRORS as error:
        raise (corrupt if "CRC" in str(error) else _corrupt(path, error)) from None
    payload = _torch_load(data, path, map_location)
    for shard, state in enumerate(payload["random_states"]):
        _check_random_state(state, path, shard)
    return payload


def _corrupt(path: Path, error: Exception) -> QRNNError:
    return QRNNError(f"checkpoint {path} is truncated or corrupt ({type(error).__name__})")


def _check_crcs(archive: zipfile.ZipFile, members: list[zipfile.ZipInfo]) -> None:
    """Read `members` to their end: zipfile compares each one's CRC-32 (torch does not) and raises
    `BadZipFile`. Reading is streamed in blocks, and stops at the declared size."""
    for info in members:
        with archive.open(info) as stream:
            while stream.read(2**20):
                pass


def _torch_load(data: bytes, path: Path, map_location: str | torch.device) -> Any:
    try:
        return torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
    except Exception as error:  # torch raises many types for bad files; all mean "cannot use this file"
        if "Weights only load failed" in str(error):
            raise QRNNError(
                f"{path} is not a qrnn checkpoint: it holds pickled Python objects, which are never loaded "
                "(a checkpoint of the original implementation needs converting first)"
            ) from None
        raise _corrupt(path, error) from None


_NUMBER_OR_NONE = (int, float, type(None))


def _check_payload(payload: Any, path: Path, tensor_bytes: int) -> None:
    """Refuse (one line) a payload that is not a qrnn checkpoint of a readable version, or whose keys, types,
    names or tensors are not what qrnn writes (the tensors are on the meta device here)."""
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise QRNNError(f"{path} is not a qrnn training checkpoint (it holds other torch data)")
    version = payload.get("format_version")
    if not isinstance(version, int) or version > FORMAT_VERSION:
        raise QRNNError(
            f"checkpoint {path} has format version {version}, newer than this qrnn reads ({FORMAT_VERSION}); "
            f"it was written by qrnn {payload.get('qrnn_version')}: upgrade qrnn to use it"
        )
    source = f"checkpoint {path}"

    def malformed(key: str, wanted: str) -> QRNNError:
        shown = repr(payload.get(key, "(missing)"))
        shown = shown if len(shown) <= 60 else shown[:57] + "..."
        return QRNNError(f"{source} is malformed: `{key}` must be {wanted}, got {shown}; it was not written by qrnn")

    def integer(value: object) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    config_values = payload.get("config")
    if not isinstance(config_values, dict):
        raise malformed("config", "the training options (a dict)")
    try:
        config = TrainConfig.from_dict(config_values)
        check_config(config)
    except (QRNNError, TypeError) as error:
        raise QRNNError(f"{source} holds a bad configuration: {error}") from None
    if not integer(payload.get("input_size")) or not 1 <= payload["input_size"] <= 64:
        raise malformed("input_size", "the word width (an integer from 1 to 64)")
    if not integer(payload.get("epoch")) or payload["epoch"] < 0:
        raise malformed("epoch", "a whole number >= 0")
    if not isinstance(payload.get("kind"), str) or not _KIND.fullmatch(payload["kind"]):
        raise malformed("kind", "a checkpoint kind such as " + ", ".join(KINDS))
    best = payload.get("best")
    if not isinstance(best, dict) or not all(
        isinstance(best.get(key), _NUMBER_OR_NONE) and not isinstance(best.get(key), bool)
        for key in ("validation_loss", "character_error_rate")
    ):
        raise malformed("best", "a dict of validation_loss and character_error_rate (numbers or None)")
    last = payload.get("last_validation")
    if last is not None and not (isinstance(last, dict) and isinstance(last.get("loss"), (int, float))):
        raise malformed("last_validation", "None or a dict holding the loss")
    run = payload.get("run")
    if not isinstance(run, dict):
        raise malformed("run", "a dict of the run's name and id")
    check_name(run.get("name"), "run name", source)
    if not isinstance(run.get("id"), str) or not _RUN_ID.fullmatch(run["id"]):
        raise QRNNError(f"{source} is malformed: the run id {run.get('id')!r} is not 6 hex digits")
    best_name = payload.get("best_checkpoint")
    if best_name is not None:
        check_name(best_name, "best checkpoint", source)
        if not (best_name.startswith("checkpoint-") and best_name.endswith(SUFFIX)):
            raise QRNNError(f"{source} is malformed: best checkpoint {best_name!r} is not a checkpoint's file name")
    optimizer = payload.get("optimizer_state_dict")
    if not (isinstance(optimizer, dict) and isinstance(optimizer.get("state"), dict)
            and isinstance(optimizer.get("param_groups"), list)):
        raise malformed("optimizer_state_dict", "an optimizer's state (a dict of state and param_groups)")
    states = payload.get("random_states")
    if not isinstance(states, list) or not states or not all(isinstance(state, dict) for state in states):
        raise malformed("random_states", "a list of one dict per shard")
    if len(states) != config.num_shards:
        raise QRNNError(f"{source} is malformed: it holds {len(states)} shards' random states, its configuration "
                        f"{config.num_shards}")
    for key in ("dataset_file", "data"):
        if payload.get(key) is not None and not isinstance(payload[key], dict):
            raise malformed(key, "None or a dict")
    # The names of the resource files the run read: looked up in the data directory to compare fingerprints.
    files = (payload.get("data") or {}).get("files", [])
    if not isinstance(files, list):
        raise QRNNError(f"{source} is malformed: the data record's files must be a list of file names")
    for name in files:
        check_name(name, "data file", source)
    expected = _expected_model_state(config, payload["input_size"], source)
    state = payload.get("model_state_dict")
    if not isinstance(state, dict) or not state:
        raise malformed("model_state_dict", "the model's parameters (a non-empty dict of tensors)")
    for name, shape in expected.items():
        tensor = state.get(name)
        if not isinstance(tensor, torch.Tensor) or tuple(tensor.shape) != shape or not tensor.is_floating_point():
            got = tuple(tensor.shape) if isinstance(tensor, torch.Tensor) else type(tensor).__name__
            raise QRNNError(
                f"{source} is malformed: model parameter {name} must be a float tensor of shape {shape} (its "
                f"configuration's), got {got}"
            )
    extra = sorted(set(state) - set(expected))
    if extra:
        raise QRNNError(f"{source} is malformed: unknown model parameter {extra[0]!r} for its configuration")
    parameters = 8 * sum(math.prod(shape) for shape in expected.values())
    needed = parameters * PARAMETER_COPIES + SHARD_STATE_BYTES * len(states)
    if tensor_bytes > needed:
        raise QRNNError(
            f"{source} holds {tensor_bytes:,} bytes of tensors; its configuration needs at most {needed:,} "
            f"({parameters:,} bytes of parameters): it was not written by qrnn"
        )


def _expected_model_state(config: TrainConfig, input_size: int, source: str) -> dict[str, tuple[int, ...]]:
    """The parameter shapes of the model `config` builds, built on the meta device (no memory)."""
    from qrnn.training.models import build_model

    try:
        with torch.device("meta"):
            model = build_model({**config.as_dict(), "input_size": input_size})
    except QRNNError as error:
        raise QRNNError(f"{source} holds a bad configuration: {error}") from None
    except (ValueError, RuntimeError, TypeError, OverflowError) as error:
        raise QRNNError(f"{source} holds a configuration qrnn cannot build ({type(error).__name__})") from None
    shapes = {name: tuple(tensor.shape) for name, tensor in model.state_dict().items()}
    size = 8 * sum(math.prod(shape) for shape in shapes.values())
    if size > MAX_CHECKPOINT_BYTES:
        raise QRNNError(f"{source} holds a configuration whose model needs {size:,} bytes of parameters; qrnn "
                        f"loads at most {MAX_CHECKPOINT_BYTES:,}")
    return shapes


def out_directory_of(path: Path) -> Path:
    """Where a resumed run writes: the folder holding `checkpoints/` with this file in it (so a moved run
    directory keeps working), else the folder of the file itself. Never a path recorded in the file: a
    checkpoint cannot direct writes elsewhere."""
    path = path.resolve()
    if path.parent.name == "checkpoints":
        return path.parent.parent
    return path.parent


# ---- random states ----


def _python_random_state() -> dict[str, Any]:
    version, internal, gauss_next = random.getstate()
    return {"version": version, "internal": torch.tensor(internal, dtype=torch.int64), "gauss_next": gauss_next}


def _python_state_tuple(state: dict[str, Any]) -> tuple[Any, ...]:
    internal = tuple(int(value) for value in state["internal"].tolist())
    return (state["version"], internal, state["gauss_next"])


def _set_python_random_state(state: dict[str, Any]) -> None:
    random.setstate(_python_state_tuple(state))


def _numpy_random_state() -> dict[str, Any]:
    name, keys, position, has_gauss, cached_gaussian = np.random.get_state(legacy=True)
    return {
        "name": name,
        "keys": torch.from_numpy(keys.astype(np.int64)),
        "position": int(position),
        "has_gauss": int(has_gauss),
        "cached_gaussian": float(cached_gaussian),
    }


def _numpy_state_tuple(state: dict[str, Any]) -> tuple[Any, ...]:
    keys = state["keys"].numpy().astype(np.uint32)
    return (state["name"], keys, state["position"], state["has_gauss"], state["cached_gaussian"])


def _set_numpy_random_state(state: dict[str, Any]) -> None:
    np.random.set_state(_numpy_state_tuple(state))


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
        try:
            dataset.load_state_dict(state["dataset_state"])  # type: ignore[attr-defined]
        except (KeyError, TypeError, ValueError, RuntimeError, AttributeError, IndexError) as error:
            raise QRNNError(
                f"a checkpoint's dataset state does not fit dataset {dataset.name} ({type(error).__name__}); it "
                "was not written by qrnn for this dataset"
            ) from None


def _check_random_state(state: dict[str, Any], path: Path, shard: int) -> None:
    """Refuse (one line) random states that `restore_random_state` could not put back: each is restored into a
    scratch generator of its kind, which checks it as the real one would."""
    try:
        for key in ("torch", "sampling"):
            torch.Generator().set_state(state[key].cpu())
        generators = state["dataset_generators"]
        if not isinstance(generators, dict) or set(generators) != set(STAGES):
            raise ValueError("dataset generators")
        for generator_state in generators.values():
            torch.Generator().set_state(generator_state.cpu())
        if state.get("cuda") is not None and not (
            isinstance(state["cuda"], torch.Tensor) and state["cuda"].dtype == torch.uint8
        ):
            raise ValueError("cuda")
        random.Random().setstate(_python_state_tuple(state["python"]))
        np.random.RandomState().set_state(_numpy_state_tuple(state["numpy"]))
        if state.get("dataset_state") is not None and not isinstance(state["dataset_state"], dict):
            raise ValueError("dataset state")
    except (KeyError, TypeError, ValueError, RuntimeError, AttributeError, OverflowError) as error:
        raise QRNNError(
            f"checkpoint {path} is malformed: the random states of shard {shard} cannot be restored "
            f"({type(error).__name__}: {str(error)[:80]}); it was not written by qrnn"
        ) from None


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
