"""A seeded bank of sharp crops: real training images small enough to travel with the code.

A GPU machine receives the working tree plus at most 64 MiB; the raw image folders
do not fit, and they must never enter the repository. :func:`pack_bank` draws
``crops`` random square crops of side ``size`` from the sharp images (as
:func:`napari_deblur.data.real.load_sharp` reads them, held-out files excluded),
image by image with the same weights training uses, and writes them as one
compressed ``.npz`` (photos uint8, fluorescence uint16) plus ``<bank>.json``, the
record of what went in: files, crop positions, seed, sizes and checksum.
``napari-deblur train --sharp BANK.npz`` trains on it like on a folder
(:func:`napari_deblur.data.real.load_bank` reads a bank back).
"""

import datetime
import hashlib
import json
from pathlib import Path

import numpy as np

from .psf_files import load_psf_files
from .real import load_sharp

KIND = "napari-deblur crop bank"
LEVELS = {"photo": (np.uint8, 255), "microscopy": (np.uint16, 65535)}


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
    slices (:func:`napari_deblur.data.psf_files.load_psf_files`) travel in the bank too."""
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
        arrays["psfs"] = np.stack(load_psf_files(psfs))
    np.savez_compressed(out, **arrays)
    record = {
        "kind": KIND,
        "preset": preset,
        "crops": crops,
        "size": size,
        "seed": int(seed),
        "dtype": np.dtype(dtype).name,
        "created": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "sources": [str(p) for p in paths],
        "images": images.summary(),
        "psf_files": [str(p) for p in psfs or []],
        "psf_slices": int(len(arrays.get("psfs", []))),
        "files": sorted({n.split("[")[0] for n in images.names}),
        "heldout_skipped": images.skipped,
        "picks": where,
        "sha256": hashlib.sha256(out.read_bytes()).hexdigest(),
        "bytes": out.stat().st_size,
    }
    Path(f"{out}.json").write_text(json.dumps(record, indent=1) + "\n")
    return record
