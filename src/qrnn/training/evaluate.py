"""Evaluating a checkpoint: the paper's measure and exact numbers beside it.

- character error rate: as the original's validation, the steps the dataset does not score are postselected on
  their targets and the scored ones sampled; the rate is the fraction of scored steps whose measured word differs
  from the target word (over all samples), with a standard error from its spread across batches;
- argmax accuracy: exact, no sampling: with every step postselected on its target (teacher forcing), the fraction
  of scored steps where the most probable word is the target word;
- loss: the run's training loss (original or nll) on the scored steps of the sampled pass, as the validation loss;
- for classification datasets, the accuracy of the sampled labels and a confusion matrix (rows: true class,
  columns: predicted class, last column: words that encode no class).
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from dataclasses import dataclass

import torch

from qrnn.bits import bits_to_int
from qrnn.errors import QRNNError
from qrnn.training.checkpoint import load_checkpoint
from qrnn.training.loop import postselect_unscored, sampling_seed
from qrnn.training.models import LOSS_FUNCTIONS, choose_threads, resolve_device

STAGES_EVALUATED = ("validate", "test")


@dataclass
class EvaluationReport:
    """The numbers of one evaluation; floats are None where undefined (e.g. a standard error of one batch)."""

    checkpoint: str
    epoch: int
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

    def to_json(self) -> str:
        """The report as JSON (NaN written as null)."""
        values = {
            key: (None if isinstance(value, float) and not math.isfinite(value) else value)
            for key, value in dataclasses.asdict(self).items()
        }
        return json.dumps(values, indent=2)

    def to_text(self) -> str:
        """A human-readable report."""
        stderr = f" ± {self.character_error_rate_stderr:.4f}" if self.character_error_rate_stderr is not None else ""
        lines = [
            f"checkpoint: {self.checkpoint} (epoch {self.epoch})",
            f"data: {self.dataset}, stage {self.stage}, {self.samples} samples in {self.batches} batches",
            f"character error rate (sampled, scored steps): {self.character_error_rate:.4f}{stderr}",
            f"argmax accuracy (teacher-forced, scored steps): {self.argmax_accuracy:.4f}",
            f"loss ({self.loss_name}, sampled pass as in validation): {self.loss:.4f}",
            f"min postselection probability: {self.min_postselection_probability:.4g}",
        ]
        if self.classes is not None and self.confusion_matrix is not None:
            lines.append(f"classification accuracy (sampled labels): {self.classification_accuracy:.4f}")
            header = ["true \\ predicted", *self.classes, "invalid"]
            rows = [[name, *map(str, counts)] for name, counts in zip(self.classes, self.confusion_matrix, strict=True)]
            widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
            for row in [header, *rows]:
                lines.append("  ".join(cell.rjust(width) for cell, width in zip(row, widths, strict=True)))
        return "\n".join(lines)


def evaluate_checkpoint(
    checkpoint: str | os.PathLike[str],
    stage: str = "test",
    samples: int = 100,
    batch_size: int | None = None,
    seed: int | None = None,
    device: str = "cpu",
) -> EvaluationReport:
    """Evaluate the model of `checkpoint` on `samples` sequences of `stage`, in batches of `batch_size` (default:
    the run's batch over all its shards), drawing data and samples from `seed` (default: the run's seed)."""
    from qrnn.datasets import lookup
    from qrnn.datasets.base import DEFAULT_ALPHABET
    from qrnn.datasets.files import check_dataset_file

    if stage not in STAGES_EVALUATED:
        raise QRNNError(f"unknown stage {stage!r}; valid: {', '.join(STAGES_EVALUATED)}")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise QRNNError(f"--samples must be an integer >= 1, got {samples!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise QRNNError(f"--seed must be an integer >= 0, got {seed!r}")
    torch_device = resolve_device(device)
    model, config = load_checkpoint(checkpoint, device=torch_device)
    batch = batch_size if batch_size is not None else config["batch_size"] * config["num_shards"]
    seed = config["seed"] if seed is None else seed
    alphabet = config.get("alphabet", DEFAULT_ALPHABET)
    check_dataset_file(config.get("dataset_file"), config["dataset"], alphabet, str(checkpoint))
    entry = lookup(config["dataset"], alphabet=alphabet)
    entry.check_options(sentence_length=config["sentence_length"], batch_size=batch, num_shards=1)
    dataset = entry.create(
        sentence_length=config["sentence_length"], batch_size=batch, shard=0, num_shards=1, seed=seed
    )
    if dataset.input_size != config["input_size"]:
        raise QRNNError(
            f"dataset {config['dataset']} has {dataset.input_size}-bit words, the model of {checkpoint} "
            f"{config['input_size']}-bit words"
        )
    loss_function = LOSS_FUNCTIONS[config["loss"]]
    threads = choose_threads(batch, config["workspace"], 1, torch_device, config["model"])
    if threads is not None:
        torch.set_num_threads(threads)
    sampling = torch.Generator().manual_seed(sampling_seed(seed, 0))
    classes = list(dataset.classes) if dataset.classes is not None else None
    confusion = torch.zeros(len(classes), len(classes) + 1, dtype=torch.long) if classes else None

    errors = scored_steps = argmax_hits = 0
    batch_rates: list[float] = []
    weighted_loss = 0.0
    min_postselection = 1.0
    remaining = samples
    with torch.no_grad():
        while remaining > 0:
            data = dataset.batch(stage)
            take = min(remaining, data.inputs.shape[0])
            remaining -= take
            inputs = data.inputs[:take].to(torch_device)
            targets = data.targets[:take].to(torch_device)
            scored = data.scored[:take].to(torch_device)
            target_words = bits_to_int(targets[:, 1:])
            probs, measured, minimum = model(
                inputs, targets, postselect=postselect_unscored(scored), generator=sampling
            )
            wrong = ((bits_to_int(measured) != target_words) & scored).sum().item()
            count = int(scored.sum().item())
            errors += wrong
            scored_steps += count
            batch_rates.append(wrong / count if count else float("nan"))
            weighted_loss += float(loss_function(probs, target_words, scored)) * count
            min_postselection = min(min_postselection, minimum)
            forced, _, _ = model(inputs, targets, postselect=True)
            argmax_hits += int(((forced.argmax(1) == target_words) & scored).sum().item())
            if confusion is not None:
                truth = dataset.decode_labels(targets[:, 1:].cpu())
                predicted = dataset.decode_labels(measured.cpu())
                for true_class, predicted_class in zip(truth.tolist(), predicted.tolist(), strict=True):
                    if true_class >= 0:
                        confusion[true_class, predicted_class if predicted_class >= 0 else len(classes)] += 1
    stderr = None
    if len(batch_rates) > 1:
        rates = torch.tensor(batch_rates, dtype=torch.float64)
        stderr = float(rates.std(unbiased=True) / math.sqrt(len(batch_rates)))
    classification_accuracy = None
    if confusion is not None:
        total = int(confusion.sum())
        classification_accuracy = float(confusion.diagonal().sum()) / total if total else float("nan")
    return EvaluationReport(
        checkpoint=str(checkpoint),
        epoch=int(config["epoch"]),
        dataset=config["dataset"],
        stage=stage,
        samples=samples,
        batches=len(batch_rates),
        loss_name=config["loss"],
        loss=weighted_loss / scored_steps if scored_steps else float("nan"),
        character_error_rate=errors / scored_steps if scored_steps else float("nan"),
        character_error_rate_stderr=stderr,
        argmax_accuracy=argmax_hits / scored_steps if scored_steps else float("nan"),
        min_postselection_probability=min_postselection,
        classes=classes,
        classification_accuracy=classification_accuracy,
        confusion_matrix=confusion.tolist() if confusion is not None else None,
    )
