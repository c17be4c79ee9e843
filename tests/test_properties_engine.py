"""Property-based sweeps through ``napari_deblur.xydeblur``: dtypes (bool, every integer width with
its extremes, float16/32/64 with huge, tiny, NaN and inf values, complex), value patterns,
shapes (tiny, odd, singleton axes) and axes strings. Every case gives a correct result or a
one-line TypeError/ValueError, and the input is never modified.

Tiny random-weight models (width 4, one block) keep each case to milliseconds on the CPU.
"""

import numpy as np
import pytest
import torch

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from napari_deblur import xydeblur  # noqa: E402
from napari_deblur.engine.axes import normalize_axes  # noqa: E402
from napari_deblur.engine.intensity import add_rounded, cast_like  # noqa: E402
from napari_deblur.engine.restore import MAX_MAGNITUDE  # noqa: E402
from napari_deblur.models.xydeblur import XYDeblur  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

SWEEP = settings(
    max_examples=60,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


def _model(channels):
    torch.manual_seed(channels)
    return XYDeblur(width=4, blocks=1, channels=channels).eval()


MODELS = {1: _model(1), 3: _model(3)}
INTEGERS = [np.int8, np.uint8, np.int16, np.uint16, np.int32, np.uint32, np.int64, np.uint64]
FLOATS = [np.float16, np.float32, np.float64]
INT_PATTERNS = ["random", "extremes", "max", "min", "small"]
FLOAT_PATTERNS = ["unit", "wide", "largest", "beyond", "tiny", "subnormal", "constant"]
KINDS = ["int"] * 4 + ["float"] * 4 + ["bool", "complex"]  # mostly images that can be restored
SIDES = [4, 5, 7, 8, 9, 12, 13, 16, 19, 1, 3]  # odd, not multiples of 4, and too small


@st.composite
def images(draw, restorable=False):
    """(array, axes or None): the array built with numpy from drawn parameters (fast to make,
    and hypothesis still shrinks the parameters); ``restorable``: only images the engine must
    restore (integer or float, at least 4x4, finite values within its range, some not NaN)."""
    kind = draw(st.sampled_from(["int", "float"] if restorable else KINDS))
    dtype = np.dtype(
        draw(
            st.sampled_from(
                INTEGERS
                if kind == "int"
                else FLOATS
                if kind == "float"
                else [bool]
                if kind == "bool"
                else [np.complex64]
            )
        )
    )
    sides = [side for side in SIDES if side >= 4] if restorable else SIDES
    h, w = draw(st.sampled_from(sides)), draw(st.sampled_from(sides))
    lead = draw(st.lists(st.integers(1, 3), max_size=2))
    channels_last = draw(st.sampled_from([None, 3, 4] if restorable else [None, 1, 3, 4]))
    shape = tuple(lead) + (h, w) + ((channels_last,) if channels_last else ())
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        pattern = draw(st.sampled_from(INT_PATTERNS))
        if pattern == "random":
            array = rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)
        elif pattern == "extremes":
            array = np.where(rng.random(shape) < 0.5, info.min, info.max).astype(dtype)
        elif pattern == "small":
            array = rng.integers(0, 10, shape).astype(dtype)
        else:
            array = np.full(shape, info.max if pattern == "max" else info.min, dtype)
    elif dtype.kind == "f":
        biggest = float(np.finfo(dtype).max)
        pattern = draw(st.sampled_from([p for p in FLOAT_PATTERNS if p != "beyond"] if restorable else FLOAT_PATTERNS))
        signed = rng.uniform(-1, 1, shape)
        values = {
            "unit": rng.random(shape),
            "wide": signed * min(1e6, biggest / 2),
            "largest": signed * min(biggest, MAX_MAGNITUDE),
            "beyond": signed * biggest,
            "tiny": signed * 1e-30,
            "subnormal": signed * 1e-40,
            "constant": np.full(shape, rng.uniform(-100, 100)),
        }[pattern]
        with np.errstate(over="ignore", under="ignore"):
            array = values.astype(dtype)
        specials = draw(st.sampled_from(["none", "nan"] if restorable else ["none", "none", "nan", "inf", "all-nan"]))
        if specials == "nan":
            array[rng.random(shape) < 0.2] = np.nan
        elif specials == "inf":
            array.flat[rng.integers(array.size)] = rng.choice([np.inf, -np.inf])
        elif specials == "all-nan":
            array[...] = np.nan
    elif dtype.kind == "b":
        array = rng.random(shape) < 0.5
    else:
        array = (rng.random(shape) + 1j * rng.random(shape)).astype(dtype)
    axes = draw(st.sampled_from([None, "given"]))
    if axes == "given":
        letters = ["Z", "T"][: len(lead)] + ["Y", "X"] + (["C"] if channels_last else [])  # in shape order
        order = draw(st.permutations(range(len(shape))))
        axes = "".join(letters[i] for i in order)
        array = np.transpose(array, order)
        array = np.ascontiguousarray(array) if draw(st.booleans()) else array  # views too
    return array, axes


def should_work(array, axes) -> bool:
    """Whether the engine is expected to restore this image rather than refuse it."""
    if array.dtype.kind not in "uif":
        return False
    try:
        axes = normalize_axes(axes, array.shape)
    except ValueError:
        return False
    if array.shape[axes.index("Y")] < 4 or array.shape[axes.index("X")] < 4:
        return False
    if array.dtype.kind == "f":
        finite = array[np.isfinite(array)]
        if np.isinf(array).any() or finite.size == 0 or np.abs(finite.astype(np.float64)).max() > MAX_MAGNITUDE:
            return False
    return True


def check_result(array, result, out_dtype):
    assert result.restored.shape == array.shape
    assert result.r_hor.shape == array.shape and result.r_hor.dtype == np.float32
    assert result.r_ver.shape == array.shape and result.r_ver.dtype == np.float32
    assert result.restored.dtype == (array.dtype if out_dtype == "same" else np.float32)
    finite_in = ~np.isnan(array) if array.dtype.kind == "f" else np.ones(array.shape, bool)
    assert np.isfinite(result.r_hor).all() and np.isfinite(result.r_ver).all()
    assert not result.r_hor[~finite_in].any() and not result.r_ver[~finite_in].any()
    restored = result.restored
    if restored.dtype.kind == "f":
        assert np.isfinite(restored[finite_in]).all(), "a finite pixel came back NaN or infinite"
        assert np.isnan(restored[~finite_in]).all(), "a NaN pixel did not stay NaN"
    x = array.astype(np.float64)
    rh, rv = result.r_hor.astype(np.float64), result.r_ver.astype(np.float64)
    expected = x + rh + rv
    eps_out = np.finfo(restored.dtype).eps if restored.dtype.kind == "f" else 0.0
    residual_rounding = np.finfo(np.float32).eps * (np.abs(rh) + np.abs(rv)) + np.finfo(np.float32).smallest_subnormal
    tolerance = 2 * residual_rounding + 4 * np.finfo(np.float64).eps * np.abs(x)  # the residuals are float32
    if restored.dtype.kind in "ui":
        info = np.iinfo(restored.dtype)
        expected = np.clip(expected, float(info.min), float(info.max))
        tolerance = tolerance + 1.0
    else:
        limit = float(np.finfo(restored.dtype).max)
        expected = np.clip(expected, -limit, limit)  # a float output saturates at its finite range
        tolerance = tolerance + 2 * eps_out * np.abs(expected) + float(np.finfo(restored.dtype).smallest_subnormal)
    error = np.abs(restored.astype(np.float64) - expected)
    assert (error[finite_in] <= tolerance[finite_in]).all(), f"restored != x + r_hor + r_ver: {error.max()}"


@SWEEP
@given(
    case=images(restorable=True),
    model_channels=st.sampled_from([1, 3]),
    out_dtype=st.sampled_from(["same", "float32"]),
    normalize=st.sampled_from(["auto", "dtype", (1, 99)]),
)
def test_every_restorable_image_comes_back_correct(case, model_channels, out_dtype, normalize):
    array, axes = case
    before = array.copy()
    assert should_work(array, axes)
    result = xydeblur(array, MODELS[model_channels], axes=axes, device="cpu", out_dtype=out_dtype, normalize=normalize)
    hypothesis.event(f"{array.dtype} via {result.info['path']}")
    check_result(array, result, out_dtype)
    np.testing.assert_array_equal(array, before)


@SWEEP
@given(
    case=images(),
    model_channels=st.sampled_from([1, 3]),
    out_dtype=st.sampled_from(["same", "float32"]),
    normalize=st.sampled_from(["auto", "dtype", "percentile", (1, 99)]),
)
def test_every_image_is_restored_correctly_or_refused_clearly(case, model_channels, out_dtype, normalize):
    array, axes = case
    before = array.copy()
    try:
        result = xydeblur(
            array, MODELS[model_channels], axes=axes, device="cpu", out_dtype=out_dtype, normalize=normalize
        )
    except (TypeError, ValueError) as err:
        message = str(err)
        hypothesis.event(f"refused: {message[:50]}")
        assert message and "\n" not in message
        assert not should_work(array, axes), f"a valid image was refused: {message}"
    else:
        hypothesis.event(f"restored: {result.info['path']}")
        assert should_work(array, axes), "an image that should be refused was restored"
        check_result(array, result, out_dtype)
    np.testing.assert_array_equal(array, before)  # NaN equals NaN here
    assert array.dtype == before.dtype


@SWEEP
@given(
    name=st.sampled_from(["tile", "overlap", "batch", "normalize", "device"]),
    value=st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(10**6), 10**6),
        st.floats(allow_nan=True),
        st.text(max_size=6),
        st.tuples(st.floats(-10, 200)),
        st.lists(st.integers(-5, 120), max_size=3),
    ),
)
def test_any_parameter_value_works_or_names_the_parameter(name, value):
    image = np.random.default_rng(0).random((12, 12)).astype(np.float32)
    before = image.copy()
    try:
        result = (
            xydeblur(image, MODELS[1], device="cpu", **{name: value})
            if name != "device"
            else xydeblur(image, MODELS[1], device=value)
        )
    except (TypeError, ValueError) as err:
        assert name in str(err) and "\n" not in str(err)
    else:
        assert result.restored.shape == image.shape and np.isfinite(result.restored).all()
    np.testing.assert_array_equal(image, before)


@SWEEP
@given(dtype=st.sampled_from(INTEGERS), data=st.data())
def test_integers_come_back_exactly_and_saturated(dtype, data):
    info = np.iinfo(dtype)
    values = data.draw(st.lists(st.integers(int(info.min), int(info.max)), min_size=1, max_size=8))
    steps = data.draw(st.lists(st.floats(-1e25, 1e25, allow_nan=False), min_size=len(values), max_size=len(values)))
    image = np.array(values, dtype)
    got = add_rounded(image, np.array(steps))
    want = [min(max(v + int(np.rint(s)), int(info.min)), int(info.max)) for v, s in zip(values, steps)]
    assert got.dtype == dtype and [int(v) for v in got] == want
    floats = data.draw(st.lists(st.floats(-1e30, 1e30, allow_nan=False), min_size=1, max_size=8))
    cast = cast_like(np.array(floats), dtype)
    assert all(int(info.min) <= int(v) <= int(info.max) for v in cast)
    assert all(
        int(v) == min(max(int(np.rint(f)), int(info.min)), int(info.max)) or abs(f) > 2**52
        for v, f in zip(cast, floats)
    )
