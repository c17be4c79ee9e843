"""The real-data benchmark's images, built from the held-out real data (``../shared/data``).

Every case is what a user would hand the engine (``image``: uint8 photos, uint16
camera counts for fluorescence) plus its sharp reference in unit scale and the map
``unit = (x - offset) / gain`` that puts the engine's output on the reference's scale.
The held-out files are listed in :mod:`napari_deblur.data.heldout`; training never
reads them.

* ``gopro``: the 4 real GoPro blur/sharp pairs (dynamic scenes, a real camera), at full
  resolution (``quick``: a central crop).
* ``photo_blur``: McMaster and Set5 crops, blurred in linear light by kernels of
  families training never draws (:mod:`.kernels`: arc and polyline motion, long camera
  shake, annular defocus), clipped highlights, Gaussian noise of 1/255 after the sRGB
  curve, 8-bit rounding.
* ``fluorescence``: three held-out W2S widefield fields (400-frame averages), blurred by
  the measured lattice light-sheet bead PSF (its focal plane) and by benchmark PSFs that
  training never uses, then Poisson noise (60 or 300 photons at the blurred peak) plus
  2 e- read noise and an offset of 100, as uint16 camera counts.
* ``identity_photo`` / ``identity_microscopy``: sharp held-out photos, and in-focus planes
  of the sharp pollen volume, as they are: the output must equal the input.
"""

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ..data.heldout import W2S_HELDOUT_FIELDS
from ..data.psf import psf_slices
from ..data.real import fluorescence_planes, photo_planes
from ..metrics import linear_to_srgb, srgb_to_linear
from .cases import blur_valid
from .kernels import PHOTO_FAMILIES, microscopy_psf, random_photo_kernel

SEED = 0x5EA1_17
FLUO_PSFS = ("measured_lls_bead", "widefield_na1.45", "gauss_lorentz")
FLUO_PHOTONS = (300.0, 60.0)
SIZES = {"full": {"photo": 256, "fluo": 512, "gopro": None}, "quick": {"photo": 96, "fluo": 128, "gopro": 192}}


@dataclass
class RealCase:
    id: str
    track: str
    image: np.ndarray  # what the engine gets: (H, W, 3) uint8 or (H, W) uint16
    sharp: np.ndarray  # reference in unit scale: (3, H, W) or (H, W) float32
    offset: float = 0.0
    gain: float = 255.0
    kernel: np.ndarray | None = None  # the true kernel (linear light for photos), when known
    params: dict = field(default_factory=dict)

    def to_unit(self, x: np.ndarray) -> np.ndarray:
        """An engine output (input units, the input's layout) on the reference's scale and layout."""
        u = (np.asarray(x, np.float64) - self.offset) / self.gain
        return u.transpose(2, 0, 1) if u.ndim == 3 else u

    @property
    def blurred_unit(self) -> np.ndarray:
        return self.to_unit(self.image)


def _crop(a: np.ndarray, size, rng) -> tuple[np.ndarray, list]:
    """A random ``size`` square crop (or the whole image when ``size`` is None or too large)."""
    h, w = a.shape[-2:]
    if size is None or h < size or w < size:
        size = None if size is None else min(size, h, w)
    if size is None:
        return a, [0, 0]
    y, x = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
    return a[..., y : y + size, x : x + size], [y, x]


def gopro_cases(root: Path, mode: str) -> list[RealCase]:
    from PIL import Image

    folder = root / "real_blur_pairs" / "gopro_train"
    size = SIZES[mode]["gopro"]
    cases = []
    for path in sorted((folder / "blur").glob("*.png")):
        with Image.open(path) as b, Image.open(folder / "sharp" / path.name) as s:
            blurred, sharp = np.asarray(b.convert("RGB")), np.asarray(s.convert("RGB"))
        if size:
            y, x = (blurred.shape[0] - size) // 2, (blurred.shape[1] - size) // 2
            blurred, sharp = blurred[y : y + size, x : x + size], sharp[y : y + size, x : x + size]
        cases.append(
            RealCase(
                path.stem,
                "gopro",
                np.ascontiguousarray(blurred),
                (sharp.transpose(2, 0, 1) / 255).astype(np.float32),
                params={"file": path.name},
            )
        )
    return cases


def heldout_photo_files(root: Path) -> list[Path]:
    photos = root / "photos"
    return sorted((photos / "mcmaster").glob("*.tif")) + sorted((photos / "set5").glob("*.bmp"))


def photo_blur_cases(root: Path, mode: str) -> list[RealCase]:
    size = SIZES[mode]["photo"]
    cases = []
    for i, path in enumerate(heldout_photo_files(root)):
        rng = np.random.default_rng([SEED, 1, i])
        family = PHOTO_FAMILIES[i % len(PHOTO_FAMILIES)]
        kernel, kparams = random_photo_kernel(rng, family)
        m = kernel.shape[0] // 2
        image = photo_planes(path)[0][0]
        side = min(size, *image.shape[1:])  # Set5's woman is 228 px wide
        tile, yx = _crop(np.pad(image, ((0, 0), (m, m), (m, m)), mode="reflect"), side + 2 * m, rng)
        lin = srgb_to_linear(tile) * (1 + 2.0 * np.clip((srgb_to_linear(tile) - 0.9) / 0.1, 0, 1))  # hot highlights
        blurred = linear_to_srgb(blur_valid(lin, kernel)) + rng.normal(0, 1 / 255, (3, side, side))
        sharp = tile[:, m : m + side, m : m + side]
        cases.append(
            RealCase(
                f"{path.stem}-{family}",
                "photo_blur",
                np.round(np.clip(blurred, 0, 1) * 255).astype(np.uint8).transpose(1, 2, 0),
                sharp.astype(np.float32),
                kernel=kernel,
                params={"file": path.name, "crop": yx, "family": family, **kparams},
            )
        )
    return cases


def measured_psf(root: Path, size: int = 41) -> np.ndarray:
    import tifffile

    return psf_slices(tifffile.imread(root / "psfs" / "lattice_lightsheet_bead" / "psf.tif"), size, planes=1)[0]


def fluorescence_cases(root: Path, mode: str) -> list[RealCase]:
    size = SIZES[mode]["fluo"]
    psfs = {"measured_lls_bead": measured_psf(root)}
    psfs.update({name: microscopy_psf(name)[0] for name in FLUO_PSFS[1:]})
    cases, n = [], 0
    for f, fieldname in enumerate(W2S_HELDOUT_FIELDS):
        path = root / "fluorescence" / "w2s_widefield" / f"target_avg400_{fieldname}.tif"
        plane = fluorescence_planes(path)[0][0]
        for p, (psf_name, kernel) in enumerate(psfs.items()):
            rng = np.random.default_rng([SEED, 2, f, p])
            m = kernel.shape[0] // 2
            tile, yx = _crop(np.pad(plane, m, mode="reflect"), size + 2 * m, rng)
            clean = blur_valid(tile[None], kernel)[0]
            photons = FLUO_PHOTONS[n % len(FLUO_PHOTONS)] / max(float(clean.max()), 1e-6)
            n += 1
            counts = rng.poisson(np.clip(clean, 0, None) * photons) + rng.normal(0, 2.0, clean.shape) + 100
            cases.append(
                RealCase(
                    f"w2s_{fieldname}-{psf_name}",
                    "fluorescence",
                    np.clip(np.round(counts), 0, 65535).astype(np.uint16),
                    tile[m : m + size, m : m + size].astype(np.float32),
                    offset=100.0,
                    gain=photons,
                    kernel=kernel,
                    params={
                        "file": path.name,
                        "crop": yx,
                        "psf": psf_name,
                        "photons_at_peak": FLUO_PHOTONS[(n - 1) % 2],
                    },
                )
            )
    return cases


def identity_cases(root: Path, mode: str) -> list[RealCase]:
    import tifffile

    size = SIZES[mode]["photo"]
    cases = []
    for i, path in enumerate(heldout_photo_files(root)):
        image, yx = _crop(photo_planes(path)[0][0], size, np.random.default_rng([SEED, 3, i]))
        cases.append(
            RealCase(
                f"{path.stem}",
                "identity_photo",
                np.round(image * 255).astype(np.uint8).transpose(1, 2, 0),
                image.astype(np.float32),
                params={"file": path.name, "crop": yx},
            )
        )
    volume = tifffile.imread(root / "fluorescence" / "sdeconv" / "pollen.tif")
    energy = volume.reshape(len(volume), -1).astype(np.float64).std(1)
    planes = sorted(np.argsort(energy)[-(2 if mode == "quick" else 6) :].tolist())  # the in-focus planes
    for z in planes:
        raw = volume[z]
        lo, hi = np.percentile(raw, [0.1, 99.9])
        cases.append(
            RealCase(
                f"pollen-z{z}",
                "identity_microscopy",
                np.ascontiguousarray(raw),
                ((raw - lo) / (hi - lo)).astype(np.float32),
                offset=float(lo),
                gain=float(hi - lo),
                params={"file": "pollen.tif", "plane": int(z)},
            )
        )
    return cases


def real_blur_only_files(root: Path) -> list[Path]:
    folder = root / "real_blur_only"
    return sorted(
        p for p in folder.rglob("*") if p.suffix.lower() in (".png", ".jpg", ".jpeg") and "kernel" not in p.name.lower()
    )
