"""The napari reader and sample data of the plugin: channels, scale, axis labels, units."""

import numpy as np
import pytest

pytest.importorskip("napari")
tifffile = pytest.importorskip("tifffile")
pytestmark = pytest.mark.gui


def write_hyperstack(path, shape=(2, 3, 2, 24, 32)):
    """An ImageJ TZCYX uint16 hyperstack: 0.25 um pixels, 1.5 um Z spacing, 2 s frames."""
    data = np.random.default_rng(0).integers(0, 4000, shape, dtype=np.uint16)
    tifffile.imwrite(
        path,
        data,
        imagej=True,
        resolution=(1 / 0.25, 1 / 0.25),
        metadata={"axes": "TZCYX", "spacing": 1.5, "unit": "um", "finterval": 2.0},
    )
    return data


def test_reader_splits_imagej_channels_with_scale_labels_units(tmp_path):
    from napari_deblur.plugin.reader import get_reader

    path = tmp_path / "cells.tif"
    data = write_hyperstack(path)
    reader = get_reader(str(path))
    assert callable(reader)
    [(array, kwargs, kind)] = reader(str(path))
    assert kind == "image" and array.shape == data.shape and array.dtype == np.uint16
    np.testing.assert_array_equal(array, data)
    assert kwargs["channel_axis"] == 2
    assert "rgb" not in kwargs
    assert kwargs["scale"] == [(2.0, 1.5, 0.25, 0.25)] * 2
    assert kwargs["axis_labels"] == [("T", "Z", "Y", "X")] * 2
    assert kwargs["units"] == [("s", "um", "um", "um")] * 2
    assert kwargs["name"] == ["cells [c0]", "cells [c1]"]
    assert all(m["axes"] == "TZCYX" and m["path"] == str(path) for m in kwargs["metadata"])
    assert [m["channel"] for m in kwargs["metadata"]] == [0, 1]


def test_reader_claims_tiff_only():
    from napari_deblur.plugin.reader import get_reader

    assert get_reader("photo.png") is None and get_reader("photo.jpg") is None
    assert get_reader(["a.tif", "b.TIFF"]) is not None
    assert get_reader(["a.tif", "b.png"]) is None


def test_rgb_tiff_stays_rgb(tmp_path):
    from napari_deblur.plugin.reader import read_tiffs

    rgb = np.random.default_rng(1).integers(0, 255, (20, 24, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "photo.tif", rgb, photometric="rgb")
    [(array, kwargs, _)] = read_tiffs(str(tmp_path / "photo.tif"))
    assert kwargs["rgb"] is True and "channel_axis" not in kwargs
    assert kwargs["axis_labels"] == ("Y", "X") and len(kwargs["scale"]) == 2
    assert kwargs["metadata"]["axes"] == "YXC"
    np.testing.assert_array_equal(array, rgb)


def read_both(monkeypatch, path):
    """read_tiffs(path) in memory and lazily (NAPARI_DEBLUR_LAZY_BYTES=0)."""
    from napari_deblur.plugin.reader import read_tiffs

    monkeypatch.setenv("NAPARI_DEBLUR_LAZY_BYTES", str(1 << 60))
    eager = read_tiffs(str(path))
    monkeypatch.setenv("NAPARI_DEBLUR_LAZY_BYTES", "0")
    return eager, read_tiffs(str(path))


def test_large_files_open_lazily_with_the_same_layer_kwargs(tmp_path, monkeypatch):
    da = pytest.importorskip("dask.array")
    pytest.importorskip("zarr")
    path = tmp_path / "cells.tif"
    write_hyperstack(path)
    [(eager, eager_kwargs, _)], [(lazy, lazy_kwargs, kind)] = read_both(monkeypatch, path)
    assert isinstance(eager, np.ndarray) and isinstance(lazy, da.Array) and kind == "image"
    assert lazy.chunksize == (1, 1, 1, 24, 32)  # napari reads one plane per channel layer
    assert lazy_kwargs["channel_axis"] == eager_kwargs["channel_axis"] == 2
    assert [m.pop("lazy") for m in lazy_kwargs["metadata"]] == [True, True]
    assert [m.pop("lazy") for m in eager_kwargs["metadata"]] == [False, False]
    assert lazy_kwargs == eager_kwargs
    np.testing.assert_array_equal(lazy.compute(), eager)

    rgb = np.random.default_rng(1).integers(0, 255, (20, 24, 3), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "photo.tif", rgb, photometric="rgb")
    [(eager, eager_kwargs, _)], [(lazy, lazy_kwargs, _)] = read_both(monkeypatch, tmp_path / "photo.tif")
    assert isinstance(lazy, da.Array) and lazy_kwargs["rgb"] is True and "channel_axis" not in lazy_kwargs
    assert lazy_kwargs["metadata"].pop("lazy") and not eager_kwargs["metadata"].pop("lazy")
    assert lazy_kwargs == eager_kwargs
    np.testing.assert_array_equal(lazy.compute(), rgb)


def test_viewer_shows_a_lazy_stack_the_widget_can_restore_lazily(make_napari_viewer, tmp_path, monkeypatch):
    da = pytest.importorskip("dask.array")
    pytest.importorskip("zarr")
    from napari_deblur.plugin.xydeblur_job import can_be_lazy

    path = tmp_path / "cells.tif"
    data = write_hyperstack(path)
    monkeypatch.setenv("NAPARI_DEBLUR_LAZY_BYTES", "0")
    viewer = make_napari_viewer()
    layers = viewer.open(str(path), plugin="napari-deblur")
    assert [layer.name for layer in layers] == ["cells [c0]", "cells [c1]"]
    viewer.dims.set_point(0, 2.0)  # world coordinates: the second frame (T scale 2 s), Z = 0
    viewer.dims.set_point(1, 0.0)
    for channel, layer in enumerate(layers):
        assert isinstance(layer.data, da.Array) and can_be_lazy(layer.data)
        assert layer.data.shape == (2, 3, 24, 32) and layer.metadata["lazy"]
        np.testing.assert_allclose(layer.scale, (2.0, 1.5, 0.25, 0.25))
        np.testing.assert_array_equal(np.asarray(layer._slice.image.raw), data[1, 0, channel])


def test_viewer_opens_the_stack_through_the_plugin(make_napari_viewer, tmp_path):
    path = tmp_path / "cells.tif"
    write_hyperstack(path)
    viewer = make_napari_viewer()
    layers = viewer.open(str(path), plugin="napari-deblur")
    assert [layer.name for layer in layers] == ["cells [c0]", "cells [c1]"]
    layer = layers[0]
    assert layer.data.shape == (2, 3, 24, 32)
    np.testing.assert_allclose(layer.scale, (2.0, 1.5, 0.25, 0.25))
    assert tuple(layer.axis_labels) == ("T", "Z", "Y", "X")
    assert [str(u) for u in layer.units] == ["second", "micrometer", "micrometer", "micrometer"]


def test_png_is_left_to_napari_builtins(make_napari_viewer, tmp_path):
    from PIL import Image

    rgb = np.random.default_rng(2).integers(0, 255, (40, 50, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "photo.png")
    viewer = make_napari_viewer()
    [layer] = viewer.open(str(tmp_path / "photo.png"))
    assert layer.rgb and layer.data.shape == (40, 50, 3)


@pytest.mark.slow
def test_sample_data_opens_with_hidden_references(make_napari_viewer):
    viewer = make_napari_viewer()
    photo = viewer.open_sample("napari-deblur", "blurred_photo")
    assert [layer.name for layer in photo] == ["coffee blurred", "coffee reference"]
    assert photo[0].rgb and photo[0].visible and not photo[1].visible
    assert photo[0].data.shape == photo[1].data.shape == (400, 600, 3)
    stack = viewer.open_sample("napari-deblur", "blurred_fluorescence_stack")
    assert [layer.name for layer in stack] == ["cells blurred", "cells reference"]
    assert stack[0].data.dtype == np.uint16 and stack[0].data.shape == (5, 256, 256)
    np.testing.assert_allclose(stack[0].scale, (0.5, 0.1, 0.1))
    assert tuple(stack[1].axis_labels) == ("Z", "Y", "X") and not stack[1].visible


@pytest.mark.parametrize(
    "array", [np.zeros((0, 8, 8), np.uint16), np.arange(10, dtype=np.uint16)], ids=["empty", "1-D"]
)
def test_viewer_reports_why_an_image_it_cannot_show_is_refused(make_napari_viewer, tmp_path, array):
    import warnings

    path = tmp_path / "bad.tif"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tifffile warns that a zero-size TIFF is nonconformant
        tifffile.imwrite(path, array)
    viewer = make_napari_viewer()
    # the reader raises (napari passes a reader's error on to the user: with a preferred reader
    # as napari's ReaderPluginError quoting it), rather than napari failing while adding the layer
    with pytest.raises(ValueError, match=r"cannot read .*bad\.tif: the image (is empty|has 1 dimension)") as err:
        viewer.open(str(path), plugin="napari-deblur")
    assert "\n" not in str(err.value) and "at least" in str(err.value)
    assert len(viewer.layers) == 0
