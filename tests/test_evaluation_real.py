"""The real-data benchmark and the do-no-harm gate (napari_deblur.evaluation.real), on a small fake
data folder laid out like ../shared/data; the real folder is used only where it exists."""

from pathlib import Path

import numpy as np
import pytest
import tifffile
import torch
from factories import tiny_model
from PIL import Image

from napari_deblur.cli import main
from napari_deblur.data.heldout import W2S_HELDOUT_FIELDS
from napari_deblur.evaluation.real import INPUT, gate, invented_structure, run_real_benchmark
from napari_deblur.models.weights import save_safetensors

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


def _smooth(rng, shape):
    x = rng.normal(0, 1, shape)
    for axis in (-1, -2):
        x = np.cumsum(x, axis)
    return (x - x.min()) / np.ptp(x)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    rng = np.random.default_rng(0)

    def png(path, arr):
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(arr).save(path)

    rgb = lambda h, w: np.round(_smooth(rng, (h, w, 3)) * 255).astype(np.uint8)  # noqa: E731
    (root / "photos" / "mcmaster").mkdir(parents=True)
    for i in range(2):
        tifffile.imwrite(root / "photos" / "mcmaster" / f"{i}.tif", rgb(130, 140), photometric="rgb")
    png(root / "photos" / "set5" / "bird_GT.bmp", rgb(120, 120))
    for name in ("a.png", "b.png"):
        png(root / "real_blur_pairs" / "gopro_train" / "sharp" / name, rgb(200, 200))
        png(root / "real_blur_pairs" / "gopro_train" / "blur" / name, rgb(200, 200))
    png(root / "real_blur_only" / "misc" / "x.png", rgb(100, 150))
    w2s = root / "fluorescence" / "w2s_widefield"
    w2s.mkdir(parents=True)
    for f in W2S_HELDOUT_FIELDS:
        tifffile.imwrite(w2s / f"target_avg400_{f}.tif", np.round(_smooth(rng, (160, 160)) ** 3 * 255).astype(np.uint8))
    (root / "fluorescence" / "sdeconv").mkdir()
    tifffile.imwrite(
        root / "fluorescence" / "sdeconv" / "pollen.tif",
        (rng.random((4, 64, 64)) * 4000 + 100).astype(np.uint16),
        photometric="minisblack",
    )
    psf_dir = root / "psfs" / "lattice_lightsheet_bead"
    psf_dir.mkdir(parents=True)
    z, y, x = np.mgrid[-3:4, -20:21, -20:21]
    tifffile.imwrite(
        psf_dir / "psf.tif", (100 + 5000 * np.exp(-(y**2 + x**2) / (2 * (1.5 + abs(z)) ** 2))).astype(np.uint16)
    )
    return root


def _identity_model(path, channels):
    model = tiny_model(channels)
    torch.nn.init.zeros_(model.Decoder1_4.main[0].weight)
    torch.nn.init.zeros_(model.Decoder1_4.main[0].bias)
    return str(save_safetensors(model, path))


def test_the_real_benchmark_scores_every_track_and_an_identity_model_keeps_the_input(data_root, tmp_path):
    models = [
        {"name": "id-photo", "source": _identity_model(tmp_path / "p.safetensors", 3), "channels": 3},
        {"name": "id-micro", "source": _identity_model(tmp_path / "m.safetensors", 1), "channels": 1},
    ]
    report = run_real_benchmark(
        data_root, tmp_path / "out", models=models, quick=True, device="cpu", log=lambda s: None
    )
    tracks = report["tracks"]
    assert set(tracks) == {"gopro", "photo_blur", "identity_photo", "fluorescence", "identity_microscopy"}
    assert len(tracks["photo_blur"]["images"]) == 3 and len(tracks["fluorescence"]["images"]) == 3
    for track, name in (("gopro", "id-photo"), ("photo_blur", "id-photo"), ("fluorescence", "id-micro")):
        m, base = tracks[track]["means"][name], tracks[track]["means"][INPUT]
        assert m["psnr"] == pytest.approx(base["psnr"], abs=0.05)  # the identity changes (almost) nothing
    # the oracles deblur: with the true kernel they beat the blurry input
    assert (
        tracks["photo_blur"]["means"]["Richardson-Lucy (true kernel)"]["psnr"]
        > tracks["photo_blur"]["means"][INPUT]["psnr"]
    )
    assert tracks["fluorescence"]["means"]["id-micro"]["invented"] == pytest.approx(1.0, abs=0.05)
    assert tracks["identity_photo"]["means"]["id-photo"]["psnr"] > 40
    assert (tmp_path / "out" / "real.md").is_file() and (tmp_path / "out" / "contact_sheet.png").is_file()
    assert set(report["gate"]) == {"id-photo", "id-micro"}


def test_invented_structure_is_zero_for_the_truth_and_one_for_the_input():
    rng = np.random.default_rng(1)
    truth = _smooth(rng, (64, 64)) ** 4
    blurred = truth + rng.normal(0, 0.05, truth.shape)
    assert invented_structure(truth, blurred, truth) == 0
    assert invented_structure(blurred, blurred, truth) == pytest.approx(1)
    fake = truth + 0.5 * (rng.random(truth.shape) > 0.95)  # invented spots
    assert invented_structure(fake, blurred, truth) > 1


def _report(model_psnr, model_ssim, worse, identity=40.0, n=10):
    track = {
        "means": {
            INPUT: {"psnr": 25.0, "ssim": 0.7, "n": n, "worse_than_input": 0},
            "m": {"psnr": model_psnr, "ssim": model_ssim, "n": n, "worse_than_input": worse},
        }
    }
    ident = {
        "means": {
            INPUT: {"psnr": 99.0, "ssim": 1.0, "n": n, "worse_than_input": 0},
            "m": {"psnr": identity, "ssim": 0.99, "n": n, "worse_than_input": n},
        }
    }
    return {"tracks": {"photo_blur": track, "identity_photo": ident}}


@pytest.mark.parametrize(
    "psnr, ssim, worse, identity, passed",
    [
        (26.0, 0.75, 1, 40.0, True),
        (24.9, 0.75, 0, 40.0, False),  # worse on average
        (26.0, 0.69, 0, 40.0, False),  # SSIM below the input
        (26.0, 0.75, 2, 40.0, False),  # more than a tenth of the images lose PSNR
        (26.0, 0.75, 0, 32.9, False),  # rewrites sharp images
    ],
)
def test_the_gate_passes_only_a_model_that_does_no_harm(psnr, ssim, worse, identity, passed):
    verdict = gate(_report(psnr, ssim, worse, identity), "m")
    assert verdict["passed"] is passed and len(verdict["checks"]) == 4


def test_export_into_the_bundled_models_needs_the_gate_and_a_failing_model_writes_nothing(data_root, tmp_path):
    from napari_deblur.resources import resources_dir

    run = tmp_path / "run"
    assert (
        main(
            [
                "train",
                "xydeblur",
                "--preset",
                "microscopy",
                "--iters",
                "1",
                "--batch",
                "2",
                "--crop",
                "32",
                "--width",
                "4",
                "--blocks",
                "1",
                "--val-every",
                "1",
                "--ckpt-every",
                "1",
                "--device",
                "cpu",
                "--out",
                str(run),
            ]
        )
        == 0
    )
    assert main(["export", str(run), "--name", "xydeblur-microscopy", "--out", str(resources_dir())]) == 2
    # an identity-initialised model loses a little to fp16 rounding: it cannot pass "no image worse"
    out = tmp_path / "res"
    code = main(
        [
            "export",
            str(run),
            "--name",
            "cand",
            "--out",
            str(out),
            "--real",
            str(data_root),
            "--quick-gate",
            "--gate-device",
            "cpu",
            "--gate-report",
            str(tmp_path / "gate"),
        ]
    )
    report = (tmp_path / "gate" / "real.json").read_text()
    assert '"cand"' in report
    if code == 0:
        assert (out / "cand.json").is_file() and "real_benchmark" in (out / "cand.json").read_text()
    else:
        assert code == 2 and not out.exists()


@pytest.mark.skipif(not (SHARED / "photos").is_dir(), reason="the project's real data folder is absent")
def test_the_real_folder_gives_the_documented_cases():
    from napari_deblur.evaluation.real_cases import fluorescence_cases, gopro_cases, photo_blur_cases

    assert len(gopro_cases(SHARED, "quick")) == 4
    assert len(photo_blur_cases(SHARED, "quick")) == 23
    cases = fluorescence_cases(SHARED, "quick")
    assert len(cases) == 9 and all(c.image.dtype == np.uint16 for c in cases)


def test_the_gate_fails_a_model_whose_tracks_were_not_all_scored():
    report = _report(26.0, 0.75, 0)
    report["models"] = [{"name": "m", "channels": 3}]
    verdict = gate(report, "m")
    assert not verdict["passed"] and any(c["value"] == "missing" and c["track"] == "gopro" for c in verdict["checks"])


def _denoiser_report(mode="full", passed=True):
    means = {
        INPUT: {"psnr": 27.0, "ssim": 0.6, "n": 3, "worse_than_input": 0},
        "predictor": {"psnr": 34.0, "ssim": 0.93, "n": 3, "worse_than_input": 0},
        "den": {"psnr": 34.1, "ssim": 0.93, "n": 3, "worse_than_input": 0},
    }
    track = {
        "means": {INPUT: {"psnr": 26.0, "ssim": 0.5, "n": 9, "worse_than_input": 0}},
        "diffusion": {"den": {"preset": {"steps": 2, "samples": 16}, "means": means, "std_error_rho": 0.45}},
    }
    return {
        "mode": mode,
        "device": "cpu (2 threads)",
        "date": "2026-12-07T00:00:00+00:00",
        "tracks": {"fluorescence": track},
        "gate": {"den": {"model": "den", "passed": passed, "checks": []}},
    }


def test_recording_a_real_run_rewrites_only_the_manifests_real_benchmark(tmp_path):
    import json

    from napari_deblur.training.export import record_real_benchmark

    weights = tmp_path / "den.safetensors"
    weights.write_bytes(b"weights")
    manifest = {"name": "den", "file": weights.name, "sha256": "abc", "recipe": {"iters": 5}}
    manifest["real_benchmark"] = {"gate": {"passed": True}, "fidelity_preset": {"steps": 10, "samples": 8}}
    (tmp_path / "den.json").write_text(json.dumps(manifest))
    path = record_real_benchmark(_denoiser_report(passed=False), "den", tmp_path)
    written = json.loads(path.read_text())
    assert {k: v for k, v in written.items() if k != "real_benchmark"} == {
        k: v for k, v in manifest.items() if k != "real_benchmark"
    }
    real = written["real_benchmark"]
    assert real["fidelity_preset"] == {"steps": 2, "samples": 16} and real["gate"]["passed"] is False
    assert real["tracks"]["fluorescence"]["den"]["psnr"] == 34.1
    assert real["tracks"]["fluorescence"]["std_error_rho"] == 0.45
    assert weights.read_bytes() == b"weights" and not list(tmp_path.glob(".*.part"))
    with pytest.raises(ValueError, match="full"):
        record_real_benchmark(_denoiser_report(mode="quick"), "den", tmp_path)
    with pytest.raises(ValueError, match="not scored"):
        record_real_benchmark(_denoiser_report(), "other", tmp_path)
    report = _denoiser_report()
    report["gate"]["ghost"] = report["gate"]["den"]
    with pytest.raises(ValueError, match="not a bundled model"):
        record_real_benchmark(report, "ghost", tmp_path)


def test_eval_record_refuses_a_quick_run_and_files_that_are_not_bundled(tmp_path, data_root, capsys):
    assert main(["eval", "--real", str(data_root), "--quick", "--record", "--out", str(tmp_path / "q")]) == 2
    assert "--record" in capsys.readouterr().err and not (tmp_path / "q").exists()
    loose = _identity_model(tmp_path / "mine.safetensors", 1)
    assert main(["eval", "--real", str(data_root), "--models", loose, "--record", "--out", str(tmp_path / "r")]) == 2
    assert "not bundled" in capsys.readouterr().err and not (tmp_path / "r").exists()
