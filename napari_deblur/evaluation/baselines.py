"""Classical non-blind baselines with the true kernel: Wiener and Richardson-Lucy. numpy only.

Both work per channel on a reflect-padded image (so the FFT's periodic boundary
does not ring into the picture) and crop back; Wiener also tapers the padding
(:func:`edge_taper`), which it needs far more than Richardson-Lucy does.

* :func:`wiener`: ``X = conj(H) Y / (|H|^2 + balance |L|^2)`` with ``L`` the
  discrete Laplacian, the regularised Wiener/Tikhonov filter of
  ``skimage.restoration.wiener`` (same ``balance`` meaning), here with padding.
* :func:`richardson_lucy`: the multiplicative RL update of
  ``skimage.restoration.richardson_lucy`` through FFT convolutions;
  ``richardson_lucy_path`` returns the estimates at several iteration counts
  from one run, which makes the grid search over iterations cheap.
"""

import numpy as np

_LAPLACIAN = np.array([[0, -1, 0], [-1, 4, -1], [0, -1, 0]], np.float64)


def _otf(kernel: np.ndarray, shape) -> np.ndarray:
    """rfft2 of ``kernel`` zero-padded to ``shape`` with its centre moved to (0, 0)."""
    k = np.asarray(kernel, np.float64)
    big = np.zeros(shape)
    big[: k.shape[0], : k.shape[1]] = k
    big = np.roll(big, (-(k.shape[0] // 2), -(k.shape[1] // 2)), axis=(0, 1))
    return np.fft.rfft2(big)


def _planes(image: np.ndarray):
    """(C, H, W) view of a (H, W) or (C, H, W) image, and a function that undoes it."""
    image = np.asarray(image, np.float64)
    if image.ndim == 2:
        return image[None], lambda x: x[0]
    return image, lambda x: x


def _pad_width(kernel: np.ndarray, shape) -> int:
    return int(min(kernel.shape[0], min(shape) - 1))


def _taper_weights(inner, p: int) -> np.ndarray:
    """(H + 2p, W + 2p) weights: 1 on the image, falling smoothly (raised cosine) to 0 at the padded edge."""
    axes = []
    for n in inner:
        ramp = np.sin(0.5 * np.pi * (np.arange(p) + 0.5) / p) ** 2 if p else np.zeros(0)
        axes.append(np.concatenate([ramp, np.ones(n), ramp[::-1]]))
    return axes[0][:, None] * axes[1][None, :]


def edge_taper(planes: np.ndarray, kernel: np.ndarray, p: int, rounds: int = 3) -> np.ndarray:
    """Reflect-pad (C, H, W) planes by ``p`` and blend the padding towards its own circular blur
    (MATLAB's edgetaper, applied a few times): the padded image then looks blurred by ``kernel``
    across the periodic boundary too, so an FFT deconvolution does not ring from the borders."""
    padded = np.pad(planes, ((0, 0), (p, p), (p, p)), mode="reflect")
    shape = padded.shape[-2:]
    h = _otf(kernel, shape)
    w = _taper_weights(planes.shape[-2:], p)
    for _ in range(rounds):
        padded = w * padded + (1 - w) * np.fft.irfft2(np.fft.rfft2(padded) * h, s=shape)
    return padded


def wiener(image: np.ndarray, kernel: np.ndarray, balance: float) -> np.ndarray:
    """Wiener-Laplacian deconvolution of a (H, W) or (C, H, W) image; float64, same shape."""
    planes, back = _planes(image)
    p = _pad_width(kernel, planes.shape[-2:])
    padded = edge_taper(planes, kernel, p)
    shape = padded.shape[-2:]
    h = _otf(kernel, shape)
    reg = np.abs(_otf(_LAPLACIAN, shape)) ** 2
    filt = np.conj(h) / (np.abs(h) ** 2 + float(balance) * reg)
    out = np.fft.irfft2(np.fft.rfft2(padded) * filt, s=shape)
    return back(out[:, p : p + planes.shape[1], p : p + planes.shape[2]])


def richardson_lucy_path(image: np.ndarray, kernel: np.ndarray, iterations, eps: float = 1e-7) -> dict:
    """``{n: estimate after n RL iterations}`` for every ``n`` in ``iterations``, from one run."""
    planes, back = _planes(image)
    planes = np.clip(planes, 0, None)
    p = _pad_width(kernel, planes.shape[-2:])
    padded = np.pad(planes, ((0, 0), (p, p), (p, p)), mode="reflect")
    shape = padded.shape[-2:]
    h = _otf(kernel, shape)
    conv = lambda x, otf: np.fft.irfft2(np.fft.rfft2(x) * otf, s=shape)  # noqa: E731
    estimate = np.full_like(padded, 0.5)
    wanted, out = sorted({int(n) for n in iterations}), {}
    for n in range(1, wanted[-1] + 1 if wanted else 0):
        ratio = padded / np.maximum(conv(estimate, h), eps)
        estimate = np.clip(estimate * conv(ratio, np.conj(h)), 0, None)
        if n in wanted:
            out[n] = back(estimate[:, p : p + planes.shape[1], p : p + planes.shape[2]].copy())
    if 0 in wanted:
        out[0] = back(planes.copy())
    return out


def richardson_lucy(image: np.ndarray, kernel: np.ndarray, iterations: int) -> np.ndarray:
    """Richardson-Lucy deconvolution after ``iterations`` steps; float64, same shape."""
    return richardson_lucy_path(image, kernel, [iterations])[int(iterations)]
