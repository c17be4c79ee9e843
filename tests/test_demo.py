"""The samples are deterministic and the headless demo (make run without a display) works end to end."""

import numpy as np
import pytest
import tifffile
from factories import tiny_model

from napari_deblur import demo, samples
from napari_deblur.metrics import psnr
from napari_deblur.models.weights import save_safetensors


def test_photo_sample_is_blurred_and_reproducible():
    a, b = samples.blurred_photo(), samples.blurred_photo()
    assert a["blurred"].shape == a["sharp"].shape == (400, 600, 3) and a["blurred"].dtype == np.uint8
    np.testing.assert_array_equal(a["blurred"], b["blurred"])
    assert psnr(a["sharp"], a["blurred"], data_range=255) < 30  # visibly blurred
    assert abs(a["kernel"].sum() - 1) < 1e-5


def test_fluorescence_stack_gets_blurrier_out_of_focus():
    s = samples.blurred_fluorescence_stack(size=96)
    assert s["blurred"].shape == (5, 96, 96) and s["blurred"].dtype == np.uint16
    detail = [np.abs(np.diff(p.astype(float), axis=1)).mean() for p in s["blurred"]]
    assert detail[2] > detail[0] and detail[2] > detail[4]  # the in-focus plane is the sharpest


def test_headless_demo_runs_the_command_line(tmp_path, capsys):
    weights = save_safetensors(tiny_model(channels=3), tmp_path / "w.safetensors")
    assert demo.main(["--headless", "--out", str(tmp_path / "out"), "--model", str(weights)]) == 0
    restored = tifffile.imread(tmp_path / "out" / "coffee_blurred_deblurred.tif")
    assert restored.shape == (400, 600, 3) and restored.dtype == np.uint8
    assert (tmp_path / "out" / "coffee_blurred_r_hor.tif").is_file()
    assert "PSNR against the sharp reference" in capsys.readouterr().out


@pytest.mark.gui
def test_the_demo_window_lands_on_the_plugin_ready_to_run(make_napari_viewer, qtbot, tmp_path):
    """Issue 19.17: XYDeblur docked, Diffusion deblur tabbed beside it, the sample selected."""
    pytest.importorskip("napari")
    from qtpy.QtWidgets import QTabBar

    from napari_deblur.plugin.diffusion_widget import DiffusionDeblurWidget
    from napari_deblur.plugin.xydeblur_widget import XYDeblurWidget

    weights = save_safetensors(tiny_model(channels=3), tmp_path / "w.safetensors")
    viewer = make_napari_viewer(show=True)
    docks = demo.set_up_viewer(viewer, model=str(weights))  # returns: no event loop is entered
    (xy_dock, xy), (diffusion_dock, diffusion) = docks["XYDeblur"], docks["Diffusion deblur"]
    assert isinstance(xy, XYDeblurWidget) and isinstance(diffusion, DiffusionDeblurWidget)
    assert viewer.window.dock_widgets[xy_dock.name] is xy
    qtbot.wait(50)  # Qt lays the docks out (and makes the tabs) in the event loop
    window = xy_dock.parentWidget()
    assert window.tabifiedDockWidgets(xy_dock) == [diffusion_dock]  # one dock, two tabs
    bars = [
        bar
        for bar in window.findChildren(QTabBar)
        if xy_dock.windowTitle() in [bar.tabText(i) for i in range(bar.count())]
    ]
    assert [bar.tabText(bar.currentIndex()) for bar in bars] == [xy_dock.windowTitle()]  # XYDeblur in front
    blurred = viewer.layers["coffee blurred"]
    assert viewer.layers.selection.active is blurred and blurred.visible
    assert not viewer.layers["coffee reference"].visible
    for widget in (xy, diffusion):
        assert widget.input_combo.currentText() == "coffee blurred"
        assert widget.reference_combo.currentText() == "coffee reference"
    assert xy.options.model_combo.currentText() == weights.name and xy.options.model() is not None
    assert xy.run_button.isEnabled() and xy.worker is None  # ready to Run, not running
    width, height = viewer.window.geometry()[2:]
    assert width >= 1000 and height >= 700  # room for the canvas and the dock
