"""A seeded bank of sharp crops: real training images small enough to travel with the code.

A GPU machine receives the working tree plus at most 64 MiB; the raw image folders
do not fit, and they must never enter the repository. :func:`pack_bank` draws
``crops`` random square crops of side ``size`` from the sharp images (as
:func:`napari_deblur.data.real.load_sharp` reads them, held-out files excluded),
image by image with the same weights training uses, and writes them as one
compressed ``.npz`` (photos uint8, fluorescence uint16) plus ``<bank>.json``, the
record of what went in: files, crop positions, seed, sizes and checksum.
``napari-deblur train --sharp BANK.npz`` trains on it like on a folder.
"""

import datetime
import hashlib
import json
from pathlib import Path

import numpy as np

from .real import SharpImages, load_sharp

KIND = "napari-deblur crop bank"
LEVELS = {"photo": (np.uint8, 255), "microscopy": (np.uint16, 65535)}


def is_bank(path) -> bool:
    return Path(path).suffix.lower() == ".npz" and Path(path).is_file()


def _crop(image: np.ndarray, size: int, rng) -> tuple[np.ndarray, list]:
    _, h, w = image.shape
    if h < size or w < size:  # mirror small images up to the crop size
        mode = "reflect" if h > size // 2 and w > size // 2 else "wrap"
        image = np.pad(image, ((0, 0), (0, max(0, size - h)), (0, max(0, size - w))), mode=mode)
        h, w = image.shape[1:]
    y, x = int(rng.integers(0, h - size + 1)), int(rng.integers(0, w - size + 1))
    return image[:, y : y + size, x : x + size], [y, x]


def pack_bank(paths, preset: str, out, crops: int = 160, size: int = 256, seed: int = 0, psfs=None) -> dict:
    """Write ``out`` (.npz) and ``out.json``; returns the record. ``psfs``: microscopy PSF files whose
    slices (:func:`napari_deblur.training.sources.load_psf_files`) travel in the bank too."""
    out = Path(out)
    if out.suffix.lower() != ".npz":
        raise ValueError(f"a crop bank is an .npz file, got {out}")
    if crops < 1 or size < 16:
        raise ValueError(f"need at least 1 crop of at least 16 px, got {crops} crops of {size} px")
    images = load_sharp(paths, preset)
    rng = np.random.default_rng([int(seed), 0xBA4C])
    dtype, top = LEVELS[preset]
    picks = rng.choice(len(images), size=crops, p=images.probabilities())
    bank = np.empty((crops, images.images[0].shape[0], size, size), dtype)
    where = []
    for n, i in enumerate(picks):
        crop, yx = _crop(images.images[i], size, rng)
        bank[n] = np.round(np.clip(crop, 0, 1) * top).astype(dtype)
        where.append({"source": images.names[i], "yx": yx})
    out.parent.mkdir(parents=True, exist_ok=True)
    arrays = {"crops": bank}
    if psfs:
        from ..training.sources import load_psf_files

        arrays["psfs"] = np.stack(load_psf_files(psfs))
    np.savez_compressed(out, **arrays)
    record = {
        "kind": KIND, "preset": preset, "crops": crops, "size": size, "seed": int(seed), "dtype": np.dtype(dtype).name,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "sources": [str(p) for p in paths], "images": images.summary(),
        "psf_files": [str(p) for p in psfs or []], "psf_slices": int(len(arrays.get("psfs", []))),
        "files": sorted({n.split("[")[0] for n in images.names}),
        "heldout_skipped": images.skipped, "picks": where,
        "sha256": hashlib.sha256(out.read_bytes()).hexdigest(), "bytes": out.stat().st_size,
    }
    Path(f"{out}.json").write_text(json.dumps(record, indent=1) + "\n")
    return record


def load_bank(path, preset: str) -> SharpImages:
    """The crops of a bank as :class:`SharpImages` (equal weights)."""
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
    channels = {"photo": 3, "microscopy": 1}[preset]
    if crops.ndim != 4 or crops.shape[1] != channels or crops.dtype not in (np.uint8, np.uint16):
        raise ValueError(f"{path}: expected (N, {channels}, S, S) uint8/uint16 crops for {preset}, "
                         f"got {crops.shape} {crops.dtype}")
    top = float(np.iinfo(crops.dtype).max)
    images = SharpImages(psfs=[np.asarray(k, np.float32) for k in psfs])
    for i, crop in enumerate(crops):
        images.add(crop.astype(np.float32) / top, f"{path.name}[{i}]")
    return images
