"""Faults while training and options that cannot work: non-finite numbers stop a run at once (one line, exit
code 1, the last good checkpoint kept, no checkpoint holding NaN), sweeps record them as failed points, and
options that could not work are refused in one line (exit code 2) before any work or folder."""

from __future__ import annotations

import json
import os
import pickle
import re
import signal
import socket
from pathlib import Path

import pytest
import torch
from helpers import one_line_error, one_line_fault
from test_cli_train_processes import Program, free_port

from qrnn.errors import NonFiniteFault, RunFault
from qrnn.presets import load_preset
from qrnn.sweep import DONE_FILE, FAILED_FILE, NON_FINITE_AT, Sweep
from qrnn.training import models as training_models
from qrnn.training import read_checkpoint, train
from qrnn.training.loop import first_non_finite


def test_first_non_finite_names_the_loss_a_gradient_or_a_parameter() -> None:
    model = torch.nn.Linear(2, 1)
    assert first_non_finite(torch.tensor(0.5), model) is None
    assert first_non_finite(float("nan"), model) == "the training loss (nan)"
    model.weight.grad = torch.tensor([[0.0, float("inf")]])
    assert first_non_finite(1.0, model) == "the gradient of weight"
    model.weight.grad = None
    with torch.no_grad():
        model.bias.fill_(float("nan"))
    assert first_non_finite(1.0, model) == "parameter bias"


def test_nan_from_the_start_stops_at_epoch_1_without_a_checkpoint(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = one_line_fault(capsys, ["train", "--epochs", "5", "--initial-bias", "1e308", "--out", str(tmp_path)])
    assert line.startswith("qrnn: error: the training loss (nan) is not finite at epoch 1;")
    assert "no checkpoint was written" in line
    assert list((tmp_path / "checkpoints").iterdir()) == []


def test_nan_midway_keeps_the_last_good_checkpoint(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # The training loss turns NaN at the 5th step (validation, run without gradients, stays finite).
    real_loss = training_models.LOSS_FUNCTIONS["original"]
    steps = []

    def loss_turning_nan(probs: torch.Tensor, targets: torch.Tensor, scored: torch.Tensor | None) -> torch.Tensor:
        loss = real_loss(probs, targets, scored)
        if torch.is_grad_enabled():
            steps.append(1)
            if len(steps) >= 5:
                return loss * float("nan")
        return loss

    monkeypatch.setitem(training_models.LOSS_FUNCTIONS, "original", loss_turning_nan)
    with pytest.raises(RunFault) as fault:
        train(epochs=10, validate_every=2, num_validation_samples=0, out=str(tmp_path))
    message = str(fault.value)
    assert "the training loss (nan) is not finite at epoch 5;" in message
    written = sorted((tmp_path / "checkpoints").iterdir())
    assert len(written) == 1 and "-best-" in written[0].name
    assert f"the last good checkpoint is {written[0]}" in message
    payload = read_checkpoint(written[0])
    assert payload["epoch"] == 4
    assert all(bool(torch.isfinite(value).all()) for value in payload["model_state_dict"].values())


def test_a_sweep_records_a_non_finite_point_as_failed(tmp_path: Path) -> None:
    preset = tmp_path / "nan.toml"
    preset.write_text(
        'description = "a point that trains on NaN"\nseeds = [1]\n\n[train]\ndataset = "elman-xor"\n'
        "sentence_length = 9\nbatch_size = 4\nworkspace = 2\nstages = 1\nepochs = 4\ninitial_bias = 1e308\n"
    )
    sweep = Sweep(load_preset(preset), tmp_path / "root", printer=lambda _line: None)
    assert sweep.run() == 1
    (point,) = sweep.points
    failed = json.loads((sweep.point_directory(point) / FAILED_FILE).read_text())
    assert failed["reason"].startswith("the training loss (nan) is not finite at epoch 1;")
    # The epoch it diverged at, for the studies that count steps (a diverged run never reached the loss).
    assert failed[NON_FINITE_AT] == 1


def test_a_pooled_sweep_records_the_epoch_each_member_diverged_at(tmp_path: Path) -> None:
    # One member trains on; the other's loss turns NaN at its 3rd step (a member's own fault leaves the pool).
    preset = tmp_path / "nan.toml"
    preset.write_text(
        'description = "a pool with a member that diverges"\nseeds = [1, 2]\n\n[train]\ndataset = "elman-xor"\n'
        "sentence_length = 9\nbatch_size = 4\nworkspace = 2\nstages = 1\nepochs = 4\nvalidate_every = 100\n"
    )
    real_loss = training_models.LOSS_FUNCTIONS["original"]
    calls = []

    def second_member_turning_nan(probs: torch.Tensor, targets: torch.Tensor, scored: torch.Tensor | None
                                  ) -> torch.Tensor:
        loss = real_loss(probs, targets, scored)
        if torch.is_grad_enabled() and loss.shape == (2,):  # the pool's per-member losses, both members training
            calls.append(1)
            if len(calls) == 3:
                return loss * torch.tensor([1.0, float("nan")], dtype=loss.dtype)
        return loss

    sweep = Sweep(load_preset(preset), tmp_path / "root", pool_size=2, printer=lambda _line: None)
    with pytest.MonkeyPatch.context() as patch:
        patch.setitem(training_models.LOSS_FUNCTIONS, "original", second_member_turning_nan)
        assert sweep.run() == 1
    # The pool's second member diverged (the pool orders its members as it claims them), the other finished.
    directories = [sweep.point_directory(point) for point in sweep.points]
    assert sorted((d / DONE_FILE).exists() for d in directories) == [False, True]
    (diverged,) = [d for d in directories if not (d / DONE_FILE).exists()]
    failed = json.loads((diverged / FAILED_FILE).read_text())
    assert failed["reason"].startswith("the training loss (nan) is not finite at epoch 3;")
    assert failed[NON_FINITE_AT] == 3


def test_a_non_finite_fault_keeps_its_epoch_across_processes() -> None:
    # Shards hand their errors to the parent as pickles.
    fault = pickle.loads(pickle.dumps(NonFiniteFault("the training loss (nan) is not finite at epoch 7", 7)))
    assert isinstance(fault, RunFault) and fault.epoch == 7 and str(fault).endswith("epoch 7")


def test_a_two_shard_run_stops_together_on_nan(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = one_line_fault(capsys, [
        "train", "--num-shards", "2", "--batch-size", "1", "--epochs", "3", "--initial-bias", "1e308",
        "--port", str(free_port()), "--out", str(tmp_path),
    ])
    # Shard 0's line (the one that knows the checkpoints), the run stopped on both shards at once.
    assert line == (
        "qrnn: error: the training loss (nan) is not finite at epoch 1; training stopped and no checkpoint was "
        "written; try a smaller --learning-rate or smaller --initial-* values"
    )


# ---- shards that die, ports taken between the check and the bind ----


def shard_processes(parent: int) -> list[int]:
    """The pids of the shard processes spawned by `parent`, oldest first."""
    shards = []
    for entry in Path("/proc").iterdir():
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes()
        except (OSError, ValueError, IndexError):
            continue
        if ppid == parent and b"spawn_main" in command:
            shards.append(int(entry.name))
    return sorted(shards)


def test_a_killed_shard_names_itself_and_the_last_good_checkpoint(tmp_path: Path) -> None:
    program = Program(["--num-shards", "2", "--port", str(free_port()), "--epochs", "1000000", "train",
                       "--validate-every", "5", "--num-validation-samples", "0", "--out", str(tmp_path)], tmp_path)
    program.wait_for("checkpoint: ")
    shards = shard_processes(program.process.pid)
    assert len(shards) == 2
    os.kill(shards[-1], signal.SIGKILL)
    code, _, stderr = program.finish()
    assert code == 1, stderr
    (line,) = stderr.strip().splitlines()
    match = re.fullmatch(r"main\.py: error: shard [01] of 2 was killed by SIGKILL; the run stopped and the last good "
                         r"checkpoint is (\S+); continue with `qrnn resume \1`", line)
    assert match, line
    assert read_checkpoint(match[1])["kind"] == "best"


def test_a_port_taken_after_the_check_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # Another run binds the port between this run's check and its rendezvous: the bind itself is the check.
    monkeypatch.setattr("qrnn.training.launch.check_port_free", lambda _port: None)
    with socket.socket() as other_run:
        other_run.bind(("127.0.0.1", 0))
        other_run.listen()
        port = other_run.getsockname()[1]
        line = one_line_error(capsys, ["train", "--num-shards", "2", "--batch-size", "1", "--port", str(port),
                                       "--out", str(tmp_path / "out")])
    assert line == f"qrnn: error: --port {port} is in use on this machine; choose a free port with --port"
    assert not (tmp_path / "out").exists()


# ---- options that cannot work: one line, exit code 2, before any work (no runs/ folder) ----

GiB = 2**30


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["--order", "64"], "--order must be an integer in [1, 16], got 64; the neurons' amplitudes are raised"),
        (["--stages", "100000"], "--stages must be an integer in [0, 1000], got 100000"),
        (["--learning-rate", "1e308"], "--learning-rate must be a finite number > 0 and at most 1e+06, got 1e+308"),
        (["--workspace", "100"], "--workspace must be at most 64 for a QRNN"),
        (["--tag", "x" * 300], "--tag of 300 bytes makes checkpoint names of 367 bytes, longer than a file name may "
         "be (255); use a --tag of at most 188 bytes with this dataset"),
        (["--workspace", "40"], "--workspace 40 needs about 3.21e+07 GiB for a training pass over batch 2 x length "
         "20, but only 8.0 GiB is free on cpu; at most --workspace 19 (workspace qubits) fits"),
        (["--sentence-length", "100000000"], "a training pass over batch 2 x length 100000000 needs about 58.1 GiB, "
         "but only 8.0 GiB is free on cpu, too little even for --workspace 1; at most --sentence-length 23342145 "
         "fits with --workspace 3, or use a smaller --batch-size"),
        # MNIST batches hold --batch-size images of each digit, and the dataset fixes the length.
        (["--dataset", "mnist01", "--batch-size", "1000000"], "a training pass over batch 2000000 x length 100 needs "
         "about 46.2 GiB, but only 8.0 GiB is free on cpu, too little even for --workspace 1; use a smaller "
         "--batch-size"),
        (["--model", "rnn", "--workspace", "100000000"], "--workspace 100000000 needs about 1.49e+08 GiB for a "
         "training pass over batch 2 x length 20, but only 8.0 GiB is free on cpu; at most --workspace 23136 "
         "(hidden units) fits"),
    ],
    ids=["order", "stages", "learning-rate", "workspace-bound", "tag", "workspace-memory", "sentence-length",
         "mnist-batch", "rnn-workspace"],
)
def test_options_that_cannot_work_are_refused_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, argv: list[str],
    expected: str,
) -> None:
    # The free memory, fixed so that the messages do not depend on the machine.
    monkeypatch.setattr("qrnn.model.available_memory", lambda _device: 8 * GiB)
    out = tmp_path / "out"
    line = one_line_error(capsys, ["train", *argv, "--out", str(out)])
    assert expected in line, line
    assert not out.exists()


def test_memory_is_shared_by_the_shards_of_one_machine(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("qrnn.model.available_memory", lambda _device: 8 * GiB)
    line = one_line_error(capsys, [
        "train", "--workspace", "22", "--num-shards", "2", "--batch-size", "1", "--out", str(tmp_path / "out"),
    ])
    assert "but only 4.0 GiB is free on cpu for each of 2 shards" in line
