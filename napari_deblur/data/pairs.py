"""Batches of (blurred, sharp) training pairs, made on the training device.

:class:`PairSampler` keeps a pool of sharp tiles and a pool of kernels on the
device. A batch picks tiles, random crops, flips/transposes (all 8 square
symmetries), one kernel per sample (or 3 blended by smooth maps, a spatially
varying blur) and degrades them (:mod:`.degrade`): only indexing, FFTs and
noise, no host work. Every ``refresh_every`` batches a fixed eighth of each
pool is regenerated (made in a background thread during the previous half
period). Slot ``i`` of generation ``g`` depends only on
``(seed, i, g)`` and batch ``n`` only on ``(seed, n)`` and the pools, so the
same seed gives the same batches on a device, and :meth:`state_dict` (just
the batch counter) resumes a run exactly.

Presets: ``"photo"`` (3 channels; scikit-image photographs and dead leaves;
camera shake, motion, defocus and Gaussian kernels) and ``"microscopy"`` (1
channel; fluorescence-like scenes and some grey dead leaves; Born & Wolf PSFs
plus a few small Gaussian or shake kernels). With ``sharp`` (real images,
:class:`.real.SharpImages`) a share ``real_share`` of the sharp tiles are random
crops of those images, rescaled at random (photos 0.35-1x, fluorescence 0.5-1x),
and the procedural scenes are the rest; ``psfs`` adds 2D PSFs (slices of measured
or computed 3D PSFs, :func:`.psf.psf_slices`) to the microscopy kernel pool; a share
``identity_prob`` of the kernels is the identity, and for those samples the target is the
(noisy) input itself: an already sharp image must come back as it is, not denoised or
otherwise rewritten. Photos: a share ``motion_prob`` of the samples is blurred by
dynamic-scene motion instead of a kernel (:mod:`.motion`, paths up to ``kernel_size``
px), and a share ``display_prob`` is blurred on gamma-encoded values instead of in linear
light (as video-derived data such as GoPro was made). :class:`FolderPairs` serves random
aligned crops of a user's paired images instead
(see :mod:`.folder`).
"""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F

from . import sharp as sources
from .degrade import degrade_microscopy, degrade_photo, smooth_weights
from .folder import FolderPairs, dihedral
from .kernels import delta, pad_kernel, random_photo_kernel
from .psf import random_microscopy_psf
from .real import SharpImages

PRESETS = {"photo": 3, "microscopy": 1}
ROUNDS = 8  # a pool is fully renewed after this many refreshes
REFRESH_EVERY = 100  # batches between two refreshes (the default of PairSampler)

__all__ = ["PRESETS", "REFRESH_EVERY", "FolderPairs", "PairSampler", "make_sampler"]


def _rng(*key) -> np.random.Generator:
    return np.random.default_rng([int(k) for k in key])


def _photo_tile(rng, photos: dict, tile: int) -> np.ndarray | None:
    """A random crop of a random photograph, downscaled by 1-2.8x (less noise and JPEG trace), or None."""
    names = [n for n, im in photos.items() if min(im.shape[1:]) >= tile]
    if not names:
        return None
    return _rescaled_crop(rng, photos[names[rng.integers(len(names))]], tile, 0.35)


def _real_tile(
    rng, images: SharpImages, eligible: np.ndarray, tile: int, min_scale: float, soft_prob: float = 0.0
) -> np.ndarray:
    """A random crop of a real image (drawn by weight among those at least ``tile`` on a side), rescaled.

    A share ``soft_prob`` of the tiles is enlarged instead (:data:`SOFT_SCALES`), so that the
    sharp targets include soft content, as real photos and video frames do."""
    im = images.images[int(rng.choice(eligible[0], p=eligible[1]))]
    if soft_prob and rng.random() < soft_prob:  # no draw when off: streams stay as they were
        return _rescaled_crop(rng, im, tile, *SOFT_SCALES)
    return _rescaled_crop(rng, im, tile, min_scale)


SOFT_SCALES = (1.25, 2.5)  # the enlargement of the soft tiles (bicubic)


def _rescaled_crop(rng, im: np.ndarray, tile: int, min_scale: float, max_scale: float = 1.0) -> np.ndarray:
    """A ``tile``-sided crop of ``im`` rescaled by a random factor in [``min_scale``, ``max_scale``].

    Below 1 the crop is downscaled (antialiased: crisper, less noise and JPEG trace); above 1
    it is enlarged (bicubic: soft, like out-of-focus backgrounds, small-sensor optics and
    video frames)."""
    h, w = im.shape[1:]
    scale = rng.uniform(max(min_scale, tile / min(h, w)), max(max_scale, tile / min(h, w)))
    side = min(h, w, int(round(tile / scale)))
    y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
    crop = torch.from_numpy(np.array(im[:, y : y + side, x : x + side], np.float32))[None]  # a writable copy
    if side > tile:
        crop = F.interpolate(crop, size=(tile, tile), mode="bilinear", antialias=True, align_corners=False)
    elif side < tile:
        crop = F.interpolate(crop, size=(tile, tile), mode="bicubic", align_corners=False)
    return crop[0].clamp(0, 1).numpy()


class PairSampler:
    """Synthetic (blurred, sharp) batches of shape (batch, C, crop, crop), float32, on ``device``.

    ``pool_size`` sharp tiles of side ``crop + kernel_size - 1 + tile_slack`` and
    ``kernel_pool`` kernels live on the device; ``max_blur`` (default
    ``kernel_size``) bounds the photographic kernels' extent (a curriculum knob);
    ``spatial_prob`` is the share of samples with a spatially varying blur;
    ``degrade_options`` go to :func:`.degrade.degrade_photo` or
    :func:`.degrade.degrade_microscopy` (noise ranges and so on). ``heldout``
    draws from the held-out photographs and a separate seed stream.
    """

    def __init__(
        self,
        preset="photo",
        crop=192,
        batch=16,
        device="cpu",
        seed=0,
        *,
        heldout=False,
        pool_size=48,
        kernel_pool=192,
        refresh_every=REFRESH_EVERY,
        kernel_size=31,
        max_blur=None,
        spatial_prob=0.25,
        tile_slack=32,
        degrade_options=None,
        sharp: SharpImages | None = None,
        real_share=0.9,
        psfs=None,
        psf_share=0.25,
        identity_prob=0.0,
        motion_prob=0.0,
        soft_prob=0.0,
        display_prob=0.0,
    ):
        if preset not in PRESETS:
            raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {preset!r}")
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.preset, self.channels = preset, PRESETS[preset]
        self.crop, self.batch, self.seed, self.heldout = int(crop), int(batch), int(seed), bool(heldout)
        self.device = torch.device(device)
        self.kernel_size, self.max_blur = int(kernel_size), int(max_blur or kernel_size)
        self.margin = self.kernel_size // 2
        self.patch = self.crop + 2 * self.margin
        self.tile = self.patch + int(tile_slack)
        self.refresh_every, self.spatial_prob = max(1, int(refresh_every)), float(spatial_prob)
        self.degrade_options = dict(degrade_options or {})  # keyword arguments of degrade_photo/_microscopy
        self.step = 0
        self._photos = {}
        if preset == "photo" and sharp is None:
            self._photos = sources.heldout_photos() if heldout else sources.training_photos()
        self.real_share, self.psf_share, self.identity_prob = float(real_share), float(psf_share), float(identity_prob)
        self.motion_prob = float(motion_prob) if preset == "photo" else 0.0
        self.display_prob = float(display_prob) if preset == "photo" else 0.0
        self.soft_prob = float(soft_prob)
        self._real, self._eligible = sharp, None
        if sharp is not None:
            sides = np.array([min(im.shape[-2:]) for im in sharp.images])
            keep = np.flatnonzero(sides >= self.tile)
            if not len(keep):
                raise ValueError(
                    f"no sharp image is at least {self.tile} px on a side (crop {self.crop} plus the "
                    f"kernel margin and slack); the largest is {sides.max()} px: use a smaller --crop"
                )
            weights = sharp.probabilities()[keep]
            self._eligible = (keep, weights / weights.sum())
        self._psfs = [pad_kernel(np.asarray(k, np.float32), self.kernel_size) for k in (psfs or [])]
        self.pool = torch.zeros(pool_size, self.channels, self.tile, self.tile, device=self.device)
        self.kernels = torch.zeros(kernel_pool, self.kernel_size, self.kernel_size, device=self.device)
        self._sharp_versions = np.full(pool_size, -1)
        self._kernel_versions = np.full(kernel_pool, -1)
        self._generation, self._ahead, self._worker = -1, None, None
        self._sync_pools()

    # pools -------------------------------------------------------------------------------------
    def _sharp_item(self, i: int, version: int) -> np.ndarray:
        rng = _rng(self.seed, 0, i, version, self.heldout)
        if self._real is not None and rng.random() < self.real_share:
            min_scale = 0.35 if self.preset == "photo" else 0.5
            return _real_tile(rng, self._real, self._eligible, self.tile, min_scale, self.soft_prob)
        if self.preset == "photo":
            if self._photos and (self.heldout or rng.random() < 0.6):
                tile = _photo_tile(rng, self._photos, self.tile)
                if tile is not None:
                    return tile
            return sources.dead_leaves(rng, self.tile, 3)
        if rng.random() < 0.85:
            return sources.fluorescence(rng, self.tile)
        return sources.dead_leaves(rng, self.tile, 1) * rng.uniform(0.3, 1.0)

    def _kernel_item(self, i: int, version: int) -> np.ndarray:
        rng = _rng(self.seed, 1, i, version, self.heldout)
        if self.identity_prob and rng.random() < self.identity_prob:  # no draw when off: streams stay as they were
            return delta(self.kernel_size)
        if self._psfs and self.preset == "microscopy" and rng.random() < self.psf_share:
            return self._psfs[int(rng.integers(len(self._psfs)))]
        if self.preset == "photo":
            return random_photo_kernel(rng, self.max_blur, self.kernel_size)
        pick = rng.random()
        if pick < 0.8:
            return random_microscopy_psf(rng, self.kernel_size)
        family = "gaussian" if pick < 0.9 else "shake"
        return random_photo_kernel(rng, min(self.max_blur, 11), self.kernel_size, family=family)

    @staticmethod
    def _version(i: int, generation: int) -> int:
        """The last generation (0: the first build) at which slot ``i`` was regenerated."""
        return max(0, generation - (generation - i) % ROUNDS)

    def _jobs(self, generation: int) -> list[tuple[int, int, int]]:
        """(pool 0 sharp / 1 kernels, slot, version) of the slots that differ at ``generation``."""
        return [
            (p, i, self._version(i, generation))
            for p, versions in enumerate((self._sharp_versions, self._kernel_versions))
            for i in range(len(versions))
            if versions[i] != self._version(i, generation)
        ]

    def _make(self, jobs) -> list[np.ndarray]:
        return [(self._sharp_item if p == 0 else self._kernel_item)(i, v) for p, i, v in jobs]

    def _sync_pools(self):
        """Bring the pools to the current generation; half-way through one, start making the next."""
        generation = self.step // self.refresh_every
        if generation != self._generation:
            jobs = self._jobs(generation)
            ahead = self._ahead if self._ahead and self._ahead[0] == jobs else None
            items = ahead[1].result() if ahead else self._make(jobs)
            for (p, i, v), item in zip(jobs, items):
                (self.pool if p == 0 else self.kernels)[i] = torch.from_numpy(item).to(self.device)
                (self._sharp_versions if p == 0 else self._kernel_versions)[i] = v
            self._generation, self._ahead = generation, None
        elif self._ahead is None and self.step % self.refresh_every >= self.refresh_every // 2:
            if self._worker is None:  # host work in a thread, overlapping the device's
                self._worker = ThreadPoolExecutor(1, thread_name_prefix="napari-deblur-pool")
            jobs = self._jobs(generation + 1)
            self._ahead = (jobs, self._worker.submit(self._make, jobs))

    # batches -----------------------------------------------------------------------------------
    def _generators(self):
        seed = int(np.random.SeedSequence([self.seed, self.step, self.heldout, 7]).generate_state(1)[0])
        cpu = torch.Generator().manual_seed(seed)
        dev = torch.Generator(device=self.device).manual_seed(seed + 1)
        return cpu, dev

    @torch.no_grad()
    def sample(self):
        """The next (blurred, sharp) batch."""
        self._sync_pools()
        cpu, gen = self._generators()
        b, m, dev = self.batch, 3, self.device
        idx = torch.randint(len(self.pool), (b,), generator=cpu)
        offset = torch.randint(self.tile - self.patch + 1, (2, b), generator=cpu)
        kidx = torch.randint(len(self.kernels), (b, m), generator=cpu)
        flips, kflips = torch.rand(b, 3, generator=cpu) < 0.5, torch.rand(b, m, 3, generator=cpu) < 0.5
        varying = torch.rand(b, generator=cpu) < self.spatial_prob
        span = torch.arange(self.patch)
        rows, cols = (offset[0][:, None] + span).to(dev), (offset[1][:, None] + span).to(dev)
        chan = torch.arange(self.channels, device=dev)
        patch = self.pool[
            idx.to(dev)[:, None, None, None], chan[None, :, None, None], rows[:, None, :, None], cols[:, None, None, :]
        ]
        patch = dihedral(patch, flips.to(dev))
        kernels = dihedral(self.kernels[kidx.to(dev)], kflips.to(dev))
        weights = None
        if varying.any():
            weights = smooth_weights(b, m, self.patch, self.patch, gen, dev)
            single = torch.zeros_like(weights)
            single[:, 0] = 1
            weights = torch.where(varying.to(dev)[:, None, None, None], weights, single)
        else:
            kernels = kernels[:, 0]
        degrade = degrade_photo if self.preset == "photo" else degrade_microscopy
        options = dict(self.degrade_options)
        moving = torch.zeros(b, dtype=torch.bool)
        if self.motion_prob:  # no draw when off: streams stay as they were
            moving = torch.rand(b, generator=cpu) < self.motion_prob
            options.update(motion=moving.to(dev), motion_extent=float(self.kernel_size))
        if self.display_prob:  # drawn after the motion, and only when on: older streams stay as they were
            options.update(display=(torch.rand(b, generator=cpu) < self.display_prob).to(dev))
        blurred, sharp = degrade(patch, kernels, weights, gen, **options)
        if self.identity_prob:  # an unblurred input is already sharp: it must come back as it is, noise and all
            unblurred = (self.kernels.flatten(1).amax(1) >= 1)[kidx[:, 0].to(dev)] & ~varying.to(dev)
            unblurred &= ~moving.to(dev)
            sharp = torch.where(unblurred[:, None, None, None], blurred, sharp)
        self.step += 1
        return blurred.contiguous(), sharp.contiguous()

    def __iter__(self):
        while True:
            yield self.sample()

    def state_dict(self) -> dict:
        return {"step": self.step, "seed": self.seed, "preset": self.preset, "crop": self.crop}

    def load_state_dict(self, state: dict):
        self.step = int(state["step"])
        self._sync_pools()


def make_sampler(preset, crop, batch, device="cpu", seed=0, pairs=None, heldout=False, **options):
    """The training data source: :class:`FolderPairs` when ``pairs`` names a folder, else :class:`PairSampler`.

    Held-out samplers (``heldout=True``, for validation) use small pools. With real
    ``sharp`` images their validation crops come from the same images (the benchmark's
    held-out images are never loaded for training, see :mod:`.heldout`), drawn from a
    separate seed stream: a check of the fit, while ``napari-deblur eval --real`` judges
    generalisation.
    """
    if pairs:
        return FolderPairs(pairs, crop, batch, device, seed, channels=PRESETS[preset], heldout=heldout)
    if heldout:
        options = {"pool_size": batch, "kernel_pool": 2 * batch, "tile_slack": 0, **options}
    return PairSampler(preset, crop, batch, device, seed, heldout=heldout, **options)
