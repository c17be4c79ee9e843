"""ModelInput: how an image in (B, C, Y, X) is shown to a network of a given channel count."""

import numpy as np
import pytest

from napari_deblur.engine.axes import to_bcyx
from napari_deblur.engine.model_input import ModelInput


def prepared(image, axes, channels, normalize="auto"):
    bcyx, layout = to_bcyx(image, axes)
    return ModelInput.fit(bcyx, layout, image.dtype, channels, normalize)


def test_a_joint_model_sees_the_colour_channels_without_alpha():
    rgba = np.random.default_rng(0).integers(0, 256, (6, 5, 4), dtype=np.uint8)
    source = prepared(rgba, "YXC", 3)
    assert (source.colour, source.replicate_to, source.channel_mode) == (3, 0, "joint")
    assert source.compute == np.float32 and source.nan is None
    items = source.items()
    assert items.shape == (1, 3, 6, 5) and items.dtype == np.float32
    np.testing.assert_allclose(items[0], np.moveaxis(rgba[..., :3], -1, 0) / 255, atol=1e-6)


def test_integers_are_viewed_and_floats_copied():
    stack = np.random.default_rng(1).integers(0, 4096, (2, 8, 8), dtype=np.uint16)
    assert np.shares_memory(prepared(stack, "CYX", 1).values, stack)
    floats = stack.astype(np.float32)
    assert not np.shares_memory(prepared(floats, "CYX", 1).values, floats)


def test_channel_modes_and_item_shapes():
    stack = np.random.default_rng(2).random((2, 8, 8)).astype(np.float32)
    per_channel = prepared(stack, "CYX", 1)
    assert per_channel.channel_mode == "per-channel" and per_channel.items().shape == (2, 1, 8, 8)
    replicated = prepared(stack, "CYX", 3)
    assert (replicated.replicate_to, replicated.channel_mode) == (3, "replicated")
    assert replicated.items().shape == (2, 1, 8, 8)
    with pytest.raises(ValueError, match="a 4-channel model cannot refine an image with 2 colour channels"):
        ModelInput.fit(*to_bcyx(stack, "CYX"), stack.dtype, 4, "auto", verb="refine")


def test_nan_pixels_are_filled_in_new_items_and_the_image_is_untouched():
    image = np.random.default_rng(3).random((8, 8))
    image[2, 3] = np.nan
    before = image.copy()
    source = prepared(image, "YX", 1, normalize="dtype")
    assert source.compute == np.float64 and source.nan[0, 0, 2, 3] and source.nan.sum() == 1
    items = source.items()
    assert np.isfinite(items).all() and items[0, 0, 2, 3] == np.float32(np.nanmedian(image))
    assert source.items() is not items
    np.testing.assert_array_equal(image, before)
