"""Reading and writing images with their axes and pixel sizes. numpy, tifffile and Pillow only.

:func:`read_image` gives an :class:`ImageFile`: the array, an axes string of
distinct letters (``"TZCYX"``, ``"ZYX"``, ``"YXC"``, ``"YX"``; tifffile's samples
axis ``S`` is called ``C``; stack axes of unknown meaning are ``Q``, ``P``, ``O``...
from the innermost), the pixel size per axis and its unit, and other metadata worth
carrying over (ImageJ display settings, the TIFF description, the photometric
interpretation).

:func:`read_image_lazy` opens a TIFF the same way without reading its pixels: the
array is a dask array over tifffile's zarr store, one plane per chunk, for files
larger than memory (it needs dask and zarr, imported only then).
:func:`tiff_nbytes` tells how large the image is in memory, from the header alone.

:func:`write_image` writes a TIFF. When ImageJ can hold the array (uint8,
uint16 or float32; axes in ImageJ order ``TZCYX``; RGB only as uint8 ``YXC``)
it is an ImageJ hyperstack, which ImageJ/Fiji and napari open with their
calibration. Otherwise it is a plain TIFF whose axes, scale and unit are kept
in tifffile's JSON description. Either way :func:`read_image` gives back the
same array, axes, scale and unit.

``scale`` holds the pixel size in ``unit`` for ``X``, ``Y`` and ``Z``; ``T`` is
the frame interval (ImageJ's ``finterval``, in its ``tunit``, seconds unless
the metadata says otherwise). A calibration is ImageJ's ``unit``, OME's
PhysicalSize, tifffile's JSON ``scale`` or resolution tags in a metric unit;
resolution in inches or without a unit (image editors write 72 dpi when nothing
is known) is not a pixel size: such a file has no scale and no unit, and its dots
per inch stay in ``metadata["dpi"]``.
"""

import math
import os
import warnings
import weakref
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from xml.etree import ElementTree

import numpy as np

TIFF_SUFFIXES = (".tif", ".tiff")
PILLOW_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
READ_SUFFIXES = TIFF_SUFFIXES + PILLOW_SUFFIXES

_IMAGEJ_DTYPES = (np.uint8, np.uint16, np.float32)
_IMAGEJ_TAGS = {"Info", "Labels", "Ranges", "LUTs", "Plot", "ROI", "Overlays", "Properties"}
# ImageJ keys that are rebuilt from the array, the scale and the unit, and our own keys
_NOT_FORWARDED = {"ImageJ", "images", "channels", "slices", "frames", "hyperstack", "axes", "shape",
                  "spacing", "unit", "finterval", "description", "photometric", "format", "dpi", "pil_mode"}
_LENGTH_TO_CM = {"cm": 1.0, "centimeter": 1.0, "mm": 0.1, "millimeter": 0.1, "micron": 1e-4, "um": 1e-4,
                 "µm": 1e-4, "micrometer": 1e-4, "nm": 1e-7, "nanometer": 1e-7}
_RESOLUTION_UNITS = {2: "inch", 3: "cm", 4: "mm", 5: "micron"}  # TIFF ResolutionUnit; 1 is none
_MICRONS_PER_UNIT = {"cm": 1e4, "mm": 1e3, "micron": 1.0}
_BIG = 2**32 - 2**25  # beyond this a classic TIFF cannot hold the data


@dataclass
class ImageFile:
    """An image and what is known about it. ``scale`` maps axis letters to pixel sizes."""

    array: np.ndarray  # a dask array from read_image_lazy
    axes: str
    scale: dict = field(default_factory=dict)
    unit: str | None = None
    metadata: dict = field(default_factory=dict)
    path: Path | None = None


def read_image(path) -> ImageFile:
    """Read a TIFF (ImageJ, OME, tifffile or plain), PNG, JPEG or BMP.

    Raises ValueError, naming the file, when it is missing, of an unknown type,
    cannot be decoded, is not an image (fewer than 2 dimensions besides colour
    samples, or an axis of size 0) or its pixels do not fit the shape its metadata says.
    """
    path = _checked_path(path, READ_SUFFIXES)
    with _reading(path):
        image = _read_tiff(path) if path.name.lower().endswith(TIFF_SUFFIXES) else _read_pillow(path)
    image.path = path
    return image


def read_image_lazy(path, chunk_planes: int = 1) -> ImageFile:
    """Open a TIFF without reading its pixels: ``.array`` is a dask array.

    Axes, scale, unit and metadata are those :func:`read_image` gives, and so is the
    array once computed. Its chunks hold ``chunk_planes`` planes along the innermost
    stack axis and one along every other (``T``, ``Z``, microscopy ``C``...), each
    plane whole (``Y``, ``X`` and RGB samples), so computing one plane reads about
    one plane of the file (tifffile's zarr store, strips or tiles as stored, any
    compression).

    The file stays open as long as the dask array (strictly, its zarr store) is
    alive and is closed when that is garbage-collected: until then the file cannot
    be deleted or replaced on Windows. The array cannot be pickled (so not sent to
    a dask.distributed cluster). Needs dask and zarr (>= 3); ValueError as for
    :func:`read_image`, which also covers a file type other than TIFF;
    NotImplementedError, naming the file, for a layout tifffile's zarr store cannot read.
    """
    if int(chunk_planes) < 1:
        raise ValueError(f"chunk_planes must be at least 1, got {chunk_planes!r}")
    path = _checked_path(path, TIFF_SUFFIXES)
    with _reading(path):
        image = _read_tiff(path, lazy=True, chunk_planes=int(chunk_planes))
    image.path = path
    return image


def tiff_nbytes(path) -> int:
    """Bytes the first image of a TIFF takes uncompressed in memory (pixels are not read)."""
    import tifffile

    path = _checked_path(path, TIFF_SUFFIXES)
    with _reading(path), tifffile.TiffFile(path) as tif:
        series = _first_series(tif)
        return int(np.prod(series.shape, dtype=np.int64)) * series.dtype.itemsize


def _checked_path(path, suffixes) -> Path:
    """``path`` as a Path; ValueError unless it is an existing file with one of ``suffixes``."""
    path = Path(path)
    if not path.name.lower().endswith(suffixes):
        raise ValueError(
            f"cannot read {path}: unsupported file type {path.suffix or '(no extension)'!r} "
            f"(supported: {', '.join(suffixes)})"
        )
    if not path.is_file():
        raise ValueError(f"cannot read {path}: {'it is a folder' if path.is_dir() else 'no such file'}")
    return path


@contextmanager
def _reading(path: Path):
    """Turn what a decoder raises on a bad file into ValueError naming the file."""
    try:
        yield
    except (OSError, ValueError, SyntaxError, IndexError, KeyError, TypeError) as err:
        reason = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ValueError(f"cannot read {path}: {reason}") from None


def _first_series(tif):
    if not tif.series:
        raise ValueError("the TIFF holds no image")
    return tif.series[0]


def _read_tiff(path: Path, lazy: bool = False, chunk_planes: int = 1) -> ImageFile:
    """The first series of a TIFF, read now or (``lazy``) as a dask array over the open file."""
    import tifffile

    tif = tifffile.TiffFile(path)
    try:
        series = _first_series(tif)
        axes = _series_axes(tif, series)
        _check_image_shape(series.shape, axes)
        scale, unit, metadata = _tiff_metadata(tif, series, path)
        array = _tiff_dask(tif, series, axes, path, chunk_planes) if lazy else series.asarray()
        if array.shape != tuple(series.shape):  # tifffile could not reshape the pages as the metadata says
            raise ValueError(f"its pixels come as shape {array.shape}, not the {tuple(series.shape)} ({axes}) "
                             "its metadata says: the file is inconsistent")
    except BaseException:
        tif.close()
        raise
    if not lazy:  # a lazy array closes the file when it is garbage-collected (see _tiff_dask)
        tif.close()
    if "S" in axes and "C" not in axes:
        if metadata["photometric"] == "rgb" and not axes.endswith("S"):  # planar RGB: samples last, like napari
            array, axes = np.moveaxis(array, axes.index("S"), -1), axes.replace("S", "") + "S"
        axes = axes.replace("S", "C")
    return ImageFile(array, axes, scale, unit, metadata)


def _series_axes(tif, series) -> str:
    """One distinct upper-case letter per dimension of ``series`` (tifffile's letters, ``S``
    for colour samples).

    For a file written by ``tifffile.imwrite`` without axes, tifffile guesses them from the
    shape it recorded, and may name several stack axes ``Q`` or, with length-1 axes, put
    ``Y`` and ``X`` on the wrong dimensions (``YXYX``, ``QYXQ``). Its writer puts the page's
    axes (``YX``, ``YXS`` or ``SYX``) last, so those are used, with the axes before them named
    as unknown stacks (..., ``O``, ``P``, ``Q``). Any letter still repeated is renamed the same way.
    """
    axes = series.axes.upper()
    page = series.keyframe.axes.upper()
    shaped = tif.is_shaped and tif.shaped_metadata and "axes" not in tif.shaped_metadata[0]
    if shaped and not tif.is_imagej and not tif.is_ome and len(page) <= len(axes) and set(page) <= set("YXS"):
        axes = "Q" * (len(axes) - len(page)) + page
    return _distinct_letters(axes)


def _distinct_letters(axes: str) -> str:
    """``axes`` with every repeated letter but the last renamed to an unused one (P, O, N...)."""
    spare = [letter for letter in "PONMLKJHGFEDBA" if letter not in axes]
    letters, seen = [], set()
    for letter in reversed(axes):
        letters.append(spare.pop(0) if letter in seen else letter)
        seen.add(letter)
    return "".join(reversed(letters))


def _check_image_shape(shape, axes: str):
    """ValueError unless the image has at least 2 dimensions besides colour samples (``S``), none empty."""
    if 0 in shape:
        raise ValueError(f"the image is empty (shape {tuple(shape)}); every axis needs a size of at least 1")
    dimensions = sum(1 for letter in axes if letter != "S")
    if dimensions < 2:
        raise ValueError(f"the image has {dimensions} dimension{'s' * (dimensions != 1)} (shape {tuple(shape)}); "
                         "an image needs at least 2 (Y and X)")


def _tiff_metadata(tif, series, path: Path) -> tuple[dict, str | None, dict]:
    """Scale, unit and metadata; reads no pixels.

    A calibration comes from ImageJ's ``unit`` (with the resolution tags, ``spacing`` and
    ``finterval``), OME's PhysicalSize, tifffile's own JSON ``scale``, or resolution tags in
    a metric unit (microscope software). Resolution in inches or without a unit is what
    image editors write when nothing is known (72 dpi...): not a pixel size. A value that
    is not a positive finite number is left out with a warning naming ``path`` and the field.
    """
    page = series.keyframe
    photometric = getattr(page.photometric, "name", str(page.photometric)).lower()
    metadata = {"photometric": photometric}
    per_unit, resolution_unit = _tag_resolution(page)
    if resolution_unit == "inch" and per_unit and all(0 < n < math.inf for n in per_unit.values()):
        metadata["dpi"] = tuple(per_unit.values())
    scale, unit = {}, None
    if resolution_unit in _MICRONS_PER_UNIT:  # microscope software: metric tags, in micrometres
        scale, unit = _resolution_scale(per_unit, _MICRONS_PER_UNIT[resolution_unit], path), "micron"
    explicit = False  # a scale we wrote ourselves is kept as it is
    if tif.is_imagej:
        ij = dict(tif.imagej_metadata or {})
        metadata.update({k: v for k, v in ij.items() if k not in ("ImageJ", "images", "hyperstack")})
        ij_unit = _from_imagej_unit(ij.get("unit"))
        if ij_unit:  # ImageJ's pixel size is 1/resolution in its own unit, whatever ResolutionUnit says
            scale, unit = _resolution_scale(per_unit, 1.0, path), ij_unit
        for key, axis in (("spacing", "Z"), ("finterval", "T")):
            size = _positive(ij[key], path, key) if key in ij else None
            if size is not None:
                scale[axis] = size
    elif tif.is_ome:
        ome_scale, ome_unit = _ome_scale(tif.ome_metadata, path)
        scale.update(ome_scale)
        unit = ome_unit or unit
    elif tif.is_shaped and tif.shaped_metadata:
        shaped = tif.shaped_metadata[0]
        if isinstance(shaped.get("scale"), dict):
            sizes = {str(k).upper(): _positive(v, path, f"scale[{k!r}]") for k, v in shaped["scale"].items()}
            scale, explicit = {k: v for k, v in sizes.items() if v is not None}, True
        unit = shaped.get("unit", unit)
    description = page.description
    if description and not description.lstrip().startswith(("{", "ImageJ=", "<")):
        metadata["description"] = description
    if unit is None and not explicit:  # an uncalibrated file: tifffile and ImageJ write 1 pixel per unit
        scale = {k: v for k, v in scale.items() if v != 1.0}
    return scale, unit, metadata


def _tiff_dask(tif, series, axes: str, path: Path, chunk_planes: int):
    """A dask array over tifffile's zarr store of ``series``: whole planes, ``chunk_planes`` per chunk.

    The store keeps ``tif`` (and its file handle) alive; a finalizer closes the file
    once the store, and so every dask array built on it, is garbage-collected.
    tifffile's store locks the file handle, so dask may read chunks from threads.
    """
    import dask.array as da
    import zarr
    from dask.base import tokenize

    store = series.aszarr(level=0)  # level 0: an array, also for pyramidal OME-TIFF
    weakref.finalize(store, tif.close)
    stored = zarr.open(store, mode="r")
    if tuple(stored.shape) != tuple(series.shape):
        raise ValueError(f"tifffile's zarr view has shape {stored.shape}, not {series.shape}")
    if any(chunk > side for chunk, side in zip(stored.chunks, stored.shape)):  # stacks of 1x1-pixel planes
        raise NotImplementedError(f"cannot open {path} lazily: tifffile's zarr store maps its pages wrongly "
                                  f"(chunks {tuple(stored.chunks)} for shape {tuple(stored.shape)}); use read_image")
    stack = [i for i, letter in enumerate(axes) if letter not in "YXS"]
    chunks = [1 if i in stack else -1 for i in range(len(axes))]
    if stack:
        chunks[stack[-1]] = chunk_planes  # dask clips it to the axis length
    stat = path.stat()  # the name identifies this file's content for dask's (and napari's) cache
    name = "tiff-" + tokenize(str(path.resolve()), stat.st_mtime_ns, stat.st_size, tuple(chunks))
    return da.from_zarr(stored, chunks=tuple(chunks), name=name)


def _tag_resolution(page) -> tuple[dict, str | None]:
    """Pixels per unit from the X/YResolution tags, and ResolutionUnit's name (None: no unit)."""
    per_unit = {}
    for axis, tag in (("X", "XResolution"), ("Y", "YResolution")):
        value = page.tags.get(tag)
        if value is not None:
            num, den = value.value
            per_unit[axis] = num / den if den else math.inf
    return per_unit, _RESOLUTION_UNITS.get(int(page.resolutionunit or 1))


def _resolution_scale(per_unit: dict, unit_size: float, path: Path) -> dict:
    """Pixel sizes ``unit_size / resolution``, leaving out (with a warning) an unusable resolution."""
    scale = {}
    for axis, n in per_unit.items():
        if _positive(n, path, f"{axis}Resolution") is not None:
            scale[axis] = _rounded(unit_size / n)
    return scale


def _rounded(value: float) -> float:
    """``value`` to 10 significant digits: 1 / (1 / 0.1) is 0.1 again."""
    return float(f"{value:.10g}")


def _positive(value, path: Path, field: str) -> float | None:
    """``value`` as a positive finite number; else None, with a warning naming the file and the field."""
    try:
        number = float(value)
    except (TypeError, ValueError, OverflowError):
        number = math.nan
    if 0 < number < math.inf:
        return number
    warnings.warn(f"ignored {field}={value!r} in {path}: not a positive finite number, "
                  "so that axis gets scale 1", stacklevel=2)
    return None


def _ome_scale(xml: str, path: Path) -> tuple[dict, str | None]:
    """Pixel sizes (PhysicalSizeX/Y/Z), frame interval (TimeIncrement) and length unit of OME-XML."""
    try:
        root = ElementTree.fromstring(xml)
    except ElementTree.ParseError as err:  # tifffile still reads the pixels; so do we
        warnings.warn(f"ignored the OME-XML of {path}: {err}, so it has no scale", stacklevel=2)
        return {}, None
    pixels = next((e for e in root.iter() if e.tag.split("}")[-1] == "Pixels"), None)
    scale, unit = {}, None
    if pixels is None:
        return scale, unit
    for axis, key in (("X", "PhysicalSizeX"), ("Y", "PhysicalSizeY"), ("Z", "PhysicalSizeZ"), ("T", "TimeIncrement")):
        size = _positive(pixels.get(key), path, key) if pixels.get(key) is not None else None
        if size is not None:
            scale[axis] = size
            if axis != "T":
                unit = unit or pixels.get(f"{key}Unit", "µm")
    return scale, unit


def _from_imagej_unit(unit) -> str | None:
    if not unit or str(unit).lower() in ("pixel", "pixels"):
        return None
    return str(unit).replace("\\u00B5", "µ").replace("\\u00b5", "µ")


def _read_pillow(path: Path) -> ImageFile:
    from PIL import Image, ImageOps

    with Image.open(path) as opened:
        opened.load()
        metadata = {"format": opened.format, "pil_mode": opened.mode}
        if "dpi" in opened.info:
            metadata["dpi"] = tuple(float(v) for v in opened.info["dpi"])
        im = ImageOps.exif_transpose(opened)
    mode = im.mode
    if mode in ("P", "PA"):
        im = im.convert("RGBA" if mode == "PA" or "transparency" in im.info else "RGB")
    elif mode in ("LA", "La", "RGBa"):
        im = im.convert("RGBA")
    elif mode == "1":
        im = im.convert("L")
    elif mode not in ("L", "RGB", "RGBA", "I", "F") and not mode.startswith("I;16"):
        im = im.convert("RGB")  # CMYK, YCbCr, LAB, HSV, RGBX
    array = np.asarray(im)
    if mode.startswith("I;16"):
        array = array.astype(np.uint16)
    elif array.dtype == np.int32 and array.size and array.min() >= 0 and array.max() <= 65535:
        array = array.astype(np.uint16)  # 16-bit grayscale PNG opened as 32-bit by Pillow
    return ImageFile(np.ascontiguousarray(array), "YXC" if array.ndim == 3 else "YX", {}, None, metadata)


def write_image(path, array, axes, *, scale=None, unit=None, metadata=None, source=None, overwrite=False) -> Path:
    """Write ``array`` (dimensions named by ``axes``) as a TIFF; returns the path.

    ``scale``, ``unit`` and ``metadata`` default to those of ``source`` (an
    :class:`ImageFile`). An existing file is replaced only with ``overwrite=True``
    (else FileExistsError); the file appears complete or not at all. A failed write
    raises :class:`~napari_deblur.output_safety.OutputError` (an OSError) naming the
    file and the reason: ``disk full``, ``read-only file system``, ``permission denied``...
    """
    import secrets

    import tifffile

    from .output_safety import output_error

    path, array = Path(path), np.asarray(array)
    if not path.name.lower().endswith(TIFF_SUFFIXES):
        raise ValueError(f"cannot write {path}: only TIFF output (.tif, .tiff) is supported")
    axes = _check_axes(axes, array.shape)
    if source is not None:
        scale = source.scale if scale is None else scale
        unit = source.unit if unit is None else unit
        metadata = source.metadata if metadata is None else metadata
    scale = {str(k).upper(): float(v) for k, v in (scale or {}).items()}
    metadata = dict(metadata or {})
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists (pass overwrite=True to replace it)")
    if path.is_dir():
        raise IsADirectoryError(f"cannot write {path}: a folder of that name exists")

    rgb = axes.endswith("C") and array.shape[-1] in (3, 4) and metadata.get("photometric", "rgb") == "rgb"
    tiff_axes = axes[:-1] + "S" if rgb else axes
    kwargs = {"photometric": "rgb" if rgb else "minisblack"}
    sx, sy = scale.get("X", scale.get("Y")), scale.get("Y", scale.get("X"))
    if sx and sy:
        kwargs["resolution"] = (1.0 / sx, 1.0 / sy)
    if _imagej_ok(array, axes, tiff_axes, rgb):
        ij = {k: v for k, v in metadata.items() if k not in _NOT_FORWARDED and _imagej_value(k, v)}
        ij["axes"] = tiff_axes
        if unit:
            ij["unit"] = str(unit).replace("µ", "\\u00B5")
        if "Z" in scale:
            ij["spacing"] = scale["Z"]
        if "T" in scale:
            ij["finterval"] = scale["T"]
        kwargs.update(imagej=True, metadata=ij)
    else:
        shaped = {"axes": axes}
        if scale:
            shaped["scale"] = scale
        if unit:
            shaped["unit"] = str(unit)
        factor = _LENGTH_TO_CM.get(str(unit).lower()) if unit else None
        if "resolution" in kwargs and (factor or str(unit).lower() == "inch"):
            kwargs["resolutionunit"] = "centimeter" if factor else "inch"
            kwargs["resolution"] = tuple(r / (factor or 1.0) for r in kwargs["resolution"])
        description = metadata.get("description")
        if isinstance(description, str) and description.isascii():
            kwargs["description"] = description
        kwargs.update(metadata=shaped, bigtiff=array.nbytes > _BIG)

    # written under a new hidden name beside the file, then renamed: never a half file, and
    # never a clash with a file of the user's; a failure says which file and why (disk full...)
    partial = path.with_name(f".{path.name}.{secrets.token_hex(4)}.part")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(partial, "xb") as handle:
            tifffile.imwrite(handle, array, **kwargs)
        os.replace(partial, path)
    except OSError as err:
        raise output_error(path, err) from None
    finally:
        try:
            partial.unlink(missing_ok=True)
        except OSError:
            pass  # the write's own error says more
    return path


def _check_axes(axes, shape) -> str:
    if not isinstance(axes, str):
        raise TypeError(f"axes must be a string such as 'YX' or 'TZCYX', got {type(axes).__name__}")
    axes = axes.upper()
    if len(axes) != len(shape) or not axes.isalpha() or len(set(axes)) != len(axes):
        raise ValueError(f"axes {axes!r} must be {len(shape)} distinct letters for an array of shape {tuple(shape)}")
    return axes


def _imagej_ok(array, axes, tiff_axes, rgb) -> bool:
    """ImageJ holds uint8/uint16/float32 in TZCYXS order, RGB as 3 uint8 samples, and no length-1
    axes (it would drop them, so the round trip would change the shape)."""
    it = iter("TZCYXS")
    in_order = all(letter in it for letter in tiff_axes)
    singleton = any(n == 1 for a, n in zip(axes, array.shape) if a not in "YX")
    rgb_ok = not rgb or (array.dtype == np.uint8 and array.shape[-1] == 3)
    return array.dtype in _IMAGEJ_DTYPES and in_order and rgb_ok and not singleton and array.nbytes < _BIG


def _imagej_value(key, value) -> bool:
    if key in _IMAGEJ_TAGS:
        return True
    if isinstance(value, str):
        return str(key).isidentifier() and "\n" not in value and value.isascii()
    return isinstance(value, (bool, int, float)) and str(key).isidentifier()
