"""Hostile and damaged files (issue 21): checkpoints whose names and paths point elsewhere, corrupted or crafted
checkpoints, memory bombs, a full disk, leftovers of killed runs, permissions, and the one-line messages."""

from __future__ import annotations

import errno
import io
import os
import zipfile
from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from helpers import one_line_error

from qrnn.cli import main as qrnn_main
from qrnn.training import read_checkpoint, train


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The folder of a finished 2-epoch run (a best and a final checkpoint)."""
    out = tmp_path_factory.mktemp("run")
    train(epochs=2, validate_every=1, out=str(out))
    return out


def final_checkpoint(run_dir: Path) -> Path:
    """The run's final checkpoint."""
    return next((run_dir / "checkpoints").glob("checkpoint-*-final-*.tar"))


def crafted(run_dir: Path, folder: Path, change: Callable[[dict], None], name: str = "crafted.tar") -> Path:
    """A copy of the run's final checkpoint in `folder`, changed by `change(payload)`."""
    payload = read_checkpoint(final_checkpoint(run_dir))
    change(payload)
    folder.mkdir(parents=True, exist_ok=True)
    torch.save(payload, folder / name)
    return folder / name


def files_under(folder: Path) -> set[Path]:
    """Every file and folder under `folder`."""
    return set(folder.rglob("*"))


# ---- 1: names and paths inside a checkpoint ----


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("name", "../../escaped"),
        ("name", "/tmp/escaped-absolute"),
        ("name", ".."),
        ("name", "x" * 300),
        ("name", "bad\nname"),
        ("id", "../abc"),
        ("id", 7),
    ],
)
def test_run_names_from_a_checkpoint_are_checked(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], key: str, value: object
) -> None:
    def change(payload: dict) -> None:
        payload["run"][key] = value
        payload["config"]["epochs"] = 3

    path = crafted(run_dir, tmp_path / "run" / "checkpoints", change)
    before = files_under(tmp_path)
    for command in (["resume", str(path)], ["evaluate", str(path)]):
        line = one_line_error(capsys, command)
        assert str(path) in line and ("not a safe file name" in line or "run id" in line)
    assert files_under(tmp_path) == before


@pytest.mark.parametrize("value", ["../victim.tar", "/tmp/victim.tar", "victim", "checkpoint-x/../../victim.tar"])
def test_a_best_checkpoint_name_cannot_point_elsewhere(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], value: str
) -> None:
    victim = tmp_path / "victim.tar"
    victim.write_bytes(b"keep me")

    def change(payload: dict) -> None:
        payload["best_checkpoint"] = value
        payload["config"]["epochs"] = 3

    path = crafted(run_dir, tmp_path / "run" / "checkpoints", change)
    line = one_line_error(capsys, ["resume", str(path)])
    assert "best checkpoint" in line and str(path) in line
    assert victim.read_bytes() == b"keep me"


def test_removing_an_old_best_touches_only_this_runs_own_files(run_dir: Path, tmp_path: Path) -> None:
    import shutil

    from qrnn.training import resume

    out = tmp_path / "copy"
    shutil.copytree(run_dir, out)
    folder = out / "checkpoints"
    final = final_checkpoint(out)
    best = next(folder.glob("checkpoint-*-best-*.tar"))
    # A best of another run, and a best-looking name that is a link to a file outside: both stay.
    other = folder / best.name.replace(read_checkpoint(best)["run"]["id"], "ffffff")
    other.write_bytes(b"another run's best")
    outside = tmp_path / "outside.tar"
    outside.write_bytes(b"outside")
    link = folder / (best.name[: -len(".tar")] + "-link.tar")
    link.symlink_to(outside)
    # A best the record no longer names (a killed run's) and a stale temporary file of this run.
    stale_best = folder / best.name.replace("-best-", "-best-0-")
    shutil.copy(best, stale_best)
    temporary = folder / f".{best.name}.abc123.tmp"
    temporary.write_bytes(b"half")
    result = resume(final, epochs=6)
    bests = sorted(p.name for p in folder.glob(f"checkpoint-*--{read_checkpoint(final)['run']['id']}-best-*.tar"))
    assert result.best_checkpoint is not None
    assert [p for p in bests if not Path(folder / p).is_symlink()] == [Path(result.best_checkpoint).name]
    assert other.read_bytes() == b"another run's best" and outside.read_bytes() == b"outside" and link.is_symlink()
    assert not temporary.exists()


def test_a_lone_checkpoint_resumes_beside_itself_not_where_it_says(run_dir: Path, tmp_path: Path) -> None:
    from qrnn.training import resume

    elsewhere = tmp_path / "elsewhere"

    def change(payload: dict) -> None:
        payload["config"]["out"] = str(elsewhere)

    path = crafted(run_dir, tmp_path / "lone", change)
    result = resume(path, epochs=3)
    assert not elsewhere.exists()
    assert Path(result.final_checkpoint).parent == tmp_path / "lone" / "checkpoints"
    assert Path(result.log_dir).parent == tmp_path / "lone" / "runs"


def test_plot_refuses_a_checkpoint_with_a_bad_run_name(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("matplotlib")

    def change(payload: dict) -> None:
        payload["run"]["name"] = "../../figures"

    path = crafted(run_dir, tmp_path / "a" / "b" / "checkpoints", change)
    before = files_under(tmp_path)
    assert "not a safe file name" in one_line_error(capsys, ["plot", str(path)])
    assert files_under(tmp_path) == before


# ---- 5, 6, 10: bombs, corruption and crafted contents ----


def deflated(path: Path) -> None:
    """Rewrite the zip `path` with every member deflated (as a hostile file would, to stay small)."""
    with zipfile.ZipFile(path) as source:
        members = [(info, source.read(info)) for info in source.infolist()]
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_DEFLATED) as target:
        for info, data in members:
            target.writestr(info.filename, data)
    path.write_bytes(buffer.getvalue())


def test_a_checkpoint_with_more_tensor_bytes_than_its_configuration_needs_is_refused(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def change(payload: dict) -> None:
        payload["optimizer_state_dict"]["state"][0]["exp_avg"] = torch.zeros(6 * 2**20, dtype=torch.float32)

    path = crafted(run_dir, tmp_path, change)
    deflated(path)
    assert path.stat().st_size < 2**20  # 24 MiB of zeros in a small file
    line = one_line_error(capsys, ["evaluate", str(path)])
    assert "bytes of tensors; its configuration needs at most" in line and str(path) in line


def test_a_checkpoint_declaring_more_than_the_cap_is_refused_before_inflating(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import qrnn.training.checkpoint as checkpoint

    path = crafted(run_dir, tmp_path, lambda payload: None)
    monkeypatch.setattr(checkpoint, "MAX_PICKLE_BYTES", 100)
    assert "bytes of plain data" in one_line_error(capsys, ["evaluate", str(path)])


def flip_byte_of(path: Path, content: bytes) -> None:
    """Flip one bit inside the first occurrence of `content` in the file."""
    data = bytearray(path.read_bytes())
    where = data.find(content)
    assert where >= 0
    data[where + len(content) // 2] ^= 0x40
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("part", ["parameter", "random state", "pickle"])
def test_a_corrupted_checkpoint_is_refused(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], part: str
) -> None:
    path = tmp_path / "corrupted.tar"
    path.write_bytes(final_checkpoint(run_dir).read_bytes())
    payload = read_checkpoint(path)
    if part == "parameter":
        content = next(iter(payload["model_state_dict"].values())).numpy().tobytes()
    elif part == "random state":
        content = payload["random_states"][0]["sampling"].numpy().tobytes()
    else:
        content = b"qrnn-training-checkpoint"
    flip_byte_of(path, content)
    for command in (["evaluate", str(path)], ["resume", str(path), "--epochs", "5"]):
        line = one_line_error(capsys, command)
        assert f"checkpoint {path} is truncated or corrupt" in line
    with pytest.raises(Exception, match="corrupt"):
        read_checkpoint(path)


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (lambda p: p.pop("config"), "`config` must be"),
        (lambda p: p.update(config="dna"), "`config` must be"),
        (lambda p: p["config"].update(workspace="many"), "bad configuration: --workspace"),
        (lambda p: p["config"].update(colour=1), "bad configuration: unknown training option"),
        (lambda p: p.update(epoch="3"), "`epoch` must be"),
        (lambda p: p.pop("epoch"), "`epoch` must be"),
        (lambda p: p.update(best=None), "`best` must be"),
        (lambda p: p.update(model_state_dict={}), "`model_state_dict` must be"),
        (lambda p: p["model_state_dict"].popitem(), "model parameter"),
        (lambda p: p.update(model_state_dict=[]), "`model_state_dict` must be"),
        (lambda p: p["model_state_dict"].update(extra=torch.zeros(2)), "unknown model parameter"),
        (lambda p: p.update(random_states=[]), "`random_states` must be"),
        (lambda p: p["random_states"][0].update(torch=torch.zeros(3)), "random states of shard 0"),
        (lambda p: p["random_states"][0]["python"].update(internal=torch.zeros(3)), "random states of shard 0"),
        (lambda p: p["random_states"][0]["numpy"].update(name="PCG64"), "random states of shard 0"),
        (lambda p: p["random_states"][0].pop("dataset_generators"), "random states of shard 0"),
        (lambda p: p.update(optimizer_state_dict=None), "`optimizer_state_dict` must be"),
        (lambda p: p.update(input_size="2"), "`input_size` must be"),
    ],
)
def test_crafted_checkpoints_are_one_line(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], change: Callable, expected: str
) -> None:
    def with_more_epochs(payload: dict) -> None:
        if isinstance(payload.get("config"), dict):
            payload["config"]["epochs"] = 5
        change(payload)

    path = crafted(run_dir, tmp_path, with_more_epochs)
    for command in (["evaluate", str(path)], ["resume", str(path)]):
        line = one_line_error(capsys, command)
        assert expected in line and str(path) in line


def test_an_optimizer_state_that_does_not_fit_is_one_line(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def change(payload: dict) -> None:
        payload["config"]["epochs"] = 5
        payload["optimizer_state_dict"]["param_groups"] = []

    path = crafted(run_dir, tmp_path, change)
    assert "optimizer state does not fit" in one_line_error(capsys, ["resume", str(path)])


# ---- 7, 8, 9: a full disk, leftovers and permissions ----


def full_disk(monkeypatch: pytest.MonkeyPatch, after_bytes: int = 100) -> None:
    """Make every checkpoint write fail with ENOSPC after `after_bytes` bytes, as a full disk does."""
    real_save = torch.save

    def save(payload: object, stream: io.BufferedIOBase, *args: object, **kwargs: object) -> None:
        buffer = io.BytesIO()
        real_save(payload, buffer, *args, **kwargs)
        stream.write(buffer.getvalue()[:after_bytes])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(torch, "save", save)


def test_a_full_disk_is_one_line_and_keeps_the_last_good_checkpoint(
    run_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(run_dir, out)
    folder = out / "checkpoints"
    before = {path.name: path.read_bytes() for path in folder.iterdir()}
    capsys.readouterr()
    full_disk(monkeypatch)
    code = qrnn_main(["resume", str(final_checkpoint(out)), "--epochs", "4"])
    captured = capsys.readouterr()
    assert code == 1
    lines = captured.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in captured.err, captured.err
    assert lines[0].startswith("qrnn: error: cannot write checkpoint ")
    assert lines[0].endswith(": No space left on device") and str(folder) in lines[0]
    assert {path.name: path.read_bytes() for path in folder.iterdir()} == before  # nothing half-written or lost


def test_written_files_honour_the_umask(tmp_path: Path) -> None:
    from qrnn.files import write_atomically

    previous = os.umask(0o022)
    try:
        write_atomically(tmp_path / "shared.json", lambda stream: stream.write(b"{}"))
        os.umask(0o077)
        write_atomically(tmp_path / "private.json", lambda stream: stream.write(b"{}"))
    finally:
        os.umask(previous)
    assert (tmp_path / "shared.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "private.json").stat().st_mode & 0o777 == 0o600


def test_checkpoints_honour_the_umask(run_dir: Path) -> None:
    for path in (run_dir / "checkpoints").iterdir():
        assert path.stat().st_mode & 0o777 == 0o666 & ~_umask(), path


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
