"""How many steps and samples the Fidelity preset should take: the mean of a denoiser's samples
against its predictor, on central crops of the real-data cases, for several sampler settings.

The Fidelity preset is the low-distortion setting (few steps, the mean of several samples); its
job is a mean at least as close to the truth as the predictor alone. This scores each setting
``STEPS,SAMPLES[,SAMPLER]`` on the same crops with the same seed (0), by PSNR and SSIM of the
mean, of ``x_init = g(y)`` and of the input, and by the std/error rank correlation of the
uncertainty map. Cases come from the real-data benchmark (``napari_deblur.evaluation.real_cases``):
``--cases 3:9`` picks cases 3 to 8 of the track (the do-no-harm gate scores denoisers on the
first three, so a choice made on 3:9 is not made on the gate's images).

    .venv/bin/python tools/fidelity_sweep.py dvsr-microscopy --track fluorescence --cases 3:9 \
        --crop 256 --settings 10,8 2,8 2,16 --out benchmarks/real/fidelity-preset/NAME.json

Prints one line per setting; ``--out`` writes every number as JSON (with the machine).
"""

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np


def parse_setting(text: str) -> tuple[int, int, str]:
    parts = text.split(",")
    if len(parts) not in (2, 3):
        raise argparse.ArgumentTypeError(f"a setting is STEPS,SAMPLES[,SAMPLER], got {text!r}")
    return int(parts[0]), int(parts[1]), parts[2] if len(parts) == 3 else "ddpm"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", help="a denoiser: bundled name or weights file")
    parser.add_argument("--track", required=True, choices=["fluorescence", "photo_blur", "gopro"])
    parser.add_argument("--cases", default="0:3", help="LO:HI, the track's cases to use (default 0:3)")
    parser.add_argument("--crop", type=int, default=256, help="central crop side in pixels (default 256)")
    parser.add_argument("--settings", nargs="+", type=parse_setting, required=True, metavar="STEPS,SAMPLES")
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)

    import torch

    from napari_deblur.engine.device import describe, pick_device
    from napari_deblur.evaluation.diffusion import center_crop
    from napari_deblur.evaluation.real import refinement_scores
    from napari_deblur.evaluation.real_cases import fluorescence_cases, gopro_cases, photo_blur_cases

    makers = {"fluorescence": fluorescence_cases, "photo_blur": photo_blur_cases, "gopro": gopro_cases}
    lo, hi = (int(v) for v in args.cases.split(":"))
    cases = makers[args.track](args.data, "full")[lo:hi]
    if not cases:
        parser.error(f"no cases {args.cases} on the {args.track} track")
    photo = args.track != "fluorescence"
    report = {
        "tool": "tools/fidelity_sweep.py",
        "argv": sys.argv[1:] if argv is None else list(argv),
        "model": args.model,
        "track": args.track,
        "cases": [c.id for c in cases],
        "crop": args.crop,
        "device": describe(pick_device(args.device)),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "settings": [],
    }
    for steps, samples, sampler in args.settings:
        started = time.perf_counter()
        rows = []
        for c in cases:
            image = center_crop(np.moveaxis(c.image, -1, 0) if photo else c.image, args.crop)  # photos: (H, W, 3)
            image = np.moveaxis(image, 0, -1) if photo else image
            crop = replace(c, image=np.ascontiguousarray(image), sharp=center_crop(c.sharp, args.crop))
            rows.append({"id": c.id, **refinement_scores(crop, args.model, args.device, steps, samples, sampler)})
        seconds = time.perf_counter() - started
        kinds = ("input", "predictor", "mean")
        means = {k: {m: float(np.mean([r[k][m] for r in rows])) for m in ("psnr", "ssim")} for k in kinds}
        rhos = [r["std_error_rho"] for r in rows if r["std_error_rho"] is not None]
        entry = {
            "steps": steps,
            "samples": samples,
            "sampler": sampler,
            "means": means,
            "mean_minus_predictor_db": means["mean"]["psnr"] - means["predictor"]["psnr"],
            "images_below_predictor": int(sum(r["mean"]["psnr"] < r["predictor"]["psnr"] for r in rows)),
            "std_error_rho": float(np.mean(rhos)) if rhos else None,
            "seconds": seconds,
            "images": rows,
        }
        report["settings"].append(entry)
        print(
            f"{steps:>4} steps x {samples:>3} {sampler}: "
            f"mean {means['mean']['psnr']:.3f} dB / {means['mean']['ssim']:.4f}, "
            f"predictor {means['predictor']['psnr']:.3f} / {means['predictor']['ssim']:.4f} "
            f"({entry['mean_minus_predictor_db']:+.3f} dB, {entry['images_below_predictor']}/{len(rows)} below), "
            f"input {means['input']['psnr']:.3f}, rho {entry['std_error_rho'] if rhos else float('nan'):.3f}, "
            f"{seconds:.0f} s",
            flush=True,
        )
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
