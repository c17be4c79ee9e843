"""Blur and noise on batches of images, in torch, on any device.

Images are (B, C, H, W) float tensors. :func:`blur` convolves each sample with
its own kernel through the FFT after reflect padding, so nothing wraps around;
:func:`blur_varying` blends the images blurred by M kernels with smooth weight
maps that sum to 1 (a spatially varying blur). The two pipelines,
:func:`degrade_photo` and :func:`degrade_microscopy`, take sharp tiles larger
than the wanted crop by the kernel radius on every side and return aligned
(blurred, sharp) pairs cropped to the valid region: every blurred pixel there
saw only real image content.

Photographs are blurred in linear light (sRGB gamma undone, then re-applied);
highlights are boosted beyond the sensor's range at random and clipped after the
blur, which gives the bright streaks of saturated lights; noise is shot plus
read noise in linear light, then a little noise and 8-bit rounding after the
gamma. Microscopy: random gain and background, Poisson-Gaussian noise with
20-1000 photons at the blurred image's peak, then (mostly) the same 0.1-99.9
percentile scaling that the engine applies to uint16 data at inference.
"""

import math

import torch
import torch.nn.functional as F

from ..metrics import linear_to_srgb, srgb_to_linear
from .motion import frame_average, random_flows


def _kernels_like(kernels, images: torch.Tensor) -> torch.Tensor:
    """(k, k), (B, k, k) or (B, C, k, k) kernels as a (B or 1, C or 1, k, k) tensor on the images' device."""
    k = torch.as_tensor(kernels).to(images.device, torch.float32)
    if k.ndim == 2:
        k = k[None, None]
    elif k.ndim == 3:
        k = k[:, None]
    if k.ndim != 4 or k.shape[-1] != k.shape[-2] or k.shape[-1] % 2 == 0:
        raise ValueError(f"kernels must be odd and square, (k, k), (B, k, k) or (B, C, k, k); got {tuple(k.shape)}")
    return k


def _pad(images: torch.Tensor, p: int, mode: str) -> torch.Tensor:
    if mode == "reflect" and p >= min(images.shape[-2:]):
        mode = "replicate"  # reflect needs the image to be larger than the padding
    return F.pad(images, (p, p, p, p), mode=mode) if p else images


def _transfer(k: torch.Tensor, shape) -> torch.Tensor:
    """rfft2 of the kernels zero-padded to ``shape`` with their centre moved to (0, 0)."""
    p = k.shape[-1] // 2
    fy = torch.fft.fftfreq(shape[0], device=k.device)[:, None]
    fx = torch.fft.rfftfreq(shape[1], device=k.device)[None, :]
    shift = torch.polar(torch.ones_like(fy * fx), 2 * torch.pi * p * (fy + fx))  # roll by -p, -p
    return torch.fft.rfft2(k, s=tuple(shape)) * shift


def blur(images: torch.Tensor, kernels, padding: str = "reflect") -> torch.Tensor:
    """Convolve (B, C, H, W) images with per-sample (or shared) kernels; same size out."""
    k = _kernels_like(kernels, images)
    p = k.shape[-1] // 2
    x = _pad(images.float(), p, padding)
    shape = x.shape[-2:]
    out = torch.fft.irfft2(torch.fft.rfft2(x) * _transfer(k, shape), s=shape)
    return out[..., p : p + images.shape[-2], p : p + images.shape[-1]]


def blur_varying(
    images: torch.Tensor, kernels: torch.Tensor, weights: torch.Tensor, padding: str = "reflect"
) -> torch.Tensor:
    """Spatially varying blur: sum over m of weights[:, m] * blur(images, kernels[:, m]).

    ``kernels`` (B, M, k, k), ``weights`` (B, M, H, W) summing to 1 over M.
    """
    k = torch.as_tensor(kernels).to(images.device, torch.float32)
    p = k.shape[-1] // 2
    x = _pad(images.float(), p, padding)
    shape = x.shape[-2:]
    spectrum = torch.fft.rfft2(x)
    h, w = images.shape[-2:]
    out = torch.zeros_like(images, dtype=torch.float32)
    for m in range(k.shape[1]):
        blurred = torch.fft.irfft2(spectrum * _transfer(k[:, m, None], shape), s=shape)
        out += weights[:, m, None] * blurred[..., p : p + h, p : p + w]
    return out


def smooth_weights(
    batch: int, m: int, h: int, w: int, generator=None, device="cpu", grid: int = 3, sharpness: float = 3.0
) -> torch.Tensor:
    """(batch, m, h, w) smooth non-negative maps summing to 1 over m (bicubic-upsampled random logits)."""
    logits = torch.randn(batch, m, grid, grid, generator=generator, device=device) * sharpness
    logits = F.interpolate(logits, size=(h, w), mode="bicubic", align_corners=False)
    return torch.softmax(logits, dim=1)


def gaussian_noise(x: torch.Tensor, sigma, generator=None) -> torch.Tensor:
    return x + torch.randn(x.shape, generator=generator, device=x.device) * sigma


def poisson_gaussian(x: torch.Tensor, photons, read_sigma=0.0, generator=None) -> torch.Tensor:
    """Shot noise for ``photons`` photons at intensity 1 (per sample: a (B, 1, 1, 1) tensor) plus read noise.

    For intensity m the variance is m / photons + read_sigma^2.
    """
    photons = torch.as_tensor(photons, dtype=torch.float32, device=x.device)
    rate = x.clamp_min(0) * photons
    if x.device.type in ("cpu", "cuda"):
        counts = torch.poisson(rate, generator=generator)
    else:  # no Poisson sampler on this backend (MPS): rounded normal approximation
        counts = (rate + rate.sqrt() * torch.randn(rate.shape, generator=generator, device=x.device)).round()
        counts = counts.clamp_min(0)
    return gaussian_noise(counts / photons, read_sigma, generator)


def _uniform(lo, hi, n, generator, device, log=False) -> torch.Tensor:
    u = torch.rand(n, 1, 1, 1, generator=generator, device=device)
    if log:
        return torch.exp(math.log(lo) + u * (math.log(hi) - math.log(lo)))
    return lo + u * (hi - lo)


def crop_margin(x: torch.Tensor, m: int) -> torch.Tensor:
    return x[..., m : x.shape[-2] - m, m : x.shape[-1] - m] if m else x


def _apply_blur(x, kernels, weights):
    kernels = torch.as_tensor(kernels).to(x.device, torch.float32)
    return blur(x, kernels) if weights is None else blur_varying(x, kernels, weights)


def degrade_photo(
    sharp: torch.Tensor,
    kernels,
    weights=None,
    generator=None,
    *,
    highlight_prob=0.3,
    highlight_gain=(1.5, 6.0),
    exposure=(0.8, 1.25),
    noise_prob=0.8,
    photons=(100.0, 20000.0),
    read_sigma=(1e-4, 2e-3),
    post_sigma=0.01,
    quantize_prob=0.5,
    jpeg_prob=0.0,
    jpeg_quality=(70.0, 95.0),
    motion=None,
    motion_extent=31.0,
    display=None,
):
    """sRGB tiles (B, 3, H, W) in [0, 1] -> (blurred, sharp), both cropped by the kernel radius, in [0, 1].

    ``kernels`` (B, k, k), or (B, M, k, k) with ``weights`` (B, M, H, W) for a spatially varying blur.
    A share ``jpeg_prob`` of the blurred images is compressed at a JPEG quality drawn from
    ``jpeg_quality`` (:func:`jpeg_like`), after the noise and the 8-bit rounding. The samples
    where the (B,) bool tensor ``motion`` is true are blurred by dynamic-scene motion
    instead (:func:`.motion.frame_average`, paths up to ``motion_extent`` px). The samples where
    the (B,) bool tensor ``display`` is true are blurred on their clipped, gamma-encoded values
    instead of in linear light: that is how video-derived datasets such as GoPro were made (their
    frames averaged as stored), and it leaves edges between bright and dark a different profile.
    """
    dev, b = sharp.device, sharp.shape[0]
    m = torch.as_tensor(kernels).shape[-1] // 2
    lin = srgb_to_linear(sharp.float()) * _uniform(*exposure, b, generator, dev, log=True)
    boost = _uniform(*highlight_gain, b, generator, dev, log=True)
    boost = torch.where(torch.rand(b, 1, 1, 1, generator=generator, device=dev) < highlight_prob, boost, 1.0)
    lin = lin * (1 + (boost - 1) * ((lin - 0.8) / 0.2).clamp(0, 1))  # only near-white pixels go beyond 1
    flows = None
    if motion is not None and bool(motion.any()):
        flows = random_flows(b, lin.shape[-2], lin.shape[-1], motion_extent, generator, dev)

    def spread(x):  # the kernel blur, or for the moving samples the frame average
        out = _apply_blur(x, kernels, weights)
        return out if flows is None else torch.where(motion.to(dev).view(b, 1, 1, 1), frame_average(x, *flows), out)

    blurred = spread(lin)
    if display is not None and bool(display.any()):
        encoded = srgb_to_linear(spread(linear_to_srgb(lin)))  # linear_to_srgb clips, as stored frames are
        blurred = torch.where(display.to(dev).view(b, 1, 1, 1), encoded, blurred)
    blurred = crop_margin(blurred, m)
    lin = crop_margin(lin, m)
    noisy = torch.rand(b, 1, 1, 1, generator=generator, device=dev) < noise_prob
    shot = poisson_gaussian(
        blurred,
        _uniform(*photons, b, generator, dev, log=True),
        _uniform(*read_sigma, b, generator, dev, log=True),
        generator,
    )
    blurred = linear_to_srgb(torch.where(noisy, shot, blurred))
    blurred = gaussian_noise(blurred, _uniform(0, post_sigma, b, generator, dev) * noisy, generator)
    rounded = torch.rand(b, 1, 1, 1, generator=generator, device=dev) < quantize_prob
    blurred = torch.where(rounded, torch.round(blurred.clamp(0, 1) * 255) / 255, blurred)
    if jpeg_prob > 0:
        compressed = torch.rand(b, 1, 1, 1, generator=generator, device=dev) < jpeg_prob
        quality = _uniform(*jpeg_quality, b, generator, dev).view(b)
        blurred = torch.where(compressed, jpeg_like(blurred.clamp(0, 1), quality), blurred)
    return blurred.clamp(0, 1), linear_to_srgb(lin)


# JPEG's example quantisation tables (ITU-T T.81, Annex K), luminance and chrominance, row by row.
# fmt: off
_Q_LUMA = (
     16,  11,  10,  16,  24,  40,  51,  61,
     12,  12,  14,  19,  26,  58,  60,  55,
     14,  13,  16,  24,  40,  57,  69,  56,
     14,  17,  22,  29,  51,  87,  80,  62,
     18,  22,  37,  56,  68, 109, 103,  77,
     24,  35,  55,  64,  81, 104, 113,  92,
     49,  64,  78,  87, 103, 121, 120, 101,
     72,  92,  95,  98, 112, 100, 103,  99,
)
_Q_CHROMA = (
     17,  18,  24,  47,  99,  99,  99,  99,
     18,  21,  26,  66,  99,  99,  99,  99,
     24,  26,  56,  99,  99,  99,  99,  99,
     47,  66,  99,  99,  99,  99,  99,  99,
) + (99,) * 32
# fmt: on


def _dct_matrix(n: int = 8, device="cpu") -> torch.Tensor:
    k = torch.arange(n, dtype=torch.float64)
    m = torch.cos(math.pi * (2 * k[None, :] + 1) * k[:, None] / (2 * n)) * math.sqrt(2 / n)
    m[0] /= math.sqrt(2)
    return m.to(device, torch.float32)


def jpeg_like(srgb: torch.Tensor, quality: torch.Tensor) -> torch.Tensor:
    """JPEG's lossy core on (B, 3, H, W) sRGB in [0, 1]: YCbCr, 4:2:0 chroma, 8x8 DCT quantised with
    the Annex K tables scaled to ``quality`` (B,) in 1..100 (the usual IJG scaling), and back.
    No entropy coding (it is lossless); blocks are aligned to the top-left corner."""
    b, _, h, w = srgb.shape
    ph, pw = (-h) % 16, (-w) % 16
    x = F.pad(srgb.float(), (0, pw, 0, ph), mode="replicate") * 255
    r, g, bl = x.unbind(1)
    y = 0.299 * r + 0.587 * g + 0.114 * bl
    cb = -0.168736 * r - 0.331264 * g + 0.5 * bl
    cr = 0.5 * r - 0.418688 * g - 0.081312 * bl
    chroma = F.avg_pool2d(torch.stack([cb, cr], 1), 2)
    q = quality.to(srgb.device, torch.float32).clamp(1, 100).view(b, 1, 1, 1)
    scale = torch.where(q < 50, 5000 / q, 200 - 2 * q)
    dct = _dct_matrix(device=srgb.device)

    def quantise(planes: torch.Tensor, table) -> torch.Tensor:  # (B, P, H, W), H and W multiples of 8
        n, p, hh, ww = planes.shape
        blocks = planes.reshape(n, p, hh // 8, 8, ww // 8, 8).transpose(3, 4)
        coeff = dct @ blocks @ dct.T
        t = torch.tensor(table, dtype=torch.float32, device=srgb.device).view(8, 8)
        step = ((t * scale.view(n, 1, 1, 1, 1, 1) + 50) // 100).clamp_min(1)
        blocks = dct.T @ (torch.round(coeff / step) * step) @ dct
        return blocks.transpose(3, 4).reshape(n, p, hh, ww)

    y = quantise(y[:, None] - 128, _Q_LUMA)[:, 0] + 128
    chroma = F.interpolate(quantise(chroma, _Q_CHROMA), scale_factor=2, mode="bilinear", align_corners=False)
    cb, cr = chroma.unbind(1)
    rgb = torch.stack([y + 1.402 * cr, y - 0.344136 * cb - 0.714136 * cr, y + 1.772 * cb], 1) / 255
    return rgb[..., :h, :w].clamp(0, 1)


def percentile_scale(blurred: torch.Tensor, sharp: torch.Tensor, lo=0.1, hi=99.9):
    """Map each sample's ``lo``/``hi`` percentiles of ``blurred`` to 0/1, the same map applied to ``sharp``."""
    flat = blurred.flatten(1).float()
    q = torch.quantile(flat, torch.tensor([lo / 100, hi / 100], device=flat.device), dim=1)
    low = q[0].view(-1, 1, 1, 1)
    span = (q[1] - q[0]).clamp_min(1e-3).view(-1, 1, 1, 1)
    return (blurred - low) / span, (sharp - low) / span


def degrade_microscopy(
    sharp: torch.Tensor,
    kernels,
    weights=None,
    generator=None,
    *,
    gain=(0.2, 1.0),
    background=(0.0, 0.05),
    peak_photons=(20.0, 1000.0),
    read_photons=(0.5, 3.0),
    normalize_prob=0.8,
):
    """Fluorescence tiles (B, 1, H, W) in [0, 1] -> noisy (blurred, sharp), cropped by the kernel radius.

    Without normalisation both stay near [0, 1]; with it (probability
    ``normalize_prob``) the blurred image's 0.1/99.9 percentiles become 0/1 and
    the sharp target, sharing the map, may exceed 1 where the blur spread a peak.
    """
    dev, b = sharp.device, sharp.shape[0]
    m = torch.as_tensor(kernels).shape[-1] // 2
    clean = sharp.float() * _uniform(*gain, b, generator, dev) + _uniform(*background, b, generator, dev)
    blurred = crop_margin(_apply_blur(clean, kernels, weights), m)
    clean = crop_margin(clean, m)
    peak = blurred.flatten(1).amax(1).clamp_min(1e-6).view(-1, 1, 1, 1)
    photons = _uniform(*peak_photons, b, generator, dev, log=True) / peak
    blurred = poisson_gaussian(blurred, photons, _uniform(*read_photons, b, generator, dev) / photons, generator)
    scaled_b, scaled_s = percentile_scale(blurred, clean)
    norm = torch.rand(b, 1, 1, 1, generator=generator, device=dev) < normalize_prob
    return torch.where(norm, scaled_b, blurred), torch.where(norm, scaled_s, clean)
