"""Blurred samples with their sharp references, made from package-shipped images.

Both are deterministic and built from images the training never sees: the
photograph is scikit-image's ``coffee`` (held out, see
:data:`napari_deblur.data.sharp.HELDOUT`) shaken by a fixed camera-shake kernel
in linear light with photon noise; the fluorescence stack is a synthetic cell
scene seen through a widefield microscope at several focus depths.
"""

import numpy as np
import torch

from .data import sharp as sources
from .data.degrade import blur
from .data.kernels import camera_shake
from .data.psf import widefield_psf
from .metrics import linear_to_srgb, srgb_to_linear


def shake_kernel(seed: int = 7, size: int = 23) -> np.ndarray:
    """The fixed camera-shake kernel of the photo sample."""
    return camera_shake(np.random.default_rng(seed), size=size, length=20.0, exposure=1.0)


def blurred_photo(seed: int = 7) -> dict:
    """``{'blurred', 'sharp'}``: uint8 RGB (400, 600, 3), plus the ``kernel``."""
    sharp = torch.from_numpy(np.array(sources.load_photo("coffee")))[None]
    kernel = shake_kernel(seed)
    linear = srgb_to_linear(sharp)
    blurred = blur(linear, torch.from_numpy(kernel)[None])
    rng = torch.Generator().manual_seed(seed)
    photons = 2000.0
    blurred = torch.poisson(blurred.clamp(0, None) * photons, generator=rng) / photons
    blurred = linear_to_srgb(blurred.clamp(0, 1))

    def to_uint8(t):
        return np.round(t[0].permute(1, 2, 0).clamp(0, 1).numpy() * 255).astype(np.uint8)

    return {"blurred": to_uint8(blurred), "sharp": to_uint8(sharp), "kernel": kernel}


def blurred_fluorescence_stack(seed: int = 3, size: int = 256, depths=(-1.0, -0.5, 0.0, 0.5, 1.0)) -> dict:
    """``{'blurred', 'sharp', 'scale'}``: uint16 (Z, Y, X) planes of one synthetic scene seen
    in a widefield microscope (NA 1.2, 520 nm, 100 nm pixels) at the given focus depths (um),
    with Poisson noise at a peak of ~500 photons; ``sharp`` is the scene itself."""
    rng = np.random.default_rng(seed)
    scene = sources.fluorescence(rng, size).astype(np.float32)
    scene = scene.reshape(size, size)
    planes = []
    for z in depths:
        psf = widefield_psf(size=31, na=1.2, wavelength=520.0, pixel=100.0, z=z)
        planes.append(blur(torch.from_numpy(scene)[None, None], torch.from_numpy(psf)[None])[0, 0].numpy())
    stack = np.stack(planes)
    peak, offset = 500.0, 100.0
    noisy = rng.poisson(stack * peak) + rng.normal(offset, 3.0, stack.shape)
    blurred = np.clip(np.round(noisy), 0, 65535).astype(np.uint16)
    reference = np.round(np.repeat(scene[None], len(depths), 0) * peak + offset).astype(np.uint16)
    return {"blurred": blurred, "sharp": reference, "scale": (0.5, 0.1, 0.1)}
