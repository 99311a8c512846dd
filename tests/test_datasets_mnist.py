"""The MNIST datasets (`qrnn.datasets.mnist`) on the shipped resources, and their builder on a small
subset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from qrnn.bits import int_to_bits
from qrnn.datasets import mnist, mnist_build, resources
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
def test_batches_have_the_layout_of_the_module_docstring(name: str) -> None:
    dataset = make(name, batch_size=3)
    info = type(dataset).info()
    assert (info.input_size, info.sequence_length) == (dataset.input_size, dataset.sequence_length)
    width, length = dataset.input_size, dataset.sequence_length
    size = 3 * len(dataset.digits)
    for stage in STAGES:
        batch = dataset.batch(stage)
        assert batch.inputs.shape == batch.targets.shape == (size, length, width)
        assert batch.scored.shape == (size, length - 1) and batch.scored.dtype == torch.bool
        assert batch.inputs.dtype == batch.targets.dtype == torch.long
        assert set(batch.inputs.unique().tolist()) <= {0, 1} and set(batch.targets.unique().tolist()) <= {
            0,
            1,
        }
        if dataset.classes is None:  # mnist01-gen: next-pixel prediction, everything scored
            assert torch.equal(batch.inputs, batch.targets) and bool(batch.scored.all())
            assert torch.equal(batch.inputs[:, 0], int_to_bits(torch.tensor([0, 0, 0, 1, 1, 1]), 2))
            continue
        content, labels = dataset.content_steps(), dataset.label_steps()
        # The original's layout: content, one zero word, the label words; the label steps alone are scored.
        assert content + 1 + labels == length
        assert not batch.scored[:, :content].any() and batch.scored[:, content:].all()
        assert not batch.inputs[:, content:].any() and not batch.targets[:, : content + 1].any()
        expected = torch.tensor(dataset.class_of_digit).repeat_interleave(3)
        assert torch.equal(dataset.decode_labels(batch.targets[:, 1:]), expected)


def test_sequence_lengths_and_widths_of_each_family() -> None:
    # (input bits, length): pixels + a zero word + one label word, PCA p + 1 + ceil(4 / r), UMAP r + 1 + ceil(4 / D).
    assert (make("mnist01").input_size, make("mnist01").sequence_length) == (2, 102)
    assert (make("mnist8-ds-lrg").input_size, make("mnist8-ds-lrg").sequence_length) == (3, 402)
    assert (make("mnist-even-odd").input_size, make("mnist-even-odd").sequence_length) == (2, 102)
    assert (make("mnist01-gen").input_size, make("mnist01-gen").sequence_length) == (2, 100)
    assert (make("mnist-pca-r3-p5").input_size, make("mnist-pca-r3-p5").sequence_length) == (3, 8)
    assert (make("mnist-pca-r4-p8").input_size, make("mnist-pca-r4-p8").sequence_length) == (4, 10)
    assert (make("mnist-umap-d2-r4").input_size, make("mnist-umap-d2-r4").sequence_length) == (2, 7)
    assert (make("mnist-umap-d3-r8").input_size, make("mnist-umap-d3-r8").sequence_length) == (3, 11)


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
            assert data[f"{split}_bits"].shape == (counts[index].sum(), 2 * side * side // 8)
            assert np.bincount(data[f"{split}_labels"], minlength=10).tolist() == counts[index].tolist()
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
    assert resources.load_resource("mnist-px10.npz")["test_labels"][0] == 7
    words = mnist._pixel_words("mnist-px10.npz", "test", np.array([0]), 3)[0].reshape(10, 10, 3)
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
    resources.load_resource.cache_clear()
    resources.load_resource_array.cache_clear()
    yield tmp_path
    resources.load_resource.cache_clear()
    resources.load_resource_array.cache_clear()


def test_missing_resource_is_one_line_before_any_work(data_dir: Path) -> None:
    with pytest.raises(QRNNError, match=r"mnist-px20-ds.npz is missing; rebuild it with: .*qrnn data build"):
        lookup("mnist01-ds-lrg").check_options(sentence_length=0, batch_size=1, num_shards=1)
    assert "resource missing" in lookup("mnist-pca-r2-p2").cls.info().splits


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
