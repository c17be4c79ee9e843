"""``make run``: the blurred photo sample restored in napari, or on the command line.

    python -m napari_deblur.demo              # napari window: blurred, restored, residuals, reference
    python -m napari_deblur.demo --headless   # the same job through ``napari-deblur xy``

Both print the PSNR of the blurred input and of the restoration against the
sharp reference.
"""

import argparse
import sys
from pathlib import Path


def psnr(reference, image) -> float:
    import numpy as np

    err = np.mean((reference.astype(np.float64) - image.astype(np.float64)) ** 2)
    return float(10 * np.log10(255.0**2 / max(err, 1e-12)))


def headless(outdir: Path, model: str | None) -> int:
    import tifffile

    from .cli import main as cli
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
    print(f"PSNR against the sharp reference: blurred {psnr(sample['sharp'], sample['blurred']):.2f} dB, "
          f"restored {psnr(sample['sharp'], restored):.2f} dB")
    return 0


def gui(model: str | None) -> int:
    import napari

    from .engine.restore import xydeblur
    from .samples import blurred_photo

    sample = blurred_photo()
    result = xydeblur(sample["blurred"], model)
    viewer = napari.Viewer(title="napari-deblur demo")
    viewer.add_image(sample["sharp"], name="coffee sharp (reference)", visible=False)
    viewer.add_image(sample["blurred"], name="coffee blurred")
    viewer.add_image(result.restored, name="coffee blurred deblurred")
    for name in ("r_hor", "r_ver"):
        residual = getattr(result, name).mean(axis=-1)
        limit = float(abs(residual).max()) or 1.0
        viewer.add_image(residual, name=f"coffee blurred {name}", colormap="PiYG",
                         contrast_limits=(-limit, limit), visible=False)
    print(f"{result.info['model']} on {result.info['device']}: PSNR blurred "
          f"{psnr(sample['sharp'], sample['blurred']):.2f} dB, restored {psnr(sample['sharp'], result.restored):.2f} dB")
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
