"""``napari-deblur eval``: the quality benchmark (synthetic, seeded, held-out) or, with
``--real``, the real-data tracks and the do-no-harm gate."""

import sys
from pathlib import Path

from .common import CLIError, positive_int


def add_eval(subparsers):
    """Add the ``eval`` parser."""
    parser = subparsers.add_parser(
        "eval",
        help="benchmark the bundled models against oracle Wiener and Richardson-Lucy",
        description="A fixed, seeded benchmark on held-out photos and synthetic fluorescence scenes, blurred by "
        "kernels and PSFs outside the training families, at two noise levels. Scores the blurry input, "
        "Wiener and Richardson-Lucy with the true kernel (tuned on a separate split) and every bundled "
        "XYDeblur by PSNR/SSIM and time per image; writes DIR/benchmark.md, DIR/benchmark.json and "
        "DIR/clock_motion.png (scikit-image's real motion-blurred photo: input | restored).",
    )
    parser.add_argument("--quick", action="store_true", help="a tiny version for CI (small crops, few images)")
    parser.add_argument(
        "--out", type=Path, default=Path("benchmarks"), metavar="DIR", help="output folder (default: benchmarks)"
    )
    parser.add_argument(
        "--models",
        nargs="+",
        default=None,
        metavar="NAME",
        help="bundled model names or weights files, XYDeblur or diffusion denoisers (default: every bundled model)",
    )
    parser.add_argument(
        "--device",
        default="auto",
        metavar="auto|cpu|cuda|mps",
        help="where the models run (default: auto = CUDA, then MPS, then CPU)",
    )
    parser.add_argument(
        "--diffusion-cases",
        type=positive_int,
        default=None,
        metavar="N",
        help="images per noise level for the diffusion rows (default: 4; 1 with --quick)",
    )
    parser.add_argument(
        "--diffusion-crop",
        type=positive_int,
        default=None,
        metavar="PX",
        help="crop side for the diffusion rows (default: 256; 64 with --quick)",
    )
    parser.add_argument(
        "--real",
        type=Path,
        default=None,
        metavar="DATA",
        help="instead, the real-data tracks on the project's data folder (e.g. ../shared/data): "
        "real GoPro pairs, held-out real photos and fluorescence, identity tracks, the "
        "do-no-harm gate and a contact sheet; writes DIR/real.md, real.json, contact_sheet.png",
    )
    parser.add_argument(
        "--record",
        action="store_true",
        help="with --real (full, not --quick): write each bundled model's real-track numbers and gate verdict "
        "into its manifest in the resources folder (the weights are not touched)",
    )
    parser.set_defaults(handler=run_eval)


def run_eval(args) -> int:
    """Run the benchmark (or the real-data tracks) and print its Markdown report; returns 0."""
    from ..evaluation.benchmark import run_benchmark

    if args.record and (args.real is None or args.quick):
        raise CLIError("--record needs --real DATA and a full run (no --quick)")
    if args.real is not None:
        from ..evaluation.benchmark import select_models, split_model_names
        from ..evaluation.diffusion import select_denoisers
        from ..evaluation.real import run_real_benchmark
        from ..models.registry import bundled_models

        xy_names, den_names = split_model_names(args.models)
        models = select_models(xy_names) if xy_names is None or xy_names else []
        denoisers = select_denoisers(den_names)
        if args.record:
            bundled = bundled_models()
            loose = [m["source"] for m in [*models, *denoisers] if m["source"] not in bundled]
            if loose:
                raise CLIError(f"--record writes bundled manifests only; not bundled: {', '.join(loose)}")
        report = run_real_benchmark(
            args.real,
            args.out,
            models=models,
            denoisers=denoisers,
            quick=args.quick,
            device=args.device,
            diffusion_cases=args.diffusion_cases or 3,
            log=lambda line: print(line, file=sys.stderr),
        )
        print((args.out / "real.md").read_text())
        if args.record:
            from ..training.export import record_real_benchmark

            for name in report["gate"]:
                path = record_real_benchmark(report, name)
                print(f"recorded in {path}: gate {'passed' if report['gate'][name]['passed'] else 'FAILED'}")
        return 0

    diffusion = {k: v for k, v in (("cases", args.diffusion_cases), ("crop", args.diffusion_crop)) if v}
    run_benchmark(
        args.out,
        quick=args.quick,
        models=args.models,
        device=args.device,
        diffusion=diffusion,
        log=lambda line: print(line, file=sys.stderr),
    )
    print((args.out / "benchmark.md").read_text())
    return 0
