"""Writing files so that a reader never sees half of one: checkpoints, sweep records and dataset resources.

The content goes to a temporary file in the target's directory, is flushed and fsynced, and then takes the
target's name in one step: `os.replace` (the old file or the new, never a part), or with `exclusive` a hard link
that fails if the target exists (the first writer wins). The directory entry is fsynced too.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def write_atomically(path: str | os.PathLike[str], write: Callable[[BinaryIO], None], exclusive: bool = False) -> bool:
    """Write the file `path` by calling `write(stream)` on a temporary binary stream, then put it in place.

    With `exclusive`, the file is only created if `path` does not exist yet; returns False if it did (the
    temporary file is then discarded). Filesystems without hard links fall back to a plain replace.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(descriptor, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        if exclusive:
            try:
                os.link(temporary, path)
            except FileExistsError:
                return False
            except OSError:
                os.replace(temporary, path)
        else:
            os.replace(temporary, path)
    finally:
        Path(temporary).unlink(missing_ok=True)
    _sync_directory(path.parent)
    return True


def _sync_directory(directory: Path) -> None:
    """Make a rename in `directory` durable (where the platform allows opening directories)."""
    try:
        handle = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)
