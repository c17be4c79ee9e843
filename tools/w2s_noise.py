"""How noisy real single-frame widefield images are: each W2S raw frame (``input_avg1_*.tif``)
against its 400-frame average (``target_avg400_*.tif``): the noise a model meets on real
single frames. (The training draws 20-1000 photons at the peak, the fluorescence track 60 or
300; this measure is not computed for them.)

The average is fitted to the frame (gain and offset, least squares); the noise is the
residual's standard deviation and the signal is the fitted average's span (max - min).
Prints one markdown row per field, with the signal span over the noise std in dB.

With ``--models``, what each model makes of that noise, on the held-out fields: the model
restores the raw frame and the fitted average on one fixed scale (the 8-bit frame's, /255), and
the *noise response* is the high-pass energy of their difference over that of the raw frame's
noise (raw - fitted average), where the average has structure
(:func:`napari_deblur.evaluation.real.invented_structure`'s measure with the model's output on
the average as the truth). Below 1 the model passes on less fine-scale noise than it was given;
above 1 it turns more of it into detail. Also the PSNR of the restored raw frame against the
restored average (the raw frame's own PSNR against the average beside it).

    .venv/bin/python tools/w2s_noise.py [--data ../shared/data] [--models xydeblur-microscopy FILE ...]
"""

import argparse
from pathlib import Path

import numpy as np
import tifffile


def noise_row(raw: np.ndarray, average: np.ndarray) -> dict:
    raw, average = raw.astype(np.float64).ravel(), average.astype(np.float64).ravel()
    design = np.stack([average, np.ones_like(average)], axis=1)
    (gain, offset), *_ = np.linalg.lstsq(design, raw, rcond=None)
    noise = float(np.std(raw - (gain * average + offset)))
    span = float(gain * (average.max() - average.min()))
    return {
        "gain": float(gain),
        "offset": float(offset),
        "noise_std": noise,
        "signal_span": span,
        "snr_db": 20 * np.log10(span / noise),
    }


def noise_response(model, raw: np.ndarray, average: np.ndarray, gain: float, offset: float) -> dict:
    """What ``model`` makes of the noise of ``raw`` (module docstring): its noise response and
    the PSNRs (peak 255) of the restored raw frame against the restored fitted average, and of the
    raw frame against the fitted average."""
    from napari_deblur import xydeblur
    from napari_deblur.evaluation.real import invented_structure
    from napari_deblur.metrics import psnr

    fitted = ((gain * average.astype(np.float64) + offset) / 255).astype(np.float32)
    raw = (raw / 255).astype(np.float32)

    def restore(image):  # floats on the 8-bit frame's scale, as they are: one scale for both
        return xydeblur(image, model, axes="YX", device="cpu", normalize="dtype", out_dtype="float32").restored

    out_raw, out_avg = restore(raw), restore(fitted)
    return {
        "response": invented_structure(out_raw - out_avg + fitted, raw, fitted),
        "psnr_out": psnr(out_avg, out_raw),
        "psnr_in": psnr(fitted, raw),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--models", nargs="*", default=[], help="XYDeblur names or weight files")
    args = parser.parse_args()
    folder = Path(args.data) / "fluorescence" / "w2s_widefield"
    print("| field | gain | noise std | signal span | span / noise (dB) |\n|---|---:|---:|---:|---:|")
    frames = {}  # field -> (raw, average, its noise row), read once
    for raw_path in sorted(folder.glob("input_avg1_*.tif")):
        field = raw_path.stem.removeprefix("input_avg1_")
        raw, average = tifffile.imread(raw_path), tifffile.imread(folder / f"target_avg400_{field}.tif")
        row = noise_row(raw, average)
        frames[field] = raw, average, row
        print(
            f"| {field} | {row['gain']:.3f} | {row['noise_std']:.1f} | {row['signal_span']:.1f} | {row['snr_db']:.1f} |"
        )
    if not args.models:
        return
    from napari_deblur.data.heldout import W2S_HELDOUT_FIELDS
    from napari_deblur.models.weights import load_model

    print(
        "\n| model | field | noise response | PSNR restored raw vs restored average | raw vs average |\n"
        "|---|---|---:|---:|---:|"
    )
    for name in args.models:
        model = load_model(name, warn=False)
        for field in W2S_HELDOUT_FIELDS:
            raw, average, fit = frames[field]
            row = noise_response(model, raw, average, fit["gain"], fit["offset"])
            print(f"| {name} | {field} | {row['response']:.2f} | {row['psnr_out']:.2f} | {row['psnr_in']:.2f} |")


if __name__ == "__main__":
    main()
