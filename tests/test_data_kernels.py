"""Blur kernels for photographs (napari_deblur.data.kernels)."""

import numpy as np
import pytest
import torch

from napari_deblur.data.kernels import (
    FAMILY_PROBS,
    camera_shake,
    center_of_mass,
    check_size,
    defocus_disc,
    gaussian_kernel,
    linear_motion,
    pad_kernel,
    random_photo_kernel,
    shake_trajectory,
    supersampled,
)


def _check_kernel(k, size=31):
    assert k.dtype == np.float32 and k.shape == (size, size)
    assert k.min() >= 0
    assert abs(float(k.sum(dtype=np.float64)) - 1) < 1e-5
    cy, cx = center_of_mass(k)
    assert abs(cy - size // 2) < 0.5 and abs(cx - size // 2) < 0.5


@pytest.mark.parametrize("family", sorted(FAMILY_PROBS))
def test_random_kernels_are_normalised_and_centred(family):
    rng = np.random.default_rng(3)
    for _ in range(10):
        _check_kernel(random_photo_kernel(rng, family=family))


def test_random_kernel_reproducible_and_seed_dependent():
    a = [random_photo_kernel(np.random.default_rng(7)) for _ in range(2)]
    b = random_photo_kernel(np.random.default_rng(8))
    assert np.array_equal(a[0], a[1])
    assert not np.array_equal(a[0], b)
    t1 = random_photo_kernel(torch.Generator().manual_seed(5))
    t2 = random_photo_kernel(torch.Generator().manual_seed(5))
    assert np.array_equal(t1, t2)
    assert np.array_equal(random_photo_kernel(11), random_photo_kernel(11))


def test_mixture_draws_every_family():
    rng = np.random.default_rng(0)
    kernels = [random_photo_kernel(rng, max_size=15) for _ in range(40)]
    # 40 draws: distinct kernels of several supports
    supports = {int((k > 0).sum()) for k in kernels}
    assert len(supports) > 10


def test_curriculum_bounds_extent():
    rng = np.random.default_rng(1)
    for _ in range(20):
        k = random_photo_kernel(rng, max_size=7, size=31)
        _check_kernel(k)
        rows, cols = np.nonzero(k)
        assert rows.min() >= 12 and rows.max() <= 18 and cols.min() >= 12 and cols.max() <= 18


def test_linear_motion_at_zero_degrees_is_one_row():
    k = linear_motion(9.3, 0.0, 21)
    _check_kernel(k, 21)
    assert np.array_equal(np.nonzero(k.sum(1))[0], [10])
    x = np.arange(21) - 10
    var = float((k.sum(0) * x**2).sum())
    assert var == pytest.approx(9.3**2 / 12, rel=0.1)  # a uniform segment of that length
    k90 = linear_motion(9.3, 90.0, 21)
    assert np.array_equal(np.nonzero(k90.sum(0))[0], [10])
    assert np.allclose(k90, k.T, atol=1e-6)


def test_defocus_is_rotationally_symmetric():
    k = defocus_disc(6.3, 21)
    _check_kernel(k, 21)
    assert np.allclose(k, np.rot90(k)) and np.allclose(k, k.T)
    r = np.hypot(*(np.indices(k.shape) - 10))
    inside = k[r < 6.3 - 0.75]
    assert np.allclose(inside, inside.max())  # flat inside
    assert k[r > 6.3 + 0.75].sum() == 0  # nothing outside
    edge = k[(r > 5.8) & (r < 6.8)]
    assert 0 < edge.min() < inside.max()  # anti-aliased edge: partial values


def test_gaussian_variances_and_rotation():
    y = np.arange(31) - 15
    k = gaussian_kernel(3.0, 1.0, 0.0, 31).astype(np.float64)
    _check_kernel(k.astype(np.float32))
    assert (k.sum(1) * y**2).sum() == pytest.approx(9 + 1 / 12, rel=0.02)
    assert (k.sum(0) * y**2).sum() == pytest.approx(1 + 1 / 12, rel=0.02)
    assert np.allclose(gaussian_kernel(3.0, 1.0, 90.0, 31), k.T, atol=1e-7)


def test_camera_shake_path_and_kernel():
    path = shake_trajectory(np.random.default_rng(2), 30.0)
    steps = np.linalg.norm(np.diff(path, axis=0), axis=1)
    assert np.allclose(steps, 30.0 / (len(path) - 1))  # constant speed
    k = camera_shake(np.random.default_rng(2), 31, length=30.0, exposure=1.0)
    _check_kernel(k)
    assert (k > 0).sum() > 15  # a real path, not a dot
    short = camera_shake(np.random.default_rng(2), 31, length=30.0, exposure=0.2)
    assert (short > 0).sum() < (k > 0).sum()


def test_pad_kernel_keeps_centre():
    k = defocus_disc(2.0, 7)
    big = pad_kernel(k, 15)
    _check_kernel(big, 15)
    assert np.allclose(big[4:11, 4:11], k)
    with pytest.raises(ValueError):
        pad_kernel(k, 8)


def test_default_sizes_are_odd_and_at_most_31():
    for k in (linear_motion(5.0), linear_motion(80.0), defocus_disc(3.0), defocus_disc(40.0), gaussian_kernel(1.0)):
        n = k.shape[0]
        assert k.shape == (n, n) and n % 2 == 1 and n <= 31
        assert abs(float(k.sum(dtype=np.float64)) - 1) < 1e-5
    assert linear_motion(5.0).shape[0] < 31
    assert linear_motion(50.0, size=61).shape == (61, 61)


def test_check_size_accepts_odd_positive_sizes_only():
    assert check_size(7) == 7 and check_size(np.int64(1)) == 1 and isinstance(check_size(5.0), int)
    for bad in (0, -3, 4):
        with pytest.raises(ValueError, match="odd and positive"):
            check_size(bad)


def test_supersampled_averages_sub_pixel_samples_around_the_centre():
    flat = supersampled(lambda y, x: np.ones(np.broadcast_shapes(y.shape, x.shape)), 5, 4)
    np.testing.assert_allclose(flat, np.ones((5, 5)))
    ramp = supersampled(lambda y, x: y + 0 * x, 5, 4)  # linear: the mean is the pixel-centre value
    np.testing.assert_allclose(ramp, np.repeat(np.arange(-2.0, 3.0)[:, None], 5, 1), atol=1e-12)
    disc = supersampled(lambda y, x: (y * y + x * x <= 0.25).astype(float), 3, 8)  # an r=0.5 disc
    assert disc[1, 1] == pytest.approx(np.pi / 4, abs=0.05) and disc[0, 0] == 0
