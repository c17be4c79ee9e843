"""Where a training run's pairs come from: the data options both trainers share.

:class:`DataOptions` is the part of a run's config that picks and mixes the data
(:class:`napari_deblur.training.train_xydeblur.TrainConfig` and
:class:`napari_deblur.training.train_dvsr.DVSRConfig` both extend it), and
:func:`make_training_pairs` turns it into the pair sampler that draws the training
batches and the fixed validation batch. The pairs come from a user's paired folder
(``pairs``), or are synthetic pairs made from real sharp images (``sharp``: folders,
files or crop banks) with procedural scenes as a minority, or (neither given) from the
procedural scenes and scikit-image's photographs alone.
"""

from dataclasses import dataclass

from ..data.pairs import make_sampler
from ..data.psf_files import load_psf_files
from ..data.real import load_sharp


@dataclass
class DataOptions:
    pairs: str | None = None  # a folder of the user's (blurred, sharp) pairs
    sharp: list | None = None  # folders, files or .npz crop banks of real sharp images
    psfs: list | None = None  # microscopy: PSF files (2D, or 3D Z stacks) added to the kernel pool
    real_share: float = 0.9  # share of sharp tiles cut from the real images (the rest procedural)
    identity_prob: float = 0.08  # share of identity kernels: sharp (noisy) inputs must stay sharp
    jpeg_prob: float = 0.25  # photos: share of blurred inputs JPEG-compressed (quality 70-95)
    motion_prob: float = 0.0  # photos: share blurred by dynamic-scene motion (data.motion) instead of a kernel
    soft_prob: float = 0.0  # share of real sharp tiles enlarged 1.25-2.5x (soft targets)
    display_prob: float = 0.0  # photos: share blurred on gamma-encoded values, as GoPro-style video data was
    kernel_size: int = 31  # side of the blur kernels (and the longest motion path), odd


def make_training_pairs(cfg, device, log=print):
    """``(pair sampler, validation batch)`` for a config with :class:`DataOptions` fields plus
    ``preset``, ``crop``, ``batch``, ``seed``, ``val_crop`` and ``val_crops``.

    The pair sampler (:func:`napari_deblur.data.pairs.make_sampler`) draws the training
    batches of (blurred, sharp) pairs; the validation batch is one held-out batch of
    ``val_crops`` pairs, drawn once from a sampler seeded ``10_000 + seed``."""
    options = {}
    if cfg.sharp and not cfg.pairs:
        images = load_sharp(cfg.sharp, cfg.preset)
        summary = images.summary()
        log(
            f"real sharp images: {summary['images']} planes, {summary['pixels'] / 1e6:.1f} Mpx "
            f"({summary['heldout_skipped']} held-out files left out)"
        )
        psfs = load_psf_files(cfg.psfs) + images.psfs if cfg.preset == "microscopy" else []
        options = {"sharp": images, "real_share": cfg.real_share, "psfs": psfs}
        if cfg.soft_prob:  # only when set: older configs and their samplers stay as they were
            options["soft_prob"] = cfg.soft_prob
    if not cfg.pairs:
        options["identity_prob"] = cfg.identity_prob
        if cfg.kernel_size != 31:  # only when changed: older configs and their samplers stay as they were
            options["kernel_size"] = cfg.kernel_size
        if cfg.preset == "photo":
            options["degrade_options"] = {"jpeg_prob": cfg.jpeg_prob}
            if cfg.motion_prob:
                options["motion_prob"] = cfg.motion_prob
            if cfg.display_prob:
                options["display_prob"] = cfg.display_prob
    pair_sampler = make_sampler(cfg.preset, cfg.crop, cfg.batch, device, cfg.seed, pairs=cfg.pairs, **options)
    val_crop = cfg.val_crop
    if "sharp" in options:  # validation crops must fit in the largest real image (crop banks are small)
        largest = max(min(im.shape[-2:]) for im in options["sharp"].images)
        val_crop = max(16, min(val_crop, (largest - 2 * (pair_sampler.kernel_size // 2)) // 16 * 16))
    val = make_sampler(
        cfg.preset, val_crop, cfg.val_crops, device, 10_000 + cfg.seed, pairs=cfg.pairs, heldout=True, **options
    ).sample()
    return pair_sampler, val
