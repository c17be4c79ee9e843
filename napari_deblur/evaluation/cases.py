"""The fixed, seeded benchmark images: blurred-and-noisy inputs with their sharp references.

Seeds are keyed by a tag (``SEED_TAG``) that the training samplers never use, then
by split (``"test"`` or ``"tune"``), track, noise level and index, so the tuning
split of the baselines never shares a crop, kernel or noise draw with the test
split. Photos are blurred in linear light (sRGB decoded, blurred, noise, encoded);
every blurred pixel saw real image content (tiles are cut with a margin of the
kernel radius, blurred, then cropped).
"""

import importlib.util
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from ..data import sharp as sources
from ..data.degrade import blur
from ..metrics import linear_to_srgb, srgb_to_linear
from .kernels import MICROSCOPY_PSFS, PHOTO_FAMILIES, microscopy_psf, random_photo_kernel

SEED_TAG = 0xE7A1_2026
SPLITS = {"test": 0, "tune": 1}
TRACKS = {"photo": 0, "microscopy": 1}

PHOTO_NOISE = {
    "low": {"description": "Gaussian sigma 0.5/255 (sRGB)", "photons": None, "sigma": 0.5 / 255},
    "high": {
        "description": "Poisson 300 photons at the blurred peak (linear light) + Gaussian sigma 2/255 (sRGB)",
        "photons": 300.0,
        "sigma": 2.0 / 255,
    },
}
MICROSCOPY_NOISE = {
    "low": {
        "description": "Poisson 500 photons at the blurred peak + 1 photon read noise",
        "photons": 500.0,
        "read": 1.0,
    },
    "high": {
        "description": "Poisson 50 photons at the blurred peak + 1 photon read noise",
        "photons": 50.0,
        "read": 1.0,
    },
}


@dataclass
class Case:
    """One benchmark image. Photos: (3, H, W) sRGB in [0, 1]; microscopy: (H, W), scene units ~[0, 1]."""

    id: str
    track: str
    noise: str
    source: str
    kernel_name: str
    kernel: np.ndarray
    blurred: np.ndarray
    sharp: np.ndarray
    params: dict = field(default_factory=dict)


def seed_key(split: str, track: str, *rest) -> list[int]:
    return [SEED_TAG, SPLITS[split], TRACKS[track], *[int(r) for r in rest]]


def blur_valid(tile: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """Blur a (C, H, W) tile with an odd square kernel (float32, :func:`~napari_deblur.data.degrade.blur`)
    and drop the kernel radius on every side: float64, every pixel saw only the tile's content."""
    m = kernel.shape[0] // 2
    out = blur(torch.from_numpy(np.ascontiguousarray(tile, np.float32))[None], torch.from_numpy(kernel)[None])[0]
    return out.numpy().astype(np.float64)[..., m : tile.shape[-2] - m, m : tile.shape[-1] - m]


def _noise_id(noise: str) -> int:
    return ["low", "high"].index(noise)


def photo_cases(split: str, crop: int, per_photo: int, noises, all_families: bool = True) -> list[Case]:
    """Crops of the held-out photos x kernel families (all, or one per crop in turn) x noise levels."""
    photos = sources.heldout_photos()
    cases = []
    index = 0
    for p, name in enumerate(sorted(photos)):
        image = np.asarray(photos[name], np.float64)
        for j in range(per_photo):
            rng = np.random.default_rng(seed_key(split, "photo", p, j))
            h, w = image.shape[1:]
            if h < crop or w < crop:
                raise ValueError(f"photo {name!r} ({h}x{w}) is smaller than the crop {crop}")
            y, x = int(rng.integers(0, h - crop + 1)), int(rng.integers(0, w - crop + 1))
            families = PHOTO_FAMILIES if all_families else [PHOTO_FAMILIES[index % len(PHOTO_FAMILIES)]]
            index += 1
            for f, family in enumerate(families):
                kernel, kparams = random_photo_kernel(
                    np.random.default_rng(seed_key(split, "photo", p, j, 100 + PHOTO_FAMILIES.index(family))), family
                )
                m = kernel.shape[0] // 2
                padded = np.pad(image, ((0, 0), (m, m), (m, m)), mode="reflect")  # only for crops at the edge
                tile = padded[:, y : y + crop + 2 * m, x : x + crop + 2 * m]
                lin_sharp = srgb_to_linear(tile)
                lin = blur_valid(lin_sharp, kernel)
                sharp = linear_to_srgb(lin_sharp[:, m : m + crop, m : m + crop])
                for noise in noises:
                    cfg = PHOTO_NOISE[noise]
                    nrng = np.random.default_rng(seed_key(split, "photo", p, j, 100 + f, 10 + _noise_id(noise)))
                    noisy = lin
                    if cfg["photons"]:
                        scale = cfg["photons"] / max(float(lin.max()), 1e-6)
                        noisy = nrng.poisson(np.clip(lin, 0, None) * scale) / scale
                    blurred = linear_to_srgb(noisy) + nrng.normal(0, cfg["sigma"], lin.shape)
                    cases.append(
                        Case(
                            id=f"{name}-{j}-{family}",
                            track="photo",
                            noise=noise,
                            source=f"{name} crop ({y}, {x})",
                            kernel_name=family,
                            kernel=kernel,
                            blurred=np.clip(blurred, 0, 1).astype(np.float32),
                            sharp=sharp.astype(np.float32),
                            params={"crop": [y, x, crop], **kparams},
                        )
                    )
    return cases


def stardist_image() -> np.ndarray | None:
    """stardist's ``img2d.tif`` (real fluorescent nuclei) scaled to [0, 1], or None without stardist."""
    spec = importlib.util.find_spec("stardist")
    if spec is None or not spec.submodule_search_locations:
        return None
    found = sorted(Path(next(iter(spec.submodule_search_locations))).rglob("img2d.tif"))
    if not found:
        return None
    import tifffile

    img = np.asarray(tifffile.imread(found[0]), np.float64)
    if img.ndim != 2:
        return None
    lo, hi = np.percentile(img, [0.1, 99.9])
    return np.clip((img - lo) / max(hi - lo, 1e-9), 0, 1)


def microscopy_cases(
    split: str, size: int, scenes: int, noises, all_psfs: bool = True, use_stardist: bool = True
) -> list[Case]:
    """Synthetic fluorescence scenes (seeds outside training's) and stardist's img2d if installed,
    x benchmark PSFs (all, or one per scene in turn) x noise levels."""
    psfs = {name: microscopy_psf(name) for name in MICROSCOPY_PSFS}
    margin = max(k.shape[0] for k, _ in psfs.values()) // 2
    sources_list = []
    for i in range(scenes):
        rng = np.random.default_rng(seed_key(split, "microscopy", i))
        scene = sources.fluorescence(rng, size + 2 * margin)[0].astype(np.float64)
        sources_list.append((f"scene{i}", scene))
    real = stardist_image() if use_stardist else None
    if real is not None:
        rng = np.random.default_rng(seed_key(split, "microscopy", 999))
        side = size + 2 * margin
        y, x = int(rng.integers(0, real.shape[0] - side + 1)), int(rng.integers(0, real.shape[1] - side + 1))
        sources_list.append((f"stardist-img2d({y},{x})", real[y : y + side, x : x + side]))
    cases = []
    for s, (name, scene) in enumerate(sources_list):
        names = MICROSCOPY_PSFS if all_psfs else [MICROSCOPY_PSFS[s % len(MICROSCOPY_PSFS)]]
        for psf_name in names:
            kernel, kparams = psfs[psf_name]
            m = kernel.shape[0] // 2
            tile = scene[margin - m : margin + size + m, margin - m : margin + size + m]
            clean = blur_valid(tile[None], kernel)[0]
            sharp = scene[margin : margin + size, margin : margin + size]
            for noise in noises:
                cfg = MICROSCOPY_NOISE[noise]
                nrng = np.random.default_rng(
                    seed_key(split, "microscopy", s, 100 + MICROSCOPY_PSFS.index(psf_name), 10 + _noise_id(noise))
                )
                scale = cfg["photons"] / max(float(clean.max()), 1e-6)
                counts = nrng.poisson(np.clip(clean, 0, None) * scale) + nrng.normal(0, cfg["read"], clean.shape)
                cases.append(
                    Case(
                        id=f"{name}-{psf_name}",
                        track="microscopy",
                        noise=noise,
                        source=name,
                        kernel_name=psf_name,
                        kernel=kernel,
                        blurred=(counts / scale).astype(np.float32),
                        sharp=sharp.astype(np.float32),
                        params=dict(kparams),
                    )
                )
    return cases
