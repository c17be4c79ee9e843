"""Timed diffusion refinement for ``napari-deblur eval``: the per-step clock and the speed row.

:func:`timed_refine` runs :func:`napari_deblur.diffusion.refine.refine_iter` on one benchmark
image and reads the clock between consecutive steps (the device synchronised at each);
:func:`time_speed` times one model on a larger random input after a warm-up, and
:func:`extrapolate` turns its per-step time into per-sample estimates at other step counts.
"""

import time

import numpy as np


def timed_refine(
    image: np.ndarray, source, *, steps: int, samples: int, device: str, seed: int = 0, sampler: str = "ddpm"
):
    """Refine a case's (C, H, W) or (H, W) image; returns ``(result, timing)``.

    ``timing``: ``seconds`` (the whole call: predictor, set-up and every step),
    ``seconds_per_step`` (the mean time between consecutive diffusion steps, each one
    denoiser pass over the ``in_flight`` chains batched together; the device is
    synchronised at every step) and ``seconds_per_sample`` (``seconds / samples``).
    The result's arrays are put back in the case's (C, H, W) layout.
    """
    from ..diffusion.refine import refine_iter
    from ..engine.device import pick_device
    from ..engine.runtime import synchronize

    dev = pick_device(device)
    photo = image.ndim == 3
    data = image.transpose(1, 2, 0) if photo else image
    started = time.perf_counter()
    run = refine_iter(
        data,
        source,
        steps=steps,
        samples=samples,
        seed=seed,
        sampler=sampler,
        axes="YXC" if photo else "YX",
        device=device,
        normalize="dtype",
        out_dtype="float32",
    )
    stamps = []
    while True:
        try:
            next(run)
        except StopIteration as stop:
            result = stop.value
            break
        synchronize(dev)
        stamps.append(time.perf_counter())
    seconds = time.perf_counter() - started
    if photo:
        result.mean, result.std, result.x_init = (
            a.transpose(2, 0, 1) for a in (result.mean, result.std, result.x_init)
        )
    per_step = (stamps[-1] - stamps[0]) / (len(stamps) - 1) if len(stamps) > 1 else seconds
    return result, {
        "seconds": seconds,
        "seconds_per_step": per_step,
        "seconds_per_sample": seconds / samples,
        "in_flight": int(result.info["in_flight"]),
    }


def time_speed(model: dict, cfg: dict, device: str) -> dict:
    """Time one model on a size x size input (random, seeded: time does not depend on content)
    after an untimed warm-up of one step at the same size; per-sample times for the benchmark's
    step counts are extrapolated from the per-step time (one chain)."""
    from ..engine.device import describe, pick_device

    size, steps, samples = cfg["size"], cfg["steps"], cfg.get("samples", 1)
    shape = (model["channels"], size, size) if model["channels"] == 3 else (size, size)
    image = np.random.default_rng(0).random(shape).astype(np.float32)
    timed_refine(image, model["source"], steps=1, samples=1, device=device)  # warm-up: weights, kernels
    result, timing = timed_refine(image, model["source"], steps=steps, samples=samples, device=device)
    overhead = max(0.0, timing["seconds"] - steps * -(-samples // timing["in_flight"]) * timing["seconds_per_step"])
    return {
        "model": model["name"],
        "device": describe(pick_device(device)),
        "shape": list(shape),
        "steps": steps,
        "samples": samples,
        **timing,
        "overhead_seconds": overhead,
        "tiles": result.info["tiles"],
        "tile": result.info["tile"],
        "precision": result.info["precision"],
    }


def extrapolate(timing: dict, step_counts) -> dict:
    """Seconds per sample at other step counts: predictor/set-up overhead + T x one step."""
    return {str(t): timing["overhead_seconds"] + t * timing["seconds_per_step"] for t in step_counts}
