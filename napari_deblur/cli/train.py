"""``napari-deblur train``: train (or resume) an XYDeblur or a dvsr diffusion denoiser.

The XYDeblur run is configured here as a :class:`napari_deblur.training.train_xydeblur.TrainConfig`; a dvsr
run hands its arguments to :func:`napari_deblur.training.train_dvsr.run_from_args`. Both take the
data-source options from :func:`data_options`.
"""

import sys
from pathlib import Path

from .common import CLIError


def add_train(subparsers):
    """Add the ``train`` parser."""
    parser = subparsers.add_parser(
        "train",
        help="train (or continue training) a model on synthetic or paired data",
        description="Train XYDeblur (or, with dvsr, a diffusion denoiser for a frozen XYDeblur) in OUT. "
        "Running the same command again on the same OUT resumes "
        "exactly where it stopped (checkpoints in shards under 16 MiB).",
    )
    parser.add_argument(
        "architecture",
        choices=["xydeblur", "dvsr"],
        help="what to train: xydeblur, or dvsr (the diffusion denoiser of a frozen XYDeblur)",
    )
    parser.add_argument("--preset", choices=["photo", "microscopy"], default="photo")
    parser.add_argument(
        "--pairs", default=None, metavar="DIR", help="a folder with blur/ and sharp/ (or raw/ and target/)"
    )
    _add_data_arguments(parser)
    _add_model_arguments(parser)
    _add_run_arguments(parser)
    parser.set_defaults(handler=run_train)


def _add_data_arguments(parser) -> None:
    """The real sharp images and how they are degraded (:class:`~napari_deblur.training.sources.DataOptions`)."""
    data = parser.add_argument_group(
        "real sharp images",
        "Synthetic pairs made from your own sharp images: photos, or fluorescence planes and "
        "stacks, blurred and made noisy like real optics and sensors; the procedural scenes stay "
        "as a minority. The benchmark's held-out files are always left out.",
    )
    data.add_argument(
        "--sharp",
        nargs="+",
        default=None,
        metavar="DIR|FILE|BANK.npz",
        help="folders (searched recursively), image files or crop banks (napari-deblur pack)",
    )
    data.add_argument(
        "--psf",
        dest="psfs",
        nargs="+",
        default=None,
        metavar="TIFF",
        help="microscopy: measured or computed PSFs (2D, or 3D Z stacks) added to the training PSFs",
    )
    data.add_argument("--real-share", type=float, default=0.9, help="share of sharp tiles from --sharp (default 0.9)")
    data.add_argument(
        "--identity-prob",
        type=float,
        default=0.08,
        help="share of unblurred (noisy) inputs, which must come back as they are (default 0.08)",
    )
    data.add_argument(
        "--jpeg-prob",
        type=float,
        default=0.25,
        help="photo: share of JPEG-compressed inputs, quality 70-95 (default 0.25)",
    )
    data.add_argument(
        "--motion-prob",
        type=float,
        default=0.0,
        help="photo: share of inputs blurred by dynamic-scene motion (a sharp frame averaged along "
        "smooth, spatially varying flows, as in GoPro-style data) instead of a kernel (default 0)",
    )
    data.add_argument(
        "--display-blur-prob",
        dest="display_prob",
        type=float,
        default=0.0,
        help="photo: share of inputs blurred on their clipped, gamma-encoded values instead of in "
        "linear light, as video-derived datasets such as GoPro were made (default 0)",
    )
    data.add_argument(
        "--soft-prob",
        type=float,
        default=0.0,
        help="share of real sharp tiles enlarged 1.25-2.5x instead of downscaled: soft targets (video "
        "frames, small-sensor optics, out-of-focus backgrounds) teach the model not to over-sharpen "
        "soft content (default 0)",
    )
    data.add_argument(
        "--kernel-size",
        type=int,
        default=31,
        help="side of the synthetic blur kernels and the longest motion path, odd (default 31)",
    )


def _add_model_arguments(parser) -> None:
    """The starting weights, the optimisation schedule and the network's size."""
    parser.add_argument(
        "--init", default=None, metavar="NAME|PATH", help="start from these weights (e.g. a bundled model)"
    )
    parser.add_argument(
        "--predictor",
        default=None,
        metavar="NAME|PATH",
        help="dvsr: the frozen XYDeblur g(y) (default: xydeblur-photo or xydeblur-microscopy)",
    )
    parser.add_argument("--iters", type=int, default=10000)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--crop", type=int, default=None, help="training crop side (default: xydeblur 192, dvsr 128)")
    parser.add_argument("--lr", type=float, default=3e-4)
    parser.add_argument("--warmup", type=int, default=300)
    parser.add_argument("--ema", type=float, default=0.999, help="EMA decay of the exported weights")
    parser.add_argument("--fft-weight", type=float, default=0.05, help="weight of the Fourier-amplitude L1 (0 = off)")
    parser.add_argument(
        "--pixel-loss",
        choices=["l1", "mse"],
        default="l1",
        help="xydeblur: the pixel loss, l1 (default) or mse (trains for the mean estimate, which PSNR "
        "scores; on real GoPro blur it did worse than l1, see the README)",
    )
    parser.add_argument("--width", type=int, default=32, help="network width (32 = official)")
    parser.add_argument(
        "--blocks",
        type=int,
        default=None,
        help="residual blocks per stage (default: xydeblur 6 = official, dvsr 2 per level)",
    )
    parser.add_argument(
        "--residual-scale",
        type=float,
        default=None,
        help="dvsr: factor on the diffused residual x0 - g(y) (default 5; see ResidualDenoiser)",
    )
    parser.add_argument(
        "--sigma-data",
        type=float,
        default=None,
        help="dvsr: signal std of the output preconditioning (default 0.4; 0 = plain eps output)",
    )


def _add_run_arguments(parser) -> None:
    """Seed, validation and checkpoint cadence, time limit, device and output folder."""
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--val-every", type=int, default=500)
    parser.add_argument("--ckpt-every", type=int, default=500)
    parser.add_argument(
        "--time-limit",
        type=float,
        default=None,
        metavar="SECONDS",
        help="stop (with a checkpoint) after this long; run again to resume",
    )
    parser.add_argument(
        "--fit-iters",
        action="store_true",
        help="with --time-limit: time the first iterations and shorten --iters so the "
        "learning-rate schedule ends within the time limit (a resumed run keeps that length)",
    )
    parser.add_argument("--device", default="auto")
    parser.add_argument(
        "--precision",
        choices=["auto", "fp32", "bf16"],
        default="auto",
        help="number format of the training step: bf16 autocast (float32 weights and loss) or fp32; "
        "auto = bf16 on CUDA and on CPUs with AVX512-BF16 or AMX, fp32 elsewhere",
    )
    parser.add_argument("--out", required=True, type=Path, metavar="DIR")


def run_train(args) -> int:
    """Train (or resume) the run in ``--out``; returns 0."""
    if args.fit_iters and args.time_limit is None:
        raise CLIError("--fit-iters needs --time-limit (the time to fit the schedule into)")
    if args.architecture == "dvsr":
        from ..training.train_dvsr import run_from_args

        return run_from_args(args, data_options(args))
    from ..training.train_xydeblur import TrainConfig, Trainer

    crop, blocks = args.crop if args.crop is not None else 192, args.blocks if args.blocks is not None else 6
    cfg = TrainConfig(
        preset=args.preset,
        iters=args.iters,
        batch=args.batch,
        crop=crop,
        lr=args.lr,
        warmup=args.warmup,
        fft_weight=args.fft_weight,
        pixel_loss=args.pixel_loss,
        ema=args.ema,
        seed=args.seed,
        width=args.width,
        blocks=blocks,
        init=args.init,
        val_every=args.val_every,
        ckpt_every=args.ckpt_every,
        precision=args.precision,
        **data_options(args),
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
    shares = {
        "real_share": "--real-share",
        "identity_prob": "--identity-prob",
        "jpeg_prob": "--jpeg-prob",
        "motion_prob": "--motion-prob",
        "soft_prob": "--soft-prob",
        "display_prob": "--display-blur-prob",
    }
    for name, flag in shares.items():
        if not 0 <= getattr(args, name) <= 1:
            raise CLIError(f"{flag} must be between 0 and 1, got {getattr(args, name)}")
    if args.kernel_size < 3 or args.kernel_size % 2 == 0:
        raise CLIError(f"--kernel-size must be odd and at least 3, got {args.kernel_size}")
    return {
        "pairs": args.pairs,
        "sharp": [str(p) for p in args.sharp] if args.sharp else None,
        "psfs": [str(p) for p in args.psfs] if args.psfs else None,
        "real_share": args.real_share,
        "identity_prob": args.identity_prob,
        "jpeg_prob": args.jpeg_prob,
        "motion_prob": args.motion_prob,
        "soft_prob": args.soft_prob,
        "display_prob": args.display_prob,
        "kernel_size": args.kernel_size,
    }
