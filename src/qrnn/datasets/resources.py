"""The precomputed files the datasets read: shipped in `qrnn/data/`, rebuilt by `qrnn data build`.

Loading is lazy (a dataset loads only its own files, once per process) and never unpickles (no code runs).
"""

from __future__ import annotations

import functools
import zipfile
from pathlib import Path

import numpy as np

from qrnn.errors import QRNNError

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
BUILD_COMMAND = "pip install -e '.[data]' && qrnn data build"


def resource_path(filename: str) -> Path:
    """Where the shipped resource `filename` lives."""
    return DATA_DIR / filename


@functools.cache
def load_resource(filename: str) -> dict[str, np.ndarray]:
    """All arrays of the `.npz` resource `filename`, or one line naming the file and the build command."""
    path = resource_path(filename)
    if not path.is_file():
        raise QRNNError(f"dataset resource {path} is missing; rebuild it with: {BUILD_COMMAND}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            return {key: archive[key] for key in archive.files}
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as error:
        raise QRNNError(
            f"dataset resource {path} is corrupt ({type(error).__name__}); rebuild it with: {BUILD_COMMAND}"
        ) from None


@functools.cache
def load_resource_array(filename: str, key: str) -> np.ndarray:
    """One array of the `.npz` resource `filename`, decompressing only that member (for small metadata such as
    split sizes, so that listing datasets stays fast); same one-line errors as `load_resource`."""
    path = resource_path(filename)
    if not path.is_file():
        raise QRNNError(f"dataset resource {path} is missing; rebuild it with: {BUILD_COMMAND}")
    try:
        with np.load(path, allow_pickle=False) as archive:
            return archive[key]
    except (OSError, ValueError, KeyError, zipfile.BadZipFile, EOFError) as error:
        raise QRNNError(
            f"dataset resource {path} is corrupt ({type(error).__name__}); rebuild it with: {BUILD_COMMAND}"
        ) from None
