"""napari_deblur.io: reading TIFF/PNG/JPEG/BMP with axes and scale, and TIFF round trips."""

import numpy as np
import pytest
import tifffile
from PIL import Image

from napari_deblur.io import ImageFile, read_image, write_image

rng = np.random.default_rng(0)


def imagej_file(path, array, axes, *, pixel=None, unit=None, spacing=None, finterval=None, **kwargs):
    metadata = {"axes": axes}
    if unit:
        metadata["unit"] = unit
    if spacing:
        metadata["spacing"] = spacing
    if finterval:
        metadata["finterval"] = finterval
    resolution = (1 / pixel, 1 / pixel) if pixel else None
    tifffile.imwrite(path, array, imagej=True, resolution=resolution, metadata=metadata, **kwargs)
    return path


def assert_round_trip(image: ImageFile, tmp_path):
    out = write_image(tmp_path / "copy.tif", image.array, image.axes, source=image)
    back = read_image(out)
    np.testing.assert_array_equal(back.array, image.array)
    assert back.array.dtype == image.array.dtype
    assert back.axes == image.axes
    assert back.scale == pytest.approx(image.scale)
    assert set(back.scale) == set(image.scale)
    assert back.unit == image.unit
    return back


def test_imagej_hyperstack_tzcyx_uint16(tmp_path):
    data = rng.integers(0, 65535, (2, 3, 2, 20, 24), dtype=np.uint16)
    path = imagej_file(tmp_path / "h.tif", data, "TZCYX", pixel=0.1, unit="um", spacing=0.5, finterval=2.0)
    image = read_image(path)
    assert image.axes == "TZCYX" and image.array.shape == data.shape and image.array.dtype == np.uint16
    assert image.scale == pytest.approx({"X": 0.1, "Y": 0.1, "Z": 0.5, "T": 2.0})
    assert image.unit == "um"
    assert image.path == path
    np.testing.assert_array_equal(image.array, data)
    assert_round_trip(image, tmp_path)
    with tifffile.TiffFile(tmp_path / "copy.tif") as tif:  # still an ImageJ hyperstack for Fiji
        assert tif.is_imagej and tif.imagej_metadata["spacing"] == 0.5


def test_imagej_zstack_float32_micron(tmp_path):
    data = rng.random((5, 16, 18), dtype=np.float32)
    path = imagej_file(tmp_path / "z.tif", data, "ZYX", pixel=0.25, unit="micron", spacing=1.5)
    image = read_image(path)
    assert (image.axes, image.array.dtype, image.unit) == ("ZYX", np.float32, "micron")
    assert image.scale == pytest.approx({"X": 0.25, "Y": 0.25, "Z": 1.5})
    assert_round_trip(image, tmp_path)


def test_rgb_uint8(tmp_path):
    data = rng.integers(0, 255, (20, 24, 3), dtype=np.uint8)
    path = imagej_file(tmp_path / "rgb.tif", data, "YXS", pixel=0.5, unit="micron", photometric="rgb")
    image = read_image(path)
    assert image.axes == "YXC" and image.array.shape == (20, 24, 3)
    assert image.metadata["photometric"] == "rgb"
    assert_round_trip(image, tmp_path)
    with tifffile.TiffFile(tmp_path / "copy.tif") as tif:
        assert tif.pages[0].photometric == tifffile.PHOTOMETRIC.RGB


def test_plain_2d_uint8_without_calibration(tmp_path):
    data = rng.integers(0, 255, (20, 24), dtype=np.uint8)
    tifffile.imwrite(tmp_path / "flat.tif", data)
    image = read_image(tmp_path / "flat.tif")
    assert image.axes == "YX" and image.scale == {} and image.unit is None
    assert_round_trip(image, tmp_path)


def test_imagej_unit_escape_and_ranges(tmp_path):
    data = rng.integers(0, 4000, (3, 20, 24), dtype=np.uint16)
    path = imagej_file(tmp_path / "c.tif", data, "CYX", pixel=0.2, unit="\\u00B5m")
    image = read_image(path)
    assert image.axes == "CYX" and image.unit == "µm"
    back = assert_round_trip(image, tmp_path)
    assert back.metadata.get("channels") == 3


def test_the_source_display_range_is_not_forwarded(tmp_path):
    """A deblurred result's peaks exceed the input's: the input's ImageJ display range (min/max)
    would show it clipped in Fiji, so the written file has none and ImageJ scales to the data."""
    data = rng.random((3, 20, 24), dtype=np.float32) * 120
    path = tmp_path / "r.tif"
    meta = {"axes": "ZYX", "unit": "micron", "min": 0.0, "max": 120.0, "Labels": ["a", "b", "c"]}
    tifffile.imwrite(path, data, imagej=True, resolution=(5.0, 5.0), metadata=meta)
    with tifffile.TiffFile(path) as tif:
        assert tif.imagej_metadata["max"] == 120.0  # as Fiji saves it
    image = read_image(path)
    out = write_image(tmp_path / "restored.tif", data * 2, image.axes, source=image)
    with tifffile.TiffFile(out) as tif:
        ij = tif.imagej_metadata
    assert "min" not in ij and "max" not in ij and "Ranges" not in ij
    assert ij["Labels"] == ["a", "b", "c"]  # the rest is kept


@pytest.mark.parametrize(
    "shape, axes, dtype",
    [
        ((20, 24, 3), "YXC", np.uint16),  # RGB that ImageJ cannot hold
        ((20, 24, 4), "YXC", np.uint8),  # RGBA
        ((2, 3, 20, 24), "CZYX", np.uint16),  # not in ImageJ order
        ((1, 3, 20, 24), "TCYX", np.float32),  # a length-1 axis ImageJ would drop
        ((3, 20, 24), "ZYX", np.float64),
        ((3, 20, 24), "QYX", np.int16),
    ],
)
def test_plain_tiff_round_trip(tmp_path, shape, axes, dtype):
    data = (rng.random(shape) * 200).astype(dtype)
    image = ImageFile(data, axes, {"X": 0.3, "Y": 0.3, "Z": 2.0}, "micron")
    back = assert_round_trip(image, tmp_path)
    assert back.array.shape == shape


def test_write_refuses_to_overwrite(tmp_path):
    data = np.zeros((8, 8), np.uint8)
    path = write_image(tmp_path / "a.tif", data, "YX")
    with pytest.raises(FileExistsError):
        write_image(path, data + 1, "YX")
    write_image(path, data + 1, "YX", overwrite=True)
    assert read_image(path).array[0, 0] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["a.tif"]  # no partial files left


def test_write_checks_axes_and_format(tmp_path):
    with pytest.raises(ValueError, match="axes"):
        write_image(tmp_path / "a.tif", np.zeros((4, 8, 8)), "YX")
    with pytest.raises(ValueError, match="axes"):
        write_image(tmp_path / "a.tif", np.zeros((8, 8)), "YY")
    with pytest.raises(ValueError, match="TIFF"):
        write_image(tmp_path / "a.png", np.zeros((8, 8)), "YX")


def test_ome_tiff(tmp_path):
    data = rng.integers(0, 999, (2, 3, 20, 24), dtype=np.uint16)
    meta = {"axes": "ZCYX", "PhysicalSizeX": 0.2, "PhysicalSizeY": 0.2, "PhysicalSizeZ": 1.0}
    tifffile.imwrite(tmp_path / "o.ome.tif", data, metadata=meta)
    image = read_image(tmp_path / "o.ome.tif")
    assert image.axes == "ZCYX" and image.scale == pytest.approx({"X": 0.2, "Y": 0.2, "Z": 1.0})
    assert image.unit == "µm"


def test_resolution_unit_centimeter(tmp_path):
    tifffile.imwrite(
        tmp_path / "cm.tif", np.zeros((8, 8), np.uint8), resolution=(1e4, 1e4), resolutionunit="centimeter"
    )
    image = read_image(tmp_path / "cm.tif")
    assert image.unit == "micron" and image.scale == pytest.approx({"X": 1.0, "Y": 1.0})


@pytest.mark.parametrize(
    "mode, shape, axes",
    [
        ("RGB", (10, 12, 3), "YXC"),
        ("RGBA", (10, 12, 4), "YXC"),
        ("L", (10, 12), "YX"),
        ("LA", (10, 12, 4), "YXC"),
        ("P", (10, 12, 3), "YXC"),
    ],
)
def test_png(tmp_path, mode, shape, axes):
    Image.new(mode, (12, 10)).save(tmp_path / "a.png")
    image = read_image(tmp_path / "a.png")
    assert (image.array.shape, image.axes, image.array.dtype) == (shape, axes, np.uint8)


def test_png_values_and_16_bit(tmp_path):
    rgb = rng.integers(0, 255, (10, 12, 3), dtype=np.uint8)
    Image.fromarray(rgb).save(tmp_path / "rgb.png")
    np.testing.assert_array_equal(read_image(tmp_path / "rgb.png").array, rgb)
    deep = rng.integers(0, 65535, (10, 12), dtype=np.uint16)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    image = read_image(tmp_path / "deep.png")
    assert image.axes == "YX" and image.array.dtype == np.uint16
    np.testing.assert_array_equal(image.array, deep)


def test_jpeg_and_bmp(tmp_path):
    Image.new("RGB", (12, 10), (200, 100, 50)).save(tmp_path / "a.jpg", quality=95)
    image = read_image(tmp_path / "a.jpg")
    assert image.axes == "YXC" and image.array.shape == (10, 12, 3) and image.array.dtype == np.uint8
    assert abs(int(image.array[5, 5, 0]) - 200) < 5
    Image.new("L", (12, 10), 7).save(tmp_path / "a.bmp")
    assert read_image(tmp_path / "a.bmp").array[0, 0] == 7


def test_read_errors(tmp_path):
    with pytest.raises(ValueError, match="missing.tif.*no such file"):
        read_image(tmp_path / "missing.tif")
    (tmp_path / "text.tif").write_text("not an image\n")
    with pytest.raises(ValueError, match="text.tif") as err:
        read_image(tmp_path / "text.tif")
    assert "\n" not in str(err.value)
    (tmp_path / "data.xyz").write_bytes(b"\0" * 16)
    with pytest.raises(ValueError, match="data.xyz.*unsupported file type"):
        read_image(tmp_path / "data.xyz")
    (tmp_path / "bad.png").write_bytes(b"\x89PNG broken")
    with pytest.raises(ValueError, match="bad.png"):
        read_image(tmp_path / "bad.png")
