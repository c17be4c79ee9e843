"""The ``napari-deblur`` command line (also ``python -m napari_deblur``).

One module per subcommand, each with an ``add_<name>(subparsers)`` that adds its parser and sets
``handler`` to the function that runs it:

- :mod:`.xy` (``xy``), :mod:`.diffuse` (``diffuse``), :mod:`.train` (``train``),
  :mod:`.pack` (``pack``), :mod:`.export` (``export``), :mod:`.evaluate` (``eval``),
  :mod:`.bench` (``bench``);
- :mod:`.common` holds what they share (:class:`CLIError`, argument types, the engine options,
  output planning, :class:`ProgressBar`).

:data:`SUBCOMMANDS` lists them in the order ``--help`` shows them. Handlers raise
:class:`CLIError` (or ValueError/TypeError/OSError, e.g. ``WeightsError``) for expected failures,
which :func:`main` reports as one line and exit status 2. torch and the engine are imported only
inside handlers, so ``--help`` is quick.
"""

import argparse
import sys

from .. import __version__
from .bench import add_bench
from .common import PROG, CLIError, ProgressBar, one_line
from .diffuse import add_diffuse
from .evaluate import add_eval
from .export import add_export
from .pack import add_pack
from .train import add_train
from .xy import add_xy

__all__ = ["PROG", "SUBCOMMANDS", "CLIError", "ProgressBar", "build_parser", "main"]

SUBCOMMANDS = (add_xy, add_diffuse, add_train, add_pack, add_export, add_eval, add_bench)
"""The subcommands' ``add_<name>(subparsers)`` functions, in the order ``--help`` lists them."""


def build_parser() -> argparse.ArgumentParser:
    """The ``napari-deblur`` parser with every subcommand of :data:`SUBCOMMANDS`."""
    parser = argparse.ArgumentParser(
        prog=PROG, description="Deblur microscopy images and photographs with XYDeblur (CVPR 2022)."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for add in SUBCOMMANDS:
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
