"""The diffusion rows of `napari-deblur eval`: rows and JSON layout with tiny random models
(the measures themselves: test_metrics.py)."""

import copy
import json

import numpy as np
import pytest
import torch
from factories import tiny_model

from napari_deblur.evaluation import benchmark
from napari_deblur.evaluation import diffusion as dv
from napari_deblur.evaluation.cases import Case
from napari_deblur.evaluation.summary import model_results
from napari_deblur.models.denoiser import ResidualDenoiser
from napari_deblur.models.weights import PREDICTOR_KEY, save_safetensors

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {
    "cases": 1,
    "crop": 32,
    "fidelity": {"steps": 3, "samples": 3},
    "perceptual": [4, 6],
    "timing": {"size": 32, "steps": 2, "samples": 1},
}


def tiny_pair(folder, channels, seed=0):
    """A tiny XYDeblur and a tiny two-level ResidualDenoiser whose header names it."""
    pred = save_safetensors(tiny_model(channels=channels, seed=seed), folder / f"pred{channels}.safetensors")
    torch.manual_seed(seed)
    den = ResidualDenoiser(channels, width=8, mults=(1, 2), blocks=1)
    return save_safetensors(den, folder / f"dvsr-tiny{channels}.safetensors", metadata={PREDICTOR_KEY: str(pred)})


def synthetic_case(track, noise, index, size=40):
    """A random sharp image and a box-blurred noisy copy, in a benchmark Case."""
    rng = np.random.default_rng(index)
    shape = (3, size, size) if track == "photo" else (size, size)
    sharp = rng.random(shape).astype(np.float32)
    k = np.ones((3, 3), np.float32) / 9
    blurred = sum(np.roll(np.roll(sharp, dy, -2), dx, -1) for dy in (-1, 0, 1) for dx in (-1, 0, 1)) / 9
    blurred = np.clip(blurred + rng.normal(0, 0.01, shape), 0, 1).astype(np.float32)
    return Case(
        id=f"{track}{index}",
        track=track,
        noise=noise,
        source=f"src{index}",
        kernel_name="box",
        kernel=k,
        blurred=blurred,
        sharp=sharp,
    )


def test_cases_are_spread_over_sources_and_kernels():
    cases = [
        Case(id=f"{s}-{k}", track="photo", noise="low", source=s, kernel_name=k, kernel=None, blurred=None, sharp=None)
        for s in "abcdef"
        for k in ("arc", "polyline", "ring", "long_shake")
    ]
    picked = dv.pick_cases(cases, 4)
    assert [c.id for c in picked] == ["a-arc", "c-polyline", "d-ring", "f-long_shake"]
    assert [c.id for c in dv.pick_cases(cases, 8)][6:] == ["a-polyline", "b-polyline"]
    assert dv.pick_cases(cases[:2], 4) == cases[:2]
    assert dv.center_crop(np.zeros((3, 10, 12)), 4).shape == (3, 4, 4)
    assert dv.center_crop(np.zeros((10, 12)), 64).shape == (10, 12)


# ---------------------------------------------------------------- rows


@pytest.fixture(scope="module")
def section(tmp_path_factory):
    """The diffusion section for a tiny RGB and a tiny gray denoiser on one case per track and noise."""
    folder = tmp_path_factory.mktemp("dvsr")
    rgb, gray = tiny_pair(folder, 3), tiny_pair(folder, 1, seed=1)
    denoisers = dv.select_denoisers([str(rgb), str(gray)])
    cases = {
        track: [synthetic_case(track, noise, i) for noise in ("low", "high") for i in range(2)]
        for track in ("photo", "microscopy")
    }
    lines, threads = [], torch.get_num_threads()
    torch.set_num_threads(1)  # module scope runs outside the one_thread fixture
    try:
        return dv.evaluate_diffusion(denoisers, cases, TINY, ["low", "high"], "cpu", log=lines.append), lines
    finally:
        torch.set_num_threads(threads)


def test_rows_metrics_and_targets(section):
    section, lines = section
    json.loads(json.dumps(section, allow_nan=False))  # plain, finite JSON
    assert set(section["models"]) == {"dvsr-tiny3", "dvsr-tiny1"}
    assert list(section["models"]["dvsr-tiny3"]["tracks"]) == ["photo"]
    assert list(section["models"]["dvsr-tiny1"]["tracks"]) == ["microscopy"]
    assert section["settings"]["perceptual"] == [4, 6] and section["settings"]["fidelity"]["samples"] == 3
    for entry in section["models"].values():
        assert entry["predictor"].endswith(f"pred{entry['channels']}.safetensors")
        assert set(entry["targets"]) == {
            "fidelity_psnr_above_x_init",
            "perceptual_sharper_than_x_init",
            "uncertainty_tracks_error",
        }
        assert all(isinstance(v, bool) for v in entry["targets"].values())
        for res in next(iter(entry["tracks"].values())).values():
            rows = res["rows"]
            assert list(rows) == [
                dv.SHARP,
                dv.INPUT,
                dv.X_INIT,
                "fidelity: mean of 3 samples, T=3",
                "perceptual: 1 sample, T=4",
                "perceptual: 1 sample, T=6",
            ]
            assert set(rows[dv.SHARP]) >= {"blur_effect"} and "psnr" not in rows[dv.SHARP]
            assert {"psnr", "ssim", "blur_effect"} <= set(rows[dv.INPUT]) <= set(rows[dv.X_INIT])
            fid = rows["fidelity: mean of 3 samples, T=3"]
            assert (fid["kind"], fid["steps"], fid["samples"], fid["n"]) == ("fidelity", 3, 3, 1)
            assert -1 <= fid["std_error_spearman"] <= 1 and -1 <= fid["edge_error_spearman"] <= 1
            assert fid["edge_error_spearman"] != fid["std_error_spearman"]  # two different maps
            for label in ("perceptual: 1 sample, T=4", "perceptual: 1 sample, T=6"):
                row = rows[label]
                assert row["kind"] == "perceptual" and row["samples"] == 1
                assert "std_error_spearman" not in row and "edge_error_spearman" not in row
            for row in (fid, rows["perceptual: 1 sample, T=6"]):
                assert row["seconds"] > 0 and 0 < row["seconds_per_step"] <= row["seconds"]
                assert row["seconds_per_sample"] == pytest.approx(row["seconds"] / row["samples"])
            assert len(res["images"]) == 1 and res["images"][0]["shape"][-2:] == [32, 32]
            assert set(res["targets"]) == set(entry["targets"])
    timing = section["speed"]
    assert timing["model"] == "dvsr-tiny3" and timing["shape"] == [3, 32, 32] and timing["steps"] == 2
    assert timing["device"].startswith("cpu") and timing["seconds_per_step"] > 0
    assert set(timing["seconds_per_sample_estimated"]) == {"3", "4", "6"}
    assert any("photo/low" in line for line in lines)


def test_markdown_and_manifest_summary(section):
    section, _ = section
    md = "\n".join(dv.to_markdown(section))
    assert "## Diffusion refinement" in md and "| row | T | N | PSNR (dB) |" in md
    assert "| perceptual: 1 sample, T=6 | 6 | 1 |" in md and "blur_effect" in md and "lower is sharper" in md
    assert "Targets (all noise levels)" in md and "s per step" in md
    header = next(line for line in md.splitlines() if line.startswith("| row |"))
    edge_column = [c.strip() for c in header.split("|")].index("edge ρ")
    fid_lines = [line for line in md.splitlines() if line.startswith("| fidelity")]
    assert fid_lines and all(line.count("|") == header.count("|") for line in fid_lines)
    for line in fid_lines:
        float(line.split("|")[edge_column])  # a number, not "—"

    report = {"mode": "quick", "date": "d", "device": "cpu", "git_commit": None, "tracks": {}, "diffusion": section}
    mine = model_results(report, "dvsr-tiny3")
    assert set(mine) >= {"photo/low", "photo/high", "targets", "speed"} and "microscopy/low" not in mine
    assert mine["photo/low"]["fidelity: mean of 3 samples, T=3"]["samples"] == 3
    assert "edge_error_spearman" in mine["photo/low"]["fidelity: mean of 3 samples, T=3"]
    assert "speed" not in model_results(report, "dvsr-tiny1")
    assert set(model_results(report, "xydeblur-x")) == {"mode", "date", "device", "git_commit"}


def test_no_denoiser_is_a_short_note():
    section = dv.evaluate_diffusion([], {"photo": []}, TINY, ["low"], "cpu")
    assert section["models"] == {} and "skipped" in section
    assert "No diffusion rows" in "\n".join(dv.to_markdown(section))


def test_model_names_are_split_by_kind(tmp_path):
    den = tiny_pair(tmp_path, 3)
    xy = save_safetensors(tiny_model(channels=3), tmp_path / "xy.safetensors")
    torch.save(ResidualDenoiser(1, width=4, mults=(1, 2), blocks=1).state_dict(), tmp_path / "den.pt")
    assert benchmark.split_model_names(None) == (None, None)
    assert benchmark.split_model_names([str(xy), str(den), str(tmp_path / "den.pt"), "missing"]) == (
        [str(xy), "missing"],
        [str(den), str(tmp_path / "den.pt")],
    )


# ---------------------------------------------------------------- run_benchmark


def small_quick(monkeypatch, diffusion):
    """A smaller QUICK for the end-to-end runs (64 px, one image per track, tiny grids)."""
    quick = copy.deepcopy(benchmark.QUICK)
    quick["photo"].update(crop=64)
    quick["microscopy"].update(size=64, scenes=1, tune_scenes=1)
    quick.update(noises=["low"], wiener_balance=[1e-2], rl_iterations=[5], diffusion=diffusion)
    monkeypatch.setattr(benchmark, "QUICK", quick)


def needs_photos(fn):
    from napari_deblur.data.sharp import available_photos

    return pytest.mark.skipif(
        not {"chelsea", "coffee", "rocket"} <= set(available_photos()), reason="scikit-image's photos are not installed"
    )(fn)


@needs_photos
def test_run_benchmark_restricted_to_an_xydeblur_has_no_diffusion_rows(tmp_path, monkeypatch):
    small_quick(monkeypatch, TINY)
    xy = save_safetensors(tiny_model(channels=3), tmp_path / "xy.safetensors")
    report = benchmark.run_benchmark(tmp_path / "out", quick=True, models=[str(xy)], device="cpu", log=lambda s: None)
    assert report["diffusion"]["models"] == {} and "skipped" in report["diffusion"]
    assert report["tracks"]["photo"]["models"][0]["name"] == "xy"
    assert "No diffusion rows" in (tmp_path / "out" / "benchmark.md").read_text()


@needs_photos
def test_run_benchmark_with_a_denoiser(tmp_path, monkeypatch):
    small_quick(monkeypatch, TINY)
    den = tiny_pair(tmp_path, 3)
    report = benchmark.run_benchmark(tmp_path / "out", quick=True, models=[str(den)], device="cpu", log=lambda s: None)
    assert report["tracks"]["photo"]["models"] == []  # only the denoiser was asked for
    entry = report["diffusion"]["models"]["dvsr-tiny3"]
    assert list(entry["tracks"]) == ["photo"] and list(entry["tracks"]["photo"]) == ["low"]
    saved = json.loads((tmp_path / "out" / "benchmark.json").read_text())
    assert saved["diffusion"]["speed"]["model"] == "dvsr-tiny3"
    assert "| fidelity: mean of 3 samples, T=3 |" in (tmp_path / "out" / "benchmark.md").read_text()
