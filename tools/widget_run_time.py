"""How long the "Diffusion deblur" widget takes for the Fidelity preset on one 256 x 256 plane,
with the bundled ``dvsr-microscopy``, in a napari window that is shown or hidden: the widget's
own wall time (click to ready) beside the engine's (the status line's "in N s").

    xvfb-run -a -s '-screen 0 1600x1000x24' .venv/bin/python tools/widget_run_time.py --shown
    xvfb-run -a .venv/bin/python tools/widget_run_time.py            # napari.Viewer(show=False)

Compare with ``napari-deblur bench`` (the engine alone): what the window adds is the
difference. Prints one line per run.
"""

import argparse
import time


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shown", action="store_true", help="show the window (default: hidden)")
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args(argv)

    import napari
    import torch
    from qtpy.QtWidgets import QApplication

    from napari_deblur.samples import blurred_fluorescence_stack

    viewer = napari.Viewer(show=args.shown)
    app = QApplication.instance()
    viewer.add_image(blurred_fluorescence_stack()["blurred"][2], name="cells")
    _, widget = viewer.window.add_plugin_dock_widget("napari-deblur", "Diffusion deblur")
    widget.input_combo.setCurrentText("cells")
    widget.apply_preset("Fidelity")
    print(f"window {'shown' if args.shown else 'hidden'}, torch threads {torch.get_num_threads()}")
    for k in range(args.runs):
        started = time.perf_counter()
        widget.run()
        while widget.worker is not None:
            app.processEvents()
            time.sleep(0.02)
        print(f"run {k + 1}: {time.perf_counter() - started:.1f} s click to ready; {widget.status_label.text()}")
    viewer.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
