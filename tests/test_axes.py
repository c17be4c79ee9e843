import numpy as np
import pytest

from napari_deblur.engine.axes import default_axes, from_bcyx, normalize_axes, to_bcyx


@pytest.mark.parametrize(
    "shape, axes",
    [
        ((64, 48), "YX"),
        ((64, 48, 3), "YXC"),
        ((64, 48, 4), "YXC"),
        ((5, 64, 48), "ZYX"),
        ((3, 64, 48), "ZYX"),  # three planes unless told "CYX"
        ((2, 5, 64, 48), "TZYX"),
        ((2, 5, 64, 48, 3), "TZYXC"),
        ((2, 2, 5, 64, 48), "QTZYX"),
        ((64, 3, 3), "ZYX"),  # 3x3 planes are not an RGB image
    ],
)
def test_default_axes(shape, axes):
    assert default_axes(shape) == axes


def test_default_axes_errors():
    with pytest.raises(ValueError, match="at least 2"):
        default_axes((10,))
    with pytest.raises(ValueError, match="pass axes"):
        default_axes((2, 2, 2, 2, 8, 8))


def test_normalize_axes():
    assert normalize_axes("tzcyx", (1, 2, 3, 8, 8)) == "TZCYX"
    assert normalize_axes("YXS", (8, 8, 3)) == "YXC"
    assert normalize_axes(None, (8, 8, 3)) == "YXC"
    for bad, shape, msg in [
        ("YX", (2, 8, 8), "has 2 letters"),
        ("YYX", (2, 8, 8), "distinct"),
        ("ZCX", (2, 3, 8), "must contain Y and X"),
        ("Z1X", (2, 3, 8), "distinct letters"),
    ]:
        with pytest.raises(ValueError, match=msg):
            normalize_axes(bad, shape)
    with pytest.raises(TypeError):
        normalize_axes(3, (8, 8))


@pytest.mark.parametrize("axes", ["YX", "XY", "YXC", "CYX", "ZYX", "TZCYX", "YCXZ", "XZYCT"])
def test_round_trip_every_order(axes):
    sizes = dict(T=2, Z=3, C=4, Y=5, X=6)
    shape = tuple(sizes[a] for a in axes)
    array = np.arange(np.prod(shape)).reshape(shape)
    bcyx, layout = to_bcyx(array, axes)
    batch = int(np.prod([sizes[a] for a in axes if a in "TZ"]))
    assert bcyx.shape == (batch, sizes["C"] if "C" in axes else 1, 5, 6)
    np.testing.assert_array_equal(from_bcyx(bcyx, layout), array)
    # a pixel lands where its labels say it should
    index = {a: 1 for a in axes}
    value = array[tuple(index[a] for a in axes)]
    assert value in bcyx[:, :, 1, 1]


def test_rgba_flag():
    _, layout = to_bcyx(np.zeros((8, 8, 4)), "YXC")
    assert layout.rgba and layout.channels == 4
    _, layout = to_bcyx(np.zeros((4, 8, 8)), "CYX")
    assert not layout.rgba


def test_batch_order_is_preserved():
    array = np.stack([np.full((4, 4), i) for i in range(6)]).reshape(2, 3, 4, 4)
    bcyx, _ = to_bcyx(array, "TZYX")
    assert [int(bcyx[i, 0, 0, 0]) for i in range(6)] == list(range(6))
