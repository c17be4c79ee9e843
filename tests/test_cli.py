"""The napari-deblur command line: `xy` end to end with tiny random models."""

import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile
from factories import tiny_model
from PIL import Image

from napari_deblur.cli import ProgressBar, build_parser, main
from napari_deblur.engine.restore import Progress
from napari_deblur.io import read_image
from napari_deblur.models.weights import save_safetensors

REPO = Path(__file__).resolve().parents[1]
rng = np.random.default_rng(1)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    folder = tmp_path_factory.mktemp("models")
    return {c: str(save_safetensors(tiny_model(channels=c), folder / f"tiny{c}.safetensors")) for c in (1, 3)}


@pytest.fixture
def stack(tmp_path):
    """An ImageJ TZCYX uint16 hyperstack; 20x24 is not a multiple of 4."""
    data = rng.integers(100, 4000, (2, 2, 2, 20, 24), dtype=np.uint16)
    path = tmp_path / "in" / "stack.tif"
    path.parent.mkdir()
    meta = {"axes": "TZCYX", "spacing": 0.5, "unit": "um", "finterval": 3.0, "mode": "composite"}
    tifffile.imwrite(path, data, imagej=True, resolution=(10, 10), metadata=meta)
    return path


@pytest.fixture
def photo(tmp_path):
    path = tmp_path / "in" / "photo.png"
    path.parent.mkdir(exist_ok=True)
    Image.fromarray(rng.integers(0, 255, (18, 22, 3), dtype=np.uint8)).save(path)
    return path


def assert_like(out: Path, original: Path, dtype=None):
    a, b = read_image(out), read_image(original)
    assert a.array.shape == b.array.shape
    assert a.array.dtype == (dtype or b.array.dtype)
    assert a.axes == b.axes
    assert a.scale == pytest.approx(b.scale) and set(a.scale) == set(b.scale)
    assert a.unit == b.unit
    return a, b


def test_xy_stack_with_residuals(tmp_path, stack, models, capsys):
    before = stack.read_bytes()
    out = tmp_path / "new" / "folder"
    assert main(["xy", str(stack), "-o", str(out), "--model", models[1], "--residuals", "--device", "cpu"]) == 0
    restored, original = assert_like(out / "stack_deblurred.tif", stack)
    assert original.axes == "TZCYX" and original.scale == pytest.approx({"X": 0.1, "Y": 0.1, "Z": 0.5, "T": 3.0})
    assert restored.metadata.get("mode") == "composite"
    assert not np.array_equal(restored.array, original.array)  # the random model did something
    for name in ("stack_r_hor.tif", "stack_r_ver.tif"):
        assert_like(out / name, stack, dtype=np.float32)
    assert stack.read_bytes() == before
    err = capsys.readouterr().err
    assert "stack_deblurred.tif" in err and len(err.strip().splitlines()) == 1


def test_xy_rgb_png(tmp_path, photo, models):
    assert main(["xy", str(photo), "-o", str(tmp_path / "out"), "--model", models[3], "--quiet"]) == 0
    restored = read_image(tmp_path / "out" / "photo_deblurred.tif")
    assert (restored.axes, restored.array.shape, restored.array.dtype) == ("YXC", (18, 22, 3), np.uint8)
    with tifffile.TiffFile(tmp_path / "out" / "photo_deblurred.tif") as tif:
        assert tif.pages[0].photometric == tifffile.PHOTOMETRIC.RGB


def test_xy_one_channel_model_on_rgb_and_float_output(tmp_path, photo, models):
    args = ["xy", str(photo), "-o", str(tmp_path / "out"), "--model", models[1], "--out-dtype", "float32", "-q"]
    assert main(args) == 0
    assert_like(tmp_path / "out" / "photo_deblurred.tif", photo, dtype=np.float32)


def test_xy_compile_reaches_the_engine(tmp_path, photo, models, monkeypatch):
    from napari_deblur.engine import restore

    seen = []
    real = restore.xydeblur_iter

    def spy(*args, **kwargs):
        seen.append(kwargs.get("compile"))
        return real(*args, **{**kwargs, "compile": False})  # the plumbing is tested, not the compiler

    monkeypatch.setattr(restore, "xydeblur_iter", spy)
    assert main(["xy", str(photo), "-o", str(tmp_path / "out"), "--model", models[3], "--compile", "-q"]) == 0
    assert main(["xy", str(photo), "-o", str(tmp_path / "out2"), "--model", models[3], "-q"]) == 0
    assert seen == [True, False]


def test_xy_several_inputs_and_tile(tmp_path, stack, photo, models):
    two = stack.with_name("other.tif")
    two.write_bytes(stack.read_bytes())
    assert (
        main(["xy", str(stack), str(two), "-o", str(tmp_path / "o"), "--model", models[1], "--tile", "64", "-q"]) == 0
    )
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == ["other_deblurred.tif", "stack_deblurred.tif"]


def test_existing_output_needs_overwrite(tmp_path, stack, models, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "stack_deblurred.tif").write_bytes(b"keep me")
    assert main(["xy", str(stack), "-o", str(out), "--model", models[1], "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("napari-deblur: error: ") and "--overwrite" in err and len(err.splitlines()) == 1
    assert (out / "stack_deblurred.tif").read_bytes() == b"keep me"
    assert main(["xy", str(stack), "-o", str(out), "--model", models[1], "-q", "--overwrite"]) == 0
    assert_like(out / "stack_deblurred.tif", stack)


def test_an_output_that_looks_like_a_file_name_is_refused_before_any_work(tmp_path, photo, models, capsys):
    target = tmp_path / "fishes_deblurred.png"
    assert main(["xy", str(photo), "-o", str(target), "--model", models[3], "-q"]) == 2
    err = capsys.readouterr().err
    assert "looks like an image file name" in err and len(err.splitlines()) == 1
    assert not target.exists()  # no folder called fishes_deblurred.png
    target.mkdir()  # a folder of that name, made on purpose, is used
    assert main(["xy", str(photo), "-o", str(target), "--model", models[3], "-q"]) == 0
    assert (target / f"{photo.stem}_deblurred.tif").is_file()


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_never_overwrites_an_input(tmp_path, stack, models, capsys, overwrite):
    # stack.tif's output would be stack_deblurred.tif, which is also an input here
    victim = stack.with_name("stack_deblurred.tif")
    victim.write_bytes(stack.read_bytes())
    before = victim.read_bytes()
    code = main(["xy", str(stack), str(victim), "-o", str(stack.parent), "--model", models[1], *overwrite])
    assert code == 2 and victim.read_bytes() == before
    assert "would overwrite the input" in capsys.readouterr().err


def test_two_inputs_with_the_same_name(tmp_path, stack, models, capsys):
    other = tmp_path / "elsewhere" / "stack.tif"
    other.parent.mkdir()
    other.write_bytes(stack.read_bytes())
    assert main(["xy", str(stack), str(other), "-o", str(tmp_path / "o"), "--model", models[1]]) == 2
    assert "both be written" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_bad_input_file(tmp_path, stack, models, capsys):
    bad = tmp_path / "in" / "notes.tif"
    bad.write_text("this is not a TIFF\n")
    out = tmp_path / "out"
    assert main(["xy", str(stack), str(bad), "-o", str(out), "--model", models[1], "-q"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("napari-deblur: error: cannot read") and "notes.tif" in err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert (out / "stack_deblurred.tif").exists()  # written before the failure: kept
    assert not (out / "notes_deblurred.tif").exists()


@pytest.mark.parametrize(
    "extra, expected",
    [
        (["--axes", "ZYX"], "axes 'ZYX' has 3 letters"),
        (["--precision", "fp8"], "invalid choice"),
        (["--tile", "big"], "expected 'auto' or a number"),
        (["--tile", "8"], "tile must be"),
    ],
)
def test_bad_options(tmp_path, stack, models, capsys, extra, expected):
    assert main(["xy", str(stack), "-o", str(tmp_path / "o"), "--model", models[1], "-q", *extra]) == 2
    assert expected in capsys.readouterr().err


def test_missing_files(tmp_path, stack, capsys):
    missing = tmp_path / "nope.safetensors"
    assert main(["xy", str(stack), "-o", str(tmp_path / "o"), "--model", str(missing)]) == 2
    err = capsys.readouterr().err
    assert err == f"napari-deblur: error: weights file not found: {missing}\n"
    assert main(["xy", str(tmp_path / "absent.tif"), "-o", str(tmp_path / "o")]) == 2
    assert "absent.tif: no such file" in capsys.readouterr().err


def test_help_and_usage(capsys):
    assert main(["--help"]) == 0
    assert "xy" in capsys.readouterr().out
    assert main([]) == 2
    assert main(["xy", "a.tif"]) == 2  # -o is required
    assert "OUTDIR" in capsys.readouterr().err
    assert "xy" in build_parser().format_help()


def test_progress_bar_on_a_terminal():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    stream = Terminal()
    bar = ProgressBar("img.tif", stream=stream, width=10)
    for done in range(0, 41, 4):
        bar.update(Progress(done, 40, f"{done}/40 tiles"))
    bar.close()
    text = stream.getvalue()
    assert text.startswith("\rimg.tif [") and "[##########] 40/40 tiles" in text and " s" in text
    assert text.endswith("\r") and "\n" not in text
    quiet = Terminal()
    ProgressBar("x", stream=quiet, enabled=False).update(Progress(1, 2))
    piped = io.StringIO()
    ProgressBar("x", stream=piped).update(Progress(1, 2))
    assert quiet.getvalue() == piped.getvalue() == ""


def test_python_dash_m(tmp_path, stack, models):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    cmd = [sys.executable, "-m", "napari_deblur", "xy", str(stack), "-o", str(tmp_path / "o"), "--model", models[1]]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert_like(tmp_path / "o" / "stack_deblurred.tif", stack)
    again = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert again.returncode == 2 and again.stderr.startswith("napari-deblur: error:")


def test_a_failed_write_removes_the_files_written_for_that_input(tmp_path, stack, photo, models, monkeypatch):
    import errno

    import napari_deblur.io as nio

    real = nio.write_image

    def full_at_r_ver(path, *args, **kwargs):
        if Path(path).name == "stack_r_ver.tif":
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, *args, **kwargs)

    out = tmp_path / "out"
    out.mkdir()
    (out / "stack_deblurred.tif").write_bytes(b"older")  # replaced by this run: its own output
    (out / "notes.txt").write_text("keep\n")
    monkeypatch.setattr(nio, "write_image", full_at_r_ver)
    code = main(
        [
            "xy",
            str(photo),
            str(stack),
            "-o",
            str(out),
            "--model",
            models[1],
            "--residuals",
            "--overwrite",
            "-q",
            "--device",
            "cpu",
        ]
    )
    assert code == 2
    # photo.png's outputs were complete and stay; none of stack.tif's half set is left
    assert sorted(p.name for p in out.iterdir()) == [
        "notes.txt",
        "photo_deblurred.tif",
        "photo_r_hor.tif",
        "photo_r_ver.tif",
    ]


@pytest.mark.parametrize("flag, warned", [("--trained-on", False), ("--device", True)])
def test_export_writes_the_training_device_label(tmp_path, monkeypatch, capsys, flag, warned):
    import napari_deblur.training.export as export

    calls = []
    monkeypatch.setattr(export, "export_run", lambda *args, **kwargs: calls.append(kwargs) or "written")
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.json").write_text("{}")
    assert main(["export", str(run), "--name", "m", "--out", str(tmp_path / "res"), flag, "NVIDIA H100"]) == 0
    assert calls == [{"device": "NVIDIA H100", "note": "", "benchmark": None}]
    err = capsys.readouterr().err
    assert ("--device is deprecated; use --trained-on" in err) == warned
    assert build_parser().parse_args(["export", str(run), "--name", "m"]).trained_on == ""


def test_python_dash_m_cli_package(tmp_path):
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run(
        [sys.executable, "-m", "napari_deblur.cli", "--version"], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0 and done.stdout.startswith("napari-deblur ")
