"""The arguments of a diffusion refinement, checked once before any work.

:func:`check_request` validates :func:`~.refine.refine_iter`'s arguments in a fixed order
(the first bad one raises its TypeError or ValueError) and returns them as a
:class:`RefineRequest`: the image as an array and in the engine's (batch, channel, Y, X)
layout, the schedule, the device and dtype, and the other settings.
"""

from dataclasses import dataclass

import numpy as np

from ..engine.axes import Layout, normalize_axes, to_bcyx
from ..engine.device import pick_device, pick_dtype
from ..engine.options import check_parameters
from ..engine.restore import check_image
from .sampler import check_sampler
from .schedule import Schedule, make_schedule


@dataclass
class RefineRequest:
    """:func:`~.refine.refine_iter`'s arguments, checked: the image (``array``, and as ``bcyx`` with
    its ``layout``), the schedule, the device and dtype, and the other settings."""

    array: np.ndarray
    axes: str
    axes_given: bool
    bcyx: np.ndarray
    layout: Layout
    schedule: Schedule
    samples: int
    seed: int
    sampler: str
    clip: float | None
    in_flight: int | str
    tile: int | str
    overlap: int
    batch: int | str
    normalize: object
    device: object
    dtype: object
    keep_samples: bool
    out_dtype: str


def check_request(
    image,
    *,
    axes,
    steps,
    samples,
    seed,
    sampler,
    device,
    precision,
    tile,
    overlap,
    batch,
    normalize,
    clip,
    keep_samples,
    in_flight,
    out_dtype,
) -> RefineRequest:
    """The checked :class:`RefineRequest`, or the TypeError/ValueError of the first bad argument."""
    array = check_image(image)
    axes_given = axes is not None
    axes = normalize_axes(axes, array.shape)
    check_sampler(sampler)
    schedule = make_schedule(steps)
    samples = positive_int(samples, "samples")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
    if out_dtype not in ("same", "float32"):
        raise ValueError(f"out_dtype must be 'same' or 'float32', got {out_dtype!r}")
    if in_flight != "auto":
        in_flight = positive_int(in_flight, "in_flight")
    if clip is not None and not clip > 0:
        raise ValueError(f"clip must be positive or None, got {clip!r}")
    tile, overlap, batch, normalize = check_parameters(tile, overlap, batch, normalize)
    dev = pick_device(device)
    dtype = pick_dtype(precision, dev)
    bcyx, layout = to_bcyx(array, axes)
    h, w = bcyx.shape[-2:]
    if h < 4 or w < 4:
        raise ValueError(f"the image is too small to deblur: {h}x{w} pixels in Y and X (at least 4x4)")
    return RefineRequest(
        array,
        axes,
        axes_given,
        bcyx,
        layout,
        schedule,
        samples,
        int(seed),
        sampler,
        clip,
        in_flight,
        tile,
        overlap,
        batch,
        normalize,
        dev,
        dtype,
        keep_samples,
        out_dtype,
    )


def positive_int(value, name) -> int:
    """``value`` as an int, or a ValueError naming ``name`` unless it is a positive integer."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)
