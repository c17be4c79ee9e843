"""Training batches: PairSampler and FolderPairs (napari_deblur.data.pairs / .folder)."""

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from napari_deblur.data import sharp as sources
from napari_deblur.data.folder import dihedral, find_pairs
from napari_deblur.data.pairs import FolderPairs, PairSampler, make_sampler

SMALL = dict(crop=32, batch=4, pool_size=4, kernel_pool=8, kernel_size=15)


def _same(a, b):
    return all(torch.equal(x, y) for x, y in zip(a, b))


@pytest.mark.parametrize("preset, channels", [("photo", 3), ("microscopy", 1)])
def test_sampler_shapes_ranges_and_reproducibility(preset, channels):
    s = PairSampler(preset, seed=1, **SMALL)
    batches = [s.sample() for _ in range(2)]
    for blurred, sharp in batches:
        assert blurred.shape == sharp.shape == (4, channels, 32, 32)
        assert blurred.dtype == sharp.dtype == torch.float32
        assert torch.isfinite(blurred).all() and torch.isfinite(sharp).all()
        if preset == "photo":
            assert blurred.min() >= 0 and blurred.max() <= 1 and sharp.min() >= 0 and sharp.max() <= 1
        else:
            assert -1 < blurred.min() and blurred.max() < 2 and -1 < sharp.min() and sharp.max() < 4
        assert not torch.equal(blurred, sharp)
    assert not torch.equal(batches[0][1], batches[1][1])  # a new batch each call
    again = PairSampler(preset, seed=1, **SMALL)
    assert all(_same(a, again.sample()) for a in batches)
    other = PairSampler(preset, seed=2, **SMALL)
    assert not _same(batches[0], other.sample())


def test_sampler_resume_and_refresh_are_deterministic():
    s = PairSampler("microscopy", seed=3, refresh_every=2, **SMALL)
    pool0 = s.pool.clone()
    batches = [s.sample() for _ in range(5)]
    assert not torch.equal(pool0, s.pool)  # slots were renewed
    assert torch.equal(pool0[3:], s.pool[3:])  # only the slots due so far
    resumed = PairSampler("microscopy", seed=3, refresh_every=2, **SMALL)
    resumed.load_state_dict(s.state_dict() | {"step": 3})
    assert _same(resumed.sample(), batches[3]) and _same(resumed.sample(), batches[4])
    assert torch.equal(resumed.pool, s.pool)


@pytest.mark.parametrize(
    "preset, clean",
    [
        ("photo", dict(noise_prob=0, quantize_prob=0)),
        ("microscopy", dict(peak_photons=(1e9, 1e9), read_photons=(0, 0), normalize_prob=0)),
    ],
)
def test_sampler_blur_is_real(preset, clean):
    s = PairSampler(preset, seed=0, spatial_prob=0.5, degrade_options=clean, **(SMALL | {"batch": 8}))
    assert s.kernels.shape == (8, 15, 15)
    assert torch.allclose(s.kernels.sum((1, 2)), torch.ones(8), atol=1e-5)
    blurred, sharp = s.sample()

    def variation(x):
        return x.diff(dim=-1).abs().mean((1, 2, 3)) + x.diff(dim=-2).abs().mean((1, 2, 3))

    # without noise, blurring with a non-negative kernel of sum 1 can only smooth
    assert (variation(blurred) <= variation(sharp) * 1.05 + 1e-4).all()
    assert (variation(blurred) < variation(sharp) * 0.9).float().mean() >= 0.5
    # and keeps the mean brightness (up to clipping and the crop border)
    assert torch.allclose(blurred.mean((1, 2, 3)), sharp.mean((1, 2, 3)), atol=0.08)


def test_heldout_photo_sampler_uses_heldout_photos():
    if sources.photo_dir() is None:
        pytest.skip("scikit-image's data folder is not installed")
    val = make_sampler("photo", 32, 2, "cpu", 10, heldout=True)
    assert set(val._photos) == set(sources.HELDOUT)
    train = make_sampler("photo", 32, 2, "cpu", 0, pool_size=2, kernel_pool=2)
    assert not set(train._photos) & set(sources.HELDOUT)
    b, s = val.sample()
    assert b.shape == (2, 3, 32, 32)


def test_dihedral_per_item():
    x = torch.arange(2 * 9.0).reshape(2, 1, 3, 3)
    flags = torch.tensor([[True, False, False], [False, False, True]])
    out = dihedral(x, flags)
    assert torch.equal(out[0], x[0].flip(-1)) and torch.equal(out[1], x[1].transpose(-1, -2))


def _write_rgb_pairs(root, n=3, size=(40, 50)):
    rng = np.random.default_rng(0)
    (root / "blur").mkdir()
    (root / "sharp").mkdir()
    for i in range(n):
        target = rng.integers(0, 256, (*size, 3), dtype=np.uint8)
        Image.fromarray(target).save(root / "sharp" / f"im{i}.png")
        Image.fromarray(255 - target).save(root / "blur" / f"im{i}.png")  # inverse: easy to check alignment


def test_folder_pairs_aligned_crops(tmp_path):
    _write_rgb_pairs(tmp_path)
    pairs = FolderPairs(tmp_path, crop=24, batch=6, seed=0)
    assert [p[0].name for p in pairs.files] == ["im0.png", "im1.png"]  # im2 held out
    blurred, sharp = pairs.sample()
    assert blurred.shape == sharp.shape == (6, 3, 24, 24) and blurred.dtype == torch.float32
    assert torch.allclose(blurred + sharp, torch.ones_like(sharp), atol=1e-6)  # aligned after flips
    again = FolderPairs(tmp_path, crop=24, batch=6, seed=0)
    assert _same((blurred, sharp), again.sample())
    val = FolderPairs(tmp_path, crop=24, batch=2, seed=0, heldout=True)
    assert [p[0].name for p in val.files] == ["im2.png"]
    grey = make_sampler("microscopy", 16, 2, "cpu", 0, pairs=str(tmp_path))
    assert grey.sample()[0].shape == (2, 1, 16, 16)


def test_folder_pairs_tiff_stacks_and_errors(tmp_path):
    (tmp_path / "raw").mkdir()
    (tmp_path / "target").mkdir()
    rng = np.random.default_rng(1)
    target = rng.integers(100, 4000, (2, 20, 30), dtype=np.uint16)
    tifffile.imwrite(tmp_path / "target" / "cells.tif", target)
    tifffile.imwrite(tmp_path / "raw" / "cells.tif", target // 2 + 50)
    pairs = FolderPairs(tmp_path, crop=24, batch=3, seed=0)  # one file: used for training and validation
    assert len(pairs.items) == 2  # two planes
    blurred, sharp = pairs.sample()
    assert blurred.shape == (3, 1, 24, 24)  # 20-pixel planes mirrored up to the crop
    assert -0.1 < blurred.min() and blurred.max() < 1.1  # percentile-scaled like the engine does
    # raw = target / 2 + 50 and each plane's pair shares the raw plane's scaling: target = 2 raw + a constant
    diff = (sharp - 2 * blurred).flatten(1)
    assert (diff.amax(1) - diff.amin(1) < 2e-3).all() and sharp.std() > 0.1
    tifffile.imwrite(tmp_path / "raw" / "cells.tif", target[:, :10])
    with pytest.raises(ValueError, match="shape"):
        FolderPairs(tmp_path, crop=8)
    with pytest.raises(ValueError, match="paired"):
        find_pairs(tmp_path / "raw")
