"""The diffusion refinement's speed: one denoiser step, and the whole "Fidelity" preset.

A step is one eps prediction and the sampler update, at batch 1 and per sample when 8
samples run batched; the Fidelity preset (:data:`napari_deblur.diffusion.presets.FIDELITY`) runs through
:func:`napari_deblur.refine`. The denoiser is the bundled photo one when there is one, else
an untrained one of the same architecture (the speed is the same; the report says which).
"""

import time

import numpy as np
import torch

from ..diffusion.pair import resolve_models
from ..diffusion.presets import FIDELITY
from ..diffusion.refine import refine
from ..engine.device import pick_dtype
from ..engine.runtime import device_copy, synchronize
from ..models.denoiser import ResidualDenoiser
from ..models.registry import DENOISER, available_models, bundled_name
from ..models.weights import load_model
from .timing import median_seconds, sample_frame


def bundled_denoiser(log=print):
    """(predictor, denoiser, description): the bundled photo denoiser with its predictor if
    bundled, else an untrained ResidualDenoiser (the timings do not depend on the weights),
    saying why."""
    name = bundled_name("photo", DENOISER)
    if name in available_models(DENOISER):
        predictor, denoiser = resolve_models(name)
        return predictor, denoiser, f"{name} (bundled)"
    log(f"  {name} is not bundled: timing an untrained ResidualDenoiser of the same size")
    torch.manual_seed(0)
    return (
        load_model(bundled_name("photo")),
        ResidualDenoiser(channels=3).eval(),
        "untrained ResidualDenoiser (timing only)",
    )


def bench_diffusion(device, settings, repeats: int, *, quick: bool = False, log=print) -> dict:
    """Denoiser step times at ``settings["step_sizes"]`` (the first only when ``quick``) and,
    unless ``quick``, the Fidelity preset's wall time at ``settings["fidelity_size"]``."""
    predictor, denoiser, which = bundled_denoiser(log)
    dtype = pick_dtype("auto", device)
    work = device_copy(denoiser, device, dtype)
    out = {"denoiser": which, "steps": []}
    for height, width in settings["step_sizes"][: 1 if quick else None]:
        row = {"size": f"{height}x{width}"}
        for batch in (1, 8):
            z = torch.randn(batch, 3, height, width, device=device, dtype=dtype)
            y, x_init = torch.rand_like(z), torch.rand_like(z)
            level = torch.full((batch,), 0.5, device=device)

            def step(z=z, y=y, x_init=x_init, level=level):
                with torch.inference_mode():
                    eps = work(z, y, x_init, level)
                    return z - 0.1 * eps  # the sampler's update is one fused line next to the network

            seconds = median_seconds(step, device, repeats if batch == 1 else max(1, repeats // 2), warmup=1)
            row["step_ms" if batch == 1 else "step_ms_per_sample_batched8"] = 1000 * seconds / batch
        out["steps"].append(row)
        log(
            f"  {row['size']:>10}  denoiser step {row['step_ms']:8.1f} ms  "
            f"(per sample, 8 batched: {row['step_ms_per_sample_batched8']:8.1f} ms)"
        )
    if not quick:
        out["fidelity"] = _fidelity(predictor, denoiser, device, settings["fidelity_size"], log)
    return out


def fidelity_seconds(device, size, models=None) -> float:
    """Wall time of the Fidelity preset on the sample frame at ``size``
    = (height, width), once after an untimed warm-up; ``models``: (predictor, denoiser),
    default :func:`bundled_denoiser`'s."""
    models = models or bundled_denoiser(log=lambda *_: None)[:2]
    image = fidelity_image(size)

    def run():
        return fidelity_refine(image, models, device)

    run()  # warm-up (first-call set-up, cuDNN autotuning)
    start = time.perf_counter()
    run()
    synchronize(device)
    return time.perf_counter() - start


def fidelity_image(size) -> np.ndarray:
    """The sample frame at ``size`` = (height, width) as the float (H, W, 3) image the Fidelity
    preset is timed on."""
    return np.ascontiguousarray(sample_frame(*size).transpose(1, 2, 0))


def fidelity_refine(image, models, device):
    """The Fidelity preset of ``models`` = (predictor, denoiser) on ``image`` (:func:`fidelity_image`)."""
    return refine(image, models, **FIDELITY.as_dict(), axes="YXC", device=str(device), normalize="dtype")


def _fidelity(predictor, denoiser, device, size, log) -> dict:
    """The Fidelity preset's wall time, as a report row."""
    height, width = size
    seconds = fidelity_seconds(device, size, (predictor, denoiser))
    fidelity = {"size": f"{height}x{width}", **FIDELITY.as_dict(), "seconds": seconds}
    log(f"  Fidelity preset ({FIDELITY.describe()}) at {height}x{width}: {seconds:.2f} s")
    return fidelity
