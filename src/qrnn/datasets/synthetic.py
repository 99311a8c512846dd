"""The generated datasets of the original implementation: `simple-seq`, `elman-xor`, `elman-letter`, `dna`, and
`dna-every-output` (the DNA strings as its comparison notebooks score them).

Alignment everywhere (see `qrnn.datasets.base`): step t feeds `inputs[:, t]` and predicts `targets[:, t + 1]`,
`scored[:, t]` says whether that prediction counts in the loss and the error rate (the original's `filter`) and
`postselected[:, t]` whether validation postselects it (the original's `ignore_output_at_step`). Layouts, target
words and both masks are the original's (commit 400a5eb), quirks included; only the random streams are ours.
"""

from __future__ import annotations

import torch

from qrnn.datasets.base import DatasetInfo, register
from qrnn.datasets.words import WordDataset
from qrnn.errors import QRNNError


class SimpleSequence(WordDataset):
    """Two fixed 3-bit sentences to memorise: 0,1,2,3,0,1,2,3,... and 4,4,4,...; targets = inputs, every step
    scored. There are exactly two sentences, so shards x batch must be 2: shard s with batch b gets sentences
    [s*b, (s+1)*b). Every stage returns the same sentences (the task is memorisation)."""

    name = "simple-seq"
    description = "two fixed 3-bit sentences to memorise: 0,1,2,3,0,1,... and 4,4,4,..."
    word_bits = 3
    NUM_SENTENCES = 2

    @classmethod
    def check_options(
        cls, *, sentence_length: int, batch_size: int, num_shards: int, **fixed: object
    ) -> None:
        """Besides the common checks: exactly two sentences are shared out, so shards x batch must be 2."""
        super().check_options(sentence_length=sentence_length, batch_size=batch_size, num_shards=num_shards)
        if num_shards * batch_size != cls.NUM_SENTENCES:
            raise QRNNError(
                f"simple-seq needs shards x batch = 2, got {num_shards} x {batch_size} "
                f"(use --num-shards 1 --batch-size 2 or --num-shards 2 --batch-size 1)"
            )

    @classmethod
    def info(cls, **fixed: object) -> DatasetInfo:
        """3-bit words, length from --sentence-length, two fixed sentences."""
        return DatasetInfo(input_size=cls.word_bits, sequence_length=None, splits="2 fixed sentences")

    def words(self, stage: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """This shard's share of the two sentences; targets = inputs, all steps scored."""
        length = self.sentence_length
        sentences = torch.stack([torch.arange(length) % 4, torch.full((length,), 4)])
        mine = sentences[self.shard * self.batch_size : (self.shard + 1) * self.batch_size].clone()
        return mine, mine.clone(), torch.ones(len(mine), length - 1, dtype=torch.bool)


class ElmanXOR(WordDataset):
    """Elman's temporal XOR: a stream of random bit triples (a, b, a xor b) presented as 2-bit words
    [0,a], [0,b], [0,c], one stream per sample, starting on a triple boundary and cut to the sentence length.

    Alignment: position p holds word p of the stream. Only c (p = 2 mod 3) can be predicted, from the a and b
    fed at the two steps before. So the target at p is the marker [1,0] (word 2) where the input at p is a or
    b (p = 0, 1 mod 3), and [0,c] where it is c (p = 2 mod 3). Step t feeds input t and predicts target t + 1,
    so `scored[:, t]` is true exactly when t + 1 = 2 mod 3 (t = 1, 4, 7, ...): the step that has just seen b
    predicts c. The marker steps are postselected in validation."""

    name = "elman-xor"
    description = "Elman's temporal XOR: random triples (a, b, a xor b); only the xor bit is scored"
    word_bits = 2
    MARKER = 0b10

    @classmethod
    def check_options(
        cls, *, sentence_length: int, batch_size: int, num_shards: int, **fixed: object
    ) -> None:
        """Besides the common checks: at least one whole triple, so that some step is scored."""
        super().check_options(sentence_length=sentence_length, batch_size=batch_size, num_shards=num_shards)
        if sentence_length < 3:
            raise QRNNError(
                f"elman-xor needs --sentence-length of at least 3 (one triple a, b, a xor b), "
                f"got {sentence_length}"
            )

    @classmethod
    def info(cls, **fixed: object) -> DatasetInfo:
        """2-bit words, length from --sentence-length, generated."""
        return DatasetInfo(input_size=cls.word_bits, sequence_length=None, splits="generated")

    def words(self, stage: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A fresh random stream per sample; targets and scored mask as in the class docstring."""
        length = self.sentence_length
        num_triples = -(-length // 3)
        pairs = torch.randint(0, 2, (self.batch_size, num_triples, 2), generator=self.generator(stage))
        triples = torch.cat([pairs, pairs[:, :, :1] ^ pairs[:, :, 1:]], dim=2)
        inputs = triples.reshape(self.batch_size, 3 * num_triples)[:, :length]
        predictable = torch.arange(length) % 3 == 2
        targets = torch.where(predictable, inputs, torch.full_like(inputs, self.MARKER))
        scored = predictable[1:].expand(self.batch_size, length - 1).clone()
        return inputs, targets, scored


class ElmanLetter(WordDataset):
    """Elman's letter sequences: a random string of the consonants b, d, g, each followed by its vowels
    (b -> ba, d -> dii, g -> guuu), one string per sample, cut to the sentence length. 3-bit codes: b=100,
    d=101, g=110, a=000, i=001, u=010.

    As the original: the target at a vowel is the vowel, the target at a consonant is the marker 111 (a
    consonant cannot be predicted), and every step is scored, the marker steps included. Validation postselects
    the steps whose target is a consonant code (100, 101, 110), which never occurs since consonant targets are
    111: nothing is postselected and every step is sampled."""

    name = "elman-letter"
    # Version 2: the original's targets, scoring and text (issue 9); version 1 checkpoints are refused.
    layout_version = 2
    description = "Elman's letters: random consonants b, d, g expanded to ba, dii, guuu; consonant targets 111"
    word_bits = 3
    MARKER = 0b111
    CODES = {"a": 0b000, "i": 0b001, "u": 0b010, "b": 0b100, "d": 0b101, "g": 0b110}
    SYLLABLES = ("ba", "dii", "guuu")
    # Letters for `format`, by code; 011 is unused, 111 is the marker.
    LETTERS = "aiu?bdg*"

    @classmethod
    def info(cls, **fixed: object) -> DatasetInfo:
        """3-bit words, length from --sentence-length, generated."""
        return DatasetInfo(input_size=cls.word_bits, sequence_length=None, splits="generated")

    def words(self, stage: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A fresh random letter string per sample; consonant targets are the marker; every step scored."""
        length = self.sentence_length
        # Every syllable has at least two letters, so this many consonants always fill the length.
        num_consonants = length // 2 + 1
        choices = torch.randint(0, 3, (self.batch_size, num_consonants), generator=self.generator(stage))
        syllable_codes = [[self.CODES[letter] for letter in syllable] for syllable in self.SYLLABLES]
        inputs = torch.tensor(
            [
                [code for choice in row for code in syllable_codes[choice]][:length]
                for row in choices.tolist()
            ],
            dtype=torch.long,
        ).reshape(self.batch_size, length)
        is_vowel = inputs < 0b100
        targets = torch.where(is_vowel, inputs, torch.full_like(inputs, self.MARKER))
        return inputs, targets, torch.ones(self.batch_size, length - 1, dtype=torch.bool)

    def postselected_steps(self, target_words: torch.Tensor, scored: torch.Tensor) -> torch.Tensor:
        """The original's rule: postselect a target that is a consonant's code (never true: those are 111)."""
        consonant_codes = torch.tensor([self.CODES[letter] for letter in "bdg"])
        return torch.isin(target_words[:, 1:], consonant_codes)

    def render_word(self, word: int) -> str:
        """The letter of a code ('*' for the marker)."""
        return self.LETTERS[word]


class DNA(WordDataset):
    """Long-term memory: a random string of bases 0-3 (3-bit words) of the sentence length L, in which one
    position p, uniform in 1 .. L//2 - 1 (the original's `randint(1, L // 2)`), carries a marker: the word
    base + 4 (top bit set). The targets are 0 before p, the marked word itself (base + 4) at p, and the plain
    base after p. Only the last step (predicting target L-1, the base) is scored; validation postselects every
    other step, so the network must carry one base over up to L - 2 steps."""

    name = "dna"
    # Version 2: the original's targets, scoring and text (issue 9); version 1 checkpoints are refused.
    layout_version = 2
    description = "remember the marked base of a random DNA string until the end; only the last step is scored"
    word_bits = 3
    MARKER_BIT = 0b100

    @classmethod
    def check_options(
        cls, *, sentence_length: int, batch_size: int, num_shards: int, **fixed: object
    ) -> None:
        """Besides the common checks: room for a marker in 1 .. L//2 - 1, which needs L >= 4."""
        super().check_options(sentence_length=sentence_length, batch_size=batch_size, num_shards=num_shards)
        if sentence_length < 4:
            raise QRNNError(
                f"dna needs --sentence-length of at least 4 (the marker sits in 1 .. L//2 - 1), "
                f"got {sentence_length}"
            )

    @classmethod
    def info(cls, **fixed: object) -> DatasetInfo:
        """3-bit words, length from --sentence-length, generated."""
        return DatasetInfo(input_size=cls.word_bits, sequence_length=None, splits="generated")

    def words(self, stage: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Fresh random strings and marker positions per sample; only the last step scored."""
        length, batch = self.sentence_length, self.batch_size
        generator = self.generator(stage)
        bases = torch.randint(0, 4, (batch, length), generator=generator)
        marker_positions = torch.randint(1, length // 2, (batch, 1), generator=generator)
        marked_bases = bases.gather(1, marker_positions)
        positions = torch.arange(length).expand(batch, length)
        at_marker = positions == marker_positions
        inputs = torch.where(at_marker, bases + self.MARKER_BIT, bases)
        targets = torch.where(positions > marker_positions, marked_bases, torch.zeros_like(bases))
        targets = torch.where(at_marker, marked_bases + self.MARKER_BIT, targets)
        scored = torch.zeros(batch, length - 1, dtype=torch.bool)
        scored[:, -1] = True
        return inputs, targets, scored


class DNAEveryOutput(DNA):
    """The DNA strings of `dna` scored as the original's comparison notebooks score their LSTM and RNN
    (notebooks/long-sequence-comparisons-*.ipynb): at every output, the output after word t predicting target t
    (0 before the marker, the marked word itself at it, the base after it). In qrnn's alignment (step t predicts
    target t + 1) a sequence is L + 1 words: the L words of the string and a last 0 that is never read, against
    a 0 and the string's L targets; all L steps are scored and validation postselects none."""

    name = "dna-every-output"
    description = "dna scored at every output, as the original's LSTM/RNN notebooks score it (no steps postselected)"

    @property
    def sequence_length(self) -> int:
        """L + 1: the string and the never-read last word."""
        return self.sentence_length + 1

    def words(self, stage: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """The `dna` strings, shifted so that step t predicts the target at word t; every step scored."""
        inputs, targets, _ = super().words(stage)
        padding = torch.zeros(inputs.shape[0], 1, dtype=inputs.dtype)
        scored = torch.ones(inputs.shape[0], inputs.shape[1], dtype=torch.bool)
        return torch.cat([inputs, padding], 1), torch.cat([padding, targets], 1), scored


for _dataset in (SimpleSequence, ElmanXOR, ElmanLetter, DNA, DNAEveryOutput):
    register(_dataset.name, _dataset, _dataset.description)
