"""Sharp training images: shipped photographs, dead leaves, fluorescence-like scenes. numpy + Pillow.

Every image is float32 (C, H, W) in [0, 1]. Generators take ``rng`` (a numpy
Generator, a torch.Generator or an int seed) and are reproducible.

* Photographs: the files scikit-image ships in its ``data`` folder (read with
  Pillow, scikit-image itself is not imported and nothing is downloaded).
  ``HELDOUT`` is kept for validation: ``training_photos()`` leaves it out.
* Dead leaves (Matheron; Lee, Mumford & Huang 2001): opaque discs with radii
  of density ~ r^-3 (scale invariant), random colours, painted front to back
  with anti-aliased edges until the image is covered; optional shading
  gradients and stripe textures inside discs.
* Fluorescence: dark background with Gaussian spots of three size classes,
  filaments (smooth random curves of sub-pixel width) and membranes (cell
  boundaries of a perturbed Voronoi tessellation, or rings).
"""

import importlib.util
import math
from functools import cache
from pathlib import Path

import numpy as np

from .kernels import as_numpy_rng

PHOTO_FILES = {
    "astronaut": "astronaut.png",
    "camera": "camera.png",
    "chelsea": "chelsea.png",
    "coffee": "coffee.png",
    "rocket": "rocket.jpg",
    "motorcycle_left": "motorcycle_left.png",
    "motorcycle_right": "motorcycle_right.png",
    "hubble_deep_field": "hubble_deep_field.jpg",
    "brick": "brick.png",
    "grass": "grass.png",
    "gravel": "gravel.png",
    "moon": "moon.png",
    "page": "page.png",
    "text": "text.png",
    "immunohistochemistry": "ihc.png",
    "retina": "retina.jpg",
    "coins": "coins.png",
}
# Held out for validation. Not motorcycle_right: it is the stereo twin of motorcycle_left.
HELDOUT = ("chelsea", "coffee", "rocket")


def photo_dir() -> Path | None:
    """scikit-image's data folder, found without importing scikit-image (None if absent)."""
    spec = importlib.util.find_spec("skimage")
    if spec is None or not spec.submodule_search_locations:
        return None
    folder = Path(next(iter(spec.submodule_search_locations))) / "data"
    return folder if folder.is_dir() else None


def available_photos() -> list[str]:
    folder = photo_dir()
    return [] if folder is None else [name for name, f in PHOTO_FILES.items() if (folder / f).is_file()]


@cache
def load_photo(name: str) -> np.ndarray:
    """float32 (3, H, W) sRGB in [0, 1]; grey photographs are repeated over the 3 channels."""
    from PIL import Image

    if name not in PHOTO_FILES:
        raise ValueError(f"unknown photo {name!r}; choose from {sorted(PHOTO_FILES)}")
    folder = photo_dir()
    if folder is None or not (folder / PHOTO_FILES[name]).is_file():
        raise FileNotFoundError(f"photo {name!r} is not available (is scikit-image installed?)")
    with Image.open(folder / PHOTO_FILES[name]) as im:
        arr = np.asarray(im.convert("RGB"), np.float32) / 255
    arr = np.ascontiguousarray(arr.transpose(2, 0, 1))
    arr.setflags(write=False)
    return arr


def training_photos() -> dict[str, np.ndarray]:
    return {name: load_photo(name) for name in available_photos() if name not in HELDOUT}


def heldout_photos() -> dict[str, np.ndarray]:
    return {name: load_photo(name) for name in available_photos() if name in HELDOUT}


def _shape(size) -> tuple[int, int]:
    h, w = (size, size) if np.isscalar(size) else size
    return int(h), int(w)


def _power_law(rng, n: int, r_min: float, r_max: float, alpha: float) -> np.ndarray:
    """Inverse-CDF samples of the density ~ r^-alpha on [r_min, r_max] (alpha != 1)."""
    a, b = r_min ** (1 - alpha), r_max ** (1 - alpha)
    return (a + rng.random(n) * (b - a)) ** (1 / (1 - alpha))


def dead_leaves(
    rng,
    size=256,
    channels: int = 3,
    r_min: float = 2.0,
    r_max: float | None = None,
    alpha: float = 3.0,
    texture: bool = True,
    coverage: float = 0.999,
) -> np.ndarray:
    """A dead-leaves image, float32 (channels, H, W) in [0, 1]."""
    rng = as_numpy_rng(rng)
    h, w = _shape(size)
    r_max = 0.4 * max(h, w) if r_max is None else float(r_max)
    out = np.zeros((channels, h, w))
    clear = np.ones((h, w))  # transmittance: how much of each pixel later discs may still paint
    left, target = float(h * w), (1 - coverage) * h * w
    batch = 512
    while left > target:
        radius = _power_law(rng, batch, r_min, r_max, alpha)
        cy = rng.uniform(-radius, h - 1 + radius)
        cx = rng.uniform(-radius, w - 1 + radius)
        grey = rng.random((batch, 1))
        colour = grey + rng.random((batch, 1)) * (rng.random((batch, channels)) - grey)
        for i in range(batch):
            r = radius[i]
            y0, y1 = max(0, int(cy[i] - r - 1)), min(h, int(cy[i] + r + 2))
            x0, x1 = max(0, int(cx[i] - r - 1)), min(w, int(cx[i] + r + 2))
            if y0 >= y1 or x0 >= x1:
                continue
            dy = np.arange(y0, y1)[:, None] - cy[i]
            dx = np.arange(x0, x1)[None, :] - cx[i]
            cover = np.clip(r + 0.5 - np.sqrt(dy * dy + dx * dx), 0, 1)
            paint = clear[y0:y1, x0:x1] * cover
            amount = paint.sum()
            if amount < 1e-6:
                continue
            value = colour[i][:, None, None]
            if texture and r > 4:
                value = value + _disc_texture(rng, dy, dx, r, channels)
            out[:, y0:y1, x0:x1] += paint * value
            clear[y0:y1, x0:x1] -= paint
            left -= amount
            if left <= target:
                break
    out += clear * rng.random((channels, 1, 1))
    return np.clip(out, 0, 1).astype(np.float32)


def _disc_texture(rng, dy, dx, r, channels):
    """Zero-mean shading inside a disc: a linear gradient (30%) or stripes (15%), else nothing."""
    pick = rng.random()
    if pick < 0.3:
        g = rng.normal(0, 0.25, 2) / r
        return (g[0] * dy + g[1] * dx)[None] * np.ones((channels, 1, 1))
    if pick < 0.45:
        theta, period = rng.uniform(0, np.pi), rng.uniform(2.5, max(3.0, r))
        wave = np.sin(2 * np.pi * (dy * np.sin(theta) + dx * np.cos(theta)) / period + rng.uniform(0, 6.3))
        return rng.uniform(0.05, 0.25) * wave[None] * rng.uniform(0.5, 1, (channels, 1, 1))
    return 0.0


def gaussian_blur(img: np.ndarray, sigma: float) -> np.ndarray:
    """Periodic Gaussian blur of a 2D array through the FFT (callers pad their canvas)."""
    if sigma <= 0:
        return img
    fy = np.fft.fftfreq(img.shape[0])[:, None]
    fx = np.fft.rfftfreq(img.shape[1])[None, :]
    transfer = np.exp(-2 * (np.pi * sigma) ** 2 * (fy * fy + fx * fx))
    return np.fft.irfft2(np.fft.rfft2(img) * transfer, s=img.shape)


def _splat(canvas: np.ndarray, y: np.ndarray, x: np.ndarray, weight: np.ndarray) -> None:
    """Bilinear splat of points into ``canvas`` in place (points outside are dropped)."""
    h, w = canvas.shape
    y0, x0 = np.floor(y).astype(int), np.floor(x).astype(int)
    fy, fx = y - y0, x - x0
    for dy, wy in ((0, 1 - fy), (1, fy)):
        for dx, wx in ((0, 1 - fx), (1, fx)):
            yy, xx = y0 + dy, x0 + dx
            ok = (yy >= 0) & (yy < h) & (xx >= 0) & (xx < w)
            np.add.at(canvas, (yy[ok], xx[ok]), (weight * wy * wx)[ok])


def _spots(rng, shape, pad) -> np.ndarray:
    h, w = shape
    out = np.zeros(shape)
    for sigma_range, density in (((0.6, 1.5), 4e-3), ((2.0, 4.5), 8e-4), ((6.0, 12.0), 1e-4)):
        if rng.random() < 0.35:
            continue
        n = rng.poisson(density * h * w * rng.uniform(0.2, 2.0))
        sigma = rng.uniform(*sigma_range)
        layer = np.zeros(shape)
        _splat(layer, rng.uniform(0, h - 1, n), rng.uniform(0, w - 1, n), rng.uniform(0.2, 1.0, n))
        out += gaussian_blur(layer, sigma) * (2 * np.pi * sigma * sigma)
    return out


def _smooth_noise_1d(rng, n: int, corr: float) -> np.ndarray:
    """Unit-variance noise with a Gaussian correlation of ``corr`` samples."""
    half = int(3 * corr) + 1
    g = np.exp(-0.5 * (np.arange(-half, half + 1) / corr) ** 2)
    x = np.convolve(rng.normal(0, 1, n + 2 * half), g, mode="valid")
    return x / math.sqrt((g * g).sum())


def _filaments(rng, shape, pad) -> np.ndarray:
    h, w = shape
    width = rng.uniform(0.5, 1.6)
    step = 0.25
    layer = np.zeros(shape)
    for _ in range(rng.integers(3, 40)):
        steps = int(rng.uniform(0.2, 1.5) * max(h, w) / step)
        # curvature: smooth noise, correlated over 5-30 px, typical bending radius 15-150 px
        curvature = _smooth_noise_1d(rng, steps, rng.uniform(5, 30) / step) / rng.uniform(15, 150)
        angle = rng.uniform(0, 2 * np.pi) + np.cumsum(curvature * step)
        y = rng.uniform(0, h) + np.cumsum(step * np.sin(angle))
        x = rng.uniform(0, w) + np.cumsum(step * np.cos(angle))
        _splat(layer, y, x, np.full(steps, step * rng.uniform(0.2, 1.0)))
    return gaussian_blur(layer, width) * (math.sqrt(2 * np.pi) * width)


def _membranes(rng, shape, pad) -> np.ndarray:
    h, w = shape
    width = rng.uniform(0.6, 2.0)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    wobble = rng.uniform(0, 6)
    warp = [gaussian_blur(rng.normal(0, 1, shape), 12) * wobble * 12 for _ in range(2)]
    yy, xx = yy + warp[0], xx + warp[1]
    if rng.random() < 0.6:  # tissue: boundaries of a Voronoi tessellation
        n = max(3, int(h * w / rng.uniform(25, 70) ** 2))
        seeds = np.stack([rng.uniform(0, h, n), rng.uniform(0, w, n)], 1)
        d1, d2 = np.full(shape, np.inf), np.full(shape, np.inf)  # squared distances to the two nearest
        i1, i2 = np.zeros(shape, int), np.zeros(shape, int)
        for i, (sy, sx) in enumerate(seeds):
            d = (yy - sy) ** 2 + (xx - sx) ** 2
            nearer, second = d < d1, (d >= d1) & (d < d2)
            d2, i2 = np.where(nearer, d1, np.where(second, d, d2)), np.where(nearer, i1, np.where(second, i, i2))
            d1, i1 = np.where(nearer, d, d1), np.where(nearer, i, i1)
        # exact distance to the bisector of the two nearest seeds
        gap = (d2 - d1) / (2 * np.linalg.norm(seeds[i1] - seeds[i2], axis=-1) + 1e-9)
        inside = rng.uniform(0, 0.15, n)[i1] * (rng.random() < 0.5)  # faint cytoplasm, per cell
        return np.maximum(np.exp(-0.5 * (gap / width) ** 2), inside) * rng.uniform(0.4, 1.0)
    out = np.zeros(shape)  # isolated cells: rings
    for _ in range(int(rng.integers(2, 10) * max(1.0, (h - 2 * pad) * (w - 2 * pad) / 256**2))):
        cy, cx, rad = rng.uniform(pad, h - pad), rng.uniform(pad, w - pad), rng.uniform(8, 40)
        d = np.hypot(yy - cy, xx - cx)
        out = np.maximum(out, np.exp(-0.5 * ((d - rad) / width) ** 2) * rng.uniform(0.3, 1.0))
    return out


def fluorescence(rng, size=256, kinds=None) -> np.ndarray:
    """A fluorescence-like scene, float32 (1, H, W) in [0, 1] on a dark background.

    ``kinds``: any of ``"spots"``, ``"filaments"``, ``"membranes"``; default a
    random non-empty subset.
    """
    rng = as_numpy_rng(rng)
    h, w = _shape(size)
    makers = {"spots": _spots, "filaments": _filaments, "membranes": _membranes}
    if kinds is None:
        names = list(makers)
        chosen = [k for k in names if rng.random() < 0.5] or [names[rng.integers(len(names))]]
    else:
        chosen = list(kinds)
    pad = 24
    shape = (h + 2 * pad, w + 2 * pad)
    img = np.zeros(shape)
    for name in chosen:
        if name not in makers:
            raise ValueError(f"unknown structure {name!r}; choose from {sorted(makers)}")
        layer = makers[name](rng, shape, pad)
        img += layer / max(layer.max(), 1e-6) * rng.uniform(0.3, 1.0)
    img = img[pad : pad + h, pad : pad + w]
    peak = img.max()
    if peak > 0:
        img = img / peak * rng.uniform(0.5, 1.0)
    background = rng.uniform(0.0, 0.04)
    return np.clip(img + background, 0, 1).astype(np.float32)[None]
