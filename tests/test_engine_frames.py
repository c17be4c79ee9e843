"""The engine's frames path (a frame that fits in one tile, restored on the device from end to
end) against its tiled path: the same results, and the images each path takes."""

import numpy as np
import pytest
import torch
from factories import tiny_model

from napari_deblur import xydeblur
from napari_deblur.engine import restore
from napari_deblur.engine.frames import frames_fit, send, to_float

RNG = np.random.default_rng(1)


def tiled(monkeypatch, *args, **kwargs):
    """The same call down the tiled path (one tile per frame, blended and rounded on the host)."""
    with monkeypatch.context() as patch:
        patch.setattr(restore, "frames_fit", lambda *a: False)
        result = xydeblur(*args, **kwargs)
    assert result.info["path"] == "tiles"
    return result


CASES = [  # (image, axes, model channels, normalize)
    (RNG.integers(0, 256, (37, 42, 3)).astype(np.uint8), "YXC", 3, "auto"),
    (RNG.integers(0, 65536, (3, 30, 26)).astype(np.uint16), "ZYX", 1, "dtype"),  # values above 32767
    (RNG.integers(200, 3000, (2, 33, 40)).astype(np.uint16), "TYX", 1, "auto"),  # percentiles
    (RNG.integers(-3000, 3000, (24, 28)).astype(np.int16), "YX", 1, "auto"),
    (RNG.integers(-100, 100, (20, 24)).astype(np.int8), "YX", 1, "dtype"),
    (RNG.random((2, 28, 32)).astype(np.float16), "TYX", 1, "auto"),
    ((RNG.random((29, 31)) * 500).astype(np.float32), "YX", 1, "auto"),  # camera units: percentiles
    (RNG.integers(0, 256, (26, 30)).astype(np.uint8), "YX", 3, "auto"),  # gray seen by an RGB model
]


@pytest.mark.parametrize("image, axes, channels, normalize", CASES, ids=lambda v: getattr(v, "dtype", v))
def test_frames_path_equals_the_tiled_path(monkeypatch, image, axes, channels, normalize):
    model = tiny_model(channels, seed=3)
    with torch.no_grad():  # a visible residual, so rounding and scaling are exercised
        model.Decoder1_4.main[0].bias.add_(0.02)
    before = image.copy()
    frames = xydeblur(image, model, axes=axes, normalize=normalize, device="cpu")
    assert frames.info["path"] == "frames"
    host = tiled(monkeypatch, image, model, axes=axes, normalize=normalize, device="cpu")
    np.testing.assert_array_equal(image, before)  # the caller's array is never written to
    for name in ("restored", "r_hor", "r_ver"):
        got, want = getattr(frames, name), getattr(host, name)
        assert got.dtype == want.dtype and got.shape == want.shape == image.shape
        np.testing.assert_array_equal(got, want)
    assert np.abs(frames.r_hor.astype(np.float64)).max() > 0


def test_float32_output_is_not_rounded(monkeypatch):
    image = RNG.integers(0, 256, (24, 24, 3)).astype(np.uint8)
    model = tiny_model(3, seed=4)
    frames = xydeblur(image, model, axes="YXC", out_dtype="float32")
    host = tiled(monkeypatch, image, model, axes="YXC", out_dtype="float32")
    assert frames.restored.dtype == np.float32 and not np.all(frames.restored == np.round(frames.restored))
    np.testing.assert_array_equal(frames.restored, host.restored)


@pytest.mark.parametrize(
    "image, axes, channels",
    [
        (np.zeros((24, 24, 4), np.uint8), "YXC", 3),  # RGBA: the alpha passes through on the host
        (np.zeros((24, 24), np.float64), "YX", 1),  # float64 keeps float64 arithmetic
        (np.zeros((24, 24), np.int32), "YX", 1),  # wider than float32 holds exactly
        (np.zeros((2, 24, 24), np.uint16), "CYX", 1),  # per-channel restoration of a multichannel image
        (np.array([[np.nan] + [0.5] * 23] * 24, np.float32), "YX", 1),  # NaN is filled and kept
    ],
)
def test_other_images_take_the_tiled_path(image, axes, channels):
    assert xydeblur(image, tiny_model(channels), axes=axes).info["path"] == "tiles"


def test_a_frame_larger_than_the_tile_is_tiled():
    image = RNG.integers(0, 256, (140, 150)).astype(np.uint8)
    assert xydeblur(image, tiny_model(), tile=128).info["path"] == "tiles"
    assert xydeblur(image, tiny_model(), tile=256).info["path"] == "frames"


def test_which_images_fit():
    assert frames_fit(np.uint8, False, 3, 3) and frames_fit(np.float32, False, 1, 3)
    assert not frames_fit(np.uint8, True, 3, 3) and not frames_fit(np.uint32, False, 1, 1)
    assert not frames_fit(np.uint16, False, 2, 1)


def test_uint16_travels_as_its_bit_pattern():
    block = np.array([[0, 1, 32767, 32768, 65535]], np.uint16)
    np.testing.assert_array_equal(
        to_float(send(block, torch.device("cpu")), block.dtype).numpy(), block.astype(np.float32)
    )


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16])
def test_a_stack_batch_by_batch_equals_one_batch(dtype):
    """The pipelined loop (the next batch sent before the last one is collected) keeps order,
    reports every batch, and gives what a single batch gives."""
    info = np.iinfo(dtype)
    stack = RNG.integers(info.min, info.max, (5, 24, 28), endpoint=True).astype(dtype)
    model = tiny_model(1, seed=6)
    with torch.no_grad():
        model.Decoder1_4.main[0].bias.add_(0.05)
    whole = xydeblur(stack, model, axes="TYX", batch=8, normalize="dtype")
    steps = restore.xydeblur_iter(stack, model, axes="TYX", batch=2, normalize="dtype")
    done = []
    while True:
        try:
            done.append(next(steps).done)
        except StopIteration as stop:
            split = stop.value
            break
    assert split.info["path"] == "frames" and split.info["batch"] == 2
    assert done == [2, 4, 5]
    # the CPU's convolutions round differently at another batch size: residuals (in input
    # units) to float32 rounding, restored values at most one level apart
    for name in ("r_hor", "r_ver"):
        np.testing.assert_allclose(getattr(split, name), getattr(whole, name), rtol=1e-5, atol=1e-3)
    assert np.abs(split.restored.astype(np.int64) - whole.restored.astype(np.int64)).max() <= 1
    assert split.restored.dtype == stack.dtype and (split.restored != stack).any()
