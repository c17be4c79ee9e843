"""Training the diffusion denoiser on the CPU: it learns, resumes exactly, exports a usable pair."""

import json

import numpy as np
import pytest
import torch
from factories import tiny_model

from napari_deblur.cli import main
from napari_deblur.diffusion.refine import refine
from napari_deblur.models.registry import available_models
from napari_deblur.models.weights import load_denoiser, save_safetensors, sha256_of
from napari_deblur.training.checkpoint import load_checkpoint
from napari_deblur.training.export_dvsr import export_dvsr_run
from napari_deblur.training.train_dvsr import DVSRConfig, DVSRTrainer

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def predictor(tmp_path_factory):
    return save_safetensors(tiny_model(channels=3), tmp_path_factory.mktemp("pred") / "pred.safetensors")


def _config(predictor, **kw):
    base = dict(
        preset="photo",
        predictor=str(predictor),
        iters=6,
        batch=2,
        crop=32,
        width=8,
        lr=2e-3,
        warmup=1,
        val_every=3,
        ckpt_every=3,
        val_crops=2,
        val_crop=32,
        val_steps=3,
        seed=1,
    )
    return DVSRConfig(**{**base, **kw})


def quiet(_):
    pass


def _fixed_loss(trainer):
    """The eps L1 on the held-out batch at fixed noise levels and noise (what a step lowers)."""
    blurred, sharp, x_init = trainer.val
    r0 = (sharp - x_init) * trainer.model.residual_scale
    g = torch.Generator().manual_seed(5)
    a = torch.linspace(0.05, 0.95, len(r0))[:, None, None, None]
    eps = torch.randn(r0.shape, generator=g)
    with torch.no_grad():
        eps_hat = trainer.model(a.sqrt() * r0 + (1 - a).sqrt() * eps, blurred, x_init, a.flatten())
    return float((eps_hat - eps).abs().mean())


def test_loss_goes_down(tmp_path, predictor):
    trainer = DVSRTrainer(_config(predictor, iters=40, batch=4, lr=5e-3, val_crops=4), tmp_path / "run", log=quiet)
    before = _fixed_loss(trainer)
    losses = [trainer.step() for _ in range(40)]
    assert np.isfinite(losses).all()
    after = _fixed_loss(trainer)
    assert after < 0.85 * before, (before, after)
    assert all(not p.requires_grad for p in trainer.predictor.parameters())


def test_resume_continues_identically(tmp_path, predictor):
    straight = DVSRTrainer(_config(predictor), tmp_path / "a", log=quiet)
    straight.run()
    interrupted = DVSRTrainer(_config(predictor), tmp_path / "b", log=quiet)
    for _ in range(3):
        interrupted.step()
    interrupted.save()
    del interrupted
    resumed = DVSRTrainer(_config(predictor), tmp_path / "b", log=quiet)
    assert resumed.iteration == 3
    resumed.run()
    for key, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    for key, value in straight.ema.items():
        assert torch.equal(value, resumed.ema[key]), key
    assert torch.equal(straight.noise.get_state(), resumed.noise.get_state())


def test_time_limit_and_log(tmp_path, predictor):
    trainer = DVSRTrainer(_config(predictor, iters=1000), tmp_path / "run", log=quiet)
    assert trainer.run(time_limit=0.0)["iteration"] == 1
    state = load_checkpoint(tmp_path / "run" / "checkpoint")
    assert state["architecture"] == "ResidualDenoiser" and state["predictor"] == str(predictor)
    full = DVSRTrainer(_config(predictor), tmp_path / "full", log=quiet)
    summary = full.run()
    assert summary["iteration"] == 6 and {"val_psnr", "val_psnr_init", "val_psnr_input"} <= set(summary)
    records = [json.loads(line) for line in (tmp_path / "full" / "log.jsonl").read_text().splitlines()]
    assert records[-1]["iter"] == 6 and "val_psnr" in records[-1]


def test_crop_must_fit_the_levels(tmp_path, predictor):
    with pytest.raises(ValueError, match="multiple of 8"):
        DVSRTrainer(_config(predictor, crop=36), tmp_path / "run", log=quiet)
    with pytest.raises(ValueError, match="channels"):
        DVSRTrainer(_config(predictor, preset="microscopy"), tmp_path / "run", log=quiet)


def test_export_gives_a_bundled_pair_the_engine_uses(tmp_path, predictor, monkeypatch):
    DVSRTrainer(_config(predictor), tmp_path / "run", log=quiet).run()
    manifest_path = export_dvsr_run(tmp_path / "run", "dvsr-tiny", tmp_path / "res", device="cpu (test)")
    manifest = json.loads(manifest_path.read_text())
    assert manifest["architecture"] == {
        "class": "ResidualDenoiser",
        "channels": 3,
        "width": 8,
        "mults": [1, 2, 3, 4],
        "blocks": 2,
        "residual_scale": 5.0,
        "sigma_data": 0.4,
    }
    assert manifest["predictor"] == str(predictor) and manifest["iterations"] == 6
    assert manifest["predictor_sha256"] == sha256_of(predictor)
    assert manifest["precision"] == "fp16" and "val_psnr" in manifest["validation"]
    monkeypatch.setenv("NAPARI_DEBLUR_RESOURCES", str(tmp_path / "res"))
    assert available_models("ResidualDenoiser") == ["dvsr-tiny"]
    model = load_denoiser("dvsr-tiny")
    assert model.weights_info["bundled"] and model.weights_info["predictor"] == str(predictor)
    # the loose file knows its predictor and that predictor's checksum too (safetensors header)
    loose = load_denoiser(tmp_path / "res" / "dvsr-tiny.safetensors").weights_info
    assert loose["predictor"] == str(predictor) and loose["predictor_sha256"] == sha256_of(predictor)
    image = np.random.default_rng(0).random((16, 24, 3)).astype(np.float32)
    res = refine(image, "dvsr-tiny", steps=2, samples=2, device="cpu")
    assert res.mean.shape == image.shape and res.info["model"] == "dvsr-tiny"
    assert res.info["predictor"] == "pred"


def test_train_command_dispatches_dvsr(tmp_path, predictor, capsys):
    out = tmp_path / "cli-run"
    status = main(
        [
            "train",
            "dvsr",
            "--preset",
            "photo",
            "--predictor",
            str(predictor),
            "--iters",
            "2",
            "--batch",
            "2",
            "--crop",
            "32",
            "--width",
            "8",
            "--val-every",
            "2",
            "--ckpt-every",
            "2",
            "--device",
            "cpu",
            "--out",
            str(out),
        ]
    )
    assert status == 0
    config = json.loads((out / "config.json").read_text())
    assert config["blocks"] == 2 and config["crop"] == 32 and config["predictor"] == str(predictor)
    assert config["residual_scale"] == 5.0 and config["sigma_data"] == 0.4  # the defaults
    assert load_checkpoint(out / "checkpoint")["iteration"] == 2
    assert main(["export", str(out), "--name", "dvsr-cli", "--out", str(tmp_path / "res")]) == 0
    assert json.loads((tmp_path / "res" / "dvsr-cli.json").read_text())["architecture"]["class"] == "ResidualDenoiser"
    assert main(["train", "dvsr", "--predictor", str(tmp_path / "nope.safetensors"), "--out", str(out)]) == 2
    assert "not found" in capsys.readouterr().err
    plain = tmp_path / "cli-plain"
    assert (
        main(
            [
                "train",
                "dvsr",
                "--preset",
                "photo",
                "--predictor",
                str(predictor),
                "--iters",
                "1",
                "--batch",
                "2",
                "--crop",
                "32",
                "--width",
                "8",
                "--device",
                "cpu",
                "--residual-scale",
                "2",
                "--sigma-data",
                "0",
                "--out",
                str(plain),
            ]
        )
        == 0
    )
    assert load_checkpoint(plain / "checkpoint")["config"]["residual_scale"] == 2.0
    assert load_checkpoint(plain / "checkpoint")["config"]["sigma_data"] == 0.0


def test_resume_refuses_another_residual_scale(tmp_path, predictor):
    trainer = DVSRTrainer(_config(predictor, residual_scale=3.0), tmp_path / "run", log=quiet)
    assert trainer.model.residual_scale == 3.0 and trainer.model.config["sigma_data"] == 0.4
    trainer.step()
    trainer.save()
    with pytest.raises(ValueError, match="residual_scale 3.0"):
        DVSRTrainer(_config(predictor, residual_scale=5.0), tmp_path / "run", log=quiet)
