"""Converting the original implementation's checkpoints (the ones published with the paper) into qrnn
checkpoints, without executing anything from the file.

The original saved `torch.save` dictionaries holding `model_state_dict` (DistributedDataParallel names,
`module.cell...`), `optimizer_state_dict`, `_original_args` (an `argparse.Namespace` of its command line,
whose `func` attribute refers to a function of its script, e.g. `__main__.command_train`), `epoch`,
`best_validation_loss`, `best_character_error_rate` and `_torch_rng_state`. Loading such a file with plain
`torch.load` imports and looks up whatever globals the pickle names, which is how a malicious file runs code.

`read_original_checkpoint` reads both torch formats itself, never through `torch.load`: the zip archive (torch
>= 1.6: `<archive>/data.pkl` plus one raw member per storage) and the legacy stream (torch < 1.6, which the
paper's files use: magic number, protocol, system info, the object pickle, the storage keys, then the raw
storages). Its unpickler resolves only an allow-list of globals (the tensor rebuild functions, the storage
types, `collections.OrderedDict`, `argparse.Namespace`), each to an inert stand-in created for this one
load; a global of the original's script becomes a `ForeignReference` that is accepted only as the `func` of
the namespace and refuses to be called; anything else (os.system, builtins.eval, subprocess, ...) stops the
load with one line. Tensors are built only after the whole pickle has been read and checked, from the raw
bytes, with their shapes, strides and offsets checked against their storage.
"""

from __future__ import annotations

import argparse
import io
import math
import pickle
import re
import struct
import sys
import zipfile
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

import torch

from qrnn.errors import QRNNError
from qrnn.files import path_problem

# The legacy stream starts with this number (torch.serialization.MAGIC_NUMBER) and protocol version 1001.
LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001
_ZIP_MAGIC = b"PK\x03\x04"

STORAGE_DTYPES: dict[str, torch.dtype] = {
    "DoubleStorage": torch.float64,
    "FloatStorage": torch.float32,
    "HalfStorage": torch.float16,
    "BFloat16Storage": torch.bfloat16,
    "LongStorage": torch.int64,
    "IntStorage": torch.int32,
    "ShortStorage": torch.int16,
    "CharStorage": torch.int8,
    "ByteStorage": torch.uint8,
    "BoolStorage": torch.bool,
    "ComplexFloatStorage": torch.complex64,
    "ComplexDoubleStorage": torch.complex128,
    "UntypedStorage": torch.uint8,
}
# Globals of the standard library and of these packages are code the file could make us run: outside the
# allow-list they are refused outright. Any other global (the original's script: `__main__` or, in spawned
# shard processes, `__mp_main__`, or however else it was imported) becomes a ForeignReference, never imported,
# which is accepted only as the arguments' `func` and refuses to be called.
LIBRARY_ROOTS = frozenset(sys.stdlib_module_names) | {
    "torch",
    "numpy",
    "qrnn",
    "setuptools",
    "pkg_resources",
    "_pytest",
    "pytest",
}
# The original's `_original_args` that are the same option under the same name in `TrainConfig`.
SHARED_OPTIONS = (
    "port",
    "num_shards",
    "num_validation_samples",
    "tag",
    "epochs",
    "timeout",
    "stop_at_loss",
    "seed",
    "workspace",
    "stages",
    "order",
    "degree",
    "dataset",
    "sentence_length",
    "batch_size",
    "optimizer",
    "learning_rate",
    "weight_decay",
    "initial_bias",
    "initial_bias_spread",
    "initial_weights_spread",
    "initial_unitaries_spread",
)
REQUIRED_OPTIONS = ("workspace", "stages", "order", "degree", "dataset", "initial_bias")
# Optimizers whose state is per parameter (so it maps from the original's parameter order to ours).
_PER_PARAMETER_OPTIMIZERS = ("sgd", "adam", "rmsprop")


class _Refused(Exception):
    """Raised inside the unpickler when the file asks for something outside the allow-list."""


class ForeignReference:
    """A global of the original's script (e.g. `__main__.command_train`), kept as its dotted name; never
    imported, and refuses to be called."""

    __slots__ = ("module", "name")

    def __init__(self, module: str, name: str) -> None:
        self.module = module
        self.name = name

    @property
    def dotted_name(self) -> str:
        """`module.name`, as the file names it."""
        return f"{self.module}.{self.name}"

    def __call__(self, *args: object, **kwargs: object) -> None:
        raise _Refused(f"it asks to call {self.dotted_name}")

    def __repr__(self) -> str:
        return f"ForeignReference({self.dotted_name!r})"


class _StorageKind:
    """What the unpickler hands out for `torch.<X>Storage`: only the element type."""

    __slots__ = ("dtype",)

    def __init__(self, dtype: torch.dtype) -> None:
        self.dtype = dtype


class _StorageRecord:
    """A persistent storage reference read from the pickle: key, element type, elements, and the view of it
    (legacy files may reference a slice of a larger storage)."""

    __slots__ = ("key", "dtype", "numel", "view_offset", "view_numel")

    def __init__(self, key: str, dtype: torch.dtype, numel: int, view_offset: int, view_numel: int) -> None:
        self.key, self.dtype, self.numel = key, dtype, numel
        self.view_offset, self.view_numel = view_offset, view_numel


class _TensorRecord:
    """A tensor the pickle describes; built from the raw storage bytes after the whole pickle is checked."""

    __slots__ = ("storage", "offset", "size", "stride")

    def __init__(self, storage: object, offset: object, size: object, stride: object) -> None:
        self.storage, self.offset, self.size, self.stride = storage, offset, size, stride


class _TensorRebuilder:
    """The stand-in for `torch._utils._rebuild_tensor(_v2)`: records the arguments, builds nothing."""

    __slots__ = ()

    def __call__(
        self, storage: object, offset: object, size: object, stride: object, *_ignored: object
    ) -> _TensorRecord:
        # requires_grad, backward hooks and tensor metadata are irrelevant to stored parameters and optimizer
        # state, so they are dropped (hooks would be arbitrary objects).
        return _TensorRecord(storage, offset, size, stride)


class _ParameterRebuilder:
    """The stand-in for `torch._utils._rebuild_parameter(data, requires_grad, backward_hooks)`: the data."""

    __slots__ = ()

    def __call__(self, data: object, *_ignored: object) -> object:
        return data


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickles only the allow-listed globals, each resolved to a stand-in created for this load (so that a
    BUILD opcode aimed at a class or function cannot change anything outside it)."""

    def __init__(self, stream: BinaryIO, persistent_load: Callable[[Any], Any] | None = None) -> None:
        super().__init__(stream)
        self._persistent = persistent_load
        self._ordered_dict = type("OrderedDict", (_LoadedOrderedDict,), {})
        self._namespace = type("Namespace", (argparse.Namespace,), {})

    def find_class(self, module: str, name: str) -> Any:
        """The stand-in for an allow-listed global; a ForeignReference for the original script's globals;
        refuses every other global without importing anything."""
        if module == "collections" and name == "OrderedDict":
            return self._ordered_dict
        if module == "argparse" and name == "Namespace":
            return self._namespace
        if module == "torch._utils" and name in ("_rebuild_tensor_v2", "_rebuild_tensor"):
            return _TensorRebuilder()
        if module == "torch._utils" and name == "_rebuild_parameter":
            return _ParameterRebuilder()
        if module == "torch" and name in STORAGE_DTYPES:
            return _StorageKind(STORAGE_DTYPES[name])
        root = module.split(".")[0]
        if (
            root not in LIBRARY_ROOTS
            and name.isidentifier()
            and all(p.isidentifier() for p in module.split("."))
        ):
            return ForeignReference(module, name)
        raise _Refused(f"it refers to {module}.{name}, which is not allowed in a checkpoint")

    def persistent_load(self, pid: Any) -> Any:
        """Storage references, checked and recorded (their bytes are read separately)."""
        if self._persistent is None:
            raise _Refused("it holds a storage reference where none may be")
        return self._persistent(pid)


class _LoadedOrderedDict(dict):  # type: ignore[type-arg]
    """Base of the per-load OrderedDict stand-in: a dict (ordered) with an attribute dict, so that the
    `_metadata` a state dict carries can be set on it."""


# ---- reading the two torch formats ----


def _storage_reference(pid: Any, legacy: bool) -> tuple[str, torch.dtype, int, int, int]:
    """(key, dtype, numel, view offset, view numel) of a persistent id; refuses any other shape."""
    expected = 6 if legacy else 5
    if not isinstance(pid, tuple) or len(pid) != expected or pid[0] != "storage":
        raise _Refused(f"it holds an unexpected persistent reference {type(pid).__name__}")
    kind, key, _location, numel = pid[1], pid[2], pid[3], pid[4]
    if not isinstance(kind, _StorageKind) or not isinstance(key, str) or not _is_count(numel):
        raise _Refused("it holds a malformed storage reference")
    view_offset, view_numel = 0, numel
    if legacy and pid[5] is not None:
        view = pid[5]
        if not (isinstance(view, tuple) and len(view) == 3 and _is_count(view[1]) and _is_count(view[2])):
            raise _Refused("it holds a malformed storage view")
        view_offset, view_numel = view[1], view[2]
        if view_offset + view_numel > numel:
            raise _Refused(f"a storage view of {key} lies outside its storage")
    return key, kind.dtype, numel, view_offset, view_numel


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _tensor_from_bytes(raw: bytes, dtype: torch.dtype, numel: int, little_endian: bool) -> torch.Tensor:
    element = torch.empty(0, dtype=dtype).element_size()
    if len(raw) != numel * element:
        raise _Refused(f"a storage holds {len(raw)} bytes, expected {numel * element}")
    flat = torch.frombuffer(bytearray(raw), dtype=torch.uint8) if raw else torch.empty(0, dtype=torch.uint8)
    if little_endian != (sys.byteorder == "little") and element > 1:
        flat = flat.reshape(-1, element).flip(1).reshape(-1)
    return flat.view(dtype) if numel else torch.empty(0, dtype=dtype)


def _read_zip(path: Path) -> tuple[Any, dict[str, torch.Tensor]]:
    records: dict[str, _StorageRecord] = {}
    with zipfile.ZipFile(path) as archive:
        pickles = [name for name in archive.namelist() if name.endswith("/data.pkl") or name == "data.pkl"]
        if len(pickles) != 1:
            raise _Refused("its zip archive does not hold exactly one data.pkl")
        prefix = pickles[0][: -len("data.pkl")]
        byteorder = "little"
        if prefix + "byteorder" in archive.namelist():
            byteorder = archive.read(prefix + "byteorder").decode("ascii", "replace").strip()
            if byteorder not in ("little", "big"):
                raise _Refused(f"its byteorder record says {byteorder!r}")

        def persistent_load(pid: Any) -> _StorageRecord:
            key, dtype, numel, _, _ = _storage_reference(pid, legacy=False)
            record = records.setdefault(key, _StorageRecord(key, dtype, numel, 0, numel))
            if record.dtype != dtype or record.numel != numel:
                raise _Refused(f"storage {key} is referenced with two different types or sizes")
            return record

        obj = _RestrictedUnpickler(io.BytesIO(archive.read(pickles[0])), persistent_load).load()
        storages: dict[str, torch.Tensor] = {}
        element_sizes = {key: torch.empty(0, dtype=r.dtype).element_size() for key, r in records.items()}
        for key, record in records.items():
            member = f"{prefix}data/{key}"
            try:
                info = archive.getinfo(member)
            except KeyError:
                raise _Refused(f"its storage {key} is missing from the archive") from None
            if info.file_size != record.numel * element_sizes[key]:
                raise _Refused(
                    f"its storage {key} has {info.file_size} bytes, "
                    f"expected {record.numel * element_sizes[key]}"
                )
            storages[key] = _tensor_from_bytes(
                archive.read(member), record.dtype, record.numel, byteorder == "little"
            )
    return obj, storages


def _read_legacy(stream: BinaryIO) -> tuple[Any, dict[str, torch.Tensor]]:
    def plain() -> Any:
        return _RestrictedUnpickler(stream).load()

    try:
        magic = plain()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError):
        raise _Refused("it is neither a torch zip archive nor a legacy torch file") from None
    if magic != LEGACY_MAGIC_NUMBER:
        raise _Refused("it is neither a torch zip archive nor a legacy torch file (wrong magic number)")
    protocol = plain()
    if protocol != LEGACY_PROTOCOL_VERSION:
        raise _Refused(f"it uses legacy protocol version {protocol!r}, not {LEGACY_PROTOCOL_VERSION}")
    system = plain()
    little_endian = bool(system.get("little_endian", True)) if isinstance(system, dict) else True
    records: dict[str, _StorageRecord] = {}

    def persistent_load(pid: Any) -> _StorageRecord:
        key, dtype, numel, view_offset, view_numel = _storage_reference(pid, legacy=True)
        root = records.setdefault(key, _StorageRecord(key, dtype, numel, 0, numel))
        if root.dtype != dtype or root.numel != numel:
            raise _Refused(f"storage {key} is referenced with two different types or sizes")
        return _StorageRecord(key, dtype, numel, view_offset, view_numel)

    obj = _RestrictedUnpickler(stream, persistent_load).load()
    keys = plain()
    if not isinstance(keys, list) or any(not isinstance(key, str) for key in keys):
        raise _Refused("its list of storage keys is malformed")
    storages: dict[str, torch.Tensor] = {}
    for key in keys:
        if key not in records:
            raise _Refused(f"it stores data for {key}, which nothing references")
        record = records[key]
        header = stream.read(8)
        if len(header) != 8:
            raise _Refused(f"it ends inside storage {key} (truncated file)")
        (numel,) = struct.unpack("<q" if little_endian else ">q", header)
        if numel != record.numel:
            raise _Refused(f"storage {key} holds {numel} elements, the pickle says {record.numel}")
        element = torch.empty(0, dtype=record.dtype).element_size()
        raw = stream.read(numel * element)
        if len(raw) != numel * element:
            raise _Refused(f"it ends inside storage {key} (truncated file)")
        storages[key] = _tensor_from_bytes(raw, record.dtype, numel, little_endian)
    missing = sorted(set(records) - set(storages))
    if missing:
        raise _Refused(f"the data of storage {missing[0]} is missing (truncated file)")
    return obj, storages


def _build_tensor(record: _TensorRecord, storages: dict[str, torch.Tensor]) -> torch.Tensor:
    storage = record.storage
    if not isinstance(storage, _StorageRecord) or storage.key not in storages:
        raise _Refused("a tensor refers to no stored data")
    size, stride, offset = record.size, record.stride, record.offset
    if not (isinstance(size, tuple) and isinstance(stride, tuple) and len(size) == len(stride)):
        raise _Refused("a tensor has a malformed shape")
    if not all(_is_count(n) for n in (*size, *stride, offset)):
        raise _Refused("a tensor has a malformed shape, stride or offset")
    flat = storages[storage.key][storage.view_offset : storage.view_offset + storage.view_numel]
    if math.prod(size) > 0:
        last = offset + sum((n - 1) * s for n, s in zip(size, stride, strict=True))  # type: ignore[operator]
        if last >= flat.numel():
            raise _Refused("a tensor reaches beyond its storage")
    elif offset > flat.numel():
        raise _Refused("a tensor starts beyond its storage")
    return torch.as_strided(flat, size, stride, offset).clone(memory_format=torch.contiguous_format)


def _materialise(obj: Any, storages: dict[str, torch.Tensor], where: str = "") -> Any:
    """Plain Python data and tensors from the unpickled graph; refuses anything outside the expected types and
    a ForeignReference anywhere but a namespace's `func`."""
    if obj is None or isinstance(obj, (bool, int, float, complex, str, bytes)):
        return obj
    if isinstance(obj, _TensorRecord):
        return _build_tensor(obj, storages)
    if isinstance(obj, _LoadedOrderedDict):
        for key in obj:
            if not _is_plain_key(key):
                raise _Refused(
                    f"it holds a dictionary key of type {type(key).__name__} at {where or 'the top'}"
                )
        return OrderedDict(
            (key, _materialise(value, storages, f"{where}[{key!r}]")) for key, value in obj.items()
        )
    if type(obj) is dict:
        for key in obj:
            if not _is_plain_key(key):
                raise _Refused(
                    f"it holds a dictionary key of type {type(key).__name__} at {where or 'the top'}"
                )
        return {key: _materialise(value, storages, f"{where}[{key!r}]") for key, value in obj.items()}
    if type(obj) in (list, tuple, set, frozenset):
        items = [_materialise(value, storages, f"{where}[{i}]") for i, value in enumerate(obj)]
        return type(obj)(items)
    if isinstance(obj, argparse.Namespace):
        namespace = argparse.Namespace()
        for name, value in vars(obj).items():
            if name == "func" and isinstance(value, ForeignReference):
                setattr(namespace, name, ForeignReference(value.module, value.name))
            else:
                setattr(namespace, name, _materialise(value, storages, f"{where}.{name}"))
        return namespace
    if isinstance(obj, ForeignReference):
        raise _Refused(
            f"it holds {obj.dotted_name} at {where or 'the top'} (allowed only as the arguments' func)"
        )
    raise _Refused(f"it holds an unexpected {type(obj).__name__} at {where or 'the top'}")


def _is_plain_key(key: object) -> bool:
    if key is None or isinstance(key, (bool, int, float, str, bytes)):
        return True
    return type(key) is tuple and all(_is_plain_key(item) for item in key)


def read_original_checkpoint(path: str | Path) -> dict[str, Any]:
    """The contents of a `torch.save` file of the original implementation, read without executing anything
    from it (see the module docstring): plain data, tensors, `OrderedDict`s, and `argparse.Namespace`s whose
    `func` is a `ForeignReference`. One-line `QRNNError` for a missing, unreadable or refused file."""
    path = Path(path)
    problem = path_problem(path, "checkpoint")
    if problem is not None:
        raise QRNNError(f"{problem}; give the original checkpoint's path")
    try:
        with open(path, "rb") as stream:
            head = stream.read(len(_ZIP_MAGIC))
            stream.seek(0)
            if head == _ZIP_MAGIC:
                obj, storages = _read_zip(path)
            else:
                obj, storages = _read_legacy(stream)
        return _check_top(_materialise(obj, storages))
    except _Refused as refusal:
        raise QRNNError(f"refusing {path}: {refusal}; nothing from it was executed") from None
    except (pickle.UnpicklingError, EOFError, zipfile.BadZipFile, struct.error, UnicodeDecodeError) as error:
        raise QRNNError(f"cannot read {path}: it is truncated or not a torch checkpoint ({error})") from None
    except (TypeError, AttributeError, ValueError, IndexError, KeyError, RuntimeError, MemoryError) as error:
        # The stand-ins reject misuse with these (e.g. a BUILD or call they do not support).
        raise QRNNError(
            f"refusing {path}: its pickle does something a checkpoint does not ({type(error).__name__}); "
            "nothing from it was executed"
        ) from None


def _check_top(obj: Any) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise _Refused(f"it holds a {type(obj).__name__}, not the original's checkpoint dictionary")
    return obj


# ---- conversion ----


@dataclass
class ConversionSummary:
    """What a conversion wrote and how the original's contents were mapped."""

    source: str
    destination: str
    config: dict[str, Any]
    epoch: int
    parameters: int
    optimizer: str
    ignored_options: list[str] = field(default_factory=list)

    def to_text(self) -> str:
        """A few lines for the command line."""
        c = self.config
        lines = [
            f"converted {self.source}",
            f"  -> {self.destination}",
            f"  dataset {c['dataset']}, workspace {c['workspace']}, stages {c['stages']}, "
            f"order {c['order']}, "
            f"degree {c['degree']}, {c['dtype']}, epoch {self.epoch}, {self.parameters} parameters",
            f"  optimizer state: {self.optimizer}",
        ]
        if self.ignored_options:
            lines.append(
                f"  original options with no counterpart here (kept in the checkpoint's notes): "
                f"{', '.join(self.ignored_options)}"
            )
        lines.append(f"  evaluate it with: qrnn evaluate {self.destination}")
        return "\n".join(lines)


def _plain(value: Any) -> Any:
    """Arguments as data a weights-only checkpoint can hold (a ForeignReference as its dotted name)."""
    if isinstance(value, ForeignReference):
        return value.dotted_name
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return repr(value)


def _number(value: Any) -> float | None:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return float(value.item())
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    return None


def original_config(args: argparse.Namespace) -> tuple[dict[str, Any], list[str]]:
    """Our training configuration from the original's arguments, and the names of the original's arguments
    that have no counterpart here. One-line error for missing or invalid values."""
    from qrnn.datasets import dataset_names
    from qrnn.training.config import TrainConfig, check_config

    values = vars(args)
    missing = [name for name in REQUIRED_OPTIONS if name not in values]
    if missing:
        raise QRNNError(f"the original's arguments lack {', '.join(missing)}; cannot rebuild its model")
    config = TrainConfig().as_dict()
    for name in SHARED_OPTIONS:
        if name in values:
            config[name] = values[name]
    if config["dataset"] not in dataset_names():
        raise QRNNError(
            f"the original trained on dataset {config['dataset']!r}, which qrnn does not have; "
            "`qrnn datasets` lists the ones it has"
        )
    ignored = sorted(name for name in values if name not in SHARED_OPTIONS and name != "func")
    try:
        check_config(TrainConfig.from_dict(config))
    except QRNNError as error:
        raise QRNNError(f"the original's arguments are not a valid configuration here: {error}") from None
    return config, ignored


def _convert_optimizer(
    original: Any, original_names: list[str], model: torch.nn.Module, config: dict[str, Any]
) -> tuple[dict[str, Any], str]:
    """Our optimizer's state dict from the original's, mapping parameters by the original's order (the order
    of its state dict); a fresh state with the reason when that is not possible."""
    from qrnn.training.models import build_optimizer

    ours = list(model.named_parameters())
    optimizer = build_optimizer(
        config["optimizer"], [p for _, p in ours], config["learning_rate"], config["weight_decay"]
    )
    fresh = optimizer.state_dict()

    def dropped(reason: str) -> tuple[dict[str, Any], str]:
        return fresh, f"dropped ({reason}); a resumed run starts the optimizer afresh"

    if config["optimizer"] not in _PER_PARAMETER_OPTIMIZERS:
        return dropped(f"{config['optimizer']} keeps whole-model state that is not mapped")
    if not (
        isinstance(original, dict)
        and isinstance(original.get("param_groups"), list)
        and len(original["param_groups"]) == 1
        and isinstance(original.get("state"), dict)
    ):
        return dropped("the original's optimizer state has an unexpected layout")
    group = original["param_groups"][0]
    ids = group.get("params") if isinstance(group, dict) else None
    if not isinstance(ids, list) or len(ids) != len(original_names):
        return dropped("its parameter list does not match the model's")
    our_index = {name: index for index, (name, _) in enumerate(ours)}
    name_map = model.original_parameter_names()  # type: ignore[operator]  # original name -> our parameter name
    state: dict[int, dict[str, Any]] = {}
    for parameter_id, old_name in zip(ids, original_names, strict=True):
        entry = original["state"].get(parameter_id)
        if entry is None:
            continue
        index = our_index[name_map[old_name]]
        shape = ours[index][1].shape
        converted: dict[str, Any] = {}
        for key, value in entry.items():
            if key == "step":
                converted[key] = torch.tensor(float(_number(value) or 0.0))
            elif isinstance(value, torch.Tensor) and value.shape == shape:
                converted[key] = value.to(ours[index][1].dtype)
            else:
                return dropped(f"its entry {key!r} for {old_name} does not fit")
        state[index] = converted
    groups = [dict(fresh["param_groups"][0])]
    for key in (
        "lr",
        "betas",
        "eps",
        "weight_decay",
        "amsgrad",
        "momentum",
        "dampening",
        "nesterov",
        "alpha",
        "centered",
    ):
        if key in group and key in groups[0]:
            value = group[key]
            groups[0][key] = tuple(value) if isinstance(value, list) else value
    candidate = {"state": state, "param_groups": groups}
    try:
        optimizer.load_state_dict(candidate)
    except (ValueError, KeyError, TypeError, RuntimeError) as error:
        return dropped(f"it does not load into {config['optimizer']}: {error}")
    return optimizer.state_dict(), f"converted ({len(state)} parameters with {config['optimizer']} moments)"


def _random_states(config: dict[str, Any], torch_state: torch.Tensor | None) -> list[dict[str, Any]]:
    """Every shard's random states for a resumed run: the data and sampling streams as a fresh run with this
    seed starts them (the original's are not in its file), the torch state of the original where it has one.
    The process's global generators are seeded for the capture and restored afterwards."""
    import random

    import numpy as np

    from qrnn.datasets import lookup
    from qrnn.training.checkpoint import capture_random_state
    from qrnn.training.loop import sampling_seed

    saved = (random.getstate(), np.random.get_state(), torch.get_rng_state())
    states = []
    try:
        for shard in range(config["num_shards"]):
            random.seed(config["seed"])
            np.random.seed(config["seed"] % 2**32)
            if torch_state is not None:
                torch.set_rng_state(torch_state)
            else:
                torch.manual_seed(config["seed"])
            dataset = lookup(config["dataset"]).create(
                sentence_length=config["sentence_length"],
                batch_size=config["batch_size"],
                shard=shard,
                num_shards=config["num_shards"],
                seed=config["seed"],
            )
            sampling = torch.Generator().manual_seed(sampling_seed(config["seed"], shard))
            states.append(capture_random_state(dataset, sampling, torch.device("cpu")))
    finally:
        random.setstate(saved[0])
        np.random.set_state(saved[1])
        torch.set_rng_state(saved[2])
    return states


def _run_identity(contents: dict[str, Any], config: dict[str, Any], source: Path) -> tuple[str, str]:
    """(run name, run id): the original's prefix `-<tag>-<dataset>--<6 hex>` when present."""
    prefix = contents.get("_checkpoint_prefix")
    match = re.search(r"--([0-9a-f]{6})$", prefix) if isinstance(prefix, str) else None
    if match:
        run_id = match.group(1)
    else:
        import hashlib

        run_id = hashlib.sha256(source.read_bytes()).hexdigest()[:6]
    name = f"{config['tag']}-{config['dataset']}--{run_id}-converted"
    return name, run_id


def convert_original_checkpoint(
    source: str | Path, destination: str | Path, force: bool = False
) -> ConversionSummary:
    """Convert the original implementation's checkpoint `source` into a qrnn checkpoint at `destination`
    (loadable by `qrnn.load_checkpoint`, `qrnn evaluate` and `qrnn resume`). The file is read with
    `read_original_checkpoint`: nothing in it is executed. Refuses to overwrite `destination` unless
    `force`."""
    from qrnn import __version__
    from qrnn.datasets import lookup
    from qrnn.training.checkpoint import FORMAT, FORMAT_VERSION, data_record, save_atomically
    from qrnn.training.config import TrainConfig
    from qrnn.training.models import build_model

    source, destination = Path(source), Path(destination)
    if destination.exists() and not force:
        raise QRNNError(f"{destination} exists; choose another name or pass --force to overwrite it")
    if destination.exists() and destination.resolve() == source.resolve():
        raise QRNNError("the converted checkpoint must not overwrite the original; choose another name")
    contents = read_original_checkpoint(source)
    for key in ("model_state_dict", "_original_args"):
        if key not in contents:
            raise QRNNError(f"{source} has no {key!r}: it is not a checkpoint of the original implementation")
    args = contents["_original_args"]
    if not isinstance(args, argparse.Namespace):
        raise QRNNError(
            f"{source}: '_original_args' is a {type(args).__name__}, not the original's arguments"
        )
    config, ignored = original_config(args)
    state_dict = contents["model_state_dict"]
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise QRNNError(f"{source}: 'model_state_dict' does not map names to tensors")
    dtypes = {value.dtype for value in state_dict.values()}
    if len(dtypes) != 1 or next(iter(dtypes)) not in (torch.float32, torch.float64):
        raise QRNNError(
            f"{source}: the parameters are not all float32 or all float64 ({sorted(map(str, dtypes))})"
        )
    config["dtype"] = "float64" if dtypes == {torch.float64} else "float32"
    entry = lookup(config["dataset"])
    entry.check_options(
        sentence_length=config["sentence_length"],
        batch_size=config["batch_size"] or 1,
        num_shards=config["num_shards"],
    )
    if config["batch_size"] is None:
        config["batch_size"] = 1
    probe = entry.create(
        sentence_length=config["sentence_length"],
        batch_size=config["batch_size"],
        shard=0,
        num_shards=config["num_shards"],
        seed=config["seed"],
    )
    model = build_model({**config, "input_size": probe.input_size})
    model.to(torch.float64 if config["dtype"] == "float64" else torch.float32)
    model.load_original_state_dict(state_dict)  # type: ignore[operator]
    original_names = [name[len("module.") :] if name.startswith("module.") else name for name in state_dict]
    optimizer_state, optimizer_note = _convert_optimizer(
        contents.get("optimizer_state_dict"), original_names, model, config
    )
    torch_state = contents.get("_torch_rng_state")
    if not (isinstance(torch_state, torch.Tensor) and torch_state.dtype == torch.uint8):
        torch_state = None
    epoch = contents.get("epoch")
    epoch = epoch if isinstance(epoch, int) and not isinstance(epoch, bool) and epoch >= 0 else 0
    if config["epochs"] <= epoch:
        config["epochs"] = epoch + 1
    TrainConfig.from_dict(config)
    run_name, run_id = _run_identity(contents, config, source)
    payload = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "qrnn_version": __version__,
        "kind": "converted",
        "model_kind": config["model"],
        "input_size": probe.input_size,
        "model_config": dict(model.config),  # type: ignore[arg-type]
        "config": config,
        "run": {"name": run_name, "id": run_id},
        "model_state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "optimizer_state_dict": optimizer_state,
        "epoch": epoch,
        "best": {
            "validation_loss": _number(contents.get("best_validation_loss")),
            "character_error_rate": _number(contents.get("best_character_error_rate")),
        },
        "last_validation": None,
        "best_checkpoint": None,
        "random_states": _random_states(config, torch_state),
        # The original's own layout and data files (see `qrnn.datasets.resources.source_mismatch`).
        **data_record(entry.cls, {"kind": "original"}),
        "converted_from": {
            "file": source.name,
            "original_args": {name: _plain(value) for name, value in vars(args).items()},
            "optimizer": optimizer_note,
        },
    }
    try:
        save_atomically(payload, destination)
    except OSError as error:
        raise QRNNError(f"cannot write {destination}: {error.strerror}") from None
    return ConversionSummary(
        source=str(source),
        destination=str(destination),
        config=config,
        epoch=epoch,
        parameters=sum(p.numel() for p in model.parameters()),
        optimizer=optimizer_note,
        ignored_options=ignored,
    )


# ---- command line ----
