"""The training program as separate processes: `./main.py` with signals (SIGTERM, SIGINT) and resume, and two
shards on one machine (spawned, gloo). Each test runs a few short subprocesses."""

from __future__ import annotations

import queue
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path

import torch

from qrnn.training import read_checkpoint, train

REPO = Path(__file__).resolve().parents[1]
MAIN = REPO / "main.py"
# Seconds a test waits for a subprocess's output or its exit before failing (runs take a few seconds).
PATIENCE = 120


class Program:
    """`./main.py ARGS` in a subprocess whose stdout and stderr are read line by line in the background."""

    def __init__(self, args: list[str], cwd: Path) -> None:
        self.process = subprocess.Popen(
            [sys.executable, str(MAIN), *args],
            cwd=cwd,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        self.readers = [
            threading.Thread(target=self._read_stdout, daemon=True),
            threading.Thread(target=self._read_stderr, daemon=True),
        ]
        for reader in self.readers:
            reader.start()

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)
        self.lines.put(None)

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        self.stderr.extend(self.process.stderr)

    def wait_for(self, prefix: str) -> None:
        """Block until a line starting with `prefix` is printed."""
        while True:
            line = self.lines.get(timeout=PATIENCE)
            assert line is not None, f"exited before printing {prefix!r}: {self.finish()}"
            self.stdout.append(line)
            if line.startswith(prefix):
                return

    def finish(self) -> tuple[int, str, str]:
        """Wait for the exit; (exit code, all stdout, all stderr)."""
        while (line := self.lines.get(timeout=PATIENCE)) is not None:
            self.stdout.append(line)
        code = self.process.wait(timeout=PATIENCE)
        for reader in self.readers:
            reader.join(timeout=PATIENCE)
        return code, "".join(self.stdout), "".join(self.stderr)


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def only_checkpoint(out: Path, kind: str) -> Path:
    """The newest checkpoint of `kind` under `out`."""
    found = sorted((out / "checkpoints").glob(f"checkpoint-*-{kind}-*.tar"), key=lambda p: p.stat().st_mtime)
    assert found, f"no {kind} checkpoint in {out}"
    return found[-1]


def test_sigterm_then_resume_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    common = ["train", "--dataset", "elman-xor", "--sentence-length", "12", "--batch-size", "2",
              "--validate-every", "10", "--num-validation-samples", "1"]
    interrupted = Program(["--epochs", "1000000", *common, "--out", str(tmp_path / "split")], tmp_path)
    interrupted.wait_for("epoch 10/1000000")
    interrupted.process.send_signal(signal.SIGTERM)
    code, stdout, stderr = interrupted.finish()
    assert code == 143, stderr
    assert "interrupted at epoch" in stdout and "Traceback" not in stderr
    checkpoint = only_checkpoint(tmp_path / "split", "interrupted")
    stopped_at = read_checkpoint(checkpoint)["epoch"]
    assert stopped_at >= 10
    total = stopped_at + 12
    code, stdout, stderr = Program(["resume", str(checkpoint), "--epochs", str(total)], tmp_path).finish()
    assert code == 0, stderr
    assert "resuming run" in stdout
    code, _, stderr = Program(["--epochs", str(total), *common, "--out", str(tmp_path / "whole")], tmp_path).finish()
    assert code == 0, stderr
    resumed = read_checkpoint(only_checkpoint(tmp_path / "split", "final"))
    whole = read_checkpoint(only_checkpoint(tmp_path / "whole", "final"))
    assert resumed["epoch"] == whole["epoch"] == total
    for name, value in whole["model_state_dict"].items():
        assert torch.equal(resumed["model_state_dict"][name], value), name
    assert resumed["best"] == whole["best"]
    assert resumed["last_validation"] == whole["last_validation"]


def test_two_shards_average_like_one_batch_and_survive_sigint(tmp_path: Path) -> None:
    # simple-seq on 2 shards x batch 1 sees the same two sentences as 1 shard x batch 2, and DDP's averaged
    # gradient is the gradient of the averaged loss: the runs must agree up to rounding (float64).
    port = str(free_port())
    sharded = Program(
        ["--num-shards", "2", "--port", port, "--epochs", "1000000", "train", "--dtype", "float64",
         "--validate-every", "5", "--out", str(tmp_path / "sharded")],
        tmp_path,
    )
    sharded.wait_for("epoch 5/1000000")
    sharded.process.send_signal(signal.SIGINT)
    code, stdout, stderr = sharded.finish()
    assert code == 130, stderr
    checkpoint = only_checkpoint(tmp_path / "sharded", "interrupted")
    payload = read_checkpoint(checkpoint)
    assert len(payload["random_states"]) == 2 and payload["config"]["num_shards"] == 2
    assert payload["config"]["batch_size"] == 1
    total = payload["epoch"] + 5
    code, stdout, stderr = Program(["resume", str(checkpoint), "--epochs", str(total), "--port", port],
                                   tmp_path).finish()
    assert code == 0, stderr
    sharded_final = read_checkpoint(only_checkpoint(tmp_path / "sharded", "final"))
    assert sharded_final["epoch"] == total
    single = train(epochs=total, dtype="float64", validate_every=5, num_validation_samples=0,
                   out=str(tmp_path / "single"))
    single_final = read_checkpoint(single.final_checkpoint)
    for name, value in single_final["model_state_dict"].items():
        assert torch.allclose(sharded_final["model_state_dict"][name], value, rtol=0, atol=1e-9), name


def test_main_py_accepts_global_options_on_both_sides(tmp_path: Path) -> None:
    code, stdout, stderr = Program(
        ["--epochs", "3", "--tag", "before", "train", "--validate-every", "3", "--tag", "after",
         "--num-validation-samples", "0", "--out", str(tmp_path)],
        tmp_path,
    ).finish()
    assert code == 0, stderr
    final = read_checkpoint(only_checkpoint(tmp_path, "final"))
    # The value after the subcommand wins; the one only given before it is kept.
    assert final["config"]["tag"] == "after" and final["config"]["epochs"] == 3
    assert only_checkpoint(tmp_path, "final").name.startswith("checkpoint-after-simple-seq--")
    code, _, stderr = Program(["--num-shards", "3", "train", "--out", str(tmp_path)], tmp_path).finish()
    assert code == 2
    assert stderr.strip() == (
        "main.py: error: simple-seq needs shards x batch = 2, got 3 x 1 "
        "(use --num-shards 1 --batch-size 2 or --num-shards 2 --batch-size 1)"
    )
