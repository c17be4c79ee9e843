"""Blur kernels for photographs: camera shake, linear motion, defocus, Gaussian. numpy only.

Every kernel is a float32 (size, size) array, size odd, non-negative and summing
to 1, with its centre of mass on the centre pixel (``size // 2``) up to
rounding. Without ``size``, a kernel takes the smallest odd size that holds it,
at most ``MAX_SIZE`` (31; pass ``size`` for larger ones). Random generators take
``rng``: a ``numpy.random.Generator``, a ``torch.Generator`` or an int seed; the
same rng state gives the same kernel.

Camera shake follows the trajectory model of Boracchi & Foi, *Modeling the
performance of image restoration from motion blur* (IEEE TIP 2012): a particle
moving at constant speed whose velocity has inertia, is perturbed by Gaussian
noise, pulled back towards the start (centripetal term) and, rarely, kicked in
an almost opposite direction (impulsive shakes). The PSF is the part of the
trajectory covered during the exposure, splatted onto the grid with bilinear
(sub-pixel) weights. Bilinear splatting keeps the centre of mass of the points,
so centring the points centres the kernel exactly.
"""

import math

import numpy as np

MAX_SIZE = 31
FAMILY_PROBS = {"shake": 0.55, "linear": 0.15, "defocus": 0.15, "gaussian": 0.15}


def as_numpy_rng(rng) -> np.random.Generator:
    """A numpy Generator from a numpy Generator, a torch.Generator, an int or None."""
    if isinstance(rng, np.random.Generator):
        return rng
    if rng is None or isinstance(rng, (int, np.integer)):
        return np.random.default_rng(rng)
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a dependency
        torch = None
    if torch is not None and isinstance(rng, torch.Generator):
        seed = int(torch.randint(0, 2**62, (1,), generator=rng, device=rng.device).item())
        return np.random.default_rng(seed)
    raise TypeError(f"rng must be a numpy Generator, a torch.Generator or an int seed, got {type(rng).__name__}")


def odd_size(extent: float, max_size: int = MAX_SIZE) -> int:
    """The smallest odd size holding ``extent`` pixels around the centre, at most ``max_size``."""
    size = 2 * int(math.ceil(extent / 2)) + 3
    return int(min(size, max_size if max_size % 2 else max_size - 1))


def check_size(size: int) -> int:
    """``size`` as an int, or ValueError unless it is odd and positive (a kernel with a centre pixel)."""
    size = int(size)
    if size < 1 or size % 2 == 0:
        raise ValueError(f"kernel size must be odd and positive, got {size}")
    return size


def delta(size: int = 1) -> np.ndarray:
    k = np.zeros((check_size(size),) * 2, np.float32)
    k[size // 2, size // 2] = 1
    return k


def normalise(k: np.ndarray) -> np.ndarray:
    k = np.clip(np.asarray(k, np.float64), 0, None)
    total = k.sum()
    if not total > 0:
        return delta(k.shape[0])
    return (k / total).astype(np.float32)


def center_of_mass(k: np.ndarray) -> tuple[float, float]:
    """(row, column) centre of mass."""
    k = np.asarray(k, np.float64)
    rows, cols = np.indices(k.shape)
    total = k.sum()
    return float((rows * k).sum() / total), float((cols * k).sum() / total)


def pad_kernel(k: np.ndarray, size: int) -> np.ndarray:
    """Zero-pad (or crop, renormalising) an odd square kernel to ``size`` around its centre."""
    size, n = check_size(size), k.shape[0]
    if n == size:
        return k.astype(np.float32)
    out = np.zeros((size, size), np.float32)
    half = min(n, size) // 2
    cs, ck = size // 2, n // 2
    out[cs - half : cs + half + 1, cs - half : cs + half + 1] = k[ck - half : ck + half + 1, ck - half : ck + half + 1]
    return normalise(out)


def splat(points: np.ndarray, size: int, weights=None) -> np.ndarray:
    """Bilinear splat of (N, 2) (row, column) points, centred by their centre of mass.

    Points farther from their centre of mass than the kernel allows are scaled
    towards it, so the whole path fits.
    """
    size = check_size(size)
    pts = np.asarray(points, np.float64)
    w = np.ones(len(pts)) if weights is None else np.asarray(weights, np.float64)
    com = (pts * w[:, None]).sum(0) / w.sum()
    pts = pts - com
    reach = np.abs(pts).max() if len(pts) else 0.0
    room = size // 2 - 1e-6
    if reach > room:
        pts = pts * (room / reach)
    pts = pts + size // 2
    base = np.floor(pts).astype(np.int64)
    frac = pts - base
    out = np.zeros(size * size)
    for dr in (0, 1):
        for dc in (0, 1):
            wr = frac[:, 0] if dr else 1 - frac[:, 0]
            wc = frac[:, 1] if dc else 1 - frac[:, 1]
            r, c = np.minimum(base[:, 0] + dr, size - 1), np.minimum(base[:, 1] + dc, size - 1)
            out += np.bincount(r * size + c, weights=w * wr * wc, minlength=size * size)
    return normalise(out.reshape(size, size))


def shake_trajectory(rng, length: float, n_steps: int = 2000, anxiety: float | None = None) -> np.ndarray:
    """(n_steps, 2) positions of a Boracchi-Foi camera-shake path of total length ``length`` px.

    ``anxiety`` scales the random forces (Boracchi & Foi use 0.005 with 2000 steps);
    by default it is drawn log-uniformly in [0.001, 0.01].
    """
    rng = as_numpy_rng(rng)
    anxiety = math.exp(rng.uniform(math.log(0.001), math.log(0.01))) if anxiety is None else float(anxiety)
    step = float(length) / (n_steps - 1)
    pull = 0.7 * rng.random()  # centripetal: drift back towards the start
    jitter = 10.0 * rng.random()  # Gaussian velocity noise
    kick_rate = 0.2 * rng.random() * anxiety  # chance per step of an impulsive shake
    noise = rng.standard_normal((n_steps, 2)) @ np.array([1.0, 1j])
    kicks = rng.random(n_steps) < kick_rate
    kick_turn = np.exp(1j * (np.pi + rng.random(n_steps) - 0.5))
    vel = step * np.exp(2j * np.pi * rng.random())
    pos = np.zeros(n_steps, complex)
    for t in range(n_steps - 1):
        dv = anxiety * (jitter * noise[t] - pull * pos[t]) * step
        if kicks[t]:
            dv += 2 * vel * kick_turn[t]
        vel = vel + dv
        speed = abs(vel)
        vel = vel * (step / speed) if speed > 0 else step + 0j
        pos[t + 1] = pos[t] + vel
    return np.stack([pos.imag, pos.real], axis=1)


def camera_shake(
    rng, size: int = MAX_SIZE, length: float | None = None, exposure: float | None = None, anxiety: float | None = None
) -> np.ndarray:
    """A camera-shake PSF: the ``exposure`` fraction (0-1] of a shake path of ``length`` px."""
    rng = as_numpy_rng(rng)
    size = check_size(size)
    length = rng.uniform(2.0, 1.5 * size) if length is None else float(length)
    exposure = rng.uniform(0.3, 1.0) if exposure is None else float(exposure)
    if not 0 < exposure <= 1:
        raise ValueError(f"exposure must be in (0, 1], got {exposure}")
    n = 2000
    path = shake_trajectory(rng, length, n, anxiety)
    span = max(2, int(round(exposure * n)))
    start = int(rng.integers(0, n - span + 1))
    return splat(path[start : start + span], size)


def linear_motion(length: float, angle: float = 0.0, size: int | None = None) -> np.ndarray:
    """Uniform motion over ``length`` px at ``angle`` degrees (0: along rows, counter-clockwise)."""
    length = max(0.0, float(length))
    size = odd_size(length + 1) if size is None else check_size(size)
    n = max(2, int(math.ceil(length * 8)))
    t = (np.arange(n) + 0.5) / n - 0.5
    a = math.radians(angle)
    pts = np.stack([-t * length * math.sin(a), t * length * math.cos(a)], axis=1)
    return splat(pts, size)


def supersampled(fn, size: int, ss: int) -> np.ndarray:
    """Mean of ``fn(dy, dx)`` over ss x ss sub-pixel positions per pixel, relative to the centre."""
    c = size // 2
    sub = (np.arange(ss) + 0.5) / ss - 0.5
    grid = np.arange(size) - c
    y = (grid[:, None] + sub[None, :]).reshape(-1)
    vals = fn(y[:, None], y[None, :])
    return vals.reshape(size, ss, size, ss).mean(axis=(1, 3))


def defocus_disc(radius: float, size: int | None = None) -> np.ndarray:
    """A uniform disc (out-of-focus lens) with anti-aliased edge: pixel coverage from 8x8 sub-samples."""
    radius = max(0.0, float(radius))
    size = odd_size(2 * radius + 1) if size is None else check_size(size)
    k = supersampled(lambda y, x: (y * y + x * x <= radius * radius).astype(np.float64), size, 8)
    return normalise(k)


def gaussian_kernel(
    sigma_y: float, sigma_x: float | None = None, angle: float = 0.0, size: int | None = None
) -> np.ndarray:
    """An anisotropic Gaussian; ``sigma_x`` along the axis rotated by ``angle`` degrees."""
    sy = max(float(sigma_y), 1e-3)
    sx = sy if sigma_x is None else max(float(sigma_x), 1e-3)
    size = odd_size(6 * max(sx, sy)) if size is None else check_size(size)
    a = math.radians(angle)
    ca, sa = math.cos(a), math.sin(a)

    def density(y, x):
        u = x * ca - y * sa  # along the rotated x axis (counter-clockwise on screen)
        v = x * sa + y * ca
        return np.exp(-0.5 * ((u / sx) ** 2 + (v / sy) ** 2))

    return normalise(supersampled(density, size, 4))


def random_photo_kernel(rng, max_size: int = MAX_SIZE, size: int | None = None, family: str | None = None):
    """A random photographic blur kernel whose extent stays within ``max_size`` px.

    ``max_size`` is the curriculum knob (small early in training, up to the full
    size later); ``size`` is the array size (default ``max_size``), so kernels of
    one batch can share it. Families, with probabilities ``FAMILY_PROBS``: camera
    shake, linear motion, defocus disc, anisotropic Gaussian.
    """
    rng = as_numpy_rng(rng)
    extent = max(3, int(max_size))
    size = check_size(size if size is not None else (extent if extent % 2 else extent - 1))
    if family is None:
        names = list(FAMILY_PROBS)
        family = names[rng.choice(len(names), p=np.array([FAMILY_PROBS[n] for n in names]))]
    inner = min(size, extent if extent % 2 else extent - 1)
    if family == "shake":
        k = camera_shake(rng, inner, length=inner * rng.uniform(0.1, 2.5))
    elif family == "linear":
        k = linear_motion(rng.uniform(1.0, inner - 2), rng.uniform(0, 180), inner)
    elif family == "defocus":
        k = defocus_disc(rng.uniform(0.5, max(0.6, 0.35 * (inner - 1))), inner)
    elif family == "gaussian":
        s1 = rng.uniform(0.3, max(0.4, (inner - 1) / 6))
        k = gaussian_kernel(s1, rng.uniform(0.3, s1), rng.uniform(0, 180), inner)
    else:
        raise ValueError(f"unknown kernel family {family!r}; choose from {sorted(FAMILY_PROBS)}")
    return pad_kernel(k, size)
