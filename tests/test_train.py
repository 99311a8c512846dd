"""The training program in-process: train, validate, checkpoint, resume (exactly), evaluate, the Python API,
stop conditions, TensorBoard logs and the one-line errors. Tiny runs (a few dozen epochs of 6-qubit models)."""

from __future__ import annotations

import io
import json
import math
import re
from pathlib import Path

import pytest
import torch
from helpers import one_line_error

import qrnn
from qrnn.bits import bits_to_int
from qrnn.cli import main as qrnn_main
from qrnn.datasets import get_dataset
from qrnn.errors import QRNNError
from qrnn.loss import original_loss
from qrnn.training import read_checkpoint, resume, train
from qrnn.training.config import TrainConfig, flag, make_config
from qrnn.training.models import build_model, build_optimizer, initialise_model
from qrnn.training.progress import ProgressDisplay, format_duration


def checkpoints(out: Path, kind: str) -> list[Path]:
    """The checkpoints of `kind` under `out`."""
    return sorted((out / "checkpoints").glob(f"checkpoint-*-{kind}-*.tar"))


def parameters(path: str | Path) -> dict[str, torch.Tensor]:
    """A checkpoint's model parameters."""
    return read_checkpoint(path)["model_state_dict"]


def test_train_command_validates_checkpoints_and_logs(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = qrnn_main(["train", "--epochs", "40", "--validate-every", "20", "--out", str(tmp_path)])
    assert code == 0
    out = capsys.readouterr().out
    # Two validations (epochs 20 and 40), each with the two simple-seq samples as input / gold / model lines.
    assert out.count("validation loss") == 2
    assert out.count("\ninput 01230123012301230123\ngold   1230123012301230123\nmodel  ") == 2
    assert "input 44444444444444444444" in out
    assert len(checkpoints(tmp_path, "best")) == 1
    final = read_checkpoint(checkpoints(tmp_path, "final")[0])
    assert final["epoch"] == 40
    assert final["config"]["batch_size"] == 2  # chosen for simple-seq on one shard
    assert final["config"]["dataset"] == "simple-seq" and final["config"]["optimizer"] == "adam"
    assert final["best"]["validation_loss"] == pytest.approx(final["last_validation"]["loss"]) or (
        final["best"]["validation_loss"] < final["last_validation"]["loss"]
    )
    assert len(final["random_states"]) == 1
    # TensorBoard: every scalar of the brief, per epoch for training and per validation for the rest.
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dirs = list((tmp_path / "runs").iterdir())
    assert len(run_dirs) == 1 and run_dirs[0].name.startswith("-simple-seq--" + final["run"]["id"])
    events = EventAccumulator(str(run_dirs[0])).Reload()
    tags = set(events.Tags()["scalars"])
    assert {
        "loss/train",
        "loss/validate",
        "loss/validate_best",
        "min_postsel_prob/train",
        "min_postsel_prob/validate",
        "accuracy/character_error_rate_current",
        "accuracy/character_error_rate_best",
        "time/seconds_per_epoch",
    } <= tags
    assert [e.step for e in events.Scalars("loss/train")] == list(range(1, 41))
    assert [e.step for e in events.Scalars("loss/validate")] == [20, 40]
    assert events.Scalars("loss/validate")[-1].value == pytest.approx(final["last_validation"]["loss"], rel=1e-6)
    assert {"arguments", "validation/samples", "checkpoints"} <= {t.split("/text_summary")[0] for t in
                                                                  events.Tags()["tensors"]}


def teacher_forced_loss(model: torch.nn.Module) -> float:
    """The original loss of `model` on simple-seq's two sentences, every step postselected on its target."""
    batch = get_dataset("simple-seq", sentence_length=20, batch_size=2).batch("train")
    with torch.no_grad():
        probs, _, _ = model(batch.inputs, batch.targets, postselect=True)
    return float(original_loss(probs, bits_to_int(batch.targets[:, 1:]), batch.scored))


def test_training_lowers_the_loss_and_loads_for_evaluation(tmp_path: Path) -> None:
    result = train(epochs=60, validate_every=10, num_validation_samples=0, out=str(tmp_path), dtype="float64")
    assert result.exit_code == 0 and result.stop_reason == "epochs" and result.epochs_run == 60
    model, config = qrnn.load_checkpoint(result.final_checkpoint)
    assert model.training is False and next(model.parameters()).dtype == torch.float64
    assert config["epoch"] == 60 and config["dtype"] == "float64"
    # The run's initial model: the same seeded initialisation, untrained.
    initial = build_model({**config, "input_size": 3}).double()
    initialise_model(initial, config)
    before, after = teacher_forced_loss(initial), teacher_forced_loss(model)
    assert before > 0.7 and after < before - 0.2
    payload = read_checkpoint(result.final_checkpoint)
    assert payload["best"]["validation_loss"] == result.best_validation_loss
    assert payload["model_config"] == {
        "input_size": 3, "workspace_size": 3, "stages": 2, "order": 2, "degree": 2, "bias": 1.570796
    }


def test_resume_continues_exactly_like_an_uninterrupted_run(tmp_path: Path) -> None:
    # elman-xor draws random data and validation samples: resuming must restore both generators.
    options = dict(dataset="elman-xor", sentence_length=12, batch_size=3, validate_every=5, num_validation_samples=1)
    whole = train(epochs=24, out=str(tmp_path / "whole"), **options)
    first = train(epochs=13, out=str(tmp_path / "split"), **options)
    assert first.epoch == 13
    second = resume(first.final_checkpoint, epochs=24)
    assert second.epoch == 24 and second.epochs_run == 11
    assert second.log_dir == first.log_dir  # the same run continues in the same log directory
    a, b = parameters(whole.final_checkpoint), parameters(second.final_checkpoint)
    assert all(torch.equal(a[name], b[name]) for name in a)
    assert second.best_validation_loss == whole.best_validation_loss
    assert second.best_character_error_rate == whole.best_character_error_rate


def test_resume_with_overrides(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    first = train(dataset="elman-letter", epochs=4, batch_size=2, validate_every=2, out=str(tmp_path))
    code = qrnn_main(
        ["resume", first.final_checkpoint, "--override-learning-rate", "0.05", "--override-batch-size", "3",
         "--override-loss", "nll", "--epochs", "7"]
    )
    assert code == 0
    latest = max(checkpoints(tmp_path, "final"), key=lambda p: read_checkpoint(p)["epoch"])
    payload = read_checkpoint(latest)
    assert payload["epoch"] == 7
    assert payload["config"]["batch_size"] == 3 and payload["config"]["learning_rate"] == 0.05
    assert payload["config"]["loss"] == "nll"
    # The best values restart with the new loss: the nll stage's first validation is its best so far.
    best = read_checkpoint(Path(latest).parent / payload["best_checkpoint"])
    assert best["epoch"] >= 6 and best["config"]["loss"] == "nll"
    assert [group["lr"] for group in payload["optimizer_state_dict"]["param_groups"]] == [0.05]
    # Adam's step counter continued from the checkpoint's 4 steps.
    steps = {float(state["step"]) for state in payload["optimizer_state_dict"]["state"].values()}
    assert steps == {7.0}
    assert "resuming run" in capsys.readouterr().out


def test_evaluate_reports_exact_numbers(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    result = train(epochs=30, validate_every=30, num_validation_samples=0, out=str(tmp_path))
    capsys.readouterr()
    assert qrnn_main(["evaluate", result.final_checkpoint, "--samples", "7", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["samples"] == 7 and report["batches"] == 4  # batches of 2, the last one partial
    assert report["dataset"] == "simple-seq" and report["stage"] == "test" and report["epoch"] == 30
    assert 0 <= report["character_error_rate"] <= 1 and report["character_error_rate_stderr"] is not None
    # The argmax accuracy, recomputed: teacher-forced argmax on the 4 full copies of sentence 0 and 3 of sentence 1.
    model, _ = qrnn.load_checkpoint(result.final_checkpoint)
    batch = get_dataset("simple-seq", sentence_length=20, batch_size=2).batch("test")
    probs, _, _ = model(batch.inputs, batch.targets, postselect=True)
    hits = (probs.argmax(1) == bits_to_int(batch.targets[:, 1:])).sum(1).tolist()
    assert report["argmax_accuracy"] == pytest.approx((4 * hits[0] + 3 * hits[1]) / (7 * 19))
    assert report["classes"] is None and report["confusion_matrix"] is None
    assert qrnn_main(["evaluate", result.final_checkpoint, "--samples", "2"]) == 0
    text = capsys.readouterr().out
    assert "character error rate (sampled, scored steps)" in text and "argmax accuracy" in text


def test_stop_at_loss_and_timeout(tmp_path: Path) -> None:
    stopped = train(epochs=1000, validate_every=5, stop_at_loss=10.0, out=str(tmp_path / "a"))
    assert stopped.stop_reason == "stop-at-loss" and stopped.epoch == 5 and stopped.exit_code == 0
    assert "-final-" in Path(stopped.final_checkpoint).name
    timed = train(epochs=10**6, validate_every=10**6, timeout=0.5, out=str(tmp_path / "b"))
    assert timed.stop_reason == "timeout" and 0 < timed.epoch < 10**6
    assert "-interrupted-" in Path(timed.final_checkpoint).name
    assert read_checkpoint(timed.final_checkpoint)["epoch"] == timed.epoch


@pytest.mark.parametrize("optimizer", ["sgd", "rmsprop", "lbfgs"])
def test_other_optimizers_train(tmp_path: Path, optimizer: str) -> None:
    result = train(optimizer=optimizer, epochs=3, validate_every=3, learning_rate=0.01, out=str(tmp_path))
    payload = read_checkpoint(result.final_checkpoint)
    assert math.isfinite(result.best_validation_loss)
    assert payload["optimizer_state_dict"]["param_groups"][0]["lr"] == 0.01
    initial = train(optimizer=optimizer, epochs=1, validate_every=1, learning_rate=1e-12, out=str(tmp_path / "x"))
    # The parameters moved away from the (shared, seeded) initial model.
    moved = parameters(result.final_checkpoint)
    start = parameters(initial.final_checkpoint)
    assert any(not torch.allclose(moved[name], start[name]) for name in moved)


def test_lbfgs_is_the_originals_and_line_search_is_opt_in(tmp_path: Path) -> None:
    # The original: torch's L-BFGS with history 40, 20 iterations per step, no line search.
    plain = build_optimizer("lbfgs", [torch.nn.Parameter(torch.zeros(3))], 0.02, 0.0)
    group = plain.param_groups[0]
    assert (group["lr"], group["history_size"], group["max_iter"], group["line_search_fn"]) == (0.02, 40, 20, None)
    result = train(optimizer="lbfgs", lbfgs_line_search="strong_wolfe", epochs=2, validate_every=2,
                   learning_rate=0.5, out=str(tmp_path))
    payload = read_checkpoint(result.final_checkpoint)
    assert payload["optimizer_state_dict"]["param_groups"][0]["line_search_fn"] == "strong_wolfe"
    assert payload["config"]["lbfgs_line_search"] == "strong_wolfe"
    assert math.isfinite(result.best_validation_loss)


def test_gradient_clip_defaults_to_the_originals_and_zero_turns_it_off(tmp_path: Path) -> None:
    # L-BFGS keeps the last gradient it saw: its norm is what the closure left after clipping.
    norms = {}
    for clip in (0.5, 0.0):
        result = train(optimizer="lbfgs", gradient_clip=clip, epochs=1, validate_every=1, learning_rate=0.02,
                       initial_weights_spread=1.0, initial_unitaries_spread=1.0, out=str(tmp_path / str(clip)))
        payload = read_checkpoint(result.final_checkpoint)
        assert payload["config"]["gradient_clip"] == clip
        norms[clip] = float(payload["optimizer_state_dict"]["state"][0]["prev_flat_grad"].norm())
    assert norms[0.5] == pytest.approx(0.5, rel=1e-5)
    assert norms[0.0] > 1.0


def test_config_defaults_match_the_original() -> None:
    config = TrainConfig()
    assert (config.port, config.num_shards, config.num_validation_samples, config.tag, config.epochs) == (
        12335, 1, 2, "", 5000
    )
    assert (config.timeout, config.stop_at_loss, config.seed) == (None, None, 82727)
    assert (config.workspace, config.stages, config.order, config.degree) == (3, 2, 2, 2)
    assert (config.dataset, config.sentence_length, config.optimizer, config.learning_rate) == (
        "simple-seq", 20, "adam", 0.003
    )
    assert (config.initial_bias, config.initial_bias_spread, config.initial_weights_spread) == (1.570796, 0.1, 0.01)
    assert config.initial_unitaries_spread == 0.01 and config.weight_decay == 0.0
    assert config.gradient_clip == 0.5


# ---- errors: one line on stderr, exit code 2, before any work ----




@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["train", "--dataset", "nope"], "unknown dataset 'nope'; valid datasets: "),
        (["train", "--optimizer", "adagrad"], "invalid choice: 'adagrad'"),
        (["train", "--batch-size", "3"], "simple-seq needs shards x batch = 2, got 1 x 3"),
        (["train", "--epochs", "-5"], "--epochs must be an integer >= 1, got -5"),
        (["train", "--learning-rate", "0"], "--learning-rate must be a finite number > 0"),
        (["train", "--epochs", "ten"], "argument --epochs: invalid int value: 'ten'"),
        (["train", "--optimizer", "lbfgs", "--weight-decay", "0.1"], "--optimizer lbfgs has no weight decay"),
        (["train", "--lbfgs-line-search", "strong_wolfe"], "--lbfgs-line-search strong_wolfe applies to --optimizer"),
        (["train", "--optimizer", "lbfgs", "--lbfgs-line-search", "armijo"], "invalid choice: 'armijo'"),
        (["train", "--timeout", "-1"], "--timeout must be a number of seconds > 0"),
        (["train", "--gradient-clip", "-0.5"], "--gradient-clip must be a finite number >= 0, got -0.5"),
        (["train", "--workspace", "0"], "--workspace must be an integer >= 1, got 0"),
        (["resume", "/nonexistent/checkpoint.tar"], "checkpoint /nonexistent/checkpoint.tar does not exist"),
        (["evaluate", "/nonexistent/checkpoint.tar"], "does not exist"),
    ],
)
def test_invalid_options(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], expected: str
) -> None:
    line = one_line_error(capsys, [*argv, *(["--out", str(tmp_path)] if argv[0] == "train" else [])])
    assert expected in line
    assert not (tmp_path / "checkpoints").exists()


def test_unknown_dataset_lists_the_valid_ones(capsys: pytest.CaptureFixture[str]) -> None:
    line = one_line_error(capsys, ["train", "--dataset", "mnist99"])
    for name in ("simple-seq", "elman-xor", "elman-letter", "dna", "simple-quotes", "shakespeare"):
        assert name in line


def test_port_in_use(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        line = one_line_error(
            capsys, ["train", "--num-shards", "2", "--batch-size", "1", "--port", str(port), "--out", str(tmp_path)]
        )
    assert f"--port {port} is in use" in line


def test_bad_checkpoint_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    good = train(epochs=2, validate_every=2, out=str(tmp_path))
    capsys.readouterr()
    data = Path(good.final_checkpoint).read_bytes()
    truncated = tmp_path / "truncated.tar"
    truncated.write_bytes(data[: len(data) // 2])
    assert "is truncated or corrupt" in one_line_error(capsys, ["resume", str(truncated)])
    foreign = tmp_path / "foreign.tar"
    torch.save({"weights": torch.ones(3)}, foreign)
    assert "is not a qrnn training checkpoint" in one_line_error(capsys, ["evaluate", str(foreign)])
    pickled = tmp_path / "pickled.tar"
    torch.save({"args": argparse.Namespace(epochs=3)}, pickled)
    assert "holds pickled Python objects, which are never loaded" in one_line_error(capsys, ["resume", str(pickled)])
    text = tmp_path / "text.tar"
    text.write_text("hello")
    assert "not a torch zip file" in one_line_error(capsys, ["resume", str(text)])
    newer = tmp_path / "newer.tar"
    payload = read_checkpoint(good.final_checkpoint)
    payload["format_version"] = 99
    torch.save(payload, newer)
    assert "format version 99, newer than this qrnn reads" in one_line_error(capsys, ["resume", str(newer)])
    # Resuming a finished run needs more epochs; changing a fixed option is refused.
    assert "pass --epochs greater than 2" in one_line_error(capsys, ["resume", good.final_checkpoint])
    line = one_line_error(capsys, ["resume", good.final_checkpoint, "--seed", "5", "--epochs", "9"])
    assert "--seed cannot change on resume" in line


def test_python_api_rejects_unknown_options() -> None:
    with pytest.raises(QRNNError, match="unknown option\\(s\\) epoch; valid options: "):
        make_config({"epoch": 3})
    with pytest.raises(QRNNError, match="unknown optimizer 'adamw'; valid: sgd, adam, rmsprop, lbfgs"):
        qrnn.train(optimizer="adamw")


# ---- help, progress display, classification reports ----


def test_help_shows_every_option_with_its_default(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        qrnn_main(["train", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    for name in TrainConfig.__dataclass_fields__:
        if name == "model":
            continue  # set by code until a --model flag exists
        assert flag(name) in text, name
    assert "--epochs EP number of training epochs (one batch per shard each) (default: 5000)" in text
    optimizer_help = r"--optimizer \{sgd,adam,rmsprop,lbfgs\} optimizer \(adam means AdamW\) \(default: '?adam'?\)"
    assert re.search(optimizer_help, text)
    assert "--learning-rate LR learning rate (default: 0.003)" in text
    assert "--tag TAG tag for the names of checkpoints and logs (default: '')" in text


def test_progress_display_live_and_plain() -> None:
    live_stream = io.StringIO()
    live = ProgressDisplay(total_epochs=100, start_epoch=0, stream=live_stream, live=True)
    live.update(1, 0.5, 0.25)
    live.message("validation report")
    live.close()
    drawn = live_stream.getvalue()
    assert drawn.startswith("\r\033[Kepoch 1/100  loss 0.5000  min postsel 0.25  ")
    assert "\r\033[Kvalidation report\nepoch 1/100" in drawn and drawn.endswith("\n")
    plain_stream = io.StringIO()
    plain = ProgressDisplay(total_epochs=100, start_epoch=50, stream=plain_stream, live=False, plain_interval=0)
    plain.update(60, 0.125, 1.0)
    plain.message("validation report")
    lines = plain_stream.getvalue().splitlines()
    assert lines[0].startswith("epoch 60/100  loss 0.1250  min postsel 1  ") and "ETA " in lines[0]
    assert lines[1] == "validation report" and "\r" not in plain_stream.getvalue()
    assert format_duration(3725) == "1:02:05" and format_duration(90061) == "1d 1:01:01"


def test_evaluate_confusion_matrix_on_a_classification_dataset(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    name = "mnist-pca-r2-p2"
    try:
        data = get_dataset(name, sentence_length=2, batch_size=2, seed=82727)
        data.batch("test")
    except (AttributeError, QRNNError) as error:  # the MNIST datasets or their resources are not there
        pytest.skip(f"{name} unavailable: {error}")
    result = train(dataset=name, epochs=2, batch_size=2, validate_every=2, out=str(tmp_path))
    capsys.readouterr()
    assert qrnn_main(["evaluate", result.final_checkpoint, "--samples", "40", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["classes"] == [str(digit) for digit in range(10)]
    matrix = torch.tensor(report["confusion_matrix"])
    assert matrix.shape == (10, 11) and int(matrix.sum()) == 40 and report["batches"] == 1
    assert report["classification_accuracy"] == pytest.approx(float(matrix.trace()) / 40)
    # Row sums are the true classes of the first 40 images of the test split, in the split's order.
    fresh = get_dataset(name, sentence_length=2, batch_size=2, seed=82727)
    truth = next(iter(fresh.split_batches("test", 40))).labels
    assert matrix.sum(1).tolist() == torch.bincount(truth, minlength=10).tolist()


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error for a machine without CUDA")
def test_cuda_requested_without_cuda(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    line = one_line_error(capsys, ["train", "--device", "cuda", "--out", str(tmp_path)])
    assert "--device cuda was asked for, but CUDA is not available here; use --device cpu or auto" in line


def test_flush_denormals_flushes_inside_and_restores_after() -> None:
    from qrnn.training.models import flush_denormals

    subnormal = torch.tensor([1e-39], dtype=torch.float32)
    assert float(subnormal * 0.5) > 0.0  # torch's default keeps subnormals
    with flush_denormals() as supported:
        if not supported:
            pytest.skip("this CPU cannot flush subnormal floats")
        assert float(subnormal * 0.5) == 0.0
        assert float(torch.tensor([1e-30]) * 0.5) == pytest.approx(5e-31)  # normal numbers are untouched
    assert float(subnormal * 0.5) > 0.0
