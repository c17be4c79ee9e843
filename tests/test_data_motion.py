"""Dynamic-scene motion blur (data.motion) and its use by the photo sampler."""

import numpy as np
import pytest
import torch

from napari_deblur.data.motion import frame_average, random_flows
from napari_deblur.data.pairs import PairSampler


def test_zero_flow_returns_the_frame():
    x = torch.rand(2, 3, 40, 48, generator=torch.Generator().manual_seed(0))
    v = torch.zeros(2, 2, 40, 48)
    assert torch.allclose(frame_average(x, v, v), x, atol=1e-4)


def test_uniform_flow_smears_a_point_into_a_line_of_the_path_length():
    x = torch.zeros(1, 1, 41, 41)
    x[0, 0, 20, 20] = 1
    v = torch.zeros(1, 2, 41, 41)
    v[:, 1] = 10.0  # 10 px along the columns over the exposure
    y = frame_average(x, v, torch.zeros_like(v))[0, 0]
    rows, cols = np.nonzero(y.numpy() > 1e-4)
    assert set(rows) == {20}  # no vertical spread
    assert 10 <= cols.max() - cols.min() <= 12  # the path's length, give or take the bilinear taps
    assert float(y.sum()) == pytest.approx(1.0, abs=1e-4)  # the light is kept


def test_random_flows_stay_within_the_extent_and_follow_the_generator():
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    v1, a1 = random_flows(6, 32, 40, 17.0, g1)
    v2, a2 = random_flows(6, 32, 40, 17.0, g2)
    assert v1.shape == a1.shape == (6, 2, 32, 40)
    assert torch.equal(v1, v2) and torch.equal(a1, a2)
    assert float(v1.norm(dim=1).max()) <= 17.0 + 1e-4
    assert float(v1.norm(dim=1).amax(dim=(1, 2)).min()) > 0  # every sample moves


def test_sampler_streams_unchanged_without_motion_and_blurred_with_it():
    opts = dict(crop=32, batch=4, pool_size=4, kernel_pool=8, tile_slack=0, seed=3)
    plain, off = PairSampler("photo", **opts), PairSampler("photo", motion_prob=0.0, **opts)
    for _ in range(2):
        (b1, s1), (b2, s2) = plain.sample(), off.sample()
        assert torch.equal(b1, b2) and torch.equal(s1, s2)
    moving = PairSampler("photo", motion_prob=1.0, identity_prob=1.0, **opts)
    blurred, sharp = moving.sample()
    assert blurred.shape == sharp.shape == (4, 3, 32, 32)
    assert torch.isfinite(blurred).all() and 0 <= float(blurred.min()) and float(blurred.max()) <= 1
    # every kernel is the identity, but motion-blurred samples keep their sharp target (not the input)
    assert not torch.equal(blurred, sharp)


def test_microscopy_ignores_motion():
    s = PairSampler("microscopy", crop=32, batch=2, pool_size=2, kernel_pool=4, tile_slack=0, motion_prob=1.0)
    assert s.motion_prob == 0.0


def test_display_space_blur_keeps_the_srgb_mean_as_gopro_frames_do():
    """GoPro's blurred frames keep the sharp frame's sRGB mean (their frames were averaged as
    stored); linear-light blur keeps the linear mean instead. A bright/dark edge tells them apart."""
    from napari_deblur.data.degrade import degrade_photo
    from napari_deblur.metrics import srgb_to_linear

    sharp = torch.full((2, 3, 64, 64), 0.1)
    sharp[..., 32:] = 0.9
    kernel = torch.zeros(2, 9, 9)
    kernel[:, 4, :] = 1 / 9  # horizontal box blur across the edge
    clean = dict(highlight_prob=0.0, exposure=(1.0, 1.0), noise_prob=0.0, quantize_prob=0.0)
    blurred, target = degrade_photo(sharp, kernel, display=torch.tensor([False, True]), **clean)
    assert torch.allclose(target, sharp[..., 4:-4, 4:-4], atol=1e-5)
    linear, display = blurred[0], blurred[1]
    assert float(srgb_to_linear(linear).mean()) == pytest.approx(float(srgb_to_linear(target[0]).mean()), abs=2e-4)
    assert float(display.mean()) == pytest.approx(float(target[1].mean()), abs=2e-4)
    # on the edge the linear-light blur is brighter (light spreads into the dark side)
    assert float((linear - display).mean()) > 0.01
    assert torch.allclose(linear[..., :20], display[..., :20], atol=1e-5)  # away from the edge: both the input


def test_sampler_streams_unchanged_without_display_blur_and_changed_with_it():
    opts = dict(crop=32, batch=4, pool_size=4, kernel_pool=8, tile_slack=0, seed=3, motion_prob=0.5)
    plain, off = PairSampler("photo", **opts), PairSampler("photo", display_prob=0.0, **opts)
    on = PairSampler("photo", display_prob=1.0, **opts)
    (b1, s1), (b2, s2), (b3, s3) = plain.sample(), off.sample(), on.sample()
    assert torch.equal(b1, b2) and torch.equal(s1, s2)
    assert torch.equal(s1, s3) and not torch.equal(b1, b3)  # same sharp targets, blurred another way
    assert PairSampler("microscopy", crop=32, batch=2, pool_size=2, kernel_pool=4, display_prob=1.0).display_prob == 0
