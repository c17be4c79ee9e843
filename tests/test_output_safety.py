"""Output safety (issue 19, items 1-3): --overwrite replaces only this run's own files, an output
never contains or lies inside an input, a failed or interrupted run leaves none of its files behind,
and an unwritable destination is found before any work, with a message naming the file and why."""

import errno
import os

import numpy as np
import pytest

torch = pytest.importorskip("torch")
zarr = pytest.importorskip("zarr")
pytest.importorskip("dask.array")

from factories import tiny_model  # noqa: E402

from napari_deblur.cli import main  # noqa: E402
from napari_deblur.io import read_image, write_image  # noqa: E402
from napari_deblur.models.weights import save_safetensors  # noqa: E402
from napari_deblur.streaming import stream_xydeblur  # noqa: E402


@pytest.fixture
def weights(tmp_path, one_thread):
    return str(save_safetensors(tiny_model(), tmp_path / "tiny.safetensors"))


def planes(folder, names=("f0.tif", "f1.tif"), shape=(32, 32)):
    folder.mkdir(parents=True, exist_ok=True)
    for i, name in enumerate(names):
        write_image(folder / name, np.full(shape, 100 * (i + 1), np.uint16), "YX")
    return folder


def snapshot(root):
    """Every file under ``root`` with its bytes (symbolic links as their target)."""
    found = {}
    for folder, dirs, files in os.walk(root):
        for name in dirs + files:
            path = os.path.join(folder, name)
            rel = os.path.relpath(path, root)
            if os.path.islink(path):
                found[rel] = "-> " + os.readlink(path)
            elif os.path.isfile(path):
                with open(path, "rb") as f:
                    found[rel] = f.read()
            else:
                found[rel] = "dir"
    return found


def xy(*args, weights):
    return main(["xy", *map(str, args), "--model", weights, "--device", "cpu", "--normalize", "dtype", "-q"])


# ---------------------------------------------------------------- 1. --overwrite and the inputs


def test_overwrite_refuses_an_output_that_contains_the_input(tmp_path, weights, capsys):
    """The issue's reproduction: input s/t_deblurred/t, output folder s/t_deblurred."""
    root = tmp_path / "s"
    planes(root / "t_deblurred" / "t")
    (root / "t_deblurred" / "notes.txt").write_text("keep\n")
    before = snapshot(root)
    assert xy(root / "t_deblurred" / "t", "-o", root, "--overwrite", weights=weights) == 2
    err = capsys.readouterr().err
    assert "contain the input" in err and len(err.splitlines()) == 1
    assert snapshot(root) == before


@pytest.mark.parametrize("overwrite", [[], ["--overwrite"]])
def test_an_output_inside_the_input_is_refused(tmp_path, weights, capsys, overwrite):
    movie = planes(tmp_path / "movie")
    before = snapshot(tmp_path)
    assert xy(movie, "-o", movie, *overwrite, weights=weights) == 2
    assert "inside the input" in capsys.readouterr().err
    assert snapshot(tmp_path) == before


def test_symbolic_links_do_not_hide_the_input(tmp_path, weights, capsys):
    movie = planes(tmp_path / "movie")
    (tmp_path / "into_movie").symlink_to(movie, target_is_directory=True)
    before = snapshot(movie)
    # -o names a link to the input folder: the output would land inside the input
    assert xy(movie, "-o", tmp_path / "into_movie", "--overwrite", weights=weights) == 2
    assert "inside the input" in capsys.readouterr().err
    # the output folder itself is a link to the input
    out = tmp_path / "out"
    out.mkdir()
    (out / "movie_deblurred").symlink_to(movie, target_is_directory=True)
    assert xy(movie, "-o", out, "--overwrite", weights=weights) == 2
    assert "is the input" in capsys.readouterr().err
    assert snapshot(movie) == before


def test_a_file_input_inside_a_streamed_output_folder_is_refused(tmp_path, weights, capsys):
    movie = planes(tmp_path / "movie")
    out = tmp_path / "out"
    old = planes(out / "movie_deblurred", names=("f0.tif",))
    before = snapshot(tmp_path)
    assert xy(movie, old / "f0.tif", "-o", out, "--overwrite", weights=weights) == 2
    assert "contain the input" in capsys.readouterr().err
    assert snapshot(tmp_path) == before


def test_a_file_output_inside_a_streamed_input_folder_is_refused(tmp_path, weights, capsys):
    movie = planes(tmp_path / "movie")
    before = snapshot(tmp_path)
    assert xy(movie, movie / "f0.tif", "-o", movie, weights=weights) == 2
    assert "inside the input" in capsys.readouterr().err
    assert snapshot(tmp_path) == before


def test_overwrite_replaces_only_the_files_this_run_writes(tmp_path, weights):
    movie = planes(tmp_path / "movie")
    out = tmp_path / "out"
    target = planes(out / "movie_deblurred", names=("f0.tif", "old9.tif"), shape=(8, 8))
    (target / "notes.txt").write_text("keep\n")
    (out / "movie_deblurred.partial").mkdir()  # a user's folder that only looks like ours
    (out / "movie_deblurred.partial" / "mine.txt").write_text("mine\n")
    inputs = snapshot(movie)
    assert xy(movie, "-o", out, weights=weights) == 2  # exists: --overwrite needed
    assert xy(movie, "-o", out, "--overwrite", weights=weights) == 0
    assert sorted(os.listdir(target)) == ["f0.tif", "f1.tif", "notes.txt", "old9.tif"]
    assert read_image(target / "f0.tif").array.shape == (32, 32)  # replaced by this run
    assert read_image(target / "old9.tif").array.shape == (8, 8)  # not this run's: untouched
    assert (target / "notes.txt").read_text() == "keep\n"
    assert (out / "movie_deblurred.partial" / "mine.txt").read_text() == "mine\n"
    assert sorted(os.listdir(out)) == ["movie_deblurred", "movie_deblurred.partial"]  # no leftovers
    assert snapshot(movie) == inputs


def test_a_file_where_the_output_folder_goes_is_refused(tmp_path, weights, capsys):
    movie = planes(tmp_path / "movie")
    out = tmp_path / "out"
    out.mkdir()
    (out / "movie_deblurred").write_text("a file\n")
    assert xy(movie, "-o", out, "--overwrite", weights=weights) == 2
    assert "not a folder" in capsys.readouterr().err
    assert (out / "movie_deblurred").read_text() == "a file\n"


def make_zarr(path, written_by_us):
    array = zarr.open_array(str(path), mode="w", shape=(2, 32, 32), chunks=(1, 32, 32), dtype="uint16")
    array[:] = 7
    array.attrs["axes"] = "TYX"
    if written_by_us:
        array.attrs["napari_deblur"] = "xydeblur"
    return path


def test_overwrite_replaces_a_zarr_store_only_if_this_software_wrote_it(tmp_path, weights, capsys):
    source = make_zarr(tmp_path / "cells.zarr", written_by_us=False)
    out = tmp_path / "out"
    out.mkdir()
    foreign = make_zarr(out / "cells_deblurred.zarr", written_by_us=False)
    (foreign / "notes.txt").write_text("keep\n")
    before = snapshot(out)
    assert xy(source, "-o", out, "--overwrite", weights=weights) == 2
    assert "not a zarr store written by napari-deblur" in capsys.readouterr().err
    assert snapshot(out) == before
    (foreign / "notes.txt").unlink()
    foreign.rename(tmp_path / "elsewhere.zarr")
    ours = make_zarr(out / "cells_deblurred.zarr", written_by_us=True)
    assert xy(source, "-o", out, "--overwrite", weights=weights) == 0
    assert (zarr.open_array(str(ours), mode="r")[:] != 7).any()
    assert sorted(os.listdir(out)) == ["cells_deblurred.zarr"]


def test_an_interrupted_stream_keeps_the_previous_output(tmp_path, weights, monkeypatch):
    from napari_deblur import streaming

    movie = planes(tmp_path / "movie")
    out = tmp_path / "out"
    old = planes(out / "movie_deblurred", shape=(8, 8))
    before = snapshot(out)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(streaming, "compute_store", interrupted)
    assert xy(movie, "-o", out, "--overwrite", weights=weights) == 130
    assert snapshot(out) == before and sorted(os.listdir(out)) == [old.name]


def test_the_api_refuses_the_same_cases(tmp_path, weights):
    movie = planes(tmp_path / "movie")
    with pytest.raises(ValueError, match="is the input"):
        stream_xydeblur(movie, movie, weights, overwrite=True)
    with pytest.raises(ValueError, match="inside the input"):
        stream_xydeblur(movie, movie / "sub", weights, overwrite=True)
    with pytest.raises(ValueError, match="contain the input"):
        stream_xydeblur(movie, tmp_path, weights, overwrite=True)
    assert sorted(os.listdir(movie)) == ["f0.tif", "f1.tif"]


# ---------------------------------------------------------------- 3. unwritable destinations, full disks


def refuse_probe_in(monkeypatch, folder, code=errno.EROFS):
    """Make creating files in ``folder`` fail as a read-only file system would (root ignores chmod)."""
    real = os.open

    def guarded(path, flags, *args, **kwargs):
        if os.path.dirname(os.path.abspath(path)) == str(folder) and flags & os.O_CREAT:
            raise OSError(code, os.strerror(code), path)
        return real(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", guarded)


def engine_never_runs(monkeypatch):
    from napari_deblur.diffusion import refine
    from napari_deblur.engine import restore

    def forbidden(*args, **kwargs):
        raise AssertionError("the computation started")

    monkeypatch.setattr(restore, "xydeblur_iter", forbidden)
    monkeypatch.setattr(refine, "refine_iter", forbidden)


@pytest.fixture
def denoiser(tmp_path, weights):
    from napari_deblur.models.denoiser import ResidualDenoiser
    from napari_deblur.models.weights import PREDICTOR_KEY

    return str(
        save_safetensors(ResidualDenoiser(1, width=8), tmp_path / "den.safetensors", metadata={PREDICTOR_KEY: weights})
    )


@pytest.mark.parametrize("command", ["xy", "diffuse"])
def test_a_read_only_output_folder_is_found_before_any_work(tmp_path, weights, denoiser, monkeypatch, capsys, command):
    image = tmp_path / "in" / "a.tif"
    write_image(image, np.ones((16, 16), np.uint16), "YX")
    out = tmp_path / "out"
    out.mkdir()
    refuse_probe_in(monkeypatch, out)
    engine_never_runs(monkeypatch)
    model = weights if command == "xy" else denoiser
    assert main([command, str(image), "-o", str(out), "--model", model, "--device", "cpu", "-q"]) == 2
    err = capsys.readouterr().err
    assert err == f"napari-deblur: error: cannot write into {out}: read-only file system\n"
    assert list(out.iterdir()) == []


def test_a_read_only_stream_output_folder_is_found_before_any_work(tmp_path, weights, monkeypatch, capsys):
    movie = planes(tmp_path / "movie")
    out = tmp_path / "out"
    (out / "movie_deblurred").mkdir(parents=True)
    refuse_probe_in(monkeypatch, out / "movie_deblurred", errno.EACCES)
    engine_never_runs(monkeypatch)
    assert xy(movie, "-o", out, "--overwrite", weights=weights) == 2
    assert f"cannot write into {out / 'movie_deblurred'}: permission denied" in capsys.readouterr().err


@pytest.mark.skipif(
    not hasattr(os, "geteuid") or os.geteuid() == 0,
    reason="root writes into read-only folders; the monkeypatched tests above cover it",
)
def test_a_chmod_read_only_output_folder_is_refused(tmp_path, weights, capsys):
    image = tmp_path / "in" / "a.tif"
    write_image(image, np.ones((16, 16), np.uint16), "YX")
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o500)
    try:
        assert main(["xy", str(image), "-o", str(out), "--model", weights, "-q"]) == 2
    finally:
        out.chmod(0o700)
    assert "permission denied" in capsys.readouterr().err


@pytest.mark.parametrize(
    "failure, reason",
    [
        (OSError(errno.ENOSPC, "No space left on device"), "disk full"),
        (OSError("262144 requested and 130904 written"), "disk full or over quota (130904 of 262144 bytes written)"),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), "disk quota exceeded"),
    ],
)
def test_a_full_disk_names_the_file_and_leaves_nothing(tmp_path, monkeypatch, failure, reason):
    import tifffile

    def half_written(target, *args, **kwargs):
        if hasattr(target, "write"):
            target.write(b"II*\0" + bytes(1000))
        else:
            with open(target, "wb") as f:
                f.write(b"II*\0" + bytes(1000))
        raise failure

    monkeypatch.setattr(tifffile, "imwrite", half_written)
    path = tmp_path / "a.tif"
    with pytest.raises(OSError) as caught:
        write_image(path, np.ones((256, 512), np.uint16), "YX")
    assert str(caught.value) == f"cannot write {path}: {reason}"
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_while_streaming_names_the_output(tmp_path, weights, monkeypatch, capsys):
    source = make_zarr(tmp_path / "cells.zarr", written_by_us=False)
    out = tmp_path / "out"

    def full(self, index, value):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(zarr.Array, "__setitem__", full)
    assert xy(source, "-o", out, weights=weights) == 2
    assert capsys.readouterr().err == f"napari-deblur: error: cannot write {out / 'cells_deblurred.zarr'}: disk full\n"
    assert list(out.iterdir()) == []


def test_a_failed_stream_waits_for_planes_in_flight_before_cleaning_up(tmp_path, weights, monkeypatch, capsys):
    """One plane's write fails while another is still being written: nothing may appear afterwards."""
    import threading
    import time

    from napari_deblur import streaming

    movie = planes(tmp_path / "movie")
    out = tmp_path / "out"
    real = streaming.write_image
    failed = threading.Event()

    def racing(path, *args, **kwargs):
        if path.name == "f1.tif":
            failed.set()
            raise OSError(errno.ENOSPC, "No space left on device")
        failed.wait(5)
        time.sleep(0.5)  # still writing when the run gives up
        return real(path, *args, **kwargs)

    monkeypatch.setattr(streaming, "write_image", racing)
    assert (
        main(
            [
                "xy",
                str(movie),
                "-o",
                str(out),
                "--model",
                weights,
                "--device",
                "cpu",
                "--normalize",
                "dtype",
                "--workers",
                "2",
                "-q",
            ]
        )
        == 2
    )
    assert "disk full" in capsys.readouterr().err
    time.sleep(1.0)
    assert list(out.iterdir()) == []


def test_a_linked_input_file_inside_the_output_folder_is_refused(tmp_path, weights, capsys):
    """The input folder is elsewhere, but one of its files is a link into the output folder."""
    out = tmp_path / "out"
    old = planes(out / "movie_deblurred", names=("kept.tif",))
    movie = planes(tmp_path / "movie", names=("f0.tif",))
    (movie / "f1.tif").symlink_to(old / "kept.tif")
    before = snapshot(tmp_path)
    assert xy(movie, "-o", out, "--overwrite", weights=weights) == 2
    assert "contain the input" in capsys.readouterr().err
    assert snapshot(tmp_path) == before
