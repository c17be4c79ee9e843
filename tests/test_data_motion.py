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
