"""napari_deblur.io.read_image_lazy: TIFFs as dask arrays, and when the reader opens them lazily."""

import gc

import numpy as np
import pytest
import tifffile

from napari_deblur.io import read_image, read_image_lazy, tiff_nbytes, write_image

da = pytest.importorskip("dask.array")
pytest.importorskip("zarr")
tifffile_zarr = pytest.importorskip("tifffile.zarr")

rng = np.random.default_rng(0)


def imagej_zyx(path):
    data = rng.integers(0, 65535, (4, 20, 24), dtype=np.uint16)
    return write_image(path, data, "ZYX", scale={"X": 0.1, "Y": 0.1, "Z": 0.5}, unit="um")


def imagej_tzcyx(path):
    data = rng.integers(0, 4000, (2, 3, 2, 20, 24), dtype=np.uint16)
    return write_image(path, data, "TZCYX", scale={"X": 0.25, "Y": 0.25, "Z": 1.5, "T": 2.0}, unit="um")


def rgb_yxc(path):
    data = rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)
    return write_image(path, data, "YXC", scale={"X": 0.5, "Y": 0.5}, unit="micron")


def planar_rgb(path):  # samples first in the file, last in the ImageFile
    data = rng.integers(0, 255, (3, 20, 24), dtype=np.uint8)
    tifffile.imwrite(path, data, photometric="rgb", planarconfig="separate")
    return path


def zlib_zyx(path):  # several compressed strips per plane
    data = rng.integers(0, 999, (3, 40, 24), dtype=np.uint16)
    tifffile.imwrite(path, data, photometric="minisblack", compression="zlib", rowsperstrip=8, metadata={"axes": "ZYX"})
    return path


def ome_zcyx(path):
    data = rng.integers(0, 999, (2, 3, 20, 24), dtype=np.uint16)
    meta = {"axes": "ZCYX", "PhysicalSizeX": 0.2, "PhysicalSizeY": 0.2, "PhysicalSizeZ": 1.0}
    tifffile.imwrite(path, data, metadata=meta)
    return path


FILES = {
    "imagej_zyx": (imagej_zyx, "ZYX", (1, 20, 24)),
    "imagej_tzcyx": (imagej_tzcyx, "TZCYX", (1, 1, 1, 20, 24)),
    "rgb_yxc": (rgb_yxc, "YXC", (20, 24, 3)),
    "planar_rgb": (planar_rgb, "YXC", (20, 24, 3)),
    "zlib_zyx": (zlib_zyx, "ZYX", (1, 40, 24)),
    "ome_zcyx": (ome_zcyx, "ZCYX", (1, 1, 20, 24)),
}


@pytest.mark.parametrize("kind", FILES)
def test_lazy_read_equals_eager_read(tmp_path, kind):
    write, axes, chunk = FILES[kind]
    path = write(tmp_path / f"{kind}.ome.tif" if kind.startswith("ome") else tmp_path / f"{kind}.tif")
    eager, lazy = read_image(path), read_image_lazy(path)
    assert isinstance(lazy.array, da.Array) and lazy.array.chunksize == chunk  # whole planes, one each
    assert lazy.axes == eager.axes == axes and lazy.path == eager.path == path
    assert lazy.scale == eager.scale and lazy.unit == eager.unit and lazy.metadata == eager.metadata
    assert lazy.array.shape == eager.array.shape and lazy.array.dtype == eager.array.dtype
    np.testing.assert_array_equal(lazy.array.compute(), eager.array)
    assert tiff_nbytes(path) == eager.array.nbytes


def test_metadata_of_a_calibrated_hyperstack(tmp_path):
    lazy = read_image_lazy(imagej_tzcyx(tmp_path / "h.tif"))
    assert lazy.scale == pytest.approx({"X": 0.25, "Y": 0.25, "Z": 1.5, "T": 2.0}) and lazy.unit == "um"
    ome = read_image_lazy(ome_zcyx(tmp_path / "o.ome.tif"))
    assert ome.scale == pytest.approx({"X": 0.2, "Y": 0.2, "Z": 1.0}) and ome.unit == "µm"


@pytest.fixture
def chunk_reads(monkeypatch):
    """The zarr chunk keys tifffile's store hands out (its metadata keys left out)."""
    keys = []
    get = tifffile_zarr.ZarrTiffStore.get

    async def counting_get(self, key, *args, **kwargs):
        if not key.rsplit("/", 1)[-1].startswith((".z", "zarr.json")):
            keys.append(key)
        return await get(self, key, *args, **kwargs)

    monkeypatch.setattr(tifffile_zarr.ZarrTiffStore, "get", counting_get)
    return keys


def test_opening_reads_no_pixels_and_one_plane_reads_one_plane(tmp_path, monkeypatch, chunk_reads):
    path = imagej_tzcyx(tmp_path / "h.tif")
    expected = read_image(path).array
    monkeypatch.setattr(tifffile.TiffPageSeries, "asarray", lambda *a, **k: pytest.fail("read eagerly"))
    image = read_image_lazy(path)
    assert chunk_reads == []
    np.testing.assert_array_equal(image.array[1, 2, 0].compute(), expected[1, 2, 0])
    assert chunk_reads == ["1.2.0.0.0"]  # (T, Z, C) = (1, 2, 0): that plane and nothing else


def test_compressed_strips_of_one_plane(tmp_path, chunk_reads):
    path = zlib_zyx(tmp_path / "z.tif")
    image = read_image_lazy(path)
    np.testing.assert_array_equal(image.array[2].compute(), read_image(path).array[2])
    assert sorted(chunk_reads) == [f"2.{strip}.0" for strip in range(5)]  # 40 rows, 8 per strip


def test_chunk_planes(tmp_path):
    path = imagej_zyx(tmp_path / "z.tif")
    assert read_image_lazy(path, chunk_planes=3).array.chunks[0] == (3, 1)
    with pytest.raises(ValueError, match="chunk_planes"):
        read_image_lazy(path, chunk_planes=0)


def test_file_stays_open_while_the_array_lives(tmp_path, monkeypatch):
    closed = []
    close = tifffile.TiffFile.close
    monkeypatch.setattr(tifffile.TiffFile, "close", lambda self: (closed.append(1), close(self))[1])
    path = imagej_zyx(tmp_path / "z.tif")
    array = read_image_lazy(path).array
    gc.collect()
    assert closed == []
    expected = read_image(path).array  # an eager read closes its own file at once
    assert closed == [1]
    np.testing.assert_array_equal(array[3].compute(), expected[3])
    del array
    gc.collect()
    assert closed == [1, 1]


def test_lazy_read_errors_name_the_file(tmp_path):
    with pytest.raises(ValueError, match="no such file"):
        read_image_lazy(tmp_path / "missing.tif")
    (tmp_path / "photo.png").write_bytes(b"")
    with pytest.raises(ValueError, match="unsupported file type"):
        read_image_lazy(tmp_path / "photo.png")
    (tmp_path / "broken.tif").write_bytes(b"not a tiff at all")
    with pytest.raises(ValueError, match="broken.tif"):
        read_image_lazy(tmp_path / "broken.tif")
    with pytest.raises(ValueError, match="broken.tif"):
        tiff_nbytes(tmp_path / "broken.tif")


def test_threshold_decision():
    from napari_deblur.plugin.reader import opens_lazily

    assert not opens_lazily(1000, 1000) and opens_lazily(1001, 1000)
    assert opens_lazily(1, 0) and opens_lazily(0, 0)  # 0: always lazy


def test_threshold_from_the_environment(monkeypatch):
    from napari_deblur.plugin import reader

    assert reader.lazy_threshold({}, default=123) == 123
    assert reader.lazy_threshold({"NAPARI_DEBLUR_LAZY_BYTES": "0"}, default=123) == 0
    assert reader.lazy_threshold({"NAPARI_DEBLUR_LAZY_BYTES": " 4096 "}, default=123) == 4096
    with pytest.warns(UserWarning, match="not a byte count"):
        assert reader.lazy_threshold({"NAPARI_DEBLUR_LAZY_BYTES": "4 GB"}, default=123) == 123
    with pytest.warns(UserWarning, match="not a byte count"):
        assert reader.lazy_threshold({"NAPARI_DEBLUR_LAZY_BYTES": "-1"}, default=123) == 123
    monkeypatch.setattr(reader, "LAZY_BYTES", 777)
    monkeypatch.delenv("NAPARI_DEBLUR_LAZY_BYTES", raising=False)
    assert reader.lazy_threshold() == 777
    monkeypatch.setenv("NAPARI_DEBLUR_LAZY_BYTES", "5")
    assert reader.lazy_threshold() == 5


def test_default_threshold_is_a_quarter_of_available_memory(monkeypatch):
    import sys
    from types import SimpleNamespace

    from napari_deblur.plugin import reader

    fake = SimpleNamespace(virtual_memory=lambda: SimpleNamespace(available=12 << 30))
    monkeypatch.setitem(sys.modules, "psutil", fake)
    assert reader._default_lazy_bytes() == 3 << 30  # a quarter of 12 GiB
    monkeypatch.setitem(sys.modules, "psutil", None)  # not installed
    assert reader._default_lazy_bytes() == 2 << 30


def test_reader_opens_large_files_lazily(tmp_path, monkeypatch):
    from napari_deblur.plugin.reader import read_tiff

    path = imagej_zyx(tmp_path / "z.tif")  # 4 * 20 * 24 * 2 = 3840 bytes
    assert isinstance(read_tiff(path, threshold=3840).array, np.ndarray)
    assert isinstance(read_tiff(path, threshold=3839).array, da.Array)
    monkeypatch.setenv("NAPARI_DEBLUR_LAZY_BYTES", "0")
    assert isinstance(read_tiff(path).array, da.Array)


def test_reader_falls_back_to_memory_without_zarr(tmp_path, monkeypatch):
    from napari_deblur.plugin import reader

    def no_zarr(path):
        raise ImportError("No module named 'zarr'")

    monkeypatch.setattr(reader, "read_image_lazy", no_zarr)
    path = imagej_zyx(tmp_path / "z.tif")
    with pytest.warns(UserWarning, match="cannot open it lazily"):
        image = reader.read_tiff(path, threshold=0)
    np.testing.assert_array_equal(image.array, read_image(path).array)
