"""Image quality measures and the sRGB transfer curve, one definition each.

- :func:`psnr` and :func:`ssim`: full-reference scores; :func:`score` is the pair the
  benchmarks report (data range 1, output clipped to [0, 1]).
- :func:`srgb_to_linear` and :func:`linear_to_srgb`: the IEC 61966-2-1 curve, on NumPy
  arrays and on torch tensors alike.
- :func:`rank_correlation` (Spearman's rho) and the measures built on it for diffusion
  uncertainty maps: :func:`uncertainty_correlation` and its no-sampling baseline
  :func:`edge_map`; :func:`sharpness`, a no-reference blur measure.

Only NumPy is imported here: torch tensors are recognised when torch is already loaded
(whoever passes a tensor has imported it), scikit-image and SciPy when a function needs
them. Training, the plugin, the tools and the evaluation package all import this module.
"""

import sys

import numpy as np

__all__ = [
    "SRGB_DECODE_KNEE",
    "SRGB_ENCODE_KNEE",
    "SRGB_SLOPE",
    "SRGB_OFFSET",
    "SRGB_SCALE",
    "SRGB_GAMMA",
    "srgb_to_linear",
    "linear_to_srgb",
    "psnr",
    "ssim",
    "score",
    "rank_correlation",
    "uncertainty_correlation",
    "edge_map",
    "sharpness",
]

# IEC 61966-2-1: encoded v <= SRGB_DECODE_KNEE (linear l <= SRGB_ENCODE_KNEE) is the straight segment
# l = v / SRGB_SLOPE; above it, l = ((v + SRGB_OFFSET) / SRGB_SCALE) ** SRGB_GAMMA.
SRGB_DECODE_KNEE = 0.04045
SRGB_ENCODE_KNEE = 0.0031308
SRGB_SLOPE = 12.92
SRGB_OFFSET = 0.055
SRGB_SCALE = 1.055
SRGB_GAMMA = 2.4


def _is_tensor(x) -> bool:
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(x, torch.Tensor)


def _namespace(x):
    """``(torch, x)`` for a tensor, else ``(numpy, x as an array)``: both offer ``where`` and ``clip``."""
    if _is_tensor(x):
        return sys.modules["torch"], x
    return np, np.asarray(x)


# ---------------------------------------------------------------- sRGB


def srgb_to_linear(x, clip: bool = True):
    """Decode sRGB values (nominally in [0, 1]) to linear light.

    Works on NumPy arrays (and scalars or lists) and on torch tensors, keeping the
    floating dtype and device. ``clip=True`` clips to [0, 1] first; with ``clip=False``
    values above 1 follow the power branch and values below 0 the linear one.
    """
    xp, x = _namespace(x)
    if clip:
        x = xp.clip(x, 0, 1)
    power = ((xp.clip(x, SRGB_DECODE_KNEE, None) + SRGB_OFFSET) / SRGB_SCALE) ** SRGB_GAMMA
    return xp.where(x <= SRGB_DECODE_KNEE, x / SRGB_SLOPE, power)


def linear_to_srgb(x):
    """Encode linear light to sRGB, clipping to [0, 1] first (NumPy arrays or torch tensors)."""
    xp, x = _namespace(x)
    x = xp.clip(x, 0, 1)
    power = SRGB_SCALE * xp.clip(x, 1e-12, None) ** (1 / SRGB_GAMMA) - SRGB_OFFSET
    return xp.where(x <= SRGB_ENCODE_KNEE, SRGB_SLOPE * x, power)


# ---------------------------------------------------------------- full-reference scores


def psnr(reference, image, data_range: float = 1.0, *, clip: bool = False, mse_floor: float = 0.0) -> float:
    """Peak signal-to-noise ratio (dB) of ``image`` against ``reference``: 10 log10(range² / MSE).

    The MSE is pooled over every element (a batch counts as one image). NumPy inputs are
    compared in float64, as scikit-image's ``peak_signal_noise_ratio`` does; torch tensors in
    float32 on their own device, so a training batch is scored where it lies.

    Args:
        data_range: the signal's full range (1 for images in [0, 1], 255 for 8-bit).
        clip: clip ``image`` (not the reference) to [0, data_range] first, as a displayed or
            saved result would be.
        mse_floor: the MSE is raised to at least this; 0 makes identical images infinite,
            1e-12 caps them at a finite value (for logs that must stay valid JSON).
    """
    if _is_tensor(reference) or _is_tensor(image):
        estimate = image.float().clamp(0, data_range) if clip else image.float()
        mse = np.float64(((estimate - reference.float()) ** 2).mean().item())
    else:
        reference = np.asarray(reference, np.float64)
        image = np.asarray(image, np.float64)
        if reference.shape != image.shape:
            raise ValueError(f"psnr needs images of one shape, got {reference.shape} and {image.shape}")
        if clip:
            image = np.clip(image, 0, data_range)
        mse = np.mean((reference - image) ** 2, dtype=np.float64)
    with np.errstate(divide="ignore"):
        return float(10 * np.log10(float(data_range) ** 2 / max(mse, mse_floor)))


def ssim(
    reference, image, data_range: float = 1.0, *, channel_axis: int | None = None, win_size: int | None = None
) -> float:
    """Structural similarity (scikit-image's ``structural_similarity``, float64) of two images.

    ``channel_axis`` names the colour axis of a multichannel image (SSIM is then averaged over
    channels); ``win_size`` is the odd side of the sliding window (scikit-image's 7 when None).
    """
    from skimage.metrics import structural_similarity

    return float(
        structural_similarity(
            np.asarray(reference, np.float64),
            np.asarray(image, np.float64),
            data_range=data_range,
            channel_axis=channel_axis,
            win_size=win_size,
        )
    )


def score(sharp, restored) -> dict:
    """``{'psnr': dB, 'ssim': ...}`` of a restoration against its sharp reference, the way the
    benchmarks score: data range 1, the restoration clipped to [0, 1]; a (3, H, W) photo is one
    colour image (SSIM over its channel axis 0), an (H, W) image a gray one."""
    ref = np.asarray(sharp, np.float64)
    out = np.clip(np.asarray(restored, np.float64), 0, 1)
    return {"psnr": psnr(ref, out), "ssim": ssim(ref, out, channel_axis=0 if ref.ndim == 3 else None)}


# ---------------------------------------------------------------- rank correlation


def _ranks(x: np.ndarray) -> np.ndarray:
    """Ranks 1..n of a 1-D array, ties sharing their average rank (as scipy's ``rankdata``)."""
    _, inverse, counts = np.unique(x, return_inverse=True, return_counts=True)
    first = np.cumsum(counts) - counts  # 0-based position of each distinct value's first copy
    return (first + (counts + 1) / 2.0)[inverse.ravel()]


def _spearman_numpy(a: np.ndarray, b: np.ndarray) -> float:
    """Spearman's rho as the Pearson correlation of the (tie-averaged) ranks."""
    ra, rb = _ranks(a), _ranks(b)
    ra, rb = ra - ra.mean(), rb - rb.mean()
    return float((ra * rb).sum() / np.sqrt((ra * ra).sum() * (rb * rb).sum()))


def rank_correlation(a, b) -> float | None:
    """Spearman rank correlation of two same-sized arrays (flattened), or None when either is
    constant (no ranking to compare). Uses scipy when it is installed, else NumPy."""
    a = np.asarray(a, np.float64).ravel()
    b = np.asarray(b, np.float64).ravel()
    if a.shape != b.shape:
        raise ValueError(f"rank_correlation needs arrays of one size, got {a.size} and {b.size}")
    if a.size < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    try:
        from scipy.stats import spearmanr
    except ImportError:
        return _spearman_numpy(a, b)
    return float(spearmanr(a, b)[0])


def uncertainty_correlation(std, mean, sharp) -> float | None:
    """Rank correlation between the per-pixel standard deviation and the absolute error
    ``|mean - sharp|`` (mean clipped to [0, 1] as when scored), both averaged over the
    colour channels of a (3, H, W) photo: does an uncertainty map point at the errors?"""
    error = np.abs(np.clip(np.asarray(mean, np.float64), 0, 1) - np.asarray(sharp, np.float64))
    std = np.asarray(std, np.float64)
    if error.ndim == 3:
        error, std = error.mean(axis=0), std.mean(axis=0)
    return rank_correlation(std, error)


def edge_map(image) -> np.ndarray:
    """The gradient magnitude of an (H, W) or (C, H, W) image (per channel, float64): the
    no-sampling baseline for an uncertainty map (restoration errors concentrate at edges)."""
    return np.hypot(*np.gradient(np.asarray(image, np.float64), axis=(-2, -1)))


# ---------------------------------------------------------------- no-reference


def sharpness(image) -> float:
    """scikit-image's ``blur_effect`` (0 sharp .. 1 blurry) of an image clipped to [0, 1];
    a (3, H, W) photo is first averaged over its colour channels."""
    from skimage.measure import blur_effect

    x = np.clip(np.asarray(image, np.float64), 0, 1)
    if x.ndim == 3:
        x = x.mean(axis=0)
    return float(blur_effect(x))
