"""Blur and noise (napari_deblur.data.degrade)."""

import pytest
import torch
import torch.nn.functional as F

from napari_deblur.data.degrade import (
    blur,
    blur_varying,
    degrade_microscopy,
    degrade_photo,
    percentile_scale,
    poisson_gaussian,
    smooth_weights,
)
from napari_deblur.data.kernels import defocus_disc, linear_motion, random_photo_kernel
from napari_deblur.metrics import linear_to_srgb, srgb_to_linear


def _kernels(n, size=9, seed=0):
    return torch.stack([torch.from_numpy(random_photo_kernel(seed + i, max_size=size)) for i in range(n)])


def test_blur_matches_direct_convolution():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 2, 30, 41, generator=g)
    k = _kernels(3)
    ref = torch.cat(
        [
            F.conv2d(F.pad(x[i : i + 1], (4,) * 4, mode="reflect"), k[i].flip(0, 1).expand(2, 1, 9, 9), groups=2)
            for i in range(3)
        ]
    )
    assert torch.allclose(blur(x, k), ref, atol=1e-5)
    shared = blur(x, k[0])
    assert torch.allclose(shared[1], blur(x[1:2], k[0])[0], atol=1e-6)


def test_blur_of_constant_is_constant_and_delta_is_identity():
    k = _kernels(2, 31)
    c = torch.full((2, 3, 20, 24), 0.37)
    assert torch.allclose(blur(c, k), c, atol=1e-5)  # also beyond the reflect limit (k > H)
    x = torch.rand(2, 3, 20, 24)
    delta = torch.zeros(9, 9)
    delta[4, 4] = 1
    assert torch.allclose(blur(x, delta), x, atol=1e-5)


def test_varying_blur_blends_kernels():
    x = torch.rand(2, 1, 32, 32)
    k = torch.stack([_kernels(2, 9, 0), _kernels(2, 9, 10)], 1)  # (B, 2, k, k)
    left = (torch.arange(32) < 16).float().expand(2, 32, 32)
    w = torch.stack([left, 1 - left], 1)
    out = blur_varying(x, k, w)
    a, b = blur(x, k[:, 0]), blur(x, k[:, 1])
    assert torch.allclose(out[..., :16], a[..., :16], atol=1e-5)
    assert torch.allclose(out[..., 16:], b[..., 16:], atol=1e-5)
    maps = smooth_weights(8, 3, 128, 128, torch.Generator().manual_seed(1))
    assert maps.min() >= 0 and torch.allclose(maps.sum(1), torch.ones(8, 128, 128), atol=1e-5)
    assert maps.diff(dim=-1).abs().max() < 0.2  # smooth: transitions over 5+ pixels
    assert (maps.amax(1) > 0.9).float().mean() > 0.2  # but with regions of one dominant kernel


def test_srgb_round_trip_and_reference_values():
    s = torch.linspace(0, 1, 501)
    assert torch.allclose(linear_to_srgb(srgb_to_linear(s)), s, atol=1e-5)
    assert srgb_to_linear(torch.tensor(0.5)).item() == pytest.approx(0.21404, abs=1e-4)
    assert linear_to_srgb(torch.tensor(0.18)).item() == pytest.approx(0.46135, abs=1e-4)


@pytest.mark.parametrize("photons", [50.0, 1000.0])
def test_poisson_noise_variance(photons):
    g = torch.Generator().manual_seed(2)
    x = torch.full((1, 1, 256, 256), 0.4)
    y = poisson_gaussian(x, photons, 0.0, g)
    assert y.mean().item() == pytest.approx(0.4, rel=0.02)
    assert y.var().item() == pytest.approx(0.4 / photons, rel=0.05)
    z = poisson_gaussian(x, photons, 0.02, g)
    assert z.var().item() == pytest.approx(0.4 / photons + 0.02**2, rel=0.05)


def test_photo_pipeline_shapes_and_clean_identity():
    g = torch.Generator().manual_seed(3)
    sharp = torch.rand(2, 3, 48, 48, generator=g)
    delta = torch.zeros(2, 9, 9)
    delta[:, 4, 4] = 1
    blurred, target = degrade_photo(
        sharp, delta, generator=g, highlight_prob=0, exposure=(1, 1), noise_prob=0, quantize_prob=0
    )
    assert blurred.shape == target.shape == (2, 3, 40, 40)
    assert torch.allclose(target, sharp[..., 4:-4, 4:-4], atol=1e-5)
    assert torch.allclose(blurred, target, atol=1e-5)
    noisy, _ = degrade_photo(sharp, _kernels(2), generator=g)
    assert noisy.min() >= 0 and noisy.max() <= 1


def test_saturated_highlights_spread_when_boosted():
    sharp = torch.full((1, 3, 60, 60), 0.3)
    sharp[..., 28:32, 28:32] = 1.0  # a small light
    k = torch.from_numpy(defocus_disc(6.0, 15))[None]
    opts = dict(exposure=(1, 1), noise_prob=0, quantize_prob=0)
    plain, _ = degrade_photo(sharp, k, highlight_prob=0, **opts)
    boosted, target = degrade_photo(sharp, k, highlight_prob=1, highlight_gain=(8, 8), **opts)
    assert (plain >= 0.999).sum() == 0  # the light spread out and dimmed
    assert (boosted >= 0.999).sum() > 16  # a saturated disc larger than the light
    assert target.max() <= 1 and (target >= 0.999).sum() == 3 * 16


def test_microscopy_pipeline_noise_and_scaling():
    g = torch.Generator().manual_seed(4)
    sharp = torch.full((2, 1, 80, 80), 0.5)
    k = torch.from_numpy(linear_motion(5, 30, 9))[None].expand(2, 9, 9)
    blurred, target = degrade_microscopy(
        sharp,
        k,
        generator=g,
        gain=(1, 1),
        background=(0, 0),
        peak_photons=(100, 100),
        read_photons=(0, 0),
        normalize_prob=0,
    )
    assert blurred.shape == target.shape == (2, 1, 72, 72)
    assert torch.allclose(target, torch.full_like(target, 0.5))
    # 100 photons at the peak (0.5): variance = mean / photons-per-unit = 0.5 / 200
    assert blurred.var().item() == pytest.approx(0.5 / 200, rel=0.1)
    fl = torch.rand(3, 1, 64, 64, generator=g) ** 4
    b, s = degrade_microscopy(fl, _kernels(3), generator=g, normalize_prob=1)
    lo, hi = torch.quantile(b.flatten(1), torch.tensor([0.001, 0.999]), dim=1)
    assert torch.allclose(lo, torch.zeros(3), atol=1e-4) and torch.allclose(hi, torch.ones(3), atol=1e-4)
    bb, ss = percentile_scale(b * 2 + 1, s * 2 + 1)
    assert torch.allclose(bb, b, atol=1e-4) and torch.allclose(ss, s, atol=1e-4)
