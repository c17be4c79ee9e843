"""``napari-deblur bench``: speed of XYDeblur (reference vs optimised path) and of the diffusion
refinement on this machine, as JSON and a Markdown table."""

import sys
from pathlib import Path

from .common import positive_int


def add_bench(subparsers):
    """Add the ``bench`` parser."""
    parser = subparsers.add_parser(
        "bench",
        help="time XYDeblur (reference vs optimised path) and the diffusion refinement on this machine",
        description="Times XYDeblur per frame at several sizes, a reference path written like the official code "
        "(fp32, NCHW, eager, untiled) against the engine's optimised path, in the same run, with the "
        "ratio, peak device memory and the largest output difference; then diffusion denoiser steps "
        "and the Fidelity preset. Prints a table, writes JSON and a Markdown table.",
    )
    parser.add_argument(
        "--device",
        default="auto",
        metavar="auto|cpu|cuda|mps",
        help="where to measure (default: auto = CUDA, then MPS, then CPU)",
    )
    parser.add_argument("--quick", action="store_true", help="fewer sizes and repeats, no Fidelity run (for CI)")
    parser.add_argument("--repeats", type=positive_int, default=None, help="timed runs per figure (median)")
    parser.add_argument(
        "--compile",
        dest="compile_",
        action="store_true",
        help="time the optimised path and the whole call through the engine's torch.compile "
        "(eager where it fails; the compile time falls in the warm-up)",
    )
    parser.add_argument(
        "--cpu-variants",
        action="store_true",
        help="instead: the CPU path's candidates side by side (fp32 NCHW / channels_last, compiled, "
        "bf16, ONNX Runtime when installed), each checked against fp32, then the whole calls "
        "with the engine's channels_last off and on, and their fp32 floor (operations at the rate of an fp32 "
        "matrix product) beside the CPU targets (default report: benchmarks/cpu-variants.json)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        metavar="FILE",
        help="JSON report (default: benchmarks/performance-<cpu|cuda|mps>.json); the table goes next to it as .md",
    )
    parser.set_defaults(handler=run_bench_command)


def run_bench_command(args) -> int:
    """Time this machine, write the JSON and Markdown reports and print the table; returns 0."""
    from ..engine.device import pick_device
    from ..speed import run_bench, to_markdown

    if args.cpu_variants:
        return _cpu_variants(args)
    out = args.out or Path("benchmarks") / f"performance-{pick_device(args.device).type}.json"
    report = run_bench(
        args.device,
        quick=args.quick,
        repeats=args.repeats,
        compile_=args.compile_,
        out=out,
        log=lambda line: print(line, file=sys.stderr),
    )
    return _table(out, to_markdown(report))


def _cpu_variants(args) -> int:
    from ..models.registry import bundled_name
    from ..models.weights import load_model
    from ..speed.cpu_variants import cpu_variants_markdown, run_cpu_variants

    out = args.out or Path("benchmarks") / "cpu-variants.json"
    report = run_cpu_variants(
        load_model(bundled_name("photo")),
        repeats=args.repeats or (3 if args.quick else 7),
        quick=args.quick,
        out=out,
        log=lambda line: print(line, file=sys.stderr),
    )
    return _table(out, cpu_variants_markdown(report))


def _table(out: Path, table: str) -> int:
    """The Markdown table next to the JSON report ``out``, and on stdout; returns 0."""
    out.with_suffix(".md").write_text(table)
    print(table)
    return 0
