"""The dataset interface and its registry.

A dataset produces batches of integer bit tensors for the sequence model and says which target steps count.
Conventions shared with the model (`qrnn.QRNN`):
- `inputs`, `targets`: LongTensor of shape B x L x I with values 0/1, I = `input_size`, lane 0 most
  significant;
- step t = 0..L-2 feeds `inputs[:, t]` and is scored against `targets[:, t + 1]`; so `scored` has shape
  B x (L-1) and `scored[:, t]` says whether the prediction of `targets[:, t + 1]` counts in the loss and the
  error rate (the original's `filter`), in training and in validation alike;
- training postselects every step on its target; validation and evaluation postselect the steps in
  `postselected` (B x (L-1), the original's `ignore_output_at_step`: advice) and sample the others. Where a
  dataset leaves `postselected` None, the unscored steps are the advice (`Batch.postselection`). The two masks
  need not be complements: `simple-quotes` scores every step but postselects the consonants, so an advised
  step counts as right.
"""

from __future__ import annotations

import abc
import hashlib
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from qrnn.errors import QRNNError

STAGES = ("train", "validate", "test")


def derive_seed(seed: int, shard: int, stage: str) -> int:
    """A 63-bit generator seed mixing the user's seed, the shard and the stage: the same triple always gives
    the same seed, and (practically) any change of one gives an unrelated one, so shards and stages never
    share data by accident (plain sums like seed + shard would collide: seed 1 shard 0 = seed 0 shard 1)."""
    if stage not in STAGES:
        raise ValueError(f"unknown stage {stage!r}; valid stages: {', '.join(STAGES)}")
    digest = hashlib.sha256(f"qrnn-dataset/{seed}/{shard}/{stage}".encode()).digest()
    return int.from_bytes(digest[:8], "little") >> 1


@dataclass(frozen=True)
class DatasetInfo:
    """Class-level facts for the `qrnn datasets` listing, known without loading any resource.

    `sequence_length` is None when `--sentence-length` sets it; `splits` is "generated" for data drawn on the
    fly, or the split sizes (e.g. "train 4.4M chars / validate 243k / test 243k")."""

    input_size: int
    sequence_length: int | None
    splits: str


@dataclass
class Batch:
    """One batch: `inputs`, `targets` (B x L x I, long 0/1), `scored` (B x (L-1), bool: the steps in the loss
    and the error rate), `postselected` (B x (L-1), bool, or None for `~scored`: the steps postselected on
    their target in validation and evaluation) and, for classification datasets, `labels` (B, long: each
    sample's class index; None otherwise)."""

    inputs: torch.Tensor
    targets: torch.Tensor
    scored: torch.Tensor
    postselected: torch.Tensor | None = None
    labels: torch.Tensor | None = None

    def postselection(self) -> torch.Tensor:
        """The steps validation and evaluation postselect (B x (L-1), bool): `postselected`, or the unscored
        steps where the dataset gives none."""
        return ~self.scored if self.postselected is None else self.postselected

    def take(self, count: int) -> Batch:
        """The first `count` samples of the batch (all of it when it has no more)."""
        return Batch(
            inputs=self.inputs[:count],
            targets=self.targets[:count],
            scored=self.scored[:count],
            postselected=None if self.postselected is None else self.postselected[:count],
            labels=None if self.labels is None else self.labels[:count],
        )


class Dataset(abc.ABC):
    """A named source of batches. Subclasses set the class attributes and implement `batch` and `format`.

    One instance serves one shard: `shard` of `num_shards`, each drawing its own data from a generator seeded
    with (seed, shard), so the same seed gives the same data and different shards see different data.
    `batch_size` is per shard (for MNIST-type datasets: per digit).

    Writing your own (the simplest route is `qrnn.datasets.words.WordDataset`, which needs only `word_bits` and
    `words(stage)` returning integer words)::

        class Parity(WordDataset):
            name = "parity"
            description = "running parity of random bits"
            word_bits = 1

            def words(self, stage):
                bits = torch.randint(0, 2, (self.batch_size, self.sentence_length), generator=self.generator(stage))
                targets = bits.cumsum(1) % 2
                return bits, targets, torch.ones(self.batch_size, self.sentence_length - 1, dtype=torch.bool)

        register("parity", Parity, Parity.description)
        qrnn.train(dataset="parity", epochs=100)

    Draw every random number from `self.generator(stage)`: checkpoints save those generators, so a resumed run
    sees the data an uninterrupted one would (a dataset with other mutable state adds `state_dict` and
    `load_state_dict`). `register` fills this process's registry: runs with several shards spawn processes that
    import `qrnn` afresh, so register there from a module they import, or train on one shard.
    """

    # The file the data comes from, recorded in checkpoints ({"path": ..., "sha256": ...}) so that `resume` and
    # `evaluate` refuse a changed file; None for data that is not read from a user's file.
    dataset_file: dict[str, str | None] | None = None

    name: ClassVar[str]
    description: ClassVar[str]
    # The version of the dataset's sequence layout (inputs, targets, scoring); a dataset whose layout changes
    # bumps it, and checkpoints trained on an older layout are refused (`qrnn.training.checkpoint`).
    layout_version: ClassVar[int] = 1

    def __init__(
        self, *, sentence_length: int, batch_size: int, shard: int = 0, num_shards: int = 1, seed: int = 0
    ) -> None:
        # Subclasses with options fixed by their registered name take them as extra keyword arguments.
        self.sentence_length = sentence_length
        self.batch_size = batch_size
        self.shard = shard
        self.num_shards = num_shards
        self.seed = seed
        self._generators: dict[str, torch.Generator] = {}

    def generator(self, stage: str) -> torch.Generator:
        """This shard's random generator for `stage`, seeded by `derive_seed(seed, shard, stage)` on first use
        and then advancing with every batch drawn: each stage is a reproducible stream of its own."""
        generators = self.__dict__.setdefault("_generators", {})
        if stage not in generators:
            generators[stage] = torch.Generator().manual_seed(derive_seed(self.seed, self.shard, stage))
        return generators[stage]

    @classmethod
    def info(cls, **fixed: object) -> DatasetInfo | None:
        """Input width, sequence length and split sizes for the listing, given the options the registered name
        fixes; must not load big resources. None where a dataset does not describe itself."""
        return None

    @property
    @abc.abstractmethod
    def input_size(self) -> int:
        """Bits per word (the number of I/O qubits the model needs)."""

    @property
    @abc.abstractmethod
    def sequence_length(self) -> int:
        """L, the number of words per sequence (some datasets fix it, ignoring `sentence_length`)."""

    @property
    def sequences_per_batch(self) -> int:
        """How many sequences a batch of this shard holds: `batch_size` (MNIST-type datasets: that many per
        digit); what sizes a training pass."""
        return self.batch_size

    @classmethod
    def check_options(
        cls, *, sentence_length: int, batch_size: int, num_shards: int, **fixed: object
    ) -> None:
        """Raise `QRNNError` with one actionable line if these options cannot work; called before training."""
        if sentence_length < 2:
            raise QRNNError(f"--sentence-length must be at least 2, got {sentence_length}")
        if batch_size < 1:
            raise QRNNError(f"--batch-size must be at least 1, got {batch_size}")

    def split_size(self, stage: str) -> int | None:
        """The number of sequences in `stage`'s fixed split, or None for generated data."""
        return None

    def split_batches(self, stage: str, batch_size: int) -> Iterator[Batch]:
        """Every sequence of `stage`'s split exactly once, in the resource's fixed order, `batch_size` sequences
        a batch (the last may be smaller), independent of the shard's generators. Only for datasets with a
        fixed split (`split_size` not None)."""
        raise QRNNError(f"dataset {self.name} has no fixed {stage} split: its data is generated")

    @abc.abstractmethod
    def batch(self, stage: str) -> Batch:
        """The next batch of `stage` ("train", "validate" or "test") for this shard."""

    @abc.abstractmethod
    def format(self, inputs: torch.Tensor, targets: torch.Tensor, measured: torch.Tensor) -> str:
        """A human-readable picture of one sample: its inputs (L x I), gold targets (L x I) and the words the
        model measured (L-1 x I), e.g. text for characters, a block picture for an MNIST image."""

    # Classification datasets (MNIST and friends) also report labels, for accuracy and confusion matrices.
    classes: ClassVar[tuple[str, ...] | None] = None

    def decode_labels(self, words: torch.Tensor) -> torch.Tensor:
        """Class indices (B) from the words on the scored steps (B x (L-1) x I, measured or target);
        -1 where the words encode no valid class. Only for datasets with `classes`."""
        raise NotImplementedError(f"dataset {self.name} has no class labels")


@dataclass(frozen=True)
class RegisteredDataset:
    """A registry entry: the class, the options fixed by the name (e.g. the digits of `mnist01`), a
    summary."""

    cls: type[Dataset]
    fixed: dict[str, object]
    description: str

    def check_options(self, *, sentence_length: int, batch_size: int, num_shards: int) -> None:
        """Check the user's options against this dataset before any work starts (raises `QRNNError`)."""
        self.cls.check_options(
            sentence_length=sentence_length, batch_size=batch_size, num_shards=num_shards, **self.fixed
        )

    def create(self, **options: object) -> Dataset:
        """An instance for one shard: options are sentence_length, batch_size, shard, num_shards, seed."""
        return self.cls(**options, **self.fixed)


_REGISTRY: dict[str, RegisteredDataset] = {}


def register(name: str, cls: type[Dataset], description: str, **fixed: object) -> None:
    """Add the dataset class `cls` to this process's registry under `name` (what `--dataset` and
    `qrnn.train(dataset=...)` take), with a one-line `description`; `fixed` are constructor options the name
    implies (e.g. `register("mnist01", MnistPixels, "...", digits=(0, 1))`), passed to `cls` and to its
    `check_options` and `info`. A name may be registered once."""
    if name in _REGISTRY:
        raise ValueError(f"dataset {name!r} registered twice")
    if ":" in name:
        raise ValueError(f"dataset name {name!r} may not contain ':' (reserved for families such as text:PATH)")
    _REGISTRY[name] = RegisteredDataset(cls, dict(fixed), description)


# The text alphabets of `--alphabet`: the file's own characters, or the 5-bit alphabet of simple-quotes.
DEFAULT_ALPHABET = "file"


@dataclass(frozen=True)
class DatasetFamily:
    """Datasets named `PREFIX:ARGUMENT` (e.g. `text:PATH`), resolved when looked up rather than listed:
    `resolve(argument, alphabet)` returns the registry entry (raising `QRNNError` for a bad argument),
    `canonical(argument)` the argument as runs record it (e.g. an absolute path)."""

    prefix: str
    resolve: Callable[[str, str], RegisteredDataset]
    canonical: Callable[[str], str]
    summary: str


_FAMILIES: dict[str, DatasetFamily] = {}


def register_family(family: DatasetFamily) -> None:
    """Add a family of `PREFIX:ARGUMENT` datasets."""
    if family.prefix in _FAMILIES:
        raise ValueError(f"dataset family {family.prefix!r} registered twice")
    _FAMILIES[family.prefix] = family


def dataset_families() -> list[DatasetFamily]:
    """The registered families, by prefix."""
    _load_registry()
    return [_FAMILIES[prefix] for prefix in sorted(_FAMILIES)]


def _load_registry() -> None:
    """Make sure every dataset module has registered itself (the registry is filled by imports; see
    `qrnn.datasets.load_all`), so that lookups work whichever module the caller imported."""
    from qrnn.datasets import load_all

    load_all()


def dataset_names() -> list[str]:
    """All registered names, sorted (families such as `text:PATH` are in `dataset_families`)."""
    _load_registry()
    return sorted(_REGISTRY)


def _family_of(name: str) -> tuple[DatasetFamily, str] | None:
    prefix, colon, argument = name.partition(":")
    if not colon:
        return None
    if prefix not in _FAMILIES:
        raise QRNNError(
            f"unknown dataset kind {prefix!r} in {name!r}; valid kinds: "
            f"{', '.join(f'{p}:...' for p in sorted(_FAMILIES))}, or a name from `qrnn datasets`"
        )
    return _FAMILIES[prefix], argument


def lookup(name: str, alphabet: str = DEFAULT_ALPHABET) -> RegisteredDataset:
    """The registry entry for `name` (a registered name or a family's `PREFIX:ARGUMENT`), or a one-line error
    listing the valid names. `alphabet` is `--alphabet`, which only `text:PATH` datasets take."""
    _load_registry()
    family = _family_of(name)
    if family is not None:
        return family[0].resolve(family[1], alphabet)
    if name not in _REGISTRY:
        kinds = ", ".join(f"{prefix}:..." for prefix in sorted(_FAMILIES))
        raise QRNNError(f"unknown dataset {name!r}; valid datasets: {', '.join(dataset_names())}, {kinds}")
    if alphabet != DEFAULT_ALPHABET:
        raise QRNNError(f"--alphabet {alphabet} applies to text:PATH datasets only, not to {name}")
    return _REGISTRY[name]


def lookup_run(config: Mapping[str, Any]) -> RegisteredDataset:
    """The registry entry of a run's dataset from the run's recorded options (a checkpoint's `config`, or
    `TrainConfig.as_dict()`): its name with the run's `--alphabet`, so that every place rebuilding a run's data
    reads a text file as the run did (checkpoints written before `--alphabet` existed used the file's own)."""
    return lookup(str(config["dataset"]), alphabet=str(config.get("alphabet", DEFAULT_ALPHABET)))


def canonical_name(name: str) -> str:
    """The name a run records for the dataset `name`: family arguments made canonical (a file's absolute
    path, so that `resume` and `evaluate` work from any directory); registered names unchanged."""
    _load_registry()
    family = _family_of(name)
    if family is None:
        return name
    return f"{family[0].prefix}:{family[0].canonical(family[1])}"


def dataset_label(name: str) -> str:
    """The dataset as it appears in run and checkpoint file names: the name itself, or for a family the prefix
    and the file's stem (`text:/data/my notes.txt` -> `text-my-notes`)."""
    prefix, colon, argument = name.partition(":")
    if not colon:
        return name
    stem = argument.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return f"{prefix}-{re.sub(r'[^A-Za-z0-9_.-]+', '-', stem).strip('-.') or 'data'}"


def get_dataset(name: str, **options: object) -> Dataset:
    """Build the dataset `name` for one shard (sentence_length, batch_size, shard, num_shards, seed)."""
    return lookup(name).create(**options)
