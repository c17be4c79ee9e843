"""Microscope point-spread functions from the scalar Born & Wolf model. numpy + torch.

The amplitude at lateral distance ``r`` and defocus ``z`` of a lens with
numerical aperture NA, immersion index n and vacuum wavelength lambda is
(Born & Wolf, *Principles of Optics*, 8.8; the "Born & Wolf" model of the
PSF Generator of Kirshner et al., J. Microsc. 2013)::

    h(r, z) = integral_0^1  J0(k NA r rho) * exp(-i k z NA^2 rho^2 / (2 n)) * rho  d rho,
    k = 2 pi / lambda

integrated here by Gauss-Legendre quadrature (J0 from ``torch.special``).
In focus it is the Airy amplitude ``J1(v)/v`` with v = k NA r, whose first zero
lies at r = 0.61 lambda / NA. Intensity PSFs: widefield ``|h_em|^2``; confocal
``|h_ex|^2 |h_em|^2`` (infinitely small pinhole). Kernels are integrated over
each pixel (sub-sampled), float32, normalised to sum 1, odd size.
"""

import math

import numpy as np
import torch

from .kernels import as_numpy_rng, check_size, normalise

IMMERSION = ((0.95, 1.0), (1.25, 1.333), (10.0, 1.518))  # (largest NA, refractive index): air, water, oil


def immersion_index(na: float) -> float:
    """A typical immersion medium for an objective of this NA: air, water or oil."""
    for top, n in IMMERSION:
        if na <= top:
            return n
    return IMMERSION[-1][1]


def born_wolf_amplitude(r_um, z_um: float, na: float, wavelength_nm: float, n: float) -> np.ndarray:
    """Complex scalar amplitude h(r, z) (see the module text); h(0, 0) = 1/2."""
    if not 0 < na < n + 1e-9:
        raise ValueError(f"numerical aperture must be in (0, n={n}], got {na}")
    r = torch.as_tensor(np.asarray(r_um, np.float64)).reshape(-1)
    k = 2 * math.pi / (wavelength_nm * 1e-3)  # per micrometre
    v_max = k * na * float(r.abs().max()) if r.numel() else 0.0
    u = k * float(z_um) * na * na / n
    periods = (v_max + abs(u) / 2) / math.pi
    nodes, weights = np.polynomial.legendre.leggauss(int(min(2048, max(64, 4 * periods + 48))))
    rho = torch.as_tensor((nodes + 1) / 2)
    w = torch.as_tensor(weights / 2)
    bessel = torch.special.bessel_j0(k * na * r[:, None] * rho[None, :])
    phase = -0.5 * u * rho**2
    pupil = torch.complex(torch.cos(phase), torch.sin(phase)) * (rho * w)
    h = bessel.to(pupil.dtype) @ pupil
    return h.numpy().reshape(np.shape(r_um))


def _radial_intensity(
    size: int, ss: int, pixel_nm: float, z_um: float, na: float, wavelength_nm: float, n: float
) -> np.ndarray:
    """|h|^2 on an ss x ss sub-sampled grid of (size, size) pixels, via a fine radial profile."""
    c = size // 2
    sub = (np.arange(ss) + 0.5) / ss - 0.5
    y = ((np.arange(size) - c)[:, None] + sub[None, :]).reshape(-1) * (pixel_nm * 1e-3)
    dist = np.hypot(y[:, None], y[None, :])
    step = pixel_nm * 1e-3 / (4 * ss)
    radii = np.arange(int(dist.max() / step) + 2) * step
    profile = np.abs(born_wolf_amplitude(radii, z_um, na, wavelength_nm, n)) ** 2
    return np.interp(dist, radii, profile)


def _bin(fine: np.ndarray, size: int, ss: int) -> np.ndarray:
    return normalise(fine.reshape(size, ss, size, ss).mean(axis=(1, 3)))


def widefield_psf(
    size: int = 31,
    na: float = 1.4,
    wavelength: float = 520.0,
    pixel: float = 100.0,
    z: float = 0.0,
    n: float | None = None,
    ss: int = 3,
) -> np.ndarray:
    """Widefield intensity PSF |h|^2 at defocus ``z`` (um); wavelength and pixel in nm."""
    size = check_size(size)
    n = immersion_index(na) if n is None else float(n)
    return _bin(_radial_intensity(size, ss, pixel, z, na, wavelength, n), size, ss)


def confocal_psf(
    size: int = 31,
    na: float = 1.4,
    excitation: float = 488.0,
    emission: float = 520.0,
    pixel: float = 100.0,
    z: float = 0.0,
    n: float | None = None,
    ss: int = 3,
) -> np.ndarray:
    """Confocal PSF: excitation times emission intensity PSFs (pinhole ignored)."""
    size = check_size(size)
    n = immersion_index(na) if n is None else float(n)
    ex = _radial_intensity(size, ss, pixel, z, na, excitation, n)
    em = _radial_intensity(size, ss, pixel, z, na, emission, n)
    return _bin(ex * em, size, ss)


def radial_profile(k: np.ndarray) -> np.ndarray:
    """Mean of ``k`` over rings of width 1 px around the centre pixel (index = radius in px)."""
    c = k.shape[0] // 2
    rows, cols = np.indices(k.shape)
    ring = np.rint(np.hypot(rows - c, cols - c)).astype(int)
    return np.bincount(ring.ravel(), k.ravel()) / np.bincount(ring.ravel())


def random_microscopy_psf(rng, size: int = 31, return_params: bool = False):
    """A random widefield (70%) or confocal (30%) PSF, normalised, float32 (size, size).

    NA 0.4-1.4 (air, water or oil immersion to match), emission 450-650 nm,
    excitation 15-60 nm bluer, pixel 50-200 nm, defocus 0-1.5 um (half the draws
    within 0.3 um of focus). Defocus is capped so that the geometric blur radius
    z NA / n stays within 80% of the kernel's half-width: blur beyond the kernel
    would otherwise be cut off.
    """
    rng = as_numpy_rng(rng)
    size = check_size(size)
    na = float(rng.uniform(0.4, 1.4))
    n = immersion_index(na)
    emission = float(rng.uniform(450, 650))
    pixel = float(rng.uniform(50, 200))
    z = float(rng.uniform(0, 0.3) if rng.random() < 0.5 else rng.uniform(0, 1.5))
    z = min(z, 0.8 * (size // 2) * pixel * 1e-3 * n / na)
    confocal = bool(rng.random() < 0.3)
    params = {
        "kind": "confocal" if confocal else "widefield",
        "na": na,
        "n": n,
        "emission": emission,
        "pixel": pixel,
        "z": z,
    }
    if confocal:
        params["excitation"] = max(400.0, emission - float(rng.uniform(15, 60)))
        k = confocal_psf(size, na, params["excitation"], emission, pixel, z, n)
    else:
        k = widefield_psf(size, na, emission, pixel, z, n)
    return (k, params) if return_params else k


def psf_slices(stack, size: int = 31, planes: int = 5, step: int = 2) -> list[np.ndarray]:
    """2D PSFs from a measured or computed PSF (2D, or a 3D Z stack): the focal plane (the brightest)
    and ``planes - 1`` others ``step`` planes apart around it, out of focus.

    Each slice has the stack's background (the median of its outer frame) removed, is
    clipped at 0, cut to ``size`` x ``size`` around its centre of mass and normalised;
    slices with no signal left are skipped.
    """
    size = check_size(size)
    arr = np.asarray(stack, np.float64)
    if arr.ndim == 2:
        arr = arr[None]
    if arr.ndim != 3 or min(arr.shape[1:]) < 3:
        raise ValueError(f"a PSF must be a 2D image or a 3D (Z, Y, X) stack, got shape {arr.shape}")
    frame = np.concatenate([arr[:, 0].ravel(), arr[:, -1].ravel(), arr[:, :, 0].ravel(), arr[:, :, -1].ravel()])
    arr = np.clip(arr - np.median(frame), 0, None)
    focus = int(np.argmax(arr.reshape(len(arr), -1).max(1)))
    offsets = sorted(range(-(planes // 2), planes - planes // 2), key=abs)
    out = []
    for z in (focus + o * step for o in offsets):
        if not 0 <= z < len(arr) or arr[z].sum() <= 0:
            continue
        plane = arr[z]
        total = plane.sum()
        cy = int(round((plane.sum(1) * np.arange(plane.shape[0])).sum() / total))
        cx = int(round((plane.sum(0) * np.arange(plane.shape[1])).sum() / total))
        half = size // 2
        padded = np.pad(plane, half)
        cut = padded[cy : cy + size, cx : cx + size]
        if cut.sum() > 0:
            out.append(normalise(_centred(cut)).astype(np.float32))
    return out


def _centred(k: np.ndarray) -> np.ndarray:
    """``k`` shifted by a sub-pixel amount (a Fourier phase ramp) so that its centre of mass is the
    centre pixel; negative ringing is clipped."""
    total = k.sum()
    idx = np.arange(k.shape[0])
    com = np.array([(k.sum(1) * idx).sum(), (k.sum(0) * idx).sum()]) / total
    dy, dx = k.shape[0] // 2 - com
    fy = np.fft.fftfreq(k.shape[0])[:, None]
    fx = np.fft.fftfreq(k.shape[1])[None, :]
    shifted = np.fft.ifft2(np.fft.fft2(k) * np.exp(-2j * np.pi * (fy * dy + fx * dx))).real
    return np.clip(shifted, 0, None)
