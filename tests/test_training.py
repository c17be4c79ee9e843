"""Training runs on the CPU, learns, resumes exactly, and exports a loadable bundled model."""

import json

import pytest
import torch

from napari_deblur.models.weights import load_model
from napari_deblur.training.export import export_run
from napari_deblur.training.train_xydeblur import TrainConfig, Trainer


def _config(**kw):
    base = dict(
        preset="photo",
        iters=6,
        batch=2,
        crop=32,
        width=4,
        blocks=1,
        lr=2e-3,
        warmup=1,
        val_every=3,
        ckpt_every=3,
        val_crops=2,
        val_crop=32,
        seed=1,
    )
    return TrainConfig(**{**base, **kw})


def test_loss_goes_down(tmp_path):
    trainer = Trainer(_config(iters=40, fft_weight=0.0, zero_init=False), tmp_path / "run", log=lambda s: None)
    losses = [trainer.step() for _ in range(40)]
    assert sum(losses[-8:]) / 8 < 0.7 * sum(losses[:8]) / 8, losses


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_resume_continues_identically(tmp_path, precision):
    straight = Trainer(_config(precision=precision), tmp_path / "a", log=lambda s: None)
    straight.run()
    interrupted = Trainer(_config(precision=precision), tmp_path / "b", log=lambda s: None)
    for _ in range(3):
        interrupted.step()
    interrupted.save()
    del interrupted
    resumed = Trainer(_config(precision=precision), tmp_path / "b", log=lambda s: None)
    assert resumed.iteration == 3
    resumed.run()
    for key, value in straight.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[key]), key
    for key, value in straight.ema.items():
        assert torch.equal(value, resumed.ema[key]), key


def test_time_limit_stops_with_a_checkpoint(tmp_path):
    trainer = Trainer(_config(iters=1000), tmp_path / "run", log=lambda s: None)
    summary = trainer.run(time_limit=0.0)
    assert summary["iteration"] == 1
    assert (tmp_path / "run" / "checkpoint" / "index.json").is_file()
    # stopped between validations (val_every 3), it still validates the weights it stops with,
    # so that export records their validation, not an earlier one (or none)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["iter"] == 1 and "val_psnr" in log[-1] and summary["val_psnr"] == log[-1]["val_psnr"]


def test_fit_iters_ends_the_schedule_inside_the_time_limit_and_a_resumed_run_keeps_it(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from napari_deblur.training import train_xydeblur

    clock = [0.0]  # a fake clock: each training step takes 150 ms, everything else no time
    monkeypatch.setattr(train_xydeblur, "time", SimpleNamespace(perf_counter=lambda: clock[0]))
    monkeypatch.setattr(train_xydeblur, "FIT_WINDOW", (2, 6))
    real_step = Trainer.step

    def timed_step(self):
        clock[0] += 0.15
        return real_step(self)

    monkeypatch.setattr(Trainer, "step", timed_step)
    said = []
    config = dict(iters=10_000, val_every=10_000, ckpt_every=10_000)
    trainer = Trainer(_config(**config), tmp_path / "run", log=said.append)
    summary = trainer.run(time_limit=4.0, fit_iters=True)
    fitted = 6 + int(0.9 * (4.0 - 6 * 0.15) / 0.15)  # 90% of the time left after the timed window
    assert summary["iteration"] == trainer.cfg.iters == fitted == 24
    assert "val_psnr" in summary  # the schedule's end validates, as a full run does
    assert not any("time limit reached" in line for line in said)  # the schedule ended, not the clock
    assert any("--fit-iters" in line for line in said)
    assert json.loads((tmp_path / "run" / "config.json").read_text())["iters"] == fitted
    assert train_xydeblur.learning_rate(trainer.cfg, fitted - 1) < 0.05 * trainer.cfg.lr  # the cosine decayed fully

    resumed = Trainer(_config(**config), tmp_path / "run", log=said.append)
    assert resumed.run(time_limit=4.0, fit_iters=True)["iteration"] == fitted  # the same length, nothing to do
    assert resumed.cfg.iters == fitted
    assert json.loads((tmp_path / "run" / "config.json").read_text())["iters"] == fitted  # what export reads
    unfitted = Trainer(_config(**config), tmp_path / "other", log=said.append)
    assert unfitted.run(time_limit=4.0)["iteration"] == 27  # without it the clock stops the run mid-schedule
    resumed_unfitted = Trainer(_config(**config), tmp_path / "other", log=said.append)
    resumed_unfitted.run(time_limit=0.0, fit_iters=True)
    assert resumed_unfitted.cfg.iters == 10_000  # a run already under way is not refitted
    assert any("was not fitted when it started" in line for line in said)


def test_fit_iters_needs_a_time_limit(tmp_path, capsys):
    from napari_deblur.cli import main

    assert main(["train", "dvsr", "--fit-iters", "--out", str(tmp_path / "run")]) == 2
    assert "--fit-iters needs --time-limit" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


def test_export_writes_a_bundled_model(tmp_path, monkeypatch):
    Trainer(_config(), tmp_path / "run", log=lambda s: None).run()
    manifest_path = export_run(tmp_path / "run", "xydeblur-tiny", tmp_path / "res", device="cpu (test)")
    manifest = json.loads(manifest_path.read_text())
    assert manifest["iterations"] == 6 and manifest["architecture"]["width"] == 4
    assert manifest["recipe"]["preset"] == "photo" and "val_psnr" in manifest["validation"]
    monkeypatch.setenv("NAPARI_DEBLUR_RESOURCES", str(tmp_path / "res"))
    model = load_model("xydeblur-tiny")
    assert model.weights_info["bundled"] and model.config["channels"] == 3


def test_export_validates_the_checkpoints_own_weights(tmp_path):
    """A checkpoint copied between validations (the iteration a gate picked) is exported with the
    validation of its own weights, not with a later one from the log, nor with none."""
    import shutil

    trainer = Trainer(_config(iters=6, val_every=6, ckpt_every=2), tmp_path / "run", log=lambda s: None)
    for _ in range(2):
        trainer.step()
    trainer.save()
    own = trainer.validate()
    shutil.copytree(tmp_path / "run", tmp_path / "snapshot")  # iteration 2: nothing validated yet
    trainer.run()  # on to 6, validated there
    shutil.copy(tmp_path / "run" / "log.jsonl", tmp_path / "snapshot" / "log.jsonl")  # a log that ran ahead
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["iter"] for r in log if "val_psnr" in r] == [6]
    manifest = json.loads(export_run(tmp_path / "snapshot", "xydeblur-tiny", tmp_path / "res").read_text())
    assert manifest["iterations"] == 2 and manifest["validation"]["iter"] == 2
    assert manifest["validation"]["val_psnr"] == own["val_psnr"] != log[-1]["val_psnr"]
    assert manifest["validation"]["computed"] == "at export"
    full = json.loads(export_run(tmp_path / "run", "xydeblur-tiny", tmp_path / "res2").read_text())
    assert full["validation"] == log[-1]  # the log's own record when it has one for the checkpoint


def test_train_and_export_commands(tmp_path, capsys):
    from napari_deblur.cli import main

    run = tmp_path / "run"
    args = [
        "train",
        "xydeblur",
        "--preset",
        "microscopy",
        "--iters",
        "2",
        "--batch",
        "1",
        "--crop",
        "32",
        "--width",
        "4",
        "--blocks",
        "1",
        "--val-every",
        "2",
        "--ckpt-every",
        "2",
        "--out",
        str(run),
    ]
    assert main(args) == 0
    assert main(args[:5] + ["4"] + args[6:]) == 0  # same folder, more iterations: resumes at 2
    assert "resumed" in capsys.readouterr().err
    assert main(["export", str(run), "--name", "xydeblur-mic-test", "--out", str(tmp_path / "res")]) == 0
    manifest = json.loads((tmp_path / "res" / "xydeblur-mic-test.json").read_text())
    assert manifest["iterations"] == 4 and manifest["architecture"]["channels"] == 1
    assert manifest["horizontal_branch"] in ("first", "second")
    assert manifest["recipe"]["pixel_loss"] == "l1"


def test_the_mse_pixel_loss_and_display_blur_are_chosen_trained_and_recorded(tmp_path, capsys):
    from napari_deblur.cli import main
    from napari_deblur.training.train_xydeblur import restoration_loss

    # one large error among small ones: MSE weighs it more than L1 does, which is the point of it
    sharp = torch.zeros(1, 3, 4, 4)
    restored = sharp.clone()
    restored[0, 0, 0, 0] = 1.0
    assert restoration_loss(restored, sharp, 0.0, "mse") == pytest.approx(1 / 48)
    assert restoration_loss(restored, sharp, 0.0, "l1") == pytest.approx(1 / 48)
    restored[0, 0, 0, 0] = 0.1
    assert restoration_loss(restored, sharp, 0.0, "mse") == pytest.approx(0.01 / 48)
    with pytest.raises(KeyError):
        restoration_loss(restored, sharp, 0.0, "l2")

    trainer = Trainer(
        _config(iters=40, fft_weight=0.0, pixel_loss="mse", zero_init=False), tmp_path / "a", log=lambda s: None
    )
    losses = [trainer.step() for _ in range(40)]
    assert sum(losses[-8:]) / 8 < 0.7 * sum(losses[:8]) / 8, losses

    run = tmp_path / "run"
    common = ["--iters", "1", "--batch", "1", "--crop", "32", "--width", "4", "--blocks", "1", "--out", str(run)]
    assert main(["train", "xydeblur", "--pixel-loss", "mse", *common]) == 0
    assert json.loads((run / "config.json").read_text())["pixel_loss"] == "mse"
    assert main(["train", "xydeblur", "--pixel-loss", "l2", *common]) == 2
    assert "invalid choice" in capsys.readouterr().err
    assert main(["train", "xydeblur", "--display-blur-prob", "1.5", *common]) == 2
    assert "--display-blur-prob must be between 0 and 1" in capsys.readouterr().err
    other = ["--out", str(tmp_path / "display"), *common[:-2]]
    assert main(["train", "xydeblur", "--display-blur-prob", "0.5", *other]) == 0
    assert json.loads((tmp_path / "display" / "config.json").read_text())["display_prob"] == 0.5


def test_a_new_model_starts_as_the_identity(tmp_path):
    trainer = Trainer(_config(), tmp_path / "run", log=lambda s: None)
    x = torch.rand(1, 3, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(trainer.model(x)[2], x)
    trainer.step()
    assert trainer.model.Decoder1_4.main[0].weight.abs().sum() > 0  # and it does learn


def test_branch_orientation_from_energies():
    from napari_deblur.training.orientation import orientation

    first_is_horizontal = {
        "horizontal": {"first": [4.0, 4.0], "second": [1.0, 1.0]},
        "vertical": {"first": [1.0, 1.0], "second": [4.0, 4.0]},
    }
    assert orientation(first_is_horizontal) == {
        "horizontal_branch": "first",
        "branch_split": 16.0,
        "branch_agreement": 1.0,
    }
    mixed = {
        "horizontal": {"first": [1.0, 3.0], "second": [3.0, 1.0]},
        "vertical": {"first": [2.0, 1.0], "second": [1.0, 1.0]},
    }
    result = orientation(mixed)
    assert result["branch_agreement"] == 0.5 and result["horizontal_branch"] == "second"


def test_benchmark_results_for_the_manifest():
    from napari_deblur.evaluation.summary import model_results

    bench = {
        "mode": "quick",
        "tracks": {
            "photo": {
                "results": {
                    "low": {
                        "means": {
                            "blurry input": {"psnr": 20.0, "ssim": 0.5},
                            "xydeblur-photo": {"psnr": 21.0, "ssim": 0.6},
                            "xydeblur-other": {"psnr": 19.0, "ssim": 0.4},
                        }
                    }
                }
            }
        },
    }
    out = model_results(bench, "xydeblur-photo")
    assert out["photo/low"] == {
        "blurry input": {"psnr": 20.0, "ssim": 0.5},
        "xydeblur-photo": {"psnr": 21.0, "ssim": 0.6},
    }


def test_the_ema_warms_up_so_a_short_run_is_not_stuck_at_its_initial_weights(tmp_path):
    trainer = Trainer(_config(iters=30, ema=0.999, zero_init=False), tmp_path / "run", log=lambda s: None)
    assert trainer.ema_decay() == 0.1  # iteration 0: (1 + 0) / (10 + 0)
    initial = {k: v.clone() for k, v in trainer.ema.items()}
    for _ in range(30):
        trainer.step()
    model = trainer.model.state_dict()
    key = next(k for k, v in model.items() if v.dtype.is_floating_point and v.ndim == 4)
    to_model = (trainer.ema[key] - model[key].float()).norm()
    to_initial = (trainer.ema[key] - initial[key]).norm()
    assert to_model < to_initial  # the EMA has followed the training, not stayed at the random start
    trainer.iteration = 10**6
    assert trainer.ema_decay() == 0.999  # a long run averages with the configured decay


def test_training_precision_follows_the_hardware(monkeypatch):
    from napari_deblur.training import precision

    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    assert precision.training_precision("auto", cpu) == "bf16"
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)  # an AVX2 CPU: emulated bf16 is slow
    assert precision.training_precision("auto", cpu) == "fp32"
    assert precision.training_precision("auto", torch.device("mps")) == "fp32"
    assert precision.training_precision("auto", cuda) == "bf16"
    assert precision.training_precision("bf16", cpu) == "bf16"  # asked for: given, even if emulated
    assert precision.training_precision("fp32", cuda) == "fp32"
    with pytest.raises(ValueError, match="precision must be one of"):
        precision.training_precision("fp16", cpu)


def test_a_bf16_run_trains_in_bf16_keeps_float32_state_and_records_it(tmp_path):
    trainer = Trainer(_config(precision="bf16"), tmp_path / "run", log=lambda s: None)
    seen = []
    hook = trainer.model.register_forward_hook(lambda _m, _i, out: seen.append(out[0].dtype))
    trainer.run()
    hook.remove()
    assert seen and all(dtype == torch.bfloat16 for dtype in seen)  # the step ran under bf16 autocast
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())  # float32 master weights
    assert all(v.dtype == torch.float32 and v.is_contiguous() for v in trainer.ema.values())
    assert json.loads((tmp_path / "run" / "config.json").read_text())["precision"] == "bf16"
    manifest = json.loads(export_run(tmp_path / "run", "xydeblur-bf16", tmp_path / "res").read_text())
    assert manifest["recipe"]["precision"] == "bf16"
    model = load_model(tmp_path / "res" / manifest["file"])
    with torch.no_grad():
        assert torch.isfinite(model(torch.rand(1, 3, 32, 32))[2]).all()
