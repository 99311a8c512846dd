"""Hostile and damaged files (issue 21): checkpoints whose names and paths point elsewhere, corrupted or crafted
checkpoints, memory bombs, a full disk, leftovers of killed runs, permissions, and the one-line messages."""

from __future__ import annotations

import errno
import importlib.util
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
        (lambda p: p.update(kind="../best"), "`kind` must be"),
        (lambda p: p.update(data={"kind": "directory", "path": "/", "files": ["../../etc/passwd"]}), "data file"),
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


# ---- 5: memory bombs in data files ----


def npz_with_header(path: Path, shape: tuple[int, ...], dtype: str = "|u1") -> Path:
    """An .npz whose `inputs` member declares `shape` but holds no data (a few hundred bytes)."""
    import numpy as np

    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": dtype, "fortran_order": False, "shape": shape})
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("inputs.npy", header.getvalue())
    return path


def test_an_npz_header_claiming_a_huge_shape_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = npz_with_header(tmp_path / "bomb.npz", (10**6, 10**6, 2))
    assert path.stat().st_size < 1000
    line = one_line_error(capsys, ["train", "--dataset", f"npz:{path}", "--out", str(tmp_path / "out")])
    assert "array `inputs` of shape (1000000, 1000000, 2)" in line and "qrnn loads at most" in line
    assert not (tmp_path / "out").exists()


def test_an_npz_that_inflates_past_the_cap_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import numpy as np

    import qrnn.datasets.files as files

    monkeypatch.setattr(files, "MAX_FILE_BYTES", 2**20)
    path = tmp_path / "zeros.npz"
    np.savez_compressed(path, inputs=np.zeros((2**18, 8), dtype=np.int64), word_bits=np.array(3))
    assert path.stat().st_size < 2**16
    line = one_line_error(capsys, ["train", "--dataset", f"npz:{path}"])
    assert "array `inputs` of shape (262144, 8) (int64) would take 16,777,216" in line


def test_a_resource_that_inflates_past_the_cap_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from qrnn.datasets import resources
    from qrnn.errors import QRNNError

    npz_with_header(tmp_path / "mnist-pca.npz", (2**20, 2**10), "<i8")
    monkeypatch.setenv(resources.DATA_DIR_VARIABLE, str(tmp_path))
    resources.clear_cache()
    try:
        for load in (lambda: resources.load_resource("mnist-pca.npz"),
                     lambda: resources.load_resource_array("mnist-pca.npz", "inputs")):
            with pytest.raises(QRNNError, match=r"dataset resource .*mnist-pca.npz: array `inputs` of shape"):
                load()
    finally:
        resources.clear_cache()


def test_a_csv_gz_that_inflates_past_the_cap_is_refused(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import gzip

    from qrnn.original.data import MAX_CSV_BYTES

    folder = tmp_path / "res"
    folder.mkdir()
    bomb = folder / "mnist-simple-0-train.csv.gz"
    bomb.write_bytes(gzip.compress(b"0," * (MAX_CSV_BYTES // 2 + 1000), compresslevel=1))
    assert bomb.stat().st_size < 2**20
    line = one_line_error(capsys, ["data", "import-original", str(folder), "--out", str(tmp_path / "data")])
    assert f"{bomb} inflates to more than {MAX_CSV_BYTES:,} bytes" in line
    assert not (tmp_path / "data").exists()


# ---- 7, 9: importing the original's data on a full disk, over existing files, with the umask ----


def original_files(folder: Path) -> Path:
    """A tiny copy of the original's data files (see test_original_data)."""
    from test_original_data import write_original_files

    write_original_files(folder)
    return folder


def test_import_on_a_full_disk_leaves_out_as_it_was(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import qrnn.datasets.pipeline as pipeline

    folder = original_files(tmp_path / "res")
    out = tmp_path / "data"
    out.mkdir()
    (out / "mnist-px10.npz").write_bytes(b"the old resource")
    (out / "notes.txt").write_text("mine")
    before = {path: path.read_bytes() for path in out.iterdir()}
    real = pipeline.write_atomically
    calls = []

    def fills_up(path: Path, write: Callable, exclusive: bool = False) -> bool:
        calls.append(path)
        if len(calls) == 3:
            def partly(stream: io.BufferedIOBase) -> None:
                stream.write(b"PK")
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            return real(path, partly, exclusive)
        return real(path, write, exclusive)

    monkeypatch.setattr(pipeline, "write_atomically", fills_up)
    code = qrnn_main(["data", "import-original", str(folder), "--out", str(out)])
    captured = capsys.readouterr()
    assert code == 1 and "Traceback" not in captured.err
    lines = captured.err.strip().splitlines()
    assert lines[0] == f"warning: replacing mnist-px10.npz in {out}"
    assert len(lines) == 2 and lines[1].endswith(f"No space left on device; {out} is left as it was"), lines
    assert {path: path.read_bytes() for path in out.iterdir()} == before
    # Nothing is left beside it either, and a folder that did not exist is not created.
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "res"]
    calls.clear()
    assert qrnn_main(["data", "import-original", str(folder), "--out", str(tmp_path / "new")]) == 1
    assert not (tmp_path / "new").exists()


def test_imported_resources_honour_the_umask(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    folder = original_files(tmp_path / "res")
    previous = os.umask(0o022)
    try:
        assert qrnn_main(["data", "import-original", str(folder), "--out", str(tmp_path / "data")]) == 0
    finally:
        os.umask(previous)
    modes = {path.name: path.stat().st_mode & 0o777 for path in (tmp_path / "data").iterdir()}
    assert len(modes) == 5 and set(modes.values()) == {0o644}, modes
    assert "warning" not in capsys.readouterr().err


# ---- 10, 11: presets, file paths and npz messages ----


def test_paths_that_are_loops_or_folders_say_what_they_are(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    loop = tmp_path / "loop.txt"
    loop.symlink_to(tmp_path / "other.txt")
    (tmp_path / "other.txt").symlink_to(loop)
    for dataset in (f"text:{loop}", f"npz:{loop}"):
        line = one_line_error(capsys, ["train", "--dataset", dataset])
        assert f"{loop} is a loop of symbolic links" in line and "does not exist" not in line
    for command in (["evaluate", str(loop)], ["resume", str(loop)], ["convert-reference", str(loop), "x.tar"]):
        line = one_line_error(capsys, command)
        assert f"checkpoint {loop} is a loop of symbolic links" in line and "does not exist" not in line
    if importlib.util.find_spec("matplotlib") is not None:
        assert f"plot target {loop} is a loop of symbolic links" in one_line_error(capsys, ["plot", str(loop)])
    folder = tmp_path / "folder.toml"
    folder.mkdir()
    assert f"preset file {folder} is a folder, not a file" in one_line_error(capsys, ["train", "--preset", str(folder)])
    preset_loop = tmp_path / "loop.toml"
    preset_loop.symlink_to(preset_loop)
    line = one_line_error(capsys, ["train", "--preset", str(preset_loop)])
    assert f"preset file {preset_loop} is a loop of symbolic links" in line
    dangling = tmp_path / "dangling.txt"
    dangling.symlink_to(tmp_path / "gone.txt")
    line = one_line_error(capsys, ["train", "--dataset", f"text:{dangling}"])
    assert f"{dangling} is a symbolic link to {tmp_path / 'gone.txt'}, which does not exist" in line


def test_a_preset_that_is_not_utf8_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes('description = "caf\u00e9"\n'.encode("latin-1"))
    line = one_line_error(capsys, ["train", "--preset", str(path)])
    assert f"preset {path} is not UTF-8 text (byte 18 is 0xe9)" in line


def test_an_npz_word_of_2_to_the_64_minus_1_is_reported_as_it_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import numpy as np

    path = tmp_path / "big.npz"
    inputs = np.zeros((10, 4), dtype=np.uint64)
    inputs[2, 3] = 2**64 - 1
    np.savez(path, inputs=inputs, word_bits=np.array(3))
    line = one_line_error(capsys, ["train", "--dataset", f"npz:{path}"])
    assert "has the value 18446744073709551615 at (2, 3)" in line and "-1 at" not in line


def test_a_bytes_split_is_read_like_a_text_split(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import numpy as np

    from qrnn.datasets.files import load_npz

    names = ["train"] * 6 + ["validate"] * 2 + ["test"] * 2
    inputs = np.arange(40).reshape(10, 4) % 8
    np.savez(tmp_path / "bytes.npz", inputs=inputs, word_bits=np.array(3), split=np.array([n.encode() for n in names]))
    np.savez(tmp_path / "text.npz", inputs=inputs, word_bits=np.array(3), split=np.array(names))
    assert load_npz(str(tmp_path / "bytes.npz")).stage.tolist() == load_npz(str(tmp_path / "text.npz")).stage.tolist()
    np.savez(tmp_path / "bad.npz", inputs=inputs, word_bits=np.array(3), split=np.array([b"\xfftrain"] * 10))
    line = one_line_error(capsys, ["train", "--dataset", f"npz:{tmp_path / 'bad.npz'}"])
    assert "array `split` holds bytes that are not ASCII text" in line


def test_preset_descriptions_name_the_digits_of_their_dataset() -> None:
    import re

    from qrnn.datasets import lookup
    from qrnn.presets import load_preset, preset_names

    checked = 0
    for name in preset_names():
        preset = load_preset(name)
        match = re.search(r"digits (\d)(?:-| and )(\d)", preset.description)
        if match and "dataset" in preset.train:
            digits = lookup(preset.train["dataset"]).cls.digits
            assert (int(match.group(1)), int(match.group(2))) == (digits[0], digits[-1]), name
            checked += 1
    assert checked >= 3


def test_a_full_disk_under_the_logs_is_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from torch.utils.tensorboard import SummaryWriter

    def flush(self: SummaryWriter) -> None:
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(SummaryWriter, "flush", flush)
    code = qrnn_main(["train", "--epochs", "2", "--out", str(tmp_path)])
    captured = capsys.readouterr()
    assert code == 1 and "Traceback" not in captured.err
    assert captured.err.strip().splitlines() == [
        f"qrnn: error: cannot write TensorBoard logs in {next((tmp_path / 'runs').iterdir())}: No space left on device"
    ]
    assert len(list((tmp_path / "checkpoints").glob("*-final-*.tar"))) == 1


def test_a_pool_member_resumes_beside_its_checkpoint_not_where_it_says(run_dir: Path, tmp_path: Path) -> None:
    from qrnn.training.pool import train_pool

    elsewhere = tmp_path / "elsewhere"

    def change(payload: dict) -> None:
        payload["config"]["out"] = str(elsewhere)

    path = crafted(run_dir, tmp_path / "lone", change)
    options = {"epochs": 3, "validate_every": 1, "out": str(elsewhere)}
    resumed, fresh = train_pool([options, {**options, "seed": 2, "out": str(tmp_path / "fresh")}],
                                resume_from=[str(path), None])
    assert Path(resumed.final_checkpoint).parent == tmp_path / "lone" / "checkpoints"
    assert Path(fresh.final_checkpoint).parent == tmp_path / "fresh" / "checkpoints"
    assert not elsewhere.exists()
