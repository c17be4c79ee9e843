"""``make run``: napari on the blurred photo sample with the plugin open, or the command line.

    python -m napari_deblur.demo              # napari window: the sample, XYDeblur ready to Run
    python -m napari_deblur.demo --headless   # the same job through ``napari-deblur xy``

The window opens on the plugin: the XYDeblur widget docked (Diffusion deblur in a tab
beside it), the blurred sample selected as its image and the sharp one as its reference,
so Run restores it and shows PSNR/SSIM. The headless run prints the PSNR of the blurred
input and of the restoration against the sharp reference.
"""

import argparse
import sys
from pathlib import Path


def headless(outdir: Path, model: str | None) -> int:
    import tifffile

    from .cli import main as cli
    from .metrics import psnr
    from .samples import blurred_photo

    outdir.mkdir(parents=True, exist_ok=True)
    sample = blurred_photo()
    source = outdir / "coffee_blurred.tif"
    tifffile.imwrite(source, sample["blurred"], photometric="rgb")
    tifffile.imwrite(outdir / "coffee_sharp.tif", sample["sharp"], photometric="rgb")
    args = ["xy", str(source), "-o", str(outdir), "--residuals", "--overwrite"]
    status = cli(args + (["--model", model] if model else []))
    if status:
        return status
    restored = tifffile.imread(outdir / "coffee_blurred_deblurred.tif")
    print(f"wrote {outdir}/coffee_blurred_deblurred.tif (+ _r_hor, _r_ver)")
    scores = [psnr(sample["sharp"], image, data_range=255, mse_floor=1e-12) for image in (sample["blurred"], restored)]
    print(f"PSNR against the sharp reference: blurred {scores[0]:.2f} dB, restored {scores[1]:.2f} dB")
    return 0


PLUGIN = "napari-deblur"
WIDGETS = ("XYDeblur", "Diffusion deblur")  # display names in napari.yaml; the first is the tab in front


def set_up_viewer(viewer, model: str | None = None) -> dict:
    """Put ``viewer`` where a newcomer should land, without entering the event loop.

    Opens the blurred photo sample, docks the plugin's widgets (tabbed, XYDeblur in front),
    selects the blurred layer as their image and the reference as their reference, and
    picks ``model`` (bundled name or weights file) in XYDeblur when given. Returns
    ``{display name: (dock widget, widget)}``.
    """
    from qtpy.QtWidgets import QApplication

    screen = QApplication.primaryScreen().availableGeometry()
    viewer.window.resize(min(1400, int(screen.width() * 0.9)), min(900, int(screen.height() * 0.9)))
    blurred, reference = viewer.open_sample(PLUGIN, "blurred_photo")
    # the last one tabified is the tab in front: XYDeblur
    docks = {name: viewer.window.add_plugin_dock_widget(PLUGIN, name, tabify=True) for name in WIDGETS[::-1]}
    viewer.layers.selection.active = blurred
    QApplication.processEvents()  # lay the docks out once (no event loop), then fit the image to the canvas left
    viewer.reset_view()
    for _, widget in docks.values():
        widget.input_combo.setCurrentText(blurred.name)
        widget.reference_combo.setCurrentText(reference.name)
    xy = docks["XYDeblur"][1]
    if model is not None and not xy.options.select_model(model):
        xy.say(f"--model {model!r} is neither a bundled model nor a weights file: pick one here", error=True)
    return docks


def gui(model: str | None) -> int:
    import napari

    viewer = napari.Viewer(title="napari-deblur demo")
    set_up_viewer(viewer, model)
    print("napari-deblur demo: press Run in the XYDeblur panel (Diffusion deblur is the tab beside it)")
    napari.run()
    return 0


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--headless", action="store_true", help="no window: run the command line instead")
    parser.add_argument("--out", type=Path, default=Path("out/demo"), help="output folder (headless)")
    parser.add_argument("--model", default=None, help="bundled name or weights file (default: xydeblur-photo)")
    args = parser.parse_args(argv)
    if args.headless:
        return headless(args.out, args.model)
    return gui(args.model)


if __name__ == "__main__":
    sys.exit(main())
