"""One diffusion refinement as the "Diffusion deblur" widget starts it, with no Qt in it.

:func:`run_diffusion` is the generator the widget hands to napari's ``thread_worker``. It
drives :func:`napari_deblur.diffusion.refine.refine_iter` and yields one
:class:`DiffusionTick` per diffusion step, so ``worker.quit()`` stops the run within one
step. Most ticks only count: a tick carries the preview images (the ``x0`` estimate and
the raw state ``z_t`` of the first sample in flight) at most every ``preview_interval``
seconds and on the very last step, so the main thread draws at most ~10 frames a second
however fast the steps come. The :class:`Trajectory` (every k-th step's ``x0`` of sample
0, within a frame count and memory budget) is collected here in the worker thread too.
It returns a :class:`DiffusionOutput` with ``mean`` and ``std``.

Scope "current slice" refines only the YX plane at the viewer's dims point, and reads and
outputs only that plane. The plane is taken *with its other axes kept as length 1*
(``image[2:3, :, :]`` rather than ``image[2]``), so every output (live layers, ``mean``,
``std``, trajectory, samples) has the input's dimensionality and sits on the right plane
through its ``translate`` (:mod:`napari_deblur.plugin.plane`): nothing the size of the
stack is allocated.
"""

import math
import time
from dataclasses import dataclass, field

import numpy as np

from .layers import symmetric_limit, upper_limit
from .plane import keepdims_index
from .readout import reference_metrics
from .running import job_generator

PREVIEW_INTERVAL = 0.1  # seconds between preview frames: at most ~10 redraws a second
TRAJECTORY_FRAMES = 100
TRAJECTORY_BYTES = 256 << 20


@dataclass
class DiffusionJob:
    data: object  # the layer's data (numpy or lazy), never written to
    axes: str  # engine axes of the whole layer
    model: tuple  # (predictor, denoiser): modules, bundled names or weights paths
    steps: int = 10
    samples: int = 1
    seed: int = 0
    sampler: str = "ddpm"
    options: dict = field(default_factory=dict)  # device, precision, tile
    index: tuple | None = None  # the plane (plane_index) for "current slice", None for the whole stack
    rgb: bool = False
    reference: object = None  # same shape as data, or None
    keep_samples: bool = False
    preview_interval: float = PREVIEW_INTERVAL
    max_frames: int = TRAJECTORY_FRAMES
    max_bytes: int = TRAJECTORY_BYTES


@dataclass
class DiffusionTick:
    """One finished diffusion step; ``x0``/``z_t`` (first sample in flight, the part's shape,
    float32) only on preview ticks, else None."""

    step: int
    steps: int
    done: int
    total: int
    message: str
    x0: np.ndarray | None = None
    z_t: np.ndarray | None = None
    z_limit: float = 1.0
    stage: str = "step"  # 'start' (before the first step), 'step', 'finish' (assembling)


@dataclass
class DiffusionOutput:
    mean: np.ndarray  # float32, the refined part: the whole array, or the plane with its other axes as 1
    std: np.ndarray  # float32, the same shape (RGB: without the colour axis)
    trajectory: np.ndarray  # (frames, *part shape), float32
    trajectory_steps: tuple  # the step of each frame
    samples: np.ndarray | None  # (N, *part shape) with keep_samples
    seeds: tuple
    index: tuple | None
    info: dict
    metrics: dict | None = None
    limits: dict = field(default_factory=dict)  # 'std': (0, upper)


class Trajectory:
    """Every k-th step's ``x0`` of sample 0, at most ``max_frames`` frames and ``max_bytes``.

    ``k`` is chosen up front from the step count and the size of one frame, so a long
    chain is thinned evenly instead of truncated; the last step is always kept.
    """

    def __init__(self, steps: int, frame_shape, max_frames=TRAJECTORY_FRAMES, max_bytes=TRAJECTORY_BYTES):
        frame_bytes = max(1, int(np.prod(frame_shape, dtype=np.int64)) * 4)
        self.capacity = max(1, min(int(max_frames), int(max_bytes) // frame_bytes))
        self.steps = int(steps)
        # k-th steps plus the last one must fit the capacity
        self.every = max(1, math.ceil(self.steps / max(1, self.capacity - 1))) if self.capacity > 1 else self.steps
        self.frames, self.at = [], []

    def wants(self, step: int) -> bool:
        return len(self.frames) < self.capacity and (step % self.every == 0 or step == self.steps)

    def add(self, step: int, frame: np.ndarray) -> None:
        if self.wants(step) and (not self.at or self.at[-1] != step):
            self.frames.append(np.asarray(frame, dtype=np.float32))
            self.at.append(int(step))

    def stack(self) -> np.ndarray:
        return np.stack(self.frames) if self.frames else np.zeros((0,), np.float32)


@job_generator
def run_diffusion(job: DiffusionJob):
    """Generator for ``thread_worker``: yields :class:`DiffusionTick`, returns :class:`DiffusionOutput`
    (a RuntimeError is raised as :class:`~napari_deblur.plugin.running.RunError`)."""
    from ..diffusion import refine as engine  # torch: only ever in the worker thread

    yield DiffusionTick(0, job.steps, 0, 1, "reading the image", stage="start")  # an early cancel stops here
    part_index = None if job.index is None else keepdims_index(job.index)
    part = np.asarray(job.data if part_index is None else job.data[part_index])
    trajectory = Trajectory(job.steps, part.shape, job.max_frames, job.max_bytes)
    gen = engine.refine_iter(
        part,
        job.model,
        steps=job.steps,
        samples=job.samples,
        seed=job.seed,
        sampler=job.sampler,
        axes=job.axes,
        keep_samples=job.keep_samples,
        **job.options,
    )
    last_preview = -math.inf
    while True:
        try:
            step = next(gen)
        except StopIteration as stop:
            result = stop.value
            break
        first = step.samples[0] == 0
        if first and trajectory.wants(step.step):
            trajectory.add(step.step, step.x0[0])
        tick = DiffusionTick(step.step, step.steps, step.done, step.total, step.message)
        now = time.perf_counter()
        if now - last_preview >= job.preview_interval or step.done == step.total:
            last_preview = now
            tick.x0 = np.asarray(step.x0[0], dtype=np.float32)
            tick.z_t = np.asarray(step.z_t[0], dtype=np.float32)
            tick.z_limit = symmetric_limit(tick.z_t)
        try:
            yield tick
        except GeneratorExit:
            gen.close()
            raise
    yield DiffusionTick(job.steps, job.steps, 1, 1, "assembling the layers", stage="finish")

    mean = np.asarray(result.mean, dtype=np.float32)
    std = np.asarray(result.std, dtype=np.float32)
    if job.rgb:  # one uncertainty value per pixel: the RMS over the colour channels
        colour = min(3, std.shape[-1])
        std = np.sqrt(np.mean(np.square(std[..., :colour]), axis=-1))

    metrics = None
    if job.reference is not None:
        yield DiffusionTick(job.steps, job.steps, 1, 1, "measuring against the reference", stage="finish")
        reference = np.asarray(job.reference if part_index is None else job.reference[part_index])
        metrics = reference_metrics(reference, part, mean, job.axes, job.rgb)

    return DiffusionOutput(
        mean=mean,
        std=std,
        trajectory=trajectory.stack(),
        trajectory_steps=tuple(trajectory.at),
        samples=result.samples,
        seeds=tuple(result.seeds),
        index=job.index,
        info=dict(result.info),
        metrics=metrics,
        limits={"std": (0.0, upper_limit(std))},
    )
