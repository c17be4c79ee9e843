"""Benchmark blur kernels and PSFs from families and parameters that training never draws.

Training (:func:`napari_deblur.data.kernels.random_photo_kernel`) uses Boracchi-Foi
camera shake up to 31 px, *straight* uniform motion, filled defocus discs and
Gaussians; microscopy training uses Born & Wolf PSFs with NA 0.4-1.4, pixels of
50-200 nm and defocus up to 1.5 um. The benchmark blurs with:

* photos: uniform motion along a circular **arc**, a two-segment **polyline**
  (a sharp turn mid-exposure), an **annular** (ring, catadioptric-lens) defocus
  with a dark centre, and camera shake with a **long path** (35-41 px, beyond the
  training maximum of 31) at full exposure;
* microscopy: Born & Wolf widefield PSFs at NA 0.3 (air), NA 1.45 (oil, 40 nm
  pixels) and 1.8 um of defocus, plus a Gaussian-Lorentzian (Moffat) mixture
  with heavy tails.

Every kernel is float32, square, odd-sized, non-negative, sums to 1 and is
centred (centre of mass on the centre pixel). Random generators take a seed or
numpy Generator and are reproducible.
"""

import math

import numpy as np

from ..data.kernels import as_numpy_rng, camera_shake, check_size, normalise, odd_size, splat, supersampled
from ..data.psf import widefield_psf

PHOTO_FAMILIES = ("arc", "polyline", "ring", "long_shake")
MICROSCOPY_PSFS = ("widefield_na0.3", "widefield_na1.45", "widefield_defocus1.8", "gauss_lorentz")


def _path_points(vertices: np.ndarray, per_px: int = 8) -> np.ndarray:
    """Points at uniform arc-length spacing (constant speed: a box exposure) along a polyline."""
    seg = np.diff(vertices, axis=0)
    lengths = np.hypot(seg[:, 0], seg[:, 1])
    total = float(lengths.sum())
    n = max(2, int(math.ceil(total * per_px)))
    s = (np.arange(n) + 0.5) / n * total
    edges = np.concatenate([[0.0], np.cumsum(lengths)])
    i = np.clip(np.searchsorted(edges, s, side="right") - 1, 0, len(seg) - 1)
    t = (s - edges[i]) / np.maximum(lengths[i], 1e-12)
    return vertices[i] + t[:, None] * seg[i]


def _fit(points: np.ndarray, size: int | None) -> int:
    extent = 2 * np.abs(points - points.mean(0)).max() + 1
    return odd_size(extent, max_size=10**6) if size is None else check_size(size)


def arc_motion(radius: float, sweep: float, rotation: float = 0.0, size: int | None = None) -> np.ndarray:
    """Uniform-speed motion along a circular arc of ``radius`` px over ``sweep`` degrees.

    The path length is ``radius * sweep`` (radians); ``rotation`` turns the whole arc (degrees).
    """
    sweep_rad = math.radians(float(sweep))
    n = max(2, int(math.ceil(abs(radius * sweep_rad) * 8)))
    phi = (np.arange(n) + 0.5) / n * sweep_rad + math.radians(rotation)
    pts = np.stack([radius * np.sin(phi), radius * np.cos(phi)], axis=1)
    return splat(pts, _fit(pts, size))


def polyline_motion(lengths, angles, size: int | None = None) -> np.ndarray:
    """Uniform-speed motion along connected straight segments of ``lengths`` px at ``angles`` degrees."""
    steps = [
        np.array([-length * math.sin(math.radians(a)), length * math.cos(math.radians(a))])
        for length, a in zip(lengths, angles)
    ]
    vertices = np.cumsum(np.vstack([np.zeros(2), *steps]), axis=0)
    pts = _path_points(vertices)
    return splat(pts, _fit(pts, size))


def ring_defocus(outer: float, inner_ratio: float = 0.5, size: int | None = None) -> np.ndarray:
    """An annulus (the defocus of a lens with a central obstruction): anti-aliased, hole in the middle."""
    outer = float(outer)
    inner = float(inner_ratio) * outer
    size = odd_size(2 * outer + 1) if size is None else check_size(size)

    def annulus(y, x):
        r2 = y * y + x * x
        return ((r2 <= outer * outer) & (r2 >= inner * inner)).astype(np.float64)

    return normalise(supersampled(annulus, size, 8))


def long_shake(rng, length: float, size: int | None = None) -> np.ndarray:
    """Camera shake over a whole (exposure 1) path of ``length`` px, longer than training's 31 px."""
    size = odd_size(length + 4, max_size=10**6) if size is None else check_size(size)
    return camera_shake(as_numpy_rng(rng), size=size, length=float(length), exposure=1.0)


def gauss_lorentz(sigma: float = 1.5, gamma: float = 2.0, weight: float = 0.6, size: int = 41) -> np.ndarray:
    """``weight`` Gaussian (``sigma`` px) plus ``1 - weight`` 2D Lorentzian (Moffat, beta 1.5, ``gamma`` px):
    a sharp core with heavy tails, like scattering in thick samples."""
    size = check_size(size)
    gauss = normalise(supersampled(lambda y, x: np.exp(-0.5 * (y * y + x * x) / sigma**2), size, 4))
    lorentz = normalise(supersampled(lambda y, x: (1 + (y * y + x * x) / gamma**2) ** -1.5, size, 4))
    return normalise(weight * gauss.astype(np.float64) + (1 - weight) * lorentz)


def random_photo_kernel(rng, family: str) -> tuple[np.ndarray, dict]:
    """A benchmark photo kernel of one family and the parameters drawn for it."""
    rng = as_numpy_rng(rng)
    if family == "arc":
        params = {
            "radius": float(rng.uniform(8, 14)),
            "sweep": float(rng.uniform(90, 160)),
            "rotation": float(rng.uniform(0, 360)),
        }
        return arc_motion(**params), params
    if family == "polyline":
        a = float(rng.uniform(0, 180))
        turn = float(rng.uniform(70, 130)) * (1 if rng.random() < 0.5 else -1)
        params = {"lengths": [float(rng.uniform(8, 14)), float(rng.uniform(8, 14))], "angles": [a, a + turn]}
        return polyline_motion(**params), params
    if family == "ring":
        params = {"outer": float(rng.uniform(5, 8)), "inner_ratio": float(rng.uniform(0.45, 0.6))}
        return ring_defocus(**params), params
    if family == "long_shake":
        params = {"length": float(rng.uniform(35, 41)), "seed": int(rng.integers(2**31))}
        return long_shake(params["seed"], params["length"]), params
    raise ValueError(f"unknown benchmark kernel family {family!r}; choose from {PHOTO_FAMILIES}")


def microscopy_psf(name: str) -> tuple[np.ndarray, dict]:
    """A fixed benchmark PSF (41 x 41) and its parameters."""
    table = {
        "widefield_na0.3": {"na": 0.3, "wavelength": 520.0, "pixel": 100.0, "z": 0.0},
        "widefield_na1.45": {"na": 1.45, "wavelength": 520.0, "pixel": 40.0, "z": 0.0},
        "widefield_defocus1.8": {"na": 1.0, "wavelength": 600.0, "pixel": 100.0, "z": 1.8},
    }
    if name in table:
        params = dict(table[name])
        return widefield_psf(size=41, **params), {"kind": "widefield", **params}
    if name == "gauss_lorentz":
        params = {"sigma": 1.5, "gamma": 2.0, "weight": 0.6}
        return gauss_lorentz(**params, size=41), {"kind": "gauss_lorentz", **params}
    raise ValueError(f"unknown benchmark PSF {name!r}; choose from {MICROSCOPY_PSFS}")
