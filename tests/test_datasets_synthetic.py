"""The generated datasets: exact contents, alignment of targets and scored masks, option checks, pictures,
and a short training run that learns elman-letter's vowels."""

from __future__ import annotations

import pytest
import torch

from qrnn.bits import bits_to_int, int_to_bits
from qrnn.datasets import get_dataset, lookup
from qrnn.errors import QRNNError


def words(bits: torch.Tensor) -> list[list[int]]:
    """Integer words of a B x L x I bit tensor, as lists."""
    return bits_to_int(bits).tolist()


# ---- simple-seq ----


def test_simple_seq_sentences_and_sharding() -> None:
    both = get_dataset("simple-seq", sentence_length=6, batch_size=2).batch("train")
    assert words(both.inputs) == [[0, 1, 2, 3, 0, 1], [4, 4, 4, 4, 4, 4]]
    assert torch.equal(both.inputs, both.targets)
    assert bool(both.scored.all())
    first = get_dataset("simple-seq", sentence_length=6, batch_size=1, num_shards=2, shard=0).batch("train")
    second = get_dataset("simple-seq", sentence_length=6, batch_size=1, num_shards=2, shard=1).batch("test")
    assert words(first.inputs) == [[0, 1, 2, 3, 0, 1]]
    assert words(second.inputs) == [[4, 4, 4, 4, 4, 4]]


@pytest.mark.parametrize(
    ("shards", "batch", "message"),
    [
        (3, 1, "simple-seq needs shards x batch = 2, got 3 x 1"),
        (1, 1, "simple-seq needs shards x batch = 2, got 1 x 1"),
        (2, 2, "simple-seq needs shards x batch = 2, got 2 x 2"),
    ],
)
def test_simple_seq_needs_two_sentences_in_all(shards: int, batch: int, message: str) -> None:
    with pytest.raises(QRNNError) as error:
        lookup("simple-seq").check_options(sentence_length=10, batch_size=batch, num_shards=shards)
    assert str(error.value).startswith(message) and "\n" not in str(error.value)


def test_common_checks_reject_short_sentences_and_empty_batches() -> None:
    with pytest.raises(QRNNError, match="--sentence-length must be at least 2, got 1"):
        lookup("elman-letter").check_options(sentence_length=1, batch_size=1, num_shards=1)
    with pytest.raises(QRNNError, match="--batch-size must be at least 1, got 0"):
        lookup("dna").check_options(sentence_length=10, batch_size=0, num_shards=1)


def test_simple_seq_picture() -> None:
    dataset = get_dataset("simple-seq", sentence_length=5, batch_size=2)
    batch = dataset.batch("validate")
    measured = int_to_bits(torch.tensor([1, 2, 7, 0]), 3)
    assert dataset.format(batch.inputs[0], batch.targets[0], measured) == (
        "input 01230\ngold   1230\nmodel  1270"
    )


# ---- elman-xor ----


def test_elman_xor_triples_markers_and_alignment() -> None:
    dataset = get_dataset("elman-xor", sentence_length=14, batch_size=16, seed=3)
    batch = dataset.batch("train")
    inputs, targets = bits_to_int(batch.inputs), bits_to_int(batch.targets)
    assert bool((batch.inputs[:, :, 0] == 0).all()), "inputs are [0, bit]"
    stream = batch.inputs[:, :, 1]
    for p in range(2, 14, 3):
        assert torch.equal(stream[:, p], stream[:, p - 2] ^ stream[:, p - 1])
    for p in range(14):
        if p % 3 == 2:
            assert torch.equal(targets[:, p], inputs[:, p])
        else:
            assert bool((targets[:, p] == 0b10).all()), f"position {p} is unpredictable: marker [1,0]"
    # Step t feeds input t and predicts target t+1: scored exactly at t = 1, 4, 7, 10 (it has just seen a, b).
    assert [t for t in range(13) if bool(batch.scored[0, t])] == [1, 4, 7, 10]
    assert bool((batch.scored == batch.scored[:1]).all())
    for t in (1, 4, 7, 10):
        a, b = stream[:, t - 1], stream[:, t]
        assert torch.equal(batch.targets[:, t + 1, 1], a ^ b)
        assert bool((batch.targets[:, t + 1, 0] == 0).all())
    assert 0.3 < stream[:, [0, 1, 3, 4]].float().mean() < 0.7, "a and b are fair random bits"


def test_elman_xor_needs_a_whole_triple() -> None:
    with pytest.raises(QRNNError, match="elman-xor needs --sentence-length of at least 3"):
        lookup("elman-xor").check_options(sentence_length=2, batch_size=1, num_shards=1)
    batch = get_dataset("elman-xor", sentence_length=3, batch_size=1).batch("test")
    assert batch.scored.tolist() == [[False, True]]


# ---- elman-letter ----

LETTERS = {0b000: "a", 0b001: "i", 0b010: "u", 0b100: "b", 0b101: "d", 0b110: "g"}


def parse_syllables(text: str) -> list[str]:
    """Split a letter string into syllables ba / dii / guuu; the last one may be cut short."""
    syllables, rest = [], text
    while rest:
        for syllable in ("ba", "dii", "guuu"):
            if rest.startswith(syllable) or (syllable.startswith(rest) and len(rest) < len(syllable)):
                syllables.append(syllable[: len(rest)] if len(rest) < len(syllable) else syllable)
                rest = rest[len(syllable) :]
                break
        else:
            raise AssertionError(f"not made of ba, dii, guuu: {text!r}")
    return syllables


@pytest.mark.parametrize("length", [7, 25])
def test_elman_letter_as_the_original(length: int) -> None:
    """The original's facts: 3-bit words, L = --sentence-length, a consonant's target is 111, a vowel's the
    vowel; every step scored; nothing postselected (its rule tests for consonant codes 4-6, which never occur
    as targets)."""
    dataset = get_dataset("elman-letter", sentence_length=length, batch_size=8, seed=11)
    batch = dataset.batch("train")
    assert dataset.input_size == 3 and dataset.sequence_length == length
    assert batch.inputs.shape == batch.targets.shape == (8, length, 3)
    counts = {"b": 0, "d": 0, "g": 0}
    for row_inputs, row_targets in zip(words(batch.inputs), words(batch.targets), strict=True):
        text = "".join(LETTERS[word] for word in row_inputs)
        for syllable in parse_syllables(text):
            counts[syllable[0]] += 1
        assert row_targets == [0b111 if letter in "bdg" else row_inputs[p] for p, letter in enumerate(text)]
    assert batch.scored.shape == (8, length - 1) and bool(batch.scored.all())
    assert batch.postselected is not None and not bool(batch.postselected.any())
    assert not bool(batch.postselection().any())
    if length == 25:
        assert min(counts.values()) > 5, f"all three consonants occur: {counts}"


def test_elman_letter_picture_shows_letters_and_the_marker() -> None:
    dataset = get_dataset("elman-letter", sentence_length=8, batch_size=1, seed=2)
    batch = dataset.batch("validate")
    picture = dataset.format(batch.inputs[0], batch.targets[0], batch.targets[0, 1:])
    text = "".join(LETTERS[word] for word in words(batch.inputs)[0])
    gold = "".join("*" if letter in "bdg" else letter for letter in text[1:])
    assert picture == f"input {text}\ngold   {gold}\nmodel  {gold}"


# ---- dna ----


@pytest.mark.parametrize("length", [4, 11])
def test_dna_as_the_original(length: int) -> None:
    """The original's facts: 3-bit words, L = --sentence-length; one marker at p in 1 .. L//2 - 1 (its
    `randint(1, L // 2)`), the input there base + 4; targets 0 before p, base + 4 at p, the base after p; only
    the last step scored, every other step postselected."""
    batch = get_dataset("dna", sentence_length=length, batch_size=200, seed=4).batch("train")
    assert batch.inputs.shape == batch.targets.shape == (200, length, 3)
    inputs, targets = bits_to_int(batch.inputs), bits_to_int(batch.targets)
    marked = inputs >= 4
    assert marked.sum(1).tolist() == [1] * 200, "exactly one marker per sample"
    positions = marked.long().argmax(1)
    assert sorted(set(positions.tolist())) == list(range(1, length // 2)), "every position 1 .. L//2 - 1"
    for row in range(200):
        p = int(positions[row])
        base = int(inputs[row, p]) - 4
        assert targets[row].tolist() == [0] * p + [base + 4] + [base] * (length - p - 1)
    expected_scored = torch.zeros(200, length - 1, dtype=torch.bool)
    expected_scored[:, -1] = True
    assert torch.equal(batch.scored, expected_scored)
    assert torch.equal(batch.postselection(), ~expected_scored)


def test_dna_every_output_is_the_notebooks_alignment() -> None:
    """The same strings as dna for the same seed, one word longer: step t reads word t of the string and
    predicts the string's target t (its marked word at the marker: an echo); every step scored, none
    postselected."""
    length = 9
    plain = get_dataset("dna", sentence_length=length, batch_size=50, seed=6).batch("train")
    every = get_dataset("dna-every-output", sentence_length=length, batch_size=50, seed=6).batch("train")
    assert every.inputs.shape == every.targets.shape == (50, length + 1, 3)
    assert torch.equal(every.inputs[:, :length], plain.inputs)
    assert torch.equal(every.targets[:, 1:], plain.targets)
    assert not every.inputs[:, length].any() and not every.targets[:, 0].any()
    inputs, targets = bits_to_int(every.inputs), bits_to_int(every.targets)
    marker = (inputs >= 4).long().argmax(1)
    assert torch.equal(targets.gather(1, marker[:, None] + 1), inputs.gather(1, marker[:, None]))
    assert every.scored.all() and every.scored.shape == (50, length)
    assert not every.postselection().any()


def test_dna_needs_room_for_the_marker() -> None:
    with pytest.raises(QRNNError, match="dna needs --sentence-length of at least 4"):
        lookup("dna").check_options(sentence_length=3, batch_size=1, num_shards=1)
    lookup("dna").check_options(sentence_length=4, batch_size=1, num_shards=1)


def test_dna_picture_uses_digits() -> None:
    dataset = get_dataset("dna", sentence_length=4, batch_size=1)
    inputs = int_to_bits(torch.tensor([2, 5, 0, 3]), 3)
    targets = int_to_bits(torch.tensor([0, 1, 1, 1]), 3)
    measured = int_to_bits(torch.tensor([1, 1, 2]), 3)
    assert dataset.format(inputs, targets, measured) == "input 2503\ngold   111\nmodel  112"


# ---- a short training run ----


def test_a_small_qrnn_learns_elman_letter_vowels() -> None:
    """The vowel right after a consonant follows from the letter just fed (b->a, d->i, g->u), so a small QRNN
    trained on those steps learns them in a few hundred Adam steps; checked on fresh validation strings, with
    every other step postselected as advice and these sampled."""
    # A model this small gains nothing from several threads, and on a busy 2-core machine they contend:
    # 300 steps take about 1 s on one thread and can take 20 s on two.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        probs, measured, gold, checked = train_and_check_elman_letter()
    finally:
        torch.set_num_threads(threads)
    gold_probability = probs.gather(1, gold.unsqueeze(1)).squeeze(1)[checked]
    assert float((probs.argmax(1) == gold)[checked].float().mean()) == 1.0
    assert float(gold_probability.mean()) > 0.95, "an untrained model gives each word about 1/8"
    assert float((bits_to_int(measured) == gold)[checked].float().mean()) > 0.95


def train_and_check_elman_letter() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """300 Adam steps on elman-letter's steps that feed a consonant, then a validation pass: (probs, measured,
    gold words, the checked steps)."""
    import qrnn
    from qrnn.loss import nll_loss

    model = qrnn.QRNN(input_size=3, workspace_size=3, stages=1)
    model.reset_parameters(generator=torch.Generator().manual_seed(1))
    train = get_dataset("elman-letter", sentence_length=12, batch_size=4, seed=3)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.05)
    for _ in range(300):
        batch = train.batch("train")
        probs, _, _ = model(batch.inputs, batch.targets)
        loss = nll_loss(probs, bits_to_int(batch.targets[:, 1:]), after_consonant(batch.inputs))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()

    check = get_dataset("elman-letter", sentence_length=30, batch_size=16, seed=99).batch("validate")
    checked = after_consonant(check.inputs)
    with torch.no_grad():
        probs, measured, _ = model(
            check.inputs,
            check.targets,
            postselect=lambda step, targets: ~checked[:, step],
            generator=torch.Generator().manual_seed(0),
        )
    return probs, measured, bits_to_int(check.targets[:, 1:]), checked


def after_consonant(inputs: torch.Tensor) -> torch.Tensor:
    """The steps (B x (L-1)) that feed a consonant, whose target is the syllable's first vowel."""
    return bits_to_int(inputs[:, :-1]) >= 0b100
