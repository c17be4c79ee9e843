"""Tests for napari_deblur.color_shift (numpy only)."""

import json
import math

import numpy as np
import pytest

from napari_deblur.color_shift import (
    ColorShift,
    cct_mccamy,
    color_shift,
    correlated_color_temperature,
    linear_srgb_to_xyz,
    opponent,
)
from napari_deblur.metrics import srgb_to_linear


def flat(rgb, shape=(8, 10), dtype=np.float32):
    return np.broadcast_to(np.asarray(rgb, dtype=dtype), (*shape, len(rgb))).copy()


def zeros_like(img):
    return np.zeros(img.shape, dtype=np.float32)


def test_helpers():
    assert srgb_to_linear(0.0) == 0.0
    assert srgb_to_linear(1.0) == pytest.approx(1.0)
    assert srgb_to_linear(0.5) == pytest.approx(0.21404, abs=1e-4)
    assert srgb_to_linear(0.02) == pytest.approx(0.02 / 12.92)
    x, y, z = linear_srgb_to_xyz([1.0, 1.0, 1.0])
    assert (x, y, z) == pytest.approx((0.9505, 1.0, 1.089), abs=2e-3)
    assert cct_mccamy(0.3127, 0.3290) == pytest.approx(6505.08, abs=0.05)
    assert cct_mccamy(0.4476, 0.4074) == pytest.approx(2856.40, abs=0.05)  # illuminant A
    assert math.isnan(correlated_color_temperature([0.0, 0.0, 0.0]))


def test_d65_white_is_6500k():
    img = flat([1.0, 1.0, 1.0])
    cs = color_shift(img, zeros_like(img), zeros_like(img))
    assert isinstance(cs, ColorShift)
    for k in ("image", "image+r_hor", "image+r_ver", "restored"):
        assert cs.cct[k] == pytest.approx(6505, abs=30)
    # mid grey has the same chromaticity
    grey = flat([0.5, 0.5, 0.5])
    assert color_shift(grey, zeros_like(grey), zeros_like(grey)).cct["image"] == pytest.approx(6505, abs=30)


def test_warm_and_cool_shift_cct():
    img = flat([0.6, 0.6, 0.6])
    z = zeros_like(img)
    warm = z.copy()
    warm[..., 0] = 0.2
    warm[..., 2] = -0.2
    cool = z.copy()
    cool[..., 0] = -0.2
    cool[..., 2] = 0.2
    cs = color_shift(img, warm, cool)
    base = cs.cct["image"]
    assert cs.cct["image+r_hor"] < base - 500
    assert cs.cct["image+r_ver"] > base + 500
    # warm + cool cancel
    assert cs.cct["restored"] == pytest.approx(base, abs=1)


def test_grey_residual_has_no_chroma():
    img = flat([0.3, 0.5, 0.7])
    r = np.full(img.shape, 0.05, np.float32)
    cs = color_shift(img, r, -2 * r)
    np.testing.assert_allclose(cs.chroma_hor, 0, atol=1e-7)
    np.testing.assert_allclose(cs.chroma_ver, 0, atol=1e-7)
    np.testing.assert_allclose(cs.chroma_sum, 0, atol=1e-7)
    np.testing.assert_allclose(cs.mean_hor, [0.05] * 3, rtol=1e-6)
    np.testing.assert_allclose(cs.mean_ver, [-0.1] * 3, rtol=1e-6)
    np.testing.assert_allclose(cs.mean_sum, [-0.05] * 3, rtol=1e-6)
    assert cs.chroma_hor.shape == img.shape[:-1] and cs.chroma_hor.dtype == np.float32


def test_red_residual():
    img = flat([0.4, 0.4, 0.4])
    rh = zeros_like(img)
    rh[..., 0] = 0.1
    cs = color_shift(img, rh, zeros_like(img))
    np.testing.assert_allclose(cs.mean_hor, [0.1, 0.0, 0.0], atol=1e-7)
    np.testing.assert_allclose(cs.mean_ver, [0, 0, 0])
    np.testing.assert_allclose(cs.mean_sum, [0.1, 0.0, 0.0], atol=1e-7)
    # |c| for (0.1, 0, 0): c = (2/3, -1/3, -1/3) * 0.1 -> 0.1 * sqrt(6)/3
    np.testing.assert_allclose(cs.chroma_hor, 0.1 * math.sqrt(6) / 3, rtol=1e-5)
    o1, o2 = opponent(np.array([1.0, 0.0, 0.0]))
    np.testing.assert_allclose(cs.hue_hor, math.atan2(o2, o1), atol=1e-6)
    np.testing.assert_allclose(cs.hue_hor, math.pi / 6, atol=1e-6)
    np.testing.assert_allclose(cs.chroma_ver, 0)
    # opponent norm equals chroma magnitude for an arbitrary colour
    v = np.array([0.3, -0.2, 0.7])
    o1, o2 = opponent(v)
    assert math.hypot(o1, o2) == pytest.approx(np.linalg.norm(v - v.mean()))
    # red makes the restored image warmer
    assert cs.cct["restored"] < cs.cct["image"]


def make_split():
    """Left half cool with +0.2 in B, right half warm with +0.1 in R."""
    img = flat([0.5, 0.5, 0.5])
    img[:, :5] = [0.45, 0.5, 0.6]  # cool tint (McCamy is valid near the Planckian locus)
    img[:, 5:] = [0.6, 0.5, 0.4]  # warm tint
    rh = zeros_like(img)
    rh[:, :5, 2] = 0.2
    rh[:, 5:, 0] = 0.1
    return img, rh


def test_region_mask_and_slices():
    img, rh = make_split()
    z = zeros_like(img)
    mask = np.zeros(img.shape[:2], bool)
    mask[:, :5] = True
    a = color_shift(img, rh, z, region=mask)
    b = color_shift(img, rh, z, region=(slice(None), slice(0, 5)))
    np.testing.assert_allclose(a.mean_hor, [0, 0, 0.2], atol=1e-7)
    np.testing.assert_allclose(b.mean_hor, [0, 0, 0.2], atol=1e-7)
    assert a.cct == b.cct and a.n_pixels == b.n_pixels == 40
    c = color_shift(img, rh, z, region=~mask)
    np.testing.assert_allclose(c.mean_hor, [0.1, 0, 0], atol=1e-7)
    assert 2000 < c.cct["image"] < 5000 < 8000 < a.cct["image"] < 15000
    whole = color_shift(img, rh, z)
    np.testing.assert_allclose(whole.mean_hor, [0.05, 0, 0.1], atol=1e-7)
    # maps cover the full image regardless of region
    assert a.chroma_hor.shape == img.shape[:2]
    np.testing.assert_allclose(a.chroma_hor, whole.chroma_hor)


def test_uint8_and_float_agree():
    img, rh = make_split()
    rv = zeros_like(img)
    rv[..., 1] = -0.05
    u8 = np.round(img * 255).astype(np.uint8)
    f = u8.astype(np.float64) / 255
    cf = color_shift(f, rh, rv)
    cu = color_shift(u8, rh * 255, rv * 255)
    np.testing.assert_allclose(cu.mean_hor, cf.mean_hor * 255, rtol=1e-5)
    np.testing.assert_allclose(cu.mean_ver, cf.mean_ver * 255, rtol=1e-5)
    np.testing.assert_allclose(cu.chroma_sum, cf.chroma_sum * 255, rtol=1e-4)
    np.testing.assert_allclose(cu.hue_sum, cf.hue_sum, atol=1e-5)
    for k in cf.cct:
        assert cu.cct[k] == pytest.approx(cf.cct[k], rel=1e-6)
    # uint16 and explicit value_range
    u16 = (f * 65535).astype(np.float64)
    c16 = color_shift(np.round(u16).astype(np.uint16), rh * 65535, rv * 65535)
    assert c16.cct["image"] == pytest.approx(cf.cct["image"], rel=1e-4)
    cv = color_shift(f * 1000, rh * 1000, rv * 1000, value_range=1000)
    assert cv.cct["restored"] == pytest.approx(cf.cct["restored"], rel=1e-6)


def test_rgba_ignores_alpha():
    img, rh = make_split()
    rgba = np.concatenate([img, np.full(img.shape[:2] + (1,), 0.25, np.float32)], axis=-1)
    rh4 = np.concatenate([rh, np.zeros(img.shape[:2] + (1,), np.float32)], axis=-1)
    rh4_junk = rh4.copy()
    rh4_junk[..., 3] = 5.0
    z4 = np.zeros(rgba.shape, np.float32)
    ref = color_shift(img, rh, zeros_like(img))
    for r in (rh4, rh4_junk):
        cs = color_shift(rgba, r, z4)
        assert cs.mean_hor.shape == (3,)
        np.testing.assert_allclose(cs.mean_hor, ref.mean_hor)
        np.testing.assert_allclose(cs.chroma_hor, ref.chroma_hor)
        assert cs.cct == ref.cct


def test_stack_and_channel_axis():
    img, rh = make_split()
    stack = np.stack([img, img[:, ::-1]])  # (Z, Y, X, 3)
    rstack = np.stack([rh, np.zeros_like(rh)])
    z = np.zeros_like(stack)
    cs = color_shift(stack, rstack, z)
    assert cs.chroma_hor.shape == stack.shape[:-1]
    np.testing.assert_allclose(cs.mean_hor, [0.025, 0, 0.05], atol=1e-7)
    assert cs.n_pixels == 2 * 8 * 10
    # a (Y, X) mask broadcasts over the stack
    mask = np.zeros(img.shape[:2], bool)
    mask[:, :5] = True
    np.testing.assert_allclose(color_shift(stack, rstack, z, region=mask).mean_hor, [0, 0, 0.1], atol=1e-7)
    # channels first (C, Y, X) gives the same numbers
    cyx = color_shift(
        np.moveaxis(img, -1, 0), np.moveaxis(rh, -1, 0), np.zeros((3, 8, 10)), channel_axis=0, region=mask
    )
    ref = color_shift(img, rh, zeros_like(img), region=mask)
    np.testing.assert_allclose(cyx.mean_hor, ref.mean_hor)
    np.testing.assert_allclose(cyx.hue_hor, ref.hue_hor)
    assert cyx.chroma_hor.shape == (8, 10) and cyx.cct == ref.cct


def test_bad_inputs():
    img = flat([0.5, 0.5, 0.5])
    z = zeros_like(img)
    with pytest.raises(ValueError, match="3 colour channels"):
        color_shift(img[..., :2], z[..., :2], z[..., :2])
    with pytest.raises(ValueError, match="3 colour channels"):
        color_shift(np.zeros((3, 8, 10)), np.zeros((3, 8, 10)), np.zeros((3, 8, 10)))
    with pytest.raises(ValueError):
        color_shift(img[..., 0], z[..., 0], z[..., 0])
    with pytest.raises(ValueError, match="r_hor"):
        color_shift(img, z[:4], z)
    with pytest.raises(ValueError, match="r_ver"):
        color_shift(img, z, z[..., :3, :])
    with pytest.raises(ValueError, match="no pixels"):
        color_shift(img, z, z, region=np.zeros(img.shape[:2], bool))
    with pytest.raises(ValueError, match="no pixels"):
        color_shift(img, z, z, region=(slice(2, 2), slice(None)))
    with pytest.raises(ValueError):
        color_shift(img, z, z, region=np.ones((3, 3), bool))
    with pytest.raises(TypeError):
        color_shift(img, z, z, region=np.ones(img.shape[:2], np.uint8))
    with pytest.raises(ValueError):
        color_shift(img, z, z, channel_axis=5)
    with pytest.raises(ValueError):
        color_shift(img, z, z, value_range=0)
    with pytest.raises(TypeError):
        color_shift(img.astype(complex), z, z)


def test_inputs_not_modified():
    img, rh = make_split()
    u8 = np.round(img * 255).astype(np.uint8)
    rh8 = rh * 255
    rv8 = np.full(img.shape, -3.0)
    mask = np.zeros(img.shape[:2], bool)
    mask[2:5] = True
    copies = [a.copy() for a in (u8, rh8, rv8, mask)]
    color_shift(u8, rh8, rv8, region=mask)
    for a, c in zip((u8, rh8, rv8, mask), copies):
        np.testing.assert_array_equal(a, c)


def test_summary_and_as_dict():
    img, rh = make_split()
    black = np.zeros_like(img)
    cs = color_shift(img, rh, zeros_like(img))
    text = cs.summary()
    assert "r_hor" in text and "r_ver" in text and "restored" in text and "K" in text
    assert len(text.splitlines()) >= 4
    d = cs.as_dict()
    json.dumps(d, allow_nan=False)
    assert d["mean_hor"] == pytest.approx([0.05, 0, 0.1], abs=1e-7)
    assert set(d["cct"]) == {"image", "image+r_hor", "image+r_ver", "restored"}
    assert "chroma_hor" not in d
    # black image: CCT is nan, serialised as null
    cb = color_shift(black, zeros_like(img), zeros_like(img))
    assert math.isnan(cb.cct["image"])
    assert json.loads(json.dumps(cb.as_dict(), allow_nan=False))["cct"]["image"] is None
    cb.summary()
