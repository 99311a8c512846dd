"""Your own sequences: datasets read from a text file (`text:PATH`), from an `.npz` file (`npz:PATH`), or made in
memory from arrays (`from_arrays`, named `arrays:<hash>`).

- `text:PATH`: next-character prediction over a UTF-8 text file (Windows line ends read as newlines). The words
  are the file's own characters, sorted, in the fewest bits that hold them (at most 32 characters: 5 bits), or
  with `--alphabet original` the text folded into the 5-bit alphabet of `simple-quotes`
  (`qrnn.datasets.text.normalise_text`). The text splits contiguously: the first 90 % trains, the next 5 %
  validates, the last 5 % tests. A sample is a window of `--sentence-length` characters at a random position
  within the stage's split; targets = inputs; every step is scored.
- `npz:PATH` and `from_arrays`: one sequence per row. `inputs` is N x L x I bits, or N x L integer words with
  `word_bits` = I; `targets` (same form; default the inputs: next-word prediction), `scored` (N x (L-1) bool,
  default all), `split` (N of train/validate/test or 0/1/2; default a shuffle seeded with `SPLIT_SEED`, 90/5/5).
  The sequence length is the file's (`--sentence-length` does not apply). A batch draws rows of the stage's
  split uniformly at random (with replacement) from the shard's generator.
  With `labels` (N class indices) and `classes` (the C class names), `inputs` are the P content words of each
  sample and the loader appends the label in the original implementation's layout for its PCA and UMAP
  datasets: inputs = the P content words then K-1 zero words (L = P+K-1); targets = P-1 zero words then the K
  label words (the class index in binary with ceil(log2 C) bits, left-padded with zeros to K x I bits, most
  significant first); scored (and, in validation, sampled) are the steps t = P-2 .. P+K-3, which predict the
  label words; the others are postselected. As in the original, the first label word is predicted after the
  second-to-last content word, and with K = 1 the last content word is never fed.

Checkpoints record the file's path and SHA-256 (`Dataset.dataset_file`); `check_dataset_file` refuses a changed
file. Every bad input is a one-line `QRNNError` naming the file, the array and what is allowed.
"""

from __future__ import annotations

import functools
import hashlib
import io
import math
import os
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qrnn.bits import bits_to_int, int_to_bits
from qrnn.datasets.base import (
    DEFAULT_ALPHABET,
    STAGES,
    Batch,
    DatasetFamily,
    DatasetInfo,
    RegisteredDataset,
    lookup,
    register_family,
)
from qrnn.datasets.mnist import count_label_words, encode_label_words
from qrnn.datasets.text import ALPHABET, NEWLINE_GLYPH, encode_text, normalise_text, render_character
from qrnn.datasets.words import WordDataset, format_aligned, render_digit
from qrnn.errors import QRNNError
from qrnn.files import MAX_MEMORY_BYTES, npz_members, read_bytes

ALPHABETS = (DEFAULT_ALPHABET, "original")
# Files are read whole into memory; larger ones are refused before reading, and so are `.npz` files whose arrays
# would take more than this once inflated.
MAX_FILE_BYTES = MAX_MEMORY_BYTES
# The model's output is a distribution over 2^I words, so wide words cost memory exponentially.
MAX_WORD_BITS = 12
MAX_TEXT_SYMBOLS = 32
SPLIT_FRACTIONS = (0.90, 0.05, 0.05)
# The default split of an .npz is a property of the file, not of the run: the same for every --seed.
SPLIT_SEED = 0
NPZ_ARRAYS = ("inputs", "targets", "scored", "labels", "classes", "split", "word_bits")


# ---- reading files ----


def _read_file(path: Path, what: str) -> bytes:
    """The bytes of a user's file, or one line saying why not."""
    return read_bytes(path, what, MAX_FILE_BYTES)


def _file_key(argument: str) -> tuple[str, int, int]:
    """The absolute path and what identifies this version of the file for the load caches."""
    path = Path(canonical_path(argument))
    try:
        stat = path.stat()
    except OSError:
        return str(path), -1, -1
    return str(path), stat.st_mtime_ns, stat.st_size


def canonical_path(argument: str) -> str:
    """The absolute form of a file argument (`~` expanded, symbolic links kept)."""
    if not argument:
        raise QRNNError("a file dataset needs a path: --dataset text:PATH or --dataset npz:PATH")
    return os.path.abspath(os.path.expanduser(argument))


def _split_ends(total: int) -> tuple[int, int, int]:
    """End offsets of the contiguous train, validate and test parts of `total` items (as `shakespeare`)."""
    return (
        round(total * SPLIT_FRACTIONS[0]),
        round(total * (SPLIT_FRACTIONS[0] + SPLIT_FRACTIONS[1])),
        total,
    )


# ---- text files ----


@dataclass(frozen=True, eq=False)
class TextCorpus:
    """A text file read as character codes: `symbols[code]` is the character of a code (the alphabet),
    `ends` the end offsets of the train, validate and test parts."""

    path: str
    sha256: str
    alphabet: str
    symbols: str
    codes: np.ndarray
    word_bits: int
    ends: tuple[int, int, int]

    @property
    def record(self) -> dict[str, str | None]:
        """What checkpoints record about the file."""
        return {"path": self.path, "sha256": self.sha256}

    def split_range(self, stage: str) -> tuple[int, int]:
        """The [start, end) character offsets of `stage`'s part."""
        index = STAGES.index(stage)
        return (0, *self.ends)[index], self.ends[index]


def load_text(argument: str, alphabet: str = DEFAULT_ALPHABET) -> TextCorpus:
    """The text file `argument` as a `TextCorpus` (cached while the file is unchanged); one-line errors."""
    if alphabet not in ALPHABETS:
        raise QRNNError(f"unknown --alphabet {alphabet!r}; valid: {', '.join(ALPHABETS)}")
    return _load_text(*_file_key(argument), alphabet)


@functools.lru_cache(maxsize=8)
def _load_text(path_text: str, _mtime: int, _size: int, alphabet: str) -> TextCorpus:
    path = Path(path_text)
    data = _read_file(path, "text file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as error:
        raise QRNNError(
            f"text file {path} is not UTF-8 text (byte {error.start} is 0x{data[error.start]:02x}); "
            "text:PATH reads UTF-8"
        ) from None
    text = text.replace("\r\n", "\n")
    if alphabet == "original":
        text = normalise_text(text)
        symbols = ALPHABET
        codes = encode_text(text)
    else:
        symbols = "".join(sorted(set(text)))
        if len(symbols) > MAX_TEXT_SYMBOLS:
            raise QRNNError(
                f"text file {path} uses {len(symbols)} different characters; text:PATH takes at most "
                f"{MAX_TEXT_SYMBOLS} (5-bit words): pass --alphabet original to fold it into the 5-bit alphabet "
                "of simple-quotes"
            )
        lookup_table = {character: code for code, character in enumerate(symbols)}
        codes = np.fromiter((lookup_table[c] for c in text), dtype=np.uint8, count=len(text))
    ends = _split_ends(len(codes))
    smallest = min(np.diff((0, *ends)))
    if smallest < 2:
        raise QRNNError(
            f"text file {path} has {len(codes)} characters: too short for a 90/5/5 % split with at least 2 "
            "characters in each part (about 40 characters or more)"
        )
    return TextCorpus(
        path=str(path),
        sha256=hashlib.sha256(data).hexdigest(),
        alphabet=alphabet,
        symbols=symbols,
        codes=codes,
        word_bits=max(1, math.ceil(math.log2(len(symbols)))),
        ends=ends,
    )


def _render_symbol(character: str) -> str:
    """One printable character for a character of the text (keeps the `format` columns aligned)."""
    if character == "\n":
        return NEWLINE_GLYPH
    if character == "\t":
        return "⇥"
    return character if character.isprintable() and len(character) == 1 else "?"


class TextFileDataset(WordDataset):
    """`text:PATH`: random windows of a text file's characters; targets = inputs; every step scored (see the
    module docstring)."""

    name = "text"
    description = "a text file's characters, random windows of --sentence-length; all steps scored"
    word_bits = 5

    def __init__(self, *, corpus: TextCorpus, **options: Any) -> None:
        super().__init__(**options)
        self.corpus = corpus
        self.name = f"text:{corpus.path}"  # type: ignore[misc]
        self.word_bits = corpus.word_bits  # type: ignore[misc]
        self.dataset_file = corpus.record

    @classmethod
    def check_options(
        cls, *, sentence_length: int, batch_size: int, num_shards: int, **fixed: Any
    ) -> None:
        """Besides the common checks: a window must fit into the smallest part of the text."""
        super().check_options(sentence_length=sentence_length, batch_size=batch_size, num_shards=num_shards)
        corpus: TextCorpus = fixed["corpus"]
        smallest = min(np.diff((0, *corpus.ends)))
        if sentence_length > smallest:
            raise QRNNError(
                f"text file {corpus.path}: --sentence-length must be at most {smallest} (its smallest split, "
                f"5 % of {len(corpus.codes)} characters), got {sentence_length}"
            )

    @classmethod
    def info(cls, **fixed: Any) -> DatasetInfo:
        """The word width, length from --sentence-length, the split sizes in characters."""
        corpus: TextCorpus = fixed["corpus"]
        sizes = np.diff((0, *corpus.ends))
        splits = " / ".join(f"{stage} {int(n):,}" for stage, n in zip(STAGES, sizes, strict=True)) + " chars"
        return DatasetInfo(input_size=corpus.word_bits, sequence_length=None, splits=splits)

    def words(self, stage: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Random windows of the stage's part; targets = inputs; all steps scored."""
        low, high = self.corpus.split_range(stage)
        length = self.sentence_length
        starts = torch.randint(low, high - length + 1, (self.batch_size, 1), generator=self.generator(stage))
        windows = torch.from_numpy(self.corpus.codes)[starts + torch.arange(length)].long()
        return windows, windows.clone(), torch.ones(self.batch_size, length - 1, dtype=torch.bool)

    def split_size(self, stage: str) -> int:
        """The stage's part cut into consecutive windows of `--sentence-length` (the rest dropped)."""
        low, high = self.corpus.split_range(stage)
        return (high - low) // self.sentence_length

    def split_batches(self, stage: str, batch_size: int) -> Iterator[Batch]:
        """The consecutive windows of the stage's part, in text order."""
        low, _ = self.corpus.split_range(stage)
        length, count = self.sentence_length, self.split_size(stage)
        codes = torch.from_numpy(self.corpus.codes)
        for first in range(0, count, batch_size):
            starts = low + length * torch.arange(first, min(first + batch_size, count)).unsqueeze(1)
            windows = codes[starts + torch.arange(length)].long()
            yield Batch(
                inputs=int_to_bits(windows, self.word_bits),
                targets=int_to_bits(windows, self.word_bits),
                scored=torch.ones(len(windows), length - 1, dtype=torch.bool),
            )

    def render_word(self, word: int) -> str:
        """The character of a code."""
        if self.corpus.alphabet == "original":
            return render_character(word)
        return _render_symbol(self.corpus.symbols[word]) if 0 <= word < len(self.corpus.symbols) else "?"


# ---- sequence tables: .npz files and in-memory arrays ----


@dataclass(frozen=True, eq=False)
class SequenceTable:
    """Validated sequences as integer words: `inputs`, `targets` (N x L), `scored` (N x (L-1)), `stage` (N: 0
    train, 1 validate, 2 test), and for classification `labels` (N) and `classes`; `content_steps` is P (the
    words before the label layout) and `label_steps` K. `path` is None for in-memory arrays."""

    name: str
    source: str
    path: str | None
    sha256: str
    word_bits: int
    inputs: np.ndarray
    targets: np.ndarray
    scored: np.ndarray
    stage: np.ndarray
    labels: np.ndarray | None = None
    classes: tuple[str, ...] | None = None
    content_steps: int = 0
    label_steps: int = 0

    @property
    def record(self) -> dict[str, str | None]:
        """What checkpoints record about the data."""
        return {"path": self.path, "sha256": self.sha256}

    @property
    def length(self) -> int:
        """L."""
        return int(self.inputs.shape[1])

    def rows(self, stage: str) -> np.ndarray:
        """The rows of `stage`'s split, in file order."""
        return np.flatnonzero(self.stage == STAGES.index(stage))


def _as_integers(source: str, key: str, value: np.ndarray) -> np.ndarray:
    """`value` as int64, or a one-line error for objects, floats and other kinds."""
    if value.dtype == object:
        raise QRNNError(
            f"{source}: array `{key}` is ragged or holds Python objects; give one length L for every sequence "
            "(pad, and mark padded steps unscored in `scored`)"
        )
    if value.dtype.kind not in "biu":
        raise QRNNError(f"{source}: array `{key}` has dtype {value.dtype}; it must hold integers or booleans")
    if value.dtype.kind == "u" and value.size and value.max() > np.iinfo(np.int64).max:
        # int64 would wrap these to negative numbers: report the value the file holds.
        where = tuple(int(i) for i in np.argwhere(value > np.iinfo(np.int64).max)[0])
        raise QRNNError(
            f"{source}: array `{key}` has the value {int(value[where])} at {where}; qrnn reads integers up to "
            f"{np.iinfo(np.int64).max}"
        )
    return value.astype(np.int64)


def _check_bits(source: str, key: str, values: np.ndarray) -> None:
    bad = (values != 0) & (values != 1)
    if bad.any():
        where = tuple(int(i) for i in np.argwhere(bad)[0])
        raise QRNNError(f"{source}: array `{key}` has the value {values[where]} at {where}; bits must be 0 or 1")


def _words(source: str, key: str, value: np.ndarray, word_bits: int | None) -> tuple[np.ndarray, int]:
    """Integer words (N x L) and the word width of `inputs` or `targets` given as bits or as words."""
    value = _as_integers(source, key, value)
    if value.ndim == 3:
        width = value.shape[2]
        if word_bits is not None and word_bits != width:
            raise QRNNError(f"{source}: array `{key}` has words of {width} bits, but `word_bits` is {word_bits}")
        if not 1 <= width <= MAX_WORD_BITS:
            raise QRNNError(f"{source}: array `{key}` has words of {width} bits; allowed: 1 to {MAX_WORD_BITS}")
        _check_bits(source, key, value)
        return bits_to_int(torch.from_numpy(value)).numpy(), width
    if value.ndim == 2:
        if word_bits is None:
            raise QRNNError(
                f"{source}: array `{key}` is N x L integer words; give their width as `word_bits` (or give "
                "N x L x I bits)"
            )
        bad = (value < 0) | (value >= 2**word_bits)
        if bad.any():
            where = tuple(int(i) for i in np.argwhere(bad)[0])
            raise QRNNError(
                f"{source}: array `{key}` has the word {value[where]} at {where}; words of {word_bits} bits "
                f"are 0 to {2**word_bits - 1}"
            )
        return value, word_bits
    raise QRNNError(
        f"{source}: array `{key}` has shape {value.shape}; allowed: N x L x I bits, or N x L words with `word_bits`"
    )


def _stage_of_rows(source: str, split: np.ndarray | None, count: int) -> np.ndarray:
    """The stage index (0 train, 1 validate, 2 test) of every row; default a seeded 90/5/5 shuffle."""
    if split is None:
        validate = test = max(1, round(count * SPLIT_FRACTIONS[1]))
        train = count - validate - test
        stage = np.repeat(np.arange(3, dtype=np.int64), [max(train, 0), validate, test])[:count]
        return stage[np.random.default_rng(SPLIT_SEED).permutation(count)]
    if split.ndim != 1 or len(split) != count:
        raise QRNNError(f"{source}: array `split` has shape {split.shape}; it must have one entry per row ({count})")
    if split.dtype.kind == "S":
        # Byte strings (b"train", as numpy.savez writes a list of bytes) name the splits as text does.
        try:
            split = np.char.decode(split, "ascii")
        except UnicodeDecodeError:
            raise QRNNError(
                f"{source}: array `split` holds bytes that are not ASCII text; allowed: {', '.join(STAGES)} "
                "(or 0, 1, 2)"
            ) from None
    if split.dtype.kind == "U":
        unknown = sorted(set(split.tolist()) - set(STAGES))
        if unknown:
            raise QRNNError(f"{source}: array `split` holds {unknown[0]!r}; allowed: {', '.join(STAGES)} (or 0, 1, 2)")
        return np.array([STAGES.index(name) for name in split.tolist()], dtype=np.int64)
    values = _as_integers(source, "split", split)
    if ((values < 0) | (values > 2)).any():
        raise QRNNError(f"{source}: array `split` holds {values[(values < 0) | (values > 2)][0]}; allowed: 0, 1, 2")
    return values


def build_table(arrays: Mapping[str, Any], source: str, path: str | None, sha256: str, name: str) -> SequenceTable:
    """Check the arrays of an `.npz` file or of `from_arrays` and lay them out (see the module docstring);
    `source` names them in errors."""
    unknown = sorted(set(arrays) - set(NPZ_ARRAYS))
    if unknown:
        raise QRNNError(f"{source}: unknown array `{unknown[0]}`; allowed: {', '.join(NPZ_ARRAYS)}")
    if "inputs" not in arrays:
        raise QRNNError(f"{source}: array `inputs` is missing (N x L x I bits, or N x L words with `word_bits`)")
    word_bits = None
    if "word_bits" in arrays:
        given = np.asarray(arrays["word_bits"])
        if given.size != 1 or given.dtype.kind not in "iu" or not 1 <= int(given.reshape(-1)[0]) <= MAX_WORD_BITS:
            raise QRNNError(
                f"{source}: `word_bits` must be one integer from 1 to {MAX_WORD_BITS}, got {given.tolist()}"
            )
        word_bits = int(given.reshape(-1)[0])
    inputs, word_bits = _words(source, "inputs", arrays["inputs"], word_bits)
    count, length = inputs.shape
    if count < 3:
        raise QRNNError(f"{source}: array `inputs` has {count} sequences; train, validate and test need at least 3")
    labels = arrays.get("labels")
    classes = arrays.get("classes")
    stage = _stage_of_rows(source, arrays.get("split"), count)
    for index, stage_name in enumerate(STAGES):
        if not (stage == index).any():
            sizes = ", ".join(f"{n} {int((stage == i).sum())}" for i, n in enumerate(STAGES))
            raise QRNNError(f"{source}: the {stage_name} split is empty ({sizes}); each split needs a sequence")
    if labels is None and classes is None:
        if length < 2:
            raise QRNNError(f"{source}: array `inputs` has sequences of {length} word; at least 2 are needed")
        targets = inputs
        if "targets" in arrays:
            targets, _ = _words(source, "targets", arrays["targets"], word_bits)
            if targets.shape != inputs.shape:
                raise QRNNError(
                    f"{source}: array `targets` has {targets.shape[0]} x {targets.shape[1]} words, `inputs` "
                    f"{count} x {length}; they must match"
                )
        scored = np.ones((count, length - 1), dtype=bool)
        if "scored" in arrays:
            scored = _as_integers(source, "scored", arrays["scored"])
            if scored.shape != (count, length - 1):
                raise QRNNError(
                    f"{source}: array `scored` has shape {scored.shape}; it must be N x (L-1) = {count} x {length - 1}"
                )
            _check_bits(source, "scored", scored)
            scored = scored.astype(bool)
        return SequenceTable(name, source, path, sha256, word_bits, inputs, targets, scored, stage)
    if labels is None or classes is None:
        raise QRNNError(f"{source}: `labels` and `classes` go together (class indices and the class names)")
    for key in ("targets", "scored"):
        if key in arrays:
            raise QRNNError(f"{source}: array `{key}` cannot go with `labels`; the label layout sets the targets")
    names = np.asarray(classes)
    if names.ndim != 1 or len(names) < 2:
        raise QRNNError(f"{source}: array `classes` must list at least 2 class names, got shape {names.shape}")
    labels = _as_integers(source, "labels", np.asarray(labels))
    if labels.shape != (count,):
        raise QRNNError(f"{source}: array `labels` has shape {labels.shape}; it must have one entry per row ({count})")
    if ((labels < 0) | (labels >= len(names))).any():
        bad = labels[(labels < 0) | (labels >= len(names))][0]
        raise QRNNError(
            f"{source}: array `labels` holds {bad}; allowed: 0 to {len(names) - 1} (an index into `classes`)"
        )
    if length < 2:
        raise QRNNError(f"{source}: array `inputs` has {length} content word per sample; labels need at least 2")
    label_words = count_label_words(len(names), word_bits)
    codes = bits_to_int(encode_label_words(torch.from_numpy(labels), label_words, word_bits)).numpy()
    zeros = np.zeros((count, label_words - 1), dtype=np.int64)
    layout_inputs = np.concatenate([inputs, zeros], axis=1)
    targets = np.concatenate([np.zeros((count, length - 1), dtype=np.int64), codes], axis=1)
    scored = np.zeros((count, length + label_words - 2), dtype=bool)
    scored[:, length - 2 :] = True
    return SequenceTable(
        name, source, path, sha256, word_bits, layout_inputs, targets, scored, stage,
        labels=labels, classes=tuple(str(n) for n in names.tolist()), content_steps=length, label_steps=label_words,
    )


def load_npz(argument: str) -> SequenceTable:
    """The `.npz` file `argument` as a `SequenceTable` (cached while the file is unchanged); one-line errors."""
    return _load_npz(*_file_key(argument))


@functools.lru_cache(maxsize=8)
def _load_npz(path_text: str, _mtime: int, _size: int) -> SequenceTable:
    path = Path(path_text)
    data = _read_file(path, "npz file")
    source = f"npz file {path}"
    arrays: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(io.BytesIO(data)) as members:
            # The declared shapes and sizes, before anything is inflated.
            for _ in npz_members(members, source, MAX_FILE_BYTES):
                pass
        with np.load(io.BytesIO(data), allow_pickle=False) as archive:
            for key in archive.files:
                try:
                    arrays[key] = archive[key]
                except ValueError as error:
                    if "allow_pickle" in str(error):
                        raise QRNNError(
                            f"{source}: array `{key}` is ragged or holds Python objects, which are never loaded; "
                            "give one length L for every sequence (pad, and mark padded steps unscored in `scored`)"
                        ) from None
                    raise
    except QRNNError:
        raise
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as error:
        raise QRNNError(
            f"{source} is not a readable .npz archive ({type(error).__name__}); write it with numpy.savez"
        ) from None
    sha256 = hashlib.sha256(data).hexdigest()
    return build_table(arrays, source, str(path), sha256, f"npz:{path}")


class SequenceDataset(WordDataset):
    """`npz:PATH` and `from_arrays`: fixed sequences, drawn at random from each split (see the module
    docstring)."""

    name = "npz"
    description = "sequences from an .npz file or from arrays"
    word_bits = 1

    def __init__(self, *, table: SequenceTable, **options: Any) -> None:
        super().__init__(**options)
        self.table = table
        self.name = table.name  # type: ignore[misc]
        self.word_bits = table.word_bits  # type: ignore[misc]
        self.classes = table.classes  # type: ignore[misc]
        self.dataset_file = table.record
        self._rows = {stage: torch.from_numpy(table.rows(stage)) for stage in STAGES}

    @classmethod
    def check_options(
        cls, *, sentence_length: int, batch_size: int, num_shards: int, **fixed: Any
    ) -> None:
        """The batch size must be positive (the sequence length is the data's); in-memory arrays exist only in
        this process, so they train on one shard."""
        if batch_size < 1:
            raise QRNNError(f"--batch-size must be at least 1, got {batch_size}")
        table: SequenceTable = fixed["table"]
        if table.path is None and num_shards > 1:
            raise QRNNError(
                f"{table.name} lives in this process only: train it on one shard, or save it with numpy.savez "
                "and use npz:PATH for several"
            )

    @classmethod
    def info(cls, **fixed: Any) -> DatasetInfo:
        """Word width, the data's sequence length, the split sizes."""
        table: SequenceTable = fixed["table"]
        sizes = " / ".join(f"{stage} {len(table.rows(stage)):,}" for stage in STAGES) + " sequences"
        return DatasetInfo(input_size=table.word_bits, sequence_length=table.length, splits=sizes)

    @property
    def sequence_length(self) -> int:
        """L, fixed by the data (`--sentence-length` does not apply)."""
        return self.table.length

    def words(self, stage: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Rows drawn uniformly at random from the stage's split."""
        return self._rows_words(self._draw(stage))

    def _draw(self, stage: str) -> torch.Tensor:
        pool = self._rows[stage]
        return pool[torch.randint(0, len(pool), (self.batch_size,), generator=self.generator(stage))]

    def _rows_words(self, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        index = rows.numpy()
        return (
            torch.from_numpy(self.table.inputs[index]),
            torch.from_numpy(self.table.targets[index]),
            torch.from_numpy(self.table.scored[index]),
        )

    def _batch_of(self, rows: torch.Tensor) -> Batch:
        inputs, targets, scored = self._rows_words(rows)
        labels = None if self.table.labels is None else torch.from_numpy(self.table.labels[rows.numpy()])
        return Batch(
            inputs=int_to_bits(inputs, self.word_bits),
            targets=int_to_bits(targets, self.word_bits),
            scored=scored,
            labels=labels,
        )

    def batch(self, stage: str) -> Batch:
        """The next batch of `stage` (with `labels` for classification data)."""
        if stage not in STAGES:
            raise ValueError(f"unknown stage {stage!r}; valid stages: {', '.join(STAGES)}")
        return self._batch_of(self._draw(stage))

    def split_size(self, stage: str) -> int:
        """The rows of the stage's split."""
        return len(self._rows[stage])

    def split_batches(self, stage: str, batch_size: int) -> Iterator[Batch]:
        """The stage's rows in file order."""
        rows = self._rows[stage]
        for first in range(0, len(rows), batch_size):
            yield self._batch_of(rows[first : first + batch_size])

    def label_words(self, classes: torch.Tensor) -> torch.Tensor:
        """Class indices (B) as the K label words (B x K x I) of classification data."""
        if self.classes is None:
            raise NotImplementedError(f"dataset {self.name} has no class labels")
        return encode_label_words(classes, self.table.label_steps, self.input_size)

    def decode_labels(self, words: torch.Tensor) -> torch.Tensor:
        """Class indices (B) from the last K of B x (L-1) x I words; -1 for a code that is no class."""
        if self.classes is None:
            raise NotImplementedError(f"dataset {self.name} has no class labels")
        expected = (self.sequence_length - 1, self.input_size)
        if words.dim() != 3 or tuple(words.shape[1:]) != expected:
            raise ValueError(f"expected words of shape B x {expected[0]} x {expected[1]}, got {tuple(words.shape)}")
        steps = self.table.label_steps
        codes = bits_to_int(words[:, -steps:].reshape(words.shape[0], -1).cpu())
        return torch.where(codes < len(self.classes), codes, torch.full_like(codes, -1))

    def format(self, inputs: torch.Tensor, targets: torch.Tensor, measured: torch.Tensor) -> str:
        """The words aligned by position; for classification the gold and the measured class too."""
        picture = format_aligned(inputs, targets, measured, render_digit)
        if self.classes is None:
            return picture
        gold = int(self.decode_labels(targets[1:].unsqueeze(0))[0])
        predicted = int(self.decode_labels(measured.unsqueeze(0))[0])
        names = [self.classes[i] if i >= 0 else "invalid" for i in (gold, predicted)]
        verdict = "right" if gold == predicted else "wrong"
        return f"{picture}\ngold {names[0]}  model {names[1]}  ({verdict})"


# ---- in-memory arrays ----

_IN_MEMORY: dict[str, SequenceTable] = {}
ARRAYS_PREFIX = "arrays"


@dataclass(frozen=True, eq=False)
class ArrayDataset:
    """What `from_arrays` returns: pass it as `qrnn.train(dataset=...)`; `name` (`arrays:<hash of the
    arrays>`) is how runs record it, and names it again in this process (e.g. for `qrnn.evaluate`)."""

    name: str
    table: SequenceTable

    @property
    def input_size(self) -> int:
        """Bits per word (the I/O qubits a model needs)."""
        return self.table.word_bits

    @property
    def sequence_length(self) -> int:
        """L, with the label words for classification data."""
        return self.table.length

    @property
    def classes(self) -> tuple[str, ...] | None:
        """The class names, for classification data."""
        return self.table.classes

    def split_sizes(self) -> dict[str, int]:
        """Sequences per split."""
        return {stage: len(self.table.rows(stage)) for stage in STAGES}

    def create(self, batch_size: int = 1, shard: int = 0, seed: int = 0) -> SequenceDataset:
        """A dataset instance, e.g. to look at batches: `from_arrays(x).create(batch_size=4).batch("train")`."""
        return SequenceDataset(table=self.table, sentence_length=self.sequence_length, batch_size=batch_size,
                               shard=shard, num_shards=1, seed=seed)


def _to_numpy(source: str, key: str, value: Any) -> np.ndarray:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu().numpy()
    try:
        return np.asarray(value)
    except ValueError:
        raise QRNNError(
            f"{source}: `{key}` is ragged; give one length L for every sequence (pad, and mark padded steps "
            "unscored in `scored`)"
        ) from None


def from_arrays(
    inputs: Any,
    targets: Any = None,
    scored: Any = None,
    labels: Any = None,
    classes: Any = None,
    split: Any = None,
    word_bits: int | None = None,
) -> ArrayDataset:
    """A dataset from arrays (NumPy, torch or nested lists) in the `.npz` layout of `npz:PATH` (see the module
    docstring): `inputs` N x L x I bits or N x L words with `word_bits`; optional `targets`, `scored`,
    `labels` with `classes`, `split`. The result trains with `qrnn.train(dataset=...)` (one shard) and is named
    by a hash of the arrays, so the same arrays give the same name in any process."""
    source = "from_arrays"
    given = {"inputs": inputs, "targets": targets, "scored": scored, "labels": labels, "classes": classes,
             "split": split, "word_bits": word_bits}
    arrays = {key: _to_numpy(source, key, value) for key, value in given.items() if value is not None}
    digest = hashlib.sha256()
    for key in sorted(arrays):
        value = arrays[key]
        digest.update(f"{key}/{value.dtype.str}/{value.shape}/".encode())
        digest.update(np.ascontiguousarray(value).tobytes() if value.dtype != object else repr(value).encode())
    sha256 = digest.hexdigest()
    name = f"{ARRAYS_PREFIX}:{sha256[:16]}"
    table = build_table(arrays, source, None, sha256, name)
    _IN_MEMORY[name] = table
    return ArrayDataset(name, table)


def dataset_name_of(dataset: object) -> str:
    """The name `qrnn.train(dataset=...)` records: a name as given, or the name of `from_arrays`' result."""
    if isinstance(dataset, str):
        return dataset
    if isinstance(dataset, ArrayDataset):
        _IN_MEMORY.setdefault(dataset.name, dataset.table)
        return dataset.name
    raise QRNNError(
        f"dataset must be a name (`qrnn datasets`, text:PATH, npz:PATH) or what qrnn.datasets.from_arrays returns, "
        f"got {type(dataset).__name__}"
    )


# ---- checkpoints ----


def check_dataset_file(recorded: Mapping[str, Any] | None, name: str, alphabet: str, checkpoint: str) -> None:
    """Refuse, in one line, a dataset file that differs from the one the checkpoint's run trained on."""
    if recorded is None and ":" not in name:
        return
    try:
        entry = lookup(name, alphabet)
        current = entry.create(sentence_length=2, batch_size=1, shard=0, num_shards=1, seed=0).dataset_file
    except QRNNError as error:
        raise QRNNError(f"checkpoint {checkpoint} trained on {name}: {error}") from None
    if recorded is None or current is None or recorded.get("sha256") != current.get("sha256"):
        then = (recorded or {}).get("sha256") or "none recorded"
        now = (current or {}).get("sha256") or "none"
        raise QRNNError(
            f"dataset {name} has changed since checkpoint {checkpoint} was written (sha256 {then[:12]} then, "
            f"{now[:12]} now); restore that file, or start a new run with `qrnn train`"
        )


# ---- the families ----


def _resolve_text(argument: str, alphabet: str) -> RegisteredDataset:
    corpus = load_text(argument, alphabet)
    return RegisteredDataset(TextFileDataset, {"corpus": corpus}, TextFileDataset.description)


def _resolve_npz(argument: str, alphabet: str) -> RegisteredDataset:
    if alphabet != DEFAULT_ALPHABET:
        raise QRNNError(f"--alphabet {alphabet} applies to text:PATH datasets only, not to npz:{argument}")
    return RegisteredDataset(SequenceDataset, {"table": load_npz(argument)}, SequenceDataset.description)


def _resolve_arrays(argument: str, alphabet: str) -> RegisteredDataset:
    name = f"{ARRAYS_PREFIX}:{argument}"
    if alphabet != DEFAULT_ALPHABET:
        raise QRNNError(f"--alphabet {alphabet} applies to text:PATH datasets only, not to {name}")
    if name not in _IN_MEMORY:
        raise QRNNError(
            f"dataset {name} was made by qrnn.datasets.from_arrays in another process; call from_arrays with the "
            "same arrays in this one first (or save them with numpy.savez and use npz:PATH)"
        )
    return RegisteredDataset(SequenceDataset, {"table": _IN_MEMORY[name]}, "in-memory arrays")


register_family(DatasetFamily("text", _resolve_text, canonical_path,
                              "a UTF-8 text file, next-character prediction (--alphabet original: 5-bit)"))
register_family(DatasetFamily("npz", _resolve_npz, canonical_path,
                              "an .npz of sequences: inputs [targets scored labels classes split word_bits]"))
register_family(DatasetFamily(ARRAYS_PREFIX, _resolve_arrays, lambda argument: argument,
                              "arrays given to qrnn.datasets.from_arrays in this process"))
