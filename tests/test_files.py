"""Atomic file writing: readers see the old file or the new one, never a part; exclusive creation wins once."""

from __future__ import annotations

from pathlib import Path

import pytest

from qrnn.files import write_atomically


def test_replace_keeps_the_old_file_when_writing_fails(tmp_path: Path) -> None:
    target = tmp_path / "record.json"
    write_atomically(target, lambda stream: stream.write(b"old"))

    def broken(stream) -> None:
        stream.write(b"half of the new")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        write_atomically(target, broken)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["record.json"]  # no temporary file left behind
    assert write_atomically(target, lambda stream: stream.write(b"new"))
    assert target.read_bytes() == b"new"


def test_exclusive_creation_happens_once(tmp_path: Path) -> None:
    target = tmp_path / "nested" / "done.json"
    assert write_atomically(target, lambda stream: stream.write(b"first"), exclusive=True)
    assert not write_atomically(target, lambda stream: stream.write(b"second"), exclusive=True)
    assert target.read_bytes() == b"first"
    assert sorted(p.name for p in target.parent.iterdir()) == ["done.json"]
