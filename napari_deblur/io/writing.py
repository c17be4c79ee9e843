"""Writing an image as a TIFF that :func:`~napari_deblur.io.read_image` reads back the same.

When ImageJ can hold the array (uint8, uint16 or float32; axes in ImageJ order ``TZCYX``;
RGB only as uint8 ``YXC``) :func:`write_image` writes an ImageJ hyperstack, which
ImageJ/Fiji and napari open with their calibration. Otherwise it writes a plain TIFF whose
axes, scale and unit are kept in tifffile's JSON description.
"""

import os
from pathlib import Path

import numpy as np

from .reading import TIFF_SUFFIXES

_IMAGEJ_DTYPES = (np.uint8, np.uint16, np.float32)
_IMAGEJ_TAGS = {"Info", "Labels", "LUTs", "Plot", "ROI", "Overlays", "Properties"}
# ImageJ keys that are rebuilt from the array, the scale and the unit, and our own keys.
# The display range (min/max, per-channel Ranges) describes the source's intensities: a
# deblurred result's peaks are higher, and Fiji would show it clipped at the old maximum.
# Without it, ImageJ scales the display to the written array.
_NOT_FORWARDED = {
    "min",
    "max",
    "Ranges",
    "ImageJ",
    "images",
    "channels",
    "slices",
    "frames",
    "hyperstack",
    "axes",
    "shape",
    "spacing",
    "unit",
    "finterval",
    "description",
    "photometric",
    "format",
    "dpi",
    "pil_mode",
}
_LENGTH_TO_CM = {
    "cm": 1.0,
    "centimeter": 1.0,
    "mm": 0.1,
    "millimeter": 0.1,
    "micron": 1e-4,
    "um": 1e-4,
    "µm": 1e-4,
    "micrometer": 1e-4,
    "nm": 1e-7,
    "nanometer": 1e-7,
}
_BIG = 2**32 - 2**25  # beyond this a classic TIFF cannot hold the data


def write_image(path, array, axes, *, scale=None, unit=None, metadata=None, source=None, overwrite=False) -> Path:
    """Write ``array`` (dimensions named by ``axes``) as a TIFF; returns the path.

    ``scale``, ``unit`` and ``metadata`` default to those of ``source`` (an
    :class:`~napari_deblur.io.ImageFile`); ImageJ's display range (``min``, ``max``,
    ``Ranges``) is not forwarded, so Fiji scales the display to ``array``. An existing file is replaced only with
    ``overwrite=True`` (else FileExistsError); the file appears complete or not at all. A
    failed write raises :class:`~napari_deblur.output_safety.OutputError` (an OSError) naming
    the file and the reason: ``disk full``, ``read-only file system``, ``permission denied``...
    """
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
    _write_whole(path, array, _tiff_kwargs(array, axes, scale, unit, metadata))
    return path


def _tiff_kwargs(array: np.ndarray, axes: str, scale: dict, unit, metadata: dict) -> dict:
    """``tifffile.imwrite`` keyword arguments: an ImageJ hyperstack where ImageJ can hold the
    array, else a plain TIFF with axes, scale and unit in tifffile's JSON description."""
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
        return kwargs
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
    return kwargs


def _write_whole(path: Path, array: np.ndarray, kwargs: dict) -> None:
    """Write the TIFF under a new hidden name beside ``path``, then rename it: never a half
    file, and never a clash with a file of the user's. A failure raises
    :class:`~napari_deblur.output_safety.OutputError` saying which file and why (disk full...)."""
    import secrets

    import tifffile

    from ..output_safety import output_error

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


def _check_axes(axes, shape) -> str:
    """``axes`` in upper case; TypeError unless a string, ValueError unless one distinct letter per dimension."""
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
    """Whether an ImageJ metadata entry can be written: ImageJ's own tags, or a one-line ASCII
    string or a number under an identifier key."""
    if key in _IMAGEJ_TAGS:
        return True
    if isinstance(value, str):
        return str(key).isidentifier() and "\n" not in value and value.isascii()
    return isinstance(value, (bool, int, float)) and str(key).isidentifier()
