"""Property-based sweeps through the files: small TIFFs of every common dtype (extremes and NaN
included), 2D-4D shapes (tiny, odd, singleton axes), plain, tifffile-shaped, explicit-axes and
ImageJ layouts, calibrated or not, go through ``read_image``, ``read_image_lazy``, the napari
reader function (no viewer) and ``napari-deblur xy``. Each case gives the right pixels with sane
axes and scale, or one clear line (ValueError; exit status 2), and the input file keeps every byte.

A tiny random-weight model (width 4, one block) keeps each CLI run to milliseconds on the CPU.
"""

import contextlib
import hashlib
import io
import itertools
import math
import warnings

import numpy as np
import pytest
import tifffile
from factories import tiny_model

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from napari_deblur import xydeblur  # noqa: E402
from napari_deblur.cli import main  # noqa: E402
from napari_deblur.engine.restore import MAX_MAGNITUDE  # noqa: E402
from napari_deblur.io import read_image, read_image_lazy  # noqa: E402
from napari_deblur.models.weights import load_model, save_safetensors  # noqa: E402
from napari_deblur.plugin.reader import get_reader, layer_data, read_tiff  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

SWEEP = settings(
    max_examples=40,
    deadline=None,
    database=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

DTYPES = [np.uint8, np.uint16, np.int16, np.int32, np.uint32, np.float32, np.float64]
IMAGEJ_DTYPES = (np.uint8, np.uint16, np.int16, np.float32)  # what tifffile writes as ImageJ
SIDES = [4, 5, 7, 8, 9, 13, 4, 5, 7, 1, 2, 3]  # odd, not multiples of 4, too small (1 in 4)
AXES = {2: ["YX"], 3: ["ZYX", "CYX", "TYX", "YXS"], 4: ["TZYX", "ZCYX", "TCYX", "ZYXS", "CZYX"]}
LAYOUTS = ["plain", "shaped", "axes", "imagej"]
CALIBRATIONS = ["none", "micron", "cm", "inch", "bad-scale"]
_counter = itertools.count()


@st.composite
def tiff_files(draw):
    """(array, imwrite keyword arguments, axes written or None): a TIFF to write, drawn from
    its dtype, axes, sizes, values and layout (numpy builds the array, so it is quick)."""
    dtype = np.dtype(draw(st.sampled_from(DTYPES)))
    axes = draw(st.sampled_from(AXES[draw(st.integers(2, 4))]))
    sizes = {"Y": st.sampled_from(SIDES), "X": st.sampled_from(SIDES), "S": st.sampled_from([3, 4])}
    shape = tuple(draw(sizes.get(letter, st.integers(1, 3))) for letter in axes)
    array = draw_values(draw, dtype, shape)
    layout = draw(st.sampled_from(LAYOUTS))
    rgb = "S" in axes
    if layout == "imagej" and not imagej_can_hold(array, axes):
        layout = "axes"
    kwargs = {"photometric": "rgb" if rgb else "minisblack"}
    if layout == "plain":
        kwargs["metadata"] = None
        if not rgb and draw(st.booleans()):
            del kwargs["photometric"]  # tifffile guesses (planar RGB for a (3, Y, X) array)
    elif layout == "axes":
        kwargs["metadata"] = {"axes": axes}
    elif layout == "imagej":
        kwargs.update(imagej=True, metadata={"axes": axes})
    calibration = draw(st.sampled_from(CALIBRATIONS))
    size = draw(st.sampled_from([0.1, 0.25, 2.0]))
    if calibration == "micron":
        kwargs.update(resolution=(1 / size, 1 / size), resolutionunit="micrometer")
    elif calibration == "cm":
        kwargs.update(resolution=(1e4 / size, 1e4 / size), resolutionunit="centimeter")
    elif calibration == "inch":
        kwargs.update(resolution=(72, 72), resolutionunit="inch")
    if layout == "imagej" and calibration in ("micron", "cm"):
        kwargs["resolution"], kwargs["resolutionunit"] = (1 / size, 1 / size), None
        kwargs["metadata"].update(unit="um", spacing=size * 3)
    if layout == "axes" and calibration == "bad-scale":
        kwargs["metadata"]["scale"] = {"X": 0.0, "Y": "nan", "Z": -1.0}
    return array, kwargs, axes if layout in ("axes", "imagej") else None


def imagej_can_hold(array, axes) -> bool:
    order = iter("TZCYXS")
    in_order = all(letter in order for letter in axes)
    rgb_ok = "S" not in axes or (array.dtype == np.uint8 and array.shape[-1] == 3)
    return array.dtype in IMAGEJ_DTYPES and in_order and rgb_ok


def draw_values(draw, dtype, shape) -> np.ndarray:
    rng = np.random.default_rng(draw(st.integers(0, 2**16)))
    if dtype.kind in "ui":
        info = np.iinfo(dtype)
        pattern = draw(st.sampled_from(["random", "extremes", "max", "small"]))
        if pattern == "random":
            return rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)
        if pattern == "extremes":
            return np.where(rng.random(shape) < 0.5, info.min, info.max).astype(dtype)
        if pattern == "max":
            return np.full(shape, info.max, dtype)
        return rng.integers(0, 10, shape).astype(dtype)
    pattern = draw(st.sampled_from(["unit", "wide", "largest", "constant", "unit", "beyond"]))
    signed = rng.uniform(-1, 1, shape)
    biggest = float(np.finfo(dtype).max)
    values = {
        "unit": rng.random(shape),
        "wide": signed * 1e6,
        "largest": signed * MAX_MAGNITUDE,
        "beyond": signed * biggest,
        "constant": np.full(shape, rng.uniform(-100, 100)),
    }[pattern]
    array = values.astype(dtype)
    specials = draw(st.sampled_from(["none", "none", "nan", "nan", "inf", "all-nan"]))
    if specials == "nan":
        array[rng.random(shape) < 0.2] = np.nan
    elif specials == "inf":
        array.flat[rng.integers(array.size)] = rng.choice([np.inf, -np.inf])
    elif specials == "all-nan":
        array[...] = np.nan
    return array


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    return save_safetensors(tiny_model(channels=1), folder / "tiny.safetensors")


@pytest.fixture(scope="module")
def cases(tmp_path_factory):
    """A function that gives a fresh folder for each example."""
    root = tmp_path_factory.mktemp("cases")

    def fresh():
        folder = root / f"case{next(_counter)}"
        (folder / "in").mkdir(parents=True)
        return folder

    return fresh


def write_case(folder, array, kwargs):
    path = folder / "in" / "image.tif"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tifffile's guesses and deprecations
        tifffile.imwrite(path, array, **kwargs)
    return path


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tifffile_pixels(path):
    """What tifffile itself reads, with samples moved last as the reader does, and whether that
    is the shape tifffile's metadata says (it is not for some files it wrote one pixel wide)."""
    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        pixels, axes = series.asarray(), series.axes.upper()
        consistent = pixels.shape == tuple(series.shape)
    if "S" in axes and not axes.endswith("S"):
        pixels = np.moveaxis(pixels, axes.index("S"), -1)
    return pixels, consistent


def check_refused(path, read_lazily):
    """A file whose pixels do not fit its metadata: refused in one line, or (lazily) when computed."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            got = read_lazily(path)
    except ValueError as err:
        check_one_line(err, path)
        return
    with pytest.raises(Exception):  # noqa: B017 - tifffile's zarr store raises IndexError
        np.asarray(got[0][0] if isinstance(got, list) else got.array)


def check_one_line(err, path):
    message = str(err)
    assert message and "\n" not in message and str(path) in message, message


def check_sane(image, pixels, written, written_axes, kwargs):
    """The ImageFile has tifffile's pixels, axes naming its dimensions, and a usable scale;
    ``written``: the array given to tifffile, with ``written_axes`` where they were given."""
    assert image.array.dtype == pixels.dtype and image.array.shape == pixels.shape
    axes = image.axes
    assert len(axes) == image.array.ndim and len(set(axes)) == len(axes) and axes.isupper()
    assert "Y" in axes and "X" in axes and "S" not in axes and axes.index("Y") < axes.index("X")
    if written_axes and (not kwargs.get("imagej") or 1 not in written.shape):  # ImageJ drops length-1 axes
        assert axes == written_axes.replace("S", "C")
    for letter, size in image.scale.items():
        assert isinstance(size, float) and 0 < size < math.inf, (letter, size)
    if kwargs.get("resolutionunit") == "inch" or "resolution" not in kwargs:
        assert "X" not in image.scale and "Y" not in image.scale and image.unit is None
    elif kwargs.get("imagej") or kwargs.get("resolutionunit") in ("micrometer", "centimeter"):
        size = 1 / kwargs["resolution"][0] * (1e4 if kwargs.get("resolutionunit") == "centimeter" else 1)
        assert image.scale["X"] == pytest.approx(size) and image.unit in ("micron", "um", "µm")


@SWEEP
@given(case=tiff_files())
def test_reader_gives_tifffile_pixels_with_sane_axes_and_scale(case, cases):
    array, kwargs, written_axes = case
    path = write_case(cases(), array, kwargs)
    before = sha256(path)
    pixels, consistent = tifffile_pixels(path)
    if not consistent:
        with pytest.raises(ValueError, match="its pixels come as shape") as refused:
            read_image(path)
        check_one_line(refused.value, path)
        check_refused(path, read_image_lazy)
        hypothesis.event("refused: pixels do not fit the metadata")
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # an ignored unusable scale warns, naming the file
        image = read_image(path)
    hypothesis.event(f"{image.axes} {image.array.dtype}")
    check_sane(image, pixels, array, written_axes, kwargs)
    np.testing.assert_array_equal(image.array, pixels)  # NaN equals NaN here
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            lazy = read_image_lazy(path)
    except NotImplementedError as err:  # tifffile's zarr store cannot map stacks of 1x1 planes
        check_one_line(err, path)
        assert image.array.shape[image.axes.index("Y")] == image.array.shape[image.axes.index("X")] == 1
    else:
        assert (lazy.axes, lazy.scale, lazy.unit) == (image.axes, image.scale, image.unit)
        np.testing.assert_array_equal(np.asarray(lazy.array.compute()), pixels)
        del lazy
    assert sha256(path) == before


@SWEEP
@given(case=tiff_files(), lazily=st.booleans())
def test_napari_reader_gives_layers_napari_can_show(case, lazily, cases):
    array, kwargs, _ = case
    path = write_case(cases(), array, kwargs)
    before = sha256(path)
    pixels, consistent = tifffile_pixels(path)
    reader = get_reader(str(path))
    read = (lambda p: layer_data(read_tiff(p, threshold=0))) if lazily else (lambda p: reader(str(p)))
    if not consistent:
        check_refused(path, read)
        return
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        [(data, layer, kind)] = read(path)
    assert kind == "image" and data.shape == pixels.shape and data.dtype == pixels.dtype
    np.testing.assert_array_equal(np.asarray(data), pixels)
    channel_axis = layer.get("channel_axis")
    if channel_axis is not None:
        assert not layer.get("rgb") and layer["metadata"][0]["axes"][channel_axis] == "C"
        channels = pixels.shape[channel_axis]
        assert len(layer["name"]) == len(layer["scale"]) == len(layer["metadata"]) == channels
        scales, labels, units = layer["scale"][0], layer["axis_labels"][0], layer["units"][0]
        assert len(scales) == pixels.ndim - 1
    else:
        scales, labels, units = layer["scale"], layer["axis_labels"], layer["units"]
        assert len(scales) == pixels.ndim - (1 if layer.get("rgb") else 0)
        assert not layer.get("rgb") or pixels.shape[-1] in (3, 4)
    assert len(labels) == len(units) == len(scales) and "Y" in labels and "X" in labels
    assert all(isinstance(s, float) and 0 < s < math.inf for s in scales)
    del data
    assert sha256(path) == before


def expected_to_restore(pixels, axes, given_axes) -> bool:
    """Whether ``napari-deblur xy`` must restore this image rather than refuse it."""
    if given_axes is not None and given_axes != axes:
        return False
    if pixels.shape[axes.index("Y")] < 4 or pixels.shape[axes.index("X")] < 4:
        return False
    if pixels.dtype.kind == "f":
        finite = pixels[np.isfinite(pixels)]
        if np.isinf(pixels).any() or finite.size == 0 or np.abs(finite.astype(np.float64)).max() > MAX_MAGNITUDE:
            return False
    return True


def run_cli(argv):
    err = io.StringIO()
    with contextlib.redirect_stderr(err), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        status = main(argv)
    return status, err.getvalue()


@SWEEP
@given(
    case=tiff_files(),
    axes_option=st.sampled_from([None, None, None, "file", "wrong"]),
    out_dtype=st.sampled_from(["same", "same", "float32"]),
    residuals=st.booleans(),
)
def test_cli_xy_restores_correctly_or_refuses_in_one_line(case, axes_option, out_dtype, residuals, cases, model_path):
    array, kwargs, _ = case
    folder = cases()
    path = write_case(folder, array, kwargs)
    before = sha256(path)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            source = read_image(path)
    except ValueError as err:  # pixels that do not fit the metadata: the CLI says the same
        assert not tifffile_pixels(path)[1]
        status, stderr = run_cli(["xy", str(path), "-o", str(folder / "out"), "--quiet"])
        assert status == 2 and stderr == f"napari-deblur: error: {err}\n"
        return
    given_axes = {None: None, "file": source.axes, "wrong": "YX" if source.array.ndim > 2 else "YY"}[axes_option]
    argv = (
        [
            "xy",
            str(path),
            "-o",
            str(folder / "out"),
            "--model",
            str(model_path),
            "--device",
            "cpu",
            "--quiet",
            "--out-dtype",
            out_dtype,
        ]
        + (["--axes", given_axes] if given_axes else [])
        + (["--residuals"] * residuals)
    )
    status, stderr = run_cli(argv)
    outputs = sorted(p.name for p in (folder / "out").glob("*")) if (folder / "out").exists() else []
    if status != 0:
        hypothesis.event(f"refused: {stderr.replace(str(path), 'IN')[22:80]}")
        assert status == 2 and stderr.startswith("napari-deblur: error: ") and stderr.count("\n") == 1, stderr
        assert not expected_to_restore(source.array, source.axes, given_axes), stderr
        assert outputs == [], "a refused run left files"
    else:
        hypothesis.event(f"restored {source.axes} {source.array.dtype}")
        assert stderr == ""
        assert expected_to_restore(source.array, source.axes, given_axes), "restored an image it should refuse"
        residual_files = ["image_r_hor.tif", "image_r_ver.tif"] if residuals else []
        assert outputs == sorted(["image_deblurred.tif"] + residual_files)
        check_output(folder / "out", source, out_dtype, model_path)
    assert sorted(p.name for p in (folder / "in").iterdir()) == ["image.tif"]
    assert sha256(path) == before


def check_output(outdir, source, out_dtype, model_path):
    """The written result has the input's shape, axes, scale and (unless float32 was asked) dtype,
    finite wherever the input was, NaN where it was NaN, and equals what the API gives."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        restored = read_image(outdir / "image_deblurred.tif")
    pixels = source.array
    assert restored.array.shape == pixels.shape
    assert restored.array.dtype == (pixels.dtype if out_dtype == "same" else np.float32)
    assert restored.axes == source.axes
    assert restored.scale == pytest.approx(source.scale) and set(restored.scale) == set(source.scale)
    assert restored.unit == source.unit
    if restored.array.dtype.kind == "f":
        finite = np.isfinite(pixels) if pixels.dtype.kind == "f" else np.ones(pixels.shape, bool)
        assert np.isfinite(restored.array[finite]).all(), "a finite pixel came back NaN or infinite"
        assert np.isnan(restored.array[~finite]).all(), "a NaN pixel did not stay NaN"
    api = xydeblur(pixels, load_model(str(model_path)), axes=source.axes, device="cpu", out_dtype=out_dtype)
    np.testing.assert_array_equal(restored.array, api.restored)
    for name in ("r_hor", "r_ver"):
        if (outdir / f"image_{name}.tif").exists():
            residual = read_image(outdir / f"image_{name}.tif")
            assert residual.array.dtype == np.float32 and residual.array.shape == pixels.shape
            np.testing.assert_array_equal(residual.array, getattr(api, name))


BROKEN = ["one-dimensional", "truncated", "header-only", "not-a-tiff", "empty-file"]


@SWEEP
@given(kind=st.sampled_from(BROKEN), cut=st.floats(0.05, 0.95), seed=st.integers(0, 2**16))
def test_broken_files_are_refused_in_one_line_everywhere(kind, cut, seed, cases, model_path):
    folder = cases()
    path = folder / "in" / "image.tif"
    rng = np.random.default_rng(seed)
    if kind == "one-dimensional":
        tifffile.imwrite(path, rng.integers(0, 255, 7, dtype=np.uint8))
    elif kind in ("truncated", "header-only"):
        original = rng.integers(0, 255, (9, 13), dtype=np.uint16)
        tifffile.imwrite(path, original, metadata=None)
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * cut)] if kind == "truncated" else data[:8])
    elif kind == "not-a-tiff":
        path.write_bytes(rng.bytes(64))
    else:
        path.write_bytes(b"")
    before = sha256(path)
    outcomes = []
    for read in (read_image, read_image_lazy, lambda p: get_reader(str(p))(str(p))):
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                got = read(path)
        except ValueError as err:
            check_one_line(err, path)
            outcomes.append("refused")
            continue
        assert kind == "truncated", f"{kind} was read"
        try:  # a lazy array reads its pixels only now: a cut in them must fail, not give zeros
            pixels = np.asarray(got[0][0] if isinstance(got, list) else got.array)
        except ValueError:
            outcomes.append("refused when computed")
        else:
            np.testing.assert_array_equal(pixels, original)
            outcomes.append("read")
    status, stderr = run_cli(
        ["xy", str(path), "-o", str(folder / "out"), "--model", str(model_path), "--device", "cpu", "--quiet"]
    )
    assert status in (0, 2) and (status == 0 or stderr.count("\n") == 1 and str(path) in stderr), stderr
    hypothesis.event(f"{kind}: {outcomes}, exit {status}")
    if kind != "truncated":
        assert outcomes == ["refused"] * 3 and status == 2
    assert sha256(path) == before


@pytest.mark.parametrize(
    "shape, rgb, axes, sizes",
    [
        ((2, 2, 5, 7), False, "PQYX", (5, 7)),  # tifffile named both stack axes Q
        ((2, 3, 2, 5, 7), False, "OPQYX", (5, 7)),
        ((2, 2, 5, 7, 3), True, "PQYXC", (5, 7)),
        ((1, 1, 5, 1), False, "PQYX", (5, 1)),  # tifffile said QYXQ: X was the 5
        ((1, 1, 1, 1), False, "PQYX", (1, 1)),  # tifffile said YXYX
        ((2, 1, 1), False, "QYX", (1, 1)),  # tifffile said YQX
    ],
)
def test_stacks_written_without_axes_get_distinct_axes_yx_last(tmp_path, shape, rgb, axes, sizes, model_path):
    """A stack saved with a plain ``tifffile.imwrite(path, data)`` is read with one letter per
    axis (unknown stack axes ..., O, P, Q) and Y, X where tifffile's writer put them (last, or
    before the RGB samples), so the engine and napari take it (found by the sweep above)."""
    data = np.arange(np.prod(shape), dtype=np.uint16).reshape(shape)
    tifffile.imwrite(tmp_path / "stack.tif", data, photometric="rgb" if rgb else "minisblack")
    for image in (read_image(tmp_path / "stack.tif"), read_image_lazy(tmp_path / "stack.tif")):
        assert image.axes == axes and image.array.shape == shape
        assert (image.array.shape[axes.index("Y")], image.array.shape[axes.index("X")]) == sizes
        np.testing.assert_array_equal(np.asarray(image.array), data)
    [(_, layer, _)] = get_reader(str(tmp_path / "stack.tif"))(str(tmp_path / "stack.tif"))
    assert layer["axis_labels"] == tuple(axes.replace("C", "")) and layer.get("rgb", False) == rgb
    if min(sizes) >= 4:
        status, stderr = run_cli(
            [
                "xy",
                str(tmp_path / "stack.tif"),
                "-o",
                str(tmp_path / "out"),
                "--model",
                str(model_path),
                "--device",
                "cpu",
                "--quiet",
            ]
        )
        assert (status, stderr) == (0, "")
        assert read_image(tmp_path / "out" / "stack_deblurred.tif").axes == axes


def test_a_layout_tifffiles_zarr_store_maps_wrongly_is_not_opened_lazily(tmp_path):
    """tifffile's zarr store gives chunks larger than the array for stacks of 1x1-pixel planes
    written without axes, and reading it fails; read_image_lazy says so when opening, and the
    napari reader reads such a file into memory instead (found by the sweep above)."""
    data = np.arange(4, dtype=np.uint8).reshape(2, 2, 1, 1)
    path = tmp_path / "dots.tif"
    tifffile.imwrite(path, data, photometric="minisblack")
    with pytest.raises(NotImplementedError, match="dots.tif"):
        read_image_lazy(path)
    with pytest.warns(UserWarning, match="cannot open it lazily"):
        image = read_tiff(path, threshold=0)
    assert isinstance(image.array, np.ndarray)
    np.testing.assert_array_equal(image.array, data)


def test_pixels_that_do_not_fit_the_metadata_are_refused(tmp_path):
    """tifffile writes a TZYX ImageJ stack one pixel wide as pages of the wrong shape and then reads
    fewer pixels than its metadata says: read_image refuses it in one line instead of giving an
    array that its axes do not name (found by the sweep above)."""
    path = tmp_path / "thin.tif"
    tifffile.imwrite(path, np.zeros((2, 2, 4, 1), np.uint8), imagej=True, metadata={"axes": "TZYX"})
    before = sha256(path)
    with pytest.raises(ValueError, match=r"thin.tif: its pixels come as shape \(2, 2, 4\), not the"):
        read_image(path)
    status, stderr = run_cli(["xy", str(path), "-o", str(tmp_path / "out"), "--quiet"])
    assert status == 2 and "its pixels come as shape" in stderr and stderr.count("\n") == 1
    assert sha256(path) == before
