"""The engine's tuning parameters, checked once and the same way for :func:`~.restore.xydeblur`,
:func:`~napari_deblur.diffusion.refine.refine` and the dask entry points. numpy only.

Every refusal is a ``TypeError`` (wrong kind of value) or ``ValueError`` (right kind, out of
range) that names the parameter, repeats the value and lists the allowed forms. ``device``
and ``precision`` are checked by :mod:`.device`; ``normalize`` by
:func:`.intensity.check_normalize`.
"""

import numpy as np

from .intensity import check_normalize

MIN_TILE = 64


def whole_number(value, name: str, allowed: str) -> int:
    """``value`` as an int: an integer (not a bool) or a string of digits, else an error
    saying ``{name} must be {allowed}``."""
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    if isinstance(value, str):
        raise ValueError(f"{name} must be {allowed}, got {value!r}")
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be {allowed}, got {value!r}")
    return int(value)


def check_tile(tile):
    """``"auto"`` (``None`` too) or a tile side of at least :data:`MIN_TILE` pixels."""
    if tile is None or (isinstance(tile, str) and tile == "auto"):
        return "auto"
    allowed = f"'auto' or a whole number of pixels >= {MIN_TILE}"
    side = whole_number(tile, "tile", allowed)
    if side < MIN_TILE:
        raise ValueError(f"tile must be {allowed}, got {tile!r}")
    return side


def check_overlap(overlap) -> int:
    allowed = "a whole number of pixels >= 0"
    pixels = whole_number(overlap, "overlap", allowed)
    if pixels < 0:
        raise ValueError(f"overlap must be {allowed}, got {overlap!r}")
    return pixels


def check_batch(batch):
    """``"auto"`` (``None`` too) or at least 1 tile or plane per forward pass."""
    if batch is None or (isinstance(batch, str) and batch == "auto"):
        return "auto"
    allowed = "'auto' or a whole number >= 1"
    count = whole_number(batch, "batch", allowed)
    if count < 1:
        raise ValueError(f"batch must be {allowed}, got {batch!r}")
    return count


def check_parameters(tile="auto", overlap=0, batch="auto", normalize="auto") -> tuple:
    """``(tile, overlap, batch, normalize)`` checked and in their canonical forms."""
    return check_tile(tile), check_overlap(overlap), check_batch(batch), check_normalize(normalize)
