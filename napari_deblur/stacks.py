"""Opening data larger than memory as a lazy stack: a zarr store, a folder of TIFFs or one TIFF.

:func:`open_stack` opens the input lazily as a dask array with its axes and pixel size:

- a zarr array, or a zarr group holding one (an OME-NGFF image: its first resolution
  level, axes from ``multiscales``); axes from the ``axes`` attribute that
  :mod:`napari_deblur.streaming` writes, from NGFF, or given by the caller;
- a folder of TIFFs (a time-lapse saved one file per time point, say): the files,
  in natural order (``t2`` before ``t10``), stacked along a new leading axis ``T``
  (``--axes`` can name it otherwise); every file must have the first file's shape,
  dtype and axes;
- one TIFF, opened without reading its pixels (:func:`napari_deblur.io.read_image_lazy`).

:func:`required_packages` names the optional packages a streaming run needs, so that a
missing one is reported before anything is read.

numpy, dask, zarr and tifffile.
"""

import re
from dataclasses import dataclass, field
from pathlib import Path

from .extras import require
from .io import TIFF_SUFFIXES, read_image

ZARR_SUFFIX = ".zarr"
NGFF_AXES = {"time": "T", "channel": "C", "space": None}


@dataclass
class Stack:
    """A lazily opened input: dask ``array`` with ``axes``; ``files`` for a folder of TIFFs."""

    array: object
    axes: str
    scale: dict = field(default_factory=dict)
    unit: str | None = None
    kind: str = "zarr"  # "zarr", "tiff-folder" or "tiff"
    files: list = field(default_factory=list)


def is_zarr(path: Path) -> bool:
    path = Path(path)
    markers = (".zarray", ".zgroup", "zarr.json")
    return path.name.lower().endswith(ZARR_SUFFIX) or (path.is_dir() and any((path / m).exists() for m in markers))


def natural_key(path: Path):
    """Sort key that puts ``t2.tif`` before ``t10.tif``."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def tiff_files(folder: Path) -> list[Path]:
    files = sorted(
        (p for p in Path(folder).iterdir() if p.is_file() and p.name.lower().endswith(TIFF_SUFFIXES)), key=natural_key
    )
    if not files:
        raise ValueError(f"{folder} holds no TIFF files (.tif, .tiff)")
    return files


def open_stack(path, axes: str | None = None) -> Stack:
    """The input at ``path`` as a lazy :class:`Stack` (see the module docstring)."""
    path = Path(path)
    if not path.exists():
        raise ValueError(f"cannot read {path}: no such file or folder")
    require(required_packages(path), f"streaming {path}")
    if is_zarr(path):
        return _open_zarr(path, axes)
    if path.is_dir():
        return _open_tiff_folder(path, axes)
    if path.name.lower().endswith(TIFF_SUFFIXES):
        from .io import read_image_lazy

        image = read_image_lazy(path)
        return Stack(
            image.array,
            _checked_axes(axes or image.axes, image.array.shape, path),
            image.scale,
            image.unit,
            "tiff",
            [path],
        )
    raise ValueError(f"cannot stream {path}: expected a .zarr store, a folder of TIFFs or a TIFF file")


def required_packages(source, fmt: str | None = None, scheduler=None) -> list[str]:
    """Import names that streaming ``source`` needs: dask.array always; zarr for a zarr store
    in or out and for a single TIFF (read through tifffile's zarr view); distributed for a
    ``scheduler``. A folder of TIFFs written as TIFFs needs no zarr."""
    source = Path(source)
    modules = ["dask.array"]
    if is_zarr(source) or fmt == "zarr" or not source.is_dir():
        modules.append("zarr")
    if scheduler is not None:
        modules.append("distributed")
    return modules


def _checked_axes(axes, shape, path) -> str:
    from .engine.axes import normalize_axes

    try:
        return normalize_axes(axes, shape)
    except ValueError as err:
        raise ValueError(f"{path}: {err}") from None


def _open_zarr(path: Path, axes):
    import dask.array as da
    import zarr

    node = zarr.open(str(path), mode="r")
    attrs = dict(node.attrs)
    scale, unit = dict(attrs.get("scale", {})), attrs.get("unit")
    if isinstance(node, zarr.Group):
        multiscales = attrs.get("multiscales") or attrs.get("ome", {}).get("multiscales")
        if not multiscales:
            raise ValueError(f"{path} is a zarr group without an OME-NGFF image; pass the array inside it")
        image = multiscales[0]
        level = image["datasets"][0]
        node = node[level["path"]]
        names = [a["name"] if isinstance(a, dict) else a for a in image.get("axes", [])]
        if axes is None and names:
            axes = "".join(n.upper() if len(n) == 1 else NGFF_AXES.get(n, n[:1].upper()) for n in names)
        for transform in level.get("coordinateTransformations", []):
            if transform.get("type") == "scale" and names:
                scale = {n.upper(): float(v) for n, v in zip(names, transform["scale"]) if n.lower() in "xyzt"}
        unit = next(
            (a.get("unit") for a in image.get("axes", []) if isinstance(a, dict) and a.get("name") == "x"), unit
        )
    axes = axes or node.attrs.get("axes")
    array = da.from_zarr(node)
    return Stack(array, _checked_axes(axes, array.shape, path), scale, unit, "zarr")


def _open_tiff_folder(folder: Path, axes):
    import dask
    import dask.array as da

    files = tiff_files(folder)
    first = read_image(files[0])
    shape, dtype = first.array.shape, first.array.dtype

    def read_one(path):
        image = read_image(path)
        if image.array.shape != shape or image.array.dtype != dtype:
            raise ValueError(
                f"{path} has shape {image.array.shape} {image.array.dtype}, but {files[0].name} "
                f"has {shape} {dtype}: a folder is one stack of equal files"
            )
        return image.array

    planes = [da.from_delayed(dask.delayed(read_one, pure=True)(p), shape, dtype=dtype) for p in files]
    array = da.stack(planes)
    axes = axes or ("T" if "T" not in first.axes else "Q") + first.axes
    return Stack(array, _checked_axes(axes, array.shape, folder), first.scale, first.unit, "tiff-folder", files)
