"""The README's figures and commands that code can check: the original's benchmark times are the ones `qrnn bench`
stores (one source for each figure), and the command after `git clone` names the checkpoint where the clone
puts it."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from qrnn.bench import CONFIGS

README = Path(__file__).resolve().parent.parent / "README.md"


def table_rows(text: str, first_header: str) -> list[dict[str, str]]:
    """Every row of every Markdown table whose first header cell is `first_header`, as {header: cell}."""
    rows: list[dict[str, str]] = []
    header: list[str] | None = None
    for line in text.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")] if line.startswith("|") else None
        if cells is None:
            header = None
        elif cells[0] == first_header:
            header = cells
        elif header is not None and not set(cells[0]) <= {"-"}:
            rows.append(dict(zip(header, cells, strict=True)))
    return rows


def test_the_originals_times_are_the_ones_bench_stores() -> None:
    # The tables that quote the original's times (the pools table compares qrnn with itself).
    rows = [row for row in table_rows(README.read_text(), "config") if row["config"] in CONFIGS and "original" in row]
    assert {row["config"] for row in rows} >= {"umap", "mnist01", "dna500", "ws6", "ws8", "ws10", "ws12", "ws20"}
    for row in rows:
        stored = CONFIGS[row["config"]].original_seconds
        quoted = row["original"]
        if stored is None:
            assert quoted in ("—", "-"), row
        else:
            match = re.fullmatch(r"([0-9.]+) s( \(.*\))?", quoted)
            assert match and float(match[1]) == stored, (row["config"], quoted, stored)


def test_the_command_after_git_clone_names_the_cloned_checkpoint() -> None:
    block = next(b for b in README.read_text().split("```") if "git clone https://github.com/CLEconomides/RVQE" in b)
    (command,) = [shlex.split(line) for line in block.splitlines() if line.startswith("qrnn convert-reference")]
    assert Path(command[2]).parent == Path("RVQE/results/best/mnist01"), command
