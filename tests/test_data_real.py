"""Real sharp images for training: the held-out split, folder reading, crop banks, PSF slices, JPEG."""

import io
import json

import numpy as np
import pytest
import tifffile
import torch
from PIL import Image

from napari_deblur.data.bank import pack_bank
from napari_deblur.data.degrade import jpeg_like
from napari_deblur.data.heldout import HELDOUT_PSFS, is_heldout
from napari_deblur.data.kernels import center_of_mass
from napari_deblur.data.pairs import PairSampler
from napari_deblur.data.psf import psf_slices
from napari_deblur.data.psf_files import load_psf_files
from napari_deblur.data.real import find_images, is_bank, load_bank, load_sharp


def _photo(path, size=(80, 96), grey=False, seed=0):
    rng = np.random.default_rng(seed)
    arr = rng.integers(0, 256, size if grey else (*size, 3), dtype=np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)
    return arr


@pytest.mark.parametrize(
    "path, held",
    [
        ("data/photos/mcmaster/3.tif", True),
        ("x/photos/set5/bird_GT.bmp", True),
        ("photos/set3c/butterfly.png", True),
        ("photos/set3c/leaves.png", False),
        ("photos/cbsd68/101085.png", False),
        ("d/fluorescence/w2s_widefield/target_avg400_010_0.tif", True),
        ("d/fluorescence/w2s_widefield/target_avg400_031_2.tif", False),
        ("d/fluorescence/w2s_widefield/input_avg1_031_2.tif", True),
        ("fluorescence/sdeconv/pollen.tif", True),
        ("fluorescence/sdeconv/celegans_spitfire.tif", False),
        ("real_blur_pairs/gopro_train/sharp/GOPR0372_07_00_000047.png", True),
        ("my_photos/mcmaster_style/1.tif", False),  # only the listed folders, not look-alikes
    ],
)
def test_the_heldout_split_is_matched_by_path_suffix(path, held):
    assert is_heldout(path) is held


def test_the_measured_psf_is_held_out_as_a_psf():
    assert is_heldout("data/psfs/lattice_lightsheet_bead/psf.tif", HELDOUT_PSFS)
    assert not is_heldout("data/psfs/flowdec_psfgen/psfgen1.tif", HELDOUT_PSFS)


def test_find_images_leaves_heldout_files_out(tmp_path):
    _photo(tmp_path / "photos" / "cbsd68" / "a.png")
    _photo(tmp_path / "photos" / "mcmaster" / "1.png")
    (tmp_path / "photos" / "notes.txt").write_text("not an image")
    keep, held = find_images([tmp_path])
    assert [p.name for p in keep] == ["a.png"] and [p.name for p in held] == ["1.png"]
    with pytest.raises(ValueError, match="no such file"):
        find_images([tmp_path / "missing"])


def test_photos_are_read_as_rgb_in_unit_range_and_grey_weighs_less(tmp_path):
    colour = _photo(tmp_path / "c.png", (64, 64))
    _photo(tmp_path / "g.png", (64, 64), grey=True)
    images = load_sharp([tmp_path], "photo")
    assert len(images) == 2 and all(im.shape == (3, 64, 64) for im in images.images)
    np.testing.assert_allclose(images.images[0], colour.transpose(2, 0, 1) / 255, atol=1e-6)
    assert np.ptp(images.images[1], axis=0).max() == 0  # grey repeated over the channels
    assert images.weights[1] == pytest.approx(0.5 * images.weights[0])
    with pytest.raises(ValueError):  # the images are read-only: training cannot alter them
        images.images[0][0, 0, 0] = 1


def test_fluorescence_planes_are_scaled_and_empty_planes_dropped(tmp_path):
    rng = np.random.default_rng(1)
    stack = (100 + rng.poisson(50, (3, 40, 40))).astype(np.uint16)
    stack[1] = 100  # no signal at all
    stack[2, 10:20, 10:20] = 4000
    tifffile.imwrite(tmp_path / "cells.tif", stack, photometric="minisblack")
    images = load_sharp([tmp_path / "cells.tif"], "microscopy")
    assert len(images) == 2 and all(im.shape == (1, 40, 40) for im in images.images)
    for im in images.images:
        assert im.min() == 0 and im.max() == 1 and np.isfinite(im).all()
    assert images.images[1][0, 15, 15] == 1 and np.median(images.images[1]) < 0.05


def test_no_usable_image_is_a_clear_error(tmp_path):
    _photo(tmp_path / "photos" / "set5" / "x.png")
    with pytest.raises(ValueError, match="no usable photo images"):
        load_sharp([tmp_path], "photo")


def test_a_bank_is_seeded_recorded_and_reads_back(tmp_path):
    for i in range(3):
        _photo(tmp_path / "in" / f"{i}.png", (70, 90), seed=i)
    _photo(tmp_path / "in" / "photos" / "mcmaster" / "held.png")
    out = tmp_path / "bank.npz"
    record = pack_bank([tmp_path / "in"], "photo", out, crops=5, size=32, seed=3)
    assert json.loads((tmp_path / "bank.npz.json").read_text()) == record
    assert record["crops"] == 5 and len(record["files"]) == 3 and len(record["heldout_skipped"]) == 1
    again = pack_bank([tmp_path / "in"], "photo", tmp_path / "again.npz", crops=5, size=32, seed=3)
    assert again["picks"] == record["picks"]
    images = load_bank(out, "photo")
    assert len(images) == 5 and images.images[0].shape == (3, 32, 32) and images.images[0].dtype == np.float32
    # a crop is exactly the source pixels at the recorded place
    pick = record["picks"][0]
    source = np.asarray(Image.open(pick["source"])).transpose(2, 0, 1) / 255
    y, x = pick["yx"]
    np.testing.assert_allclose(images.images[0], source[:, y : y + 32, x : x + 32], atol=1e-6)
    assert len(load_sharp([out], "photo")) == 5
    with pytest.raises(ValueError, match="photo bank, not microscopy"):
        load_bank(out, "microscopy")


def test_psf_slices_are_centred_normalised_and_sized():
    z, y, x = np.mgrid[-4:5, -20:21, -20:21]
    sigma = 1.5 + 0.6 * np.abs(z)
    stack = 10 + 1000 * np.exp(-((y - 3.3) ** 2 + (x + 2.7) ** 2) / (2 * sigma**2)) / sigma**2
    kernels = psf_slices(stack, size=15, planes=3, step=2)
    assert len(kernels) == 3
    for k in kernels:
        assert k.shape == (15, 15) and k.min() >= 0 and k.sum() == pytest.approx(1, abs=1e-5)
        assert np.allclose(center_of_mass(k), (7, 7), atol=0.05)
    assert kernels[0].max() > kernels[1].max()  # the focal plane first, sharper than the defocused ones
    with pytest.raises(ValueError, match="2D image or a 3D"):
        psf_slices(np.ones(5))


def test_jpeg_like_is_close_to_a_real_jpeg_encoder():
    rng = np.random.default_rng(0)
    smooth = np.cumsum(np.cumsum(rng.normal(0, 1, (3, 64, 64)), 1), 2)
    img = ((smooth - smooth.min()) / np.ptp(smooth)).astype(np.float32)
    for quality in (50, 90):
        ours = jpeg_like(torch.from_numpy(img)[None], torch.tensor([float(quality)]))[0].numpy()
        buf = io.BytesIO()
        Image.fromarray(np.round(img.transpose(1, 2, 0) * 255).astype(np.uint8)).save(buf, "JPEG", quality=quality)
        pil = np.asarray(Image.open(buf), np.float32).transpose(2, 0, 1) / 255
        assert np.abs(ours - img).mean() > 1e-4  # it does lose something
        assert np.sqrt(np.mean((ours - pil) ** 2)) < 0.5 * np.sqrt(np.mean((img - pil) ** 2)) + 2 / 255


def test_sampler_cuts_tiles_from_real_images_and_keeps_identity_kernels(tmp_path):
    _photo(tmp_path / "a.png", (120, 120))
    images = load_sharp([tmp_path], "photo")
    s = PairSampler(
        "photo",
        crop=32,
        batch=4,
        seed=0,
        pool_size=6,
        kernel_pool=40,
        kernel_size=15,
        sharp=images,
        real_share=1.0,
        identity_prob=0.5,
    )
    identity = [(k.numpy() == k.numpy().max()).sum() == 1 and k.max() == 1 for k in s.kernels]
    assert 10 < sum(identity) < 30
    blurred, sharp = s.sample()
    assert blurred.shape == sharp.shape == (4, 3, 32, 32)
    with pytest.raises(ValueError, match="use a smaller --crop"):
        PairSampler("photo", crop=128, batch=2, sharp=images, pool_size=2, kernel_pool=2)


def test_soft_tiles_are_enlarged_and_the_default_stream_is_unchanged(tmp_path):
    from napari_deblur.data.pairs import SOFT_SCALES

    assert 1 < SOFT_SCALES[0] < SOFT_SCALES[1]
    ramp = np.broadcast_to(np.arange(256, dtype=np.uint8)[None, :, None], (256, 256, 3))
    Image.fromarray(np.ascontiguousarray(ramp)).save(tmp_path / "ramp.png")  # 1/255 a pixel along x
    images = load_sharp([tmp_path], "photo")
    opts = dict(crop=32, batch=2, seed=0, pool_size=2, kernel_pool=2, sharp=images, real_share=1.0)
    plain, off = PairSampler("photo", **opts), PairSampler("photo", soft_prob=0.0, **opts)
    soft = PairSampler("photo", soft_prob=1.0, **opts)

    def scales(sampler):  # a crop rescaled by s has the slope 1 / (255 s): resampling keeps a ramp
        tiles = [sampler._sharp_item(i, 0) for i in range(12)]
        assert all(t.shape == (3, sampler.tile, sampler.tile) and 0 <= t.min() and t.max() <= 1 for t in tiles)
        return np.array([1 / (255 * np.diff(t[:, 4:-4, 4:-4], axis=-1).mean()) for t in tiles])

    assert all(np.array_equal(plain._sharp_item(i, 0), off._sharp_item(i, 0)) for i in range(4))
    assert scales(plain).max() <= 1.01  # downscaled (crisper) or as they are
    s = scales(soft)
    assert SOFT_SCALES[0] - 0.01 <= s.min() and s.max() <= SOFT_SCALES[1] + 0.01 and s.std() > 0.1


def test_pack_and_train_from_the_command_line(tmp_path):
    from napari_deblur.cli import main

    for i in range(2):
        _photo(tmp_path / "sharp" / f"{i}.png", (96, 96), seed=i)
    bank = tmp_path / "bank.npz"
    assert (
        main(
            [
                "pack",
                "--preset",
                "photo",
                "--sharp",
                str(tmp_path / "sharp"),
                "--crops",
                "4",
                "--size",
                "96",
                "--out",
                str(bank),
            ]
        )
        == 0
    )
    assert main(["pack", "--preset", "photo", "--sharp", str(tmp_path / "sharp"), "--out", str(bank)]) == 2
    run = tmp_path / "run"
    args = [
        "train",
        "xydeblur",
        "--preset",
        "photo",
        "--sharp",
        str(bank),
        "--iters",
        "2",
        "--batch",
        "2",
        "--crop",
        "32",
        "--width",
        "8",
        "--blocks",
        "1",
        "--val-every",
        "2",
        "--ckpt-every",
        "2",
        "--device",
        "cpu",
        "--out",
        str(run),
    ]
    assert main(args) == 0
    config = json.loads((run / "config.json").read_text())
    assert config["sharp"] == [str(bank)] and config["identity_prob"] == 0.08
    assert main(args[:-2] + ["--pairs", str(tmp_path), "--out", str(tmp_path / "r2")]) == 2  # one source only
    assert main(args[:-2] + ["--motion-prob", "1.5", "--out", str(tmp_path / "r3")]) == 2
    assert main(args[:-2] + ["--kernel-size", "30", "--out", str(tmp_path / "r4")]) == 2
    motion = args[:-2] + ["--motion-prob", "0.5", "--soft-prob", "0.3", "--kernel-size", "21"]
    assert main(motion + ["--out", str(tmp_path / "r5")]) == 0
    config = json.loads((tmp_path / "r5" / "config.json").read_text())
    assert config["motion_prob"] == 0.5 and config["kernel_size"] == 21 and config["soft_prob"] == 0.3
    assert main(args[:-2] + ["--soft-prob", "-0.1", "--out", str(tmp_path / "r6")]) == 2


def test_a_microscopy_bank_carries_its_psfs(tmp_path):
    rng = np.random.default_rng(2)
    tifffile.imwrite(
        tmp_path / "cells.tif",
        (100 + rng.poisson(50, (60, 60)) + 2000 * (rng.random((60, 60)) > 0.99)).astype(np.uint16),
    )
    z, y, x = np.mgrid[-2:3, -10:11, -10:11]
    tifffile.imwrite(tmp_path / "psf.tif", np.exp(-(y**2 + x**2) / (2 * (1 + abs(z)) ** 2)).astype(np.float32))
    record = pack_bank(
        [tmp_path / "cells.tif"], "microscopy", tmp_path / "b.npz", crops=2, size=48, psfs=[tmp_path / "psf.tif"]
    )
    assert record["psf_slices"] == 3  # focus and 2 planes either side, one of every 2 planes
    images = load_sharp([tmp_path / "b.npz"], "microscopy")
    assert len(images.psfs) == 3 and images.psfs[0].shape == (31, 31)


def test_load_psf_files_slices_each_file_and_refuses_held_out_or_unreadable_ones(tmp_path):
    z, y, x = np.mgrid[-2:3, -10:11, -10:11]
    stack = np.exp(-(y**2 + x**2) / (2 * (1 + abs(z)) ** 2)).astype(np.float32)
    tifffile.imwrite(tmp_path / "psf.tif", stack)
    kernels = load_psf_files([tmp_path / "psf.tif"], size=15)
    assert [k.shape for k in kernels] == [(15, 15)] * 3
    assert all(np.array_equal(a, b) for a, b in zip(kernels, psf_slices(stack, 15)))
    assert load_psf_files(None) == []
    held = tmp_path / HELDOUT_PSFS[0] / "bead.tif"
    held.parent.mkdir(parents=True)
    tifffile.imwrite(held, stack)
    with pytest.raises(ValueError, match="held out"):
        load_psf_files([held])
    with pytest.raises(ValueError, match="--psf"):
        load_psf_files([tmp_path / "missing.tif"])


def test_is_bank_needs_an_existing_npz_file(tmp_path):
    np.savez(tmp_path / "b.npz", crops=np.zeros((1, 1, 16, 16), np.uint16))
    assert is_bank(tmp_path / "b.npz") and not is_bank(tmp_path / "none.npz")
    assert not is_bank(tmp_path)


def test_an_unblurred_sample_has_its_own_input_as_target(tmp_path):
    _photo(tmp_path / "a.png", (120, 120))
    s = PairSampler(
        "photo",
        crop=32,
        batch=16,
        seed=0,
        pool_size=6,
        kernel_pool=8,
        kernel_size=15,
        sharp=load_sharp([tmp_path], "photo"),
        identity_prob=0.5,
        spatial_prob=0.0,
    )
    blurred, sharp = s.sample()
    same = [torch.equal(b, t) for b, t in zip(blurred, sharp)]
    assert 0 < sum(same) < 16  # identity samples: target == noisy input; the others: a sharper target
