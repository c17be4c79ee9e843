"""Missing optional packages (issue 19, item 13): zarr, dask or distributed missing is said in one
line naming the extra to install, before anything is read; a TIFF larger than memory is refused
with advice instead of a MemoryError."""

import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("zarr")
pytest.importorskip("dask.array")

from factories import tiny_model  # noqa: E402

from napari_deblur import extras, stacks, streaming  # noqa: E402
from napari_deblur.cli import main  # noqa: E402
from napari_deblur.extras import MissingExtraError  # noqa: E402
from napari_deblur.io import write_image  # noqa: E402
from napari_deblur.models.weights import save_safetensors  # noqa: E402

ADVICE = "pip install 'napari-deblur[dask]'"
OPEN_STACK = stacks.open_stack


@pytest.fixture
def weights(tmp_path, one_thread):
    return str(save_safetensors(tiny_model(), tmp_path / "tiny.safetensors"))


@pytest.fixture
def inputs(tmp_path):
    movie = tmp_path / "movie"
    movie.mkdir()
    for name in ("a.tif", "b.tif"):
        write_image(movie / name, np.full((32, 32), 500, np.uint16), "YX")
    store = tmp_path / "cells.zarr"
    store.mkdir()
    (store / "zarr.json").write_text("{}")  # never opened: the check comes first
    return {"movie": movie, "zarr": store, "tif": movie / "a.tif"}


@pytest.fixture
def nothing_read(monkeypatch):
    import napari_deblur.io as nio

    def forbidden(*args, **kwargs):
        raise AssertionError("an input was read")

    monkeypatch.setattr(streaming, "open_stack", forbidden)
    monkeypatch.setattr(nio, "read_image", forbidden)


def without(monkeypatch, *modules):
    for name in modules:
        monkeypatch.setitem(sys.modules, name, None)  # `import name` now raises ImportError


@pytest.mark.parametrize(
    "case, extra_args, missing, needs",
    [
        ("zarr", [], ["zarr"], "needs zarr,"),
        ("tif", ["--stream"], ["zarr"], "needs zarr,"),
        ("movie", ["--format", "zarr"], ["zarr"], "needs zarr,"),
        ("movie", [], ["dask.array"], "needs dask[array],"),
        ("movie", ["--scheduler", "tcp://127.0.0.1:1"], ["distributed"], "needs distributed,"),
        ("zarr", [], ["zarr", "dask.array"], "needs dask[array] and zarr, which are not installed"),
    ],
)
def test_streaming_without_its_packages_says_what_to_install(
    tmp_path, inputs, weights, monkeypatch, capsys, nothing_read, case, extra_args, missing, needs
):
    without(monkeypatch, *missing)
    code = main(["xy", str(inputs[case]), "-o", str(tmp_path / "out"), "--model", weights, *extra_args])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("napari-deblur: error: streaming") and needs in err and ADVICE in err
    assert len(err.splitlines()) == 1 and not (tmp_path / "out").exists()


def test_a_folder_of_tiffs_streams_without_zarr(tmp_path, inputs, weights, monkeypatch):
    without(monkeypatch, "zarr")
    assert (
        main(
            [
                "xy",
                str(inputs["movie"]),
                "-o",
                str(tmp_path / "out"),
                "--model",
                weights,
                "--device",
                "cpu",
                "--normalize",
                "dtype",
                "-q",
            ]
        )
        == 0
    )
    assert sorted(p.name for p in (tmp_path / "out" / "movie_deblurred").iterdir()) == ["a.tif", "b.tif"]


def test_the_api_raises_an_import_error_with_the_advice(tmp_path, inputs, weights, monkeypatch, nothing_read):
    without(monkeypatch, "zarr")
    with pytest.raises(MissingExtraError, match=r"streaming .*cells\.zarr needs zarr, which is not installed: pip"):
        streaming.stream_xydeblur(inputs["zarr"], tmp_path / "out.zarr", weights)
    with pytest.raises(ImportError, match="napari-deblur"):
        OPEN_STACK(inputs["zarr"])


@pytest.mark.parametrize("installed", [True, False])
def test_a_tiff_larger_than_memory_is_refused_with_advice(
    tmp_path, inputs, weights, monkeypatch, capsys, nothing_read, installed
):
    monkeypatch.setattr(extras, "memory_available", lambda: 1000)  # a 2 KiB image does not fit
    if not installed:
        without(monkeypatch, "zarr")
    code = main(["xy", str(inputs["tif"]), "-o", str(tmp_path / "out"), "--model", weights])
    err = capsys.readouterr().err
    assert code == 2 and len(err.splitlines()) == 1
    assert "more than the" in err and "memory available" in err and "--stream" in err
    assert (ADVICE in err) is not installed


def test_memory_available_is_a_positive_byte_count_or_unknown():
    free = extras.memory_available()
    assert free is None or free > 0


def test_the_napari_reader_refuses_a_tiff_larger_than_memory_without_zarr(tmp_path, inputs, monkeypatch):
    from napari_deblur.plugin import reader

    monkeypatch.setattr(extras, "memory_available", lambda: 1000)
    without(monkeypatch, "zarr")
    with pytest.raises(MissingExtraError, match=r"a\.tif .*needs zarr, which is not installed: pip install"):
        reader.read_tiff(inputs["tif"], threshold=0)
    monkeypatch.setattr(extras, "memory_available", lambda: 10**9)  # it fits: read into memory, with a warning
    with pytest.warns(UserWarning, match="into memory"):
        assert reader.read_tiff(inputs["tif"], threshold=0).array.shape == (32, 32)
