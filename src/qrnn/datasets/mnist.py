"""The MNIST datasets of the original implementation: images pixel by pixel, PCA codes, UMAP codes.

Every dataset reads its precomputed resource through `load_resource` (built by `mnist_build`, see there for
the exact preprocessing) and draws images per digit: the batch holds `batch_size` images of each digit of the
dataset, digit after digit (B = batch_size x #digits).

Sampling: shuffled epochs. Each shard owns a disjoint slice of every digit's images in each split (image k of
a digit belongs to shard k mod num_shards) and goes through its slice in a random order, drawing a fresh order
when it is used up, so within a shard every image is seen once per epoch and shards never share images. The
random orders come from the shard's per-stage generator (`Dataset.generator`, seeded with seed, shard, stage).

Sequence and label alignment (classification datasets), as the original implementation lays it out: the P
content words (the pixels, PCA components or UMAP bit planes), one zero word, then K label words, L = P + 1 + K:
- inputs[:, 0:P] = the content, inputs[:, P:L] = 0;
- targets[:, 0:P+1] = 0, targets[:, P+1:L] = the label words;
- scored[:, t] is True exactly for t = P .. L-2, i.e. the steps predicting targets[:, P+1:L]. So the step that
  feeds the last content word predicts a zero word (postselected), the step after it, fed a zero, predicts the
  first label word, each further label word is predicted from a zero input, and the last input word (a zero)
  is never fed. All other targets are 0 and postselected.
  (The paper's published mnist01 model confirms this layout: with the label one step earlier it answers 0 for
  every image, with it as here it scores about 98 % on our test images.)
The label is the class index (the digit's position in the dataset's digit list; the parity for
`mnist-even-odd`) in binary with ceil(log2 #classes) bits, left-padded with zeros to K x I bits, K = the
fewest words that hold them, most significant bit first (word P+1, lane 0). `decode_labels` reads the last K
words back and returns -1 for a code outside the classes.
"""

from __future__ import annotations

import abc
import math
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
from qrnn.datasets.resources import load_resource, load_resource_array
from qrnn.errors import QRNNError

INK, BACKGROUND = "█", "·"
DIGIT_NAMES = tuple(str(digit) for digit in range(10))


def label_bits(num_classes: int) -> int:
    """Bits of a class index: ceil(log2 #classes), at least 1."""
    return max(1, math.ceil(math.log2(num_classes)))


def count_label_words(num_classes: int, word_bits: int) -> int:
    """K, the number of `word_bits`-bit words that hold a class index."""
    return math.ceil(label_bits(num_classes) / word_bits)


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
    """Common machinery of the MNIST datasets: per-digit shuffled-epoch sampling from a resource, the
    content-then-label sequence layout (see the module docstring), label decoding and the label line of the
    picture. Each registered name is a small subclass (see `_define`) fixing the class attributes below;
    the family classes turn image indices into content words."""

    # The resource the dataset reads, its digits, and the class index of each digit (e.g. its parity).
    resource: ClassVar[str]
    digits: ClassVar[tuple[int, ...]]
    class_of_digit: ClassVar[tuple[int, ...]]
    classes: ClassVar[tuple[str, ...] | None]

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
        """P, the number of content words before the label."""

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

    # Zero words between the content and the label (see the module docstring).
    LABEL_GAP: ClassVar[int] = 1

    @classmethod
    def length(cls) -> int:
        """L = P content words + the gap + K label words."""
        return cls.content_steps() + cls.LABEL_GAP + cls.label_steps()

    @classmethod
    def info(cls, **fixed: object) -> DatasetInfo:
        """Bits per word, the fixed sequence length, the split sizes of the dataset's digits (read from the
        resource's small `counts` member only)."""
        try:
            counts = load_resource_array(cls.resource, "counts")[:, list(cls.digits)].sum(axis=1)
            splits = (
                " / ".join(f"{stage} {int(n):,}" for stage, n in zip(STAGES, counts, strict=True)) + " images"
            )
        except QRNNError:
            splits = "resource missing (qrnn data build --only mnist)"
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
        fewest = int(load_resource(cls.resource)["counts"][:, list(cls.digits)].min())
        if num_shards > fewest:
            raise QRNNError(
                f"--num-shards must be at most {fewest} for {cls.name} (the fewest images of one of its "
                f"digits in a split), got {num_shards}"
            )

    def _sampler(self, stage: str, digit: int) -> _ShuffledEpochs:
        """This shard's sampler of `digit`'s images in `stage`'s split."""
        key = (stage, digit)
        if key not in self._samplers:
            labels = load_resource(self.resource)[f"{stage}_labels"]
            mine = np.flatnonzero(labels == digit)[self.shard :: self.num_shards]
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

    def draw(self, stage: str) -> tuple[np.ndarray, torch.Tensor]:
        """Image indices (into `stage`'s split) and class indices of the next batch: `batch_size` images of
        each digit, digit after digit."""
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; valid stages: {', '.join(STAGES)}")
        generator = self.generator(stage)
        indices = [self._sampler(stage, digit).draw(self.batch_size, generator) for digit in self.digits]
        classes = torch.tensor(self.class_of_digit, dtype=torch.long).repeat_interleave(self.batch_size)
        return np.concatenate(indices), classes

    def label_words(self, classes: torch.Tensor) -> torch.Tensor:
        """Class indices (B) as K label words (B x K x I), left-padded, most significant bit first."""
        width = self.label_steps() * self.input_size
        return int_to_bits(classes, width).reshape(len(classes), self.label_steps(), self.input_size)

    def batch(self, stage: str) -> Batch:
        """The next batch of `stage`: content words then label words (see the module docstring)."""
        indices, classes = self.draw(stage)
        content = self.content(stage, indices)
        size = content.shape[0]
        after = self.LABEL_GAP + self.label_steps()
        inputs = torch.cat([content, content.new_zeros(size, after, self.input_size)], dim=1)
        gap = content.new_zeros(size, self.LABEL_GAP, self.input_size)
        targets = torch.cat([torch.zeros_like(content), gap, self.label_words(classes)], dim=1)
        scored = torch.zeros(size, self.sequence_length - 1, dtype=torch.bool)
        scored[:, self.content_steps() - 1 + self.LABEL_GAP :] = True
        return Batch(inputs=inputs, targets=targets, scored=scored)

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


def _pixel_words(resource: str, stage: str, indices: np.ndarray, scanlines: int) -> torch.Tensor:
    """Pixel words (B x side^2 x scanlines) of the images at `indices`: lane 0 the image row by row, lane 1
    its transpose, lane 2 its 135-degree rotation; a bit is 1 on the background."""
    data = load_resource(resource)
    side = int(data["side"][0])
    packed = data[f"{stage}_bits"][indices]
    views = np.unpackbits(packed, axis=1, count=2 * side * side).reshape(len(indices), 2, side, side)
    upright, rotated = views[:, 0], views[:, 1]
    lanes = [upright, upright.transpose(0, 2, 1), rotated][:scanlines]
    words = np.stack(lanes, axis=-1).reshape(len(indices), side * side, scanlines)
    return torch.from_numpy(words.astype(np.int64))


def _pixel_resource(deskewed: bool, side: int) -> str:
    """The resource holding the given pixel variant."""
    for filename, (is_deskewed, resource_side, _) in PIXEL_RESOURCES.items():
        if (is_deskewed, resource_side) == (deskewed, side):
            return filename
    raise ValueError(f"no MNIST pixel resource with deskew={deskewed} and side {side}")


class MnistPixels(MnistDataset):
    """MNIST pixel by pixel (the original's `mnist*` datasets): the central 20x20 of the image, downscaled to
    10x10 by 2x2 averaging unless large (`-lrg`), optionally deskewed (`-ds`), binarised (1 = background,
    0 = ink); each pixel a word of `scanlines` bits, one per view: the image row by row, its transpose, its
    135-degree rotation. The label words follow the 100 (or 400) pixel words; only they are scored."""

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

    def content(self, stage: str, indices: np.ndarray) -> torch.Tensor:
        """The pixel words."""
        return _pixel_words(self.resource, stage, indices, self.scanlines)

    def picture(self, inputs: torch.Tensor) -> list[str]:
        """The image from the first scanline bit of the pixel inputs."""
        return _block_picture(inputs[: self.content_steps(), 0].cpu(), self.side)


class MnistGenerative(MnistPixels):
    """`mnist01-gen`: generate 0s and 1s pixel by pixel. The 10x10 pixel words (2 scanlines, as `mnist01`)
    with the first pixel word replaced by the label word [0, 0] (a zero) or [0, 1] (a one); targets = inputs;
    every step is scored, so the model learns to continue an image of the digit its first word names. Half of
    each batch is each digit. It predicts no labels (the label is given, not asked for), so `classes` is None
    and the names of the digits that label words stand for are `label_names`."""

    label_names: ClassVar[tuple[str, ...]]

    @classmethod
    def length(cls) -> int:
        """The pixel words only (the first one being the label word)."""
        return cls.content_steps()

    def batch(self, stage: str) -> Batch:
        """Pixel words with the label word first; targets = inputs; all steps scored."""
        indices, classes = self.draw(stage)
        words = self.content(stage, indices)
        words[:, 0] = int_to_bits(classes, self.scanlines)
        scored = torch.ones(words.shape[0], self.sequence_length - 1, dtype=torch.bool)
        return Batch(inputs=words, targets=words.clone(), scored=scored)

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
    """`mnist-pca-r{r}-p{p}`: the first p of MNIST's 8 principal components (fitted on train), each quantised
    to 8 bits with equally populated levels and given as its top r bits, one component per step; then the
    digit (0-9) in r-bit label words."""

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
        codes = torch.from_numpy(load_resource(self.resource)[f"{stage}_codes"][indices, : self.components])
        return int_to_bits(codes.long() >> (CODE_BITS - self.bits), self.bits)

    def picture(self, inputs: torch.Tensor) -> list[str]:
        """The components' levels (top r bits, 0..2^r-1)."""
        levels = bits_to_int(inputs[: self.components].cpu()).tolist()
        return [f"PCA components 1-{self.components}, top {self.bits} bits: {' '.join(map(str, levels))}"]


class MnistUmap(MnistDataset):
    """`mnist-umap-d{D}-r{r}`: a D-dimensional UMAP embedding of MNIST (fitted on train), each coordinate
    quantised to 8 bits with equally populated levels; step t holds bit t (most significant first) of each of
    the D coordinates, for r steps; then the digit (0-9) in D-bit label words."""

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
        codes = torch.from_numpy(load_resource(self.resource)[f"{stage}_d{self.dimensions}"][indices])
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
    pixel_sets = {"mnist01": ((0, 1), 2), "mnist36": ((3, 6), 2), "mnist8": (tuple(range(8)), 3)}
    variants = {"": (False, 10), "-ds": (True, 10), "-ds-lrg": (True, 20)}
    for stem, (digits, scanlines) in pixel_sets.items():
        for suffix, (deskewed, side) in variants.items():
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
        "generate MNIST 0s and 1s pixel by pixel (10x10, 2 scanlines) after a label word; all steps scored",
        resource=_pixel_resource(False, 10),
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
