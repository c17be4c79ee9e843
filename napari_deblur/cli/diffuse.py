"""``napari-deblur diffuse``: predict-and-refine residual diffusion, the mean and standard
deviation over samples, and optionally the first sample's x0 previews as the chain runs."""

import sys
from pathlib import Path

from ..diffusion.presets import DEFAULT_STEPS, FIDELITY, PERCEPTUAL, PRESETS
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


def add_diffuse(subparsers):
    """Add the ``diffuse`` parser."""
    parser = subparsers.add_parser(
        "diffuse",
        help="refine with residual diffusion: mean and uncertainty over samples",
        description="Deblur images by predict-and-refine diffusion (Whang et al., CVPR 2022): an XYDeblur "
        "predictor plus a residual diffusion denoiser, sampled --samples times. Writes "
        "OUTDIR/<name>_mean.tif and OUTDIR/<name>_std.tif (float32, the input's shape, axes and "
        "pixel size); --save-steps K adds <name>_x0_stepNNNN.tif, the first sample's x0 preview "
        "every K steps.",
    )
    parser.add_argument("inputs", nargs="+", type=Path, metavar="INPUT", help="TIFF, PNG, JPEG or BMP files")
    parser.add_argument("-o", "--output", required=True, type=Path, metavar="OUTDIR", help="output folder")
    parser.add_argument(
        "--model",
        default=None,
        metavar="NAME|PATH",
        help="denoiser: bundled name or weights file (default: dvsr-photo for RGB images, dvsr-microscopy otherwise)",
    )
    parser.add_argument(
        "--predictor",
        default=None,
        metavar="NAME|PATH",
        help="the XYDeblur it refines (default: the one the denoiser's manifest names)",
    )
    parser.add_argument(
        "--preset",
        choices=[name.lower() for name in PRESETS],
        default=None,
        help=f"steps and samples together: fidelity = {FIDELITY.describe()} (a low-distortion mean and its "
        f"std; what runs when neither --preset, --steps nor --samples is given), perceptual = "
        f"{PERCEPTUAL.describe()} (sharper, more distortion); --steps or --samples given as well take precedence",
    )
    parser.add_argument(
        "--steps",
        type=positive_int,
        default=None,
        help=f"diffusion steps, 1-1000 (many: sharper samples; few plus --samples: lower distortion; "
        f"default: the preset's, else {DEFAULT_STEPS} when --samples is given, else the Fidelity preset's)",
    )
    parser.add_argument(
        "--samples",
        type=positive_int,
        default=None,
        help="samples averaged (default: the preset's, else 1 when --steps is given, else the Fidelity preset's)",
    )
    parser.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    parser.add_argument(
        "--sampler", default="ddpm", choices=["ddpm", "ddim"], help="ancestral DDPM (default) or deterministic DDIM"
    )
    parser.add_argument(
        "--save-steps",
        type=positive_int,
        default=None,
        metavar="K",
        help="also write the x0 preview of the first sample every K steps",
    )
    parser.add_argument(
        "--axes", default=None, help="axes of the inputs, e.g. YX, ZYX, CYX, TZCYX (default: from the file)"
    )
    parser.add_argument(
        "--normalize",
        default="auto",
        type=normalize_mode,
        metavar="auto|dtype|percentile|LO,HI",
        help="intensity scaling for the networks (default: auto)",
    )
    add_engine_options(parser)
    parser.set_defaults(handler=run_diffuse)


def sampling_of(args) -> tuple[int, int]:
    """(steps, samples): those given, else the ``--preset``'s; with neither, the Fidelity preset (what
    the widget opens with); with only one of --steps and --samples, the other is 100 steps or 1 sample."""
    if args.preset is None and args.steps is None and args.samples is None:
        return FIDELITY.steps, FIDELITY.samples
    preset = PRESETS[args.preset.capitalize()] if args.preset else None
    steps = args.steps if args.steps is not None else (preset.steps if preset else DEFAULT_STEPS)
    samples = args.samples if args.samples is not None else (preset.samples if preset else 1)
    return steps, samples


def run_diffuse(args) -> int:
    """Refine every input and write its mean, std and previews; returns 0."""
    from ..diffusion.pair import resolve_models
    from ..diffusion.refine import refine_iter
    from ..diffusion.schedule import make_schedule
    from ..engine.axes import normalize_axes
    from ..io import read_image, write_image
    from ..output_safety import removed_on_failure

    args.steps, args.samples = sampling_of(args)
    make_schedule(args.steps)  # a bad step count fails before any work
    previews = list(range(args.save_steps, args.steps + 1, args.save_steps)) if args.save_steps else []
    suffixes = ["_mean", "_std"] + [f"_x0_step{step:04d}" for step in previews]
    planned = plan_outputs(args.inputs, args.output, suffixes, args.overwrite)
    # a named model loads once, before any work; by default each image gets the bundled
    # denoiser for its channel count (dvsr-photo for RGB, dvsr-microscopy otherwise)
    models = resolve_models(args.model, args.predictor) if args.model else None
    check_writable(args.output)
    used = []  # the models that ran, for the do-no-harm warnings at the end
    for path, outputs in zip(args.inputs, planned):
        image = read_image(path)
        plain = {"photometric": image.metadata["photometric"]} if "photometric" in image.metadata else {}
        write = dict(scale=image.scale, unit=image.unit, metadata=plain, overwrite=args.overwrite)
        wanted = dict(zip(previews, outputs[2:]))
        # previews appear as the run goes; if it fails or is interrupted, every file it wrote for
        # this input goes again (a replaced one too: it was this run's), so a rerun is not blocked
        with removed_on_failure() as written:

            def save(target, array, axes, write=write):
                written.append(write_image(target, array, axes, **write))

            try:
                axes = normalize_axes(args.axes or image.axes, image.array.shape)
                gen = refine_iter(
                    image.array,
                    models,
                    predictor=None if models else args.predictor,
                    steps=args.steps,
                    samples=args.samples,
                    seed=args.seed,
                    sampler=args.sampler,
                    axes=axes,
                    device=args.device,
                    precision=args.precision,
                    tile=args.tile,
                    normalize=args.normalize,
                )
                bar = ProgressBar(path.name, enabled=not args.quiet)
                result = drive(_saving_previews(gen, wanted, axes, save), bar)
            except (ValueError, TypeError) as err:
                raise CLIError(f"{path}: {one_line(err)}") from None
            save(outputs[0], result.mean, result.axes)
            save(outputs[1], result.std, result.axes)
        if not args.quiet:
            info = result.info
            print(
                f"{path} -> {outputs[0]}, {outputs[1].name}  ({info.get('model')} + {info.get('predictor')}, "
                f"{info['sampler']} {info['steps']} steps x {info['samples']} samples, seed {info['seed']}, "
                f"{info.get('device')} {info.get('precision')}, {info.get('seconds', 0):.1f} s)",
                file=sys.stderr,
            )
            used += info.get("bundled_weights", [])
    warn_ungated(*used)
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
