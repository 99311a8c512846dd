"""The MNIST datasets (`qrnn.datasets.mnist`) on the shipped resources, and their builder on a small
subset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from qrnn.bits import int_to_bits
from qrnn.datasets import mnist, mnist_build, pipeline, resources
from qrnn.datasets.base import STAGES, dataset_names, lookup
from qrnn.errors import QRNNError

MNIST_NAMES = [name for name in dataset_names() if name.startswith("mnist")]
# MNIST's images per digit: the 60000 training and 10000 test images.
TRAINING_PER_DIGIT = (5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949)
TEST_PER_DIGIT = (980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009)


def make(
    name: str, batch_size: int = 2, shard: int = 0, num_shards: int = 1, seed: int = 0
) -> mnist.MnistDataset:
    """A dataset instance by name."""
    dataset = lookup(name).create(
        sentence_length=0, batch_size=batch_size, shard=shard, num_shards=num_shards, seed=seed
    )
    assert isinstance(dataset, mnist.MnistDataset)
    return dataset


def test_every_original_name_is_registered() -> None:
    expected = {
        f"{stem}{suffix}" for stem in ("mnist01", "mnist36", "mnist8") for suffix in ("", "-ds", "-ds-lrg")
    }
    expected |= {"mnist-even-odd", "mnist01-gen"}
    expected |= {f"mnist-pca-r{r}-p{p}" for r in (2, 3, 4) for p in (2, 5, 8)}
    expected |= {f"mnist-umap-d{d}-r{r}" for d in (2, 3, 4) for r in (2, 3, 4, 5, 8)}
    assert set(MNIST_NAMES) == expected


@pytest.mark.parametrize("name", MNIST_NAMES)
def test_batches_have_the_original_layout(name: str) -> None:
    dataset = make(name, batch_size=3)
    info = type(dataset).info()
    assert (info.input_size, info.sequence_length) == (dataset.input_size, dataset.sequence_length)
    width, length = dataset.input_size, dataset.sequence_length
    size = 3 * len(dataset.digits)
    for stage in STAGES:
        batch = dataset.batch(stage)
        assert batch.inputs.shape == batch.targets.shape == (size, length, width)
        assert batch.scored.shape == batch.postselected.shape == (size, length - 1)
        assert batch.scored.dtype == batch.postselected.dtype == torch.bool
        assert batch.inputs.dtype == batch.targets.dtype == torch.long
        assert set(batch.inputs.unique().tolist()) <= {0, 1} and set(batch.targets.unique().tolist()) <= {0, 1}
        if dataset.classes is None:  # mnist01-gen: next-pixel prediction, all scored, nothing postselected
            assert torch.equal(batch.inputs, batch.targets) and bool(batch.scored.all())
            assert not batch.postselected.any() and batch.labels is None
            assert torch.equal(batch.inputs[:, 0], int_to_bits(torch.tensor([0, 0, 0, 1, 1, 1]), 2))
            continue
        content, labels = dataset.content_steps(), dataset.label_steps()
        pixels = isinstance(dataset, mnist.MnistPixels)
        # Pixels: L = P; codes: L = P + K - 1. The last K target words are the label, the last K steps scored.
        assert length == (content if pixels else content + labels - 1)
        assert not batch.scored[:, : length - 1 - labels].any() and batch.scored[:, length - 1 - labels :].all()
        assert torch.equal(batch.postselected, ~batch.scored)
        assert not batch.inputs[:, content:].any() and not batch.targets[:, : length - labels].any()
        expected = torch.tensor(dataset.class_of_digit).repeat_interleave(3)
        assert torch.equal(batch.labels, expected)
        assert torch.equal(batch.targets[:, length - labels :], dataset.label_words(expected))
        assert torch.equal(dataset.decode_labels(batch.targets[:, 1:]), expected)


# The original's facts (RVQE/datasets/mnist*.py at 400a5eb): word width, L, the scored steps, the digits.
ORIGINAL_FACTS = {
    "mnist01": (2, 100, [98], (0, 1)),
    "mnist36-ds": (2, 100, [98], (3, 6)),
    "mnist01-ds-lrg": (2, 400, [398], (0, 1)),
    "mnist8": (3, 100, [97, 98], tuple(range(9))),
    "mnist8-ds": (3, 100, [98], tuple(range(8))),
    "mnist8-ds-lrg": (3, 400, [398], tuple(range(8))),
    "mnist-even-odd": (2, 100, [98], tuple(range(10))),
    "mnist01-gen": (2, 100, list(range(99)), (0, 1)),
    "mnist-pca-r2-p8": (2, 9, [6, 7], tuple(range(10))),
    "mnist-pca-r3-p5": (3, 6, [3, 4], tuple(range(10))),
    "mnist-pca-r4-p2": (4, 2, [0], tuple(range(10))),
    "mnist-umap-d2-r4": (2, 5, [2, 3], tuple(range(10))),
    "mnist-umap-d3-r8": (3, 9, [6, 7], tuple(range(10))),
    "mnist-umap-d4-r3": (4, 3, [1], tuple(range(10))),
}


@pytest.mark.parametrize("name", sorted(ORIGINAL_FACTS))
def test_width_length_scored_steps_and_digits_are_the_originals(name: str) -> None:
    width, length, scored, digits = ORIGINAL_FACTS[name]
    dataset = make(name, batch_size=1)
    assert (dataset.input_size, dataset.sequence_length, dataset.digits) == (width, length, digits)
    assert torch.nonzero(dataset.batch("validate").scored[0]).flatten().tolist() == scored


def test_mnist8_label_words_row_by_row() -> None:
    # 9 classes: 4 bits left-padded to two 3-bit words [0, 0, b3], [b2, b1, b0]; digit 8 is [0, 0, 1], [0, 0, 0].
    batch = make("mnist8", batch_size=1).batch("test")
    assert batch.targets.shape == (9, 100, 3) and not batch.targets[:, :98].any()
    assert batch.targets[8, 98:].tolist() == [[0, 0, 1], [0, 0, 0]]
    assert batch.targets[5, 98:].tolist() == [[0, 0, 0], [1, 0, 1]]


def _top_bits(code: int, bits: int) -> list[int]:
    """The top `bits` bits of an 8-bit code, most significant first."""
    return [int(code) >> (7 - bit) & 1 for bit in range(bits)]


def test_code_datasets_rows_in_the_original_layout() -> None:
    umap_data = resources.load_resource(mnist_build.UMAP_RESOURCE)
    dataset = make("mnist-umap-d2-r4")  # P = 4 bit planes, K = 2 words of 2 bits, L = 5
    whole = next(iter(dataset.split_batches("test", 10_000)))
    row = int(np.flatnonzero(umap_data["test_labels"] == 7)[0])
    planes = np.array([_top_bits(code, 4) for code in umap_data["test_d2"][row]]).T.tolist()
    assert whole.inputs[row].tolist() == [*planes, [0, 0]]
    assert whole.targets[row].tolist() == [[0, 0], [0, 0], [0, 0], [0, 1], [1, 1]]  # 7 = 01 11
    assert whole.labels[row] == 7 and whole.scored[row].tolist() == [False, False, True, True]
    pca = make("mnist-pca-r3-p2")  # P = 2 codes, K = 2 words of 3 bits, L = 3
    whole = next(iter(pca.split_batches("test", 5)))
    codes = resources.load_resource(mnist_build.PCA_RESOURCE)["test_codes"][0]
    assert whole.inputs[0].tolist() == [_top_bits(codes[0], 3), _top_bits(codes[1], 3), [0, 0, 0]]
    assert whole.targets[0].tolist() == [[0, 0, 0]] * 3  # the first test row is a 0
    assert whole.scored[0].tolist() == [True, True]


def test_generative_batches_swap_halves_on_odd_shards() -> None:
    even = make("mnist01-gen", batch_size=2, shard=0, num_shards=2).batch("train")
    odd = make("mnist01-gen", batch_size=2, shard=1, num_shards=2).batch("train")
    assert even.inputs[:, 0].tolist() == [[0, 0], [0, 0], [0, 1], [0, 1]]
    assert odd.inputs[:, 0].tolist() == [[0, 1], [0, 1], [0, 0], [0, 0]]
    assert make("mnist01-gen").resource == "mnist-px10-ds.npz"


def test_split_batches_walk_the_whole_split_in_file_order() -> None:
    dataset = make("mnist36", batch_size=1, shard=1, num_shards=3)
    assert dataset.split_size("test") == 1010 + 958
    batches = list(dataset.split_batches("test", 500))
    assert [len(batch.labels) for batch in batches] == [500, 500, 500, 468]
    assert torch.cat([batch.labels for batch in batches]).tolist() == [0] * 1010 + [1] * 958
    data = resources.load_resource("mnist-px10.npz")
    rows = np.flatnonzero(np.isin(data["test_labels"], (3, 6)))
    assert torch.equal(batches[0].inputs[0], torch.from_numpy(mnist.pixel_lanes(data["test_words"][rows[0]], 2)))
    again = list(make("mnist36", seed=9).split_batches("test", 500))
    assert all(torch.equal(a.inputs, b.inputs) for a, b in zip(batches, again, strict=True))
    with pytest.raises(QRNNError, match="no fixed"):
        next(iter(lookup("simple-seq").create(sentence_length=5, batch_size=1).split_batches("test", 2)))


def test_pixel_lanes_read_bit_2_as_lane_0() -> None:
    words = np.array([4, 2, 1, 6, 7, 0], dtype=np.uint8)
    assert mnist.pixel_lanes(words, 3).tolist() == [[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [1, 1, 1], [0, 0, 0]]
    assert mnist.pixel_lanes(words, 2).tolist() == [[1, 0], [0, 1], [0, 0], [1, 1], [1, 1], [0, 0]]


def test_labels_round_trip_and_invalid_codes_decode_to_minus_one() -> None:
    dataset = make("mnist-pca-r3-p2")  # 10 classes in 2 words of 3 bits: codes 10..63 are no class
    words = torch.zeros(4, dataset.sequence_length - 1, 3, dtype=torch.long)
    words[:, -2:] = dataset.label_words(torch.tensor([0, 9, 5, 3]))
    assert dataset.decode_labels(words).tolist() == [0, 9, 5, 3]
    words[0, -2:] = int_to_bits(torch.tensor(10), 6).reshape(2, 3)
    words[1, -2:] = 1
    assert dataset.decode_labels(words).tolist() == [-1, -1, 5, 3]
    # The label is left-padded: class 1 of mnist01 is the word [0, 1].
    assert make("mnist01").label_words(torch.tensor([1])).tolist() == [[[0, 1]]]
    even_odd = make("mnist-even-odd")
    assert even_odd.classes == ("even", "odd")
    targets = even_odd.batch("train").targets[:, 1:]
    assert even_odd.decode_labels(targets).tolist() == [digit % 2 for digit in range(10) for _ in range(2)]
    with pytest.raises(ValueError, match="expected words of shape"):
        dataset.decode_labels(words[:, 1:])


def test_same_seed_same_batches_other_seed_or_shard_other_images() -> None:
    first, again = make("mnist36", seed=5), make("mnist36", seed=5)
    for stage in ("train", "test", "train"):
        assert torch.equal(first.batch(stage).inputs, again.batch(stage).inputs)
    assert not torch.equal(
        make("mnist36", seed=6).batch("train").inputs, make("mnist36", seed=5).batch("train").inputs
    )
    # Shards own disjoint slices of each digit's images.
    shard_images = [
        make("mnist01", batch_size=50, shard=shard, num_shards=2).draw("validate")[0] for shard in (0, 1)
    ]
    assert not set(shard_images[0].tolist()) & set(shard_images[1].tolist())


def test_shuffled_epochs_show_every_image_of_a_shard_once_per_epoch() -> None:
    dataset = make(
        "mnist01", batch_size=100, shard=1, num_shards=2
    )  # 250 validation images per digit and shard
    drawn = np.concatenate(
        [dataset._sampler("validate", 1).draw(125, dataset.generator("validate")) for _ in range(2)]
    )
    labels = resources.load_resource(dataset.resource)["validate_labels"]
    assert sorted(drawn.tolist()) == np.flatnonzero(labels == 1)[1::2].tolist()


def test_split_sizes_per_digit() -> None:
    for filename, (_, side, digits) in mnist_build.PIXEL_RESOURCES.items():
        data = resources.load_resource(filename)
        counts = data["counts"]
        for digit in range(10):
            held = digit in digits
            assert counts[0, digit] == (TRAINING_PER_DIGIT[digit] - 500 if held else 0)
            assert counts[1, digit] == (500 if held else 0)
            assert counts[2, digit] == (TEST_PER_DIGIT[digit] if held else 0)
        for index, split in enumerate(STAGES):
            assert data[f"{split}_words"].shape == (counts[index].sum(), side * side)
            assert data[f"{split}_words"].dtype == np.uint8 and data[f"{split}_words"].max() <= 7
            # Format 2: rows grouped by digit, ascending.
            assert data[f"{split}_labels"].tolist() == np.repeat(np.arange(10), counts[index]).tolist()
        assert data["format_version"].tolist() == [2] and data["centroids"].shape == (10, side * side)
    for filename in (mnist_build.PCA_RESOURCE, mnist_build.UMAP_RESOURCE):
        counts = resources.load_resource(filename)["counts"]
        assert counts.tolist() == [[n - 500 for n in TRAINING_PER_DIGIT], [500] * 10, list(TEST_PER_DIGIT)]
    assert "train 11,665 / validate 1,000 / test 2,115 images" == type(make("mnist01")).info().splits


def test_first_test_image_is_the_seven_checked_by_hand() -> None:
    # MNIST's first test image is a 7. Its central 20x20 crop (rows and columns 4-23 of the 28x28 image) has,
    # in crop coordinates, the top bar in rows 3-5 and the stroke descending to the bottom left; the 10x10
    # block (r, c) averages crop rows 2r, 2r+1 and columns 2c, 2c+1. Blocks checked from the raw intensities:
    #   (0, 0): all 0                  -> background, bit 1
    #   (1, 1): 0, 0, 0.32, 0.72       -> mean 0.26 < 0.4, background (the faint start of the bar), bit 1
    #   (2, 1): 0.86, 0.99, 0.26, 0.44 -> mean 0.64, ink, bit 0
    #   (3, 8): 0.99, 0.41, 0.81, 0.07 -> mean 0.57, ink, bit 0
    #   (4, 8): 0.32, 0, 0.17, 0       -> mean 0.12, background, bit 1
    #   (9, 4): 0.87, 0.99, 0.99, 0.99 -> mean 0.96, ink, bit 0
    first_seven = np.flatnonzero(resources.load_resource("mnist-px10.npz")["test_labels"] == 7)[:1]
    words = mnist._pixel_words("mnist-px10.npz", "test", first_seven, 3)[0].reshape(10, 10, 3)
    upright = words[:, :, 0]
    expected = {(0, 0): 1, (1, 1): 1, (2, 1): 0, (3, 8): 0, (4, 8): 1, (9, 4): 0}
    assert {position: int(upright[position]) for position in expected} == expected
    # The bar: row 2 is ink from column 1 to 8; lane 1 is the transpose of lane 0.
    assert upright[2].tolist() == [1, 0, 0, 0, 0, 0, 0, 0, 0, 1]
    assert torch.equal(words[:, :, 1], upright.T)
    # Rotated 135 degrees counter-clockwise, the bar runs from the bottom left up to the centre (top left to
    # bottom right direction) and the descending stroke becomes horizontal near the top.
    rotated = words[:, :, 2]
    assert rotated[9, 5] == 0 and rotated[0, 0] == 1 and rotated[9, 9] == 1
    assert rotated[2, 4:10].tolist() == [0, 0, 0, 0, 0, 0]


def test_formatter_shows_the_image_and_both_labels() -> None:
    dataset = make("mnist36", batch_size=1)
    batch = dataset.batch("test")
    measured = batch.targets[1, 1:].clone()  # the second sample is a 6; answer "3" for it
    measured[-1] = torch.tensor([0, 0])
    picture = dataset.format(batch.inputs[1], batch.targets[1], measured).splitlines()
    assert len(picture) == 11 and all(len(row) == 10 and set(row) <= {"█", "·"} for row in picture[:10])
    ink = "".join(picture[:10]).count("█")
    assert ink == int((batch.inputs[1, :100, 0] == 0).sum()) and ink > 5
    assert picture[10] == "gold 6  model 3  (wrong)"
    generative = make("mnist01-gen", batch_size=1)
    batch = generative.batch("train")
    lines = generative.format(batch.inputs[1], batch.targets[1], batch.targets[1, 1:]).splitlines()
    assert lines[0].split() == ["gold", "model"] and lines[1][0] == "1" and lines[1][12] == "1"
    assert all(left == right for left, right in (line.split("  ") for line in lines[1:]))
    umap_dataset = make("mnist-umap-d2-r4")
    batch = umap_dataset.batch("validate")
    text = umap_dataset.format(batch.inputs[0], batch.targets[0], batch.targets[0, 1:])
    assert text.endswith("gold 0  model 0  (right)") and "UMAP coordinates, top 4 bits:" in text


def test_check_options_rejects_bad_batch_and_too_many_shards() -> None:
    entry = lookup("mnist8-ds-lrg")
    entry.check_options(sentence_length=0, batch_size=1, num_shards=500)  # the length is ignored
    with pytest.raises(QRNNError, match="--batch-size must be at least 1"):
        entry.check_options(sentence_length=100, batch_size=0, num_shards=1)
    with pytest.raises(QRNNError, match="--num-shards must be at most 500"):
        entry.check_options(sentence_length=100, batch_size=1, num_shards=501)


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Point the resource loader at an empty temporary folder (caches cleared before and after)."""
    monkeypatch.setattr(resources, "DATA_DIR", tmp_path)
    monkeypatch.delenv(resources.DATA_DIR_VARIABLE, raising=False)
    resources.clear_cache()
    yield tmp_path
    resources.clear_cache()


def test_missing_resource_is_one_line_before_any_work(data_dir: Path) -> None:
    with pytest.raises(QRNNError, match=r"mnist-px20-ds.npz is missing; rebuild it with: .*qrnn data build"):
        lookup("mnist01-ds-lrg").check_options(sentence_length=0, batch_size=1, num_shards=1)
    assert "resource missing" in lookup("mnist-pca-r2-p2").cls.info().splits


def test_a_resource_of_another_format_is_refused_in_one_line(data_dir: Path) -> None:
    pipeline.write_npz(data_dir / "mnist-px10.npz", {"counts": np.ones((3, 10), dtype=np.int64)})
    with pytest.raises(QRNNError, match=r"mnist-px10.npz has MNIST resource format 1 .*qrnn data import-original"):
        lookup("mnist01").check_options(sentence_length=0, batch_size=1, num_shards=1)
    pipeline.write_npz(data_dir / "mnist-pca.npz", {"format_version": np.array([3])})
    with pytest.raises(QRNNError, match=r"format \[3\], but this qrnn reads format 2; rebuild"):
        make("mnist-pca-r2-p2").batch("train")
    assert "old format" in lookup("mnist01").cls.info().splits


def test_sampler_state_round_trips_for_exact_resume() -> None:
    from qrnn.datasets import get_dataset

    first = get_dataset("mnist01", sentence_length=0, batch_size=3, shard=0, num_shards=1, seed=5)
    for _ in range(3):
        first.batch("train")
    state, generator_state = first.state_dict(), first.generator("train").get_state()
    second = get_dataset("mnist01", sentence_length=0, batch_size=3, shard=0, num_shards=1, seed=5)
    second.load_state_dict(state)
    second.generator("train").set_state(generator_state)
    for _ in range(4):
        assert torch.equal(first.batch("train").inputs, second.batch("train").inputs)
