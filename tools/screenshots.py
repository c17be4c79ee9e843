"""Screenshots for the README, from a real napari window (run under Xvfb where there is no display).

    xvfb-run -a -s '-screen 0 1600x1000x24' .venv/bin/python tools/screenshots.py --out docs/images

Opens the photo sample, docks both widgets, runs XYDeblur with the bundled photo model on
the whole image, and saves: the XYDeblur widget with the restored image, the residuals in
grid view, and the Diffusion deblur widget.
"""

import argparse
import time
from pathlib import Path


def settle(app, seconds=0.5):
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        app.processEvents()
        time.sleep(0.02)


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
    diffusion_dock, _ = viewer.window.add_plugin_dock_widget("napari-deblur", "Diffusion deblur")
    viewer.window._qt_window.tabifyDockWidget(xy_dock, diffusion_dock)
    xy_dock.raise_()
    settle(app)
    xy.scope_combo.setCurrentText("whole stack")
    xy.run()
    while xy.worker is not None:
        settle(app, 0.2)
    settle(app, 1.0)
    viewer.window._qt_window.grab().save(str(args.out / "xydeblur_widget.png"))
    xy.compare_button.click()
    settle(app, 1.0)
    viewer.window._qt_window.grab().save(str(args.out / "xydeblur_compare.png"))
    xy.compare_button.click()
    diffusion_dock.raise_()
    settle(app, 1.0)
    viewer.window._qt_window.grab().save(str(args.out / "diffusion_widget.png"))
    print("wrote", *sorted(p.name for p in args.out.glob("*.png")))
    viewer.close()


if __name__ == "__main__":
    main()
