"""Where a photo model gains or loses on the real GoPro pairs: the PSNR change of each frame
split by region, to see what a candidate that fails the gate on GoPro does wrong.

Regions: a 32-pixel band along the border against the interior, and the sharp frame's
texture in thirds by its gradient magnitude (flat, medium, edges). A region's gain is
``10 log10(MSE_input / MSE_output)`` over its pixels, so the regions' gains are comparable
with the frame's. Full frames, as the gate scores them.

    .venv/bin/python tools/gopro_regions.py MODEL [--data ../shared/data] [--out FILE.json]

``blur-space`` instead asks how the blurred frames were made: per frame, the mean of
(blurred - sharp) over the interior, on the stored sRGB values and in linear light. Frames
averaged as stored keep the sRGB mean; frames averaged in linear light keep the linear mean.

MODEL is a bundled name or a weights file, or ``unsharp``: for each frame the best of a grid of
unsharp masks (Gaussian sigma 0.7-3 px, amount -0.5 to 0.8), picked with the sharp frame (an
oracle): what plain sharpening can gain on these frames. Prints a markdown table; ``--out``
also writes it as JSON.
"""

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

BORDER = 32


def regions(sharp: np.ndarray) -> dict:
    """Boolean (H, W) masks of ``sharp`` (C, H, W) in [0, 1]: border, interior, texture thirds."""
    gray = sharp.mean(0)
    gy, gx = np.gradient(gray)
    magnitude = np.hypot(gy, gx)
    low, high = np.quantile(magnitude, [1 / 3, 2 / 3])
    border = np.zeros(gray.shape, bool)
    border[:BORDER], border[-BORDER:], border[:, :BORDER], border[:, -BORDER:] = True, True, True, True
    return {
        "border": border,
        "interior": ~border,
        "flat": magnitude <= low,
        "medium": (magnitude > low) & (magnitude <= high),
        "edges": magnitude > high,
    }


def gain(sharp: np.ndarray, before: np.ndarray, after: np.ndarray, mask=None) -> float:
    """PSNR change (dB) from ``before`` to ``after`` against ``sharp`` over ``mask`` (all pixels if None)."""
    e0, e1 = (before - sharp) ** 2, (after - sharp) ** 2
    if mask is not None:
        e0, e1 = e0[:, mask], e1[:, mask]
    return float(10 * np.log10(e0.mean() / max(e1.mean(), 1e-12)))


def unsharp_oracle(blurred: np.ndarray, sharp: np.ndarray) -> np.ndarray:
    """The best unsharp mask ``x + a (x - G_sigma x)`` of (C, H, W) ``blurred`` against ``sharp`` (an oracle)."""
    from napari_deblur.evaluation.real import gaussian

    best, best_error = blurred, float(((blurred - sharp) ** 2).mean())
    r = 16  # reflected margin: the FFT Gaussian would otherwise wrap the opposite border in
    padded = np.pad(blurred, ((0, 0), (r, r), (r, r)), mode="reflect")
    for sigma in (0.7, 1.0, 1.5, 2.0, 3.0):
        detail = blurred - gaussian(padded, sigma)[:, r:-r, r:-r]
        for amount in (-0.5, -0.25, 0.1, 0.2, 0.3, 0.5, 0.8):
            out = np.clip(blurred + amount * detail, 0, 1)
            error = float(((out - sharp) ** 2).mean())
            if error < best_error:
                best, best_error = out, error
    return best


def blur_space(cases) -> int:
    """Print the mean (blurred - sharp) of each frame's interior, in sRGB values and in linear light."""
    from napari_deblur.metrics import srgb_to_linear

    inner = (slice(None), slice(BORDER, -BORDER), slice(BORDER, -BORDER))
    print("| frame | mean(blurred - sharp), sRGB values | mean(blurred - sharp), linear light |")
    print("|---|---:|---:|")
    for case in cases:
        blurred, sharp = case.blurred_unit[inner], case.sharp[inner]
        linear = float((srgb_to_linear(blurred) - srgb_to_linear(sharp)).mean())
        print(f"| {case.id} | {float((blurred - sharp).mean()):+.5f} | {linear:+.5f} |")
    return 0


def main(argv=None) -> int:
    from napari_deblur import xydeblur
    from napari_deblur.evaluation.real_cases import gopro_cases

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a bundled name or weights file, unsharp, or blur-space")
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--pad", type=int, default=0, help="reflect-pad each frame by this many pixels (cut after)")
    args = parser.parse_args(argv)
    cases = gopro_cases(args.data, "full")
    if not cases:
        print(f"no GoPro pairs under {args.data}", file=sys.stderr)
        return 2
    if args.model == "blur-space":
        return blur_space(cases)
    rows = []
    for case in cases:
        started = time.perf_counter()
        p = args.pad
        image = np.pad(case.image, ((p, p), (p, p), (0, 0)), mode="reflect") if p else case.image
        before = case.blurred_unit
        if args.model == "unsharp":
            after = unsharp_oracle(before, case.sharp)
        else:
            restored = xydeblur(image, args.model, axes="YXC", device="cpu", out_dtype="float32").restored
            restored = restored[p : restored.shape[0] - p, p : restored.shape[1] - p] if p else restored
            after = np.clip(case.to_unit(restored), 0, 1)  # as the gate scores them
        row = {"frame": case.id, "all": gain(case.sharp, before, after)}
        row.update({name: gain(case.sharp, before, after, mask) for name, mask in regions(case.sharp).items()})
        row["seconds"] = time.perf_counter() - started
        rows.append(row)
    names = ["all", "border", "interior", "flat", "medium", "edges"]
    print("| frame | " + " | ".join(names) + " |")
    print("|---|" + "---:|" * len(names))
    for row in rows:
        print(f"| {row['frame']} | " + " | ".join(f"{row[n]:+.3f}" for n in names) + " |")
    if args.out:
        args.out.write_text(json.dumps({"model": args.model, "border_px": BORDER, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
