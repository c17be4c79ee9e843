"""tools/gpu_session.py, the prepared GPU-lease command, in miniature on the CPU: training,
export and probe run, and what it leaves in OUT fits what a lease can bring back."""

import json
import shutil
import tarfile
from pathlib import Path

import pytest

pytest.importorskip("torch")

from factories import load_tool  # noqa: E402


def load_script():
    return load_tool("gpu_session")


@pytest.mark.slow
def test_smoke_session_trains_exports_probes_and_packs_within_the_lease_limits(tmp_path):
    """A denoiser and its predictor in one session: the predictor trains first (though listed
    second), and the denoiser trains, is probed and is exported against the new predictor."""
    from napari_deblur.models.weights import load_model, weights_sha256

    out = tmp_path / "OUT"
    assert (
        load_script().main(
            [
                "--device",
                "cpu",
                "--smoke",
                "--no-bench",
                "--train",
                "dvsr-photo",
                "xydeblur-photo",
                "--out",
                str(out),
                "--budget",
                "400",
            ]
        )
        == 0
    )
    files = sorted(p.name for p in out.rglob("*"))
    assert files == [
        "dvsr-photo.json",
        "dvsr-photo.safetensors",
        "report.tar.gz",  # no checkpoints, no logs loose
        "xydeblur-photo.json",
        "xydeblur-photo.safetensors",
    ]
    assert all(p.stat().st_size < 16 * 2**20 for p in out.iterdir())  # what a lease brings back
    with tarfile.open(out / "report.tar.gz") as tar:
        names = set(tar.getnames())
        results = json.load(tar.extractfile("results.json"))
        probe = tar.extractfile("probe-dvsr-photo.log").read().decode()
        log = tar.extractfile("session.log").read().decode()
    assert {"session.log", "train-dvsr-photo.jsonl", "train-dvsr-photo.log", "train-xydeblur-photo.log"} <= names
    stages = (
        "train-xydeblur-photo",
        "export-xydeblur-photo",
        "train-dvsr-photo",
        "export-dvsr-photo",
        "probe-dvsr-photo",
    )
    assert [results[stage]["exit"] for stage in stages] == [0] * 5
    assert log.index("train-xydeblur-photo:") < log.index("train-dvsr-photo:")
    assert "use the new xydeblur-photo" in log
    commands = [line for line in log.splitlines() if "napari_deblur train " in line]
    assert len(commands) == 2 and "train-xydeblur-photo: " in commands[0]
    assert "--init xydeblur-photo" in commands[0] and "--display-blur-prob" not in commands[0]  # smoke recipe
    assert "--init dvsr-photo" in commands[1]
    assert "x_init" in probe and "T=2, N=2: PSNR" in probe
    manifest = json.loads((out / "dvsr-photo.json").read_text())
    assert manifest["device"] == "CPU (smoke run)" and "gpu_session" in manifest["note"]
    new_predictor = weights_sha256(load_model(str(out / "xydeblur-photo.safetensors")))
    assert new_predictor != weights_sha256(load_model("xydeblur-photo"))  # it did train
    assert manifest["predictor"] == "xydeblur-photo" and manifest["predictor_sha256"] == new_predictor


def test_a_stage_that_runs_over_is_logged_and_the_session_goes_on(tmp_path, monkeypatch):
    module = load_script()
    monkeypatch.setattr(module, "MIN_STAGE_SECONDS", 1)
    stuck = tmp_path / "stuck.py"
    stuck.write_text("import time\ntime.sleep(60)\n")
    session = module.Session(tmp_path, budget=60, device="cpu", smoke=True)
    assert session.run("stuck", [str(stuck)], limit=2) is False
    assert session.results["stuck"]["exit"] == "timeout" and session.results["stuck"]["seconds"] < 10
    session.deadline = 0  # no time left: later stages are skipped, not started
    assert session.run("late", ["bench"], limit=100) is False and session.results["late"] == "skipped"
    assert "stuck: exit timeout" in session.log_path.read_text()
    shutil.rmtree(session.work)


def test_more_models_than_a_lease_can_bring_back_is_refused(tmp_path, capsys):
    with pytest.raises(SystemExit):
        load_script().main(
            [
                "--train",
                "dvsr-photo",
                "dvsr-microscopy",
                "xydeblur-photo",
                "xydeblur-microscopy",
                "--out",
                str(tmp_path / "OUT"),
            ]
        )
    assert "at most 3 models" in capsys.readouterr().err
    assert not (tmp_path / "OUT").exists()


def test_the_compile_bench_runs_last_in_the_seconds_kept_for_it(tmp_path, monkeypatch):
    module = load_script()
    calls = []

    def fake_run(self, name, args, limit, env=None):
        calls.append((name, round(min(limit, self.left() - 5))))
        return False  # nothing trained: no export or probe follows

    monkeypatch.setattr(module.Session, "run", fake_run)
    monkeypatch.setattr(module.Session, "environment", lambda self: None)
    module.main(
        [
            "--device",
            "cpu",
            "--train",
            "dvsr-photo",
            "--budget",
            "600",
            "--compile-seconds",
            "150",
            "--out",
            str(tmp_path / "OUT"),
        ]
    )
    names = [name for name, _ in calls]
    assert names == ["bench", "train-dvsr-photo", "bench-compile"]
    train_limit = calls[1][1]
    # training leaves the compile bench its 150 s and the model's export/probe reserve
    assert train_limit <= 600 - 150 - module.RESERVE_PER_MODEL + 30
    calls.clear()
    module.main(["--device", "cpu", "--train", "dvsr-photo", "--budget", "600", "--out", str(tmp_path / "OUT2")])
    assert [name for name, _ in calls] == ["bench", "train-dvsr-photo"]  # no --compile-seconds: no compile bench


def test_the_bench_runs_the_decoder_form_the_variants_stage_found_fastest(tmp_path, monkeypatch):
    module = load_script()
    calls = []

    def fake_run(self, name, args, limit, env=None):
        calls.append((name, env))
        if name == "variants":
            Path(args[args.index("--out") + 1]).write_text(json.dumps({"fastest": "twin-grouped"}))
        return True

    monkeypatch.setattr(module.Session, "run", fake_run)
    monkeypatch.setattr(module.Session, "environment", lambda self: None)
    module.main(
        ["--device", "cpu", "--train", "--budget", "600", "--variants-seconds", "200", "--out", str(tmp_path / "OUT")]
    )
    assert calls == [("variants", None), ("bench", {"NAPARI_DEBLUR_DECODER": "twin-grouped"})]
    calls.clear()
    module.main(["--device", "cpu", "--train", "--budget", "600", "--out", str(tmp_path / "OUT2")])
    assert calls == [("bench", None)]  # no --variants-seconds: the engine's default form
