"""What the ``napari-deblur`` subcommands share: the expected-failure exception, argument
types, the engine options, output planning and the terminal progress bar.

Nothing here imports torch or the engine, so building the parser (and ``--help``) stays quick.
"""

import argparse
import shutil
import sys
import time
from pathlib import Path

PROG = "napari-deblur"


class CLIError(Exception):
    """An expected failure: reported as ``napari-deblur: error: <message>``, exit status 2."""


def one_line(err) -> str:
    """``err`` as one line of text (its type name if it has no message); an OSError that does not
    name its file gets the file name in front."""
    text = " ".join(str(err).split()) if str(err).strip() else type(err).__name__
    if isinstance(err, OSError) and err.filename and str(err.filename) not in text:
        text = f"{err.filename}: {text}"
    return text


def add_engine_options(parser):
    """--device, --precision, --tile, --overwrite, --quiet."""
    parser.add_argument(
        "--device",
        default="auto",
        metavar="auto|cpu|cuda|mps",
        help="where the network runs (default: auto = CUDA, then MPS, then CPU)",
    )
    parser.add_argument(
        "--precision",
        default="auto",
        choices=["auto", "fp32", "fp16", "bf16"],
        help="network precision (default: auto = fp16 on GPU, fp32 on CPU)",
    )
    parser.add_argument(
        "--tile",
        default="auto",
        type=tile_size,
        metavar="auto|N",
        help="tile side in pixels (default: auto, from free memory)",
    )
    parser.add_argument("--overwrite", action="store_true", help="replace existing output files")
    parser.add_argument("--quiet", "-q", action="store_true", help="print nothing but errors")


def tile_size(text):
    """``--tile``: ``auto`` or a whole number of pixels."""
    if text == "auto":
        return text
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected 'auto' or a number of pixels, got {text!r}") from None


def positive_int(text):
    """An argument type for integers of at least 1."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def normalize_mode(text):
    """``--normalize``: ``auto``, ``dtype``, ``percentile`` or a ``(LO, HI)`` pair of percentiles."""
    if text in ("auto", "dtype", "percentile"):
        return text
    try:
        lo, hi = (float(v) for v in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected auto, dtype, percentile or LO,HI percentiles, got {text!r}"
        ) from None
    return (lo, hi)


def stem_of(path: Path) -> str:
    """The file name without its suffix, ``.ome.tif(f)`` counted as one suffix."""
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
        """Redraw the bar for an engine progress report (at most every 0.1 s, and at the end)."""
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


def check_writable(folder: Path) -> None:
    """Create the output folder and write a probe file there, before any computation."""
    from ..output_safety import check_writable as probe

    probe(folder)


def warn_ungated(*names) -> None:
    """Say on stderr, once per name, which bundled models among ``names`` have not passed the
    real-data do-no-harm gate (:func:`napari_deblur.models.weights.gate_warning`)."""
    from ..models.weights import gate_warning

    for name in dict.fromkeys(names):
        warning = gate_warning(name)
        if warning:
            print(f"napari-deblur: warning: {warning}", file=sys.stderr)
