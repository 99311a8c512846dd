"""Datasets whose samples are sequences of integer words: the shared batch assembly and the text picture.

Subclasses of `WordDataset` produce integer words (B x L inputs and targets, B x (L-1) scored, optionally the
postselected steps) and render each word as one character; this module turns them into the bit tensors of
`Batch` and the aligned picture of `Dataset.format`.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import ClassVar

import torch

from qrnn.bits import bits_to_int, int_to_bits
from qrnn.datasets.base import STAGES, Batch, Dataset

DIGITS = "0123456789abcdefghijklmnopqrstuvwxyz"


def render_digit(word: int) -> str:
    """One character for a numeric word: 0-9 then a-z (base 36), '?' beyond."""
    return DIGITS[word] if 0 <= word < len(DIGITS) else "?"


def format_aligned(
    inputs: torch.Tensor, targets: torch.Tensor, measured: torch.Tensor, render: Callable[[int], str]
) -> str:
    """Three aligned lines for one sample: the inputs, the gold targets and the model's measured words.

    Position p of every line is word p of the sequence: step t feeds input p = t and predicts target p = t + 1,
    so the gold and model lines start one column to the right (target 0 is never predicted). `render` maps an
    integer word to exactly one character, which keeps the columns aligned."""
    lines = [
        ("input", bits_to_int(inputs.cpu()).tolist(), ""),
        ("gold", bits_to_int(targets.cpu())[1:].tolist(), " "),
        ("model", bits_to_int(measured.cpu()).tolist(), " "),
    ]
    return "\n".join(f"{label:<6}{pad}{''.join(render(word) for word in words)}" for label, words, pad in lines)


class WordDataset(Dataset):
    """A dataset of integer words of `word_bits` bits; subclasses implement `words` and may override
    `render_word` (default: one digit per word)."""

    word_bits: ClassVar[int]

    @property
    def input_size(self) -> int:
        """Bits per word."""
        return self.word_bits

    @property
    def sequence_length(self) -> int:
        """L: `--sentence-length` unless the dataset fixes it."""
        return self.sentence_length

    @abc.abstractmethod
    def words(self, stage: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Integer input words (B x L), target words (B x L) and the scored mask (B x (L-1), bool) of the next
        batch of `stage` (the postselected steps come from `postselected_steps`)."""

    def postselected_steps(self, target_words: torch.Tensor, scored: torch.Tensor) -> torch.Tensor | None:
        """The steps validation postselects (B x (L-1), bool), from the target words (B x L) and the scored
        mask; None (the default) leaves it to `Batch.postselection`: the unscored steps."""
        return None

    def render_word(self, word: int) -> str:
        """One character showing an integer word in `format`."""
        return render_digit(word)

    def batch(self, stage: str) -> Batch:
        """The next batch of `stage` as bit tensors (CPU, long) with the scored mask (CPU, bool)."""
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; valid stages: {', '.join(STAGES)}")
        input_words, target_words, scored = self.words(stage)
        scored = scored.to(torch.bool)
        return Batch(
            inputs=int_to_bits(input_words, self.word_bits),
            targets=int_to_bits(target_words, self.word_bits),
            scored=scored,
            postselected=self.postselected_steps(target_words, scored),
        )

    def format(self, inputs: torch.Tensor, targets: torch.Tensor, measured: torch.Tensor) -> str:
        """Inputs, gold targets and measured words of one sample, one character per word, aligned by
        position."""
        return format_aligned(inputs, targets, measured, self.render_word)
