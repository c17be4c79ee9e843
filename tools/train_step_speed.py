"""How long one training step takes on this machine, in float32 and in bfloat16 autocast.

Runs the trainers themselves (:class:`napari_deblur.training.train_xydeblur.Trainer` and
:class:`napari_deblur.training.train_dvsr.DVSRTrainer`, procedural training pairs, the bundled
predictor for dvsr) with ``precision="fp32"`` and ``"bf16"``, and reports the median seconds
per step (the pair sampler included) after two warm-up steps. Also prints what ``"auto"`` picks
here. On a CPU without native bfloat16 (no AVX512-BF16 or AMX) the bf16 rows are emulated.

    .venv/bin/python tools/train_step_speed.py [--device cpu] [--steps 5] [--out FILE.json]
"""

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import torch

CASES = {  # the CPU recipes of the bundled models' latest runs
    "xydeblur photo, batch 4 x 96 px": ("xydeblur", dict(preset="photo", batch=4, crop=96)),
    "xydeblur microscopy, batch 4 x 96 px": ("xydeblur", dict(preset="microscopy", batch=4, crop=96)),
    "dvsr photo, batch 8 x 64 px": ("dvsr", dict(preset="photo", batch=8, crop=64)),
}


def step_seconds(kind: str, options: dict, precision: str, device: str, steps: int) -> float:
    from napari_deblur.training.train_dvsr import DVSRConfig, DVSRTrainer
    from napari_deblur.training.train_xydeblur import TrainConfig, Trainer

    config, trainer_class = (TrainConfig, Trainer) if kind == "xydeblur" else (DVSRConfig, DVSRTrainer)
    cfg = config(iters=1000, warmup=10, val_crops=2, val_crop=64, precision=precision, seed=0, **options)
    with tempfile.TemporaryDirectory() as out:
        trainer = trainer_class(cfg, out, device=device, log=lambda line: None)
        times = []
        for i in range(steps + 2):
            start = time.perf_counter()
            trainer.step()
            if i >= 2:
                times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    from napari_deblur.engine.device import cpu_has_native_bf16, pick_device
    from napari_deblur.speed.timing import machine_name
    from napari_deblur.training.precision import training_precision

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--steps", type=int, default=5, help="timed steps per case (after 2 warm-up steps)")
    parser.add_argument("--out", type=Path, default=None, help="also write the results as JSON")
    args = parser.parse_args()
    device = pick_device(args.device)
    machine = machine_name()
    print(
        f"{machine}, {device}, torch {torch.__version__}, {torch.get_num_threads()} threads; "
        f"native bf16 on this CPU: {cpu_has_native_bf16()}; precision 'auto' = "
        f"{training_precision('auto', device)}"
    )
    print("\n| step | fp32 (s) | bf16 autocast (s) | speed-up |\n|---|---:|---:|---:|")
    rows = []
    for name, (kind, options) in CASES.items():
        fp32 = step_seconds(kind, options, "fp32", args.device, args.steps)
        bf16 = step_seconds(kind, options, "bf16", args.device, args.steps)
        rows.append({"case": name, "fp32_s": fp32, "bf16_s": bf16})
        print(f"| {name} | {fp32:.3f} | {bf16:.3f} | {fp32 / bf16:.2f}x |", flush=True)
    if args.out:
        args.out.write_text(
            json.dumps(
                {
                    "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                    "steps": args.steps,
                    "machine": machine,
                    "device": str(device),
                    "torch": torch.__version__,
                    "threads": torch.get_num_threads(),
                    "bf16_native": cpu_has_native_bf16(),
                    "rows": rows,
                },
                indent=1,
            )
        )


if __name__ == "__main__":
    main()
