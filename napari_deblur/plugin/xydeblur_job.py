"""One XYDeblur run as the widget starts it, with no Qt in it.

:func:`run_job` is the generator the widget hands to napari's ``thread_worker``: it
yields the engine's :class:`~napari_deblur.engine.restore.Progress` (one per batch of
tiles, so ``worker.quit()`` stops it between tiles) and returns a :class:`JobOutput`
with the layers' data, the colour shift of RGB input and the reference metrics.
Everything heavy (reading a lazy array, the network, copies, statistics) happens
here, in the worker thread, so napari stays responsive.

Scope "current slice": only the YX plane at the viewer's dims point is restored (all
channels), and only that plane is read and output: ``restored``, the residuals and the
chroma are the plane with the input's other axes kept as 1, and the widget places them
on the plane with a ``translate`` (:mod:`napari_deblur.plugin.plane`). Nothing the size
of the stack is allocated, however large the stack (numpy or dask).

Lazy runs (:func:`lazy_restored`, for dask layers or layers larger than
:data:`LAZY_THRESHOLD`) do no work here at all: they return a dask array
(:func:`napari_deblur.lazy.xydeblur_lazy`) that napari restores plane by plane as
the planes are drawn.
"""

from dataclasses import dataclass, field

import numpy as np

from .axes import sliced_axes
from .layers import symmetric_limit, upper_limit
from .plane import part_shape
from .readout import compute_shift, reference_metrics
from .running import job_generator

LAZY_THRESHOLD = 1 << 30  # bytes: larger in-memory layers are offered the lazy option too


def can_be_lazy(data) -> bool:
    """True for a dask array, or any array larger than :data:`LAZY_THRESHOLD` bytes."""
    if is_dask(data):
        return True
    nbytes = getattr(data, "nbytes", None)
    return nbytes is not None and nbytes > LAZY_THRESHOLD


def lazy_restored(job: "Job", normalize="auto"):
    """(dask array of the restored layer, the Scaling every plane shares) for ``job``.

    Restores nothing: percentile scaling reads a few planes of the input
    (:func:`napari_deblur.lazy.lazy_scaling`); every plane is restored when computed.
    """
    from ..lazy import lazy_scaling, xydeblur_lazy

    options = {k: v for k, v in job.options.items() if k in ("device", "precision", "tile")}
    scaling = lazy_scaling(job.data, job.model, axes=job.axes, normalize=normalize)
    return xydeblur_lazy(job.data, job.model, axes=job.axes, scaling=scaling, **options), scaling


@dataclass
class Job:
    data: object  # the layer's data (numpy or lazy), never written to
    axes: str  # engine axes of the whole layer
    model: object  # a bundled model name or an XYDeblur instance
    options: dict = field(default_factory=dict)  # device, precision, tile
    index: tuple | None = None  # the plane for "current slice", None for the whole stack
    rgb: bool = False
    reference: object = None  # same shape as data, or None
    region: np.ndarray | None = None  # (Y, X) mask for the colour shift, None for all


@dataclass
class JobOutput:
    restored: np.ndarray  # the input's dtype: the whole array, or the plane with its other axes as 1
    r_hor: np.ndarray  # the same shape, float32
    r_ver: np.ndarray
    chroma: np.ndarray | None  # the same less the colour axis, RGB input only
    part: np.ndarray  # what was restored, as the engine saw it: the plane (squeezed) or the whole array
    part_r_hor: np.ndarray
    part_r_ver: np.ndarray
    part_axes: str
    index: tuple | None
    info: dict
    shift: object = None  # ColorShift of RGB input
    shift_where: str = ""
    metrics: dict | None = None
    limits: dict = field(default_factory=dict)  # contrast limits: 'residual' (+-), 'chroma' (0..)


def is_dask(data) -> bool:
    """True for a dask array (checked by its type's module, without importing dask)."""
    return type(data).__module__.startswith("dask.")


@job_generator
def run_job(job: Job):
    """Generator for ``thread_worker``: yields Progress, returns a :class:`JobOutput`
    (a RuntimeError is raised as :class:`~napari_deblur.plugin.running.RunError`)."""
    from ..engine.restore import Progress, xydeblur_iter  # torch: only ever in the worker thread

    index = job.index
    yield Progress(0, 1, "reading the image")  # a cancel before the model loads takes effect here
    part = np.asarray(job.data if index is None else job.data[index])
    part_axes = job.axes if index is None else sliced_axes(job.axes, index)
    result = yield from xydeblur_iter(part, job.model, axes=part_axes, **job.options)
    yield Progress(1, 1, "assembling the layers")

    shape = part.shape if index is None else part_shape(job.data.shape, index)  # the plane keeps its axes as 1
    restored, r_hor, r_ver = (np.reshape(a, shape) for a in (result.restored, result.r_hor, result.r_ver))
    shift, where, chroma = None, "", None
    if job.rgb:
        shift, where = compute_shift(part, result.r_hor, result.r_ver, job.region)
        chroma = np.reshape(shift.chroma_sum, shape[:-1])

    limits = {"residual": symmetric_limit(result.r_hor, result.r_ver)}
    if chroma is not None:
        limits["chroma"] = upper_limit(shift.chroma_sum)
    metrics = None
    if job.reference is not None:
        yield Progress(1, 1, "measuring against the reference")
        reference = np.asarray(job.reference if index is None else job.reference[index])
        metrics = reference_metrics(reference, part, result.restored, part_axes, job.rgb)

    return JobOutput(
        restored=restored,
        r_hor=r_hor,
        r_ver=r_ver,
        chroma=chroma,
        part=part,
        part_r_hor=result.r_hor,
        part_r_ver=result.r_ver,
        part_axes=part_axes,
        index=index,
        info=dict(result.info),
        shift=shift,
        shift_where=where,
        metrics=metrics,
        limits=limits,
    )
