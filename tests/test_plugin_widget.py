"""The XYDeblur dock widget: docking, runs, re-runs, current slice, cancel, RGB readout,
reference metrics, compare, and an event loop that keeps answering during a run.

Small and CPU-only: random-weight XYDeblur(width=4, blocks=1) models saved as safetensors
and loaded through the widget's "Load weights..." code path.
"""

import time

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")
torch = pytest.importorskip("torch")
pytestmark = pytest.mark.gui

OUTPUTS = ("deblurred", "r_hor", "r_ver")


@pytest.fixture
def weights(tmp_path):
    """``weights(channels)`` -> path of a tiny random-weight model in safetensors."""
    from napari_deblur.models.weights import save_safetensors
    from napari_deblur.models.xydeblur import XYDeblur

    def make(channels=1, seed=0):
        torch.manual_seed(seed)
        model = XYDeblur(width=4, blocks=1, channels=channels)
        return save_safetensors(model, tmp_path / f"tiny{channels}.safetensors")

    return make


@pytest.fixture
def dock(make_napari_viewer, qtbot):
    """(viewer, widget) with the widget docked through the plugin manifest."""
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-deblur", "XYDeblur")
    yield viewer, widget
    if widget.worker is not None:
        widget.cancel()
        qtbot.waitUntil(lambda: widget.worker is None, timeout=60000)


def run_and_wait(qtbot, widget, timeout=120000):
    widget.run()
    assert widget.worker is not None, widget.status_label.text()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=timeout)


def setup(widget, layer, weights_path, scope="whole stack", tile="auto"):
    widget.input_combo.setCurrentText(layer.name)
    assert widget.options.load_weights(weights_path), widget.status_label.text()
    widget.scope_combo.setCurrentText(scope)
    widget.options.tile_combo.setCurrentText(tile)
    widget.options.device_combo.setCurrentText("cpu")


def stack(shape=(3, 40, 48), seed=0):
    return np.random.default_rng(seed).integers(100, 4000, shape, dtype=np.uint16)


def test_widget_docks_from_the_manifest(dock):
    from napari_deblur.plugin.xydeblur_widget import XYDeblurWidget

    viewer, widget = dock
    assert isinstance(widget, XYDeblurWidget)
    from napari_deblur.engine.device import pick_device

    assert widget.options.device_combo.currentText() == "auto"
    assert widget.options.device_label.text().startswith(pick_device("auto").type)
    assert "GiB" in widget.options.device_label.text()
    viewer.add_image(stack(), name="cells")
    assert widget.input_combo.currentText() == "cells"  # the list follows the layers
    viewer.layers["cells"].name = "renamed"
    assert widget.input_combo.findText("renamed") >= 0


def test_load_weights_from_the_dialog_and_bad_files_reported(dock, tmp_path, weights, monkeypatch):
    import napari_deblur.plugin.options as options

    _, widget = dock
    combo = widget.options.model_combo
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"not a safetensors file")
    before = combo.currentText()
    assert widget.options.load_weights(bad) is False
    assert "broken.safetensors" in widget.status_label.text() and "Cannot use" in widget.status_label.text()
    assert combo.currentText() == before
    # the combo's "Load weights..." entry opens a file dialog: answer it with a good file
    good = weights(1)
    monkeypatch.setattr(options.QFileDialog, "getOpenFileName", lambda *a, **k: (str(good), ""))
    load = combo.findText(options.LOAD_WEIGHTS)
    combo.setCurrentIndex(load)
    combo.activated.emit(load)
    assert combo.currentText() == good.name and "Loaded" in widget.status_label.text()
    assert widget.options.model().config == {"width": 4, "blocks": 1, "channels": 1}
    # a cancelled dialog goes back to the model that was chosen
    monkeypatch.setattr(options.QFileDialog, "getOpenFileName", lambda *a, **k: ("", ""))
    combo.setCurrentIndex(combo.findText(options.LOAD_WEIGHTS))
    combo.activated.emit(combo.currentIndex())
    assert combo.currentText() == good.name


def test_whole_stack_run_then_rerun_replaces(dock, qtbot, weights):
    viewer, widget = dock
    image = stack()
    layer = viewer.add_image(image.copy(), name="cells", scale=(2.0, 0.1, 0.1), axis_labels=("Z", "Y", "X"))
    setup(widget, layer, weights(1))
    run_and_wait(qtbot, widget)
    assert "Done" in widget.status_label.text(), widget.status_label.text()
    restored = viewer.layers["cells deblurred"]
    assert restored.data.shape == image.shape and restored.data.dtype == image.dtype
    for name in OUTPUTS:
        out = viewer.layers[f"cells {name}"]
        assert out.data.shape == image.shape
        np.testing.assert_allclose(out.scale, (2.0, 0.1, 0.1))
        assert tuple(out.axis_labels) == ("Z", "Y", "X")
        assert out.metadata["napari_deblur"]["source_layer"] == "cells"
    r_hor = viewer.layers["cells r_hor"]
    assert r_hor.data.dtype == np.float32 and np.isfinite(r_hor.data).all()
    low, high = r_hor.contrast_limits
    assert low == pytest.approx(-high) and high > 0
    np.testing.assert_array_equal(layer.data, image)  # the input is untouched
    count = len(viewer.layers)
    run_and_wait(qtbot, widget)
    assert len(viewer.layers) == count  # replaced, not piled up
    np.testing.assert_array_equal(layer.data, image)


def test_current_slice_adds_the_plane_alone_on_its_plane(dock, qtbot, weights):
    """Issue 19.14: a preview costs one plane; the layers sit on that plane (2D and 3D)."""
    viewer, widget = dock
    image = stack((3, 40, 48))
    layer = viewer.add_image(
        image.copy(),
        name="cells",
        scale=(2.0, 0.5, 0.5),
        translate=(1.0, 3.0, 4.0),
        axis_labels=("Z", "Y", "X"),
        units=("um", "um", "um"),
    )
    setup(widget, layer, weights(1), scope="current slice")
    viewer.dims.set_point(0, 1.0 + 1 * 2.0)  # world coordinate of plane 1
    run_and_wait(qtbot, widget)
    assert "Done" in widget.status_label.text(), widget.status_label.text()
    for name in OUTPUTS:
        out = viewer.layers[f"cells {name}"]
        assert type(out.data) is np.ndarray and out.data.shape == (1, 40, 48), name
        assert out.data.nbytes == 40 * 48 * out.data.dtype.itemsize, name  # one plane, not the stack
        np.testing.assert_allclose(out.scale, (2.0, 0.5, 0.5))
        np.testing.assert_allclose(out.translate, (3.0, 3.0, 4.0))  # on plane 1
        np.testing.assert_allclose(out.data_to_world((0, 5, 7)), layer.data_to_world((1, 5, 7)))
        assert tuple(out.axis_labels) == ("Z", "Y", "X") and tuple(str(u) for u in out.units) == ("micrometer",) * 3
    restored = viewer.layers["cells deblurred"].data
    assert restored.dtype == image.dtype and not np.array_equal(restored[0], image[1])
    assert np.isfinite(viewer.layers["cells r_hor"].data).all()
    assert viewer.layers["cells deblurred"].metadata["napari_deblur"]["plane"] == {"Z": 1}
    np.testing.assert_array_equal(layer.data, image)
    viewer.dims.ndisplay = 3  # in 3D too the plane sits at Z = 3, inside the stack's range
    np.testing.assert_allclose(viewer.layers["cells deblurred"].extent.world[:, 0], (3.0, 3.0))
    np.testing.assert_allclose(viewer.dims.range[0][:2], (1.0, 5.0))
    viewer.dims.ndisplay = 2
    widget.scope_combo.setCurrentText("whole stack")  # the same layers take the whole stack back
    run_and_wait(qtbot, widget)
    out = viewer.layers["cells deblurred"]
    assert out.data.shape == image.shape
    np.testing.assert_allclose(out.translate, (1.0, 3.0, 4.0))


def slow_engine(monkeypatch, delay=0.05):
    """Make the engine yield after every tile and sleep there, so a run takes a while."""
    import napari_deblur.engine.restore as restore

    real = restore.xydeblur_iter

    def slow(*args, **kwargs):
        kwargs["batch"] = 1
        gen = real(*args, **kwargs)
        while True:
            try:
                step = next(gen)
            except StopIteration as stop:
                return stop.value
            time.sleep(delay)
            yield step

    monkeypatch.setattr(restore, "xydeblur_iter", slow)


def test_cancel_adds_nothing_and_the_widget_runs_again(dock, qtbot, weights, monkeypatch):
    viewer, widget = dock
    layer = viewer.add_image(stack((4, 256, 256)), name="cells")
    setup(widget, layer, weights(1), tile="128")
    slow_engine(monkeypatch)
    names = [lay.name for lay in viewer.layers]
    steps = []
    widget.run()
    widget.worker.yielded.connect(steps.append)
    qtbot.waitUntil(lambda: len(steps) >= 3, timeout=60000)
    assert steps[-1].total > len(steps)  # stopped in the middle, not at the end
    widget.cancel()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60000)
    assert [lay.name for lay in viewer.layers] == names
    assert "Cancelled" in widget.status_label.text()
    assert widget.run_button.isEnabled() and not widget.cancel_button.isEnabled()
    widget.scope_combo.setCurrentText("current slice")
    run_and_wait(qtbot, widget)
    assert "cells deblurred" in viewer.layers


def test_event_loop_keeps_answering_during_a_run(dock, qtbot, weights):
    from qtpy.QtCore import QTimer

    viewer, widget = dock
    layer = viewer.add_image(stack((4, 256, 256)), name="cells")
    setup(widget, layer, weights(1), tile="128")
    ticks, computing = [], {"yes": False}
    timer = QTimer()
    timer.setInterval(20)
    timer.timeout.connect(lambda: ticks.append((time.perf_counter(), computing["yes"])))
    qtbot.wait(300)  # let the new layer be drawn first: that is not part of the run
    timer.start()
    started = time.perf_counter()
    # the restoration runs until the worker returns; adding the result layers afterwards is
    # napari's own work in the main thread and not what this test measures
    on_returned = widget.on_returned

    def returned(output):
        computing["yes"] = False
        on_returned(output)

    widget.on_returned = returned
    computing["yes"] = True
    widget.run()  # only starts the worker: counted in the first gap
    qtbot.waitUntil(lambda: widget.worker is None, timeout=120000)
    timer.stop()
    during = [t for t, running in ticks if running]
    assert len(during) >= 5, f"the run took {time.perf_counter() - started:.2f} s: too short to measure"
    gaps = np.diff([started, *during])
    print(f"run {time.perf_counter() - started:.2f} s, {len(during)} ticks, worst gap {gaps.max() * 1000:.0f} ms")
    assert gaps.max() < 0.2, f"the event loop stalled for {gaps.max() * 1000:.0f} ms during the run"
    assert "cells deblurred" in viewer.layers


def test_rgb_gets_chroma_layer_and_colour_readout(dock, qtbot, weights):
    viewer, widget = dock
    rgb = np.random.default_rng(3).integers(0, 255, (48, 64, 3), dtype=np.uint8)
    layer = viewer.add_image(rgb, name="photo", rgb=True)
    shapes = viewer.add_shapes([np.array([[4, 4], [4, 30], [30, 30], [30, 4]])], shape_type="rectangle", name="roi")
    setup(widget, layer, weights(3))
    widget.region_combo.setCurrentText("roi")
    run_and_wait(qtbot, widget)
    restored = viewer.layers["photo deblurred"]
    assert restored.rgb and restored.data.shape == rgb.shape and restored.data.dtype == np.uint8
    assert viewer.layers["photo r_hor"].rgb
    chroma = viewer.layers["photo chroma"]
    assert chroma.data.shape == (48, 64) and not chroma.rgb
    text = widget.readout_label.text()
    assert "region" in text and "r_hor" in text and "CCT" in text and " K" in text
    in_region = widget.last[0].shift.n_pixels
    assert 26 * 26 <= in_region <= 27 * 27
    shapes.data = [np.array([[0, 0], [0, 10], [10, 10], [10, 0]])]  # editing the region updates the readout
    assert widget.last[0].shift.n_pixels < in_region
    widget.region_combo.setCurrentText("(whole image)")
    assert widget.last[0].shift.n_pixels == 48 * 64 and "whole image" in widget.readout_label.text()


def test_reference_metrics(dock, qtbot, weights):
    viewer, widget = dock
    sharp = stack((2, 40, 48), seed=5)
    layer = viewer.add_image(sharp // 2 + 50, name="cells")
    viewer.add_image(sharp, name="cells reference", visible=False)
    setup(widget, layer, weights(1))
    widget.reference_combo.setCurrentText("cells reference")
    run_and_wait(qtbot, widget)
    metrics = widget.last[0].metrics
    assert set(metrics) == {"input", "result"}
    assert np.isfinite(metrics["input"]["psnr"]) and -1 <= metrics["result"]["ssim"] <= 1
    assert "PSNR" in widget.metrics_label.text() and "SSIM" in widget.metrics_label.text()


def test_compare_toggles_the_grid(dock, qtbot, weights):
    viewer, widget = dock
    layer = viewer.add_image(stack((2, 40, 48)), name="cells")
    other = viewer.add_image(stack((2, 40, 48), seed=9), name="other")
    setup(widget, layer, weights(1))
    run_and_wait(qtbot, widget)
    from napari_deblur.plugin.compare import grid_of

    widget.compare_button.click()
    assert grid_of(viewer).enabled and widget.compare_button.isChecked()
    shown = {lay.name for lay in viewer.layers if lay.visible}
    assert shown == {"cells", "cells deblurred", "cells r_hor", "cells r_ver"}
    widget.compare_button.click()
    assert not grid_of(viewer).enabled and not widget.compare_button.isChecked()
    assert other.visible


def test_a_failing_run_reports_in_the_widget(dock, qtbot, weights):
    viewer, widget = dock
    layer = viewer.add_image(stack((2, 40, 48)), name="cells")
    setup(widget, layer, weights(2))  # a 2-channel model cannot restore 1-channel planes
    count = len(viewer.layers)
    run_and_wait(qtbot, widget)
    assert "XYDeblur failed" in widget.status_label.text() and "channel" in widget.status_label.text()
    assert len(viewer.layers) == count and widget.run_button.isEnabled()


def test_the_bundled_model_follows_the_layer_until_the_user_picks_one(dock, monkeypatch):
    viewer, widget = dock
    combo = widget.options.model_combo
    names = [combo.itemText(i) for i in range(combo.count())]
    if not {"xydeblur-photo", "xydeblur-microscopy"} <= set(names):
        pytest.skip("needs both bundled models")
    viewer.add_image(np.zeros((16, 16, 3), np.uint8), rgb=True, name="photo")
    viewer.add_image(np.zeros((16, 16), np.uint16), name="cells")
    widget.input_combo.setCurrentText("photo")
    assert combo.currentText() == "xydeblur-photo"
    widget.input_combo.setCurrentText("cells")
    assert combo.currentText() == "xydeblur-microscopy"
    widget.options._model_activated(names.index("xydeblur-photo"))  # the user's choice
    combo.setCurrentIndex(names.index("xydeblur-photo"))
    widget.input_combo.setCurrentText("photo")
    widget.input_combo.setCurrentText("cells")
    assert combo.currentText() == "xydeblur-photo"  # kept


def test_a_uint16_channels_first_layer_gets_the_microscopy_model_and_says_why(
    make_napari_viewer, qtbot, monkeypatch, tmp_path
):
    """The widget's default model is the engine's policy on the layer's dtype and axes (issue 19,
    item 8): a 3-channel uint16 layer labelled C, Y, X is a fluorescence layout, not a photo;
    the label under the model list, the status after a run and the result's metadata say why."""
    from factories import bundle_presets, tiny_model

    from napari_deblur.models.denoiser import ResidualDenoiser

    monkeypatch.setenv("NAPARI_DEBLUR_RESOURCES", str(tmp_path))
    bundle_presets(tmp_path, lambda c: (tiny_model(c), ResidualDenoiser(c, width=8)))
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-deblur", "XYDeblur")
    combo, why = widget.options.model_combo, "xydeblur-microscopy, per channel: CYX uint16 is a fluorescence layout"
    viewer.add_image(stack((40, 48, 3)), name="rgb16", rgb=True)
    widget.input_combo.setCurrentText("rgb16")
    assert combo.currentText() == "xydeblur-microscopy"  # 3 channels last, but a camera's range
    assert "YXC uint16 is a microscopy range" in widget.options.model_note.text()
    viewer.add_image(stack((3, 40, 48)), name="cells", axis_labels=("C", "Y", "X"))
    widget.input_combo.setCurrentText("cells")
    assert combo.currentText() == "xydeblur-microscopy"
    assert widget.options.model_note.text() == f"for this layer: {why}"
    widget.options.device_combo.setCurrentText("cpu")
    run_and_wait(qtbot, widget)
    assert f"Model {why}." in widget.status_label.text()
    assert viewer.layers["cells deblurred"].metadata["napari_deblur"]["model_choice"] == why
    combo.setCurrentIndex(combo.findText("xydeblur-photo"))
    widget.options._model_activated(combo.currentIndex())  # the user's choice is said as such
    run_and_wait(qtbot, widget)
    assert "Model xydeblur-photo (chosen in the widget)." in widget.status_label.text()
    # these test bundles carry no passed real-data gate, so the status says so
    assert "the bundled xydeblur-photo has not passed the real-data do-no-harm gate" in widget.status_label.text()
