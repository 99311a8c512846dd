"""Your own data: `text:PATH`, `npz:PATH` and `qrnn.datasets.from_arrays`; their checks, layouts, splits and the
checkpoints' record of the file."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import one_line_error

import qrnn
from qrnn.bits import bits_to_int
from qrnn.datasets import canonical_name, dataset_label, from_arrays, get_dataset, lookup
from qrnn.datasets import files as file_datasets
from qrnn.datasets.text import encode_text, normalise_text
from qrnn.errors import QRNNError
from qrnn.training import read_checkpoint, resume

TEXT = "abba cab, abc.\nbaba acab bcba.\n" * 4  # 124 characters over 7 symbols


def create(name: str, sentence_length: int = 6, batch_size: int = 3, seed: int = 0, **kwargs: object):
    entry = lookup(name, **kwargs)  # type: ignore[arg-type]
    entry.check_options(sentence_length=sentence_length, batch_size=batch_size, num_shards=1)
    return entry.create(sentence_length=sentence_length, batch_size=batch_size, shard=0, num_shards=1, seed=seed)




# ---- text files ----


def test_text_file_alphabet_splits_and_windows(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text(TEXT)
    dataset = create(f"text:{path}")
    assert dataset.corpus.symbols == "\n ,.abc"  # sorted characters of the file
    assert dataset.input_size == 3  # 6 symbols: 3 bits
    assert dataset.corpus.ends == (112, 118, 124)  # round(124 * 0.9), round(124 * 0.95)
    assert dataset.dataset_file == {"path": str(path), "sha256": hashlib.sha256(TEXT.encode()).hexdigest()}
    decode = "".join
    for stage, (low, high) in zip(("train", "validate", "test"), [(0, 112), (112, 118), (118, 124)], strict=True):
        batch = dataset.batch(stage)
        assert batch.inputs.shape == (3, 6, 3) and bool(batch.scored.all())
        assert torch.equal(batch.inputs, batch.targets)
        for row in bits_to_int(batch.inputs).tolist():
            window = decode(dataset.corpus.symbols[code] for code in row)
            assert window in TEXT[low:high]
    # The same seed draws the same windows; another seed others.
    assert torch.equal(create(f"text:{path}").batch("train").inputs, create(f"text:{path}").batch("train").inputs)
    # The whole test split: the consecutive windows of its 6 characters (one window of 6).
    windows = list(dataset.split_batches("test", batch_size=4))
    assert dataset.split_size("test") == 1 and len(windows) == 1
    assert decode(dataset.corpus.symbols[c] for c in bits_to_int(windows[0].inputs[0]).tolist()) == TEXT[118:124]
    long = create(f"text:{path}", sentence_length=5)
    assert long.split_size("train") == 22
    rows = torch.cat([bits_to_int(b.inputs) for b in long.split_batches("train", batch_size=8)])
    assert [len(b.inputs) for b in long.split_batches("train", batch_size=8)] == [8, 8, 6]
    expected = torch.from_numpy(dataset.corpus.codes[:110].astype(np.int64)).reshape(22, 5)
    assert torch.equal(rows, expected)


def test_text_file_original_alphabet_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    wide = tmp_path / "wide.txt"
    wide.write_text("".join(chr(ord("A") + i) for i in range(40)) * 3)
    line = one_line_error(capsys, ["train", "--dataset", f"text:{wide}", "--out", str(tmp_path)])
    assert line.endswith(
        f"text file {wide} uses 40 different characters; text:PATH takes at most 32 (5-bit words): pass "
        "--alphabet original to fold it into the 5-bit alphabet of simple-quotes"
    )
    dataset = create(f"text:{wide}", alphabet="original")
    assert dataset.input_size == 5
    assert np.array_equal(dataset.corpus.codes, encode_text(normalise_text(wide.read_text())))
    short = tmp_path / "short.txt"
    short.write_text("hello")
    assert "too short for a 90/5/5 % split" in one_line_error(capsys, ["train", "--dataset", f"text:{short}"])
    binary = tmp_path / "b.txt"
    binary.write_bytes(b"ab\xff" * 30)
    assert "is not UTF-8 text (byte 2 is 0xff)" in one_line_error(capsys, ["train", "--dataset", f"text:{binary}"])
    assert "does not exist" in one_line_error(capsys, ["train", "--dataset", f"text:{tmp_path / 'nope.txt'}"])
    line = one_line_error(capsys, ["train", "--dataset", "elman-xor", "--alphabet", "original"])
    assert "--alphabet original applies to text:PATH datasets only, not to elman-xor" in line
    assert "valid kinds: arrays:..., npz:..., text:..." in one_line_error(capsys, ["train", "--dataset", "csv:x"])


def test_oversized_files_are_refused_before_reading(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "big.txt"
    path.write_text("ab" * 600)
    monkeypatch.setattr(file_datasets, "MAX_FILE_BYTES", 1024)
    with pytest.raises(QRNNError, match=r"has 1,200 bytes; qrnn reads at most 1,024 bytes into memory"):
        lookup(f"npz:{path}")


def test_names_for_runs() -> None:
    assert canonical_name("elman-xor") == "elman-xor"
    assert canonical_name("text:data/a.txt") == f"text:{Path.cwd() / 'data' / 'a.txt'}"
    assert dataset_label("text:/data/my notes.v2.txt") == "text-my-notes.v2"
    assert dataset_label("npz:/x/seqs.npz") == "npz-seqs"
    assert dataset_label("arrays:0123abcd") == "arrays-0123abcd"
    assert dataset_label("mnist01") == "mnist01"


# ---- .npz files and arrays ----


def test_npz_bits_and_words_give_the_same_batches(tmp_path: Path) -> None:
    rng = np.random.default_rng(3)
    bits = rng.integers(0, 2, (60, 5, 3))
    words = bits @ np.array([4, 2, 1])
    scored = rng.integers(0, 2, (60, 4)).astype(bool)
    np.savez(tmp_path / "bits.npz", inputs=bits.astype(np.uint8), scored=scored)
    np.savez(tmp_path / "words.npz", inputs=words, word_bits=3, scored=scored)
    a = create(f"npz:{tmp_path / 'bits.npz'}", batch_size=7)
    b = create(f"npz:{tmp_path / 'words.npz'}", batch_size=7)
    assert (a.input_size, a.sequence_length) == (3, 5)
    # Default split: a shuffle seeded by SPLIT_SEED, 3 validate (5 % of 60), 3 test, 54 train, same for every file.
    assert [a.split_size(s) for s in ("train", "validate", "test")] == [54, 3, 3]
    expected_stage = np.repeat([0, 1, 2], [54, 3, 3])[np.random.default_rng(0).permutation(60)]
    assert np.array_equal(a.table.stage, expected_stage)
    for stage in ("train", "validate"):
        x, y = a.batch(stage), b.batch(stage)
        assert torch.equal(x.inputs, y.inputs) and torch.equal(x.targets, y.inputs) and torch.equal(x.scored, y.scored)
        assert x.labels is None and x.postselected is None
    rows = np.flatnonzero(expected_stage == 2)
    (test,) = list(a.split_batches("test", batch_size=10))
    assert torch.equal(test.inputs, torch.from_numpy(bits[rows]).long())
    assert torch.equal(test.scored, torch.from_numpy(scored[rows]))


def test_npz_explicit_split_and_targets(tmp_path: Path) -> None:
    inputs = np.arange(12).reshape(4, 3) % 4
    targets = (inputs + 1) % 4
    np.savez(tmp_path / "s.npz", inputs=inputs, targets=targets, word_bits=2,
             split=np.array(["test", "train", "validate", "train"]))
    dataset = create(f"npz:{tmp_path / 's.npz'}", batch_size=2)
    assert dataset.table.stage.tolist() == [2, 0, 1, 0]
    (batch,) = list(dataset.split_batches("train", batch_size=5))
    assert bits_to_int(batch.inputs).tolist() == inputs[[1, 3]].tolist()
    assert bits_to_int(batch.targets).tolist() == targets[[1, 3]].tolist()


def test_label_layout_is_the_originals() -> None:
    # 5 classes in 2-bit words: 3 label bits, K = 2 words; P = 3 content words; L = P + K - 1 = 4.
    content = np.array([[[1, 1], [0, 1], [1, 0]]] * 5)
    data = from_arrays(content, labels=[0, 1, 2, 3, 4], classes=["a", "b", "c", "d", "e"], split=[0, 0, 1, 2, 0])
    assert (data.input_size, data.sequence_length, data.classes) == (2, 4, ("a", "b", "c", "d", "e"))
    dataset = data.create()
    (batch,) = list(dataset.split_batches("train", batch_size=8))  # rows 0, 1, 4: classes 0, 1, 4
    assert bits_to_int(batch.inputs).tolist() == [[3, 1, 2, 0]] * 3
    # Targets: P-1 = 2 zero words, then the class in 4 bits (2 words), most significant first: 4 = 0b0100.
    assert bits_to_int(batch.targets).tolist() == [[0, 0, 0, 0], [0, 0, 0, 1], [0, 0, 1, 0]]
    # Scored steps t = P-2 .. P+K-3 = 1 .. 2 of L-1 = 3.
    assert batch.scored.tolist() == [[False, True, True]] * 3
    assert batch.labels.tolist() == [0, 1, 4]
    assert dataset.decode_labels(batch.targets[:, 1:]).tolist() == [0, 1, 4]
    # The label words of a class are the ones its samples' targets end with (evaluate's exact class accuracy).
    words = dataset.label_words(torch.tensor([0, 1, 4]))
    assert torch.equal(words, batch.targets[:, -2:])
    invalid = batch.targets[:, 1:].clone()
    invalid[:, -2:] = 1  # code 15: no class
    assert dataset.decode_labels(invalid).tolist() == [-1, -1, -1]
    assert "gold b  model a  (wrong)" in dataset.format(batch.inputs[1], batch.targets[1], batch.targets[0, 1:])


def _bad_arrays() -> list[tuple[dict[str, object], str]]:
    bits = np.zeros((10, 4, 2), dtype=np.int64)
    return [
        ({"inputs": bits + 2}, "array `inputs` has the value 2 at (0, 0, 0); bits must be 0 or 1"),
        ({"inputs": bits.astype(float)}, "array `inputs` has dtype float64; it must hold integers or booleans"),
        ({"inputs": bits, "targets": bits[:, :3]}, "array `targets` has 10 x 3 words, `inputs` 10 x 4"),
        ({"inputs": bits, "scored": np.ones((10, 4), bool)}, "array `scored` has shape (10, 4); it must be N x (L-1)"),
        ({"inputs": np.zeros((10, 4), np.int64)}, "give their width as `word_bits`"),
        ({"inputs": np.full((10, 4), 8), "word_bits": 3}, "has the word 8 at (0, 0); words of 3 bits are 0 to 7"),
        ({"inputs": bits, "word_bits": 3}, "array `inputs` has words of 2 bits, but `word_bits` is 3"),
        ({"inputs": bits, "split": np.zeros(10, np.int64)}, "the validate split is empty (train 10, validate 0"),
        ({"inputs": bits, "split": np.array(["train"] * 9 + ["dev"])}, "array `split` holds 'dev'; allowed: train"),
        ({"inputs": bits, "labels": np.zeros(10, np.int64)}, "`labels` and `classes` go together"),
        ({"inputs": bits, "labels": np.full(10, 2), "classes": np.array(["x", "y"])}, "holds 2; allowed: 0 to 1"),
        ({"inputs": bits, "target": bits}, "unknown array `target`; allowed: inputs, targets, scored"),
        ({"targets": bits}, "array `inputs` is missing"),
    ]


@pytest.mark.parametrize(("arrays", "message"), _bad_arrays())
def test_bad_npz_files_are_one_line_errors(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], arrays: dict[str, object], message: str
) -> None:
    path = tmp_path / "bad.npz"
    np.savez(path, **arrays)  # type: ignore[arg-type]
    line = one_line_error(capsys, ["train", "--dataset", f"npz:{path}", "--out", str(tmp_path)])
    assert line.startswith(f"qrnn: error: npz file {path}: ") and message in line
    assert not (tmp_path / "checkpoints").exists()


def test_ragged_and_foreign_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    np.savez(tmp_path / "ragged.npz", inputs=np.array([[1, 0], [1]], dtype=object))
    line = one_line_error(capsys, ["train", "--dataset", f"npz:{tmp_path / 'ragged.npz'}"])
    assert "array `inputs` is ragged or holds Python objects, which are never loaded" in line
    (tmp_path / "x.npz").write_text("not a zip")
    line = one_line_error(capsys, ["train", "--dataset", f"npz:{tmp_path / 'x.npz'}"])
    assert "is not a readable .npz archive" in line
    with pytest.raises(QRNNError, match=r"from_arrays: `inputs` is ragged"):
        from_arrays([[[0, 1], [1, 0]], [[0, 1]]])


# ---- training, resuming and evaluating ----


def test_text_run_resumes_evaluates_and_refuses_a_changed_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "t.txt"
    path.write_text(TEXT)
    first = qrnn.train(dataset=f"text:{path}", epochs=2, validate_every=2, sentence_length=5, batch_size=2,
                       num_validation_samples=0, out=str(tmp_path / "run"))
    assert first.final_checkpoint is not None and "checkpoint--text-t--" in first.final_checkpoint
    payload = read_checkpoint(first.final_checkpoint)
    assert payload["dataset_file"]["path"] == str(path) and payload["config"]["dataset"] == f"text:{path}"
    second = resume(first.final_checkpoint, epochs=3)
    assert second.epoch == 3
    report = qrnn.evaluate(second.final_checkpoint, samples=4)
    # The test part of this short text holds fewer than 4 windows: the whole split is scored.
    windows = get_dataset(f"text:{path}", sentence_length=5, batch_size=2).split_size("test")
    assert report.dataset == f"text:{path}" and report.samples == min(4, windows)
    assert 0 <= report.character_error_rate <= 1
    path.write_text(TEXT + "x")
    capsys.readouterr()  # the runs above printed their progress
    for argv in (["evaluate", second.final_checkpoint], ["resume", second.final_checkpoint, "--epochs", "5"]):
        line = one_line_error(capsys, argv)
        assert f"dataset text:{path} has changed since checkpoint {second.final_checkpoint} was written" in line
    path.unlink()
    assert "text file" in one_line_error(capsys, ["evaluate", second.final_checkpoint])


def test_from_arrays_trains_and_evaluates_in_process(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    inputs = torch.from_numpy(rng.integers(0, 2, (30, 6, 2)))
    data = from_arrays(inputs)
    assert data.name == from_arrays(inputs.numpy().tolist()).name  # named by the arrays' content
    assert data.name.startswith("arrays:") and lookup(data.name).cls is file_datasets.SequenceDataset
    result = qrnn.train(dataset=data, epochs=3, validate_every=3, batch_size=4, num_validation_samples=0,
                        out=str(tmp_path))
    report = qrnn.evaluate(result.final_checkpoint, stage="validate", samples=3)
    assert report.dataset == data.name and report.samples == min(3, data.split_sizes()["validate"])
    with pytest.raises(QRNNError, match="lives in this process only: train it on one shard"):
        qrnn.train(dataset=data, num_shards=2, epochs=1, out=str(tmp_path))
    with pytest.raises(QRNNError, match="made by qrnn.datasets.from_arrays in another process"):
        lookup("arrays:00000000deadbeef")
    with pytest.raises(QRNNError, match="dataset must be a name"):
        qrnn.train(dataset=42, epochs=1)
