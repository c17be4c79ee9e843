"""Turn a denoiser training run into a bundled model: fp16 safetensors plus its manifest.

``napari-deblur export RUN_DIR --name dvsr-photo [--out resources]`` (the command sees a
denoiser run by the predictor it names).

The manifest has the architecture (class ``ResidualDenoiser`` and its config), the
``predictor`` it pairs with (the XYDeblur the run was trained against: a bundled name, or
a path) and the sha256 of that predictor's weights (``predictor_sha256``: loading warns when
the predictor under that name has changed since), the sampling schedule it was trained for,
the recipe, the iterations, the device and the validation of these weights. The safetensors header
carries the predictor and its checksum too, so a loose file still knows its pair.
"""

import json
from pathlib import Path

from ..diffusion.schedule import BETA_END, BETA_START, TRAIN_STEPS
from ..models.denoiser import ResidualDenoiser
from ..models.weights import PREDICTOR_KEY, PREDICTOR_SHA_KEY, load_model, weights_sha256
from .checkpoint import load_checkpoint
from .export import write_bundle


def export_dvsr_run(run_dir, name: str, out_dir, *, predictor: str | None = None, **kwargs) -> Path:
    """Write ``out_dir/<name>.safetensors`` (the EMA weights, fp16) and ``<name>.json``."""
    run_dir = Path(run_dir)
    state = load_checkpoint(run_dir / "checkpoint")
    if state.get("architecture") != "ResidualDenoiser":
        raise ValueError(f"{run_dir} is not a denoiser training run (train it with `napari-deblur train dvsr`)")
    config = json.loads((run_dir / "config.json").read_text())
    if predictor:  # the caller names the pair: record the checksum of those weights
        predictor_sha = weights_sha256(load_model(predictor))
    else:  # the weights the run was trained against
        predictor = state.get("predictor") or config.get("predictor")
        predictor_sha = state.get("predictor_sha256")
    model = ResidualDenoiser(**state["config"])
    model.load_state_dict({k: v.float() for k, v in state["ema"].items()})
    extra = {
        "architecture": {"class": "ResidualDenoiser", **model.config},
        "predictor": predictor,
        "predictor_sha256": predictor_sha,
        "schedule": {
            "training": f"continuous abar, uniform between neighbours of linear betas {BETA_START:g}..{BETA_END:g} "
            f"over {TRAIN_STEPS} steps",
            "target": f"eps of {model.residual_scale:g} * (x0 - g(y)), L1"
            + (
                f", EDM-preconditioned output (sigma_data {model.config['sigma_data']:g})"
                if model.config["sigma_data"] > 0
                else ""
            ),
        },
    }
    header = {PREDICTOR_KEY: predictor} if predictor else {}
    if predictor_sha:
        header[PREDICTOR_SHA_KEY] = predictor_sha
    from .train_dvsr import DVSRTrainer

    return write_bundle(
        run_dir,
        name,
        out_dir,
        model,
        state,
        manifest_extra=extra,
        header_extra=header,
        validate=lambda: DVSRTrainer.validate_run(run_dir),
        **kwargs,
    )
