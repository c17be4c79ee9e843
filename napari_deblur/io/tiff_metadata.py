"""What a TIFF says about its image besides the pixels: axes, pixel sizes, unit and metadata.

:func:`series_axes` names the dimensions of a tifffile series with distinct letters,
:func:`check_image_shape` refuses what is not an image, and :func:`tiff_metadata` reads
the calibration and the metadata worth carrying over. A calibration is ImageJ's ``unit``
(with the resolution tags, ``spacing`` and ``finterval``), OME's PhysicalSize, tifffile's
JSON ``scale`` or resolution tags in a metric unit; resolution in inches or without a unit
(image editors write 72 dpi when nothing is known) is not a pixel size, and its dots per
inch stay in ``metadata["dpi"]``. Nothing here reads pixels.
"""

import math
import warnings
from pathlib import Path
from xml.etree import ElementTree

_RESOLUTION_UNITS = {2: "inch", 3: "cm", 4: "mm", 5: "micron"}  # TIFF ResolutionUnit; 1 is none
_MICRONS_PER_UNIT = {"cm": 1e4, "mm": 1e3, "micron": 1.0}


def series_axes(tif, series) -> str:
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


def check_image_shape(shape, axes: str):
    """ValueError unless the image has at least 2 dimensions besides colour samples (``S``), none empty."""
    if 0 in shape:
        raise ValueError(f"the image is empty (shape {tuple(shape)}); every axis needs a size of at least 1")
    dimensions = sum(1 for letter in axes if letter != "S")
    if dimensions < 2:
        raise ValueError(
            f"the image has {dimensions} dimension{'s' * (dimensions != 1)} (shape {tuple(shape)}); "
            "an image needs at least 2 (Y and X)"
        )


def tiff_metadata(tif, series, path: Path) -> tuple[dict, str | None, dict]:
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
    warnings.warn(
        f"ignored {field}={value!r} in {path}: not a positive finite number, so that axis gets scale 1", stacklevel=2
    )
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
    """ImageJ's length unit with its escaped micro sign restored; None for no unit or "pixel"."""
    if not unit or str(unit).lower() in ("pixel", "pixels"):
        return None
    return str(unit).replace("\\u00B5", "µ").replace("\\u00b5", "µ")
