"""Turn a training run into a bundled model: fp16 safetensors plus its manifest."""

import json
import subprocess
import time
from pathlib import Path

from ..models.loading import save_safetensors, sha256_of
from ..models.xydeblur import XYDeblur
from .checkpoint import load_checkpoint
from .orientation import branch_energies, orientation

DATA_DESCRIPTION = {
    "photo": (
        "scikit-image sample photographs (held-out list excluded) and procedural dead leaves; "
        "camera-shake trajectories, linear motion, defocus and Gaussian blur in linear light, "
        "spatially varying blur, saturated highlights, Gaussian and Poisson-Gaussian noise"
    ),
    "microscopy": (
        "synthetic fluorescent spots, filaments and membranes/cells (procedural, no real images); "
        "scalar Born-Wolf widefield/confocal PSFs, in focus and defocused; Poisson-Gaussian noise"
    ),
}


def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=10,
                             cwd=Path(__file__).resolve().parent)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def write_bundle(run_dir, name: str, out_dir, model, state: dict, *, manifest_extra: dict,
                 header_extra: dict | None = None, device: str = "", benchmark: dict | None = None,
                 note: str = "") -> Path:
    """Write ``model`` as ``out_dir/<name>.safetensors`` (fp16) and its manifest ``<name>.json``:
    what every bundled model records (checksum, recipe, data, iterations, time, device,
    commit, last validation), plus ``manifest_extra`` (architecture and the like)."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    config = json.loads((run_dir / "config.json").read_text())
    weights = save_safetensors(model, out_dir / f"{name}.safetensors", half=True,
                               metadata={"name": name, **(header_extra or {})})
    log = [json.loads(line) for line in (run_dir / "log.jsonl").read_text().splitlines() if line.strip()]
    validation = [r for r in log if "val_psnr" in r]
    manifest = {
        "name": name,
        "file": weights.name,
        "sha256": sha256_of(weights),
        **manifest_extra,
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


def export_run(run_dir, name: str, out_dir, **kwargs) -> Path:
    """Export an XYDeblur run's EMA weights (see :func:`write_bundle` for ``kwargs``).

    Which branch handles horizontal blur is measured here (:mod:`.orientation`).
    """
    state = load_checkpoint(Path(run_dir) / "checkpoint")
    model = XYDeblur(**state["config"])
    model.load_state_dict({k: v.float() for k, v in state["ema"].items()})
    energies = branch_energies(model)
    extra = {"architecture": {"class": "XYDeblur", **model.config}, **orientation(energies)}
    return write_bundle(run_dir, name, out_dir, model, state, manifest_extra=extra, **kwargs)
