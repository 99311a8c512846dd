"""`qrnn evaluate` on a tiny classification dataset with fixed splits: the whole split by default, the sampled
label accuracy, the exact class probabilities (checked against a direct computation, and summing to 1 over all
codes), ensembles and their members, the one-line error for members of different datasets, the JSON keys."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import ClassVar

import pytest
import torch

import qrnn
from qrnn.bits import bits_to_int, int_to_bits
from qrnn.cli import main as qrnn_main
from qrnn.datasets import base, get_dataset
from qrnn.datasets.base import Batch, Dataset
from qrnn.training import evaluate_checkpoint, evaluate_checkpoints, train
from qrnn.training.evaluate import class_probabilities
from qrnn.training.loop import postselect_steps, sampling_seed

NAME = "test-tiny-classes"


class TinyClasses(Dataset):
    """5 classes, 2-bit words, laid out as the original's PCA datasets: P = 3 content words then K - 1 = 1 zero
    word (L = 4); targets P - 1 = 2 zero words then the K = 2 label words (the class in 4 bits, left-padded);
    the last K steps scored. Fixed splits: test 7 sequences, validate 5; train draws from the test set."""

    name = NAME
    description = "test only"
    classes: ClassVar[tuple[str, ...] | None] = ("a", "b", "c", "d", "e")
    CONTENT = 3
    LABEL_WORDS = 2
    SPLITS: ClassVar[dict[str, list[int]]] = {"test": [0, 1, 2, 3, 4, 2, 0], "validate": [4, 3, 1, 0, 2]}

    @property
    def input_size(self) -> int:
        return 2

    @property
    def sequence_length(self) -> int:
        return self.CONTENT + self.LABEL_WORDS - 1

    def label_words(self, classes: torch.Tensor) -> torch.Tensor:
        """Class indices as K = 2 two-bit words, most significant first."""
        return int_to_bits(classes, 4).reshape(len(classes), self.LABEL_WORDS, 2)

    def decode_labels(self, words: torch.Tensor) -> torch.Tensor:
        codes = bits_to_int(words[:, -self.LABEL_WORDS :].reshape(words.shape[0], -1))
        return torch.where(codes < 5, codes, torch.full_like(codes, -1))

    def _batch_of(self, labels: list[int], first_row: int) -> Batch:
        size = len(labels)
        classes = torch.tensor(labels)
        # The content depends on the class and the row: learnable, but not trivially.
        rows = torch.arange(first_row, first_row + size)
        content = torch.stack([(classes + k * rows) % 4 for k in range(self.CONTENT)], dim=1)
        inputs = int_to_bits(torch.cat([content, torch.zeros(size, 1, dtype=torch.long)], dim=1), 2)
        targets = torch.cat(
            [torch.zeros(size, self.CONTENT - 1, 2, dtype=torch.long), self.label_words(classes)], dim=1
        )
        scored = torch.zeros(size, self.sequence_length - 1, dtype=torch.bool)
        scored[:, -self.LABEL_WORDS :] = True
        return Batch(inputs=inputs, targets=targets, scored=scored, labels=classes)

    def batch(self, stage: str) -> Batch:
        pool = self.SPLITS["test" if stage == "train" else stage]
        picks = torch.randint(0, len(pool), (self.batch_size,), generator=self.generator(stage)).tolist()
        return self._batch_of([pool[i] for i in picks], 0)

    def split_size(self, stage: str) -> int | None:
        return len(self.SPLITS[stage]) if stage in self.SPLITS else None

    def split_batches(self, stage: str, batch_size: int) -> Iterator[Batch]:
        labels = self.SPLITS[stage]
        for start in range(0, len(labels), batch_size):
            yield self._batch_of(labels[start : start + batch_size], start)

    def format(self, inputs: torch.Tensor, targets: torch.Tensor, measured: torch.Tensor) -> str:
        return str(bits_to_int(measured).tolist())


class AllCodes(TinyClasses):
    """The same layout with every 4-bit code a class: the class probabilities must sum to 1."""

    name = "test-tiny-all-codes"
    classes = tuple(str(code) for code in range(16))


class TinyClassesShifted(TinyClasses):
    """The same classes and words, other content (as `mnist36-ds` is to `mnist36`): a model trained on
    `TinyClasses` can be scored on it."""

    name = "test-tiny-classes-shifted"
    SPLITS: ClassVar[dict[str, list[int]]] = {"test": [3, 1, 4, 0, 2, 2, 1], "validate": [0, 1, 2, 3, 4]}


@pytest.fixture(scope="module")
def tiny_checkpoints(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[str]]:
    """Two short training runs (different seeds) of the tiny dataset, registered for this module only."""
    base.register(NAME, TinyClasses, "test only")
    base.register(TinyClassesShifted.name, TinyClassesShifted, "test only")
    base.register(AllCodes.name, AllCodes, "test only")
    try:
        out = tmp_path_factory.mktemp("runs")
        paths = []
        for seed in (3, 4):
            result = train(dataset=NAME, epochs=15, batch_size=3, workspace=2, stages=1, validate_every=15,
                           num_validation_samples=0, seed=seed, out=str(out / str(seed)), dtype="float64",
                           learning_rate=0.05)
            paths.append(result.final_checkpoint)
        yield paths
    finally:
        for name in (NAME, TinyClassesShifted.name, AllCodes.name):
            del base._REGISTRY[name]


def direct_class_probabilities(model: qrnn.QRNN, batch: Batch, num_classes: int) -> torch.Tensor:
    """P(c) sample by sample: one teacher-forced run per sample and class on the sequence with c's label."""
    rows = []
    for i in range(batch.inputs.shape[0]):
        row = []
        for label in range(num_classes):
            targets = batch.targets[i].clone()
            targets[-2:] = int_to_bits(torch.tensor(label), 4).reshape(2, 2)
            probs, _, _ = model(batch.inputs[i], targets, postselect=True)
            words = bits_to_int(targets[1:])
            # probs: 2^I x (L-1); the label words are the targets of the last two steps.
            row.append(float(probs[words[-2], -2] * probs[words[-1], -1]))
        rows.append(row)
    return torch.tensor(rows, dtype=torch.float64)


def test_evaluate_scores_the_whole_split_with_exact_class_probabilities(tiny_checkpoints: list[str]) -> None:
    path = tiny_checkpoints[0]
    report = evaluate_checkpoint(path, batch_size=3)
    assert report.whole_split and report.samples == 7 and report.batches == 3  # batches of 3, 3, 1
    model, config = qrnn.load_checkpoint(path)
    dataset = TinyClasses(sentence_length=4, batch_size=3, seed=config["seed"])
    batches = list(dataset.split_batches("test", 3))
    labels = torch.cat([batch.labels for batch in batches])
    with torch.no_grad():
        exact = torch.cat([direct_class_probabilities(model, batch, 5) for batch in batches])
        computed = torch.cat([class_probabilities(model, dataset, b.inputs, b.scored, b.targets) for b in batches])
        assert torch.allclose(computed, exact, rtol=1e-12, atol=1e-15)
        # Over all 16 codes the label words' probabilities are a distribution.
        codes = AllCodes(sentence_length=4, batch_size=3)
        total = torch.cat([class_probabilities(model, codes, b.inputs, b.scored, b.targets) for b in batches]).sum(1)
        assert torch.allclose(total, torch.ones(7, dtype=torch.float64), atol=1e-12)
        assert report.class_accuracy == pytest.approx(float((exact.argmax(1) == labels).double().mean()))
        # The sampled accuracy, replayed: label steps sampled from the run's sampling stream, the rest postselected.
        generator = torch.Generator().manual_seed(sampling_seed(config["seed"], 0))
        hits = 0
        for batch in batches:
            _, measured, _ = model(batch.inputs, batch.targets, postselect=postselect_steps(batch.postselection()),
                                   generator=generator)
            hits += int((dataset.decode_labels(measured) == batch.labels).sum())
    assert report.classification_accuracy == pytest.approx(hits / 7)
    assert sum(map(sum, report.confusion_matrix)) == sum(map(sum, report.class_confusion_matrix)) == 7
    first = evaluate_checkpoint(path, samples=4, stage="validate", batch_size=3)
    assert not first.whole_split and first.samples == 4 and first.batches == 2


def test_evaluate_on_another_dataset_with_the_same_classes(
    tiny_checkpoints: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    """`--dataset` scores a model on other data with its classes (a deskewed-images model on the plain images):
    its own dataset named gives the default report; another is scored exactly; other classes are refused."""
    path = tiny_checkpoints[0]
    assert evaluate_checkpoint(path, dataset=NAME).as_dict() == evaluate_checkpoint(path).as_dict()
    report = evaluate_checkpoint(path, dataset=TinyClassesShifted.name, batch_size=3)
    assert report.dataset == TinyClassesShifted.name and report.samples == 7 and report.whole_split
    model, config = qrnn.load_checkpoint(path)
    assert config["dataset"] == NAME
    shifted = TinyClassesShifted(sentence_length=4, batch_size=3, seed=config["seed"])
    batches = list(shifted.split_batches("test", 3))
    labels = torch.cat([batch.labels for batch in batches])
    with torch.no_grad():
        exact = torch.cat([direct_class_probabilities(model, batch, 5) for batch in batches])
    assert report.class_accuracy == pytest.approx(float((exact.argmax(1) == labels).double().mean()))
    assert report.class_accuracy != evaluate_checkpoint(path).class_accuracy  # other data, another score
    capsys.readouterr()
    assert qrnn_main(["evaluate", path, "--dataset", "test-tiny-all-codes"]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("qrnn: error: dataset test-tiny-all-codes has classes (0, 1, 2,") and "\n" not in error
    assert f"was trained on {NAME} with classes (a, b, c, d, e)" in error
    assert qrnn_main(["evaluate", path, "--dataset", "no-such-dataset"]) == 2
    assert "unknown dataset 'no-such-dataset'" in capsys.readouterr().err


def test_ensemble_and_members(tiny_checkpoints: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    ensemble = evaluate_checkpoints(tiny_checkpoints, seed=3)
    assert ensemble.members is not None and len(ensemble.members) == 2
    for path, member in zip(tiny_checkpoints, ensemble.members, strict=True):
        alone = evaluate_checkpoint(path, seed=3)
        assert member.as_dict() == alone.as_dict()
    dataset = TinyClasses(sentence_length=4, batch_size=3)
    batches = list(dataset.split_batches("test", 3))
    labels = torch.cat([batch.labels for batch in batches])
    with torch.no_grad():
        mean = sum(
            torch.cat([direct_class_probabilities(qrnn.load_checkpoint(path)[0], b, 5) for b in batches])
            for path in tiny_checkpoints
        ) / 2
    assert ensemble.class_accuracy == pytest.approx(float((mean.argmax(1) == labels).double().mean()))
    assert ensemble.classification_accuracy == pytest.approx(
        sum(member.classification_accuracy for member in ensemble.members) / 2
    )
    assert qrnn_main(["evaluate", *tiny_checkpoints, "--seed", "3", "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert {"samples", "classification_accuracy", "class_accuracy", "members"} <= set(printed)
    assert printed["samples"] == 7 and len(printed["members"]) == 2
    assert printed["class_accuracy"] == pytest.approx(ensemble.class_accuracy)
    assert qrnn_main(["evaluate", *tiny_checkpoints, "--seed", "3"]) == 0
    text = capsys.readouterr().out
    assert text.startswith("ensemble of 2 checkpoints") and "class accuracy (exact" in text


def test_ensemble_members_must_share_the_dataset(
    tiny_checkpoints: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = train(epochs=1, validate_every=1, num_validation_samples=0, out=str(tmp_path)).final_checkpoint
    capsys.readouterr()
    assert qrnn_main(["evaluate", tiny_checkpoints[0], other]) == 2
    error = capsys.readouterr().err.strip()
    assert error.startswith("qrnn: error: ensemble members must share dataset and data:")
    assert "\n" not in error and "simple-seq" in error


def test_validation_postselects_the_datasets_advice_steps(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """simple-quotes scores every step but postselects its consonant targets in validation (the original's
    `ignore_output_at_step`); the training loop's validation must postselect exactly those."""
    from qrnn.training import loop

    seen: list[torch.Tensor] = []

    def recording(postselected: torch.Tensor):  # noqa: ANN202 - wraps the real rule
        seen.append(postselected.cpu().clone())
        return postselect_steps(postselected)

    monkeypatch.setattr(loop, "postselect_steps", recording)
    result = train(dataset="simple-quotes", epochs=1, batch_size=6, workspace=1, stages=1, validate_every=1,
                   num_validation_samples=0, out=str(tmp_path))
    assert result.exit_code == 0 and len(seen) == 1
    expected = get_dataset("simple-quotes", sentence_length=70, batch_size=6).batch("validate")
    assert torch.equal(seen[0], expected.postselected) and int(seen[0].sum()) == 143
