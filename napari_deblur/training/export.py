"""Turn a training run into a bundled model: fp16 safetensors plus its manifest."""

import json
import subprocess
import time
from pathlib import Path

from ..models.weights import save_safetensors, sha256_of
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


DEGRADATION = {
    "photo": "camera-shake trajectories, linear motion, defocus and Gaussian blur in linear light, spatially "
    "varying blur, saturated highlights, Poisson-Gaussian noise, 8-bit rounding",
    "microscopy": "scalar Born-Wolf widefield/confocal PSFs in focus and defocused, Poisson-Gaussian noise at "
    "20-1000 photons, percentile scaling",
}


def data_description(config: dict) -> str:
    """What a run trained on, from its config: a paired folder, real sharp images (plus the procedural
    minority), or the synthetic recipe of its preset."""
    if config.get("pairs"):
        return f"paired images from {config['pairs']}"
    if config.get("sharp"):
        kind = "photographs" if config.get("preset") == "photo" else "fluorescence images"
        psfs = f"; measured/computed PSFs {', '.join(config['psfs'])}" if config.get("psfs") else ""
        return (
            f"real {kind} from {', '.join(config['sharp'])} (benchmark hold-outs excluded, "
            f"napari_deblur.data.heldout) for {config.get('real_share', 0.9):.0%} of the sharp tiles, procedural "
            f"scenes for the rest; identity kernels {config.get('identity_prob', 0):.0%}"
            + (f", JPEG {config.get('jpeg_prob', 0):.0%}" if config.get("preset") == "photo" else "")
            + (f", dynamic-scene motion {config['motion_prob']:.0%}" if config.get("motion_prob") else "")
            + (f", soft (enlarged) tiles {config['soft_prob']:.0%}" if config.get("soft_prob") else "")
            + (f", blurred on gamma-encoded values {config['display_prob']:.0%}" if config.get("display_prob") else "")
            + (f", kernels {config['kernel_size']} px" if config.get("kernel_size", 31) != 31 else "")
            + f"; {DEGRADATION.get(config.get('preset'), '')}{psfs}"
        )
    return DATA_DESCRIPTION.get(config.get("preset"), "")


def gated_export(
    export,
    run_dir,
    name: str,
    out_dir,
    real_data,
    *,
    quick=False,
    run_device="auto",
    bench_dir=None,
    log=print,
    **kwargs,
) -> tuple[Path | None, dict]:
    """Export into a staging folder, score the candidate on the real-data tracks and apply the
    do-no-harm gate (:func:`napari_deblur.evaluation.real.gate`); only a model that passes reaches
    ``out_dir``, with the real-track numbers and the gate in its manifest. Returns (manifest or None,
    gate). ``bench_dir`` keeps the candidate's real.md/real.json (default: in the staging folder)."""
    import shutil
    import tempfile

    from ..evaluation.real import run_real_benchmark

    out_dir = Path(out_dir)
    staging = Path(tempfile.mkdtemp(prefix=f"napari-deblur-export-{name}-"))
    manifest_path = export(run_dir, name, staging, **kwargs)
    manifest = json.loads(manifest_path.read_text())
    weights = staging / manifest["file"]
    channels = manifest["architecture"]["channels"]
    entry = {"name": name, "source": str(weights), "channels": channels}
    if manifest["architecture"]["class"] == "ResidualDenoiser":
        entry["predictor"] = manifest.get("predictor")
        models, denoisers = [], [entry]
    else:
        models, denoisers = [entry], []
    report = run_real_benchmark(
        real_data,
        bench_dir or staging / "real",
        models=models,
        denoisers=denoisers,
        quick=quick,
        device=run_device,
        log=log,
    )
    verdict = report["gate"][name]
    manifest["real_benchmark"] = real_benchmark_entry(report, name)
    manifest_path.write_text(json.dumps(manifest, indent=1) + "\n")
    if not verdict["passed"]:
        log(f"{name} did not pass the do-no-harm gate; nothing written to {out_dir} (candidate left in {staging})")
        return None, verdict
    out_dir.mkdir(parents=True, exist_ok=True)
    for f in (weights, manifest_path):
        shutil.copy2(f, out_dir / f.name)
    shutil.rmtree(staging, ignore_errors=True)
    return out_dir / manifest_path.name, verdict


def real_benchmark_entry(report: dict, name: str) -> dict:
    """The ``real_benchmark`` section of model ``name``'s manifest, from a real-data report
    (:func:`napari_deblur.evaluation.real.run_real_benchmark`): its mean PSNR/SSIM beside the
    input's (and the predictor's, for a denoiser) on every track it was scored on, the
    do-no-harm gate, and for a denoiser the sampling preset those numbers were measured with."""
    from ..evaluation.real import INPUT

    tracks, preset = {}, None
    for track, data in report["tracks"].items():
        section = data.get("diffusion", {}).get(name, data)
        if name in section["means"]:
            tracks[track] = {k: section["means"][k] for k in (INPUT, "predictor", name) if k in section["means"]}
            if "preset" in section:  # a denoiser's Fidelity rows
                preset = section["preset"]
                tracks[track]["std_error_rho"] = section.get("std_error_rho")
    entry = {"mode": report["mode"], "device": report["device"], "date": report["date"], "tracks": tracks}
    if preset is not None:
        entry["fidelity_preset"] = preset
    entry["gate"] = report["gate"][name]
    return entry


def record_real_benchmark(report: dict, name: str, folder=None) -> Path:
    """Write a full real-data report's numbers and gate verdict for the bundled model ``name``
    into its manifest in ``folder`` (default: the bundled resources); the weights file is not
    touched. A model whose numbers were measured with another sampling preset, or whose gate
    verdict changed, is then described as it now behaves. Returns the manifest's path."""
    from ..resources import resources_dir

    if report.get("mode") != "full":
        raise ValueError("only a full real-data run (not --quick) may be recorded in a manifest")
    if name not in report.get("gate", {}):
        raise ValueError(f"{name} was not scored in this real-data run")
    path = Path(folder or resources_dir()) / f"{name}.json"
    manifest = json.loads(path.read_text()) if path.is_file() else {}
    if manifest.get("name", path.stem) != name or "sha256" not in manifest:
        raise ValueError(f"{name} is not a bundled model with a manifest in {path.parent}")
    manifest["real_benchmark"] = real_benchmark_entry(report, name)
    partial = path.with_name(f".{path.name}.part")  # renamed over the manifest: never a half-written one
    partial.write_text(json.dumps(manifest, indent=1) + "\n")
    partial.replace(path)
    return path


def git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            cwd=Path(__file__).resolve().parent,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def write_bundle(
    run_dir,
    name: str,
    out_dir,
    model,
    state: dict,
    *,
    manifest_extra: dict,
    header_extra: dict | None = None,
    device: str = "",
    benchmark: dict | None = None,
    note: str = "",
    validate=None,
) -> Path:
    """Write ``model`` as ``out_dir/<name>.safetensors`` (fp16) and its manifest ``<name>.json``:
    what every bundled model records (checksum, recipe, data, iterations, time, device,
    commit, the validation of these weights), plus ``manifest_extra`` (architecture and the like).
    ``validate`` (no arguments, returns the validation dict) is called when the run's log has no
    validation at the checkpoint's iteration (see :func:`checkpoint_validation`)."""
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    config = json.loads((run_dir / "config.json").read_text())
    weights = save_safetensors(
        model, out_dir / f"{name}.safetensors", half=True, metadata={"name": name, **(header_extra or {})}
    )
    validation = checkpoint_validation(run_dir, int(state["iteration"]), validate)
    manifest = {
        "name": name,
        "file": weights.name,
        "sha256": sha256_of(weights),
        **manifest_extra,
        "precision": "fp16",
        "recipe": config,
        "data": data_description(config),
        "iterations": int(state["iteration"]),
        "train_seconds": round(float(state["seconds"]), 1),
        "device": device,
        "commit": git_commit(),
        "exported": time.strftime("%Y-%m-%d"),
        "validation": validation,
        "benchmark": benchmark or {},
        "note": note,
    }
    path = out_dir / f"{name}.json"
    path.write_text(json.dumps(manifest, indent=1) + "\n")
    return path


def checkpoint_validation(run_dir, iteration: int, validate=None) -> dict:
    """The validation of the weights in ``run_dir``'s checkpoint (at ``iteration``): the log's
    record at that iteration, else ``validate()`` run now, else ``{}``.

    The log's last validation can belong to other weights: a checkpoint copied in the middle of
    a run (the iteration a gate picked) or one written between two validations."""
    log = [json.loads(line) for line in (Path(run_dir) / "log.jsonl").read_text().splitlines() if line.strip()]
    logged = [r for r in log if "val_psnr" in r and r.get("iter") == iteration]
    if logged:
        return logged[-1]
    if validate is None:
        return {}
    return {"iter": iteration, **validate(), "computed": "at export"}


def export_run(run_dir, name: str, out_dir, **kwargs) -> Path:
    """Export an XYDeblur run's EMA weights (see :func:`write_bundle` for ``kwargs``).

    Which branch handles horizontal blur is measured here (:mod:`.orientation`).
    """
    state = load_checkpoint(Path(run_dir) / "checkpoint")
    model = XYDeblur(**state["config"])
    model.load_state_dict({k: v.float() for k, v in state["ema"].items()})
    energies = branch_energies(model)
    extra = {"architecture": {"class": "XYDeblur", **model.config}, **orientation(energies)}
    from .train_xydeblur import Trainer

    return write_bundle(
        run_dir,
        name,
        out_dir,
        model,
        state,
        manifest_extra=extra,
        validate=lambda: Trainer.validate_run(run_dir),
        **kwargs,
    )
