"""Does a flip self-ensemble help an XYDeblur on the real fluorescence track?

Each image of ``napari-deblur eval --real``'s fluorescence track is restored as it is and
flipped left-right, up-down and both (flips keep the horizontal and vertical axes, which the
two decoders are tied to); the outputs are flipped back and averaged. Prints, per image and
on the mean, the PSNR and SSIM (:func:`napari_deblur.metrics.score`) and the invented
structure (:func:`napari_deblur.evaluation.real.invented_structure`) of the input, the single
pass and the ensemble. The ensemble costs four passes.

    .venv/bin/python tools/self_ensemble.py [--model xydeblur-microscopy] [--data ../shared/data] [--quick]
"""

import argparse
from pathlib import Path

import numpy as np
import torch

FLIPS = ((), (1,), (0,), (0, 1))  # the axes each pass flips (and flips back)


def main() -> None:
    from napari_deblur import xydeblur
    from napari_deblur.evaluation.real import invented_structure
    from napari_deblur.evaluation.real_cases import fluorescence_cases
    from napari_deblur.metrics import score
    from napari_deblur.models.weights import load_model

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="xydeblur-microscopy")
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--quick", action="store_true", help="the track's quick (128 px) crops")
    args = parser.parse_args()
    model = load_model(args.model, warn=False)
    print(f"{args.model}, {torch.get_num_threads()} threads")
    print("| image | input PSNR / SSIM | single pass | flip ensemble (4) | invented: single / ensemble |")
    print("|---|---:|---:|---:|---:|")
    rows = []
    for case in fluorescence_cases(args.data, "quick" if args.quick else "full"):
        outputs = []
        for axes in FLIPS:
            flipped = np.ascontiguousarray(np.flip(case.image, axes) if axes else case.image)
            restored = xydeblur(flipped, model, axes="YX", device="cpu", out_dtype="float32").restored
            outputs.append(np.flip(restored, axes) if axes else restored)
        single, ensemble = case.to_unit(outputs[0]), case.to_unit(np.mean(outputs, axis=0))
        scores = [score(case.sharp, x) for x in (case.blurred_unit, single, ensemble)]
        invented = [invented_structure(x, case.blurred_unit, case.sharp) for x in (single, ensemble)]
        rows.append([s[k] for s in scores for k in ("psnr", "ssim")] + invented)
        cells = " | ".join(f"{s['psnr']:.2f} / {s['ssim']:.3f}" for s in scores)
        print(f"| {case.id} | {cells} | {invented[0]:.3f} / {invented[1]:.3f} |")
    m = np.mean(rows, axis=0)
    print(
        f"| mean of {len(rows)} | {m[0]:.2f} / {m[1]:.3f} | {m[2]:.2f} / {m[3]:.3f} | {m[4]:.2f} / {m[5]:.3f} | "
        f"{m[6]:.3f} / {m[7]:.3f} |"
    )


if __name__ == "__main__":
    main()
