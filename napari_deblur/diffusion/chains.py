"""The diffusion chains of the refinement: how many run together, and the reverse diffusion itself.

:func:`plan_chains` sizes the run for the device (the denoiser's tile and batch, where the
state lives, how many chains are in flight); :func:`run_chains` runs every chain from its
noise ``z_T`` down to a residual sample, yielding a :class:`RefineStep` per step, and returns
the running mean and spread of the samples (:class:`Chains`).

Chain ``k`` draws all its noise from its own generator seeded with ``seeds[k]``, in the order
``z_T``, then each step's noise, so a sample does not depend on the chains run beside it.
The noise estimate of every step covers all tiles of the whole state
(:func:`~.tiles.predict_eps`), so neighbouring tiles see the same noise.
"""

from collections.abc import Generator
from dataclasses import dataclass
from types import SimpleNamespace

import numpy as np
import torch

from ..engine.device import free_memory
from ..engine.options import MIN_TILE
from ..engine.restore import plan_memory
from ..engine.runtime import RELEASE_SHARE, device_copy, release_device_cache, retry_out_of_memory
from .images import ResidualImages
from .pair import residual_scale
from .sampler import needs_noise
from .sampler import step as sampler_step
from .stats import RunningStats
from .tiles import TileGrid, denoiser_fn, halved_tile, predict_eps


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


# ---------------------------------------------------------------- the plan


@dataclass(frozen=True)
class ChainPlan:
    """How the chains run. ``shape``: one chain's state (items, channels, H, W), padded to
    ``multiple``; the denoiser runs on ``device`` in ``dtype`` over tiles of ``tile`` sharing
    ``overlap`` pixels, ``batch`` tiles per pass; ``in_flight`` chains run together; the state
    lives on ``state_device``, the running statistics in ``acc_dtype``; chain ``k`` is seeded
    with ``seeds[k]``."""

    shape: tuple
    multiple: int
    overlap: int
    device: torch.device
    dtype: torch.dtype
    tile: int
    batch: int
    in_flight: int
    state_device: torch.device
    acc_dtype: torch.dtype
    seeds: tuple

    @property
    def samples(self) -> int:
        return len(self.seeds)


def plan_chains(
    den,
    shape: tuple,
    compute,
    device: torch.device,
    dtype: torch.dtype,
    *,
    tile,
    batch,
    overlap: int,
    multiple: int,
    in_flight,
    seeds: tuple,
    serial_pixels: int,
) -> ChainPlan:
    """The :class:`ChainPlan` for ``len(seeds)`` chains of state ``shape`` (padded items) with the
    denoiser ``den`` on ``device``, from its free memory.

    ``tile`` and ``batch`` are sized like XYDeblur's (:func:`~napari_deblur.engine.restore.plan_memory`,
    from the denoiser's width) unless given. Statistics accumulate in float64 for a float64
    ``compute`` dtype (except on MPS). The state stays on a GPU between steps when it fits in
    30% of its free memory, else in host memory. ``in_flight="auto"``: on the CPU, one chain at
    a time once a chain has ``serial_pixels`` pixels (a denoiser pass over several batched
    large chains costs more there than one pass per chain); otherwise as many chains as the
    memory budget holds.
    """
    n_items, c_item, height, width = shape
    net_width = int((getattr(den, "config", None) or {}).get("width", 32))
    d_tile, d_batch = plan_memory(
        SimpleNamespace(config={"width": net_width}), device, dtype, height, width, tile, batch
    )
    chain_bytes = n_items * c_item * height * width * 4
    acc_dtype = torch.float64 if compute == np.float64 and device.type != "mps" else torch.float32
    fixed_bytes = chain_bytes * (2 + 2 * (2 if acc_dtype == torch.float64 else 1) + 1)
    state_device = torch.device("cpu")
    if device.type != "cpu" and fixed_bytes + 6 * chain_bytes < 0.3 * free_memory(device):
        state_device = device  # no host round trip per step
    samples = len(seeds)
    if in_flight == "auto" and device.type == "cpu" and n_items * height * width >= serial_pixels:
        in_flight = 1
    elif in_flight == "auto":
        budget = free_memory(state_device) * (0.3 if state_device.type != "cpu" else 0.25)
        if state_device.type == "cpu":
            budget = min(budget, 4 << 30)
        in_flight = int(max(1, min(samples, (budget - fixed_bytes) // (6 * chain_bytes))))
    return ChainPlan(
        shape=tuple(shape),
        multiple=multiple,
        overlap=int(overlap),
        device=device,
        dtype=dtype,
        tile=d_tile,
        batch=d_batch,
        in_flight=min(in_flight, samples),
        state_device=state_device,
        acc_dtype=acc_dtype,
        seeds=tuple(seeds),
    )


# ---------------------------------------------------------------- the run


@dataclass
class Chains:
    """What :func:`run_chains` leaves: the running ``stats`` of the residual samples (padded,
    [0, 1] units), every sample as an image when kept (``kept``, else None), and the tile
    ``grid`` and ``batch`` the denoiser ran with last (smaller than planned after running out
    of memory)."""

    stats: RunningStats
    kept: list | None
    grid: TileGrid
    batch: int


class NoiseEstimate:
    """The noise estimate of a whole state, tile by tile (:func:`~.tiles.predict_eps`); out of
    memory, again with half the batch or, at a batch of 1, half the tile. The tile and batch
    that fitted are kept for the following steps (``grid``, ``batch``)."""

    def __init__(self, fn, cond: torch.Tensor, plan: ChainPlan):
        self.fn, self.cond, self.plan = fn, cond, plan
        self.grid = self._grid(plan.tile)
        self.batch = plan.batch

    def _grid(self, tile: int) -> TileGrid:
        plan = self.plan
        return TileGrid(*plan.shape[2:], tile, plan.overlap, plan.multiple, plan.state_device)

    def __call__(self, z: torch.Tensor, alpha_bar: float) -> torch.Tensor:
        def attempt(per_batch, tile):
            if tile != self.grid.tile:
                self.grid = self._grid(tile)
            return predict_eps(self.fn, z, self.cond, self.plan.shape[0], alpha_bar, self.grid, per_batch)

        eps, self.batch, _ = retry_out_of_memory(
            attempt,
            self.batch,
            self.grid.tile,
            min_tile=MIN_TILE,
            halve_tile=lambda t: halved_tile(t, self.plan.multiple),
            device=self.plan.device,
        )
        return eps

    def close(self) -> None:
        """Drop the network and the condition (the grid and batch stay readable)."""
        self.fn = self.cond = None


def run_chains(
    den,
    plan: ChainPlan,
    items: np.ndarray,
    images: ResidualImages,
    *,
    schedule,
    sampler: str,
    clip,
    keep_samples: bool,
    replicate_to: int,
) -> Generator[RefineStep, None, Chains]:
    """Run every chain of ``plan`` with the denoiser ``den``, conditioned on the padded
    ``items`` and ``x_init = items + images.base``, yielding a :class:`RefineStep` per step;
    returns the :class:`Chains`.

    The chains run on ``residual_scale(den)`` times the residual (divided out of every
    output); ``clip`` bounds ``x0_hat`` in [0, 1] units (None: no clipping). ``schedule`` and
    ``sampler`` are those of :mod:`.schedule` and :mod:`.sampler`.
    """
    n_items, c_item = plan.shape[:2]
    cond = torch.from_numpy(np.concatenate([items, items + images.base], axis=1)).to(plan.state_device)
    stats = RunningStats(plan.shape, plan.acc_dtype, plan.state_device)
    kept = [] if keep_samples else None
    work = device_copy(den, plan.device, plan.dtype)
    rs = residual_scale(den)
    z_clip = clip * rs if clip is not None else None
    estimate = NoiseEstimate(denoiser_fn(work, plan.device, plan.dtype, c_item, replicate_to), cond, plan)
    total = schedule.steps * -(-plan.samples // plan.in_flight)
    previews = _Previews(images, n_items, rs)
    try:
        for first in range(0, plan.samples, plan.in_flight):
            group = tuple(range(first, min(plan.samples, first + plan.in_flight)))
            done = first // plan.in_flight * schedule.steps
            z = yield from _run_group(group, plan, estimate, schedule, sampler, z_clip, previews, done, total)
            for s in range(len(group)):
                chain = z[s * n_items : (s + 1) * n_items] / rs
                stats.update(chain)
                if kept is not None:
                    kept.append(images.image(chain.float().cpu().numpy()).astype(np.float32))
            z = None
    finally:
        work = cond = None
        estimate.close()
        release_device_cache(plan.device, RELEASE_SHARE)
    return Chains(stats, kept, estimate.grid, estimate.batch)


def _run_group(
    group: tuple,
    plan: ChainPlan,
    estimate: NoiseEstimate,
    schedule,
    sampler,
    z_clip,
    previews: "_Previews",
    done: int,
    total: int,
) -> Generator[RefineStep, None, torch.Tensor]:
    """The chains ``group`` from ``z_T`` to ``z_0``, stacked on the first axis (``len(group)``
    times the items), yielding a :class:`RefineStep` per step; returns the final state."""
    generators = [torch.Generator(device=plan.state_device).manual_seed(int(plan.seeds[s])) for s in group]

    def draw() -> torch.Tensor:
        return torch.cat([torch.randn(plan.shape, generator=g, device=plan.state_device) for g in generators])

    z = draw()
    for i in range(schedule.steps, 0, -1):
        eps = estimate(z, float(schedule.alpha_bars[i]))
        noise = draw() if needs_noise(sampler, i) else None
        z, x0 = sampler_step(sampler, z, eps, schedule, i, noise, z_clip)
        del eps, noise
        step = schedule.steps - i + 1
        report = RefineStep(
            step, schedule.steps, previews.state(z), previews.estimate(x0), samples=group, done=done + step, total=total
        )
        del x0
        yield report
        del report
    return z


class _Previews:
    """The lazy previews of a :class:`RefineStep`: zero-argument callables that render a state
    of stacked chains as images when first read."""

    def __init__(self, images: ResidualImages, n_items: int, residual_scale: float):
        self.images, self.n_items, self.rs = images, n_items, residual_scale

    def _split(self, t: torch.Tensor) -> list:
        """(k * n_items, ...) tensor -> list of k numpy chains."""
        a = t.detach().float().cpu().numpy()
        return [a[s * self.n_items : (s + 1) * self.n_items] for s in range(a.shape[0] // self.n_items)]

    def estimate(self, x0: torch.Tensor):
        """``g(y) + x0_hat`` per chain, in the input's units and layout."""
        return lambda: np.stack([self.images.image(r / self.rs).astype(np.float32) for r in self._split(x0)])

    def state(self, z: torch.Tensor):
        """The raw state per chain, in the input's layout."""
        return lambda: np.stack([self.images.plain(self.images.cut(r)) for r in self._split(z)])
