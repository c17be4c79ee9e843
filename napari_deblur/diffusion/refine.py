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
to RGB), RGBA alpha and NaN pixels are those of :func:`napari_deblur.engine.restore.xydeblur_iter`,
whose helpers this module uses.

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
from types import SimpleNamespace

import numpy as np
import torch

from ..engine.axes import from_bcyx, normalize_axes, to_bcyx
from ..engine.device import describe, free_memory, pick_device, pick_dtype, precision_name
from ..engine.intensity import cast_like
from ..engine.options import MIN_TILE, check_parameters
from ..engine.restore import DEFAULT_OVERLAP, check_finite_output, check_image, model_items, plan_memory
from ..engine.runtime import (
    RELEASE_SHARE,
    device_copy,
    network_fn,
    release_device_cache,
    retry_out_of_memory,
    run_to_end,
)
from ..engine.tiling import tile_apply_iter
from ..models.registry import default_preset
from .pair import residual_scale, resolve_models, size_multiple
from .sampler import check_sampler, needs_noise
from .sampler import step as sampler_step
from .schedule import make_schedule
from .stats import RunningStats
from .tiles import TileGrid, denoiser_fn, predict_eps

DEFAULT_STEPS = 100
DEFAULT_CLIP = 1.0
CPU_SERIAL_PIXELS = 128 * 256  # on the CPU, chains at least this large run one at a time


class RefineStep:
    """One finished diffusion step of the samples in flight.

    ``step`` of ``steps`` (1 after the first step, ``steps`` after the last); ``samples``
    are the indices of the samples in flight. ``x0`` is the preview ``g(y) + x0_hat`` in
    the input's layout and units, float32, with a leading axis over the samples in flight:
    shape ``(len(samples), *image.shape)``; ``z_t`` is the raw diffusion state after the
    step (the residual in the network's [0, 1] units times the denoiser's
    ``residual_scale``), same shape. Both are computed when
    first read, so a consumer that ignores them costs nothing. ``done``/``total``,
    ``fraction`` and ``message`` count steps over all samples, like
    :class:`~napari_deblur.engine.restore.Progress`.
    """

    def __init__(self, step, steps, z_t, x0, samples=(0,), done=None, total=None):
        self.step, self.steps = int(step), int(steps)
        self._z_t, self._x0 = z_t, x0  # arrays, or zero-argument callables evaluated on first access
        self.samples = tuple(samples)
        self.done = self.step if done is None else int(done)
        self.total = self.steps if total is None else int(total)

    @property
    def z_t(self) -> np.ndarray:
        if callable(self._z_t):
            self._z_t = self._z_t()
        return self._z_t

    @property
    def x0(self) -> np.ndarray:
        if callable(self._x0):
            self._x0 = self._x0()
        return self._x0

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0

    @property
    def message(self) -> str:
        first, last = self.samples[0], self.samples[-1]
        which = f"sample {first + 1}" if first == last else f"samples {first + 1}-{last + 1}"
        return f"step {self.step}/{self.steps}, {which}"

    def __repr__(self):
        return f"RefineStep(step={self.step}, steps={self.steps}, samples={self.samples})"


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


def _generator(device, seed):
    return torch.Generator(device=device).manual_seed(int(seed))


def sample_seeds(seed: int, count: int) -> tuple:
    """The per-sample seeds derived from one base seed (sample k depends on (seed, k) only)."""
    return tuple(int(np.random.SeedSequence([seed, k]).generate_state(1)[0]) for k in range(count))


def _positive_int(value, name) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


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
    array = check_image(image)
    axes_given = axes is not None
    axes = normalize_axes(axes, array.shape)
    check_sampler(sampler)
    schedule = make_schedule(steps)
    samples = _positive_int(samples, "samples")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if out_dtype not in ("same", "float32"):
        raise ValueError(f"out_dtype must be 'same' or 'float32', got {out_dtype!r}")
    if in_flight != "auto":
        in_flight = _positive_int(in_flight, "in_flight")
    if clip is not None and not clip > 0:
        raise ValueError(f"clip must be positive or None, got {clip!r}")
    tile, overlap, batch, normalize = check_parameters(tile, overlap, batch, normalize)
    dev = pick_device(device)
    dtype = pick_dtype(precision, dev)
    bcyx, layout = to_bcyx(array, axes)
    n, c, h, w = bcyx.shape
    if h < 4 or w < 4:
        raise ValueError(f"the image is too small to deblur: {h}x{w} pixels in Y and X (at least 4x4)")

    choice = default_preset(c, axes, array.dtype, axes_given=axes_given) if model is None else None
    pred, den = resolve_models(model, predictor, channels=c, preset=choice.preset if choice else None)
    mc = pred.channels
    colour, replicate_to, compute, nan, scaling, items = model_items(
        bcyx, layout, array.dtype, mc, normalize, verb="refine"
    )
    values = bcyx[:, :colour].astype(compute)  # the image in input units, for the previews
    n_items, c_item = items.shape[:2]
    multiple = size_multiple(den)
    ph, pw = -h % multiple, -w % multiple
    if ph or pw:
        items = np.pad(items, ((0, 0), (0, 0), (0, ph), (0, pw)), mode="reflect")
    H, W = h + ph, w + pw

    # 1. the predictor, once: x_init = g(y) in [0, 1] units
    p_tile, p_batch = plan_memory(pred, dev, dtype, H, W, tile, batch)
    pwork = device_copy(pred, dev, dtype)
    pfn = network_fn(pwork, dev, dtype, replicate_to, False)
    try:
        (r1, r2), p_batch, p_tile = retry_out_of_memory(
            lambda b, t: run_to_end(tile_apply_iter(pfn, items, t, overlap, b)), p_batch, p_tile,
            min_tile=MIN_TILE, halve_tile=lambda t: _halved(t, 4), device=dev)
    finally:
        pwork = pfn = None
        release_device_cache(dev, RELEASE_SHARE)  # the allocator reuses the predictor's blocks for the denoiser
    base = (r1 + r2).astype(np.float32)  # g(y) - y in [0, 1] units, padded
    pred_name = pred.weights_info["name"] if hasattr(pred, "weights_info") else "XYDeblur"
    check_finite_output((base,), f"predictor {pred_name}", precision_name(dtype))
    x_init_items = items + base
    del r1, r2

    def residual_units(r):
        """(n_items, c_item, H, W) [0, 1]-unit residual -> (n, colour, h, w) input units."""
        r = np.asarray(r)[:, :, :h, :w].reshape(n, colour, h, w)
        return scaling.residual_to_units(r.astype(compute))

    def with_alpha(bc, alpha):
        if layout.rgba:
            bc = np.concatenate([bc, alpha.astype(bc.dtype)], axis=1)
        return np.ascontiguousarray(from_bcyx(bc, layout))

    alpha = bcyx[:, colour:] if layout.rgba else None
    no_alpha = np.zeros((n, 1, h, w), compute) if layout.rgba else None

    def image_of(r):
        """An image in input units and layout (float) from a [0, 1]-unit residual of x_init."""
        return with_alpha(values + residual_units(base + r), alpha)

    # 2. the denoiser, step by step over all tiles
    width = int((getattr(den, "config", None) or {}).get("width", 32))
    d_tile, d_batch = plan_memory(SimpleNamespace(config={"width": width}), dev, dtype, H, W, tile, batch)
    chain_bytes = n_items * c_item * H * W * 4
    acc_dtype = torch.float64 if compute == np.float64 and dev.type != "mps" else torch.float32
    fixed_bytes = chain_bytes * (2 + 2 * (2 if acc_dtype == torch.float64 else 1) + 1)
    state_dev = torch.device("cpu")
    if dev.type != "cpu" and fixed_bytes + 6 * chain_bytes < 0.3 * free_memory(dev):
        state_dev = dev  # the state stays on the GPU between steps: no host round trip per step
    if in_flight == "auto" and dev.type == "cpu" and n_items * H * W >= CPU_SERIAL_PIXELS:
        # measured by `napari-deblur bench` (2 threads, 256x256 and 512x512): a denoiser pass over
        # 8 batched chains costs more than 8 passes over one, so large CPU chains run one at a time
        in_flight = 1
    elif in_flight == "auto":
        budget = free_memory(state_dev) * (0.3 if state_dev.type != "cpu" else 0.25)
        if state_dev.type == "cpu":
            budget = min(budget, 4 << 30)
        in_flight = int(max(1, min(samples, (budget - fixed_bytes) // (6 * chain_bytes))))
    in_flight = min(in_flight, samples)
    seeds = sample_seeds(int(seed), samples)
    grid = TileGrid(H, W, d_tile, int(overlap), multiple, state_dev)

    cond = torch.from_numpy(np.concatenate([items, x_init_items], axis=1)).to(state_dev)
    stats = RunningStats((n_items, c_item, H, W), acc_dtype, state_dev)
    kept = [] if keep_samples else None
    work = device_copy(den, dev, dtype)
    rs = residual_scale(den)  # the chains run on rs * residual; divided out of every output
    z_clip = clip * rs if clip is not None else None
    fn = denoiser_fn(work, dev, dtype, c_item, replicate_to)
    total, done = schedule.steps * -(-samples // in_flight), 0
    shape = (n_items, c_item, H, W)

    def split(t):
        """(k * n_items, ...) tensor -> list of k numpy chains."""
        a = t.detach().float().cpu().numpy()
        return [a[s * n_items : (s + 1) * n_items] for s in range(a.shape[0] // n_items)]

    def preview_x0(x0):
        return lambda: np.stack([image_of(r / rs).astype(np.float32) for r in split(x0)])

    def preview_z(z):
        def render():
            out = []
            for r in split(z):
                bc = np.asarray(r)[:, :, :h, :w].reshape(n, colour, h, w)
                out.append(with_alpha(bc, no_alpha).astype(np.float32))
            return np.stack(out)

        return render

    def attempt_eps(per_batch, tile):
        """The noise estimate of this step, on a grid of ``tile`` (rebuilt when a smaller tile
        follows running out of memory)."""
        nonlocal grid
        if tile != grid.tile:
            grid = TileGrid(H, W, tile, int(overlap), multiple, state_dev)
        return predict_eps(fn, z, cond, n_items, level, grid, per_batch)

    def halve_d_tile(tile):
        return _halved(tile, multiple)

    try:
        for first in range(0, samples, in_flight):
            group = tuple(range(first, min(samples, first + in_flight)))
            gens = [_generator(state_dev, seeds[s]) for s in group]
            z = torch.cat([torch.randn(shape, generator=g, device=state_dev) for g in gens])
            for i in range(schedule.steps, 0, -1):
                level = float(schedule.alpha_bars[i])
                eps, d_batch, _ = retry_out_of_memory(attempt_eps, d_batch, grid.tile, min_tile=MIN_TILE,
                                                      halve_tile=halve_d_tile, device=dev)
                noise = None
                if needs_noise(sampler, i):
                    noise = torch.cat([torch.randn(shape, generator=g, device=state_dev) for g in gens])
                z, x0 = sampler_step(sampler, z, eps, schedule, i, noise, z_clip)
                del eps, noise
                done += 1
                report = RefineStep(schedule.steps - i + 1, schedule.steps, preview_z(z), preview_x0(x0),
                                    samples=group, done=done, total=total)
                del x0
                yield report
                del report
            for s in range(len(group)):
                chain = z[s * n_items : (s + 1) * n_items] / rs
                stats.update(chain)
                if kept is not None:
                    kept.append(image_of(chain.float().cpu().numpy()).astype(np.float32))
            z = None
    finally:
        work = fn = cond = None
        release_device_cache(dev, RELEASE_SHARE)

    mean_r = stats.mean.cpu().numpy()
    std = residual_units(stats.std().cpu().numpy())
    den_info = getattr(den, "weights_info", {})
    check_finite_output((mean_r, std), f"denoiser {den_info.get('name', type(den).__name__)}", precision_name(dtype))
    if nan is not None:
        std[nan] = 0
    mean = image_of(mean_r)
    x_init = image_of(np.zeros((1, 1, 1, 1), np.float32))
    if out_dtype == "same":
        mean, x_init = cast_like(mean, array.dtype), cast_like(x_init, array.dtype)
    else:
        mean, x_init = mean.astype(np.float32), x_init.astype(np.float32)
    info = {
        "model": den_info.get("name", type(den).__name__),
        "model_choice": choice.describe(den_info.get("name", "?")) if choice else "given by the caller",
        "predictor": pred.weights_info["name"] if hasattr(pred, "weights_info") else "XYDeblur",
        "sampler": sampler,
        "steps": schedule.steps,
        "samples": samples,
        "seed": int(seed),
        "in_flight": in_flight,
        "clip": clip,
        "residual_scale": rs,
        "schedule": schedule.describe(),
        "device": str(dev),
        "state_device": str(state_dev),
        "device_info": describe(dev),
        "precision": precision_name(dtype),
        "tile": grid.tile,
        "overlap": grid.overlap,
        "tiles": len(grid.ys) * len(grid.xs),
        "batch": d_batch,
        "normalize": scaling.mode,
        "channel_mode": "joint" if mc == colour else ("replicated" if replicate_to else "per-channel"),
        "seconds": time.perf_counter() - started,
    }
    return RefineResult(
        mean=mean,
        std=with_alpha(std, no_alpha).astype(np.float32),
        x_init=x_init,
        samples=np.stack(kept) if kept is not None else None,
        seeds=seeds,
        info=info,
        axes=axes,
    )


def _halved(tile, multiple):
    """After running out of memory at a batch of 1: half the tile, a multiple of ``multiple``."""
    return max(MIN_TILE, tile // 2 // multiple * multiple)


def refine(image, model=None, **kwargs) -> RefineResult:
    """Refine ``image``; the arguments are those of :func:`refine_iter`."""
    return run_to_end(refine_iter(image, model, **kwargs))
