"""Intensity scaling between the user's units and the [0, 1] the networks see. numpy only.

Modes (``normalize=``):

* ``"dtype"``: the dtype's range: uint8 /255, uint16 /65535, signed ints their
  full range, floats are taken as already in [0, 1].
* ``"percentile"`` or ``(lo, hi)``: the ``lo``-th percentile maps to 0 and the
  ``hi``-th to 1 (default 0.1 and 99.9), per channel or jointly.
* a :class:`Scaling` (already fitted, e.g. once for a whole lazy stack by
  :func:`napari_deblur.lazy.lazy_scaling`): used as it is, so every chunk gets the same map.
* ``"auto"`` (default): ``"dtype"`` for uint8 and for floats within [0, 1],
  ``"percentile"`` for everything else (uint16 microscopy that fills 12 bits,
  floats in camera units, ...).

Only the network's input is scaled; results are mapped back to input units.
"""

from dataclasses import dataclass

import numpy as np

DEFAULT_PERCENTILES = (0.1, 99.9)
_MAX_SAMPLES = 1 << 22  # percentiles from at most ~4M values per channel


@dataclass(frozen=True)
class Scaling:
    """Per-channel affine map: unit = (value - offset) / scale."""

    offset: np.ndarray  # (C,)
    scale: np.ndarray  # (C,), > 0
    mode: str

    def to_unit(self, x: np.ndarray) -> np.ndarray:
        """(B, C, H, W) in input units -> a new float32 array around [0, 1].

        Integers and float32 are mapped in float32 (two passes, no float64 temporaries: exact
        for integer offsets up to 2**24); float64 in float64, so large offsets keep their
        precision."""
        if x.dtype == np.float64:
            off, sc = self.offset.reshape(1, -1, 1, 1), self.scale.reshape(1, -1, 1, 1)
            return ((x - off) / sc).astype(np.float32)
        off = self.offset.astype(np.float32).reshape(1, -1, 1, 1)
        unit = np.subtract(x, off, dtype=np.float32)
        unit /= self.scale.astype(np.float32).reshape(1, -1, 1, 1)
        return unit

    def residual_to_units(self, r: np.ndarray) -> np.ndarray:
        """A difference in [0, 1] units back to input units (scale only)."""
        return r * self.scale.reshape(1, -1, 1, 1).astype(r.dtype)


NORMALIZE_FORMS = "'auto', 'dtype', 'percentile', (lo, hi) percentiles or a Scaling"


def check_normalize(normalize):
    """``normalize`` in its canonical form: one of the mode strings, a :class:`Scaling`, or
    ``(lo, hi)`` percentiles as two floats with 0 <= lo < hi <= 100; else a TypeError or
    ValueError that lists the allowed forms."""
    if isinstance(normalize, Scaling):
        return normalize
    if isinstance(normalize, str):
        if normalize in ("auto", "dtype", "percentile"):
            return normalize
        raise ValueError(f"normalize must be {NORMALIZE_FORMS}, got {normalize!r}")
    if not isinstance(normalize, (tuple, list, np.ndarray)):
        raise TypeError(f"normalize must be {NORMALIZE_FORMS}, got {normalize!r}")
    given = tuple(normalize.tolist() if isinstance(normalize, np.ndarray) else normalize)
    numbers = len(given) == 2 and all(
        isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, (bool, np.bool_)) for v in given
    )
    if not numbers:
        raise ValueError(f"normalize as percentiles must be two numbers (lo, hi), 0 <= lo < hi <= 100, got {given!r}")
    lo, hi = float(given[0]), float(given[1])
    if not 0 <= lo < hi <= 100:  # NaN fails too
        raise ValueError(f"normalize percentiles must satisfy 0 <= lo < hi <= 100, got {given!r}")
    return lo, hi


def _subsample(values: np.ndarray) -> np.ndarray:
    step = max(1, values.size // _MAX_SAMPLES)
    return values.reshape(-1)[::step]


def fit_scaling(x: np.ndarray, dtype: np.dtype, normalize="auto", per_channel: bool = True) -> Scaling:
    """Choose the scaling for (B, C, H, W) data ``x`` whose original dtype was ``dtype``.

    ``x`` may contain NaN (ignored). ``per_channel=False`` uses one range for all
    channels, which keeps the colour balance of RGB photographs.
    """
    dtype = np.dtype(dtype)
    c = x.shape[1]
    normalize = check_normalize(normalize)
    if isinstance(normalize, Scaling):  # fitted elsewhere (e.g. once for a lazy stack): used as it is
        if normalize.offset.shape != (c,) or normalize.scale.shape != (c,):
            raise ValueError(f"the scaling has {normalize.offset.size} channel(s), the image {c}")
        return normalize
    mode = normalize
    if isinstance(normalize, str):
        if normalize == "auto":
            if dtype == np.uint8:
                mode = "dtype"
            elif dtype.kind == "f":
                lo, hi = np.nanmin(x), np.nanmax(x)
                mode = "dtype" if lo >= 0 and hi <= 1 else "percentile"
            else:
                mode = "percentile"
    if mode == "dtype":
        if dtype.kind in "ui":
            info = np.iinfo(dtype)
            offset, scale = float(info.min), float(info.max) - float(info.min)
        else:
            offset, scale = 0.0, 1.0
        return Scaling(np.full(c, offset), np.full(c, scale), "dtype")

    lo_p, hi_p = DEFAULT_PERCENTILES if mode == "percentile" else mode
    groups = [x[:, i] for i in range(c)] if per_channel else [x]
    los, his = [], []
    for g in groups:
        v = _subsample(g)
        v = v[np.isfinite(v)]
        lo, hi = np.percentile(v, [lo_p, hi_p]) if v.size else (0.0, 1.0)
        if not hi > lo:  # a flat channel: keep its units
            hi = lo + (abs(lo) if lo else 1.0)
        los.append(lo)
        his.append(hi)
    if not per_channel:
        los, his = los * c, his * c
    offset = np.asarray(los, dtype=np.float64)
    return Scaling(offset, np.asarray(his, dtype=np.float64) - offset, f"percentile({lo_p},{hi_p})")


def work_dtype(dtype) -> np.dtype:
    """The float dtype the engine does its arithmetic in for images of ``dtype``: float64 for
    float64 and for integers wider than 16 bits (float32 holds only 24 bits exactly: a
    uint32 pixel would lose its last digits), float32 for everything else."""
    dtype = np.dtype(dtype)
    wide = dtype == np.float64 or (dtype.kind in "ui" and dtype.itemsize > 2)
    return np.dtype(np.float64 if wide else np.float32)


def cast_like(values: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Float values back to ``dtype``: integers rounded and clipped to the dtype's range
    exactly (a value at or beyond the largest int64/uint64, whose float is 2**63/2**64,
    becomes that largest integer, never wraps around); floats clipped to the finite range of
    a narrower float (float16 ends at 65504), NaN kept."""
    dtype = np.dtype(dtype)
    if dtype.kind == "f" and values.dtype.kind == "f" and np.finfo(dtype).max < np.finfo(values.dtype).max:
        limit = np.finfo(dtype).max  # a narrower float saturates at its finite range instead of turning inf
        return np.clip(values, -limit, limit).astype(dtype)
    if dtype.kind not in "ui":
        return values.astype(dtype, copy=False)
    info = np.iinfo(dtype)
    rounded = np.rint(values.astype(np.float64, copy=False) if dtype.itemsize > 2 else values)
    top = float(info.max)
    inexact_top = int(top) != info.max  # 64-bit types: float(max) rounds up to 2**63 or 2**64
    high = rounded >= top if inexact_top else None
    np.clip(rounded, info.min, top, out=rounded)
    if high is not None:
        rounded[high] = 0  # cast below, then set to the exact largest integer
    out = rounded.astype(dtype)
    if high is not None:
        out[high] = info.max
    return out


def add_rounded(image: np.ndarray, delta: np.ndarray) -> np.ndarray:
    """``image`` (integers) plus ``delta`` (floats) rounded to integers, exactly, saturated at
    the dtype's bounds. For 64-bit integers, whose large values float64 cannot hold to the
    last digit (near 2**63 it steps by 1024). The sum runs in unsigned 64-bit arithmetic on
    order-preserving coordinates (a signed value plus 2**63), each step clipped to the room
    left before the bound, so nothing overflows."""
    dtype = image.dtype
    info = np.iinfo(dtype)
    signed = dtype.kind == "i"
    shift = 1 << 63 if signed else 0
    flip = np.uint64(shift)
    coords = image.astype(np.int64 if signed else np.uint64).view(np.uint64) ^ flip
    low, high = np.uint64(int(info.min) + shift), np.uint64(int(info.max) + shift)
    steps = np.rint(delta.astype(np.float64, copy=False))
    size = np.abs(steps)
    beyond = size >= 2.0**64  # more than any 64-bit range: saturates
    size = np.minimum(size, np.nextafter(2.0**64, 0)).astype(np.uint64)
    size[beyond] = np.iinfo(np.uint64).max
    out = np.where(steps > 0, coords + np.minimum(size, high - coords), coords - np.minimum(size, coords - low))
    out ^= flip
    return (out.view(np.int64) if signed else out).astype(dtype)
