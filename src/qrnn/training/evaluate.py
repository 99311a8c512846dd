"""Evaluating checkpoints: the paper's measure and exact numbers beside it.

The data: for a dataset with a fixed split (`Dataset.split_size`, e.g. MNIST) the whole split in its fixed
order, or its first `samples` sequences; for generated data `samples` sequences (default 100) drawn from
`seed`. Per checkpoint:
- character error rate: as the original's validation, the dataset's advice steps (`Batch.postselection`) are
  postselected on their targets and the others sampled; the rate is the fraction of scored steps whose measured
  word differs from the target word (over all samples), with a standard error from its spread across batches;
- argmax accuracy: exact, no sampling: with every step postselected on its target (teacher forcing), the fraction
  of scored steps where the most probable word is the target word;
- loss: the run's training loss (original or nll) on the scored steps of the sampled pass, as the validation loss;
- for classification datasets:
  - classification accuracy (sampled, the paper's measure): a sample is right when the label decoded from the
    words measured on its scored steps is its class; with a confusion matrix (rows: true class, columns:
    predicted class, last column: words that encode no class);
  - class accuracy (exact): for each class c the model runs teacher-forced on targets whose scored steps hold
    c's label words; the product of those words' probabilities is P(c), exact also for several label words
    (the second word's distribution depends on the first). The prediction is the argmax over classes.

Another dataset (`dataset`) scores a model on data it did not train on, e.g. a `mnist36-ds` checkpoint on the
plain `mnist36` images: it must have the trained dataset's word width and, for classification, its classes.

Several checkpoints form an ensemble: they must share the dataset and its data; every member sees the same
batches and samples from its own generator seeded as a single evaluation would. The ensemble predicts the argmax
of the members' mean class probabilities; its sampled numbers are the means over the members (a sample drawn
from a member chosen uniformly at random).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch

from qrnn.bits import bits_to_int
from qrnn.errors import QRNNError
from qrnn.training.checkpoint import load_checkpoint
from qrnn.training.loop import postselect_steps, sampling_seed
from qrnn.training.models import LOSS_FUNCTIONS, choose_threads, resolve_device

STAGES_EVALUATED = ("validate", "test")
# Sequences scored on generated data (no fixed split) unless --samples says otherwise.
DEFAULT_GENERATED_SAMPLES = 100
# Sequences per batch when a fixed split is scored and no --batch-size is given.
SPLIT_BATCH = 250


@dataclass
class EvaluationReport:
    """The numbers of one evaluation (one checkpoint, or an ensemble with its `members`); floats are None where
    undefined (e.g. a standard error of one batch, class accuracies of a dataset without classes)."""

    checkpoint: str
    epoch: int | None
    dataset: str
    stage: str
    samples: int
    batches: int
    loss_name: str
    loss: float
    character_error_rate: float
    character_error_rate_stderr: float | None
    argmax_accuracy: float
    min_postselection_probability: float
    classes: list[str] | None = None
    classification_accuracy: float | None = None
    confusion_matrix: list[list[int]] | None = None
    class_accuracy: float | None = None
    class_confusion_matrix: list[list[int]] | None = None
    whole_split: bool = False
    members: list[EvaluationReport] | None = None

    def as_dict(self) -> dict[str, Any]:
        """Plain values (NaN as None), members included."""
        values = {
            key: (None if isinstance(value, float) and not math.isfinite(value) else value)
            for key, value in dataclasses.asdict(self).items()
            if key != "members"
        }
        values["members"] = None if self.members is None else [member.as_dict() for member in self.members]
        return values

    def to_json(self) -> str:
        """The report as JSON (NaN written as null)."""
        return json.dumps(self.as_dict(), indent=2)

    def to_text(self) -> str:
        """A human-readable report."""
        scope = "the whole split" if self.whole_split else "samples"
        data_line = f"data: {self.dataset}, stage {self.stage}, {self.samples} samples in {self.batches} batches"
        if self.members is not None:
            lines = [f"ensemble of {len(self.members)} checkpoints ({scope}; sampled numbers: member means)"]
        else:
            lines = [f"checkpoint: {self.checkpoint} (epoch {self.epoch})"]
        lines.append(data_line + (" (whole split)" if self.whole_split else ""))
        lines.extend(self._number_lines())
        if self.members is not None:
            for member in self.members:
                lines.append(f"member {member.checkpoint} (epoch {member.epoch}):")
                lines.extend("  " + line for line in member._number_lines(confusion=False))
        return "\n".join(lines)

    def _number_lines(self, confusion: bool = True) -> list[str]:
        stderr = f" ± {self.character_error_rate_stderr:.4f}" if self.character_error_rate_stderr is not None else ""
        lines = [
            f"character error rate (sampled, scored steps): {self.character_error_rate:.4f}{stderr}",
            f"argmax accuracy (teacher-forced, scored steps): {self.argmax_accuracy:.4f}",
            f"loss ({self.loss_name}, sampled pass as in validation): {self.loss:.4f}",
            f"min postselection probability: {self.min_postselection_probability:.4g}",
        ]
        if self.classes is None:
            return lines
        lines.append(f"classification accuracy (sampled labels): {self.classification_accuracy:.4f}")
        lines.append(f"class accuracy (exact, argmax of class probabilities): {self.class_accuracy:.4f}")
        if confusion:
            for title, matrix in (("sampled", self.confusion_matrix), ("exact", self.class_confusion_matrix)):
                if matrix is not None:
                    lines.append(f"confusion matrix ({title} labels):")
                    lines.extend(_matrix_lines(self.classes, matrix))
        return lines


def _matrix_lines(classes: list[str], matrix: list[list[int]]) -> list[str]:
    """A confusion matrix as aligned rows (the last column counts words that encode no class)."""
    header = ["true \\ predicted", *classes, "invalid"][: len(matrix[0]) + 1]
    rows = [[name, *map(str, counts)] for name, counts in zip(classes, matrix, strict=True)]
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return ["  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)) for row in [header, *rows]]


def class_probabilities(model: Any, dataset: Any, inputs: torch.Tensor, scored: torch.Tensor,
                        targets: torch.Tensor) -> torch.Tensor:
    """The exact probability of each class (B x C, float64) for every sample: the model runs teacher-forced on
    `targets` with the scored steps' words replaced by the class's label words (`dataset.label_words`), and
    P(c) is the product of those words' probabilities, each conditioned on the ones before it."""
    assert dataset.classes is not None
    batch = inputs.shape[0]
    num_classes = len(dataset.classes)
    expected_words = dataset.label_words(torch.zeros(batch, dtype=torch.long)).shape[1]
    if not bool((scored.sum(1) == expected_words).all()):
        raise QRNNError(
            f"dataset {dataset.name} does not score exactly its {expected_words} label word(s) per sample; "
            "its class probabilities are undefined"
        )
    mask = scored.to(targets.device)
    columns = []
    for label in range(num_classes):
        words = dataset.label_words(torch.full((batch,), label, dtype=torch.long)).to(targets.device)
        forced = targets.clone()
        future = forced[:, 1:]
        future[mask] = words.reshape(-1, words.shape[-1]).to(forced.dtype)
        probs, _, _ = model(inputs, forced, postselect=True)
        chosen = probs.gather(1, bits_to_int(forced[:, 1:]).unsqueeze(1)).squeeze(1).double()
        columns.append(torch.where(mask, chosen, torch.ones_like(chosen)).prod(1))
    return torch.stack(columns, dim=1).cpu()


@dataclass
class _Tally:
    """Running totals of one member's evaluation."""

    errors: int = 0
    scored_steps: int = 0
    argmax_hits: int = 0
    weighted_loss: float = 0.0
    min_postselection: float = 1.0
    batch_rates: list[float] = field(default_factory=list)
    confusion: torch.Tensor | None = None
    class_probabilities: list[torch.Tensor] = field(default_factory=list)


def _batches(dataset: Any, stage: str, samples: int | None, batch_size: int) -> Iterator[Any]:
    """The batches to score: the fixed split in order (all of it when `samples` is None), or `samples`
    generated sequences."""
    whole = dataset.split_size(stage) is not None
    remaining = samples if samples is not None else (None if whole else DEFAULT_GENERATED_SAMPLES)
    source = dataset.split_batches(stage, batch_size) if whole else iter(lambda: dataset.batch(stage), None)
    for batch in source:
        if remaining is not None:
            if remaining <= 0:
                return
            batch = batch.take(remaining)
            remaining -= batch.inputs.shape[0]
        yield batch


def _check_members(configs: list[dict[str, Any]], paths: list[str]) -> None:
    """Members of an ensemble must share their dataset, its sequence length and its data source."""
    from qrnn.datasets import lookup_run
    from qrnn.datasets.base import DEFAULT_ALPHABET

    def facts(config: dict[str, Any]) -> dict[str, Any]:
        entry = lookup_run(config)
        info = entry.cls.info(**entry.fixed)
        # The sentence length matters only where the dataset does not fix it.
        length = info.sequence_length if info is not None and info.sequence_length else config["sentence_length"]
        return {"dataset": config["dataset"], "alphabet": config.get("alphabet", DEFAULT_ALPHABET),
                "sequence length": length, "data": config.get("data_source")}

    first = facts(configs[0])
    for path, config in zip(paths[1:], configs[1:], strict=True):
        for key, value in facts(config).items():
            if value != first[key]:
                raise QRNNError(
                    f"ensemble members must share dataset and data: {path} has {key} {value!r}, "
                    f"{paths[0]} has {first[key]!r}"
                )


def evaluate_checkpoints(
    checkpoints: Sequence[str | os.PathLike[str]],
    stage: str = "test",
    samples: int | None = None,
    batch_size: int | None = None,
    seed: int | None = None,
    device: str = "cpu",
    dataset: str | None = None,
) -> EvaluationReport:
    """Evaluate one checkpoint, or several as an ensemble (with a report per member), on `stage`: the whole
    fixed split, its first `samples` sequences, or `samples` generated sequences (default 100), in batches of
    `batch_size` sequences (default: SPLIT_BATCH for a fixed split, else the first run's batch over all its
    shards), drawing generated data and samples from `seed` (default: the first run's seed). The data are the
    runs' dataset, or `dataset` (a registered name or family argument with the same word width and classes)."""
    from qrnn.datasets import lookup_run
    from qrnn.datasets.base import DEFAULT_ALPHABET, canonical_name, lookup
    from qrnn.datasets.files import check_dataset_file

    if stage not in STAGES_EVALUATED:
        raise QRNNError(f"unknown stage {stage!r}; valid: {', '.join(STAGES_EVALUATED)}")
    if samples is not None and (isinstance(samples, bool) or not isinstance(samples, int) or samples < 1):
        raise QRNNError(f"--samples must be an integer >= 1, got {samples!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise QRNNError(f"--seed must be an integer >= 0, got {seed!r}")
    if not checkpoints:
        raise QRNNError("evaluate needs at least one checkpoint")
    torch_device = resolve_device(device)
    paths = [str(path) for path in checkpoints]
    loaded = [load_checkpoint(path, device=torch_device) for path in paths]
    configs = [config for _, config in loaded]
    _check_members(configs, paths)
    config = configs[0]
    batch = batch_size if batch_size is not None else config["batch_size"] * config["num_shards"]
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise QRNNError(f"--batch-size must be an integer >= 1, got {batch!r}")
    seed = config["seed"] if seed is None else seed
    alphabet = config.get("alphabet", DEFAULT_ALPHABET)
    # Naming the runs' own dataset is the default: its file is checked against the one they trained on.
    other = dataset is not None and canonical_name(dataset) != config["dataset"]
    if other:
        # The file the runs trained on is not read: the model is scored on another dataset's data.
        entry = lookup(canonical_name(dataset), alphabet=alphabet)
    else:
        for path, member in zip(paths, configs, strict=True):
            check_dataset_file(member.get("dataset_file"), member["dataset"], alphabet, path)
        entry = lookup_run(config)
    entry.check_options(sentence_length=config["sentence_length"], batch_size=batch, num_shards=1)
    evaluated = entry.create(
        sentence_length=config["sentence_length"], batch_size=batch, shard=0, num_shards=1, seed=seed
    )
    if other:
        trained = lookup_run(config).create(
            sentence_length=config["sentence_length"], batch_size=1, shard=0, num_shards=1, seed=seed)
        if evaluated.classes != trained.classes:
            raise QRNNError(
                f"dataset {evaluated.name} has classes {_classes_text(evaluated.classes)}, the model of "
                f"{paths[0]} was trained on {config['dataset']} with classes {_classes_text(trained.classes)}; "
                "evaluate it on a dataset with the same classes"
            )
    if batch_size is None and evaluated.split_size(stage) is not None:
        # The run's batch is sized for training steps (per digit for MNIST); a fixed split is scored in larger
        # batches of whole sequences.
        batch = SPLIT_BATCH
    if evaluated.input_size != config["input_size"]:
        raise QRNNError(
            f"dataset {evaluated.name} has {evaluated.input_size}-bit words, the model of {paths[0]} "
            f"{config['input_size']}-bit words"
        )
    threads = choose_threads(batch, config["workspace"], 1, torch_device, config["model"])
    if threads is not None:
        torch.set_num_threads(threads)
    classes = list(evaluated.classes) if evaluated.classes is not None else None
    tallies = [_Tally() for _ in loaded]
    generators = [torch.Generator().manual_seed(sampling_seed(seed, 0)) for _ in loaded]
    labels_seen: list[torch.Tensor] = []
    count = 0
    with torch.no_grad():
        for data in _batches(evaluated, stage, samples, batch):
            count += data.inputs.shape[0]
            inputs = data.inputs.to(torch_device)
            targets = data.targets.to(torch_device)
            scored = data.scored.to(torch_device)
            postselected = data.postselection().to(torch_device)
            target_words = bits_to_int(targets[:, 1:])
            labels = None
            if classes is not None:
                labels = data.labels if data.labels is not None else evaluated.decode_labels(targets[:, 1:].cpu())
                labels_seen.append(labels.cpu())
            for (model, member_config), tally, generator in zip(loaded, tallies, generators, strict=True):
                probs, measured, minimum = model(
                    inputs, targets, postselect=postselect_steps(postselected), generator=generator
                )
                wrong = int(((bits_to_int(measured) != target_words) & scored).sum())
                steps = int(scored.sum())
                tally.errors += wrong
                tally.scored_steps += steps
                tally.batch_rates.append(wrong / steps if steps else float("nan"))
                loss_function = LOSS_FUNCTIONS[member_config["loss"]]
                tally.weighted_loss += float(loss_function(probs, target_words, scored)) * steps
                tally.min_postselection = min(tally.min_postselection, minimum)
                forced, _, _ = model(inputs, targets, postselect=True)
                tally.argmax_hits += int(((forced.argmax(1) == target_words) & scored).sum())
                if classes is not None and labels is not None:
                    if tally.confusion is None:
                        tally.confusion = torch.zeros(len(classes), len(classes) + 1, dtype=torch.long)
                    predicted = evaluated.decode_labels(measured.cpu())
                    _count_into(tally.confusion, labels, predicted)
                    tally.class_probabilities.append(class_probabilities(model, evaluated, inputs, scored, targets))
    truth = torch.cat(labels_seen) if labels_seen else None
    members = [
        _member_report(path, member_config, tally, stage, count, classes, truth, evaluated.name)
        for path, (_, member_config), tally in zip(paths, loaded, tallies, strict=True)
    ]
    whole = samples is None and evaluated.split_size(stage) is not None
    for member in members:
        member.whole_split = whole
    if len(members) == 1:
        return members[0]
    return _ensemble_report(members, tallies, classes, truth, whole)


def evaluate_checkpoint(
    checkpoint: str | os.PathLike[str],
    stage: str = "test",
    samples: int | None = None,
    batch_size: int | None = None,
    seed: int | None = None,
    device: str = "cpu",
    dataset: str | None = None,
) -> EvaluationReport:
    """Evaluate the model of one checkpoint (see `evaluate_checkpoints`)."""
    return evaluate_checkpoints([checkpoint], stage, samples, batch_size, seed, device, dataset)


def _classes_text(classes: Sequence[str] | None) -> str:
    return "none (not a classification dataset)" if classes is None else "(" + ", ".join(classes) + ")"


def _count_into(confusion: torch.Tensor, truth: torch.Tensor, predicted: torch.Tensor) -> None:
    """Add (true, predicted) pairs to a confusion matrix; -1 (no class) goes to the last column."""
    invalid = confusion.shape[1] - 1
    for true_class, predicted_class in zip(truth.tolist(), predicted.tolist(), strict=True):
        if true_class >= 0:
            confusion[true_class, predicted_class if predicted_class >= 0 else invalid] += 1


def _exact(probabilities: torch.Tensor, truth: torch.Tensor, num_classes: int) -> tuple[float, list[list[int]]]:
    """Accuracy and confusion matrix of the argmax of class probabilities (B x C)."""
    confusion = torch.zeros(num_classes, num_classes + 1, dtype=torch.long)
    _count_into(confusion, truth, probabilities.argmax(1))
    total = int(confusion.sum())
    return (float(confusion.diagonal().sum()) / total if total else float("nan")), confusion.tolist()


def _member_report(
    path: str,
    config: dict[str, Any],
    tally: _Tally,
    stage: str,
    samples: int,
    classes: list[str] | None,
    truth: torch.Tensor | None,
    dataset_name: str,
) -> EvaluationReport:
    stderr = None
    if len(tally.batch_rates) > 1:
        rates = torch.tensor(tally.batch_rates, dtype=torch.float64)
        stderr = float(rates.std(unbiased=True) / math.sqrt(len(tally.batch_rates)))
    steps = tally.scored_steps
    report = EvaluationReport(
        checkpoint=path,
        epoch=int(config["epoch"]),
        dataset=dataset_name,
        stage=stage,
        samples=samples,
        batches=len(tally.batch_rates),
        loss_name=config["loss"],
        loss=tally.weighted_loss / steps if steps else float("nan"),
        character_error_rate=tally.errors / steps if steps else float("nan"),
        character_error_rate_stderr=stderr,
        argmax_accuracy=tally.argmax_hits / steps if steps else float("nan"),
        min_postselection_probability=tally.min_postselection,
        classes=classes,
    )
    if classes is not None and tally.confusion is not None and truth is not None:
        total = int(tally.confusion.sum())
        report.classification_accuracy = float(tally.confusion.diagonal().sum()) / total if total else float("nan")
        report.confusion_matrix = tally.confusion.tolist()
        report.class_accuracy, report.class_confusion_matrix = _exact(
            torch.cat(tally.class_probabilities), truth, len(classes)
        )
    return report


def _mean(values: list[float | None]) -> float:
    numbers = [value for value in values if value is not None]
    return sum(numbers) / len(numbers) if numbers else float("nan")


def _ensemble_report(
    members: list[EvaluationReport],
    tallies: list[_Tally],
    classes: list[str] | None,
    truth: torch.Tensor | None,
    whole: bool,
) -> EvaluationReport:
    first = members[0]
    report = EvaluationReport(
        checkpoint="ensemble: " + ", ".join(member.checkpoint for member in members),
        epoch=None,
        dataset=first.dataset,
        stage=first.stage,
        samples=first.samples,
        batches=first.batches,
        loss_name=first.loss_name if len({m.loss_name for m in members}) == 1 else "mixed",
        loss=_mean([member.loss for member in members]),
        character_error_rate=_mean([member.character_error_rate for member in members]),
        character_error_rate_stderr=None,
        argmax_accuracy=_mean([member.argmax_accuracy for member in members]),
        min_postselection_probability=min(member.min_postselection_probability for member in members),
        classes=classes,
        whole_split=whole,
        members=members,
    )
    if classes is not None and truth is not None:
        report.classification_accuracy = _mean([member.classification_accuracy for member in members])
        mean_probabilities = torch.stack([torch.cat(tally.class_probabilities) for tally in tallies]).mean(0)
        report.class_accuracy, report.class_confusion_matrix = _exact(mean_probabilities, truth, len(classes))
    return report
