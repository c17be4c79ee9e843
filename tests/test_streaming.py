"""Streaming runs (napari_deblur.streaming and `napari-deblur xy` on zarr / TIFF folders):
equality with the in-memory engine, metadata, clean failure, bounded memory, a cluster address."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
zarr = pytest.importorskip("zarr")
pytest.importorskip("dask.array")

from factories import tiny_model  # noqa: E402

from napari_deblur.cli import main  # noqa: E402
from napari_deblur.engine.restore import xydeblur  # noqa: E402
from napari_deblur.io import read_image, write_image  # noqa: E402
from napari_deblur.models.weights import save_safetensors  # noqa: E402
from napari_deblur.stacks import natural_key, open_stack  # noqa: E402
from napari_deblur.streaming import stream_xydeblur, tiff_names  # noqa: E402


@pytest.fixture
def weights(tmp_path, one_thread):
    return save_safetensors(tiny_model(), tmp_path / "tiny.safetensors")


def tiff_folder(folder, rng, names=("t1.tif", "t2.tif", "t10.tif"), shape=(2, 36, 40)):
    folder.mkdir()
    planes = {}
    for name in names:
        planes[name] = rng.integers(0, 4000, shape, dtype=np.uint16)
        write_image(folder / name, planes[name], "ZYX", scale={"X": 0.2, "Y": 0.2, "Z": 1.5}, unit="micron")
    return planes


def test_a_tiff_folder_is_one_stack_in_natural_order_and_restored_like_in_memory(tmp_path, rng, weights):
    planes = tiff_folder(tmp_path / "movie", rng)
    stack = open_stack(tmp_path / "movie")
    assert stack.axes == "TZYX" and stack.array.shape == (3, 2, 36, 40) and stack.kind == "tiff-folder"
    assert [p.name for p in stack.files] == ["t1.tif", "t2.tif", "t10.tif"]
    assert (
        main(
            [
                "xy",
                str(tmp_path / "movie"),
                "-o",
                str(tmp_path / "out"),
                "--model",
                str(weights),
                "--device",
                "cpu",
                "--normalize",
                "dtype",
                "-q",
            ]
        )
        == 0
    )
    out = tmp_path / "out" / "movie_deblurred"
    assert sorted(os.listdir(out)) == ["t1.tif", "t10.tif", "t2.tif"]
    whole = np.stack([planes[n] for n in ("t1.tif", "t2.tif", "t10.tif")])
    expected = xydeblur(whole, str(weights), axes="TZYX", normalize="dtype", device="cpu").restored
    for i, name in enumerate(["t1.tif", "t2.tif", "t10.tif"]):
        written = read_image(out / name)
        assert written.axes == "ZYX" and written.scale == {"X": 0.2, "Y": 0.2, "Z": 1.5} and written.unit == "micron"
        np.testing.assert_allclose(written.array, expected[i], atol=1)  # batching changes float rounding
    assert not any(p.name.endswith(".partial") for p in (tmp_path / "out").iterdir())


def test_zarr_in_zarr_out_keeps_axes_and_uses_one_scaling_for_the_stack(tmp_path, rng, weights):
    data = rng.integers(0, 4000, (4, 36, 40), dtype=np.uint16)
    data[3] //= 8  # a dim plane: one scaling for the whole stack keeps it dim
    source = zarr.open_array(
        str(tmp_path / "cells.zarr"), mode="w", shape=data.shape, chunks=(1, 18, 20), dtype=data.dtype
    )
    source[:] = data
    source.attrs["axes"] = "TYX"
    assert (
        main(
            [
                "xy",
                str(tmp_path / "cells.zarr"),
                "-o",
                str(tmp_path / "out"),
                "--model",
                str(weights),
                "--device",
                "cpu",
                "-q",
            ]
        )
        == 0
    )
    out = zarr.open_array(str(tmp_path / "out" / "cells_deblurred.zarr"), mode="r")
    assert out.shape == data.shape and out.dtype == data.dtype and out.chunks == (1, 36, 40)
    assert out.attrs["axes"] == "TYX"
    expected = xydeblur(data, str(weights), axes="TYX", normalize="percentile", device="cpu").restored
    np.testing.assert_allclose(out[:], expected, atol=1)
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "cells.zarr"), mode="r")[:], data)  # input untouched


def test_an_ngff_image_group_gives_its_axes_and_scale(tmp_path, rng):
    group = zarr.open_group(str(tmp_path / "image.zarr"), mode="w")
    group.create_array("0", shape=(3, 32, 36), chunks=(1, 32, 36), dtype="uint8")
    group.attrs["multiscales"] = [
        {
            "axes": [
                {"name": "z", "type": "space", "unit": "micrometer"},
                {"name": "y", "type": "space"},
                {"name": "x", "type": "space", "unit": "micrometer"},
            ],
            "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [2.0, 0.5, 0.5]}]}],
        }
    ]
    stack = open_stack(tmp_path / "image.zarr")
    assert stack.axes == "ZYX" and stack.array.shape == (3, 32, 36)
    assert stack.scale == {"Z": 2.0, "Y": 0.5, "X": 0.5} and stack.unit == "micrometer"


def test_bad_inputs_fail_before_any_output_appears(tmp_path, rng, weights):
    folder = tmp_path / "mixed"
    tiff_folder(folder, rng, names=("a.tif",))
    write_image(folder / "b.tif", np.zeros((2, 30, 40), np.uint16), "ZYX")
    code = main(["xy", str(folder), "-o", str(tmp_path / "out"), "--model", str(weights), "--device", "cpu", "-q"])
    assert code == 2
    assert not (tmp_path / "out" / "mixed_deblurred").exists()
    assert not (tmp_path / "out" / "mixed_deblurred.partial").exists()  # cleaned up after the failure
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="no TIFF files"):
        open_stack(tmp_path / "empty")
    ok = tmp_path / "ok"
    tiff_folder(ok, rng, names=("a.tif",))
    (tmp_path / "out" / "ok_deblurred").mkdir(parents=True)
    assert main(["xy", str(ok), "-o", str(tmp_path / "out"), "--model", str(weights), "-q"]) == 2  # exists
    with pytest.raises(ValueError, match="is the input"):
        stream_xydeblur(ok, ok, str(weights))


def test_natural_order():
    from pathlib import Path

    names = ["t10.tif", "t2.tif", "T1.tif"]
    assert sorted(names, key=lambda n: natural_key(Path(n))) == ["T1.tif", "t2.tif", "t10.tif"]


def test_tiff_names_keep_a_folders_names_and_number_the_rest(tmp_path):
    from pathlib import Path

    from napari_deblur.stacks import Stack

    folder = Stack(None, "TYX", kind="tiff-folder", files=[Path("in/a.tif"), Path("in/b.tif")])
    assert tiff_names(folder, (2, 8, 8), tmp_path / "out") == ["a.tif", "b.tif"]
    store = Stack(None, "ZYX", kind="zarr")
    assert tiff_names(store, (2, 8, 8), tmp_path / "out") == ["out_00000.tif", "out_00001.tif"]
    with pytest.raises(ValueError, match="needs a leading stack axis"):
        tiff_names(Stack(None, "YX"), (8, 8), tmp_path / "out")
    (tmp_path / "out" / "b.tif").mkdir(parents=True)
    with pytest.raises(ValueError, match=r"b\.tif is a folder where this run writes a TIFF"):
        tiff_names(folder, (2, 8, 8), tmp_path / "out")


PEAK_RSS = """
import json, resource, sys
from napari_deblur.cli import main
rc = main(sys.argv[1:])
print(json.dumps({"rc": rc, "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _compressible_zarr(path, planes, side):
    pattern = np.zeros((side, side), np.float32)
    pattern[::16] = 0.5
    array = zarr.open_array(str(path), mode="w", shape=(planes, side, side), chunks=(1, side, side), dtype="float32")
    for i in range(planes):
        array[i] = pattern + i / planes / 4
    array.attrs["axes"] = "TYX"


def _peak_rss(tmp_path, source, weights) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = tmp_path / ("out-" + source.name)
    run = subprocess.run(
        [
            sys.executable,
            "-c",
            PEAK_RSS,
            "xy",
            str(source),
            "-o",
            str(out),
            "--model",
            str(weights),
            "--device",
            "cpu",
            "--normalize",
            "dtype",
            "--workers",
            "1",
            "-q",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert run.returncode == 0, run.stderr
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["rc"] == 0
    return report["peak_mib"]


@pytest.mark.slow
def test_memory_stays_bounded_for_an_input_larger_than_the_cap(tmp_path):
    """96 MiB of float32 planes (tiny on disk) need no more memory than 2 planes do."""
    weights = save_safetensors(tiny_model(width=1, blocks=0), tmp_path / "narrow.safetensors")
    side, planes = 512, 96
    _compressible_zarr(tmp_path / "small.zarr", 2, side)
    _compressible_zarr(tmp_path / "large.zarr", planes, side)
    input_mib = planes * side * side * 4 / 2**20
    small, large = (
        _peak_rss(tmp_path, tmp_path / "small.zarr", weights),
        _peak_rss(tmp_path, tmp_path / "large.zarr", weights),
    )
    cap = small + input_mib / 4  # what 2 planes needed, plus a quarter of the input
    assert input_mib > cap - small
    assert large < cap, f"peak RSS {large:.0f} MiB for a {input_mib:.0f} MiB input (2 planes: {small:.0f} MiB)"
    restored = zarr.open_array(str(tmp_path / "out-large.zarr" / "large_deblurred.zarr"), mode="r")
    assert restored.shape == (planes, side, side)


@pytest.mark.slow
def test_a_scheduler_address_runs_the_stream_on_that_cluster(tmp_path, rng, weights):
    distributed = pytest.importorskip("distributed")
    planes = tiff_folder(tmp_path / "movie", rng, names=("a.tif", "b.tif"))
    with distributed.LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address=None
    ) as cluster:
        code = main(
            [
                "xy",
                str(tmp_path / "movie"),
                "-o",
                str(tmp_path / "out"),
                "--model",
                str(weights),
                "--device",
                "cpu",
                "--normalize",
                "dtype",
                "--scheduler",
                cluster.scheduler_address,
                "-q",
            ]
        )
        assert code == 0
        with distributed.Client(cluster) as client:
            assert client.run_on_scheduler(lambda dask_scheduler: len(dask_scheduler.task_prefixes)) > 0
    whole = np.stack([planes["a.tif"], planes["b.tif"]])
    expected = xydeblur(whole, str(weights), axes="TZYX", normalize="dtype", device="cpu").restored
    np.testing.assert_allclose(read_image(tmp_path / "out" / "movie_deblurred" / "b.tif").array, expected[1], atol=1)
