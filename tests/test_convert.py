"""Converting the original implementation's checkpoints: a file of the paper's shape (DDP parameter names,
Adam state keyed by parameter ids, an argparse.Namespace whose `func` is a function of the script, a torch RNG
state) round-trips exactly in both torch formats, and files that would execute code are refused without
executing it."""

from __future__ import annotations

import argparse
import builtins
import os
import pickle
from collections import OrderedDict
from pathlib import Path

import pytest
import torch

import qrnn
from qrnn.cli import main as cli_main
from qrnn.datasets import lookup
from qrnn.errors import QRNNError
from qrnn.original.checkpoints import ForeignReference, convert_original_checkpoint, read_original_checkpoint
from qrnn.training.checkpoint import read_checkpoint
from qrnn.training.evaluate import evaluate_checkpoint

# dna: 3-bit words; a small model keeps every test fast.
WORKSPACE, STAGES, ORDER, DEGREE = 3, 2, 2, 2


def command_train(args: argparse.Namespace) -> int:
    """Stands for the original script's `command_train`, which its checkpoints reference as `func`."""
    raise AssertionError("a converter must never call the function a checkpoint names")


def touch_marker(path: str) -> None:
    """What a malicious pickle of a non-library module would make a careless loader run."""
    Path(path).touch()


def original_arguments(**changes: object) -> argparse.Namespace:
    """The original's command line namespace (same fields and func as the paper's files)."""
    values = dict(
        port=12335,
        num_shards=2,
        num_validation_samples=2,
        tag="experiment-dna-7",
        epochs=5000,
        timeout=None,
        stop_at_loss=None,
        seed=7,
        workspace=WORKSPACE,
        stages=STAGES,
        order=ORDER,
        degree=DEGREE,
        dataset="dna",
        sentence_length=6,
        batch_size=2,
        optimizer="adam",
        learning_rate=0.005,
        weight_decay=0.0,
        initial_bias=1.570796,
        initial_bias_spread=0.1,
        initial_weights_spread=0.0,
        initial_unitaries_spread=0.01,
        func=command_train,
    )
    values.update(changes)
    return argparse.Namespace(**values)


def original_checkpoint(seed: int = 3) -> tuple[dict[str, object], dict[str, torch.Tensor]]:
    """A checkpoint dictionary as the original saved it, and its parameters under the original's names."""
    generator = torch.Generator().manual_seed(seed)
    model = qrnn.QRNN(3, WORKSPACE, STAGES, ORDER, DEGREE)
    model.reset_parameters(bias_spread=0.3, weights_spread=0.2, unitaries_spread=0.2, generator=generator)
    parameters = model.original_state_dict()
    state_dict = OrderedDict((f"module.{name}", value) for name, value in parameters.items())
    # The original's Adam state is keyed by (memory-address-like) parameter ids in its parameter order.
    ids = [140_000_000_000 + 48 * i for i in range(len(state_dict))]
    state = {
        pid: {
            "step": 41,
            "exp_avg": torch.randn(v.shape, generator=generator),
            "exp_avg_sq": torch.rand(v.shape, generator=generator),
        }
        for pid, v in zip(ids, state_dict.values(), strict=True)
    }
    optimizer = {
        "state": state,
        "param_groups": [
            {
                "lr": 0.005,
                "betas": (0.9, 0.999),
                "eps": 1e-8,
                "weight_decay": 0.0,
                "amsgrad": False,
                "params": ids,
            }
        ],
    }
    contents = {
        "epoch": 40,
        "best_validation_loss": torch.tensor(0.0123),
        "best_character_error_rate": torch.tensor(0.25, dtype=torch.float64),
        "model_state_dict": state_dict,
        "optimizer_state_dict": optimizer,
        "_original_args": original_arguments(),
        "_checkpoint_prefix": "-experiment-dna-7-dna--1a2b3c",
        "_torch_rng_state": torch.Generator().manual_seed(5).get_state(),
    }
    return contents, parameters


@pytest.fixture(params=["zip", "legacy"])
def original_file(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[Path, dict[str, object], dict]:
    """The original-shaped file in the zip format (torch >= 1.6) and in the legacy format the paper's use."""
    contents, parameters = original_checkpoint()
    path = tmp_path / f"original-{request.param}.tar"
    torch.save(contents, path, _use_new_zipfile_serialization=request.param == "zip")
    return path, contents, parameters


def test_reading_matches_what_was_saved_and_keeps_func_as_a_name(original_file) -> None:
    path, contents, parameters = original_file
    loaded = read_original_checkpoint(path)
    assert loaded["epoch"] == 40
    for name, value in parameters.items():
        assert torch.equal(loaded["model_state_dict"][f"module.{name}"], value)
    for pid, entry in contents["optimizer_state_dict"]["state"].items():
        assert torch.equal(loaded["optimizer_state_dict"]["state"][pid]["exp_avg_sq"], entry["exp_avg_sq"])
    args = loaded["_original_args"]
    assert isinstance(args, argparse.Namespace) and args.workspace == WORKSPACE and args.dataset == "dna"
    assert isinstance(args.func, ForeignReference)
    assert args.func.dotted_name == f"{command_train.__module__}.command_train"
    assert torch.equal(loaded["_torch_rng_state"], contents["_torch_rng_state"])


def test_conversion_round_trips_parameters_and_optimizer_and_evaluates(original_file, tmp_path: Path) -> None:
    path, contents, parameters = original_file
    destination = tmp_path / "converted.tar"
    summary = convert_original_checkpoint(path, destination)
    assert summary.epoch == 40 and summary.optimizer.startswith("converted (")

    model, info = qrnn.load_checkpoint(destination)
    assert (info["dataset"], info["workspace"], info["stages"], info["order"], info["degree"]) == (
        "dna",
        WORKSPACE,
        STAGES,
        ORDER,
        DEGREE,
    )
    assert info["epoch"] == 40 and info["num_shards"] == 2 and info["batch_size"] == 2
    assert info["best_validation_loss"] == pytest.approx(0.0123)
    assert info["best_character_error_rate"] == 0.25
    for name, value in model.original_state_dict().items():
        assert torch.equal(value, parameters[name]), name

    # Adam moments land on the same parameters, under our parameter order.
    payload = read_checkpoint(destination)
    # The original's checkpoints carry the current layout of their dataset, and the original's data.
    assert payload["data"] == {"kind": "original"}
    assert payload["dataset_layout_version"] == lookup("dna").cls.layout_version
    ours = [name for name, _ in model.named_parameters()]
    reference = qrnn.QRNN(3, WORKSPACE, STAGES, ORDER, DEGREE)
    original_names = list(parameters)
    mapped = {our: old for old, our in reference.original_parameter_names().items()}
    ids = contents["optimizer_state_dict"]["param_groups"][0]["params"]
    for index, our_name in enumerate(ours):
        pid = ids[original_names.index(mapped[our_name])]
        converted = payload["optimizer_state_dict"]["state"][index]
        assert torch.equal(converted["exp_avg"], contents["optimizer_state_dict"]["state"][pid]["exp_avg"])
        assert float(converted["step"]) == 41.0
    assert payload["converted_from"]["original_args"]["func"].endswith(".command_train")

    # The converted model computes what the original's parameters compute, and evaluates.
    inputs = torch.randint(0, 2, (2, 6, 3), generator=torch.Generator().manual_seed(1))
    # The original's arguments carry its bias, 1.570796 (not quite pi/2): the converted model keeps it.
    direct = qrnn.QRNN(3, WORKSPACE, STAGES, ORDER, DEGREE, bias=1.570796)
    direct.load_original_state_dict(contents["model_state_dict"])
    assert torch.equal(model(inputs, inputs)[0], direct(inputs, inputs)[0])
    report = evaluate_checkpoint(destination, samples=8, batch_size=2)
    assert report.batches == 4 and 0.0 <= report.character_error_rate <= 1.0
    assert report.character_error_rate_stderr is not None


def test_converted_checkpoint_resumes_with_the_paper_adam_state(tmp_path: Path) -> None:
    contents, _ = original_checkpoint()
    contents["_original_args"] = original_arguments(num_shards=1)  # one shard: no processes to spawn
    path = tmp_path / "original.tar"
    torch.save(contents, path, _use_new_zipfile_serialization=False)
    destination = tmp_path / "checkpoints" / "converted.tar"  # resume writes beside checkpoints/
    convert_original_checkpoint(path, destination)
    result = qrnn.training.resume(destination, epochs=42)
    assert result.epoch == 42 and result.stop_reason == "epochs"
    resumed = read_checkpoint(result.final_checkpoint)
    assert float(resumed["optimizer_state_dict"]["state"][0]["step"]) == 43.0  # 41 original steps + 2
    assert (tmp_path / "runs" / resumed["run"]["name"]).is_dir()


def test_cli_converts_and_refuses_to_overwrite(original_file, tmp_path: Path, capsys) -> None:
    path, _, _ = original_file
    destination = tmp_path / "cli.tar"
    assert cli_main(["convert-reference", str(path), str(destination)]) == 0
    assert "optimizer state: converted" in capsys.readouterr().out
    assert cli_main(["convert-reference", str(path), str(destination)]) == 2
    error = capsys.readouterr().err
    assert error.count("\n") == 1 and "--force" in error
    assert cli_main(["convert-reference", str(path), str(destination), "--force"]) == 0


class _Evil:
    """Pickles as a call of `function(*arguments)`, the way malicious checkpoints run code."""

    def __init__(self, function: object, *arguments: object) -> None:
        self.function, self.arguments = function, arguments

    def __reduce__(self) -> tuple[object, tuple[object, ...]]:
        return self.function, self.arguments


def _malicious_payloads(marker: Path) -> dict[str, object]:
    return {
        "os.system": _Evil(os.system, f"touch {marker}"),
        "builtins.eval": _Evil(builtins.eval, f"__import__('pathlib').Path({str(marker)!r}).touch()"),
        "script function": _Evil(touch_marker, str(marker)),
    }


@pytest.mark.parametrize("kind", ["os.system", "builtins.eval", "script function"])
@pytest.mark.parametrize("writer", ["torch zip", "torch legacy", "plain pickle"])
def test_malicious_files_are_refused_without_executing(
    kind: str, writer: str, tmp_path: Path, capsys
) -> None:
    marker = tmp_path / "executed"
    contents, _ = original_checkpoint()
    contents["model_state_dict"]["module.cell.input_layer.0.θ"] = _malicious_payloads(marker)[kind]
    path = tmp_path / "evil.tar"
    if writer == "plain pickle":
        path.write_bytes(pickle.dumps(contents, protocol=2))
    else:
        torch.save(contents, path, _use_new_zipfile_serialization=writer == "torch zip")
    with pytest.raises(QRNNError, match="refusing .*nothing from it was executed") as caught:
        read_original_checkpoint(path)
    assert "\n" not in str(caught.value)
    assert cli_main(["convert-reference", str(path), str(tmp_path / "out.tar")]) == 2
    assert capsys.readouterr().err.startswith("qrnn: error: refusing")
    assert not marker.exists()
    assert not (tmp_path / "out.tar").exists()


def test_script_globals_are_accepted_only_as_func(tmp_path: Path) -> None:
    contents, _ = original_checkpoint()
    contents["_original_args"] = original_arguments(callback=touch_marker)
    path = tmp_path / "odd.tar"
    torch.save(contents, path)
    expected = r"touch_marker at \[._original_args.\]\.callback \(allowed only as the arguments. func\)"
    with pytest.raises(QRNNError, match=expected):
        read_original_checkpoint(path)


def test_bad_files_fail_in_one_line(tmp_path: Path) -> None:
    contents, _ = original_checkpoint()
    good = tmp_path / "good.tar"
    torch.save(contents, good, _use_new_zipfile_serialization=False)
    truncated = tmp_path / "truncated.tar"
    truncated.write_bytes(good.read_bytes()[:-100])
    text = tmp_path / "notes.tar"
    text.write_text("not a checkpoint\n")
    unknown_dataset = tmp_path / "unknown.tar"
    contents["_original_args"] = original_arguments(dataset="no-such-data")
    torch.save(contents, unknown_dataset)
    cases = {
        truncated: "truncated",
        text: "cannot read|refusing",
        tmp_path / "missing.tar": "does not exist",
        unknown_dataset: "dataset 'no-such-data'",
    }
    for path, message in cases.items():
        with pytest.raises(QRNNError, match=message) as caught:
            convert_original_checkpoint(path, tmp_path / "out.tar")
        assert "\n" not in str(caught.value)
