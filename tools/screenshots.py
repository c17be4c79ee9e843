"""Screenshots for the README, from a real napari window (run under Xvfb where there is no display).

    xvfb-run -a -s '-screen 0 1600x1000x24' .venv/bin/python tools/screenshots.py --out docs/images

Opens the photo sample, docks both widgets, runs XYDeblur with the bundled photo model on
the whole image, and saves: the XYDeblur widget with the restored image, the residuals in
grid view, and the Diffusion deblur widget. When a trained denoiser is bundled it also runs
the Fidelity preset (diffusion/presets.py) and saves the mean and std layers in grid view.
Then, as a new user would, it writes the fluorescence sample as an ImageJ TIFF stack, opens
that file in napari (our reader), runs XYDeblur (and the diffusion refinement, when a
denoiser is bundled: the microscopy one if there is one) on the plane on screen and saves
the window.
"""

import argparse
import tempfile
import time
from pathlib import Path


def settle(app, seconds=0.5):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.02)


def wait_for(app, widget):
    while widget.worker is not None:
        settle(app, 0.2)
    settle(app, 1.0)


def report_run(what, widget):
    """Print what the widget says at the end of a run: its status and its metrics line."""
    print(f"{what}: {widget.status_label.text()} | {widget.metrics_label.text()}", flush=True)


def only_visible(viewer, names):
    for layer in viewer.layers:
        layer.visible = layer.name in names


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("docs/images"))
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    import napari
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer(title="napari-deblur")
    viewer.window._qt_window.resize(1500, 900)
    app = QApplication.instance()
    viewer.open_sample("napari-deblur", "blurred_photo")
    viewer.reset_view()
    xy_dock, xy = viewer.window.add_plugin_dock_widget("napari-deblur", "XYDeblur")
    diffusion_dock, diffusion = viewer.window.add_plugin_dock_widget("napari-deblur", "Diffusion deblur")
    viewer.window._qt_window.tabifyDockWidget(xy_dock, diffusion_dock)
    xy_dock.raise_()
    settle(app)
    xy.scope_combo.setCurrentText("whole stack")
    xy.run()
    wait_for(app, xy)
    viewer.window._qt_window.grab().save(str(args.out / "xydeblur_widget.png"))
    xy.compare_button.click()
    settle(app, 1.0)
    viewer.window._qt_window.grab().save(str(args.out / "xydeblur_compare.png"))
    xy.compare_button.click()
    diffusion_dock.raise_()
    settle(app, 1.0)
    window = viewer.window._qt_window
    if diffusion.denoiser() is None:  # no trained denoiser bundled: the widget as it waits for one
        window.grab().save(str(args.out / "diffusion_widget.png"))
    else:
        diffusion.input_combo.setCurrentText("coffee blurred")
        diffusion.reference_combo.setCurrentText("coffee reference")
        diffusion.apply_preset("Fidelity")
        diffusion.run()
        wait_for(app, diffusion)
        report_run("photo sample, Fidelity preset", diffusion)
        window.grab().save(str(args.out / "diffusion_widget.png"))
        only_visible(viewer, ["coffee blurred mean", "coffee blurred std"])
        viewer.grid.enabled = True
        settle(app, 1.0)
        window.grab().save(str(args.out / "diffusion_mean_std.png"))
        viewer.grid.enabled = False
    new_user_tiff_stack(viewer, app, xy, diffusion, args.out)
    print("wrote", *sorted(p.name for p in args.out.glob("*.png")))
    viewer.close()


def new_user_tiff_stack(viewer, app, xy, diffusion, out: Path):
    """Drop a TIFF stack into napari and run both widgets on the plane on screen."""
    from napari_deblur.io import write_image
    from napari_deblur.samples import blurred_fluorescence_stack

    viewer.layers.clear()
    sample = blurred_fluorescence_stack()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "cells.tif"
        write_image(path, sample["blurred"], "ZYX", scale={"Z": 0.5, "Y": 0.1, "X": 0.1}, unit="micron")
        viewer.open(str(path), plugin="napari-deblur")
        settle(app, 1.0)
        viewer.dims.set_current_step(0, sample["blurred"].shape[0] // 2)
        xy.input_combo.setCurrentText("cells")
        xy.scope_combo.setCurrentText("current slice")
        xy.run()
        wait_for(app, xy)
        from napari_deblur.models.registry import available_models

        bundled = available_models("ResidualDenoiser")
        if bundled:  # what a new user gets: the widget picks the denoiser for the layer
            diffusion.input_combo.setCurrentText("cells")
            diffusion.scope_combo.setCurrentText("current slice")
            diffusion.apply_preset("Fidelity")
            diffusion.run()
            wait_for(app, diffusion)
            report_run("TIFF stack plane, Fidelity preset", diffusion)
        only_visible(viewer, ["cells", "cells deblurred", "cells mean", "cells std"])
        viewer.grid.enabled = True
        settle(app, 1.0)
        viewer.window._qt_window.grab().save(str(out / "tiff_stack.png"))
        viewer.grid.enabled = False
        print(
            "layers after the new-user run:",
            [(layer.name, layer.data.shape, str(layer.data.dtype)) for layer in viewer.layers],
        )


if __name__ == "__main__":
    main()
