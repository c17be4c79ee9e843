"""Streaming XYDeblur for data larger than memory: zarr or a folder of TIFFs in and out.

The input is opened lazily by :func:`napari_deblur.stacks.open_stack` (a zarr store, an
OME-NGFF image, a folder of TIFFs or one TIFF). :func:`stream_xydeblur` restores it with
:func:`napari_deblur.lazy.xydeblur_lazy` (one intensity scaling for the whole stack, one
plane per task) and stores the result chunk by chunk into a zarr array or a folder of TIFFs,
so only a few planes are in memory at any time, whatever the size of the input. With
``scheduler=`` the address of a ``dask.distributed`` scheduler, the work runs on that cluster
(input and output must then be paths every worker can reach, and a single-TIFF input is not
supported).

What is written, and what is never touched (:mod:`napari_deblur.output_safety`):

- an output that is the input, lies inside it or would contain it is refused, before
  anything is read (resolved paths: symbolic links count as what they point to);
- the result is written into a new, uniquely named hidden folder beside the output
  (``.<name>.<random>.partial``) and moved into place only when complete: an
  interrupted or failed run removes that folder and leaves any previous output as it was;
- an existing output needs ``overwrite``. A folder of TIFFs then gets this run's files
  moved into it, one by one (``os.replace``); every other file there stays. A zarr
  store is replaced only if this software wrote it (its attributes carry
  ``napari_deblur``); any other store, or a file where the folder goes, is refused;
- the destination is checked to be writable before any computation, and a failed
  write names the file and the reason (disk full, read-only, permission denied).

numpy, dask, zarr and tifffile; torch only through the engine.
"""

import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from .extras import require
from .io import write_image
from .output_safety import check_apart, check_writable, output_error
from .stacks import ZARR_SUFFIX, Stack, is_zarr, open_stack, required_packages


class TiffFolderTarget:
    """A ``dask.array.store`` target that writes one TIFF per index of the leading axis.

    Each stored block must cover whole files (one index of axis 0, everything else
    whole), as the restored stack's chunks do; it is written as
    ``folder/<name>`` with the file's axes, scale and unit.
    """

    def __init__(self, folder: Path, names: list, shape, dtype, axes: str, scale: dict, unit, shown_as=None):
        self.folder, self.names, self.shape, self.dtype = Path(folder), list(names), tuple(shape), np.dtype(dtype)
        self.axes, self.scale, self.unit = axes, dict(scale), unit
        self.ndim = len(self.shape)
        self.shown_as = Path(shown_as or folder)  # the folder named in errors (the final output)

    def __setitem__(self, index, block):
        index = index if isinstance(index, tuple) else (index,)
        first = index[0]
        start = (first.start or 0) if isinstance(first, slice) else int(first)
        stop = first.stop if isinstance(first, slice) else start + 1
        block = np.asarray(block)
        if block.shape[1:] != self.shape[1:]:
            raise ValueError(f"a TIFF-folder block must hold whole files, got {block.shape} of {self.shape}")
        for offset, i in enumerate(range(start, stop)):
            try:
                write_image(
                    self.folder / self.names[i],
                    block[offset],
                    self.axes[1:],
                    scale=self.scale,
                    unit=self.unit,
                    overwrite=True,
                )
            except OSError as err:
                raise output_error(self.shown_as / self.names[i], err) from None


class ZarrTarget:
    """A zarr array as a ``dask.array.store`` target whose write errors name ``shown_as`` and the reason."""

    def __init__(self, array, shown_as):
        self.array, self.shown_as = array, Path(shown_as)
        self.shape, self.dtype, self.ndim = tuple(array.shape), array.dtype, array.ndim

    def __setitem__(self, index, block):
        try:
            self.array[index] = block
        except OSError as err:
            raise output_error(self.shown_as, err) from None


def output_path(source: Path, outdir: Path, fmt: str) -> Path:
    """``outdir/<name>_deblurred.zarr`` or ``outdir/<name>_deblurred`` (a folder of TIFFs)."""
    stem = source.name
    for suffix in (ZARR_SUFFIX, ".ome.tiff", ".ome.tif", ".tiff", ".tif"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
            break
    return outdir / (f"{stem}_deblurred" + (ZARR_SUFFIX if fmt == "zarr" else ""))


def compute_store(store, scheduler, workers, progress) -> None:
    """Run a ``dask.array.store`` graph on ``scheduler`` (an address) or on local threads.

    Locally it returns, or raises, only once no task is still running: after a failure
    (or Ctrl-C) the planes in flight finish and queued ones are dropped, so nothing is
    written after the caller has cleaned up.
    """
    if scheduler is not None:
        from distributed import Client

        with Client(scheduler) as client:
            client.compute(store, sync=True)
        return
    from concurrent.futures import ThreadPoolExecutor

    import dask.threaded

    executor = getattr(dask.threaded, "ContextAwareThreadPoolExecutor", ThreadPoolExecutor)(int(workers))
    try:
        if progress:
            from dask.diagnostics import ProgressBar

            with ProgressBar():
                store.compute(scheduler="threads", pool=executor)
        else:
            store.compute(scheduler="threads", pool=executor)
    finally:
        executor.shutdown(wait=True, cancel_futures=True)


def tiff_names(stack: Stack, shape, output: Path) -> list[str]:
    """The file names of a folder-of-TIFFs output, one per index of the leading axis.

    A folder input keeps its files' names; any other input gets ``<output name>_00000.tif``,
    ``_00001.tif``, ... ValueError when the stack has no leading stack axis (fewer than three
    axes, or a leading Y, X or C) or when a folder in ``output`` has the name of a file to write.
    """
    if len(shape) < 3 or stack.axes[0] in "YXC":
        raise ValueError(f"a folder of TIFFs needs a leading stack axis; axes are {stack.axes!r}: use --format zarr")
    if stack.kind == "tiff-folder":
        names = [p.name for p in stack.files]
    else:
        names = [f"{output.name}_{i:05d}.tif" for i in range(shape[0])]
    blocked = [name for name in names if (output / name).is_dir()]
    if blocked:
        raise ValueError(f"{output / blocked[0]} is a folder where this run writes a TIFF; choose another output")
    return names


def _new_zarr_target(path: Path, restored, stack: Stack, source: Path, output: Path) -> ZarrTarget:
    """A new zarr array at ``path`` shaped and chunked as ``restored``, with the attributes that
    mark it as written by this software, as a target whose errors name ``output``."""
    import zarr

    array = zarr.open_array(
        str(path),
        mode="w",
        shape=restored.shape,
        dtype=restored.dtype,
        chunks=tuple(c[0] for c in restored.chunks),
    )
    array.attrs.update(
        {
            "axes": stack.axes,
            "scale": stack.scale,
            "unit": stack.unit,
            "source": str(source),
            "napari_deblur": "xydeblur",
        }
    )
    return ZarrTarget(array, output)


def stream_xydeblur(
    source,
    output,
    model=None,
    *,
    axes=None,
    fmt=None,
    overwrite=False,
    scheduler=None,
    workers=2,
    halo="auto",
    progress=False,
    **engine,
) -> dict:
    """Restore ``source`` (zarr, TIFF folder or TIFF) into ``output`` chunk by chunk; returns a summary.

    ``fmt``: ``"zarr"`` or ``"tiff"`` (a folder of TIFFs; default: zarr for zarr input,
    TIFFs otherwise). ``engine``: ``device``, ``precision``, ``tile``, ``normalize``,
    ``out_dtype``, ``compile`` as for :func:`napari_deblur.engine.restore.xydeblur`. ``workers``:
    threads of the local scheduler (each holds about one plane). ``scheduler``: a
    ``dask.distributed`` scheduler address instead. ``overwrite``: see the module docstring.
    A missing optional package raises :class:`~napari_deblur.extras.MissingExtraError`
    (an ImportError) naming the extra to install, before anything is read.
    """
    source, output = Path(source), Path(output)
    fmt = fmt or ("zarr" if is_zarr(source) else "tiff")
    if fmt not in ("zarr", "tiff"):
        raise ValueError(f"format must be 'zarr' or 'tiff', got {fmt!r}")
    require(required_packages(source, fmt, scheduler), f"streaming {source}")
    import dask.array as da

    from .lazy import plane_chunks, xydeblur_lazy

    check_apart([source], [output])
    check_output(output, fmt, overwrite)
    stack = open_stack(source, axes)
    check_apart([source, *stack.files], [output])  # a file of the folder may be a link to elsewhere
    if scheduler is not None and stack.kind == "tiff":
        raise ValueError("a single TIFF cannot be streamed on a cluster; convert it to zarr or a folder of TIFFs")
    data = plane_chunks(stack.array, stack.axes)
    yi, xi = stack.axes.index("Y"), stack.axes.index("X")
    data = data.rechunk({yi: -1, xi: -1})  # whole planes: no halo work; a plane is small next to a stack
    restored = xydeblur_lazy(data, model, axes=stack.axes, halo=halo, **engine)
    names = tiff_names(stack, restored.shape, output) if fmt == "tiff" else []

    workdir = Path(tempfile.mkdtemp(prefix=f".{output.name}.", suffix=".partial", dir=check_writable(output.parent)))
    try:
        if fmt == "zarr":
            target = _new_zarr_target(workdir / output.name, restored, stack, source, output)
        else:
            target = TiffFolderTarget(
                workdir, names, restored.shape, restored.dtype, stack.axes, stack.scale, stack.unit, shown_as=output
            )
            restored = restored.rechunk({i: 1 if i == 0 else -1 for i in range(restored.ndim)})  # a file per chunk
        compute_store(da.store(restored, target, lock=False, compute=False), scheduler, workers, progress)
        publish(workdir, output, fmt, names)
    finally:  # after success it holds at most the store this run replaced; after a failure, this run's files
        shutil.rmtree(workdir, ignore_errors=True)
    return {
        "input": str(source),
        "output": str(output),
        "format": fmt,
        "shape": tuple(restored.shape),
        "axes": stack.axes,
        "dtype": str(restored.dtype),
        "chunks": int(np.prod(restored.numblocks)),
    }


def written_by_this_software(path: Path) -> bool:
    """Whether ``path`` is a zarr store whose attributes carry ``napari_deblur`` (as this module writes)."""
    if not Path(path).is_dir() or not is_zarr(path):
        return False
    try:
        import zarr

        return bool(zarr.open(str(path), mode="r").attrs.get("napari_deblur"))
    except Exception:  # not a store zarr can open: not ours  # noqa: BLE001
        return False


def check_output(output: Path, fmt: str, overwrite: bool) -> None:
    """ValueError unless ``output`` may be written: absent, or (with ``overwrite``) a folder
    that takes this run's TIFFs, or a zarr store this software wrote."""
    output = Path(output)
    if not output.exists() and not output.is_symlink():
        return
    if not overwrite:
        raise ValueError(f"{output} already exists (use --overwrite to replace it)")
    if fmt == "zarr" and not written_by_this_software(output):
        raise ValueError(
            f"{output} exists and is not a zarr store written by napari-deblur; --overwrite replaces "
            "only those: choose another output"
        )
    if fmt == "tiff":
        if not output.is_dir() or is_zarr(output):
            kind = "a zarr store" if is_zarr(output) and output.is_dir() else "not a folder"
            raise ValueError(f"{output} exists and is {kind}; a folder of TIFFs goes there: choose another output")
        check_writable(output)


def publish(workdir: Path, output: Path, fmt: str, names: list) -> None:
    """Move a finished result from ``workdir`` to ``output``: the TIFFs ``names`` one by one into
    the folder (other files there stay), or the zarr store in place of the previous one."""
    try:
        if fmt == "tiff":
            output.mkdir(exist_ok=True)
            for name in names:
                os.replace(workdir / name, output / name)
            return
        finished = workdir / output.name
        if not output.exists() and not output.is_symlink():
            os.replace(finished, output)
            return
        replaced = workdir / "replaced"  # removed with workdir once the new store is in place
        os.replace(output, replaced)
        try:
            os.replace(finished, output)
        except BaseException:
            os.replace(replaced, output)
            raise
    except OSError as err:
        raise output_error(output, err) from None
