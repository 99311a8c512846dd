"""The MNIST datasets of the original implementation: images pixel by pixel, PCA codes, UMAP codes.

Every dataset reads one precomputed resource in MNIST resource format 2 (`load_mnist_resource`; built by
`mnist_build`, or imported from the original's files by `qrnn data import-original`): per split the digit of
each row (rows grouped by digit 0..9, in file order within a digit) and the row's content: 3-bit pixel words
(bit 2, value 4, is lane 0), 8 PCA codes, or D UMAP codes.

Sequence layout, scoring and labels, as the original lays them out (its `RVQE/datasets/mnist*.py`). The label
is the class index (the digit's position in the dataset's digit list; the parity for `mnist-even-odd`) in
binary with ceil(log2 #classes) bits, left-padded with zeros to K x I bits, K = the fewest I-bit words that
hold them, most significant bit first. P is the number of content words.
- Pixel datasets: the sequence is the image itself, L = P (100 or 400 pixel words). The targets are P-K zero
  words, then the K label words. The scored steps are the last K, P-1-K .. P-2: the first label word is
  predicted from the step that feeds pixel P-K-1, and the last pixel is never fed.
- PCA and UMAP datasets: the inputs are the P content words, then K-1 zero words, L = P+K-1. The targets are
  P-1 zero words, then the K label words. The scored steps are again the last K, P-2 .. P+K-3: the first label
  word is predicted from the step that feeds content word P-2 (counting from 0), so with K = 1 the last
  content word is never fed (the original's quirk, kept).
In both, only the scored steps count in the loss and the error rate, and every other step is postselected on
its (zero) target in validation (`Batch.postselected` = ~`scored`). `decode_labels` reads the last K words
back and returns -1 for a code outside the classes. `mnist01-gen` is generative (see `MnistGenerative`).

Sampling (a documented deviation: the original draws every image with replacement from the whole split on
every shard): shuffled epochs. Each shard owns a disjoint slice of every digit's images in each split (image
k of a digit belongs to shard k mod num_shards) and goes through its slice in a random order, drawing a fresh
order when it is used up, so within a shard every image is seen once per epoch and shards never share
images. The random orders come from the shard's per-stage generator (`Dataset.generator`). A batch holds
`batch_size` images of each digit, digit after digit. `split_batches` instead walks a whole split once, in
the resource's order, for evaluation.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Iterator
from typing import ClassVar

import numpy as np
import torch

from qrnn.bits import bits_to_int, int_to_bits
from qrnn.datasets import pipeline
from qrnn.datasets.base import STAGES, Batch, Dataset, DatasetInfo, register
from qrnn.datasets.mnist_build import (
    CODE_BITS,
    PCA_RESOURCE,
    PIXEL_RESOURCES,
    UMAP_RESOURCE,
    build_mnist,
)
from qrnn.datasets.resources import load_resource, load_resource_array, resource_path
from qrnn.errors import QRNNError

INK, BACKGROUND = "█", "·"
DIGIT_NAMES = tuple(str(digit) for digit in range(10))
# The MNIST resource format the datasets read (see the module docstring and `qrnn/data/README.md`).
RESOURCE_FORMAT = 2
# Bits of a pixel word in a pixel resource: bit 2 (value 4) is lane 0, bit 1 lane 1, bit 0 lane 2.
PIXEL_WORD_BITS = 3


def _format_error(filename: str, found: object) -> QRNNError:
    """The one-line error for a resource in another format than `RESOURCE_FORMAT`."""
    return QRNNError(
        f"dataset resource {resource_path(filename)} has MNIST resource format {found}, but this qrnn reads "
        f"format {RESOURCE_FORMAT}; rebuild it with qrnn data build --only mnist, or re-import the original's "
        "files with qrnn data import-original"
    )


def check_resource_format(filename: str) -> None:
    """Raise a one-line `QRNNError` unless the resource `filename` is in MNIST resource format 2 (reads only its
    small `format_version` member)."""
    try:
        version = load_resource_array(filename, "format_version")
    except QRNNError as error:
        if "corrupt (KeyError)" not in str(error):
            raise
        raise _format_error(filename, "1 (no format_version)") from None
    if version.shape != (1,) or int(version[0]) != RESOURCE_FORMAT:
        raise _format_error(filename, version.tolist())


def load_mnist_resource(filename: str) -> dict[str, np.ndarray]:
    """All arrays of the MNIST resource `filename`, after checking its format."""
    check_resource_format(filename)
    return load_resource(filename)


def label_bits(num_classes: int) -> int:
    """Bits of a class index: ceil(log2 #classes), at least 1."""
    return max(1, math.ceil(math.log2(num_classes)))


def count_label_words(num_classes: int, word_bits: int) -> int:
    """K, the number of `word_bits`-bit words that hold a class index."""
    return math.ceil(label_bits(num_classes) / word_bits)


def encode_label_words(classes: torch.Tensor, label_steps: int, word_bits: int) -> torch.Tensor:
    """Class indices (B) as K label words (B x K x I bits): the index in binary, left-padded with zeros to K x I
    bits, most significant bit first (the original's `pad_and_chunk` of the class index)."""
    return int_to_bits(classes, label_steps * word_bits).reshape(len(classes), label_steps, word_bits)


class _ShuffledEpochs:
    """A pool of image indices handed out in shuffled epochs: a random order of the whole pool, drawn afresh
    whenever the previous one is used up."""

    def __init__(self, pool: np.ndarray) -> None:
        self.pool = pool
        self.order = pool[:0]
        self.position = 0

    def draw(self, count: int, generator: torch.Generator) -> np.ndarray:
        """The next `count` indices."""
        parts = []
        while count > 0:
            if self.position == len(self.order):
                self.order = self.pool[torch.randperm(len(self.pool), generator=generator).numpy()]
                self.position = 0
            take = min(count, len(self.order) - self.position)
            parts.append(self.order[self.position : self.position + take])
            self.position += take
            count -= take
        return np.concatenate(parts)


class MnistDataset(Dataset):
    """Common machinery of the MNIST datasets: per-digit shuffled-epoch sampling from a resource, whole splits
    in file order, the content-then-label sequence layout (see the module docstring), label decoding and the
    label line of the picture. Each registered name is a small subclass (see `_define`) fixing the class
    attributes below; the family classes turn image indices into content words."""

    # The resource the dataset reads, its digits, and the class index of each digit (e.g. its parity).
    resource: ClassVar[str]
    digits: ClassVar[tuple[int, ...]]
    class_of_digit: ClassVar[tuple[int, ...]]
    classes: ClassVar[tuple[str, ...] | None]
    # Version 2: the original's layouts (issue 9); checkpoints of version 1 used another one.
    layout_version: ClassVar[int] = 2

    def __init__(
        self, *, sentence_length: int, batch_size: int, shard: int = 0, num_shards: int = 1, seed: int = 0
    ) -> None:
        super().__init__(
            sentence_length=sentence_length,
            batch_size=batch_size,
            shard=shard,
            num_shards=num_shards,
            seed=seed,
        )
        self._samplers: dict[tuple[str, int], _ShuffledEpochs] = {}

    @classmethod
    def num_classes(cls) -> int:
        """The number of classes (digits named by a label word, for the generative dataset)."""
        return max(cls.class_of_digit) + 1

    @classmethod
    @abc.abstractmethod
    def word_bits(cls) -> int:
        """I, bits per word."""

    @classmethod
    @abc.abstractmethod
    def content_steps(cls) -> int:
        """P, the number of content words."""

    @abc.abstractmethod
    def content(self, stage: str, indices: np.ndarray) -> torch.Tensor:
        """The content words (B x P x I, long 0/1) of the images at `indices` of `stage`'s split."""

    @abc.abstractmethod
    def picture(self, inputs: torch.Tensor) -> list[str]:
        """Lines showing the content of one sample's inputs (L x I)."""

    @classmethod
    def label_steps(cls) -> int:
        """K, the number of label words."""
        return count_label_words(cls.num_classes(), cls.word_bits())

    @classmethod
    def length(cls) -> int:
        """L: P+K-1 (the code datasets pad the content with K-1 zero words; pixels override it)."""
        return cls.content_steps() + cls.label_steps() - 1

    @classmethod
    def info(cls, **fixed: object) -> DatasetInfo:
        """Bits per word, the fixed sequence length, the split sizes of the dataset's digits (read from the
        resource's small `counts` member only)."""
        try:
            check_resource_format(cls.resource)
            counts = load_resource_array(cls.resource, "counts")[:, list(cls.digits)].sum(axis=1)
            splits = (
                " / ".join(f"{stage} {int(n):,}" for stage, n in zip(STAGES, counts, strict=True)) + " images"
            )
        except QRNNError as error:
            splits = "resource missing (qrnn data build --only mnist)" if "missing" in str(error) else (
                "resource in an old format (qrnn data build --only mnist)"
            )
        return DatasetInfo(input_size=cls.word_bits(), sequence_length=cls.length(), splits=splits)

    @property
    def input_size(self) -> int:
        """Bits per word."""
        return self.word_bits()

    @property
    def sequence_length(self) -> int:
        """L, fixed by the dataset (`--sentence-length` is ignored)."""
        return self.length()

    @classmethod
    def check_options(
        cls, *, sentence_length: int, batch_size: int, num_shards: int, **fixed: object
    ) -> None:
        """The batch size (images per digit) must be positive, the resource readable, and every shard must own
        at least one image of each digit in every split; the sentence length is fixed by the dataset."""
        if batch_size < 1:
            raise QRNNError(f"--batch-size must be at least 1 (images per digit), got {batch_size}")
        fewest = int(load_mnist_resource(cls.resource)["counts"][:, list(cls.digits)].min())
        if num_shards > fewest:
            raise QRNNError(
                f"--num-shards must be at most {fewest} for {cls.name} (the fewest images of one of its "
                f"digits in a split), got {num_shards}"
            )

    def _labels(self, stage: str) -> np.ndarray:
        """The digit of each row of `stage`'s split."""
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; valid stages: {', '.join(STAGES)}")
        return load_mnist_resource(self.resource)[f"{stage}_labels"]

    def _sampler(self, stage: str, digit: int) -> _ShuffledEpochs:
        """This shard's sampler of `digit`'s images in `stage`'s split."""
        key = (stage, digit)
        if key not in self._samplers:
            mine = np.flatnonzero(self._labels(stage) == digit)[self.shard :: self.num_shards]
            if len(mine) == 0:
                raise QRNNError(
                    f"{self.name}: shard {self.shard} of {self.num_shards} owns no image of digit {digit} in "
                    f"the {stage} split; use fewer shards"
                )
            self._samplers[key] = _ShuffledEpochs(mine)
        return self._samplers[key]

    def state_dict(self) -> dict[str, dict[str, torch.Tensor | int]]:
        """Where each sampler stands in its shuffled epoch (plain tensors and ints, keys like "train/3"), so that
        a resumed training draws exactly the images an uninterrupted one would."""
        return {
            f"{stage}/{digit}": {
                "order": torch.from_numpy(sampler.order.astype(np.int64)),
                "position": sampler.position,
            }
            for (stage, digit), sampler in self._samplers.items()
        }

    def load_state_dict(self, state: dict[str, dict[str, torch.Tensor | int]]) -> None:
        """Restore the samplers saved by `state_dict`."""
        for key, saved in state.items():
            stage, digit = key.split("/")
            sampler = self._sampler(stage, int(digit))
            sampler.order = saved["order"].numpy().astype(sampler.pool.dtype)  # type: ignore[union-attr]
            sampler.position = int(saved["position"])

    @property
    def sequences_per_batch(self) -> int:
        """`batch_size` images of each digit."""
        return self.batch_size * len(self.digits)

    def _drawing_order(self) -> tuple[int, ...]:
        """The digits in the order their images fill a batch."""
        return self.digits

    def draw(self, stage: str) -> tuple[np.ndarray, torch.Tensor]:
        """Image indices (into `stage`'s split) and class indices of the next batch: `batch_size` images of
        each digit, digit after digit."""
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; valid stages: {', '.join(STAGES)}")
        generator = self.generator(stage)
        order = self._drawing_order()
        indices = [self._sampler(stage, digit).draw(self.batch_size, generator) for digit in order]
        class_of = dict(zip(self.digits, self.class_of_digit, strict=True))
        classes = torch.tensor([class_of[digit] for digit in order], dtype=torch.long)
        return np.concatenate(indices), classes.repeat_interleave(self.batch_size)

    def split_size(self, stage: str) -> int:
        """The number of images of the dataset's digits in `stage`'s split."""
        return int(np.isin(self._labels(stage), self.digits).sum())

    def split_batches(self, stage: str, batch_size: int) -> Iterator[Batch]:
        """Every image of the dataset's digits in `stage`'s split once, in the resource's order (digit by digit,
        file order within a digit), `batch_size` sequences a batch (the last one may be smaller); independent
        of the shard and its generators."""
        if batch_size < 1:
            raise QRNNError(f"the batch size must be at least 1, got {batch_size}")
        labels = self._labels(stage)
        rows = np.flatnonzero(np.isin(labels, self.digits))
        class_of = np.zeros(10, dtype=np.int64)
        class_of[list(self.digits)] = self.class_of_digit
        for start in range(0, len(rows), batch_size):
            chunk = rows[start : start + batch_size]
            yield self.make_batch(stage, chunk, torch.from_numpy(class_of[labels[chunk]]))

    def label_words(self, classes: torch.Tensor) -> torch.Tensor:
        """Class indices (B) as K label words (B x K x I), left-padded, most significant bit first."""
        return encode_label_words(classes, self.label_steps(), self.input_size)

    def make_batch(self, stage: str, indices: np.ndarray, classes: torch.Tensor) -> Batch:
        """The batch of the images at `indices` of `stage`'s split with class indices `classes`: content (padded
        with zero words to L), targets zero but for the last K label words, the last K steps scored and the
        others postselected (see the module docstring)."""
        content = self.content(stage, indices)
        size, length, labels = content.shape[0], self.sequence_length, self.label_steps()
        inputs = content.new_zeros(size, length, self.input_size)
        inputs[:, : self.content_steps()] = content
        targets = torch.zeros_like(inputs)
        targets[:, length - labels :] = self.label_words(classes)
        scored = torch.zeros(size, length - 1, dtype=torch.bool)
        scored[:, length - 1 - labels :] = True
        return Batch(inputs=inputs, targets=targets, scored=scored, postselected=~scored, labels=classes)

    def batch(self, stage: str) -> Batch:
        """The next batch of `stage`: `batch_size` images of each digit."""
        indices, classes = self.draw(stage)
        return self.make_batch(stage, indices, classes)

    def decode_labels(self, words: torch.Tensor) -> torch.Tensor:
        """Class indices (B) from the last K of B x (L-1) x I words; -1 for a code that is no class."""
        expected = (self.sequence_length - 1, self.input_size)
        if words.dim() != 3 or tuple(words.shape[1:]) != expected:
            raise ValueError(
                f"expected words of shape B x {expected[0]} x {expected[1]}, got {tuple(words.shape)}"
            )
        codes = bits_to_int(words[:, -self.label_steps() :].reshape(words.shape[0], -1).cpu())
        return torch.where(codes < self.num_classes(), codes, torch.full_like(codes, -1))

    def _class_name(self, index: int) -> str:
        """A class's name, or "invalid" for -1."""
        assert self.classes is not None
        return self.classes[index] if index >= 0 else "invalid"

    def format(self, inputs: torch.Tensor, targets: torch.Tensor, measured: torch.Tensor) -> str:
        """The content picture, then the gold and the measured label."""
        gold = int(self.decode_labels(targets[1:].unsqueeze(0))[0])
        predicted = int(self.decode_labels(measured.unsqueeze(0))[0])
        verdict = "right" if gold == predicted else "wrong"
        summary = f"gold {self._class_name(gold)}  model {self._class_name(predicted)}  ({verdict})"
        return "\n".join([*self.picture(inputs), summary])


def _block_picture(bits: torch.Tensor, side: int) -> list[str]:
    """Rows of '█' (ink, bit 0) and '·' (background, bit 1) for side*side pixel bits."""
    grid = bits.reshape(side, side).tolist()
    return ["".join(BACKGROUND if bit else INK for bit in row) for row in grid]


def pixel_lanes(words: np.ndarray, scanlines: int) -> np.ndarray:
    """3-bit pixel words (any shape, values 0..7) as their first `scanlines` lanes (shape + (scanlines,)):
    lane 0 is bit 2 (value 4), lane 1 bit 1, lane 2 bit 0, as the original reads its files."""
    shifts = np.arange(PIXEL_WORD_BITS - 1, PIXEL_WORD_BITS - 1 - scanlines, -1)
    return (words[..., None] >> shifts) & 1


def _pixel_words(resource: str, stage: str, indices: np.ndarray, scanlines: int) -> torch.Tensor:
    """Pixel words (B x side^2 x scanlines) of the images at `indices` of `stage`'s split."""
    words = load_mnist_resource(resource)[f"{stage}_words"][indices]
    return torch.from_numpy(pixel_lanes(words, scanlines).astype(np.int64))


def _pixel_resource(deskewed: bool, side: int) -> str:
    """The resource holding the given pixel variant."""
    for filename, (is_deskewed, resource_side, _) in PIXEL_RESOURCES.items():
        if (is_deskewed, resource_side) == (deskewed, side):
            return filename
    raise ValueError(f"no MNIST pixel resource with deskew={deskewed} and side {side}")


class MnistPixels(MnistDataset):
    """MNIST pixel by pixel (the original's `mnist*` datasets): 10x10 images (20x20 for `-lrg`), deskewed for
    `-ds`, binary; each pixel a word of `scanlines` bits, one per view (lane 0 the image row by row; in the
    shipped files lane 1 its transpose, lane 2 its 135-degree view). The sequence is the image; its last K
    pixel targets are the label words, and only they are scored."""

    scanlines: ClassVar[int]
    side: ClassVar[int]

    @classmethod
    def word_bits(cls) -> int:
        """One bit per scanline."""
        return cls.scanlines

    @classmethod
    def content_steps(cls) -> int:
        """One step per pixel."""
        return cls.side * cls.side

    @classmethod
    def length(cls) -> int:
        """L = P: the label words are the targets of the last K pixels."""
        return cls.content_steps()

    def content(self, stage: str, indices: np.ndarray) -> torch.Tensor:
        """The pixel words."""
        return _pixel_words(self.resource, stage, indices, self.scanlines)

    def picture(self, inputs: torch.Tensor) -> list[str]:
        """The image from the first scanline bit of the pixel inputs."""
        return _block_picture(inputs[: self.content_steps(), 0].cpu(), self.side)


class MnistGenerative(MnistPixels):
    """`mnist01-gen`: generate 0s and 1s pixel by pixel, on the deskewed 10x10 images (2 scanlines). The first
    pixel word is replaced by the label word [0, 0] (a zero) or [0, 1] (a one); targets = inputs; every step
    is scored and none is postselected, so the model learns to continue an image of the digit its first word
    names. Half of each batch is each digit: zeros first on even shards, ones first on odd shards (the
    original's swap). It predicts no labels (the label is given, not asked for), so `classes` is None, the
    batches carry no `labels`, and the names of the digits that label words stand for are `label_names`."""

    label_names: ClassVar[tuple[str, ...]]

    def _drawing_order(self) -> tuple[int, ...]:
        """Odd shards draw the second digit first."""
        return self.digits[::-1] if self.shard % 2 == 1 else self.digits

    def make_batch(self, stage: str, indices: np.ndarray, classes: torch.Tensor) -> Batch:
        """Pixel words with the label word first; targets = inputs; all steps scored, none postselected."""
        words = self.content(stage, indices)
        words[:, 0] = int_to_bits(classes, self.scanlines)
        scored = torch.ones(words.shape[0], self.sequence_length - 1, dtype=torch.bool)
        return Batch(inputs=words, targets=words.clone(), scored=scored, postselected=~scored)

    def decode_labels(self, words: torch.Tensor) -> torch.Tensor:
        """Not a classification dataset (see the class docstring)."""
        raise NotImplementedError(f"dataset {self.name} generates images; it predicts no class labels")

    def format(self, inputs: torch.Tensor, targets: torch.Tensor, measured: torch.Tensor) -> str:
        """The gold image and the model's image side by side (first scanline bit), the first pixel shown as
        the digit that the label word names."""
        label = int(bits_to_int(inputs[0].cpu()))
        name = self.label_names[label] if 0 <= label < len(self.label_names) else "?"
        gold = _block_picture(targets[:, 0].cpu(), self.side)
        model = _block_picture(torch.cat([targets[:1, 0].cpu(), measured[:, 0].cpu()]), self.side)
        gold[0], model[0] = name + gold[0][1:], name + model[0][1:]
        rows = [f"{'gold':<{self.side}}  model"]
        rows += [f"{left}  {right}" for left, right in zip(gold, model, strict=True)]
        return "\n".join(rows)


class MnistPca(MnistDataset):
    """`mnist-pca-r{r}-p{p}`: the first p of MNIST's 8 principal components, each an 8-bit code given as its
    top r bits, one component per step, then K-1 zero words; the digit (0-9) in K r-bit label words."""

    resource = PCA_RESOURCE
    bits: ClassVar[int]
    components: ClassVar[int]

    @classmethod
    def word_bits(cls) -> int:
        """r bits."""
        return cls.bits

    @classmethod
    def content_steps(cls) -> int:
        """One step per component."""
        return cls.components

    def content(self, stage: str, indices: np.ndarray) -> torch.Tensor:
        """Each component's top r bits."""
        codes = load_mnist_resource(self.resource)[f"{stage}_codes"][indices, : self.components]
        return int_to_bits(torch.from_numpy(codes).long() >> (CODE_BITS - self.bits), self.bits)

    def picture(self, inputs: torch.Tensor) -> list[str]:
        """The components' levels (top r bits, 0..2^r-1)."""
        levels = bits_to_int(inputs[: self.components].cpu()).tolist()
        return [f"PCA components 1-{self.components}, top {self.bits} bits: {' '.join(map(str, levels))}"]


class MnistUmap(MnistDataset):
    """`mnist-umap-d{D}-r{r}`: a D-dimensional UMAP embedding of MNIST, each coordinate an 8-bit code; step t
    holds bit t (most significant first) of each of the D coordinates, for r steps, then K-1 zero words; the
    digit (0-9) in K D-bit label words."""

    resource = UMAP_RESOURCE
    dimensions: ClassVar[int]
    steps: ClassVar[int]

    @classmethod
    def word_bits(cls) -> int:
        """One bit per coordinate."""
        return cls.dimensions

    @classmethod
    def content_steps(cls) -> int:
        """One step per bit plane."""
        return cls.steps

    def content(self, stage: str, indices: np.ndarray) -> torch.Tensor:
        """Bit plane t of the coordinates at step t."""
        codes = torch.from_numpy(load_mnist_resource(self.resource)[f"{stage}_d{self.dimensions}"][indices])
        planes = int_to_bits(codes.long(), CODE_BITS)[:, :, : self.steps]  # B x D x r
        return planes.transpose(1, 2).contiguous()

    def picture(self, inputs: torch.Tensor) -> list[str]:
        """The coordinates' levels (top r bits, 0..2^r-1)."""
        levels = bits_to_int(inputs[: self.steps].cpu().T).tolist()
        return [f"UMAP coordinates, top {self.steps} bits: {', '.join(map(str, levels))}"]


def _define(family: type[MnistDataset], name: str, description: str, **attributes: object) -> None:
    """Register `name` as a small subclass of `family` with the given class attributes."""
    class_name = "Mnist_" + name.replace("-", "_")
    namespace = {
        "name": name,
        "description": description,
        "__doc__": f"`{name}`: {description}.",
        **attributes,
    }
    register(name, type(class_name, (family,), namespace), description)


def _register_all() -> None:
    """Register every MNIST dataset name of the original."""
    # mnist8 is digits 0-8 (9 classes, two label words) on the plain images, 0-7 on the deskewed ones.
    variants = {"": (False, 10), "-ds": (True, 10), "-ds-lrg": (True, 20)}
    for stem, scanlines in (("mnist01", 2), ("mnist36", 2), ("mnist8", 3)):
        for suffix, (deskewed, side) in variants.items():
            digits = {"mnist01": (0, 1), "mnist36": (3, 6)}.get(stem, tuple(range(8 if deskewed else 9)))
            what = f"{'deskewed ' if deskewed else ''}{side}x{side}"
            named = f"{digits[0]}-{digits[-1]}" if len(digits) > 2 else ",".join(map(str, digits))
            _define(
                MnistPixels,
                stem + suffix,
                f"MNIST digits {named} pixel by pixel ({what}, {scanlines} scanlines); label scored",
                resource=_pixel_resource(deskewed, side),
                digits=digits,
                classes=tuple(DIGIT_NAMES[digit] for digit in digits),
                class_of_digit=tuple(range(len(digits))),
                scanlines=scanlines,
                side=side,
            )
    _define(
        MnistPixels,
        "mnist-even-odd",
        "MNIST digits 0-9 pixel by pixel (10x10, 2 scanlines); the label is even/odd",
        resource=_pixel_resource(False, 10),
        digits=tuple(range(10)),
        classes=("even", "odd"),
        class_of_digit=tuple(digit % 2 for digit in range(10)),
        scanlines=2,
        side=10,
    )
    _define(
        MnistGenerative,
        "mnist01-gen",
        "generate MNIST 0s and 1s pixel by pixel (deskewed 10x10, 2 scanlines) after a label word; all steps "
        "scored",
        resource=_pixel_resource(True, 10),
        digits=(0, 1),
        classes=None,
        label_names=("0", "1"),
        class_of_digit=(0, 1),
        scanlines=2,
        side=10,
    )
    for bits in (2, 3, 4):
        for components in (2, 5, 8):
            _define(
                MnistPca,
                f"mnist-pca-r{bits}-p{components}",
                f"MNIST 0-9 as its first {components} PCA components, {bits} bits each; label scored",
                digits=tuple(range(10)),
                classes=DIGIT_NAMES,
                class_of_digit=tuple(range(10)),
                bits=bits,
                components=components,
            )
    for dimensions in (2, 3, 4):
        for steps in (2, 3, 4, 5, 8):
            _define(
                MnistUmap,
                f"mnist-umap-d{dimensions}-r{steps}",
                f"MNIST 0-9 as a {dimensions}-d UMAP embedding, {steps} bits per coordinate; label scored",
                digits=tuple(range(10)),
                classes=DIGIT_NAMES,
                class_of_digit=tuple(range(10)),
                dimensions=dimensions,
                steps=steps,
            )


_register_all()
pipeline.register_builder("mnist", build_mnist)
