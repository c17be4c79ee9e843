"""Born & Wolf microscope PSFs (napari_deblur.data.psf)."""

import numpy as np
import pytest
import torch

from napari_deblur.data.kernels import center_of_mass
from napari_deblur.data.psf import (
    born_wolf_amplitude,
    confocal_psf,
    radial_profile,
    random_microscopy_psf,
    widefield_psf,
)


def _first_minimum(profile):
    inner = (profile[1:-1] < profile[:-2]) & (profile[1:-1] <= profile[2:])
    return int(np.argmax(inner)) + 1


def test_in_focus_amplitude_is_airy():
    r = np.linspace(0.01, 1.0, 50)  # um
    na, wl = 1.2, 550.0
    v = 2 * np.pi / (wl * 1e-3) * na * r
    airy = torch.special.bessel_j1(torch.as_tensor(v)).numpy() / v
    h = born_wolf_amplitude(r, 0.0, na, wl, 1.333)
    assert np.allclose(h.real, airy, atol=1e-6) and np.allclose(h.imag, 0, atol=1e-9)
    assert born_wolf_amplitude(np.zeros(1), 0.0, na, wl, 1.333)[0] == pytest.approx(0.5)


@pytest.mark.parametrize("na, wl, pixel", [(1.0, 500.0, 10.0), (0.6, 600.0, 25.0), (1.4, 450.0, 8.0)])
def test_first_dark_ring_at_rayleigh_radius(na, wl, pixel):
    k = widefield_psf(81, na, wl, pixel, 0.0)
    expected = 0.61 * wl / na / pixel  # in pixels
    found = _first_minimum(radial_profile(k))
    assert abs(found - expected) <= 0.15 * expected


def test_psf_is_normalised_symmetric_and_widens_with_defocus():
    r2 = np.hypot(*(np.indices((63, 63)) - 31)) ** 2
    widths = []
    for z in (0.0, 0.5, 1.0, 1.5):
        k = widefield_psf(63, 0.8, 520.0, 65.0, z)
        assert k.dtype == np.float32 and abs(float(k.sum(dtype=np.float64)) - 1) < 1e-5 and k.min() >= 0
        assert np.allclose(k, k.T, atol=1e-7) and np.allclose(k, np.rot90(k), atol=1e-7)
        assert np.allclose(center_of_mass(k), (31, 31), atol=1e-6)
        widths.append(float((k * r2).sum()))
    assert all(a < b for a, b in zip(widths, widths[1:]))
    assert np.allclose(widefield_psf(31, 0.8, 520.0, 65.0, -0.7), widefield_psf(31, 0.8, 520.0, 65.0, 0.7))


def test_confocal_is_narrower_than_widefield():
    r2 = np.hypot(*(np.indices((41, 41)) - 20)) ** 2
    wide = widefield_psf(41, 1.2, 520.0, 40.0)
    conf = confocal_psf(41, 1.2, 488.0, 520.0, 40.0)
    assert abs(float(conf.sum(dtype=np.float64)) - 1) < 1e-5
    assert (conf * r2).sum() < 0.75 * (wide * r2).sum()


def test_random_psf_parameters_and_reproducibility():
    rng = np.random.default_rng(0)
    for _ in range(12):
        k, p = random_microscopy_psf(rng, 31, return_params=True)
        assert k.shape == (31, 31) and k.dtype == np.float32
        assert abs(float(k.sum(dtype=np.float64)) - 1) < 1e-5
        assert 0.4 <= p["na"] <= 1.4 and p["na"] < p["n"]
        assert 450 <= p["emission"] <= 650 and 50 <= p["pixel"] <= 200 and 0 <= p["z"] <= 1.5
        assert p["kind"] in ("widefield", "confocal")
    assert np.array_equal(random_microscopy_psf(4), random_microscopy_psf(4))
    assert not np.array_equal(random_microscopy_psf(4), random_microscopy_psf(5))
