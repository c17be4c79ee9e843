"""Reading images with their axes and pixel sizes, in memory or lazily. numpy, tifffile and Pillow only.

:func:`read_image` reads a TIFF (ImageJ, OME, tifffile or plain), PNG, JPEG or BMP into an
:class:`ImageFile`; :func:`read_image_lazy` opens a TIFF the same way without reading its
pixels (a dask array over tifffile's zarr store, one plane per chunk, for files larger than
memory; it needs dask and zarr, imported only then); :func:`tiff_nbytes` tells how large a
TIFF's image is in memory from the header alone. The axes, scale and metadata of a TIFF
are :mod:`.tiff_metadata`'s.
"""

import weakref
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .tiff_metadata import check_image_shape, series_axes, tiff_metadata

TIFF_SUFFIXES = (".tif", ".tiff")
PILLOW_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp")
READ_SUFFIXES = TIFF_SUFFIXES + PILLOW_SUFFIXES


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
    """The first series of an open TIFF; ValueError when it has none."""
    if not tif.series:
        raise ValueError("the TIFF holds no image")
    return tif.series[0]


def _read_tiff(path: Path, lazy: bool = False, chunk_planes: int = 1) -> ImageFile:
    """The first series of a TIFF, read now or (``lazy``) as a dask array over the open file."""
    import tifffile

    tif = tifffile.TiffFile(path)
    try:
        series = _first_series(tif)
        axes = series_axes(tif, series)
        check_image_shape(series.shape, axes)
        scale, unit, metadata = tiff_metadata(tif, series, path)
        array = _tiff_dask(tif, series, axes, path, chunk_planes) if lazy else series.asarray()
        if array.shape != tuple(series.shape):  # tifffile could not reshape the pages as the metadata says
            raise ValueError(
                f"its pixels come as shape {array.shape}, not the {tuple(series.shape)} ({axes}) "
                "its metadata says: the file is inconsistent"
            )
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
        raise NotImplementedError(
            f"cannot open {path} lazily: tifffile's zarr store maps its pages wrongly "
            f"(chunks {tuple(stored.chunks)} for shape {tuple(stored.shape)}); use read_image"
        )
    stack = [i for i, letter in enumerate(axes) if letter not in "YXS"]
    chunks = [1 if i in stack else -1 for i in range(len(axes))]
    if stack:
        chunks[stack[-1]] = chunk_planes  # dask clips it to the axis length
    stat = path.stat()  # the name identifies this file's content for dask's (and napari's) cache
    name = "tiff-" + tokenize(str(path.resolve()), stat.st_mtime_ns, stat.st_size, tuple(chunks))
    return da.from_zarr(stored, chunks=tuple(chunks), name=name)


def _read_pillow(path: Path) -> ImageFile:
    """A PNG, JPEG or BMP as ``YX`` or ``YXC``, turned as its EXIF orientation says; palette,
    1-bit and other modes converted to L, RGB or RGBA, 16-bit grayscale as uint16."""
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
