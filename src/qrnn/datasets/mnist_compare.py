"""How close the built MNIST resources come to the original's own files (`python -m
qrnn.datasets.mnist_compare RES_DIR [DATA_DIR]`, RES_DIR the original's `RVQE/datasets/res`).

The original's test split is MNIST's test set, shuffled within each digit by a draw that cannot be replayed,
and its train/validate split is another such draw, so only the test split can be aligned. Per digit, its
rows are paired one-to-one with ours by a minimum-cost assignment on the plain 10x10 words (Hamming
distance); every file of the original writes the same rows in the same order, so that one pairing is then
used for the deskewed images, the PCA codes and the UMAP codes as well. Reported: identical images and the
mean number of differing pixels (a pixel differs when its 3-bit word does); for codes, the accuracy of a
lookup table (the majority digit of each cell of the top 2 bits of every code, fitted on the training
split) and of a 1-nearest-neighbour rule on the 8-bit codes, on each side's own files.
"""

from __future__ import annotations

import gzip
import sys
from pathlib import Path

import numpy as np

from qrnn.datasets import mnist_build


def read_original(res_dir: Path, stem: str, digit: int, split: str) -> np.ndarray:
    """One of the original's `{stem}-{digit}-{split}` files (or `mnist-simple-{digit}{stem}-{split}` for
    pixel variants) as an integer array, one row per image."""
    with gzip.open(res_dir / f"{stem.format(digit=digit)}-{split}.csv.gz", "rt") as stream:
        return np.loadtxt(stream, delimiter=",", dtype=np.int64, ndmin=2)


def pair_rows(theirs: np.ndarray, ours: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (theirs, ours) of the one-to-one pairing with the fewest differing bits."""
    from scipy.optimize import linear_sum_assignment

    def bits(words: np.ndarray) -> np.ndarray:
        return ((words[:, :, None] >> np.arange(3)) & 1).reshape(len(words), -1).astype(np.float64)

    a, b = bits(theirs), bits(ours)
    cost = a.sum(axis=1)[:, None] + b.sum(axis=1)[None, :] - 2.0 * a @ b.T
    return linear_sum_assignment(cost)


def lookup_table_accuracy(
    train: np.ndarray, train_labels: np.ndarray, test: np.ndarray, test_labels: np.ndarray, bits: int = 2
) -> float:
    """Accuracy on test of the majority digit per cell of the top `bits` bits of every code (fitted on train;
    an empty cell answers the most common digit)."""

    def cells(codes: np.ndarray) -> np.ndarray:
        top = codes.astype(np.int64) >> (mnist_build.CODE_BITS - bits)
        return (top * (1 << bits) ** np.arange(codes.shape[1])).sum(axis=1)

    table = np.zeros(((1 << bits) ** train.shape[1], 10), dtype=np.int64)
    np.add.at(table, (cells(train), train_labels.astype(np.int64)), 1)
    answer = np.where(table.sum(axis=1) > 0, table.argmax(axis=1), np.bincount(train_labels).argmax())
    return float((answer[cells(test)] == test_labels).mean())


def nearest_neighbour_accuracy(
    train: np.ndarray, train_labels: np.ndarray, test: np.ndarray, test_labels: np.ndarray
) -> float:
    """Accuracy on test of the 1-nearest-neighbour rule (Euclidean, on the codes) fitted on train."""
    from scipy.spatial import cKDTree

    _, index = cKDTree(train.astype(np.float64)).query(test.astype(np.float64))
    return float((train_labels[index] == test_labels).mean())


def _original_codes(res_dir: Path, stem: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    rows = [read_original(res_dir, stem, digit, split) for digit in range(10)]
    labels = np.concatenate([np.full(len(r), digit, dtype=np.int64) for digit, r in enumerate(rows)])
    return np.concatenate(rows), labels


def compare(res_dir: Path, data_dir: Path) -> list[str]:
    """The report lines (see the module docstring)."""
    lines = []
    plain = np.load(data_dir / "mnist-px10.npz", allow_pickle=False)
    pairs = {}
    for digit in range(10):
        ours = plain["test_words"][plain["test_labels"] == digit]
        pairs[digit] = pair_rows(read_original(res_dir, "mnist-simple-{digit}", digit, "test"), ours)
    for filename, suffix in (
        ("mnist-px10.npz", ""),
        ("mnist-px10-ds.npz", "-deskewed"),
        ("mnist-px20-ds.npz", "-deskewed-large"),
    ):
        resource = np.load(data_dir / filename, allow_pickle=False)
        differing = []
        for digit in range(10):
            if resource["counts"][2, digit] == 0:
                continue
            theirs = read_original(res_dir, "mnist-simple-{digit}" + suffix, digit, "test")
            ours = resource["test_words"][resource["test_labels"] == digit]
            their_rows, our_rows = pairs[digit]
            differing.append((theirs[their_rows] != ours[our_rows]).sum(axis=1))
        counts = np.concatenate(differing)
        lines.append(
            f"{filename} test: {len(counts)} images, identical {np.mean(counts == 0):.3f}, "
            f"mean differing pixels {counts.mean():.2f} of {resource['test_words'].shape[1]}"
        )
    for filename, stem, key in [("mnist-pca.npz", "mnist-pca-8bit-{digit}", "codes")] + [
        ("mnist-umap.npz", f"mnist-umap-{d}-{{digit}}", f"d{d}") for d in mnist_build.UMAP_DIMENSIONS
    ]:
        if not (data_dir / filename).exists():
            continue
        resource = np.load(data_dir / filename, allow_pickle=False)
        if f"test_{key}" not in resource:
            continue
        train, train_labels = _original_codes(res_dir, stem, "train")
        test, test_labels = _original_codes(res_dir, stem, "test")
        ours_train, ours_test = resource[f"train_{key}"], resource[f"test_{key}"]
        ours_train_labels = resource["train_labels"].astype(np.int64)
        ours_test_labels = resource["test_labels"].astype(np.int64)
        code_gap = []
        for digit in range(10):
            their_rows, our_rows = pairs[digit]
            theirs_digit = test[test_labels == digit][their_rows].astype(np.int64)
            ours_digit = ours_test[ours_test_labels == digit][our_rows].astype(np.int64)
            code_gap.append(np.abs(theirs_digit - ours_digit).mean(axis=1))
        ours_args = (ours_train, ours_train_labels, ours_test, ours_test_labels)
        their_args = (train, train_labels, test, test_labels)
        lines.append(
            f"{filename} {key}: lookup table (top 2 bits) ours {lookup_table_accuracy(*ours_args):.3f} "
            f"original {lookup_table_accuracy(*their_args):.3f}; "
            f"1-NN ours {nearest_neighbour_accuracy(*ours_args):.3f} "
            f"original {nearest_neighbour_accuracy(*their_args):.3f}; "
            f"mean |code difference| on paired test images {np.concatenate(code_gap).mean():.1f}"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    """Print the comparison of DATA_DIR (default: the shipped resources) with the original's RES_DIR."""
    from qrnn.datasets.resources import resource_path

    args = sys.argv[1:] if argv is None else argv
    if not 1 <= len(args) <= 2:
        print("usage: python -m qrnn.datasets.mnist_compare RES_DIR [DATA_DIR]", file=sys.stderr)
        return 2
    data_dir = Path(args[1]) if len(args) == 2 else resource_path("mnist-px10.npz").parent
    for line in compare(Path(args[0]), data_dir):
        print(line, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
