"""napari reader for TIFF files: channels, pixel sizes, axis labels and units.

Reads with :func:`napari_deblur.io.read_image` (ImageJ hyperstacks, OME-TIFF, tifffile's
own JSON description, plain TIFF). A file whose image takes more than :func:`lazy_threshold`
bytes uncompressed (a quarter of the memory available when this module was first imported,
or ``$NAPARI_DEBLUR_LAZY_BYTES``; ``0`` opens every file lazily) is opened with
:func:`napari_deblur.io.read_image_lazy` instead: a dask array, one plane per chunk, that
napari reads plane by plane as they are shown (the file stays open while the layer lives).
The size comes from the TIFF header, so deciding reads no pixels. What napari gets:

- microscopy channels (a ``C`` axis that is not RGB) are split with ``channel_axis``, one
  layer per channel, named ``<file> [c<i>]`` like ``<file>`` when there is one channel;
- RGB(A) (the channel axis last, 3 or 4 samples, photometric RGB) stays one ``rgb=True`` layer;
- ``scale`` holds the pixel size of every non-channel axis, Z spacing and frame interval
  included (1 where the file says nothing, or nothing usable: a print resolution in dots
  per inch is no pixel size, and a zero, negative, NaN or non-numeric size is ignored with
  a warning naming the file and the field), ``axis_labels`` the file's axis letters and
  ``units`` the length unit for X, Y and Z, seconds (or ImageJ's ``tunit``) for T, and
  ``pixel`` where nothing is known;
- ``metadata`` keeps ``path``, ``axes`` (the file's axes string, ``C`` included),
  ``lazy`` (True for a dask layer read from the file on demand) and the rest of what the
  file said under ``file_metadata``.

A file napari could not show (an axis of size 0, fewer than 2 dimensions besides colour
samples) or cannot decode raises ValueError, one line naming the file and the reason, which
napari passes on to the user (returning None would hand the file to another reader).

PNG and JPEG are left to napari's builtin reader, which opens them well (RGB as RGB).
No torch here: napari may import this module at start-up.
"""

import os
import warnings
from pathlib import Path

from ..io import TIFF_SUFFIXES, read_image, read_image_lazy, tiff_nbytes

_LENGTH_AXES = "XYZ"
LAZY_ENV = "NAPARI_DEBLUR_LAZY_BYTES"


def _default_lazy_bytes() -> int:
    """A quarter of the memory available now; 2 GiB where psutil cannot tell."""
    try:
        import psutil

        return int(psutil.virtual_memory().available) // 4
    except Exception:  # psutil missing, or unsupported on this platform  # noqa: BLE001
        return 2 << 30


LAZY_BYTES = _default_lazy_bytes()  # bytes: larger images open lazily (see lazy_threshold)


def get_reader(path):
    """The reader function for a TIFF path (or a list of TIFF paths), else None."""
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path or [])
    if not paths or not all(str(p).lower().endswith(TIFF_SUFFIXES) for p in paths):
        return None
    return read_tiffs


def read_tiffs(path) -> list:
    """Layer data tuples ``(data, kwargs, 'image')`` for one path or a list of paths."""
    paths = [path] if isinstance(path, (str, os.PathLike)) else list(path)
    threshold = lazy_threshold()
    layers = []
    for one in paths:
        layers.extend(layer_data(read_tiff(one, threshold)))
    return layers


def lazy_threshold(environ=None, default: int | None = None) -> int:
    """Bytes above which a TIFF opens lazily: ``$NAPARI_DEBLUR_LAZY_BYTES`` if it is a whole
    number of bytes (``0``: always lazy), else ``default`` (:data:`LAZY_BYTES`).

    ``environ`` defaults to ``os.environ``; a value that is not a byte count is ignored with
    a warning (a reader must not fail on it).
    """
    environ = os.environ if environ is None else environ
    default = LAZY_BYTES if default is None else int(default)
    text = str(environ.get(LAZY_ENV, "")).strip()
    if not text:
        return default
    try:
        value = int(text)
    except ValueError:
        value = -1
    if value < 0:
        warnings.warn(f"{LAZY_ENV}={text!r} is not a byte count; using {default}", stacklevel=2)
        return default
    return value


def opens_lazily(nbytes: int, threshold: int) -> bool:
    """Whether an image of ``nbytes`` (uncompressed) is opened lazily for ``threshold``."""
    return threshold <= 0 or nbytes > threshold


def read_tiff(path, threshold: int | None = None):
    """An :class:`~napari_deblur.io.ImageFile`: in memory, or lazy when larger than ``threshold``
    (default :func:`lazy_threshold`). Without dask or zarr, or for a layout tifffile's zarr
    store does not support, it is read into memory, with a warning; without dask or zarr
    and larger than the memory available, :class:`~napari_deblur.extras.MissingExtraError`
    says what to install."""
    from .. import extras

    threshold = lazy_threshold() if threshold is None else threshold
    nbytes = tiff_nbytes(path)
    if opens_lazily(nbytes, threshold):
        try:
            return read_image_lazy(path)
        except (ImportError, NotImplementedError) as err:
            available = extras.memory_available()
            if isinstance(err, ImportError) and available is not None and nbytes > available:
                extras.require(["dask.array", "zarr"], f"{path} is larger than the memory available; opening it lazily")
            warnings.warn(f"reading {path} into memory: cannot open it lazily ({err})", stacklevel=2)
    return read_image(path)


def _unit(text) -> str | None:
    """``text`` if pint (napari's unit library) understands it, else None."""
    if not text:
        return None
    text = str(text).strip().replace("\\u00B5", "µ").replace("\\u00b5", "µ")
    if text.lower() in ("pixel", "pixels", "px"):
        return None
    try:
        import pint

        pint.get_application_registry().Unit(text)
    except Exception:  # pint raises several types for an unknown name  # noqa: BLE001
        return None
    return text


def is_rgb(image) -> bool:
    """RGB(A) samples last, as napari draws them (not microscopy channels)."""
    axes, shape = image.axes, image.array.shape
    photometric = str(image.metadata.get("photometric", "")).lower()
    return axes.endswith("C") and shape[-1] in (3, 4) and photometric in ("rgb", "ycbcr", "")


def layer_kwargs(image) -> tuple[dict, int | None]:
    """napari keyword arguments for an :class:`~napari_deblur.io.ImageFile`, and the channel axis."""
    axes = image.axes
    rgb = is_rgb(image)
    channel_axis = None if rgb or "C" not in axes else axes.index("C")
    spatial = axes[:-1] if rgb else axes.replace("C", "")
    length_unit = _unit(image.unit)
    time_unit = _unit(image.metadata.get("tunit")) or "s"
    units = []
    for letter in spatial:
        if letter in _LENGTH_AXES and letter in image.scale and length_unit:
            units.append(length_unit)
        elif letter == "T" and "T" in image.scale:
            units.append(time_unit)
        else:
            units.append("pixel")
    path = Path(image.path) if image.path is not None else None
    metadata = {
        "path": str(path) if path else None,
        "axes": axes,
        "lazy": type(image.array).__module__.startswith("dask."),
        "file_metadata": {k: v for k, v in image.metadata.items() if k != "axes"},
    }
    kwargs = {
        "name": path.stem if path else "image",
        "scale": tuple(float(image.scale.get(letter, 1.0)) for letter in spatial),
        "axis_labels": tuple(spatial),
        "units": tuple(units),
        "metadata": metadata,
    }
    if rgb:
        kwargs["rgb"] = True
    return kwargs, channel_axis


def layer_data(image) -> list:
    """One layer data tuple; microscopy channels use ``channel_axis`` (napari splits them)."""
    kwargs, channel_axis = layer_kwargs(image)
    if channel_axis is None:
        return [(image.array, kwargs, "image")]
    n = image.array.shape[channel_axis]
    per_channel = {key: [kwargs[key]] * n for key in ("scale", "axis_labels", "units")}
    per_channel["metadata"] = [{**kwargs["metadata"], "channel": i} for i in range(n)]
    per_channel["name"] = [f"{kwargs['name']} [c{i}]" for i in range(n)] if n > 1 else [kwargs["name"]]
    return [(image.array, {**kwargs, **per_channel, "channel_axis": channel_axis}, "image")]
