"""napari_deblur.metrics: PSNR, SSIM, the sRGB curve and the rank correlations."""

import numpy as np
import pytest
import torch
from test_imports import loaded_after_import

from napari_deblur import metrics

# ---------------------------------------------------------------- PSNR and SSIM


def test_psnr_of_known_arrays():
    ref = np.zeros((4, 5))
    assert metrics.psnr(ref, ref + 0.1) == pytest.approx(20.0)  # MSE 0.01, range 1
    assert metrics.psnr(ref, ref + 0.01) == pytest.approx(40.0)
    a = np.full((3, 3), 100, np.uint8)
    assert metrics.psnr(a, a + np.uint8(1), data_range=255) == pytest.approx(10 * np.log10(255.0**2))
    assert metrics.psnr(a, a + np.uint8(5), data_range=255) == pytest.approx(10 * np.log10(255.0**2 / 25))


def test_psnr_identical_images_are_infinite_unless_floored():
    x = np.linspace(0, 1, 30).reshape(5, 6)
    assert metrics.psnr(x, x) == np.inf
    assert metrics.psnr(x, x, mse_floor=1e-12) == pytest.approx(120.0)
    assert metrics.psnr(x, x, data_range=255, mse_floor=1e-12) == pytest.approx(10 * np.log10(255.0**2 / 1e-12))


def test_psnr_clip_clips_the_image_not_the_reference():
    ref = np.array([0.0, 1.0, 0.5])
    assert metrics.psnr(ref, np.array([-0.5, 1.5, 0.5]), clip=True) == np.inf
    assert metrics.psnr(ref, np.array([-0.5, 1.5, 0.5])) == pytest.approx(10 * np.log10(3 / 0.5))
    over = np.array([0.0, 2.0])  # a reference outside [0, 1] is scored as it is
    assert metrics.psnr(over, np.array([0.0, 3.0]), clip=True) == pytest.approx(10 * np.log10(1 / 0.5))


def test_psnr_matches_scikit_image_exactly(rng):
    from skimage.metrics import peak_signal_noise_ratio

    ref, img = rng.random((3, 40, 50)), rng.random((3, 40, 50))
    assert metrics.psnr(ref, img) == float(peak_signal_noise_ratio(ref, img, data_range=1.0))
    a, b = (rng.integers(0, 256, (20, 30)).astype(np.uint8) for _ in range(2))
    assert metrics.psnr(a, b, data_range=255) == float(peak_signal_noise_ratio(a, b, data_range=255))


def test_psnr_on_tensors_pools_the_batch_in_float32():
    g = torch.Generator().manual_seed(0)
    sharp = torch.rand(2, 3, 16, 16, generator=g)
    restored = sharp + 0.05 * torch.randn(sharp.shape, generator=g)
    mse = torch.mean((restored.clamp(0, 1) - sharp) ** 2).item()
    assert metrics.psnr(sharp, restored, clip=True) == pytest.approx(10 * np.log10(1 / mse), rel=1e-15)
    as_numpy = metrics.psnr(sharp.numpy(), restored.numpy(), clip=True)
    assert metrics.psnr(sharp, restored, clip=True) == pytest.approx(as_numpy, abs=1e-4)
    assert metrics.psnr(sharp, sharp, mse_floor=1e-12) == pytest.approx(120.0)


def test_psnr_needs_one_shape():
    with pytest.raises(ValueError, match="one shape"):
        metrics.psnr(np.zeros((4, 4)), np.zeros((4, 5)))


def test_ssim_of_an_image_with_itself_is_one_and_lower_with_noise(rng):
    x = rng.random((48, 48))
    assert metrics.ssim(x, x) == pytest.approx(1.0)
    assert metrics.ssim(x, np.clip(x + rng.normal(0, 0.1, x.shape), 0, 1)) < 0.99
    rgb = rng.random((3, 32, 32))
    assert metrics.ssim(rgb, rgb, channel_axis=0) == pytest.approx(1.0)
    assert metrics.ssim(x, x, data_range=255, win_size=5) == pytest.approx(1.0)


def test_score_clips_the_restoration_and_reports_psnr_and_ssim(rng):
    sharp = rng.random((3, 32, 32))
    restored = sharp + rng.normal(0, 0.1, sharp.shape)
    clipped = np.clip(restored, 0, 1)
    out = metrics.score(sharp, restored)
    assert out == {"psnr": metrics.psnr(sharp, clipped), "ssim": metrics.ssim(sharp, clipped, channel_axis=0)}
    assert metrics.score(sharp[0], sharp[0]) == {"psnr": np.inf, "ssim": pytest.approx(1.0)}


# ---------------------------------------------------------------- sRGB


def test_srgb_round_trip_numpy_and_torch():
    v = np.linspace(0, 1, 1001)
    np.testing.assert_allclose(metrics.linear_to_srgb(metrics.srgb_to_linear(v)), v, atol=1e-12)
    t = torch.linspace(0, 1, 1001)
    back = metrics.linear_to_srgb(metrics.srgb_to_linear(t))
    assert isinstance(back, torch.Tensor) and back.dtype == torch.float32
    assert torch.allclose(back, t, atol=1e-5)


def test_srgb_reference_values_and_the_straight_segment():
    assert metrics.srgb_to_linear(0.5) == pytest.approx(0.21404, abs=1e-5)
    assert metrics.linear_to_srgb(0.18) == pytest.approx(0.46135, abs=1e-5)
    assert metrics.srgb_to_linear(0.02) == pytest.approx(0.02 / 12.92)
    assert metrics.linear_to_srgb(0.002) == pytest.approx(0.002 * 12.92)
    knee = metrics.SRGB_DECODE_KNEE
    assert metrics.srgb_to_linear(knee) == pytest.approx(metrics.SRGB_ENCODE_KNEE, rel=1e-3)  # continuous
    assert metrics.srgb_to_linear(np.nextafter(knee, 1)) == pytest.approx(knee / 12.92, rel=1e-3)


def test_srgb_clipping_and_dtypes():
    x = np.array([-0.5, 0.5, 1.5])
    np.testing.assert_allclose(metrics.srgb_to_linear(x)[[0, 2]], [0.0, 1.0], atol=1e-15)
    unclipped = metrics.srgb_to_linear(x, clip=False)
    assert unclipped[0] == pytest.approx(-0.5 / 12.92) and unclipped[2] > 1
    np.testing.assert_allclose(metrics.linear_to_srgb(x)[[0, 2]], [0.0, 1.0], atol=1e-15)
    assert metrics.srgb_to_linear(np.float32([0.5])).dtype == np.float32
    assert metrics.linear_to_srgb(np.float32([0.5])).dtype == np.float32


def test_srgb_numpy_and_torch_agree(rng):
    v = rng.random(4096).astype(np.float32)
    for f in (metrics.srgb_to_linear, metrics.linear_to_srgb):
        np.testing.assert_allclose(f(torch.from_numpy(v)).numpy(), f(v), rtol=1e-6, atol=1e-7)


# ---------------------------------------------------------------- rank correlations


def test_rank_correlation_of_a_monotone_pair_is_one(rng):
    a = rng.random(200)
    assert metrics.rank_correlation(a, np.exp(5 * a)) == pytest.approx(1.0)
    assert metrics.rank_correlation(a.reshape(10, 20), -a.reshape(10, 20)) == pytest.approx(-1.0)
    with pytest.raises(ValueError, match="one size"):
        metrics.rank_correlation(a, a[:10])


def test_rank_correlation_without_scipy_uses_numpy(rng, monkeypatch):
    import builtins

    real_import = builtins.__import__

    def no_scipy(name, *args, **kwargs):
        if name.startswith("scipy"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    a = rng.random(300)
    b = a + rng.random(300)
    with_scipy = metrics.rank_correlation(a, b)
    monkeypatch.setattr(builtins, "__import__", no_scipy)
    assert metrics.rank_correlation(a, b) == pytest.approx(with_scipy)
    assert metrics.rank_correlation(a, np.exp(a)) == pytest.approx(1.0)


# ---------------------------------------------------------------- uncertainty and blur measures


def test_rank_correlation_is_one_when_std_is_the_error_and_near_zero_when_independent(rng):
    sharp = rng.random((3, 48, 48))
    mean = sharp + rng.normal(0, 0.05, sharp.shape)
    std = np.abs(np.clip(mean, 0, 1) - sharp)
    assert metrics.uncertainty_correlation(std, mean, sharp) == pytest.approx(1.0)
    assert metrics.uncertainty_correlation(rng.random(sharp.shape), mean, sharp) == pytest.approx(0, abs=0.05)
    a = rng.random(5000)
    assert metrics.rank_correlation(a, a**3) == pytest.approx(1.0)  # monotone, not linear
    assert metrics.rank_correlation(a, -a) == pytest.approx(-1.0)
    assert metrics.rank_correlation(a, rng.random(5000)) == pytest.approx(0, abs=0.05)
    assert metrics.rank_correlation(a, np.zeros(5000)) is None  # a constant has no ranking


def test_edge_map_is_the_gradient_magnitude_per_channel(rng):
    step = np.zeros((2, 16, 16))
    step[0, :, 8:] = 1.0  # a vertical edge in channel 0; channel 1 is flat
    edges = metrics.edge_map(step)
    assert edges.shape == step.shape and edges.dtype == np.float64
    assert edges[1].max() == 0 and edges[0, :, 7:9].min() == pytest.approx(0.5)
    assert edges[0, :, :7].max() == 0 and edges[0, :, 9:].max() == 0
    ramp = np.add.outer(np.arange(16.0) * 3, np.arange(16.0) * 4)  # |grad| = 5 everywhere
    assert metrics.edge_map(ramp) == pytest.approx(np.full((16, 16), 5.0))
    # an error that sits on the edges is ranked by the edge map, as by a std that does the same
    sharp = rng.random((24, 24)) * 0.1
    sharp[:, 12:] += 0.8
    mean = np.clip(sharp + np.where(np.abs(np.arange(24) - 11.5) < 1, 0.2, 0.0)[None, :], 0, 1)
    assert metrics.uncertainty_correlation(metrics.edge_map(sharp), mean, sharp) > 0.3


def test_numpy_spearman_matches_scipy_with_ties(rng):
    from scipy.stats import rankdata, spearmanr

    a = rng.integers(0, 6, 400).astype(float)  # many ties
    b = a + rng.integers(0, 4, 400)
    np.testing.assert_allclose(metrics._ranks(a), rankdata(a))
    assert metrics._spearman_numpy(a, b) == pytest.approx(spearmanr(a, b)[0])


def test_sharpness_is_lower_for_sharper_images(rng):
    sharp = rng.random((3, 64, 64))
    smooth = (sharp + np.roll(sharp, 1, -1) + np.roll(sharp, 1, -2) + np.roll(sharp, (1, 1), (-2, -1))) / 4
    assert metrics.sharpness(sharp) < metrics.sharpness(smooth)
    assert metrics.sharpness(sharp[0]) == pytest.approx(metrics.sharpness(sharp[:1].repeat(3, 0)))


def test_metrics_imports_only_numpy():
    loaded = loaded_after_import("napari_deblur.metrics")
    assert not loaded & {"torch", "skimage", "scipy", "napari", "qtpy"}, sorted(loaded)
