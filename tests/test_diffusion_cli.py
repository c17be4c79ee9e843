"""`napari-deblur diffuse` end to end with tiny random models."""

import numpy as np
import pytest
import tifffile
import torch
from factories import tiny_model

from napari_deblur.cli import build_parser, main
from napari_deblur.io import read_image
from napari_deblur.models.denoiser import ResidualDenoiser
from napari_deblur.models.weights import PREDICTOR_KEY, save_safetensors

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """A 1-channel predictor + denoiser pair; the denoiser's header names the predictor."""
    folder = tmp_path_factory.mktemp("models")
    pred = save_safetensors(tiny_model(channels=1), folder / "pred1.safetensors")
    torch.manual_seed(0)
    den = save_safetensors(
        ResidualDenoiser(1, width=8), folder / "den1.safetensors", metadata={PREDICTOR_KEY: str(pred)}
    )
    torch.manual_seed(1)
    other = save_safetensors(ResidualDenoiser(1, width=8), folder / "loose.safetensors")
    return {"pred": str(pred), "den": str(den), "loose": str(other)}


@pytest.fixture
def stack(tmp_path):
    """An ImageJ ZYX uint16 stack with calibration; 20x28 is not a multiple of 8."""
    data = np.random.default_rng(1).integers(100, 4000, (2, 20, 28), dtype=np.uint16)
    path = tmp_path / "in" / "cells.tif"
    path.parent.mkdir()
    tifffile.imwrite(
        path, data, imagej=True, resolution=(10, 10), metadata={"axes": "ZYX", "spacing": 0.5, "unit": "um"}
    )
    return path


def test_diffuse_round_trip(tmp_path, stack, models):
    out = tmp_path / "out"
    before = stack.read_bytes()
    status = main(
        [
            "diffuse",
            str(stack),
            "-o",
            str(out),
            "--model",
            models["den"],
            "--steps",
            "4",
            "--samples",
            "2",
            "--seed",
            "3",
            "--save-steps",
            "2",
            "--device",
            "cpu",
            "-q",
        ]
    )
    assert status == 0
    assert stack.read_bytes() == before
    names = sorted(p.name for p in out.iterdir())
    assert names == ["cells_mean.tif", "cells_std.tif", "cells_x0_step0002.tif", "cells_x0_step0004.tif"]
    original = read_image(stack)
    for name in names:
        im = read_image(out / name)
        assert im.array.shape == original.array.shape and im.array.dtype == np.float32
        assert im.axes == original.axes == "ZYX"
        assert im.scale == pytest.approx(original.scale) and im.unit == original.unit
    assert (read_image(out / "cells_std.tif").array >= 0).all()
    # same seed from Python gives the same files
    from napari_deblur.diffusion.refine import refine

    res = refine(original.array, models["den"], steps=4, samples=2, seed=3, device="cpu", axes="ZYX")
    np.testing.assert_allclose(read_image(out / "cells_mean.tif").array, res.mean, rtol=1e-6)
    np.testing.assert_allclose(read_image(out / "cells_std.tif").array, res.std, rtol=1e-6)


def test_predictor_option_and_errors(tmp_path, stack, models, capsys):
    out = tmp_path / "out"
    # a denoiser whose file names no predictor needs --predictor
    assert main(["diffuse", str(stack), "-o", str(out), "--model", models["loose"], "--steps", "2", "-q"]) == 2
    assert "does not name the predictor" in capsys.readouterr().err
    assert not out.exists()
    assert (
        main(
            [
                "diffuse",
                str(stack),
                "-o",
                str(out),
                "--model",
                models["loose"],
                "--predictor",
                models["pred"],
                "--steps",
                "2",
                "--sampler",
                "ddim",
                "--device",
                "cpu",
                "-q",
            ]
        )
        == 0
    )
    assert (out / "cells_mean.tif").is_file()
    # outputs exist: refused without --overwrite, replaced with it
    assert main(["diffuse", str(stack), "-o", str(out), "--model", models["den"], "--steps", "2", "-q"]) == 2
    assert "already exists" in capsys.readouterr().err
    assert (
        main(
            [
                "diffuse",
                str(stack),
                "-o",
                str(out),
                "--model",
                models["den"],
                "--steps",
                "2",
                "--overwrite",
                "--device",
                "cpu",
                "-q",
            ]
        )
        == 0
    )
    assert main(["diffuse", str(stack), "-o", str(out), "--model", models["den"], "--steps", "1001"]) == 2
    assert "steps must be from 1 to 1000" in capsys.readouterr().err
    assert main(["diffuse", str(stack), "-o", str(out), "--model", models["den"], "--steps", "0"]) == 2
    assert (
        main(
            [
                "diffuse",
                str(stack),
                "-o",
                str(out),
                "--model",
                models["den"],
                "--axes",
                "YXQ",
                "--overwrite",
                "--steps",
                "2",
                "--device",
                "cpu",
            ]
        )
        == 2
    )
    assert "cells.tif" in capsys.readouterr().err


def test_parser_defaults():
    from napari_deblur.cli.diffuse import sampling_of

    args = build_parser().parse_args(["diffuse", "a.tif", "-o", "out"])
    assert (*sampling_of(args), args.seed, args.sampler, args.save_steps) == (2, 16, 0, "ddpm", None)
    assert args.preset is None
    assert args.model is None and args.predictor is None and args.tile == "auto"
    train = build_parser().parse_args(["train", "xydeblur", "--out", "run"])
    assert train.crop is None and train.blocks is None  # resolved per architecture (xydeblur: 192 and 6)


def test_train_xydeblur_keeps_its_defaults(tmp_path, monkeypatch):
    from napari_deblur.training import train_xydeblur

    seen = {}

    class Recorder:
        def __init__(self, cfg, out, device="auto", log=print):
            seen["cfg"] = cfg

        def run(self, time_limit=None, fit_iters=False):
            return {}

    monkeypatch.setattr(train_xydeblur, "Trainer", Recorder)
    assert main(["train", "xydeblur", "--out", str(tmp_path / "run")]) == 0
    assert seen["cfg"].crop == 192 and seen["cfg"].blocks == 6
    assert main(["train", "xydeblur", "--crop", "96", "--blocks", "2", "--out", str(tmp_path / "run")]) == 0
    assert seen["cfg"].crop == 96 and seen["cfg"].blocks == 2


def test_default_denoiser_per_image(tmp_path, stack, monkeypatch, capsys):
    from factories import bundle_presets

    resources = tmp_path / "resources"
    resources.mkdir()
    monkeypatch.setenv("NAPARI_DEBLUR_RESOURCES", str(resources))
    bundle_presets(resources, lambda channels: (tiny_model(channels=channels), ResidualDenoiser(channels, width=8)))
    photo = tmp_path / "in" / "photo.tif"
    tifffile.imwrite(photo, np.random.default_rng(2).integers(0, 255, (24, 32, 3), dtype=np.uint8), photometric="rgb")
    assert (
        main(["diffuse", str(stack), str(photo), "-o", str(tmp_path / "out"), "--steps", "1", "--device", "cpu"]) == 0
    )
    err = capsys.readouterr().err
    assert "(dvsr-microscopy + xydeblur-microscopy," in err and "(dvsr-photo + xydeblur-photo," in err


def interrupt_after_first_preview(monkeypatch, out):
    """Make refine_iter raise KeyboardInterrupt once a preview TIFF has been written."""
    from napari_deblur.diffusion import refine

    real = refine.refine_iter

    def interrupted(*args, **kwargs):
        for step in real(*args, **kwargs):
            yield step
            if any(out.glob("*_x0_step*.tif")):
                raise KeyboardInterrupt

    monkeypatch.setattr(refine, "refine_iter", interrupted)


def test_an_interrupted_run_leaves_none_of_its_files_and_a_rerun_works(tmp_path, stack, models, monkeypatch):
    out = tmp_path / "out"
    args = [
        "diffuse",
        str(stack),
        "-o",
        str(out),
        "--model",
        models["den"],
        "--steps",
        "4",
        "--save-steps",
        "1",
        "--device",
        "cpu",
        "-q",
    ]
    with monkeypatch.context() as patch:
        interrupt_after_first_preview(patch, out)
        assert main(args) == 130
    assert list(out.iterdir()) == []
    assert main(args) == 0  # nothing blocks the rerun
    assert len(list(out.glob("cells_x0_step*.tif"))) == 4


def test_an_interrupted_overwrite_removes_only_what_it_wrote(tmp_path, stack, models, monkeypatch):
    out = tmp_path / "out"
    out.mkdir()
    for name in ("cells_x0_step0001.tif", "cells_x0_step0002.tif", "cells_mean.tif", "notes.txt"):
        (out / name).write_bytes(b"older")
    with monkeypatch.context() as patch:
        interrupt_after_first_preview(patch, out)
        code = main(
            [
                "diffuse",
                str(stack),
                "-o",
                str(out),
                "--model",
                models["den"],
                "--steps",
                "2",
                "--save-steps",
                "1",
                "--device",
                "cpu",
                "--overwrite",
                "-q",
            ]
        )
    assert code == 130
    # step 1 was replaced by this run, so it was this run's own output: removed with the rest;
    # the files the run had not reached yet are as they were
    assert sorted(p.name for p in out.iterdir()) == ["cells_mean.tif", "cells_x0_step0002.tif", "notes.txt"]
    assert all((out / name).read_bytes() == b"older" for name in ("cells_mean.tif", "cells_x0_step0002.tif"))


@pytest.mark.parametrize(
    "given, expected",
    [
        ([], (2, 16)),  # the Fidelity preset, as in the widget
        (["--samples", "3"], (100, 3)),
        (["--preset", "fidelity"], (2, 16)),
        (["--preset", "perceptual"], (500, 1)),
        (["--preset", "fidelity", "--samples", "4"], (2, 4)),
        (["--preset", "perceptual", "--steps", "50"], (50, 1)),
        (["--steps", "7"], (7, 1)),
    ],
)
def test_preset_sets_steps_and_samples_unless_given(given, expected):
    from napari_deblur.cli.diffuse import sampling_of
    from napari_deblur.diffusion.presets import FIDELITY, PERCEPTUAL

    assert (FIDELITY.steps, FIDELITY.samples, PERCEPTUAL.steps, PERCEPTUAL.samples) == (2, 16, 500, 1)
    args = build_parser().parse_args(["diffuse", "in.tif", "-o", "out", *given])
    assert sampling_of(args) == expected


def test_fidelity_preset_runs_what_it_names(tmp_path, stack, models):
    from napari_deblur.diffusion.presets import FIDELITY
    from napari_deblur.diffusion.refine import refine

    out = tmp_path / "out"
    args = ["diffuse", str(stack), "-o", str(out), "--model", models["den"], "--preset", "fidelity"]
    assert main([*args, "--seed", "2", "--device", "cpu", "-q"]) == 0
    original = read_image(stack)
    res = refine(
        original.array, models["den"], steps=FIDELITY.steps, samples=FIDELITY.samples, seed=2, device="cpu", axes="ZYX"
    )
    np.testing.assert_allclose(read_image(out / "cells_mean.tif").array, res.mean, rtol=1e-6)
    np.testing.assert_allclose(read_image(out / "cells_std.tif").array, res.std, rtol=1e-6)
    assert res.info["steps"] == 2 and res.info["samples"] == 16
