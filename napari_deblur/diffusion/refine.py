"""The diffusion-refinement engine: any image or stack in, mean and uncertainty out.

Predict and refine (Whang et al., CVPR 2022): a frozen predictor ``g`` (an XYDeblur) gives
``x_init = g(y)``; a :class:`~napari_deblur.models.denoiser.ResidualDenoiser` samples the
residual ``x0 - g(y)`` by reverse diffusion, conditioned on ``y`` and ``g(y)``; each sample
is ``g(y) + z_0``. Over ``samples`` chains the engine keeps the per-pixel mean and standard
deviation (Welford/Chan, two buffers): the mean is the low-distortion estimate (the paper's
"SA" setting with few steps), the standard deviation an uncertainty map that grows with
the blur.

``refine_iter`` is a generator: it yields a :class:`RefineStep` after every diffusion step
(its ``x0`` is the readable preview ``g(y) + x0_hat``, its ``z_t`` the raw state), so a
progress bar can move and a napari worker can stop between steps; it *returns* the
:class:`RefineResult`. ``refine`` runs it to the end.

The rules for axes, dtypes, intensity scaling, channels (joint, per-channel or replicated
to RGB), RGBA alpha and NaN pixels are those of :func:`napari_deblur.engine.restore.xydeblur_iter`
(the image reaches both networks as a :class:`~napari_deblur.engine.model_input.ModelInput`).

A call runs in steps: the arguments are checked; the predictor runs once over tiles for
``x_init``; the chains are planned for the device (:func:`.chains.plan_chains`) and run
(:func:`.chains.run_chains`); the statistics become the result in the input's units and
layout (:class:`.images.ResidualImages`).

Large images are cut into overlapping tiles (raised-cosine blending, the grid of
:mod:`napari_deblur.engine.tiling`), but, unlike a one-pass network, a diffusion chain
must not draw its noise per tile: ``z_T`` and every step's noise are drawn once for the
whole image, every step runs the denoiser over *all* tiles, and the blended noise estimate
updates the whole state. Neighbouring tiles therefore see the same noise and no seam
appears. The state stays on the GPU between steps when it fits there (else in host memory).

Seeds: one base ``seed``; sample ``k`` uses its own generator seeded from ``(seed, k)``
(recorded in the result), so a sample does not depend on how many others run with it,
and the same seed on the same device gives the same output.
"""

import time
from collections.abc import Generator
from dataclasses import dataclass, field

import numpy as np

from ..engine.device import describe, precision_name
from ..engine.intensity import cast_like
from ..engine.model_input import ModelInput
from ..engine.options import MIN_TILE
from ..engine.restore import DEFAULT_OVERLAP, GIVEN, check_finite_output, plan_memory
from ..engine.runtime import (
    RELEASE_SHARE,
    device_copy,
    network_fn,
    release_device_cache,
    retry_out_of_memory,
    run_to_end,
)
from ..engine.tiling import ALIGN, tile_apply_iter
from ..models.registry import default_preset
from ..models.weights import bundled_names
from .chains import ChainPlan, Chains, RefineStep, plan_chains, run_chains
from .images import ResidualImages
from .pair import residual_scale, resolve_models, size_multiple
from .presets import DEFAULT_STEPS
from .request import RefineRequest, check_request
from .tiles import halved_tile

__all__ = [
    "DEFAULT_CLIP",
    "DEFAULT_STEPS",
    "CPU_SERIAL_PIXELS",
    "RefineResult",
    "RefineStep",
    "refine",
    "refine_iter",
    "sample_seeds",
]

DEFAULT_CLIP = 1.0
CPU_SERIAL_PIXELS = 128 * 256  # on the CPU, chains at least this large run one at a time


@dataclass
class RefineResult:
    """``mean`` and ``std`` over the samples (float32, the input's shape; ``mean`` has the
    input's dtype with ``out_dtype='same'``), ``x_init = g(y)`` (like ``mean``), ``samples``
    (``(N, *shape)`` float32, only with ``keep_samples=True``, else None), the per-sample
    ``seeds``, ``info`` (settings, device, timing) and the ``axes`` of all arrays."""

    mean: np.ndarray
    std: np.ndarray
    x_init: np.ndarray
    samples: np.ndarray | None
    seeds: tuple
    info: dict = field(default_factory=dict)
    axes: str = ""


def sample_seeds(seed: int, count: int) -> tuple:
    """The per-sample seeds derived from one base seed (sample k depends on (seed, k) only)."""
    return tuple(int(np.random.SeedSequence([seed, k]).generate_state(1)[0]) for k in range(count))


# ---------------------------------------------------------------- the engine


def refine_iter(
    image,
    model=None,
    *,
    predictor=None,
    steps=DEFAULT_STEPS,
    samples=1,
    seed=0,
    sampler="ddpm",
    axes=None,
    device="auto",
    precision="auto",
    tile="auto",
    overlap=DEFAULT_OVERLAP,
    batch="auto",
    normalize="auto",
    clip=DEFAULT_CLIP,
    keep_samples=False,
    in_flight="auto",
    out_dtype="float32",
) -> Generator[RefineStep, None, RefineResult]:
    """Refine ``image`` by residual diffusion, yielding a :class:`RefineStep` per step;
    returns a :class:`RefineResult`.

    Args:
        image: array-like, uint8/uint16/int/float32/float64, 2D or a stack.
        model: a denoiser's bundled name or weights file (its manifest or header names
            the predictor), a denoiser module (with ``predictor=``), or a
            ``(predictor, denoiser)`` tuple; ``None``: ``dvsr-photo`` for RGB(A) photographs,
            ``dvsr-microscopy`` otherwise (the policy of :mod:`napari_deblur.models.registry`;
            ``info["model_choice"]`` says which and why).
        predictor: the XYDeblur ``g`` (name, weights file or module); overrides the one
            the denoiser names.
        steps: diffusion steps T, 1..1000 (see :mod:`.schedule`): many steps give
            sharper single samples, few steps plus several ``samples`` a lower-distortion mean.
        samples: chains N; ``mean`` and ``std`` are over them.
        seed: base seed (non-negative integer); per-sample seeds are derived from it.
        sampler: ``"ddpm"`` (ancestral, as in the paper) or ``"ddim"`` (deterministic given
            ``z_T``).
        axes, device, precision, tile, overlap, batch, normalize: as for
            :func:`napari_deblur.engine.restore.xydeblur_iter` (``tile`` is rounded to a
            multiple of 8 for the denoiser).
        clip: ``x0_hat`` is clipped to ``[-clip, clip]`` in [0, 1] units (None: no clipping).
        keep_samples: also return every sample (N full images).
        in_flight: chains run together (batched through the network), or ``"auto"``: on a
            GPU all of them if memory allows; on the CPU one at a time from
            :data:`CPU_SERIAL_PIXELS` up (batching large chains is slower there).
        out_dtype: ``"float32"`` or ``"same"`` (``mean`` and ``x_init`` cast like the input,
            integers rounded and clipped); ``std`` is always float32.
    """
    started = time.perf_counter()
    request = check_request(
        image,
        axes=axes,
        steps=steps,
        samples=samples,
        seed=seed,
        sampler=sampler,
        device=device,
        precision=precision,
        tile=tile,
        overlap=overlap,
        batch=batch,
        normalize=normalize,
        clip=clip,
        keep_samples=keep_samples,
        in_flight=in_flight,
        out_dtype=out_dtype,
    )
    channels = request.bcyx.shape[1]
    choice = (
        default_preset(channels, request.axes, request.array.dtype, axes_given=request.axes_given)
        if model is None
        else None
    )
    pred, den = resolve_models(model, predictor, channels=channels, preset=choice.preset if choice else None)
    source = ModelInput.fit(
        request.bcyx, request.layout, request.array.dtype, pred.channels, request.normalize, verb="refine"
    )
    multiple = size_multiple(den)
    items = _padded(source.items(), multiple)
    images = ResidualImages(request.bcyx, request.layout, source, _predict(pred, items, source, request))
    plan = plan_chains(
        den,
        items.shape,
        source.compute,
        request.device,
        request.dtype,
        tile=request.tile,
        batch=request.batch,
        overlap=request.overlap,
        multiple=multiple,
        in_flight=request.in_flight,
        seeds=sample_seeds(request.seed, request.samples),
        serial_pixels=CPU_SERIAL_PIXELS,
    )
    chains = yield from run_chains(
        den,
        plan,
        items,
        images,
        schedule=request.schedule,
        sampler=request.sampler,
        clip=request.clip,
        keep_samples=request.keep_samples,
        replicate_to=source.replicate_to,
    )
    result = _assemble(request, plan, chains, images, source, den)
    result.info = {
        "model": _weights_name(den, type(den).__name__),
        "bundled_weights": bundled_names(den, pred),  # the names the do-no-harm gate warnings are for
        "model_choice": choice.describe(_weights_name(den, "?")) if choice else GIVEN,
        "predictor": _predictor_name(pred),
        **_run_info(request, plan, chains, den, source),
        "seconds": time.perf_counter() - started,
    }
    return result


def refine(image, model=None, **kwargs) -> RefineResult:
    """Refine ``image``; the arguments are those of :func:`refine_iter`."""
    return run_to_end(refine_iter(image, model, **kwargs))


# ---------------------------------------------------------------- the steps of a call


def _padded(items: np.ndarray, multiple: int) -> np.ndarray:
    """``items`` padded by reflection at the bottom and right to multiples of ``multiple``."""
    h, w = items.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    if ph or pw:
        items = np.pad(items, ((0, 0), (0, 0), (0, ph), (0, pw)), mode="reflect")
    return items


def _predict(pred, items: np.ndarray, source: ModelInput, request: RefineRequest) -> np.ndarray:
    """``g(y) - y`` of the padded ``items``, float32 in [0, 1] units: the predictor once over
    tiles; out of memory, again with half the batch or tile. A non-finite output is an error."""
    dev, dtype = request.device, request.dtype
    tile, batch = plan_memory(pred, dev, dtype, *items.shape[-2:], request.tile, request.batch)
    work = device_copy(pred, dev, dtype)
    fn = network_fn(work, dev, dtype, source.replicate_to, False)
    try:
        (r1, r2), _, _ = retry_out_of_memory(
            lambda b, t: run_to_end(tile_apply_iter(fn, items, t, request.overlap, b)),
            batch,
            tile,
            min_tile=MIN_TILE,
            halve_tile=lambda t: halved_tile(t, ALIGN),
            device=dev,
        )
    finally:
        work = fn = None
        release_device_cache(dev, RELEASE_SHARE)  # the allocator reuses the predictor's blocks for the denoiser
    base = (r1 + r2).astype(np.float32)
    check_finite_output((base,), f"predictor {_predictor_name(pred)}", precision_name(dtype))
    return base


def _assemble(
    request: RefineRequest, plan: ChainPlan, chains: Chains, images: ResidualImages, source: ModelInput, den
) -> RefineResult:
    """The :class:`RefineResult` (without ``info``) from the chains' statistics: the mean and
    ``x_init`` as images (cast like the input with ``out_dtype='same'``), the standard
    deviation in input units (zero where the input was NaN). A non-finite output is an error."""
    mean_r = chains.stats.mean.cpu().numpy()
    std = images.to_units(chains.stats.std().cpu().numpy())
    name = _weights_name(den, type(den).__name__)
    check_finite_output((mean_r, std), f"denoiser {name}", precision_name(request.dtype))
    if source.nan is not None:
        std[source.nan] = 0
    mean = images.image(mean_r)
    x_init = images.image(np.zeros((1, 1, 1, 1), np.float32))
    if request.out_dtype == "same":
        mean, x_init = cast_like(mean, request.array.dtype), cast_like(x_init, request.array.dtype)
    else:
        mean, x_init = mean.astype(np.float32), x_init.astype(np.float32)
    samples = np.stack(chains.kept) if chains.kept is not None else None
    return RefineResult(
        mean=mean, std=images.plain(std), x_init=x_init, samples=samples, seeds=plan.seeds, axes=request.axes
    )


def _run_info(request: RefineRequest, plan: ChainPlan, chains: Chains, den, source: ModelInput) -> dict:
    """The ``info`` entries that say how the chains ran and where."""
    grid = chains.grid
    return {
        "sampler": request.sampler,
        "steps": request.schedule.steps,
        "samples": request.samples,
        "seed": request.seed,
        "in_flight": plan.in_flight,
        "clip": request.clip,
        "residual_scale": residual_scale(den),
        "schedule": request.schedule.describe(),
        "device": str(request.device),
        "state_device": str(plan.state_device),
        "device_info": describe(request.device),
        "precision": precision_name(request.dtype),
        "tile": grid.tile,
        "overlap": grid.overlap,
        "tiles": len(grid.ys) * len(grid.xs),
        "batch": chains.batch,
        "normalize": source.scaling.mode,
        "channel_mode": source.channel_mode,
    }


def _weights_name(module, default: str) -> str:
    """The name a module's weights record (``weights_info``), else ``default``."""
    return getattr(module, "weights_info", {}).get("name", default)


def _predictor_name(pred) -> str:
    """The predictor's name; a ``weights_info`` without one is a KeyError."""
    return pred.weights_info["name"] if hasattr(pred, "weights_info") else "XYDeblur"
