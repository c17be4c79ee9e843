"""Sharp training sources (napari_deblur.data.sharp)."""

import numpy as np
import pytest

from napari_deblur.data import sharp


@pytest.fixture(scope="module")
def photos_available():
    if sharp.photo_dir() is None:
        pytest.skip("scikit-image's data folder is not installed")


def test_training_and_heldout_photos_are_disjoint(photos_available):
    train, held = sharp.training_photos(), sharp.heldout_photos()
    assert set(held) == set(sharp.HELDOUT)
    assert not set(train) & set(held)
    assert len(train) >= 10
    for im in list(train.values())[:4] + list(held.values()):
        assert im.dtype == np.float32 and im.ndim == 3 and im.shape[0] == 3
        assert 0 <= im.min() and im.max() <= 1 and im.max() > 0.5
    camera = train["camera"]
    assert np.array_equal(camera[0], camera[1])  # grey photo repeated over RGB
    with pytest.raises(ValueError):
        sharp.load_photo("lena")


def test_dead_leaves_reproducible_and_varied():
    a = sharp.dead_leaves(np.random.default_rng(0), (64, 80))
    b = sharp.dead_leaves(np.random.default_rng(0), (64, 80))
    c = sharp.dead_leaves(np.random.default_rng(1), (64, 80))
    assert a.shape == (3, 64, 80) and a.dtype == np.float32
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert 0 <= a.min() and a.max() <= 1
    assert a.std() > 0.1
    assert len(np.unique(a[0].round(3))) > 50
    grey = sharp.dead_leaves(2, 48, channels=1, texture=False)
    assert grey.shape == (1, 48, 48)


def test_dead_leaves_edges_are_sharp_but_antialiased():
    img = sharp.dead_leaves(3, 96, channels=1, texture=False, r_min=4.0)[0]
    steps = np.abs(np.diff(img, axis=1)).ravel()
    # flat discs: most neighbours equal, a few strong edges
    assert np.mean(steps < 1e-6) > 0.6 and steps.max() > 0.3


@pytest.mark.parametrize("kind", ["spots", "filaments", "membranes"])
def test_fluorescence_structures(kind):
    img = sharp.fluorescence(np.random.default_rng(5), (72, 96), kinds=[kind])
    assert img.shape == (1, 72, 96) and img.dtype == np.float32
    assert 0 <= img.min() and img.max() <= 1
    assert img.max() > 0.45  # bright structures
    assert np.median(img) < 0.3 * img.max()  # on a dark background


def test_fluorescence_reproducible():
    a = sharp.fluorescence(9, 64)
    assert np.array_equal(a, sharp.fluorescence(9, 64))
    assert not np.array_equal(a, sharp.fluorescence(10, 64))
    with pytest.raises(ValueError):
        sharp.fluorescence(0, 32, kinds=["nuclei"])


def test_filament_width_is_sub_pixel_controlled():
    img = sharp.fluorescence(np.random.default_rng(1), 64, kinds=["filaments"])[0]
    bright = img > 0.5 * img.max()
    assert 0.005 < bright.mean() < 0.5  # thin lines, not blobs
