"""The ``napari-deblur`` command line (also ``python -m napari_deblur``).

Each subcommand is one function decorated with :func:`subcommand`: it adds its
parser and sets ``handler`` to the function that runs it. Handlers raise
:class:`CLIError` (or ValueError/TypeError/OSError, e.g. ``WeightsError``) for
expected failures, which ``main`` reports as one line and exit status 2.
torch and the engine are imported only inside handlers, so ``--help`` is quick.
"""

import argparse
import shutil
import sys
import time
from pathlib import Path

from . import __version__

PROG = "napari-deblur"
_SUBCOMMANDS = []


class CLIError(Exception):
    """An expected failure: reported as ``napari-deblur: error: <message>``, exit status 2."""


def subcommand(add):
    """Register ``add(subparsers)``, which adds one subcommand's parser."""
    _SUBCOMMANDS.append(add)
    return add


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="Deblur microscopy images and photographs with XYDeblur (CVPR 2022)."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in _SUBCOMMANDS:
        add(subparsers)
    return parser


def main(argv=None) -> int:
    """Run the command line; returns the exit status."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exit_:  # --help, --version or a usage error (status 2)
        return exit_.code if isinstance(exit_.code, int) else 2
    try:
        return args.handler(args) or 0
    except KeyboardInterrupt:
        print(f"\n{PROG}: interrupted", file=sys.stderr)
        return 130
    except (CLIError, ValueError, TypeError, OSError) as err:
        print(f"{PROG}: error: {one_line(err)}", file=sys.stderr)
        return 2
    except Exception as err:  # a bug: keep the traceback
        import traceback

        traceback.print_exc()
        print(f"{PROG}: error: unexpected {type(err).__name__}: {one_line(err)}", file=sys.stderr)
        return 1


def one_line(err) -> str:
    text = " ".join(str(err).split()) if str(err).strip() else type(err).__name__
    if isinstance(err, OSError) and err.filename and str(err.filename) not in text:
        text = f"{err.filename}: {text}"
    return text


# ---------------------------------------------------------------- shared pieces


def add_engine_options(parser):
    """--device, --precision, --tile, --overwrite, --quiet."""
    parser.add_argument("--device", default="auto", metavar="auto|cpu|cuda|mps",
                        help="where the network runs (default: auto = CUDA, then MPS, then CPU)")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "fp16", "bf16"],
                        help="network precision (default: auto = fp16 on GPU, fp32 on CPU)")
    parser.add_argument("--tile", default="auto", type=tile_size, metavar="auto|N",
                        help="tile side in pixels (default: auto, from free memory)")
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    parser.add_argument("--quiet", "-q", action="store_true", help="print nothing but errors")


def tile_size(text):
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a number of pixels, got {text!r}") from None


def positive_int(text):
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def normalize_mode(text):
    if text in ("auto", "dtype", "percentile"):
        return text
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected auto, dtype, percentile or LO,HI percentiles, got {text!r}") from None
    return (lo, hi)


def stem_of(path: Path) -> str:
    name = path.name
    for suffix in (".ome.tiff", ".ome.tif"):
        if name.lower().endswith(suffix):
            return name[: -len(suffix)]
    return path.stem


def plan_outputs(inputs, outdir: Path, suffixes, overwrite: bool) -> list[list[Path]]:
    """``outdir/<stem><suffix>.tif`` for every input and suffix, checked before any work:
    inputs exist, no output is an input or another input's output, none exists unless ``overwrite``."""
    planned, seen = [], {}
    sources = {p.resolve(): p for p in inputs}
    for path in inputs:
        if not path.is_file():
            raise CLIError(f"cannot read {path}: {'it is a folder' if path.is_dir() else 'no such file'}")
        outputs = [outdir / f"{stem_of(path)}{suffix}.tif" for suffix in suffixes]
        for out in outputs:
            key = out.resolve()
            if key in sources:
                raise CLIError(f"{out} would overwrite the input {sources[key]}; choose another output folder")
            if key in seen:
                raise CLIError(f"{seen[key]} and {path} would both be written to {out}; process them separately")
            seen[key] = path
            if out.exists() and not overwrite:
                raise CLIError(f"{out} already exists (use --overwrite to replace it)")
        planned.append(outputs)
    return planned


class ProgressBar:
    """``\\r<name> [#####.....] 12/40 tiles  3.1 s`` on a terminal; nothing otherwise."""

    def __init__(self, name: str, stream=None, enabled: bool = True, width: int = 24):
        self.stream = stream or sys.stderr
        self.enabled = enabled and hasattr(self.stream, "isatty") and self.stream.isatty()
        self.name, self.width, self.started, self.last, self.shown = name, width, time.perf_counter(), 0.0, 0

    def update(self, progress):
        now = time.perf_counter()
        if not self.enabled or (now - self.last < 0.1 and progress.done < progress.total):
            return
        self.last = now
        filled = int(self.width * min(1.0, progress.fraction))
        text = progress.message or f"{progress.done}/{progress.total}"
        line = f"{self.name} [{'#' * filled}{'.' * (self.width - filled)}] {text}  {now - self.started:.1f} s"
        line = line[: shutil.get_terminal_size().columns - 1]
        self.stream.write("\r" + line.ljust(self.shown))
        self.stream.flush()
        self.shown = len(line)

    def close(self):
        """Clear the bar, so the next line starts clean."""
        if self.enabled and self.shown:
            self.stream.write("\r" + " " * self.shown + "\r")
            self.stream.flush()
            self.shown = 0


def drive(generator, bar: ProgressBar):
    """Run an engine generator to its end, updating ``bar``; returns its result."""
    try:
        while True:
            bar.update(next(generator))
    except StopIteration as stop:
        return stop.value
    finally:
        bar.close()


# ---------------------------------------------------------------- napari-deblur xy


@subcommand
def add_xy(subparsers):
    parser = subparsers.add_parser(
        "xy", help="remove in-plane blur with XYDeblur",
        description="Deblur images with XYDeblur and write OUTDIR/<name>_deblurred.tif with the "
                    "input's shape, dtype, axes and pixel size.",
    )
    parser.add_argument("inputs", nargs="+", type=Path, metavar="INPUT",
                        help="TIFF, PNG, JPEG or BMP files; a .zarr store or a folder of TIFFs is streamed")
    parser.add_argument("-o", "--output", required=True, type=Path, metavar="OUTDIR", help="output folder")
    parser.add_argument("--model", default=None, metavar="NAME|PATH",
                        help="bundled model name or weights file (default: photo model for RGB, "
                             "microscopy model otherwise)")
    stream = parser.add_argument_group(
        "streaming", "A .zarr store or a folder of TIFFs (one stack, files in natural order along a new T axis) "
                     "is restored chunk by chunk with one intensity scaling, so memory stays bounded whatever its "
                     "size; it becomes OUTDIR/<name>_deblurred.zarr or the folder OUTDIR/<name>_deblurred/.")
    stream.add_argument("--stream", action="store_true", help="stream TIFF files too (for files larger than memory)")
    stream.add_argument("--format", dest="stream_format", choices=["zarr", "tiff"], default=None,
                        help="streamed output: zarr, or a folder of TIFFs (default: as the input)")
    stream.add_argument("--scheduler", default=None, metavar="ADDRESS",
                        help="run on this dask.distributed scheduler (e.g. tcp://host:8786)")
    stream.add_argument("--workers", type=positive_int, default=2,
                        help="planes restored at once by the local scheduler (default: 2)")
    parser.add_argument("--axes", default=None, help="axes of the inputs, e.g. YX, ZYX, CYX, TZCYX "
                        "(default: from the file)")
    parser.add_argument("--residuals", action="store_true",
                        help="also write <name>_r_hor.tif and <name>_r_ver.tif (float32)")
    parser.add_argument("--normalize", default="auto", type=normalize_mode, metavar="auto|dtype|percentile|LO,HI",
                        help="intensity scaling for the network (default: auto)")
    parser.add_argument("--out-dtype", default="same", choices=["same", "float32"],
                        help="dtype of the deblurred image (default: same as the input)")
    parser.add_argument("--compile", dest="compile_", action="store_true",
                        help="run the network through torch.compile: faster on a GPU for many files or "
                             "frames, after a compile of seconds per image shape (eager if it fails)")
    add_engine_options(parser)
    parser.set_defaults(handler=run_xy)


def run_xy(args) -> int:
    from .engine.restore import xydeblur_iter
    from .io import read_image, write_image
    from .models.weights import load_model
    from .output_safety import removed_on_failure
    from .streaming import is_zarr

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
    for path, outputs in zip(files, planned):
        image = read_image(path)
        gen = xydeblur_iter(
            image.array, model, axes=args.axes or image.axes, device=args.device, precision=args.precision,
            tile=args.tile, normalize=args.normalize, out_dtype=args.out_dtype, compile=args.compile_,
        )
        try:
            result = drive(gen, ProgressBar(path.name, enabled=not args.quiet))
        except (ValueError, TypeError) as err:
            raise CLIError(f"{path}: {one_line(err)}") from None
        # display settings (LUTs, ranges) describe the file's own axes; keep them only if those still hold
        same_axes = result.axes == image.axes
        metadata = image.metadata if same_axes else {k: image.metadata[k] for k in ("description",) if k in image.metadata}
        write = dict(scale=image.scale, unit=image.unit, overwrite=args.overwrite)
        with removed_on_failure() as written:  # all of this input's files, or none of them
            written.append(write_image(outputs[0], result.restored, result.axes, metadata=metadata, **write))
            if args.residuals:
                plain = {"photometric": image.metadata["photometric"]} if "photometric" in image.metadata else {}
                written.append(write_image(outputs[1], result.r_hor, result.axes, metadata=plain, **write))
                written.append(write_image(outputs[2], result.r_ver, result.axes, metadata=plain, **write))
        if not args.quiet:
            info = result.info
            print(f"{path} -> {outputs[0]}  ({info.get('model')}, {info.get('device')} {info.get('precision')}, "
                  f"{info.get('seconds', 0):.1f} s)", file=sys.stderr)
    return 0


def plan_streams(streamed, args) -> list:
    """(input, output) for every streamed input, checked before any work: no two share an output,
    and each output may be written (:func:`napari_deblur.streaming.check_output`)."""
    from .extras import MissingExtraError, require
    from .streaming import check_output, is_zarr, output_path, required_packages

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
    from .extras import MissingExtraError, memory_available, require
    from .io import TIFF_SUFFIXES, tiff_nbytes

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
            raise CLIError(f"{path} holds {readable_size(nbytes)} of pixels, more than the "
                           f"{readable_size(available)} of memory available: {advice}")


def readable_size(nbytes: int) -> str:
    for unit, factor in (("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10)):
        if nbytes >= factor:
            return f"{nbytes / factor:.1f} {unit}"
    return f"{nbytes} bytes"


def check_inputs_apart(inputs, outputs) -> None:
    """CLIError if an output is an input, lies inside one or would contain one (see
    :func:`napari_deblur.output_safety.check_apart`)."""
    from .output_safety import check_apart

    try:
        check_apart(inputs, outputs)
    except ValueError as err:
        raise CLIError(one_line(err)) from None


def check_writable(folder: Path) -> None:
    """Create the output folder and write a probe file there, before any computation."""
    from .output_safety import check_writable as probe

    probe(folder)


def run_stream(source, target, model, args) -> None:
    from .streaming import stream_xydeblur

    started = time.perf_counter()
    fmt = "zarr" if target.name.endswith(".zarr") else "tiff"
    try:
        summary = stream_xydeblur(
            source, target, model, axes=args.axes, fmt=fmt, overwrite=args.overwrite, scheduler=args.scheduler,
            workers=args.workers, progress=not args.quiet and sys.stderr.isatty(), device=args.device,
            precision=args.precision, tile=args.tile, normalize=args.normalize, out_dtype=args.out_dtype,
            compile=args.compile_,
        )
    except (ValueError, TypeError) as err:
        raise CLIError(f"{source}: {one_line(err)}") from None
    if not args.quiet:
        print(f"{source} -> {target}  ({summary['axes']} {summary['shape']}, {summary['chunks']} chunks, "
              f"{time.perf_counter() - started:.1f} s)", file=sys.stderr)


# ---------------------------------------------------------------- napari-deblur diffuse


@subcommand
def add_diffuse(subparsers):
    parser = subparsers.add_parser(
        "diffuse", help="refine with residual diffusion: mean and uncertainty over samples",
        description="Deblur images by predict-and-refine diffusion (Whang et al., CVPR 2022): an XYDeblur "
                    "predictor plus a residual diffusion denoiser, sampled --samples times. Writes "
                    "OUTDIR/<name>_mean.tif and OUTDIR/<name>_std.tif (float32, the input's shape, axes and "
                    "pixel size); --save-steps K adds <name>_x0_stepNNNN.tif, the first sample's x0 preview "
                    "every K steps.",
    )
    parser.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="TIFF, PNG, JPEG or BMP files")
    parser.add_argument("-o", "--output", required=True, type=Path, metavar="OUTDIR", help="output folder")
    parser.add_argument("--model", default=None, metavar="NAME|PATH",
                        help="denoiser: bundled name or weights file (default: dvsr-photo for RGB images, "
                             "dvsr-microscopy otherwise)")
    parser.add_argument("--predictor", default=None, metavar="NAME|PATH",
                        help="the XYDeblur it refines (default: the one the denoiser's manifest names)")
    parser.add_argument("--steps", type=positive_int, default=100,
                        help="diffusion steps, 1-1000 (many: sharper samples; few plus --samples: lower "
                             "distortion; default 100)")
    parser.add_argument("--samples", type=positive_int, default=1, help="samples averaged (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    parser.add_argument("--sampler", default="ddpm", choices=["ddpm", "ddim"],
                        help="ancestral DDPM (default) or deterministic DDIM")
    parser.add_argument("--save-steps", type=positive_int, default=None, metavar="K",
                        help="also write the x0 preview of the first sample every K steps")
    parser.add_argument("--axes", default=None, help="axes of the inputs, e.g. YX, ZYX, CYX, TZCYX "
                        "(default: from the file)")
    parser.add_argument("--normalize", default="auto", type=normalize_mode, metavar="auto|dtype|percentile|LO,HI",
                        help="intensity scaling for the networks (default: auto)")
    add_engine_options(parser)
    parser.set_defaults(handler=run_diffuse)


def run_diffuse(args) -> int:
    from .diffusion.refine import refine_iter, resolve_models
    from .diffusion.schedule import make_schedule
    from .engine.axes import normalize_axes
    from .io import read_image, write_image
    from .output_safety import removed_on_failure

    make_schedule(args.steps)  # a bad step count fails before any work
    previews = list(range(args.save_steps, args.steps + 1, args.save_steps)) if args.save_steps else []
    suffixes = ["_mean", "_std"] + [f"_x0_step{step:04d}" for step in previews]
    planned = plan_outputs(args.inputs, args.output, suffixes, args.overwrite)
    # a named model loads once, before any work; by default each image gets the bundled
    # denoiser for its channel count (dvsr-photo for RGB, dvsr-microscopy otherwise)
    models = resolve_models(args.model, args.predictor) if args.model else None
    check_writable(args.output)
    for path, outputs in zip(args.inputs, planned):
        image = read_image(path)
        plain = {"photometric": image.metadata["photometric"]} if "photometric" in image.metadata else {}
        write = dict(scale=image.scale, unit=image.unit, metadata=plain, overwrite=args.overwrite)
        wanted = dict(zip(previews, outputs[2:]))
        # previews appear as the run goes; if it fails or is interrupted, every file it wrote for
        # this input goes again (a replaced one too: it was this run's), so a rerun is not blocked
        with removed_on_failure() as written:

            def save(target, array, axes):
                written.append(write_image(target, array, axes, **write))

            try:
                axes = normalize_axes(args.axes or image.axes, image.array.shape)
                gen = refine_iter(
                    image.array, models, predictor=None if models else args.predictor, steps=args.steps,
                    samples=args.samples, seed=args.seed, sampler=args.sampler, axes=axes, device=args.device,
                    precision=args.precision, tile=args.tile, normalize=args.normalize,
                )
                bar = ProgressBar(path.name, enabled=not args.quiet)
                result = drive(_saving_previews(gen, wanted, axes, save), bar)
            except (ValueError, TypeError) as err:
                raise CLIError(f"{path}: {one_line(err)}") from None
            save(outputs[0], result.mean, result.axes)
            save(outputs[1], result.std, result.axes)
        if not args.quiet:
            info = result.info
            print(f"{path} -> {outputs[0]}, {outputs[1].name}  ({info.get('model')} + {info.get('predictor')}, "
                  f"{info['sampler']} {info['steps']} steps x {info['samples']} samples, seed {info['seed']}, "
                  f"{info.get('device')} {info.get('precision')}, {info.get('seconds', 0):.1f} s)", file=sys.stderr)
    return 0


def _saving_previews(gen, wanted: dict, axes: str, save):
    """Pass a refine generator through, saving the first sample's x0 at the ``wanted`` steps
    with ``save(path, array, axes)``."""
    while True:
        try:
            step = next(gen)
        except StopIteration as stop:
            return stop.value
        if step.step in wanted and step.samples[0] == 0:
            save(wanted[step.step], step.x0[0], axes)
        yield step



# ---------------------------------------------------------------- napari-deblur train / export


@subcommand
def add_train(subparsers):
    parser = subparsers.add_parser(
        "train", help="train (or continue training) a model on synthetic or paired data",
        description="Train XYDeblur (or, with dvsr, a diffusion denoiser for a frozen XYDeblur) in OUT. Running the same command again on the same OUT resumes "
                    "exactly where it stopped (checkpoints in shards under 16 MiB).",
    )
    parser.add_argument("architecture", choices=["xydeblur", "dvsr"],
                        help="what to train: xydeblur, or dvsr (the diffusion denoiser of a frozen XYDeblur)")
    parser.add_argument("--preset", choices=["photo", "microscopy"], default="photo")
    parser.add_argument("--pairs", default=None, metavar="DIR", help="a folder with blur/ and sharp/ (or raw/ and target/)")
    data = parser.add_argument_group(
        "real sharp images", "Synthetic pairs made from your own sharp images: photos, or fluorescence planes and "
                             "stacks, blurred and made noisy like real optics and sensors; the procedural scenes stay "
                             "as a minority. The benchmark's held-out files are always left out.")
    data.add_argument("--sharp", nargs="+", default=None, metavar="DIR|FILE|BANK.npz",
                      help="folders (searched recursively), image files or crop banks (napari-deblur pack)")
    data.add_argument("--psf", dest="psfs", nargs="+", default=None, metavar="TIFF",
                      help="microscopy: measured or computed PSFs (2D, or 3D Z stacks) added to the training PSFs")
    data.add_argument("--real-share", type=float, default=0.9, help="share of sharp tiles from --sharp (default 0.9)")
    data.add_argument("--identity-prob", type=float, default=0.08,
                      help="share of unblurred (noisy) inputs, which must come back as they are (default 0.08)")
    data.add_argument("--jpeg-prob", type=float, default=0.25,
                      help="photo: share of JPEG-compressed inputs, quality 70-95 (default 0.25)")
    data.add_argument("--motion-prob", type=float, default=0.0,
                      help="photo: share of inputs blurred by dynamic-scene motion (a sharp frame averaged along "
                           "smooth, spatially varying flows, as in GoPro-style data) instead of a kernel (default 0)")
    data.add_argument("--kernel-size", type=int, default=31,
                      help="side of the synthetic blur kernels and the longest motion path, odd (default 31)")
    parser.add_argument("--init", default=None, metavar="NAME|PATH", help="start from these weights (e.g. a bundled model)")
    parser.add_argument("--predictor", default=None, metavar="NAME|PATH",
                        help="dvsr: the frozen XYDeblur g(y) (default: xydeblur-photo or xydeblur-microscopy)")
    parser.add_argument("--iters", type=int, default=10000)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--crop", type=int, default=None, help="training crop side (default: xydeblur 192, dvsr 128)")
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--ema", type=float, default=0.999, help="EMA decay of the exported weights")
    parser.add_argument("--fft-weight", type=float, default=0.05, help="weight of the Fourier-amplitude L1 (0 = off)")
    parser.add_argument("--width", type=int, default=32, help="network width (32 = official)")
    parser.add_argument("--blocks", type=int, default=None,
                        help="residual blocks per stage (default: xydeblur 6 = official, dvsr 2 per level)")
    parser.add_argument("--residual-scale", type=float, default=None,
                        help="dvsr: factor on the diffused residual x0 - g(y) (default 5; see ResidualDenoiser)")
    parser.add_argument("--sigma-data", type=float, default=None,
                        help="dvsr: signal std of the output preconditioning (default 0.4; 0 = plain eps output)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--val-every", type=int, default=500)
    parser.add_argument("--ckpt-every", type=int, default=500)
    parser.add_argument("--time-limit", type=float, default=None, metavar="SECONDS",
                        help="stop (with a checkpoint) after this long; run again to resume")
    parser.add_argument("--fit-iters", action="store_true",
                        help="with --time-limit: time the first iterations and shorten --iters so the "
                             "learning-rate schedule ends within the time limit (a resumed run keeps that length)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--out", required=True, type=Path, metavar="DIR")
    parser.set_defaults(handler=run_train)


def run_train(args) -> int:
    if args.fit_iters and args.time_limit is None:
        raise CLIError("--fit-iters needs --time-limit (the time to fit the schedule into)")
    if args.architecture == "dvsr":
        from .training.train_dvsr import run_from_args

        return run_from_args(args, data_options(args))
    from .training.train import Trainer, TrainConfig

    crop, blocks = args.crop if args.crop is not None else 192, args.blocks if args.blocks is not None else 6
    cfg = TrainConfig(
        preset=args.preset, iters=args.iters, batch=args.batch, crop=crop, lr=args.lr, warmup=args.warmup,
        fft_weight=args.fft_weight, ema=args.ema, seed=args.seed, width=args.width, blocks=blocks, init=args.init,
        val_every=args.val_every, ckpt_every=args.ckpt_every, **data_options(args),
    )
    summary = Trainer(cfg, args.out, device=args.device, log=lambda line: print(line, file=sys.stderr)).run(
        time_limit=args.time_limit, fit_iters=args.fit_iters
    )
    print(summary)
    return 0


def data_options(args) -> dict:
    """The :class:`napari_deblur.training.sources.DataOptions` fields from ``train``'s arguments."""
    if args.pairs and args.sharp:
        raise CLIError("--pairs and --sharp are two different data sources; give one")
    for name in ("real_share", "identity_prob", "jpeg_prob", "motion_prob"):
        if not 0 <= getattr(args, name) <= 1:
            raise CLIError(f"--{name.replace('_', '-')} must be between 0 and 1, got {getattr(args, name)}")
    if args.kernel_size < 3 or args.kernel_size % 2 == 0:
        raise CLIError(f"--kernel-size must be odd and at least 3, got {args.kernel_size}")
    return {"pairs": args.pairs, "sharp": [str(p) for p in args.sharp] if args.sharp else None,
            "psfs": [str(p) for p in args.psfs] if args.psfs else None, "real_share": args.real_share,
            "identity_prob": args.identity_prob, "jpeg_prob": args.jpeg_prob, "motion_prob": args.motion_prob,
            "kernel_size": args.kernel_size}


@subcommand
def add_pack(subparsers):
    parser = subparsers.add_parser(
        "pack", help="pack a seeded bank of sharp crops for training elsewhere (e.g. on a GPU machine)",
        description="Draw random square crops from sharp images (folders, files; the benchmark's held-out files "
                    "left out) and write them as one compressed .npz plus OUT.json, the record of what went in. "
                    "`napari-deblur train --sharp OUT.npz` trains on it.",
    )
    parser.add_argument("--sharp", nargs="+", required=True, metavar="DIR|FILE", help="sharp images")
    parser.add_argument("--preset", choices=["photo", "microscopy"], required=True)
    parser.add_argument("--crops", type=positive_int, default=160, help="number of crops (default 160)")
    parser.add_argument("--size", type=positive_int, default=256, help="crop side in pixels (default 256)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--psf", dest="psfs", nargs="+", default=None, metavar="TIFF",
                        help="microscopy: PSF files whose slices travel in the bank (used by train --sharp BANK)")
    parser.add_argument("--out", required=True, type=Path, metavar="BANK.npz")
    parser.add_argument("--overwrite", action="store_true", help="replace an existing bank")
    parser.set_defaults(handler=run_pack)


def run_pack(args) -> int:
    from .data.bank import pack_bank

    if args.out.exists() and not args.overwrite:
        raise CLIError(f"{args.out} already exists (use --overwrite to replace it)")
    record = pack_bank(args.sharp, args.preset, args.out, crops=args.crops, size=args.size, seed=args.seed,
                       psfs=args.psfs)
    print(f"{args.out}: {record['crops']} crops of {record['size']} px from {len(record['files'])} files "
          f"({record['heldout_skipped'] and len(record['heldout_skipped'])} held-out files left out), "
          f"{record['bytes'] / 2**20:.1f} MiB; record in {args.out}.json")
    return 0


@subcommand
def add_export(subparsers):
    parser = subparsers.add_parser(
        "export", help="write a training run's EMA weights as a bundled model (fp16 safetensors + manifest)",
    )
    parser.add_argument("run", type=Path, metavar="RUN_DIR")
    parser.add_argument("--name", required=True, help="model name, e.g. xydeblur-photo")
    parser.add_argument("--out", type=Path, default=Path("resources"), metavar="DIR")
    parser.add_argument("--device", default="", help="where it was trained, for the manifest (e.g. 'NVIDIA H100')")
    parser.add_argument("--note", default="", help="a remark for the manifest")
    parser.add_argument("--benchmark", type=Path, default=None, metavar="JSON",
                        help="a benchmark.json from `napari-deblur eval`: this model's results go into the manifest")
    parser.add_argument("--real", type=Path, default=None, metavar="DATA",
                        help="the do-no-harm gate: score the candidate on the real-data tracks of DATA (e.g. "
                             "../shared/data) and write it only if it passes; required to export into the bundled "
                             "resources folder")
    parser.add_argument("--quick-gate", action="store_true", help="with --real: the quick (small) real tracks")
    parser.add_argument("--gate-report", type=Path, default=None, metavar="DIR",
                        help="with --real: where the candidate's real.md/real.json go (default: a temporary folder)")
    parser.add_argument("--gate-device", default="auto", help="with --real: where the candidate runs")
    parser.set_defaults(handler=run_export)


def run_export(args) -> int:
    import json

    from .training.export import export_run
    from .training.export_dvsr import export_dvsr_run

    config = json.loads((args.run / "config.json").read_text())
    export = export_dvsr_run if "predictor" in config else export_run  # a dvsr run names its predictor
    benchmark = None
    if args.benchmark is not None:
        from .evaluation.summary import model_results

        benchmark = model_results(json.loads(args.benchmark.read_text()), args.name)
    kwargs = dict(device=args.device, note=args.note, benchmark=benchmark)
    if args.real is None:
        from .resources import resources_dir

        if args.out.resolve() == resources_dir().resolve():
            raise CLIError(f"exporting into the bundled models ({args.out}) needs --real DATA: the do-no-harm gate")
        print(export(args.run, args.name, args.out, **kwargs))
        return 0
    from .training.export import gated_export

    written, verdict = gated_export(export, args.run, args.name, args.out, args.real, quick=args.quick_gate,
                                    run_device=args.gate_device, bench_dir=args.gate_report,
                                    log=lambda line: print(line, file=sys.stderr), **kwargs)
    for check in verdict["checks"]:
        print(f"{'ok   ' if check['passed'] else 'FAIL '} {check['track']}: {check['check']}: {check['value']}",
              file=sys.stderr)
    if written is None:
        raise CLIError(f"{args.name} failed the do-no-harm gate; nothing was written to {args.out}")
    print(written)
    return 0


# ---------------------------------------------------------------- napari-deblur eval


@subcommand
def add_eval(subparsers):
    parser = subparsers.add_parser(
        "eval", help="benchmark the bundled models against oracle Wiener and Richardson-Lucy",
        description="A fixed, seeded benchmark on held-out photos and synthetic fluorescence scenes, blurred by "
                    "kernels and PSFs outside the training families, at two noise levels. Scores the blurry input, "
                    "Wiener and Richardson-Lucy with the true kernel (tuned on a separate split) and every bundled "
                    "XYDeblur by PSNR/SSIM and time per image; writes DIR/benchmark.md, DIR/benchmark.json and "
                    "DIR/clock_motion.png (scikit-image's real motion-blurred photo: input | restored).",
    )
    parser.add_argument("--quick", action="store_true", help="a tiny version for CI (small crops, few images)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks"), metavar="DIR",
                        help="output folder (default: benchmarks)")
    parser.add_argument("--models", nargs="+", default=None, metavar="NAME",
                        help="bundled model names or weights files, XYDeblur or diffusion denoisers "
                             "(default: every bundled model)")
    parser.add_argument("--device", default="auto", metavar="auto|cpu|cuda|mps",
                        help="where the models run (default: auto = CUDA, then MPS, then CPU)")
    parser.add_argument("--diffusion-cases", type=positive_int, default=None, metavar="N",
                        help="images per noise level for the diffusion rows (default: 4; 1 with --quick)")
    parser.add_argument("--diffusion-crop", type=positive_int, default=None, metavar="PX",
                        help="crop side for the diffusion rows (default: 256; 64 with --quick)")
    parser.add_argument("--real", type=Path, default=None, metavar="DATA",
                        help="instead, the real-data tracks on the project's data folder (e.g. ../shared/data): "
                             "real GoPro pairs, held-out real photos and fluorescence, identity tracks, the "
                             "do-no-harm gate and a contact sheet; writes DIR/real.md, real.json, contact_sheet.png")
    parser.set_defaults(handler=run_eval)


def run_eval(args) -> int:
    from .evaluation.benchmark import run_benchmark

    if args.real is not None:
        from .evaluation.benchmark import select_models, split_model_names
        from .evaluation.real import run_real_benchmark

        from .evaluation.diffusion import select_denoisers

        xy_names, den_names = split_model_names(args.models)
        models = select_models(xy_names) if xy_names is None or xy_names else []
        run_real_benchmark(args.real, args.out, models=models, denoisers=select_denoisers(den_names),
                           quick=args.quick, device=args.device, diffusion_cases=args.diffusion_cases or 3,
                           log=lambda line: print(line, file=sys.stderr))
        print((args.out / "real.md").read_text())
        return 0

    diffusion = {k: v for k, v in (("cases", args.diffusion_cases), ("crop", args.diffusion_crop)) if v}
    run_benchmark(args.out, quick=args.quick, models=args.models, device=args.device, diffusion=diffusion,
                  log=lambda line: print(line, file=sys.stderr))
    print((args.out / "benchmark.md").read_text())
    return 0


# ---------------------------------------------------------------- napari-deblur bench


@subcommand
def add_bench(subparsers):
    parser = subparsers.add_parser(
        "bench", help="time XYDeblur (reference vs optimised path) and the diffusion refinement on this machine",
        description="Times XYDeblur per frame at several sizes, a reference path written like the official code "
                    "(fp32, NCHW, eager, untiled) against the engine's optimised path, in the same run, with the "
                    "ratio, peak device memory and the largest output difference; then diffusion denoiser steps "
                    "and the Fidelity preset. Prints a table, writes JSON and a Markdown table.",
    )
    parser.add_argument("--device", default="auto", metavar="auto|cpu|cuda|mps",
                        help="where to measure (default: auto = CUDA, then MPS, then CPU)")
    parser.add_argument("--quick", action="store_true", help="fewer sizes and repeats, no Fidelity run (for CI)")
    parser.add_argument("--repeats", type=positive_int, default=None, help="timed runs per figure (median)")
    parser.add_argument("--compile", dest="compile_", action="store_true",
                        help="time the optimised path and the whole call through the engine's torch.compile "
                             "(eager where it fails; the compile time falls in the warm-up)")
    parser.add_argument("--out", type=Path, default=None, metavar="FILE",
                        help="JSON report (default: benchmarks/performance-<cpu|cuda|mps>.json); "
                             "the table goes next to it as .md")
    parser.set_defaults(handler=run_bench_command)


def run_bench_command(args) -> int:
    from .bench import run_bench, to_markdown
    from .engine.device import pick_device

    out = args.out or Path("benchmarks") / f"performance-{pick_device(args.device).type}.json"
    report = run_bench(args.device, quick=args.quick, repeats=args.repeats, compile_=args.compile_, out=out,
                       log=lambda line: print(line, file=sys.stderr))
    table = to_markdown(report)
    out.with_suffix(".md").write_text(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
