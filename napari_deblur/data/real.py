"""Real sharp images as training sources: folders of photos or fluorescence, or a packed crop bank.

:func:`load_sharp` turns ``--sharp`` arguments (folders, image files, or ``.npz``
crop banks from :func:`napari_deblur.data.bank.pack_bank`, read by :func:`load_bank`) into a
:class:`SharpImages`: float32 (C, H, W) planes in [0, 1] with a sampling weight
each. Files the benchmark holds out (:mod:`.heldout`) are always skipped.

* ``photo`` (3 channels): PNG/JPEG/BMP/TIFF photographs as sRGB /255 (16-bit
  /65535); grey photos are repeated over the three channels and weigh half as
  much as colour ones (colour statistics matter to the colour-shift readout).
* ``microscopy`` (1 channel): every plane of a 2D image or a Z/T stack (RGB files
  are averaged to grey), each scaled so that its 0.5th percentile (the background)
  is 0 and its 99.99th is 1, then clipped to [0, 1]. Planes with almost no signal
  (the 99.99th percentile within 2% of the range above the background) are dropped.

An image's weight is the square root of its area, so a large photo is drawn more
often than a small one, but not in proportion to its pixels.
"""

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .folder import SUFFIXES, read_planes
from .heldout import is_heldout

CHANNELS = {"photo": 3, "microscopy": 1}


@dataclass
class SharpImages:
    """Sharp planes (float32 (C, H, W) in [0, 1]) with their names and sampling weights."""

    images: list = field(default_factory=list)
    names: list = field(default_factory=list)
    weights: list = field(default_factory=list)
    skipped: list = field(default_factory=list)  # held-out files that were found and left out
    psfs: list = field(default_factory=list)  # 2D training PSFs that came with a crop bank

    def __len__(self) -> int:
        return len(self.images)

    def add(self, image: np.ndarray, name: str, weight: float = 1.0) -> None:
        image = np.ascontiguousarray(image, np.float32)
        image.setflags(write=False)
        self.images.append(image)
        self.names.append(name)
        self.weights.append(float(weight) * float(np.sqrt(image.shape[-2] * image.shape[-1])))

    def extend(self, other: "SharpImages") -> None:
        self.images += other.images
        self.names += other.names
        self.weights += other.weights
        self.skipped += other.skipped
        self.psfs += other.psfs

    def probabilities(self) -> np.ndarray:
        w = np.asarray(self.weights, np.float64)
        return w / w.sum()

    def summary(self) -> dict:
        return {
            "images": len(self.images),
            "pixels": int(sum(i.shape[-1] * i.shape[-2] for i in self.images)),
            "heldout_skipped": len(self.skipped),
        }


def find_images(paths) -> tuple[list[Path], list[Path]]:
    """(training files, held-out files found) under ``paths`` (folders are searched recursively)."""
    found = []
    for p in map(Path, paths):
        if p.is_dir():
            found += sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in SUFFIXES)
        elif p.is_file():
            found.append(p)
        else:
            raise ValueError(f"--sharp {p}: no such file or folder")
    keep = [f for f in found if not is_heldout(f)]
    return keep, [f for f in found if is_heldout(f)]


def _unit_range(plane: np.ndarray, dtype) -> np.ndarray:
    if np.issubdtype(dtype, np.integer):
        return plane / float(np.iinfo(dtype).max)
    return np.clip(plane, 0, 1) if plane.max() <= 1.0 else plane / 255.0


def photo_planes(path: Path) -> list[tuple[np.ndarray, bool]]:
    """(3, H, W) sRGB planes in [0, 1] of a photo file, each with whether it is grey."""
    planes, dtype = read_planes(path)
    out = []
    for p in planes:
        p = _unit_range(p.astype(np.float64), dtype)
        grey = p.shape[0] == 1 or bool(np.allclose(p, p[:1], atol=1 / 255))
        out.append((np.clip(np.repeat(p[:1], 3, 0) if p.shape[0] == 1 else p, 0, 1), grey))
    return out


def fluorescence_planes(path: Path, lo: float = 0.5, hi: float = 99.99, min_signal: float = 0.02):
    """(1, H, W) planes of a fluorescence file scaled to [0, 1] (see the module docstring)."""
    planes, _ = read_planes(path)
    out = []
    for p in planes:
        p = p.astype(np.float64).mean(0)
        if not np.isfinite(p).all():
            p = np.nan_to_num(p, nan=float(np.nanmin(p)))
        full = float(p.max() - p.min())
        low, high = np.percentile(p, [lo, hi])
        if full <= 0 or (high - low) < min_signal * full:
            continue
        out.append(np.clip((p - low) / (high - low), 0, 1)[None])
    return out


def load_folder_images(paths, preset: str) -> SharpImages:
    """Every sharp plane under ``paths`` for ``preset`` (held-out files skipped)."""
    if preset not in CHANNELS:
        raise ValueError(f"preset must be one of {sorted(CHANNELS)}, got {preset!r}")
    files, heldout = find_images(paths)
    images = SharpImages(skipped=[str(f) for f in heldout])
    for f in files:
        try:
            if preset == "photo":
                for i, (plane, grey) in enumerate(photo_planes(f)):
                    images.add(plane, f"{f}" + (f"[{i}]" if i else ""), 0.5 if grey else 1.0)
            else:
                for i, plane in enumerate(fluorescence_planes(f)):
                    images.add(plane, f"{f}[{i}]")
        except (OSError, ValueError) as err:
            raise ValueError(f"--sharp: cannot read {f}: {err}") from None
    return images


def is_bank(path) -> bool:
    """Whether ``path`` is an existing ``.npz`` file (read as a crop bank)."""
    return Path(path).suffix.lower() == ".npz" and Path(path).is_file()


def load_bank(path, preset: str) -> SharpImages:
    """The crops of a bank (:func:`napari_deblur.data.bank.pack_bank`) as :class:`SharpImages`
    (equal weights), with the PSF slices packed with them in ``psfs``."""
    path = Path(path)
    with np.load(path, allow_pickle=False) as data:
        if "crops" not in data.files:
            raise ValueError(f"{path} is not a crop bank (no 'crops' array)")
        crops = data["crops"]
        psfs = list(data["psfs"]) if "psfs" in data.files else []
    record_path = Path(f"{path}.json")
    if record_path.is_file():
        record = json.loads(record_path.read_text())
        if record.get("preset") not in (None, preset):
            raise ValueError(f"{path} is a {record['preset']} bank, not {preset}")
    channels = CHANNELS[preset]
    if crops.ndim != 4 or crops.shape[1] != channels or crops.dtype not in (np.uint8, np.uint16):
        raise ValueError(
            f"{path}: expected (N, {channels}, S, S) uint8/uint16 crops for {preset}, got {crops.shape} {crops.dtype}"
        )
    top = float(np.iinfo(crops.dtype).max)
    images = SharpImages(psfs=[np.asarray(k, np.float32) for k in psfs])
    for i, crop in enumerate(crops):
        images.add(crop.astype(np.float32) / top, f"{path.name}[{i}]")
    return images


def load_sharp(paths, preset: str) -> SharpImages:
    """Folders, files and ``.npz`` crop banks, all together."""
    paths = [Path(p) for p in paths]
    images = SharpImages()
    banks = [p for p in paths if is_bank(p)]
    for bank in banks:
        images.extend(load_bank(bank, preset))
    others = [p for p in paths if p not in banks]
    if others:
        images.extend(load_folder_images(others, preset))
    if not len(images):
        raise ValueError(
            f"--sharp {' '.join(map(str, paths))}: no usable {preset} images found (image files: {', '.join(SUFFIXES)})"
        )
    return images
