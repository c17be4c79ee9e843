"""Which form of the XYDeblur forward pass is fastest on this device, and where its time goes.

The engine runs XYDeblur in one of three decoder forms (``napari_deblur.engine.runtime.
DECODER_FORMS``): ``two-pass`` (the decoder twice, the second time on rotated features, as
the official code does) or both branches in one pass with rotated kernels (``twin-grouped``:
convolutions of two groups; ``twin-dense``: block-diagonal dense convolutions). This script
times each form per frame on the bundled ``xydeblur-photo``, in fp16 and bf16, channels_last
and NCHW, with the largest difference from the fp32 two-pass output; profiles the CUDA
kernels of the two-pass and the twin-grouped forward at 720p; and times ``torch.compile`` of
the two-pass and the fastest form (default mode; the fastest also with max-autotune), each
compile in its own process under a time limit.

    python tools/xydeblur_variants.py --device cuda --out variants.json
    python tools/xydeblur_variants.py --device cpu --sizes 256x256 --repeats 3 --no-compile

It prints a line per variant and writes JSON whose ``fastest`` is the quickest eager form at
the first size within 1e-2 of fp32 (the bench then runs with
``NAPARI_DEBLUR_DECODER=<fastest>``; tools/gpu_session.py does this).
"""

import argparse
import copy
import functools
import json
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from napari_deblur.engine.device import describe, pick_device  # noqa: E402
from napari_deblur.engine.runtime import DECODER_FORMS, synchronize  # noqa: E402
from napari_deblur.models.twin import TwinDecoderXYDeblur  # noqa: E402
from napari_deblur.models.weights import load_model  # noqa: E402
from napari_deblur.speed.timing import median_seconds, sample_frame, short_error, tf32  # noqa: E402

FORMS = DECODER_FORMS
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}


@functools.lru_cache(maxsize=1)
def bundled_photo_model():
    """xydeblur-photo, read once (every variant copies it)."""
    return load_model("xydeblur-photo").float().eval()


def build(form: str, device, dtype, channels_last: bool):
    model = copy.deepcopy(bundled_photo_model())
    net = model if form == "two-pass" else TwinDecoderXYDeblur(model, form.split("-", 1)[1]).eval()
    net = net.to(device=device, dtype=dtype).requires_grad_(False)
    return net.to(memory_format=torch.channels_last) if channels_last else net


def frame(size, device, dtype, channels_last: bool):
    height, width = size
    x = torch.from_numpy(sample_frame(height, width, 3)[None]).to(device=device, dtype=dtype)
    return x.contiguous(memory_format=torch.channels_last) if channels_last else x


def forward(net, x):
    with torch.inference_mode():
        r_hor, r_ver = net.residuals(x)
        return x + r_hor + r_ver


def reference(size, device):
    with tf32(False):
        return forward(
            build("two-pass", device, torch.float32, False), frame(size, device, torch.float32, False)
        ).float()


def time_variant(form, precision, layout, size, device, repeats, expected) -> dict:
    channels_last = layout == "channels_last"
    net = build(form, device, DTYPES[precision], channels_last)
    x = frame(size, device, DTYPES[precision], channels_last)
    row = {"form": form, "precision": precision, "layout": layout, "size": f"{size[0]}x{size[1]}"}
    try:
        row["ms"] = 1000 * median_seconds(lambda: forward(net, x), device, repeats, warmup=3)
        row["max_diff"] = float((forward(net, x).float() - expected).abs().max())
    except Exception as err:  # an unsupported layout or precision on this device  # noqa: BLE001
        row["error"] = short_error(err)
    return row


def profile(form, size, device, rows: int = 12) -> str:
    """The CUDA kernels of one fp16 channels_last forward, by total time."""
    from torch.profiler import ProfilerActivity
    from torch.profiler import profile as torch_profile

    net = build(form, device, torch.float16, True)
    x = frame(size, device, torch.float16, True)
    for _ in range(3):
        forward(net, x)
    synchronize(device)
    with torch_profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(5):
            forward(net, x)
        synchronize(device)
    return prof.key_averages().table(sort_by="device_time_total", row_limit=rows, max_name_column_width=70)


def compile_one(form: str, mode: str, size, device_name: str, repeats: int) -> dict:
    """Runs in a child process: compile ``form`` with ``mode`` and time it (fp16, channels_last)."""
    device = pick_device(device_name)
    torch.backends.cudnn.benchmark = True
    expected = reference(size, device)
    net = build(form, device, torch.float16 if device.type == "cuda" else torch.float32, device.type == "cuda")
    x = frame(size, device, next(net.parameters()).dtype, device.type == "cuda")
    compiled = torch.compile(net.residuals, mode=mode)
    start = time.perf_counter()
    with torch.inference_mode():
        compiled(x)
    synchronize(device)
    compile_s = time.perf_counter() - start

    def run():
        with torch.inference_mode():
            r_hor, r_ver = compiled(x)
            return x + r_hor + r_ver

    ms = 1000 * median_seconds(run, device, repeats, warmup=3)
    return {
        "form": form,
        "compile_mode": mode,
        "size": f"{size[0]}x{size[1]}",
        "ms": ms,
        "compile_seconds": compile_s,
        "max_diff": float((run().float() - expected).abs().max()),
    }


def time_eager(sizes, device, repeats, report, save) -> tuple:
    """Every eager form, precision and layout at the first size, the engine's at the others;
    returns the precisions and layouts tried (the engine's first)."""
    cuda = device.type == "cuda"
    low = ("fp16", "bf16") if cuda else ("fp32",)
    layouts = ("channels_last", "contiguous") if cuda else ("contiguous",)
    for index, size in enumerate(sizes):
        expected = reference(size, device)
        for form in FORMS:
            for precision in low:
                for layout in layouts:
                    if index and (precision != low[0] or layout != layouts[0]):
                        continue  # the larger sizes: the engine's precision and layout only
                    row = time_variant(form, precision, layout, size, device, repeats, expected)
                    report["eager"].append(row)
                    print(
                        f"  {row['size']:>10} {form:>12} {precision} {layout:>13}: "
                        + (f"{row['ms']:8.2f} ms  max diff {row['max_diff']:.1e}" if "ms" in row else row["error"])
                    )
        save()
    return low, layouts


def fastest_form(report, first: str, precision: str, layout: str) -> str:
    """The fastest eager form at size ``first`` within 1e-2 of the fp32 reference."""
    candidates = [
        r
        for r in report["eager"]
        if r["size"] == first
        and "ms" in r
        and r["max_diff"] <= 1e-2
        and r["precision"] == precision
        and r["layout"] == layout
    ]
    return min(candidates, key=lambda r: r["ms"])["form"]


def compile_in_subprocess(args, form: str, mode: str) -> dict:
    """One compiled variant in a fresh process (its own compile time, a hang cut off)."""
    size = args.sizes.split(",")[0]
    cmd = [sys.executable, __file__, "--device", args.device, "--sizes", size, "--repeats", str(args.repeats)]
    cmd += ["--compile-one", form, mode]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=args.compile_timeout)
    except subprocess.TimeoutExpired:
        return {"form": form, "compile_mode": mode, "error": f"over {args.compile_timeout:.0f} s"}
    lines = done.stdout.strip().splitlines()
    if done.returncode == 0 and lines:
        return json.loads(lines[-1])
    return {"form": form, "compile_mode": mode, "error": done.stderr.strip()[-300:]}


def time_compiled(args, fastest: str, report, save) -> None:
    """The reference form and the fastest eager form through ``torch.compile``, each mode."""
    runs = [("two-pass", "default")] + ([(fastest, "default")] if fastest != "two-pass" else [])
    runs += [(fastest, mode) for mode in args.compile_modes.split(",") if mode != "default"]
    for form, mode in runs:
        row = compile_in_subprocess(args, form, mode)
        report["compiled"].append(row)
        if "ms" in row:
            result = (
                f"{row['ms']:8.2f} ms after {row['compile_seconds']:.0f} s of compiling, max diff {row['max_diff']:.1e}"
            )
        else:
            result = row["error"]
        print(f"  compiled {form:>12} ({mode}): {result}")
        save()


def parse_args(argv):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--sizes", default="720x1280,2048x2048")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--compile-modes", default="default,max-autotune-no-cudagraphs")
    parser.add_argument("--compile-timeout", type=float, default=120, help="seconds per compiled variant")
    parser.add_argument("--compile-one", nargs=2, metavar=("FORM", "MODE"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes.split(",")]
    if args.compile_one:
        print(json.dumps(compile_one(*args.compile_one, sizes[0], args.device, args.repeats)))
        return 0

    device = pick_device(args.device)
    torch.backends.cudnn.benchmark = True
    report = {
        "device": describe(device),
        "torch": torch.__version__,
        "repeats": args.repeats,
        "eager": [],
        "compiled": [],
        "profiles": {},
    }

    def save():
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(report, indent=2) + "\n")

    print(f"XYDeblur forward forms on {report['device']}, torch {torch.__version__}, median of {args.repeats}")
    low, layouts = time_eager(sizes, device, args.repeats, report, save)
    first = f"{sizes[0][0]}x{sizes[0][1]}"
    report["fastest"] = fastest_form(report, first, low[0], layouts[0])
    print(f"fastest at {first} ({low[0]}, {layouts[0]}): {report['fastest']}")
    save()
    if device.type == "cuda":
        for form in ("two-pass", "twin-grouped"):
            try:
                report["profiles"][form] = profile(form, sizes[0], device)
            except Exception as err:  # the profiler is a nicety: the timings stand without it  # noqa: BLE001
                report["profiles"][form] = f"profiler failed: {type(err).__name__}: {err}"
            print(f"CUDA kernels of {form} at {first} (5 forwards):\n{report['profiles'][form]}")
        save()
    if not args.no_compile:
        time_compiled(args, report["fastest"], report, save)
    return 0


if __name__ == "__main__":
    sys.exit(main())
