"""``napari-deblur xy``: restore image files with XYDeblur, and stream .zarr stores and TIFF
folders (or, with ``--stream``, large TIFF files) chunk by chunk.

Every output is planned and checked before any work: inputs readable, no output overwriting an
input or another output, the output folder writable, a TIFF that does not fit in memory refused
with the advice to stream it.
"""

import sys
import time
from pathlib import Path

from .common import (
    CLIError,
    ProgressBar,
    add_engine_options,
    check_writable,
    drive,
    normalize_mode,
    one_line,
    plan_outputs,
    positive_int,
    warn_ungated,
)


def add_xy(subparsers):
    """Add the ``xy`` parser."""
    parser = subparsers.add_parser(
        "xy",
        help="remove in-plane blur with XYDeblur",
        description="Deblur images with XYDeblur and write OUTDIR/<name>_deblurred.tif with the "
        "input's shape, dtype, axes and pixel size.",
    )
    parser.add_argument(
        "inputs",
        nargs="+",
        type=Path,
        metavar="INPUT",
        help="TIFF, PNG, JPEG or BMP files; a .zarr store or a folder of TIFFs is streamed",
    )
    parser.add_argument("-o", "--output", required=True, type=Path, metavar="OUTDIR", help="output folder")
    parser.add_argument(
        "--model",
        default=None,
        metavar="NAME|PATH",
        help="bundled model name or weights file (default: photo model for RGB, microscopy model otherwise)",
    )
    stream = parser.add_argument_group(
        "streaming",
        "A .zarr store or a folder of TIFFs (one stack, files in natural order along a new T axis) "
        "is restored chunk by chunk with one intensity scaling, so memory stays bounded whatever its "
        "size; it becomes OUTDIR/<name>_deblurred.zarr or the folder OUTDIR/<name>_deblurred/.",
    )
    stream.add_argument("--stream", action="store_true", help="stream TIFF files too (for files larger than memory)")
    stream.add_argument(
        "--format",
        dest="stream_format",
        choices=["zarr", "tiff"],
        default=None,
        help="streamed output: zarr, or a folder of TIFFs (default: as the input)",
    )
    stream.add_argument(
        "--scheduler",
        default=None,
        metavar="ADDRESS",
        help="run on this dask.distributed scheduler (e.g. tcp://host:8786)",
    )
    stream.add_argument(
        "--workers", type=positive_int, default=2, help="planes restored at once by the local scheduler (default: 2)"
    )
    parser.add_argument(
        "--axes", default=None, help="axes of the inputs, e.g. YX, ZYX, CYX, TZCYX (default: from the file)"
    )
    parser.add_argument(
        "--residuals",
        action="store_true",
        help="also write <name>_r_hor.tif and <name>_r_ver.tif (float32, or --residual-dtype)",
    )
    parser.add_argument(
        "--residual-dtype",
        default="float32",
        choices=["float32", "float16"],
        help="dtype of the residuals: float16 takes half the memory and disk, about 3 significant digits, "
        "saturating at +-65504 (default: float32)",
    )
    parser.add_argument(
        "--normalize",
        default="auto",
        type=normalize_mode,
        metavar="auto|dtype|percentile|LO,HI",
        help="intensity scaling for the network (default: auto)",
    )
    parser.add_argument(
        "--out-dtype",
        default="same",
        choices=["same", "float32"],
        help="dtype of the deblurred image (default: same as the input)",
    )
    parser.add_argument(
        "--compile",
        dest="compile_",
        action="store_true",
        help="run the network through torch.compile: faster on a GPU for many files or "
        "frames, after a compile of seconds per image shape (eager if it fails)",
    )
    add_engine_options(parser)
    parser.set_defaults(handler=run_xy)


def run_xy(args) -> int:
    """Restore every input (files, then streams), writing its outputs; returns 0."""
    from ..engine.restore import xydeblur_iter
    from ..io import read_image, write_image
    from ..models.weights import load_model
    from ..output_safety import removed_on_failure
    from ..stacks import is_zarr

    check_output_folder(args.output)
    streamed = [p for p in args.inputs if p.is_dir() or is_zarr(p) or (args.stream and p.is_file())]
    files = [p for p in args.inputs if p not in streamed]
    if streamed and args.residuals:
        raise CLIError("--residuals is not available when streaming (zarr, folders, --stream)")
    suffixes = ["_deblurred"] + (["_r_hor", "_r_ver"] if args.residuals else [])
    planned = plan_outputs(files, args.output, suffixes, args.overwrite)
    stream_plan = plan_streams(streamed, args)
    check_inputs_apart(args.inputs, [out for outputs in planned for out in outputs] + [t for _, t in stream_plan])
    check_fits_in_memory(files)
    model = load_model(args.model) if args.model is not None else None  # once, and before any work
    check_writable(args.output)
    for source, target in stream_plan:
        run_stream(source, target, model, args)
    used = []  # the models that ran, for the do-no-harm warnings at the end
    for path, outputs in zip(files, planned):
        image = read_image(path)
        gen = xydeblur_iter(
            image.array,
            model,
            axes=args.axes or image.axes,
            device=args.device,
            precision=args.precision,
            tile=args.tile,
            normalize=args.normalize,
            out_dtype=args.out_dtype,
            residual_dtype=args.residual_dtype,
            compile=args.compile_,
        )
        try:
            result = drive(gen, ProgressBar(path.name, enabled=not args.quiet))
        except (ValueError, TypeError) as err:
            raise CLIError(f"{path}: {one_line(err)}") from None
        # display settings (LUTs, ranges) describe the file's own axes; keep them only if those still hold
        same_axes = result.axes == image.axes
        metadata = (
            image.metadata if same_axes else {k: image.metadata[k] for k in ("description",) if k in image.metadata}
        )
        write = dict(scale=image.scale, unit=image.unit, overwrite=args.overwrite)
        with removed_on_failure() as written:  # all of this input's files, or none of them
            written.append(write_image(outputs[0], result.restored, result.axes, metadata=metadata, **write))
            if args.residuals:
                plain = {"photometric": image.metadata["photometric"]} if "photometric" in image.metadata else {}
                written.append(write_image(outputs[1], result.r_hor, result.axes, metadata=plain, **write))
                written.append(write_image(outputs[2], result.r_ver, result.axes, metadata=plain, **write))
        if not args.quiet:
            info = result.info
            print(
                f"{path} -> {outputs[0]}  ({info.get('model')}, {info.get('device')} {info.get('precision')}, "
                f"{info.get('seconds', 0):.1f} s)",
                file=sys.stderr,
            )
            used += info.get("bundled_weights", [])
    warn_ungated(*used)
    return 0


IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp")


def check_output_folder(output: Path) -> None:
    """CLIError when ``-o`` names an image file rather than a folder (unless such a folder
    exists): ``-o fishes.png`` would otherwise make a folder called fishes.png."""
    if output.suffix.lower() in IMAGE_SUFFIXES and not output.is_dir():
        raise CLIError(
            f"-o/--output is a folder, and {output} looks like an image file name; the result is written "
            f"as <folder>/<input name>_deblurred.tif (e.g. -o {output.parent / 'deblurred'})"
        )


def plan_streams(streamed, args) -> list:
    """(input, output) for every streamed input, checked before any work: no two share an output,
    and each output may be written (:func:`napari_deblur.streaming.check_output`)."""
    from ..extras import MissingExtraError, require
    from ..stacks import is_zarr, required_packages
    from ..streaming import check_output, output_path

    plan, seen = [], set()
    for source in streamed:
        fmt = args.stream_format or ("zarr" if is_zarr(source) else "tiff")
        try:
            require(required_packages(source, fmt, args.scheduler), f"streaming {source}")
        except MissingExtraError as err:
            raise CLIError(str(err)) from None
        target = output_path(source, args.output, fmt)
        if target.resolve() in seen:
            raise CLIError(f"{source}: its output {target} is another input's output; process them separately")
        try:
            check_output(target, fmt, args.overwrite)
        except ValueError as err:
            raise CLIError(one_line(err)) from None
        seen.add(target.resolve())
        plan.append((source, target))
    return plan


def check_fits_in_memory(files) -> None:
    """CLIError for a TIFF whose pixels alone exceed the memory available (from its header,
    before anything is read): it needs --stream, and --stream may need packages to install."""
    from ..extras import MissingExtraError, memory_available, require
    from ..io import TIFF_SUFFIXES, tiff_nbytes

    available = memory_available()
    if available is None:
        return
    for path in files:
        if not path.name.lower().endswith(TIFF_SUFFIXES):
            continue
        try:
            nbytes = tiff_nbytes(path)
        except ValueError:
            continue  # a bad file is reported when its turn comes
        if nbytes > available:
            advice = "rerun with --stream to restore it plane by plane"
            try:
                require(["dask.array", "zarr"], "--stream")
            except MissingExtraError as err:
                advice += f" ({err})"
            raise CLIError(
                f"{path} holds {readable_size(nbytes)} of pixels, more than the "
                f"{readable_size(available)} of memory available: {advice}"
            )


def readable_size(nbytes: int) -> str:
    """``nbytes`` in the largest binary unit it fills (``1.5 GiB``)."""
    for unit, factor in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= factor:
            return f"{nbytes / factor:.1f} {unit}"
    return f"{nbytes} bytes"


def check_inputs_apart(inputs, outputs) -> None:
    """CLIError if an output is an input, lies inside one or would contain one (see
    :func:`napari_deblur.output_safety.check_apart`)."""
    from ..output_safety import check_apart

    try:
        check_apart(inputs, outputs)
    except ValueError as err:
        raise CLIError(one_line(err)) from None


def run_stream(source, target, model, args) -> None:
    """Stream one .zarr store or TIFF folder through XYDeblur into ``target``."""
    from ..streaming import stream_xydeblur

    started = time.perf_counter()
    fmt = "zarr" if target.name.endswith(".zarr") else "tiff"
    try:
        summary = stream_xydeblur(
            source,
            target,
            model,
            axes=args.axes,
            fmt=fmt,
            overwrite=args.overwrite,
            scheduler=args.scheduler,
            workers=args.workers,
            progress=not args.quiet and sys.stderr.isatty(),
            device=args.device,
            precision=args.precision,
            tile=args.tile,
            normalize=args.normalize,
            out_dtype=args.out_dtype,
            compile=args.compile_,
        )
    except (ValueError, TypeError) as err:
        raise CLIError(f"{source}: {one_line(err)}") from None
    if not args.quiet:
        print(
            f"{source} -> {target}  ({summary['axes']} {summary['shape']}, {summary['chunks']} chunks, "
            f"{time.perf_counter() - started:.1f} s)",
            file=sys.stderr,
        )
