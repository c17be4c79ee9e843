"""How noisy real single-frame widefield images are: each W2S raw frame (``input_avg1_*.tif``)
against its 400-frame average (``target_avg400_*.tif``): the noise a model meets on real
single frames. (The training draws 20-1000 photons at the peak, the fluorescence track 60 or
300; this measure is not computed for them.)

The average is fitted to the frame (gain and offset, least squares); the noise is the
residual's standard deviation and the signal is the fitted average's span (max - min).
Prints one markdown row per field, with the signal span over the noise std in dB.

    .venv/bin/python tools/w2s_noise.py [--data ../shared/data]
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
    return {"gain": float(gain), "noise_std": noise, "signal_span": span, "snr_db": 20 * np.log10(span / noise)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="../shared/data")
    folder = Path(parser.parse_args().data) / "fluorescence" / "w2s_widefield"
    print("| field | gain | noise std | signal span | span / noise (dB) |\n|---|---:|---:|---:|---:|")
    for raw_path in sorted(folder.glob("input_avg1_*.tif")):
        field = raw_path.stem.removeprefix("input_avg1_")
        row = noise_row(tifffile.imread(raw_path), tifffile.imread(folder / f"target_avg400_{field}.tif"))
        print(
            f"| {field} | {row['gain']:.3f} | {row['noise_std']:.1f} | {row['signal_span']:.1f} | {row['snr_db']:.1f} |"
        )


if __name__ == "__main__":
    main()
