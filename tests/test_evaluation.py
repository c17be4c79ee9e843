"""The benchmark: out-of-training kernels, oracle baselines, and `napari-deblur eval --quick` end to end."""

import json

import numpy as np
import pytest
from factories import tiny_model
from PIL import Image

from napari_deblur.cli import main
from napari_deblur.data.kernels import center_of_mass, linear_motion
from napari_deblur.data.sharp import available_photos, photo_dir
from napari_deblur.evaluation import baselines
from napari_deblur.evaluation.benchmark import tune
from napari_deblur.evaluation.cases import microscopy_cases, photo_cases
from napari_deblur.evaluation.kernels import (
    MICROSCOPY_PSFS,
    PHOTO_FAMILIES,
    arc_motion,
    microscopy_psf,
    polyline_motion,
    random_photo_kernel,
    ring_defocus,
)
from napari_deblur.metrics import score
from napari_deblur.models.weights import save_safetensors, sha256_of

needs_photos = pytest.mark.skipif(
    not {"chelsea", "coffee", "rocket"} <= set(available_photos()), reason="scikit-image's photos are not installed"
)


pytestmark = pytest.mark.usefixtures("one_thread")


def check_kernel(k):
    assert k.dtype == np.float32 and k.ndim == 2 and k.shape[0] == k.shape[1] and k.shape[0] % 2 == 1
    assert (k >= 0).all() and abs(float(k.sum()) - 1) < 1e-5
    c = k.shape[0] // 2
    cy, cx = center_of_mass(k)
    assert abs(cy - c) < 0.5 and abs(cx - c) < 0.5


def second_moments(k):
    """Eigenvalues (ascending) of the covariance of the kernel's mass, in px^2."""
    rows, cols = np.indices(k.shape)
    w = k.astype(np.float64) / k.sum()
    my, mx = (rows * w).sum(), (cols * w).sum()
    dy, dx = rows - my, cols - mx
    cov = np.array([[(dy * dy * w).sum(), (dy * dx * w).sum()], [(dy * dx * w).sum(), (dx * dx * w).sum()]])
    return np.linalg.eigvalsh(cov)


@pytest.mark.parametrize("family", PHOTO_FAMILIES)
def test_photo_kernels_are_normalised_odd_centred_and_reproducible(family):
    k1, p1 = random_photo_kernel(np.random.default_rng(5), family)
    k2, p2 = random_photo_kernel(np.random.default_rng(5), family)
    k3, _ = random_photo_kernel(np.random.default_rng(6), family)
    check_kernel(k1)
    assert p1 == p2 and np.array_equal(k1, k2)
    assert k1.shape != k3.shape or not np.allclose(k1, k3)


@pytest.mark.parametrize("name", MICROSCOPY_PSFS)
def test_microscopy_psfs_are_normalised_odd_and_centred(name):
    k, params = microscopy_psf(name)
    check_kernel(k)
    if params["kind"] == "widefield":  # outside training's NA 0.4-1.4 / 50-200 nm / defocus <= 1.5 um
        assert params["na"] < 0.4 or params["na"] > 1.4 or params["pixel"] < 50 or params["z"] > 1.5


def test_curved_paths_are_not_straight_lines():
    """Training's linear motion is a line (one tiny moment); arcs and polylines spread in both directions."""
    assert second_moments(linear_motion(20, 30))[0] < 0.3
    assert second_moments(arc_motion(10, 120, 20))[0] > 2.0
    assert second_moments(polyline_motion([10, 10], [0, 90]))[0] > 2.0
    for seed in range(5):
        for family in ("arc", "polyline"):
            assert second_moments(random_photo_kernel(np.random.default_rng(seed), family)[0])[0] > 1.0


def test_ring_has_a_hole_and_long_shake_exceeds_training_size():
    k = ring_defocus(6.0, 0.5)
    c = k.shape[0] // 2
    assert k[c - 1 : c + 2, c - 1 : c + 2].max() == 0 and k.max() > 0
    for seed in range(3):
        ring, params = random_photo_kernel(np.random.default_rng(seed), "ring")
        c = ring.shape[0] // 2
        assert ring[c, c] == 0
        shake, params = random_photo_kernel(np.random.default_rng(seed), "long_shake")
        assert params["length"] >= 35 and shake.shape[0] > 31


def test_richardson_lucy_path_matches_single_runs(rng):
    image = rng.random((2, 24, 24))
    k = ring_defocus(2.5, 0.4)
    path = baselines.richardson_lucy_path(image, k, [3, 7])
    np.testing.assert_allclose(path[7], baselines.richardson_lucy(image, k, 7))
    assert path[3].shape == image.shape


def test_wiener_inverts_a_noiseless_blur_in_the_interior(rng):
    from napari_deblur.evaluation.cases import blur_valid

    sharp = np.cumsum(np.cumsum(rng.normal(0, 1, (1, 96, 96)), 1), 2)
    sharp = (sharp - sharp.min()) / np.ptp(sharp)
    k = arc_motion(6, 120, 10)
    m = k.shape[0] // 2
    blurred = blur_valid(sharp, k)
    restored = baselines.wiener(blurred, k, 1e-5)
    inner = (slice(None), slice(m + 8, -m - 8), slice(m + 8, -m - 8))
    err_in = np.abs(blurred - sharp[:, m:-m, m:-m])[inner].mean()
    err_out = np.abs(restored - sharp[:, m:-m, m:-m])[inner].mean()
    assert err_out < 0.5 * err_in  # without the edge taper the borders ring and it is worse than the input


@needs_photos
def test_tuned_wiener_beats_the_blurry_input():
    tuning = photo_cases("tune", 96, 1, ["low"], all_families=False)
    test = photo_cases("test", 96, 1, ["low"], all_families=False)
    assert {c.source for c in tuning}.isdisjoint({c.source for c in test})  # separate crops
    tuned = tune(tuning, [1e-3, 1e-2, 1e-1, 1.0], [5])
    assert tuned["wiener_balance"] in (1e-3, 1e-2, 1e-1, 1.0)
    gain = []
    for case in test:
        from napari_deblur.metrics import linear_to_srgb, srgb_to_linear

        restored = linear_to_srgb(baselines.wiener(srgb_to_linear(case.blurred), case.kernel, tuned["wiener_balance"]))
        gain.append(score(case.sharp, restored)["psnr"] - score(case.sharp, case.blurred)["psnr"])
    assert np.mean(gain) > 0.3, gain


def test_microscopy_cases_are_seeded_and_split():
    a = microscopy_cases("test", 48, 1, ["high"], all_psfs=False, use_stardist=False)
    b = microscopy_cases("test", 48, 1, ["high"], all_psfs=False, use_stardist=False)
    t = microscopy_cases("tune", 48, 1, ["high"], all_psfs=False, use_stardist=False)
    assert np.array_equal(a[0].blurred, b[0].blurred) and a[0].blurred.shape == (48, 48)
    assert not np.allclose(a[0].sharp, t[0].sharp)


@pytest.fixture
def tiny_resources(tmp_path, monkeypatch):
    """A resources folder with one tiny random 3-channel XYDeblur bundled as ``xydeblur-tiny``."""
    folder = tmp_path / "resources"
    folder.mkdir()
    model = tiny_model(channels=3)
    path = save_safetensors(model, folder / "xydeblur-tiny.safetensors", half=True)
    manifest = {
        "name": "xydeblur-tiny",
        "file": path.name,
        "sha256": sha256_of(path),
        "architecture": {"class": "XYDeblur", **model.config},
    }
    (folder / "xydeblur-tiny.json").write_text(json.dumps(manifest))
    monkeypatch.setenv("NAPARI_DEBLUR_RESOURCES", str(folder))
    return folder


@needs_photos
def test_eval_quick_end_to_end(tiny_resources, tmp_path, capsys):
    out = tmp_path / "bench"
    assert main(["eval", "--quick", "--out", str(out), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "| method |" in printed and "xydeblur-tiny" in printed

    report = json.loads((out / "benchmark.json").read_text())
    for key in ("settings", "tracks", "device", "torch", "date", "git_commit", "clock_motion", "mode"):
        assert key in report
    assert report["mode"] == "quick"
    assert report["tracks"]["photo"]["models"][0]["label"] == "xydeblur-tiny"
    assert report["tracks"]["microscopy"]["models"][0]["mode"] == "replicated"
    for track in ("photo", "microscopy"):
        for _noise, res in report["tracks"][track]["results"].items():
            assert {"wiener_balance", "rl_iterations", "wiener_grid_psnr", "rl_grid_psnr"} <= set(res["tuned"])
            assert res["images"] and all({"psnr", "ssim", "seconds"} <= set(m) for m in res["means"].values())
            assert {"blurry input", "Wiener (true kernel)", "Richardson-Lucy (true kernel)"} <= set(res["means"])
            assert any("xydeblur-tiny" in name for name in res["means"])
            for row in res["images"]:
                assert np.isfinite([m["psnr"] for m in row["methods"].values()]).all()

    md = (out / "benchmark.md").read_text()
    assert "## Photo track" in md and "## Microscopy track" in md and "clock_motion" in md
    if (photo_dir() / "clock_motion.png").is_file():
        with Image.open(photo_dir() / "clock_motion.png") as src:
            w, h = src.size
        with Image.open(out / "clock_motion.png") as png:
            assert png.mode == "L" and png.size == (2 * w + 8, h)
        assert report["clock_motion"]["model"] == "xydeblur-tiny"


def test_eval_unknown_model_is_a_clean_error(tiny_resources, tmp_path, capsys):
    assert main(["eval", "--quick", "--out", str(tmp_path / "b"), "--models", "no-such-model"]) == 2
    assert "no-such-model" in capsys.readouterr().err


def test_models_are_matched_to_tracks(tmp_path):
    from napari_deblur.evaluation.benchmark import select_models, track_models

    gray = save_safetensors(tiny_model(channels=1), tmp_path / "gray.safetensors")
    chosen = select_models([str(gray)])
    assert chosen == [{"name": "gray", "source": str(gray), "channels": 1}]
    assert track_models(chosen, "photo") == []
    assert [m["mode"] for m in track_models(chosen, "microscopy")] == ["per-channel"]
    rgb = [{"name": "rgb", "source": "rgb", "channels": 3}]
    assert track_models(rgb, "microscopy")[0]["label"] == "rgb (replicated to RGB)"


def test_write_report_saves_the_markdown_and_the_json(tmp_path):
    from napari_deblur.evaluation.report import checkout_commit, to_markdown, write_report

    settings = {
        "metrics": "PSNR",
        "timing": "seconds",
        "wiener_balance_grid": [1e-4, 1.0],
        "rl_iterations_grid": [5, 10],
        "photo": {"photos": ["coffee"], "crop": 64, "kernel_families": ["arc"]},
        "microscopy": {"size": 64, "stardist_img2d": "skipped", "psfs": ["airy"]},
    }
    means = {"blurry input": {"n": 1, "psnr": 20.0, "ssim": 0.5, "seconds": 0.0}}
    result = {
        "noise": "sigma 0.01",
        "tuned": {"wiener_balance": 0.01, "rl_iterations": 10, "tuning_cases": 1},
        "means": means,
        "psnr_by_kernel": {"blurry input": {"arc": 20.0}},
    }
    report = {
        "mode": "quick",
        "date": "2026-01-01T00:00:00+00:00",
        "napari_deblur": "0",
        "git_commit": checkout_commit(),
        "device": "cpu",
        "torch": "2",
        "python": "3",
        "settings": settings,
        "tracks": {"photo": {"models": [], "results": {"low": result}}},
        "clock_motion": {"skipped": "no photo"},
        "seconds_total": 1.0,
    }
    write_report(tmp_path, report)
    md = (tmp_path / "benchmark.md").read_text()
    assert md == to_markdown(report)
    assert "## Photo track" in md and "| blurry input | 1 | 20.00 | 0.5000 | 0.000 | 20.00 |" in md
    assert "Skipped: no photo." in md
    assert json.loads((tmp_path / "benchmark.json").read_text()) == report
