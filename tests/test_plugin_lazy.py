"""The XYDeblur widget's lazy option: a dask-backed '<name> deblurred' layer whose planes
are restored only when napari shows them. Tiny CPU model, one torch thread.
"""

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")
torch = pytest.importorskip("torch")
da = pytest.importorskip("dask.array")
pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("one_thread")]


@pytest.fixture
def dock(make_napari_viewer):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-deblur", "XYDeblur")
    return viewer, widget


@pytest.fixture
def calls(monkeypatch):
    """Planes (their shapes) the engine restored, in order."""
    from napari_deblur.engine import restore

    seen, original = [], restore.xydeblur

    def counting(image, *args, **kwargs):
        seen.append(np.shape(image))
        return original(image, *args, **kwargs)

    monkeypatch.setattr(restore, "xydeblur", counting)
    return seen


def tiny():
    from factories import tiny_model

    return tiny_model()


def cells(seed=0):
    return np.random.default_rng(seed).integers(0, 256, (6, 32, 40), dtype=np.uint8)


def test_lazy_option_only_for_dask_or_huge_layers(dock, monkeypatch):
    from napari_deblur.plugin import xydeblur_job as job

    viewer, widget = dock
    viewer.add_image(cells(), name="small")
    assert not widget.lazy_check.isEnabled()
    viewer.add_image(da.from_array(cells(), chunks=(1, 32, 40)), name="lazy cells")
    widget.input_combo.setCurrentText("lazy cells")
    assert widget.lazy_check.isEnabled()
    widget.input_combo.setCurrentText("small")
    assert not widget.lazy_check.isEnabled() and not widget.lazy_check.isChecked()
    monkeypatch.setattr(job, "LAZY_THRESHOLD", 1000)  # "larger than the threshold" for numpy too
    assert job.can_be_lazy(cells()) and not job.can_be_lazy(np.zeros(10, np.uint8))


def test_lazy_layer_restores_only_the_planes_on_screen(dock, calls):
    from napari_deblur.engine.restore import xydeblur

    viewer, widget = dock
    image = cells()
    source = viewer.add_image(
        da.from_array(image, chunks=(2, 32, 40)),
        name="cells",
        scale=(2.0, 0.5, 0.5),
        axis_labels=("Z", "Y", "X"),
        units=("um", "um", "um"),
    )
    widget.input_combo.setCurrentText("cells")
    model = tiny()
    widget.options.add_model("tiny", model)
    widget.options.device_combo.setCurrentText("cpu")
    widget.lazy_check.setChecked(True)
    viewer.dims.set_point(0, 0.0)
    widget.run()
    assert widget.worker is None  # no background job: napari computes the planes itself
    layer = viewer.layers["cells deblurred"]
    assert isinstance(layer.data, da.Array) and layer.data.shape == image.shape and layer.data.dtype == np.uint8
    assert tuple(layer.scale) == tuple(source.scale) and tuple(layer.axis_labels) == ("Z", "Y", "X")
    assert layer.metadata["napari_deblur"]["scope"] == "lazy"
    assert "cells r_hor" not in viewer.layers  # no residual layers in lazy mode
    assert calls == [(1, 32, 40)]  # the plane on screen, and only that one

    expected = xydeblur(image, model, normalize="dtype", device="cpu").restored
    calls.clear()
    np.testing.assert_array_equal(np.asarray(layer._slice.image.raw), expected[0])
    viewer.dims.set_point(0, 3 * 2.0)  # world coordinates: Z scale 2
    assert calls == [(1, 32, 40)]  # the new plane only
    np.testing.assert_array_equal(np.asarray(layer._slice.image.raw), expected[3])
    assert len(calls) == 1


def test_lazy_rerun_replaces_the_layer_and_reports_bad_models(dock):
    viewer, widget = dock
    viewer.add_image(da.from_array(cells(), chunks=(1, 32, 40)), name="cells")
    widget.input_combo.setCurrentText("cells")
    widget.options.add_model("tiny", tiny())
    widget.options.device_combo.setCurrentText("cpu")
    widget.lazy_check.setChecked(True)
    first = widget.run_lazy(viewer.layers["cells"])
    second = widget.run_lazy(viewer.layers["cells"])
    assert first.name == second.name == "cells deblurred"  # (plugin widgets get proxies: compare names)
    assert [layer.name for layer in viewer.layers].count("cells deblurred") == 1
    from factories import tiny_model

    widget.options.add_model("rgb", tiny_model(channels=2))
    viewer.layers["cells"].axis_labels = ("C", "Y", "X")  # 6 channels: a 2-channel model cannot fit
    assert widget.run_lazy(viewer.layers["cells"]) is None
    assert "cannot restore" in widget.status_label.text()
