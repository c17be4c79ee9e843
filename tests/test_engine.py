import numpy as np
import pytest
import torch
from factories import constant_residual_model, tiny_model

from napari_deblur import Progress, xydeblur, xydeblur_iter
from napari_deblur.engine import restore, runtime

RNG = np.random.default_rng(0)


def _image(shape, dtype):
    if np.dtype(dtype).kind == "f":
        return RNG.random(shape).astype(dtype)
    info = np.iinfo(dtype)
    hi = min(info.max, 4095) if dtype != np.uint8 else 255
    return RNG.integers(max(info.min, 0), hi, size=shape).astype(dtype)


@pytest.mark.parametrize("dtype", [np.uint8, np.uint16, np.int16, np.int32, np.float32, np.float64])
def test_dtype_and_shape_round_trip(dtype):
    image = _image((2, 21, 30), dtype)
    result = xydeblur(image, tiny_model())
    assert result.restored.shape == image.shape and result.restored.dtype == image.dtype
    assert result.r_hor.shape == image.shape and result.r_hor.dtype == np.float32
    assert result.r_ver.dtype == np.float32
    as_float = xydeblur(image, tiny_model(), out_dtype="float32").restored
    assert as_float.dtype == np.float32


def test_float_restored_is_image_plus_residuals():
    image = _image((33, 47), np.float32) * 5 - 1  # outside [0, 1]: percentile scaling
    result = xydeblur(image, tiny_model())
    np.testing.assert_allclose(result.restored, image + result.r_hor + result.r_ver, rtol=0, atol=1e-6)
    assert np.abs(result.r_hor).max() > 0


@pytest.mark.parametrize(
    "dtype, normalize, unit",
    [(np.uint8, "auto", 255.0), (np.uint16, "dtype", 65535.0), (np.float32, "auto", 1.0)],
)
def test_residuals_are_in_input_units(dtype, normalize, unit):
    image = _image((16, 16), dtype)
    if dtype == np.float32:
        image = image * 0.5
    result = xydeblur(image, constant_residual_model(value=0.01), normalize=normalize)
    np.testing.assert_allclose(result.r_hor, 0.01 * unit, rtol=1e-4)
    np.testing.assert_allclose(result.r_ver, 0.01 * unit, rtol=1e-4)
    expected = image.astype(np.float64) + 0.02 * unit
    if dtype != np.float32:
        expected = np.clip(np.rint(expected), 0, np.iinfo(dtype).max)
    np.testing.assert_allclose(result.restored, expected, atol=1e-5 * unit)


def test_percentile_scaling_maps_back_to_units():
    image = np.linspace(100, 1100, 64 * 64).reshape(64, 64).astype(np.uint16)  # a 12-bit-like range
    result = xydeblur(image, constant_residual_model(value=0.01), normalize=(0, 100))
    np.testing.assert_allclose(result.r_hor, 0.01 * 1000, rtol=1e-3)
    assert "percentile" in result.info["normalize"]


def test_integers_are_clipped_to_their_range():
    image = np.full((16, 16), 250, np.uint8)
    result = xydeblur(image, constant_residual_model(value=0.1))
    assert result.restored.max() == 255 and result.restored.dtype == np.uint8
    assert np.all(result.r_hor > 25)  # the residual itself is not clipped


def test_zero_residual_returns_the_image_exactly():
    for dtype in (np.uint8, np.uint16, np.float32, np.float64):
        image = _image((3, 17, 19), dtype)
        np.testing.assert_array_equal(xydeblur(image, constant_residual_model()).restored, image)


def test_rgba_alpha_passes_through():
    image = _image((20, 24, 4), np.uint8)
    result = xydeblur(image, tiny_model(channels=3))
    assert result.axes == "YXC"
    np.testing.assert_array_equal(result.restored[..., 3], image[..., 3])
    assert not result.r_hor[..., 3].any() and not result.r_ver[..., 3].any()
    assert np.abs(result.r_hor[..., :3]).max() > 0


def test_channel_axis_position_does_not_matter():
    rgb = _image((24, 28, 3), np.float32)
    model = tiny_model(channels=3)
    last = xydeblur(rgb, model, axes="YXC")
    first = xydeblur(np.moveaxis(rgb, -1, 0), model, axes="CYX")
    np.testing.assert_allclose(np.moveaxis(first.restored, 0, -1), last.restored, atol=1e-6)
    assert last.info["channel_mode"] == "joint"


def test_gray_model_restores_each_channel_on_its_own():
    stack = _image((3, 24, 28), np.float32)
    model = tiny_model(channels=1)
    together = xydeblur(stack, model, axes="CYX")
    for c in range(3):
        alone = xydeblur(stack[c], model)
        np.testing.assert_allclose(together.restored[c], alone.restored, atol=1e-6)
    assert together.info["channel_mode"] == "per-channel"


def test_rgb_model_on_gray_replicates_and_averages():
    gray = _image((24, 28), np.float32)
    model = tiny_model(channels=3)
    result = xydeblur(gray, model)
    with torch.no_grad():
        r1, r2 = model.residuals(torch.from_numpy(gray)[None, None].expand(1, 3, -1, -1))
    np.testing.assert_allclose(result.r_hor, r1.mean(1)[0].numpy(), atol=1e-6)
    np.testing.assert_allclose(result.r_ver, r2.mean(1)[0].numpy(), atol=1e-6)
    assert result.info["channel_mode"] == "replicated"


def test_engine_matches_the_network_on_a_plain_image():
    image = _image((32, 40), np.float32)
    model = tiny_model()
    result = xydeblur(image, model)
    with torch.no_grad():
        r1, r2, y = model(torch.from_numpy(image)[None, None])
    np.testing.assert_allclose(result.restored, y[0, 0].numpy(), atol=1e-6)
    np.testing.assert_allclose(result.r_hor, r1[0, 0].numpy(), atol=1e-6)


def test_odd_sizes_are_padded_and_cropped():
    image = _image((5, 7), np.float32)
    result = xydeblur(image, tiny_model())
    assert result.restored.shape == (5, 7)
    assert np.isfinite(result.restored).all()


def test_hyperstack_keeps_its_shape():
    image = _image((2, 3, 2, 18, 22), np.uint16)
    result = xydeblur(image, tiny_model(), axes="TZCYX")
    assert result.restored.shape == image.shape and result.axes == "TZCYX"
    # planes are independent: one plane alone gives the same answer (same scaling)
    single = xydeblur(image[1, 2, 0], tiny_model(), normalize="dtype")
    full = xydeblur(image, tiny_model(), axes="TZCYX", normalize="dtype")
    np.testing.assert_array_equal(full.restored[1, 2, 0], single.restored)


def test_tiled_equals_untiled():
    image = _image((280, 300), np.float32)
    model = tiny_model()
    whole = xydeblur(image, model, tile=1024)
    tiled = xydeblur(image, model, tile=128, overlap=48)
    assert tiled.info["tile"] == 128 and whole.info["tile"] == 1024
    for result in (whole, tiled):  # where the time went, in order, adding up to the call
        stages = result.info["stages"]
        assert list(stages) == ["prepare", "network", "assemble", "finish"] and min(stages.values()) >= 0
        assert sum(stages.values()) <= result.info["seconds"]
    err = np.mean((whole.restored - tiled.restored) ** 2)
    psnr = 10 * np.log10(1 / err)
    assert psnr > 45, psnr


def test_input_is_never_modified():
    image = _image((2, 20, 20, 4), np.uint8)
    before = image.copy()
    image.flags.writeable = False  # and read-only input works
    xydeblur(image, tiny_model(channels=3))
    np.testing.assert_array_equal(image, before)
    floats = _image((20, 20), np.float32)
    floats[3, 3] = np.nan
    keep = floats.copy()
    xydeblur(floats, tiny_model())
    np.testing.assert_array_equal(floats, keep)


def test_nan_pixels_stay_nan_with_zero_residual():
    image = _image((24, 24), np.float32)
    image[5:8, 5:8] = np.nan
    result = xydeblur(image, tiny_model())
    assert np.isnan(result.restored[5:8, 5:8]).all()
    assert np.isfinite(result.restored[10:, 10:]).all()
    assert not result.r_hor[5:8, 5:8].any()


@pytest.mark.parametrize(
    "image, kwargs, error, match",
    [
        (np.zeros((8, 8), bool), {}, TypeError, "boolean"),
        (np.zeros((8, 8), complex), {}, TypeError, "complex"),
        (np.zeros((0, 8), np.float32), {}, ValueError, "empty"),
        (np.zeros((3, 8), np.float32), {}, ValueError, "too small"),
        (np.zeros(8, np.float32), {}, ValueError, "at least 2 dimensions"),
        (np.full((8, 8), np.nan), {}, ValueError, "all NaN"),
        (np.full((8, 8), np.inf), {}, ValueError, "infinite"),
        (np.array([["a"] * 8] * 8), {}, TypeError, "dtype"),
        (np.zeros((8, 8), np.float32), {"axes": "ZYX"}, ValueError, "3 letters"),
        (np.zeros((8, 8), np.float32), {"out_dtype": "int8"}, ValueError, "out_dtype"),
        (np.zeros((8, 8), np.float32), {"normalize": "zscore"}, ValueError, "normalize"),
        (np.zeros((8, 8), np.float32), {"precision": "fp8"}, ValueError, "precision"),
        (np.zeros((8, 8), np.float32), {"device": "tpu"}, ValueError, "device"),
        (np.zeros((8, 8), np.float32), {"tile": 16}, ValueError, "tile"),
    ],
)
def test_bad_input_raises_clear_errors(image, kwargs, error, match):
    with pytest.raises(error, match=match):
        xydeblur(image, tiny_model(), **kwargs)


def test_wrong_channel_count_for_model():
    model = tiny_model(channels=2)
    with pytest.raises(ValueError, match="2-channel model"):
        xydeblur(np.zeros((8, 8, 3), np.float32), model)


def test_generator_yields_progress_and_returns_result():
    gen = xydeblur_iter(_image((3, 40, 40), np.float32), tiny_model(), tile=64, batch=1)
    steps = []
    try:
        while True:
            steps.append(next(gen))
    except StopIteration as stop:
        result = stop.value
    assert all(isinstance(s, Progress) for s in steps)
    assert [s.done for s in steps] == [1, 2, 3] and steps[-1].fraction == 1
    assert result.restored.shape == (3, 40, 40)


def test_cancel_between_tiles():
    calls = []
    gen = xydeblur_iter(_image((4, 40, 40), np.float32), tiny_model(), batch=1)
    calls.append(next(gen))
    gen.close()  # what a napari worker's quit does at the next yield
    with pytest.raises(StopIteration):
        next(gen)
    assert len(calls) == 1


def messages_and_result(gen):
    """Run an engine generator to its end: (the Progress messages, the result)."""
    messages = []
    while True:
        try:
            messages.append(next(gen).message)
        except StopIteration as stop:
            return messages, stop.value


def test_out_of_memory_retries_with_smaller_batches(monkeypatch):
    real = runtime.network_fn

    def flaky(*args):
        fn = real(*args)

        def wrapped(batch):
            if batch.shape[0] > 1:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
            return fn(batch)

        return wrapped

    monkeypatch.setattr(runtime, "network_fn", flaky)
    image = _image((4, 32, 32), np.float32)
    messages, result = messages_and_result(xydeblur_iter(image, tiny_model(), batch=4))
    assert any("out of memory" in m for m in messages)
    assert result.info["batch"] == 1
    monkeypatch.setattr(runtime, "network_fn", real)
    np.testing.assert_allclose(result.restored, xydeblur(image, tiny_model()).restored, atol=1e-6)


def test_callers_model_is_not_changed():
    model = tiny_model()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    xydeblur(_image((16, 16), np.float32), model, precision="bf16")
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    assert next(model.parameters()).dtype == torch.float32


def test_missing_default_model_says_what_is_missing(monkeypatch, tmp_path):
    monkeypatch.setenv("NAPARI_DEBLUR_RESOURCES", str(tmp_path))
    from napari_deblur import WeightsError

    with pytest.raises(WeightsError, match="xydeblur-microscopy"):
        xydeblur(np.zeros((8, 8), np.float32))


def test_the_device_copy_is_reused_until_the_weights_change():
    model = tiny_model()
    image = _image((24, 24), np.float32)
    first = xydeblur(image, model).restored
    copies = runtime.cached_device_copies()
    assert xydeblur(image, model).restored.tobytes() == first.tobytes()
    assert runtime.cached_device_copies() == copies  # no new copy
    with torch.no_grad():
        model.Decoder1_4.main[0].bias.add_(0.05)  # in place: the cached copy is stale now
    changed = xydeblur(image, model).restored
    assert np.abs(changed - first).max() > 0.05
    np.testing.assert_allclose(changed, xydeblur(image, tiny_model_with_bias(0.05)).restored, atol=1e-6)


def tiny_model_with_bias(delta):
    model = tiny_model()
    with torch.no_grad():
        model.Decoder1_4.main[0].bias.add_(delta)
    return model


def test_a_device_memory_cap_shrinks_the_tiles_and_leaves_no_seams(monkeypatch):
    """Simulated allocator: any forward pass over 128x128 pixels fails as a capped GPU would."""
    real = runtime.network_fn
    sides = []

    def capped(*args):
        fn = real(*args)

        def wrapped(batch):
            sides.append(batch.shape[-1])
            if batch.shape[0] * batch.shape[-2] * batch.shape[-1] > 128 * 128:
                raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")
            return fn(batch)

        return wrapped

    model = tiny_model()
    image = _image((320, 320), np.float32)
    whole = xydeblur(image, model, tile=512).restored
    monkeypatch.setattr(runtime, "network_fn", capped)
    messages, result = messages_and_result(xydeblur_iter(image, model, tile=512, batch=2))
    assert sum("out of memory" in m for m in messages) >= 2
    assert result.info["tile"] == 128 and result.info["batch"] == 1 and max(sides) == 320
    # the blended tiles agree with the whole image to 1e-4 of the range: no seam
    np.testing.assert_allclose(result.restored, whole, atol=2e-4)


WIDE_INTEGERS = [np.int32, np.uint32, np.int64, np.uint64]


@pytest.mark.parametrize("dtype", WIDE_INTEGERS)
def test_wide_integers_saturate_instead_of_wrapping(dtype):
    info = np.iinfo(dtype)
    top = xydeblur(np.full((16, 16), info.max, dtype), constant_residual_model(value=0.1), device="cpu").restored
    assert top.dtype == dtype and np.all(top == info.max)
    bottom = xydeblur(np.full((16, 16), info.min, dtype), constant_residual_model(value=-0.1), device="cpu").restored
    assert np.all(bottom == info.min)


@pytest.mark.parametrize("dtype", WIDE_INTEGERS)
def test_wide_integers_keep_every_digit(dtype):
    info = np.iinfo(dtype)
    image = np.random.default_rng(1).integers(info.max // 2, info.max, (12, 16), dtype=dtype, endpoint=True)
    image[0, 0] = info.max
    np.testing.assert_array_equal(xydeblur(image, constant_residual_model(), device="cpu").restored, image)


@pytest.mark.parametrize("dtype", WIDE_INTEGERS)
def test_cast_like_clips_at_the_exact_integer_bounds(dtype):
    from napari_deblur.engine.intensity import cast_like

    info = np.iinfo(dtype)
    values = np.array(
        [-1e30, float(info.min) - 1e4, float(info.min), 0.0, float(info.max), float(info.max) + 1e4, 1e30, 2.0**64]
    )
    got = cast_like(values, dtype)
    expected = np.array([info.min, info.min, info.min, 0, info.max, info.max, info.max, info.max], dtype=dtype)
    np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize(
    "dtype, value",
    [(np.float32, 3e38), (np.float32, -3e38), (np.float64, 1e308), (np.float64, -1e308), (np.float64, 1e31)],
)
def test_huge_floats_are_refused_not_returned_as_nan(dtype, value):
    image = np.full((16, 16), value, dtype)
    image[::2] = 0.5
    with pytest.raises(ValueError, match=r"magnitude.*divide the image"):
        xydeblur(image, tiny_model(), device="cpu")


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_large_but_allowed_floats_give_finite_results(dtype):
    image = np.random.default_rng(2).uniform(-1e29, 1e29, (16, 16)).astype(dtype)
    result = xydeblur(image, tiny_model(), device="cpu")
    assert np.isfinite(result.restored).all() and np.isfinite(result.r_hor).all()
    np.testing.assert_allclose(result.restored, image + result.r_hor + result.r_ver, rtol=1e-5, atol=0)


@pytest.mark.parametrize("dtype", [np.uint8, np.float64])  # the frames path and the tiled path
def test_a_non_finite_network_output_is_an_error_not_a_result(dtype):
    model = tiny_model()
    with torch.no_grad():
        model.Decoder1_4.main[0].bias.fill_(float("nan"))
    with pytest.raises(restore.NonFiniteOutputError, match="NaN or infinite"):
        xydeblur(_image((16, 16), dtype), model, device="cpu")


BAD_PARAMETERS = [
    ({"tile": "abc"}, ValueError, r"tile must be 'auto' or a whole number of pixels >= 64, got 'abc'"),
    ({"tile": True}, TypeError, r"tile must be 'auto' or a whole number of pixels"),
    ({"tile": 100.5}, TypeError, r"tile must be 'auto' or a whole number"),
    ({"overlap": "x"}, ValueError, r"overlap must be a whole number of pixels >= 0, got 'x'"),
    ({"overlap": -4}, ValueError, r"overlap must be a whole number of pixels >= 0, got -4"),
    ({"batch": 0}, ValueError, r"batch must be 'auto' or a whole number >= 1, got 0"),
    (
        {"normalize": 5},
        TypeError,
        r"normalize must be 'auto', 'dtype', 'percentile', \(lo, hi\) percentiles or a "
        r"Scaling, got 5",
    ),
    ({"normalize": None}, TypeError, r"normalize must be .*, got None"),
    ({"normalize": (0.1,)}, ValueError, r"normalize as percentiles must be two numbers \(lo, hi\).*, got \(0.1,\)"),
    ({"normalize": ("a", "b")}, ValueError, r"normalize as percentiles must be two numbers"),
    ({"normalize": (50, 10)}, ValueError, r"0 <= lo < hi <= 100, got \(50, 10\)"),
    ({"device": "meta"}, ValueError, r"device must be 'auto', 'cpu', 'cuda', 'cuda:N' or 'mps', got 'meta'"),
    ({"device": 3}, TypeError, r"device must be a string"),
]


@pytest.mark.parametrize("kwargs, error, match", BAD_PARAMETERS)
def test_bad_parameters_say_what_is_allowed(kwargs, error, match):
    with pytest.raises(error, match=match):
        xydeblur(np.zeros((8, 8), np.float32), tiny_model(), **kwargs)


def test_good_parameter_forms_are_accepted():
    image = _image((8, 8), np.float32)
    for kwargs in (
        {"tile": np.int64(64)},
        {"tile": "auto"},
        {"overlap": np.int32(8)},
        {"batch": "auto"},
        {"normalize": [0, 100]},
        {"normalize": (np.float32(1), 99)},
        {"device": "CPU"},
    ):
        assert xydeblur(image, tiny_model(), **kwargs).restored.shape == image.shape


def test_a_read_only_array_gives_no_torch_warning(monkeypatch):
    """torch warns once per process about read-only memory, so the check is on every call."""
    real = torch.from_numpy

    def strict(array):
        assert array.flags.writeable, "torch.from_numpy on read-only memory (torch warns about it)"
        return real(array)

    monkeypatch.setattr(torch, "from_numpy", strict)
    for dtype in (np.uint8, np.uint16, np.float32, np.float64):  # the frames path and the tiled path
        image = _image((2, 16, 16), dtype)
        image.flags.writeable = False
        xydeblur(image, tiny_model(), device="cpu")
        assert not image.flags.writeable


@pytest.mark.parametrize("with_nan", [False, True])  # the frames path and the tiled path
def test_float16_saturates_at_its_finite_range_instead_of_inf(with_nan):
    image = np.full((16, 16), 65000, np.float16)
    if with_nan:
        image[0, 0] = np.nan
    restored = xydeblur(image, constant_residual_model(value=0.1), device="cpu").restored
    finite = ~np.isnan(image)
    assert restored.dtype == np.float16 and np.all(restored[finite] == np.finfo(np.float16).max)
    assert np.isnan(restored[~finite]).all()
