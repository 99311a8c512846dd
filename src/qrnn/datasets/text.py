"""Text as 5-bit words (the 32-symbol alphabet shared by `simple-quotes` and `shakespeare`), the text
normalisation, and the `simple-quotes` dataset."""

from __future__ import annotations

import re

import numpy as np
import torch

from qrnn.datasets.base import DatasetInfo, register
from qrnn.datasets.words import WordDataset
from qrnn.errors import QRNNError

# Code = index: a..z are 0..25, then , . ? ! space newline. 32 symbols, so a character is a 5-bit word.
ALPHABET = "abcdefghijklmnopqrstuvwxyz,.?! \n"
CHARACTER_BITS = 5
VOWELS = "aeiou"
CONSONANTS = "".join(letter for letter in ALPHABET[:26] if letter not in VOWELS)
# How `format` shows the newline, so that a sample stays on one line.
NEWLINE_GLYPH = "↵"

_CODE_OF = {character: code for code, character in enumerate(ALPHABET)}
_DIGIT_NAMES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
# The original's replacement table: four punctuation marks to a comma, each digit to its name.
_FOLD = str.maketrans(
    {"'": ",", ";": ",", '"': ",", ":": ",", **{str(digit): name for digit, name in enumerate(_DIGIT_NAMES)}}
)
_OUTSIDE_ALPHABET = re.compile(r"[^abcdefghijklmnopqrstuvwxyz,.?! \n]")
# Line breaks as Python's text mode reads them (the original iterates over the lines of its file).
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def encode_text(text: str) -> np.ndarray:
    """The codes (uint8, one per character) of a text that uses only `ALPHABET`."""
    try:
        return np.fromiter((_CODE_OF[character] for character in text), dtype=np.uint8, count=len(text))
    except KeyError as error:
        raise ValueError(f"character {error.args[0]!r} is not in the 5-bit alphabet {ALPHABET!r}") from None


def decode_text(codes: np.ndarray | torch.Tensor | list[int]) -> str:
    """The text of a sequence of codes (inverse of `encode_text`)."""
    values = codes.tolist() if hasattr(codes, "tolist") else codes
    return "".join(ALPHABET[code] for code in values)


def render_character(code: int) -> str:
    """One printable character for a code: its letter, the newline as a glyph, '?' outside the alphabet."""
    if not 0 <= code < len(ALPHABET):
        return "?"
    character = ALPHABET[code]
    return NEWLINE_GLYPH if character == "\n" else character


def normalise_text(text: str) -> str:
    """Fold arbitrary text into the alphabet as the original's Shakespeare loader does: each line (split at
    `\n`, `\r\n` or `\r`) loses its trailing white space and the lines are joined with no separator (so no
    newline survives); lower case; ' ; " : become a comma; each digit is spelled out with no space ("12" ->
    "onetwo"); every other character outside the alphabet becomes a space."""
    lines = _LINE_BREAK.split(text)
    folded = "".join(line.rstrip().lower().translate(_FOLD) for line in lines)
    return _OUTSIDE_ALPHABET.sub(" ", folded)


class SimpleQuotes(WordDataset):
    """The original's six quotes to memorise, as 5-bit characters padded with spaces to the longest (70
    characters, which fixes the sequence length; `--sentence-length` is ignored); targets = inputs. As the
    original: every step is scored (the loss and the character error rate cover all of them, in training and in
    validation), and validation postselects the steps whose target is a consonant (advice), so those count as
    right. Shards x batch must be 6: shard s with batch b gets quotes [s*b, (s+1)*b). Every stage returns the
    same quotes."""

    name = "simple-quotes"
    # Version 2: the original's targets, scoring and text (issue 9); version 1 checkpoints are refused.
    layout_version = 2
    description = "six quotes to memorise (5-bit characters); all steps scored, consonants postselected"
    word_bits = CHARACTER_BITS
    # The original's quotes, spelling included.
    QUOTES = (
        "to keep your balance, you must keep moving.",
        "be yourself, everyone else is already taken.",
        "the future belongs to those who believe in the beauty of their dreams.",
        "you must be the change you with to see in the world.",
        "the most certain way to succeed is always to try just one more time.",
        "wir muessen wissen, wir werden wissen.",
    )
    LENGTH = max(len(quote) for quote in QUOTES)

    @classmethod
    def check_options(
        cls, *, sentence_length: int, batch_size: int, num_shards: int, **fixed: object
    ) -> None:
        """The quotes are shared out whole, so shards x batch must be 6 (the sentence length is ignored)."""
        if batch_size < 1:
            raise QRNNError(f"--batch-size must be at least 1, got {batch_size}")
        if num_shards * batch_size != len(cls.QUOTES):
            raise QRNNError(
                f"simple-quotes needs shards x batch = 6, got {num_shards} x {batch_size} "
                f"(e.g. --num-shards 1 --batch-size 6, or --num-shards 2 --batch-size 3)"
            )

    @classmethod
    def info(cls, **fixed: object) -> DatasetInfo:
        """5-bit characters, the padded quote length, six fixed quotes."""
        return DatasetInfo(input_size=cls.word_bits, sequence_length=cls.LENGTH, splits="6 fixed quotes")

    @property
    def sequence_length(self) -> int:
        """The length of the longest quote (the others are padded with spaces)."""
        return self.LENGTH

    def words(self, stage: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """This shard's quotes; targets = inputs; every step scored."""
        mine = self.QUOTES[self.shard * self.batch_size : (self.shard + 1) * self.batch_size]
        codes = torch.from_numpy(np.stack([encode_text(quote.ljust(self.LENGTH)) for quote in mine])).long()
        return codes, codes.clone(), torch.ones(len(mine), self.LENGTH - 1, dtype=torch.bool)

    def postselected_steps(self, target_words: torch.Tensor, scored: torch.Tensor) -> torch.Tensor:
        """The steps whose target is a consonant (advice in validation)."""
        consonant_codes = torch.tensor([_CODE_OF[letter] for letter in CONSONANTS])
        return torch.isin(target_words[:, 1:], consonant_codes)

    def render_word(self, word: int) -> str:
        """The character of a code."""
        return render_character(word)


register(SimpleQuotes.name, SimpleQuotes, SimpleQuotes.description)
