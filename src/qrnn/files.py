"""Files qrnn reads and writes: whole files written so that a reader never sees half of one (checkpoints, sweep
records, dataset resources), bounded reads of a user's files, names taken from files, and `.npz` archives
checked before they are inflated.

A file is written to a temporary file in the target's directory, flushed and fsynced, and then takes the
target's name in one step: `os.replace` (the old file or the new, never a part), or with `exclusive` a hard link
that fails if the target exists (the first writer wins). The directory entry is fsynced too. The file gets the
permissions the umask allows (`mkstemp` alone would make it private to its owner).
"""

from __future__ import annotations

import errno
import os
import re
import tempfile
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from qrnn.errors import QRNNError

# What qrnn reads of a user's or a resource file into memory, and what the arrays of an `.npz` may take there.
MAX_MEMORY_BYTES = 256 * 2**20
# Longest name of a run, checkpoint or other file name taken from a file: what most filesystems allow (bytes).
MAX_NAME_BYTES = 255
TEMPORARY_SUFFIX = ".tmp"


def write_atomically(path: str | os.PathLike[str], write: Callable[[BinaryIO], None], exclusive: bool = False) -> bool:
    """Write the file `path` by calling `write(stream)` on a temporary binary stream, then put it in place.

    With `exclusive`, the file is only created if `path` does not exist yet; returns False if it did (the
    temporary file is then discarded). Filesystems without hard links fall back to a plain replace. An
    `OSError` (a full disk) leaves the old file, if any, as it was and no temporary file behind.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", suffix=TEMPORARY_SUFFIX, dir=path.parent)
    try:
        os.fchmod(descriptor, 0o666 & ~current_umask())
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


def current_umask() -> int:
    """The process's umask: from Linux's /proc/self/status, else by setting it and putting it back (POSIX has no
    plain getter; the round trip could race with another thread creating a file, the /proc read cannot)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def remove_stale_temporaries(directory: Path, prefix: str) -> list[Path]:
    """Remove the temporary files `write_atomically` left in `directory` for targets whose names start with
    `prefix` (a process killed while writing leaves them); returns those removed. Only regular files named
    `.<prefix>....tmp` are touched."""
    removed = []
    try:
        entries = list(os.scandir(directory))
    except OSError:
        return removed
    for entry in entries:
        if entry.name.startswith("." + prefix) and entry.name.endswith(TEMPORARY_SUFFIX):
            if entry.is_file(follow_symlinks=False):
                try:
                    os.unlink(entry.path)
                    removed.append(Path(entry.path))
                except OSError:
                    pass
    return removed


def describe_error(error: OSError) -> str:
    """The words for an OS error: its message ("No space left on device"), or its errno's."""
    return error.strerror or os.strerror(error.errno or errno.EIO)


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


# ---- reading ----


def path_problem(path: Path, what: str) -> str | None:
    """Why `path` cannot be read as a regular file (one line starting with `what` and the path), or None: a
    missing file, a loop of symbolic links, a link to nothing, a folder, or another kind of file."""
    try:
        mode = path.stat().st_mode
    except OSError as error:
        if error.errno == errno.ELOOP:
            return f"{what} {path} is a loop of symbolic links"
        if error.errno == errno.ENOENT:
            if path.is_symlink():
                return f"{what} {path} is a symbolic link to {os.readlink(path)}, which does not exist"
            return f"{what} {path} does not exist"
        return f"cannot read {what} {path}: {describe_error(error)}"
    import stat

    if stat.S_ISDIR(mode):
        return f"{what} {path} is a folder, not a file"
    if not stat.S_ISREG(mode):
        return f"{what} {path} is not a regular file"
    return None


def read_bytes(path: Path, what: str, limit: int) -> bytes:
    """The bytes of the file `path` (at most `limit` of them), or a one-line `QRNNError` saying why not."""
    problem = path_problem(path, what)
    if problem is not None:
        raise QRNNError(problem)
    try:
        with open(path, "rb") as stream:
            # One more byte than allowed tells a file that grew after the check.
            data = stream.read(limit + 1)
    except OSError as error:
        raise QRNNError(f"cannot read {what} {path}: {describe_error(error)}") from None
    if len(data) > limit:
        raise QRNNError(
            f"{what} {path} has {max(len(data), path.stat().st_size):,} bytes; qrnn reads at most {limit:,} bytes "
            "into memory"
        )
    return data


def check_name(value: object, what: str, source: str) -> str:
    """`value` if it is a safe file name (one path component: printable, no separators, not "." or "..", at most
    `MAX_NAME_BYTES` bytes), else a one-line `QRNNError` naming `what` and `source` (where it came from)."""
    if (
        not isinstance(value, str)
        or not value
        or value in (".", "..")
        or not value.isprintable()
        or re.search(r"[/\\\0]", value)
        or len(value.encode("utf-8", "surrogatepass")) > MAX_NAME_BYTES
    ):
        shown = repr(value) if len(repr(value)) <= 80 else repr(value)[:77] + "..."
        raise QRNNError(
            f"{source}: {what} {shown} is not a safe file name (one path component of printable characters, "
            f"at most {MAX_NAME_BYTES} bytes); the file was not written by qrnn or was altered"
        )
    return value


# ---- .npz archives ----

# What reading a member's header may raise: a bad header or archive, cut-off or bad deflate data, an encrypted
# member (RuntimeError), an unknown compression method (NotImplementedError).
_NPZ_MEMBER_ERRORS = (ValueError, OSError, EOFError, zipfile.BadZipFile, RuntimeError, NotImplementedError, zlib.error)


def npz_members(archive: zipfile.ZipFile, source: str, limit: int) -> Iterator[tuple[str, tuple[int, ...], int]]:
    """(array name, declared shape, bytes) of every array of the `.npz` `archive`, read from numpy's headers
    without inflating the data; a one-line `QRNNError` naming `source` when an array, or all together, would
    take more than `limit` bytes in memory, or when a member is not an array. Reading a member afterwards
    cannot inflate more than its checked size (zipfile stops at the declared size)."""
    import numpy as np

    total = 0
    for info in archive.infolist():
        name = info.filename[: -len(".npy")] if info.filename.endswith(".npy") else info.filename
        try:
            with archive.open(info) as stream:
                version = np.lib.format.read_magic(stream)
                if version == (1, 0):
                    shape, _, dtype = np.lib.format.read_array_header_1_0(stream)
                elif version == (2, 0):
                    shape, _, dtype = np.lib.format.read_array_header_2_0(stream)
                else:
                    raise ValueError(f"npy format version {version}")
        except _NPZ_MEMBER_ERRORS as error:
            raise QRNNError(f"{source}: member {info.filename} is not a numpy array ({error})") from None
        count = 1
        for side in shape:
            count *= int(side)
        size = count * dtype.itemsize
        total += size
        if size > limit or total > limit:
            raise QRNNError(
                f"{source}: array `{name}` of shape {tuple(shape)} ({dtype}) would take {size:,} bytes in memory "
                f"({total:,} with the arrays before it); qrnn loads at most {limit:,} bytes"
            )
        if info.file_size > size + 2**16:
            raise QRNNError(
                f"{source}: member {info.filename} declares {info.file_size:,} bytes for an array of {size:,}; it "
                "was not written by numpy"
            )
        yield name, tuple(int(side) for side in shape), size
