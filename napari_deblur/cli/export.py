"""``napari-deblur export``: a training run's EMA weights as a bundled model (fp16 safetensors
plus a JSON manifest), optionally through the do-no-harm gate on real data."""

import argparse
import sys
from pathlib import Path

from .common import PROG, CLIError


class DeprecatedAlias(argparse.Action):
    """Store an option's value under the option it stands for (``replacement``), with a warning
    on stderr that names the option to use instead."""

    def __init__(self, option_strings, dest, replacement: str, **kwargs):
        super().__init__(option_strings, dest, **kwargs)
        self.replacement = replacement

    def __call__(self, parser, namespace, values, option_string=None):
        print(f"{PROG}: warning: {option_string} is deprecated; use {self.replacement}", file=sys.stderr)
        setattr(namespace, self.dest, values)


def add_export(subparsers):
    """Add the ``export`` parser."""
    parser = subparsers.add_parser(
        "export",
        help="write a training run's EMA weights as a bundled model (fp16 safetensors + manifest)",
    )
    parser.add_argument("run", type=Path, metavar="RUN_DIR")
    parser.add_argument("--name", required=True, help="model name, e.g. xydeblur-photo")
    parser.add_argument("--out", type=Path, default=Path("resources"), metavar="DIR")
    parser.add_argument(
        "--trained-on",
        dest="trained_on",
        default="",
        metavar="DEVICE",
        help="where it was trained, a label for the manifest (e.g. 'NVIDIA H100')",
    )
    parser.add_argument(
        "--device",
        dest="trained_on",
        default="",
        metavar="DEVICE",
        action=DeprecatedAlias,
        replacement="--trained-on",
        help="deprecated alias for --trained-on",
    )
    parser.add_argument("--note", default="", help="a remark for the manifest")
    parser.add_argument(
        "--benchmark",
        type=Path,
        default=None,
        metavar="JSON",
        help="a benchmark.json from `napari-deblur eval`: this model's results go into the manifest",
    )
    parser.add_argument(
        "--real",
        type=Path,
        default=None,
        metavar="DATA",
        help="the do-no-harm gate: score the candidate on the real-data tracks of DATA (e.g. "
        "../shared/data) and write it only if it passes; required to export into the bundled "
        "resources folder",
    )
    parser.add_argument("--quick-gate", action="store_true", help="with --real: the quick (small) real tracks")
    parser.add_argument(
        "--gate-report",
        type=Path,
        default=None,
        metavar="DIR",
        help="with --real: where the candidate's real.md/real.json go (default: a temporary folder)",
    )
    parser.add_argument("--gate-device", default="auto", help="with --real: where the candidate runs")
    parser.set_defaults(handler=run_export)


def run_export(args) -> int:
    """Export the run's weights (through the gate with ``--real``); returns 0."""
    import json

    from ..training.export import export_run
    from ..training.export_dvsr import export_dvsr_run

    config = json.loads((args.run / "config.json").read_text())
    export = export_dvsr_run if "predictor" in config else export_run  # a dvsr run names its predictor
    benchmark = None
    if args.benchmark is not None:
        from ..evaluation.summary import model_results

        benchmark = model_results(json.loads(args.benchmark.read_text()), args.name)
    kwargs = dict(device=args.trained_on, note=args.note, benchmark=benchmark)
    if args.real is None:
        from ..resources import resources_dir

        if args.out.resolve() == resources_dir().resolve():
            raise CLIError(f"exporting into the bundled models ({args.out}) needs --real DATA: the do-no-harm gate")
        print(export(args.run, args.name, args.out, **kwargs))
        return 0
    from ..training.export import gated_export

    written, verdict = gated_export(
        export,
        args.run,
        args.name,
        args.out,
        args.real,
        quick=args.quick_gate,
        run_device=args.gate_device,
        bench_dir=args.gate_report,
        log=lambda line: print(line, file=sys.stderr),
        **kwargs,
    )
    for check in verdict["checks"]:
        print(
            f"{'ok   ' if check['passed'] else 'FAIL '} {check['track']}: {check['check']}: {check['value']}",
            file=sys.stderr,
        )
    if written is None:
        raise CLIError(f"{args.name} failed the do-no-harm gate; nothing was written to {args.out}")
    print(written)
    return 0
