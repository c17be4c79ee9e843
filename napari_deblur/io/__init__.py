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

The modules: :mod:`.reading` (:func:`read_image`, :func:`read_image_lazy`,
:func:`tiff_nbytes`), :mod:`.tiff_metadata` (a TIFF's axes, scale, unit and metadata)
and :mod:`.writing` (:func:`write_image`). Import the names below from
``napari_deblur.io``.
"""

from .reading import (
    PILLOW_SUFFIXES,
    READ_SUFFIXES,
    TIFF_SUFFIXES,
    ImageFile,
    read_image,
    read_image_lazy,
    tiff_nbytes,
)
from .writing import write_image

__all__ = [
    "PILLOW_SUFFIXES",
    "READ_SUFFIXES",
    "TIFF_SUFFIXES",
    "ImageFile",
    "read_image",
    "read_image_lazy",
    "tiff_nbytes",
    "write_image",
]
