"""What the TIFF reader makes of calibration metadata: real calibrations are kept, print
resolutions (dpi) are not a pixel size, unusable values are ignored with a warning, and
images napari cannot show are refused with one clear line."""

from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pytest
import tifffile

from napari_deblur.io import read_image, read_image_lazy

POLLEN = Path("/work/shared/data/fluorescence/sdeconv/pollen.tif")  # development data, may be absent
PIXELS = np.arange(2 * 8 * 10, dtype=np.uint16).reshape(2, 8, 10)


def lazy_read(path):
    pytest.importorskip("dask.array")
    pytest.importorskip("zarr")
    image = read_image_lazy(path)
    image.array = image.array.compute()
    return image


READS = [pytest.param(read_image, id="eager"), pytest.param(lazy_read, id="lazy")]


# -- item 10: a print resolution is not a calibration ------------------------------------


@pytest.mark.parametrize("read", READS)
@pytest.mark.parametrize("dpi", [72, 96, 150, 300, 600])
def test_dots_per_inch_are_not_a_pixel_size(tmp_path, read, dpi):
    path = tmp_path / "edited.tif"
    tifffile.imwrite(path, PIXELS, resolution=(dpi, dpi), resolutionunit="inch")
    image = read(path)
    assert image.scale == {} and image.unit is None
    assert image.metadata["dpi"] == (dpi, dpi)  # kept for reference, not as a scale
    np.testing.assert_array_equal(image.array, PIXELS)


def test_resolution_without_a_unit_is_not_a_calibration(tmp_path):
    tifffile.imwrite(tmp_path / "none.tif", PIXELS, resolution=(4, 4), resolutionunit="none")
    image = read_image(tmp_path / "none.tif")
    assert image.scale == {} and image.unit is None


def test_imagej_file_without_a_unit_is_uncalibrated_in_x_and_y(tmp_path):
    tifffile.imwrite(
        tmp_path / "ij.tif",
        PIXELS,
        imagej=True,
        resolution=(72, 72),
        resolutionunit="inch",
        metadata={"axes": "ZYX", "spacing": 2.0},
    )
    image = read_image(tmp_path / "ij.tif")
    assert image.scale == {"Z": 2.0} and image.unit is None  # ImageJ's voxel depth, in pixels


@pytest.mark.parametrize("unit", ["um", "inch"])
def test_imagej_unit_is_a_calibration_whatever_the_resolution_unit(tmp_path, unit):
    tifffile.imwrite(
        tmp_path / "ij.tif",
        PIXELS,
        imagej=True,
        resolution=(72, 72),
        resolutionunit="inch",
        metadata={"axes": "ZYX", "unit": unit, "spacing": 0.5},
    )
    image = read_image(tmp_path / "ij.tif")
    assert image.unit == unit and image.scale == pytest.approx({"X": 1 / 72, "Y": 1 / 72, "Z": 0.5})


def test_imagej_centimetre_calibration_is_in_centimetres(tmp_path):
    # ImageJ writes ResolutionUnit=CENTIMETER and unit=cm for a calibration in cm
    tifffile.imwrite(
        tmp_path / "cm.tif",
        PIXELS,
        imagej=True,
        resolution=(1e4, 1e4),
        resolutionunit="centimeter",
        metadata={"axes": "ZYX", "unit": "cm"},
    )
    image = read_image(tmp_path / "cm.tif")
    assert image.unit == "cm" and image.scale == pytest.approx({"X": 1e-4, "Y": 1e-4})


def test_ome_calibration_wins_over_a_print_resolution(tmp_path):
    tifffile.imwrite(
        tmp_path / "o.ome.tif",
        PIXELS,
        resolution=(72, 72),
        resolutionunit="inch",
        metadata={"axes": "ZYX", "PhysicalSizeX": 0.2, "PhysicalSizeY": 0.2},
    )
    image = read_image(tmp_path / "o.ome.tif")
    assert image.unit == "µm" and image.scale == pytest.approx({"X": 0.2, "Y": 0.2})


def test_ome_without_sizes_keeps_a_metric_resolution(tmp_path):
    tifffile.imwrite(
        tmp_path / "o.ome.tif", PIXELS, resolution=(1e4, 1e4), resolutionunit="centimeter", metadata={"axes": "ZYX"}
    )
    image = read_image(tmp_path / "o.ome.tif")
    assert image.unit == "micron" and image.scale == pytest.approx({"X": 1.0, "Y": 1.0})


def test_reader_gives_pixel_units_for_a_72_dpi_file(tmp_path):
    from napari_deblur.plugin.reader import read_tiffs

    tifffile.imwrite(tmp_path / "edited.tif", PIXELS[0], resolution=(72, 72), resolutionunit="inch")
    [(_, kwargs, _)] = read_tiffs(str(tmp_path / "edited.tif"))
    assert kwargs["scale"] == (1.0, 1.0) and kwargs["units"] == ("pixel", "pixel")


@pytest.mark.skipif(not POLLEN.is_file(), reason="development data not present")
def test_pollen_from_an_image_editor_is_uncalibrated():
    image = read_image(POLLEN)
    assert image.scale == {} and image.unit is None and image.metadata["dpi"] == (72.0, 72.0)


# -- item 11: an unusable value is ignored with a warning, the pixels are kept -----------

UNUSABLE = ["abc", "0", "nan", "-1", "inf"]


def ome_description(size_x: str, size_z="1.5", time_increment="2.0") -> str:
    """OME-XML for a ZYX uint16 image of PIXELS' shape with the given PhysicalSize and TimeIncrement text."""
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<OME xmlns="http://www.openmicroscopy.org/Schemas/OME/2016-06"><Image ID="Image:0"><Pixels ID="Pixels:0" '
        'DimensionOrder="XYZCT" Type="uint16" SizeX="10" SizeY="8" SizeZ="2" SizeC="1" SizeT="1" '
        f'PhysicalSizeX="{size_x}" PhysicalSizeY="0.5" PhysicalSizeZ="{size_z}" TimeIncrement="{time_increment}">'
        '<Channel ID="Channel:0:0" SamplesPerPixel="1"/><TiffData IFD="0" PlaneCount="2"/></Pixels></Image></OME>'
    )


def assert_finite_positive(scale: dict):
    assert all(np.isfinite(v) and v > 0 for v in scale.values()), scale


@pytest.mark.parametrize("read", READS)
@pytest.mark.parametrize("value", UNUSABLE)
def test_unusable_ome_physical_size_is_ignored_with_a_warning(tmp_path, read, value):
    path = tmp_path / "bad.ome.tif"
    tifffile.imwrite(path, PIXELS, description=ome_description(value), metadata=None)
    with pytest.warns(UserWarning, match=r"PhysicalSizeX=.* in .*bad\.ome\.tif"):
        image = read(path)
    assert image.scale == pytest.approx({"Y": 0.5, "Z": 1.5, "T": 2.0}) and image.unit == "µm"
    np.testing.assert_array_equal(image.array, PIXELS)


@pytest.mark.parametrize("value", UNUSABLE)
def test_unusable_ome_z_and_time_are_ignored_with_a_warning(tmp_path, value):
    path = tmp_path / "bad.ome.tif"
    tifffile.imwrite(
        path, PIXELS, description=ome_description("0.5", size_z=value, time_increment=value), metadata=None
    )
    with pytest.warns(UserWarning) as caught:
        image = read_image(path)
    messages = [str(w.message) for w in caught]
    assert any("PhysicalSizeZ" in m and "bad.ome.tif" in m for m in messages)
    assert any("TimeIncrement" in m and "bad.ome.tif" in m for m in messages)
    assert image.scale == pytest.approx({"X": 0.5, "Y": 0.5})


@pytest.mark.parametrize("read", READS)
@pytest.mark.parametrize("field", ["spacing", "finterval"])
@pytest.mark.parametrize("value", UNUSABLE)
def test_unusable_imagej_spacing_or_interval_is_ignored_with_a_warning(tmp_path, read, field, value):
    path = tmp_path / "bad.tif"
    tifffile.imwrite(path, PIXELS, imagej=True, resolution=(4, 4), metadata={"axes": "ZYX", "unit": "um", field: value})
    with pytest.warns(UserWarning, match=rf"{field}=.* in .*bad\.tif"):
        image = read(path)
    assert image.scale == pytest.approx({"X": 0.25, "Y": 0.25}) and image.unit == "um"
    np.testing.assert_array_equal(image.array, PIXELS)


def test_zero_resolution_tag_is_ignored_with_a_warning(tmp_path):
    path = tmp_path / "bad.tif"
    tifffile.imwrite(path, PIXELS, resolution=((0, 1), (2, 1)), resolutionunit="centimeter")
    with pytest.warns(UserWarning, match=r"XResolution=.* in .*bad\.tif"):
        image = read_image(path)
    assert image.scale == pytest.approx({"Y": 5000.0}) and image.unit == "micron"


def test_unusable_tifffile_json_scale_is_ignored_with_a_warning(tmp_path):
    path = tmp_path / "bad.tif"
    tifffile.imwrite(
        path, PIXELS, metadata={"axes": "ZYX", "scale": {"X": "abc", "Y": 0.5, "Z": float("nan")}, "unit": "um"}
    )
    with pytest.warns(UserWarning) as caught:
        image = read_image(path)
    messages = sorted(str(w.message) for w in caught)
    assert len(messages) == 2 and all("bad.tif" in m for m in messages)
    assert messages[0].startswith("ignored scale['X']='abc'") and messages[1].startswith("ignored scale['Z']=nan")
    assert image.scale == {"Y": 0.5} and image.unit == "um"


def test_malformed_ome_xml_is_ignored_with_a_warning(tmp_path):
    path = tmp_path / "bad.ome.tif"
    tifffile.imwrite(
        path, PIXELS, description=ome_description("0.5").replace("/></Pixels>", "</Pixels>"), metadata=None
    )
    with pytest.warns(UserWarning, match=r"OME-XML of .*bad\.ome\.tif"):
        image = read_image(path)
    assert image.scale == {} and image.unit is None
    np.testing.assert_array_equal(image.array, PIXELS)


def test_reader_gives_napari_a_usable_scale_despite_bad_ome_values(tmp_path):
    from napari_deblur.plugin.reader import read_tiffs

    path = tmp_path / "bad.ome.tif"
    tifffile.imwrite(path, PIXELS, description=ome_description("nan", size_z="0"), metadata=None)
    with pytest.warns(UserWarning, match="PhysicalSize"):
        [(_, kwargs, _)] = read_tiffs(str(path))
    assert kwargs["scale"] == (1.0, 0.5, 1.0) and kwargs["units"] == ("pixel", "µm", "pixel")


# -- item 12: images napari cannot show are refused with one line naming the file --------

NOT_IMAGES = {  # name: (array, whether tifffile writes its JSON shape, why it is refused)
    "empty": (np.zeros((0,), np.uint8), True, "empty"),
    "empty_plane": (np.zeros((0,), np.uint8), False, "empty"),  # without the JSON tifffile reads (0, 0)
    "empty_stack": (np.zeros((0, 8, 8), np.uint16), True, "empty"),
    "no_columns": (np.zeros((8, 0), np.uint16), True, "empty"),
    "line": (np.arange(10, dtype=np.uint16), True, "1 dimension"),
    "rgb_line": (np.zeros((10, 3), np.uint8), True, "1 dimension"),
}


def write_not_image(path, name):
    array, with_json, _ = NOT_IMAGES[name]
    kwargs = {"photometric": "rgb"} if name.startswith("rgb") else {}
    with pytest.warns(UserWarning) if array.size == 0 else nullcontext():  # tifffile: "nonconformant TIFF"
        tifffile.imwrite(path, array, metadata={} if with_json else None, **kwargs)
    with tifffile.TiffFile(path) as tif:  # what the reader will see
        assert tif.series[0].shape == ((0, 0) if name == "empty_plane" else array.shape)
    return path


@pytest.mark.parametrize("read", [read_image, read_image_lazy], ids=["eager", "lazy"])
@pytest.mark.parametrize("name", NOT_IMAGES)
def test_empty_or_one_dimensional_tiff_is_refused_with_one_line(tmp_path, read, name):
    if read is read_image_lazy:
        pytest.importorskip("dask.array")
        pytest.importorskip("zarr")
    path = write_not_image(tmp_path / f"{name}.tif", name)
    with pytest.raises(ValueError, match=rf"{name}\.tif.*{NOT_IMAGES[name][2]}") as err:
        read(path)
    assert "\n" not in str(err.value) and "at least" in str(err.value)


def test_a_single_row_is_still_an_image(tmp_path):
    tifffile.imwrite(tmp_path / "row.tif", np.arange(10, dtype=np.uint16)[None])
    image = read_image(tmp_path / "row.tif")
    assert image.axes == "YX" and image.array.shape == (1, 10)


def test_reader_refuses_an_empty_tiff_with_a_value_error(tmp_path):
    from napari_deblur.plugin.reader import get_reader

    path = write_not_image(tmp_path / "empty.tif", "empty")
    with pytest.raises(ValueError, match=r"empty\.tif.*empty"):
        get_reader(str(path))(str(path))


# -- the TIFF metadata helpers the reader is built from ---------------------------------


def test_tiff_metadata_helpers_read_axes_scale_and_refuse_non_images(tmp_path):
    from napari_deblur.io.tiff_metadata import check_image_shape, series_axes, tiff_metadata

    path = tmp_path / "calibrated.tif"
    tifffile.imwrite(
        path, PIXELS, imagej=True, resolution=(1 / 0.5, 1 / 0.5), metadata={"axes": "ZYX", "unit": "um", "spacing": 2.0}
    )
    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        assert series_axes(tif, series) == "ZYX"
        scale, unit, metadata = tiff_metadata(tif, series, path)
    assert scale == {"X": 0.5, "Y": 0.5, "Z": 2.0} and unit == "um"
    assert metadata["photometric"] == "minisblack"

    bare = tmp_path / "bare.tif"  # tifffile's writer without axes: the page's axes last, unknown stacks before
    tifffile.imwrite(bare, np.zeros((3, 1, 4, 5), np.uint8))
    with tifffile.TiffFile(bare) as tif:
        assert series_axes(tif, tif.series[0]) == "PQYX"

    check_image_shape((4, 5, 3), "YXS")
    with pytest.raises(ValueError, match="at least 2"):
        check_image_shape((5, 3), "XS")
    with pytest.raises(ValueError, match="empty"):
        check_image_shape((0, 5), "YX")
