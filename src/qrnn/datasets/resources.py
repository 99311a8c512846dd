"""The precomputed files the datasets read: shipped in `qrnn/data/`, rebuilt by `qrnn data build`, or read from
a data directory (`QRNN_DATA_DIR`, set by the global `--data-dir DIR` option) that holds files with the shipped
names, e.g. the original implementation's data written by `qrnn data import-original`.

Loading is lazy (a dataset loads only its own files, once per process and directory) and never unpickles (no
code runs). The names of the files read are remembered (`resources_read`), so that a checkpoint can record
which data its run saw (`data_source`).
"""

from __future__ import annotations

import functools
import hashlib
import os
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from qrnn.errors import QRNNError
from qrnn.files import MAX_MEMORY_BYTES, npz_members, path_problem

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
DATA_DIR_VARIABLE = "QRNN_DATA_DIR"
BUILD_COMMAND = "pip install -e '.[data]' && qrnn data build"

# Names of the resource files read in this process (see `data_source`).
_READ: set[str] = set()


def data_directory() -> Path:
    """Where the resources are read from: `$QRNN_DATA_DIR` when set and non-empty, else the shipped folder."""
    configured = os.environ.get(DATA_DIR_VARIABLE, "")
    return Path(configured).expanduser() if configured else DATA_DIR


def resource_path(filename: str) -> Path:
    """Where the resource `filename` is read from (in `data_directory()`)."""
    return data_directory() / filename


def _missing(path: Path) -> QRNNError:
    """The one-line error for a resource that is not there (or is a folder, a loop of links...)."""
    problem = path_problem(path, "dataset resource")
    if problem is not None and not problem.endswith("does not exist"):
        return QRNNError(problem)
    if data_directory() != DATA_DIR:
        return QRNNError(
            f"dataset resource {path} is missing from the data directory {data_directory()} "
            f"(${DATA_DIR_VARIABLE} or --data-dir); write it there with qrnn data import-original or "
            "qrnn data build --out"
        )
    return QRNNError(f"dataset resource {path} is missing; rebuild it with: {BUILD_COMMAND}")


def load_resource(filename: str) -> dict[str, np.ndarray]:
    """All arrays of the `.npz` resource `filename`, or one line naming the file and the build command."""
    _READ.add(filename)
    return _load_all(resource_path(filename))


@functools.cache
def _load_all(path: Path) -> dict[str, np.ndarray]:
    if not path.is_file():
        raise _missing(path)
    try:
        _check_sizes(path)
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except QRNNError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise QRNNError(
            f"dataset resource {path} is corrupt ({type(error).__name__}); rebuild it with: {BUILD_COMMAND}"
        ) from None


def load_resource_array(filename: str, key: str) -> np.ndarray:
    """One array of the `.npz` resource `filename`, decompressing only that member (for small metadata such as
    split sizes, so that listing datasets stays fast); same one-line errors as `load_resource`."""
    _READ.add(filename)
    return _load_one(resource_path(filename), key)


@functools.cache
def _load_one(path: Path, key: str) -> np.ndarray:
    if not path.is_file():
        raise _missing(path)
    try:
        _check_sizes(path)
        with np.load(path, allow_pickle=False) as archive:
            return archive[key]
    except QRNNError:
        raise
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as error:
        raise QRNNError(
            f"dataset resource {path} is corrupt ({type(error).__name__}); rebuild it with: {BUILD_COMMAND}"
        ) from None


def _check_sizes(path: Path) -> None:
    """Refuse (one line) a resource whose arrays would take more memory than qrnn allows once inflated, from
    the sizes and shapes it declares (read before anything is inflated)."""
    with zipfile.ZipFile(path) as archive:
        for _ in npz_members(archive, f"dataset resource {path}", MAX_MEMORY_BYTES):
            pass


def clear_cache() -> None:
    """Forget every loaded resource and the record of files read (for tests that swap the data)."""
    _load_all.cache_clear()
    _load_one.cache_clear()
    _READ.clear()


def resources_read() -> tuple[str, ...]:
    """The names of the resource files read in this process so far, sorted."""
    return tuple(sorted(_READ))


def fingerprint(directory: Path, filenames: tuple[str, ...] | list[str]) -> str:
    """sha256 over the names and contents of `filenames` in `directory` (a missing file counts as empty)."""
    digest = hashlib.sha256()
    for name in sorted(filenames):
        digest.update(name.encode() + b"\0")
        path = directory / name
        digest.update(hashlib.sha256(path.read_bytes()).digest() if path.is_file() else b"missing")
    return digest.hexdigest()


def data_source(filenames: tuple[str, ...] | list[str] | None = None) -> dict[str, Any]:
    """Where the data of this process comes from, for a checkpoint: {"kind": "shipped"}, or {"kind":
    "directory", "path", "fingerprint" (of `filenames`, default the files read so far), "files"}."""
    directory = data_directory()
    if directory.resolve() == DATA_DIR.resolve():
        return {"kind": "shipped"}
    files = list(resources_read() if filenames is None else filenames)
    return {
        "kind": "directory",
        "path": str(directory.resolve()),
        "fingerprint": fingerprint(directory, files),
        "files": sorted(files),
    }


def describe_source(source: dict[str, Any]) -> str:
    """A few words naming a data source recorded by `data_source` (or "the original's data files")."""
    if source.get("kind") == "directory":
        return f"the data directory {source.get('path')}"
    if source.get("kind") == "original":
        return "the original implementation's data files"
    return "the shipped resources"


def source_mismatch(recorded: dict[str, Any] | None) -> str | None:
    """Why the data now in use differs from `recorded` (a checkpoint's data source), or None when it is the
    same or unknown (old checkpoints record none). A checkpoint of the original (kind "original") matches
    any data directory, which is where its imported files live."""
    if not isinstance(recorded, dict):
        return None
    kind = recorded.get("kind")
    current = data_source(recorded.get("files") or [])
    if kind == "original":
        if current["kind"] == "directory":
            return None
    if kind == current["kind"] == "shipped":
        return None
    if kind == current["kind"] == "directory" and recorded.get("fingerprint") == current["fingerprint"]:
        return None
    return f"{describe_source(recorded)}, not {describe_source(current)}"
