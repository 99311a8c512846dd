"""The MNIST resource builder (`qrnn.datasets.mnist_build`): the steps of the original's notebooks on small
hand-checked inputs, and the whole pipeline on a small subset of the source."""

from __future__ import annotations

import gzip
import io
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
from scipy.special import ndtr

from qrnn.datasets import mnist_build, pipeline
from qrnn.errors import QRNNError


def test_validation_is_the_first_images_of_each_digit_and_rows_are_grouped_by_digit() -> None:
    labels = np.array([1, 0, 1, 1, 0, 2, 2, 0, 2], dtype=np.uint8)
    images = np.arange(9, dtype=np.float32)[:, None, None] * np.ones((1, 28, 28), dtype=np.float32)
    splits = mnist_build.split_mnist(images, labels, images[:3], labels[:3], validation_per_digit=2)
    # Validation: digit 0 -> images 1, 4; digit 1 -> 0, 2; digit 2 -> 5, 6. Train: the rest, by digit.
    assert splits.images["validate"][:, 0, 0].tolist() == [1, 4, 0, 2, 5, 6]
    assert splits.labels["validate"].tolist() == [0, 0, 1, 1, 2, 2]
    assert splits.images["train"][:, 0, 0].tolist() == [7, 3, 8]
    assert splits.labels["train"].tolist() == [0, 1, 2]
    assert splits.images["test"][:, 0, 0].tolist() == [1, 0, 2] and splits.labels["test"].tolist() == [0, 1, 1]


def test_otsu_threshold_splits_two_clusters_midway_between_them() -> None:
    image = np.array([[0.1, 0.1, 0.2], [0.8, 0.9, 0.9], [0.2, 0.1, 0.85]])
    # Cuts after the sorted values 0.1 0.1 0.1 0.2 0.2 | 0.8 0.85 0.9 0.9 separate the two clusters best.
    assert mnist_build.otsu_thresholds(image[None])[0] == pytest.approx(0.5)
    assert mnist_build.binarize(image[None])[0].tolist() == [[0, 0, 0], [1, 1, 1], [0, 0, 1]]


def test_scanline_words_put_the_upright_view_in_bit_2_its_transpose_in_bit_1() -> None:
    # A white image with one black vertical bar in column 13 (inside the central crop, rows 4-23).
    image = np.ones((1, 28, 28))
    image[0, 4:24, 12:14] = 0.0
    words = mnist_build.scanline_words(image, 20)[0].reshape(20, 20)
    upright, transposed = (words >> 2) & 1, (words >> 1) & 1
    # Crop column 8 or 9 holds the bar (image columns 12, 13); everything else is background (bit 1).
    assert (upright[:, 8:10] == 0).all() and upright[:, :8].all() and upright[:, 10:].all()
    assert np.array_equal(transposed, upright.T)
    # Rotated by 135 degrees counter-clockwise the bar runs from the bottom left to the top right.
    rotated = words & 1
    assert rotated[15, 4] == 0 and rotated[4, 15] == 0 and rotated[10, 10] == 0
    assert rotated[3, 3] == 1 and rotated[16, 16] == 1 and rotated[:, :3].all()
    assert mnist_build.scanline_words(image, 10).shape == (1, 100)


def test_deskew_leaves_an_unskewed_image_alone_and_straightens_a_slanted_bar() -> None:
    upright = np.ones((1, 28, 28))
    upright[0, 6:22, 13:15] = 0.0
    assert np.allclose(mnist_build.deskew(upright), upright)
    slanted = np.ones((1, 28, 28))
    for row in range(6, 22):
        column = 13 + (row - 14) // 4
        slanted[0, row, column : column + 2] = 0.0
    straightened = mnist_build.deskew(slanted)[0]

    def ink_centre(image: np.ndarray, row: int) -> float:
        ink = 1.0 - image[row]
        return float((ink * np.arange(28)).sum() / ink.sum())

    # The bar's ink sits at columns 11.5 (row 7) and 14.5 (row 20). The notebook's moments are dominated by
    # the white background, so its deskew is mild: the two ends move about 0.23 columns towards each other,
    # symmetrically (the bar is centred on row 13.5, so there is no shift).
    top, bottom = ink_centre(straightened, 7), ink_centre(straightened, 20)
    assert 11.6 < top < 11.9 and 14.1 < bottom < 14.4 and top + bottom == pytest.approx(26.0)


def test_code_scale_is_min_max_then_one_fitted_normal_cdf_then_the_notebooks_rounding() -> None:
    reference = np.array([[0.0, 4.0], [1.0, 3.0]])
    scale = mnist_build.CodeScale.fit(reference)
    # One range and one normal for every column: min 0, max 4; scaled 0, 1, .25, .75: mu .5, sigma sqrt(.15625).
    assert (scale.low, scale.high, scale.mu) == (0.0, 4.0, 0.5)
    assert scale.sigma == pytest.approx(np.sqrt(0.15625))
    values = np.array([[-1.0, 2.0, 5.0, 1.0]])
    levels = ndtr((np.array([0.0, 0.5, 1.0, 0.25]) - 0.5) / np.sqrt(0.15625))
    expected = np.round(levels * 255.998 - 0.499)
    assert scale.codes(values).tolist() == [expected.astype(int).tolist()]
    assert scale.codes(values)[0, 1] == 128  # the mean maps to round(0.5 * 255.998 - 0.499) = 128


def test_pca_z_scores_pixels_and_projects_onto_the_raw_covariance_eigenvectors() -> None:
    generator = np.random.default_rng(0)
    images = generator.random((50, 28, 28)).astype(np.float32)
    images[:, 0, 0] = 0.5  # a constant pixel keeps scale 1
    pca = mnist_build.PrincipalComponents.fit(images, 3)
    white = 1.0 - images.reshape(50, -1).astype(np.float64)
    eigenvalues, eigenvectors = np.linalg.eigh(np.cov(white, rowvar=False))
    for row, index in enumerate(np.argsort(eigenvalues)[::-1][:3]):
        assert abs(float(pca.components[row] @ eigenvectors[:, index])) == pytest.approx(1.0, abs=1e-8)
    assert pca.scale[0] == 1.0 and np.allclose(pca.scale[1:], white[:, 1:].std(axis=0, ddof=1))
    expected = ((white - white.mean(axis=0)) / pca.scale) @ pca.components.T
    assert np.allclose(pca.project(images), expected)


def test_the_unpickler_refuses_anything_but_arrays(tmp_path: Path) -> None:
    wheel = tmp_path / "fake.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(mnist_build.PICKLE_MEMBER, gzip.compress(pickle.dumps(print)))
    with pytest.raises(QRNNError, match="refusing to load builtins.print"):
        mnist_build.read_mnist_pickle(wheel)
    arrays = (np.zeros((2, 784), np.float32), np.array([3, 4]))
    buffer = io.BytesIO()
    pickle.dump((arrays, arrays, arrays), buffer, protocol=3)  # the array opcodes of the real file
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(mnist_build.PICKLE_MEMBER, gzip.compress(buffer.getvalue()))
    training_images, training_labels, test_images, test_labels = mnist_build.read_mnist_pickle(wheel)
    assert training_images.shape == (4, 28, 28) and training_labels.tolist() == [3, 4, 3, 4]


@pytest.fixture(scope="module")
def small_splits() -> mnist_build.MnistSplits:
    """The small subset, from the source wheel (downloaded once into the user's cache)."""
    return mnist_build.load_splits(pipeline.DEFAULT_CACHE, small=True)


def test_small_build_of_pixels_and_pca_in_format_2(small_splits, tmp_path: Path) -> None:
    data = small_splits
    assert [len(data.labels[split]) for split in mnist_build.SPLITS] == [250, 50, 100]
    assert np.bincount(data.labels["validate"]).tolist() == [5] * 10
    arrays = mnist_build.pixel_arrays(data, deskewed=True, side=20, digits=tuple(range(8)))
    assert arrays["format_version"].tolist() == [2] and arrays["side"].tolist() == [20]
    assert arrays["counts"][:, 8:].sum() == 0 and arrays["centroids"][8:].sum() == 0
    assert arrays["validate_words"].shape == (40, 400) and arrays["validate_words"].max() <= 7
    assert arrays["centroids"].shape == (10, 400) and arrays["centroids"][:8].min() < 7
    plain = mnist_build.pixel_arrays(data, deskewed=False, side=10, digits=tuple(range(10)))
    words = plain["train_words"].reshape(-1, 10, 10)
    # Lane 1 (bit 1) is the transpose of lane 0 (bit 2); the corners are background in every view.
    assert np.array_equal((words >> 1) & 1, ((words >> 2) & 1).transpose(0, 2, 1))
    assert (words[:, 0, 0] == 7).all()
    assert np.array_equal(plain["train_labels"], np.sort(plain["train_labels"]))
    path = pipeline.write_npz(tmp_path / "pca.npz", mnist_build.pca_arrays(data))
    with np.load(path, allow_pickle=False) as pca:
        assert pca["format_version"].tolist() == [2]
        assert pca["test_codes"].shape == (100, 8) and pca["test_codes"].dtype == np.uint8
        low, high, mu, sigma = pca["code_scale"]
        # Fitted on all 250 small training images (fewer than 1000 per digit): their codes span the CDF's
        # image of [0, 1], with the mean near the middle.
        train = pca["train_codes"]
        expected_low = round(float(ndtr(-mu / sigma)) * 255.998 - 0.499)
        assert train.min() == expected_low and 100 < np.median(train) < 160


def test_small_build_writes_every_resource_with_umap(small_splits, tmp_path: Path) -> None:
    pytest.importorskip("umap", reason="the UMAP step needs the data extra (umap-learn)")
    written = mnist_build.build_mnist(pipeline.DEFAULT_CACHE, tmp_path, small=True)
    assert sorted(path.name for path in written) == sorted(
        [*mnist_build.PIXEL_RESOURCES, mnist_build.PCA_RESOURCE, mnist_build.UMAP_RESOURCE]
    )
    with np.load(tmp_path / mnist_build.UMAP_RESOURCE, allow_pickle=False) as umap_file:
        assert umap_file["format_version"].tolist() == [2]
        for dimensions in (2, 3, 4):
            codes = umap_file[f"train_d{dimensions}"]
            assert codes.shape == (250, dimensions) and codes.dtype == np.uint8
            assert umap_file[f"test_d{dimensions}"].shape == (100, dimensions)
        # Supervised: a nearest-centroid rule on the 2-D training codes recovers most training digits.
        codes, labels = umap_file["train_d2"].astype(float), umap_file["train_labels"]
        centres = np.stack([codes[labels == digit].mean(axis=0) for digit in range(10)])
        predicted = np.argmin(((codes[:, None] - centres[None]) ** 2).sum(axis=2), axis=1)
        assert (predicted == labels).mean() > 0.8
