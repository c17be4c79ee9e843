"""Turn a denoiser training run into a bundled model: fp16 safetensors plus its manifest.

``python -m napari_deblur.training.export_dvsr RUN_DIR --name dvsr-photo [--out resources]``

The manifest has the architecture (class ``ResidualDenoiser`` and its config), the
``predictor`` it pairs with (the XYDeblur the run was trained against: a bundled name, or
a path), the sampling schedule it was trained for, the recipe, the iterations, the device
and the last validation. The safetensors header carries the predictor too, so a loose
file still knows its pair.
"""

import argparse
import json
import sys
import time
from pathlib import Path

from ..diffusion.schedule import BETA_END, BETA_START, TRAIN_STEPS
from ..models.denoiser import PREDICTOR_KEY, ResidualDenoiser
from ..models.loading import save_safetensors, sha256_of
from .checkpoint import load_checkpoint
from .export import DATA_DESCRIPTION, git_commit


def export_dvsr_run(run_dir, name: str, out_dir, *, predictor: str | None = None, device: str = "",
                    benchmark: dict | None = None, note: str = "") -> Path:
    """Write ``out_dir/<name>.safetensors`` (the EMA weights, fp16) and ``<name>.json``."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    state = load_checkpoint(run_dir / "checkpoint")
    if state.get("architecture") != "ResidualDenoiser":
        raise ValueError(f"{run_dir} is not a denoiser training run (train it with `napari-deblur train dvsr`)")
    config = json.loads((run_dir / "config.json").read_text())
    predictor = predictor or state.get("predictor") or config.get("predictor")
    model = ResidualDenoiser(**state["config"])
    model.load_state_dict({k: v.float() for k, v in state["ema"].items()})
    weights = save_safetensors(model, out_dir / f"{name}.safetensors", half=True,
                               metadata={"name": name, **({PREDICTOR_KEY: predictor} if predictor else {})})
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines() if line.strip()]
    validation = [r for r in log if "val_psnr" in r]
    manifest = {
        "name": name,
        "file": weights.name,
        "sha256": sha256_of(weights),
        "architecture": {"class": "ResidualDenoiser", **model.config},
        "predictor": predictor,
        "schedule": {
            "training": f"continuous abar, uniform between neighbours of linear betas {BETA_START:g}..{BETA_END:g} "
                        f"over {TRAIN_STEPS} steps",
            "target": "eps of the residual x0 - g(y), L1",
        },
        "precision": "fp16",
        "recipe": config,
        "data": DATA_DESCRIPTION.get(config.get("preset"), config.get("pairs") or ""),
        "iterations": int(state["iteration"]),
        "train_seconds": round(float(state["seconds"]), 1),
        "device": device,
        "commit": git_commit(),
        "exported": time.strftime("%Y-%m-%d"),
        "validation": validation[-1] if validation else {},
        "benchmark": benchmark or {},
        "note": note,
    }
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(manifest, indent=1) + "\n")
    return path


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m napari_deblur.training.export_dvsr",
        description="Write a denoiser run's EMA weights as a bundled model (fp16 safetensors + manifest).",
    )
    parser.add_argument("run", type=Path, metavar="RUN_DIR")
    parser.add_argument("--name", required=True, help="model name, e.g. dvsr-photo")
    parser.add_argument("--out", type=Path, default=Path("resources"), metavar="DIR")
    parser.add_argument("--predictor", default=None, help="predictor name for the manifest (default: the run's)")
    parser.add_argument("--device", default="", help="where it was trained, for the manifest")
    parser.add_argument("--note", default="", help="a remark for the manifest")
    args = parser.parse_args(argv)
    print(export_dvsr_run(args.run, args.name, args.out, predictor=args.predictor, device=args.device, note=args.note))
    return 0


if __name__ == "__main__":
    sys.exit(main())
