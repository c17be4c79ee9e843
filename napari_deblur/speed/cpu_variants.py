"""The CPU path's candidates side by side (``napari-deblur bench --cpu-variants``).

XYDeblur on one frame (256 x 256 by default) in every form the CPU could run it, each timed
in the same process and its restored image compared with the fp32 NCHW eager output:

* ``fp32 NCHW eager``: the reference, the network as the official code runs it;
* ``fp32 channels_last eager``: oneDNN's NHWC convolutions;
* ``fp32 channels_last compiled``: ``torch.compile`` (Inductor, oneDNN convolutions, fused
  pointwise work); its compile time is reported apart;
* ``fp32 channels_last compiled, frozen``: the same with Inductor's ``freezing`` (the weights
  folded in as constants, so oneDNN can prepack them once for its convolutions);
* ``bf16 channels_last eager``: where the CPU has bfloat16 instructions;
* ``onnxruntime`` and ``openvino`` (fp32): when those optional packages are installed.

A form is *kept* when its largest difference stays within :data:`TOLERANCE`. Then the whole
call (:func:`napari_deblur.xydeblur` on a uint8 photo) and, unless ``quick``, the Fidelity
preset of the diffusion refinement, both with the engine's channels_last switch off and on
(``NAPARI_DEBLUR_CHANNELS_LAST``), what compiling costs a first and a second process
(:mod:`.compile_reuse`), and how fast the machine's fp32 arithmetic allows those calls to be
(:mod:`.roofline`: their operations at the rate of an fp32 matrix product), beside the
issue's targets. torch and numpy only.
"""

import contextlib
import datetime
import json
import os
import time
from pathlib import Path

import numpy as np
import torch

from ..engine.device import cpu_has_native_bf16
from ..engine.restore import xydeblur
from ..engine.runtime import device_copy
from .compile_reuse import compile_reuse
from .diffusion import bundled_denoiser, fidelity_image, fidelity_refine, fidelity_seconds
from .roofline import count_gflop, floor_row, matmul_gflops
from .timing import machine_name, median_seconds, sample_frame, short_error

TOLERANCE = 1e-3  # largest difference from fp32 eager (intensities in [0, 1]) a kept form may have
TARGETS_S = {"xydeblur": 0.5, "fidelity": 15.0}  # the CPU targets at 256 x 256 on 2 cores (issue 20)
CPU = torch.device("cpu")


def _network(model, *, channels_last: bool, dtype=torch.float32):
    """The official-structure copy the engine's reference path runs, in ``dtype`` and layout."""
    net = device_copy(model, CPU, dtype, reference=True).requires_grad_(False)
    return net.to(memory_format=torch.channels_last) if channels_last else net


def _restore_fn(residuals, x):
    def run():
        with torch.inference_mode():
            r_hor, r_ver = residuals(x)
            return (x + r_hor + r_ver).float()

    return run


def _compiled_residuals(net):
    """``net.residuals`` through ``torch.compile`` (dynamic shapes), compiled afresh: Dynamo's
    in-memory cache is cleared first, or a second copy of the same network can reuse the code
    an earlier form compiled (seen on this bench: the frozen form's first call took 1.1 s, not
    the 30 s of a real compilation)."""
    torch._dynamo.reset()
    return torch.compile(net.residuals, dynamic=True)


def _frozen_residuals(net):
    """``net.residuals`` compiled with Inductor's ``freezing`` on (it must be on when the first
    call compiles; it stays on for every call, so a recompilation freezes too)."""
    from torch._inductor import config as inductor_config

    compiled = _compiled_residuals(net)

    def residuals(x):
        with inductor_config.patch(freezing=True):
            return compiled(x)

    return residuals


class _Residuals(torch.nn.Module):
    """``net.residuals`` as a module's forward, for the exporters."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net.residuals(x)


def _onnx_residuals(net, x):
    """A function running ``net.residuals`` through ONNX Runtime, or raise why it cannot."""
    import io
    import warnings

    import onnxruntime  # optional extra

    buffer = io.BytesIO()
    with warnings.catch_warnings():  # the tracer's note on the shape check, fixed for one shape
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _Residuals(net), (x,), buffer, input_names=["x"], output_names=["r_hor", "r_ver"], dynamo=False
        )
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = onnxruntime.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])

    def residuals(t):
        r_hor, r_ver = session.run(None, {"x": t.numpy()})
        return torch.from_numpy(r_hor), torch.from_numpy(r_ver)

    return residuals


def _openvino_residuals(net, x):
    """A function running ``net.residuals`` through OpenVINO in fp32 (its default on CPUs with
    bfloat16 instructions is bf16, which would not be the same network), or raise why not."""
    import warnings

    import openvino  # optional extra

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = openvino.convert_model(_Residuals(net), example_input=x)
    compiled = openvino.Core().compile_model(
        model, "CPU", {"INFERENCE_PRECISION_HINT": "f32", "INFERENCE_NUM_THREADS": torch.get_num_threads()}
    )

    def residuals(t):
        out = compiled(t.numpy())
        return torch.from_numpy(out[0]), torch.from_numpy(out[1])

    return residuals


FORMS = (
    "fp32 NCHW eager",
    "fp32 channels_last eager",
    "fp32 channels_last compiled",
    "fp32 channels_last compiled, frozen",
    "bf16 channels_last eager",
    "onnxruntime",
    "openvino",
)


def time_forms(model, size=(256, 256), repeats: int = 5, log=print, forms=FORMS) -> list[dict]:
    """One row per form of ``forms`` (names from :data:`FORMS`; the first is the reference the
    others are compared with): ms per frame, speed-up over the reference, max difference, kept."""
    height, width = size
    x = torch.from_numpy(sample_frame(height, width, model.channels)[None])
    reference = _network(model, channels_last=False)
    expected = _restore_fn(reference.residuals, x)()
    nhwc = x.contiguous(memory_format=torch.channels_last)
    builders = [
        ("fp32 NCHW eager", lambda: (reference.residuals, x)),
        ("fp32 channels_last eager", lambda: (_network(model, channels_last=True).residuals, nhwc)),
        ("fp32 channels_last compiled", lambda: (_compiled_residuals(_network(model, channels_last=True)), nhwc)),
        ("fp32 channels_last compiled, frozen", lambda: (_frozen_residuals(_network(model, channels_last=True)), nhwc)),
        (
            "bf16 channels_last eager",
            lambda: (_network(model, channels_last=True, dtype=torch.bfloat16).residuals, nhwc.bfloat16()),
        ),
        ("onnxruntime", lambda: (_onnx_residuals(_network(model, channels_last=False), x), x)),
        ("openvino", lambda: (_openvino_residuals(_network(model, channels_last=False), x), x)),
    ]
    rows, reference_ms = [], None
    for name, build in builders:
        if name not in forms:
            continue
        row = {"form": name, "size": f"{height}x{width}"}
        if name.startswith("bf16") and not cpu_has_native_bf16():
            row["note"] = "no native bfloat16 on this CPU (emulated)"
        try:
            start = time.perf_counter()
            residuals, inp = build()
            run = _restore_fn(residuals, inp)
            out = run()  # the first call: compiles, where the form compiles
            row["first_call_s"] = time.perf_counter() - start
            row["ms"] = 1000 * median_seconds(run, CPU, repeats, warmup=1)
            row["max_diff"] = float((out - expected).abs().max())
            row["kept"] = row["max_diff"] <= TOLERANCE
        except Exception as err:  # an optional backend missing or failing is a row, not a crash  # noqa: BLE001
            row["error"] = short_error(err)
            rows.append(row)
            log(f"  {name:<28} {row['error']}")
            continue
        reference_ms = reference_ms or row["ms"]
        row["speedup"] = reference_ms / row["ms"]
        rows.append(row)
        log(
            f"  {name:<28} {row['ms']:8.1f} ms  x{row['speedup']:.2f}  max diff {row['max_diff']:.1e}  "
            f"{'kept' if row['kept'] else 'rejected'}  (first call {row['first_call_s']:.1f} s)"
        )
    return rows


@contextlib.contextmanager
def engine_layout(channels_last: bool):
    """The engine's channels_last switch set for the code inside ``with``, restored after."""
    saved = os.environ.get("NAPARI_DEBLUR_CHANNELS_LAST")
    os.environ["NAPARI_DEBLUR_CHANNELS_LAST"] = "1" if channels_last else "0"
    try:
        yield
    finally:
        if saved is None:
            del os.environ["NAPARI_DEBLUR_CHANNELS_LAST"]
        else:
            os.environ["NAPARI_DEBLUR_CHANNELS_LAST"] = saved


def _sample_photo(size) -> np.ndarray:
    """The sample frame at ``size`` as the uint8 (H, W, 3) photo a user would pass."""
    return np.ascontiguousarray((sample_frame(*size, 3).transpose(1, 2, 0) * 255).round().astype(np.uint8))


def time_whole_calls(model, size=(256, 256), repeats: int = 5, fidelity: bool = True, log=print) -> list[dict]:
    """The engine's whole calls with its layout off and on: ``xydeblur`` on a uint8 photo and,
    with ``fidelity``, the Fidelity preset of the photo pair."""
    height, width = size
    photo = _sample_photo(size)
    rows = []
    for layout in (False, True):
        name = "channels_last" if layout else "NCHW"
        with engine_layout(layout):
            seconds = median_seconds(lambda: xydeblur(photo, model, device="cpu"), CPU, repeats, warmup=1)
            rows.append({"call": "xydeblur", "layout": name, "size": f"{height}x{width}", "seconds": seconds})
            log(f"  xydeblur() {height}x{width} uint8, {name:<13} {seconds:7.3f} s")
            if fidelity:
                seconds = fidelity_seconds(CPU, size)
                rows.append({"call": "fidelity", "layout": name, "size": f"{height}x{width}", "seconds": seconds})
                log(f"  Fidelity preset {height}x{width}, {name:<13} {seconds:7.2f} s")
    return rows


def fp32_floor(model, size, calls: list[dict], *, fidelity: bool = True, log=print) -> dict:
    """The whole calls' operations (``xydeblur`` and, with ``fidelity``, the Fidelity preset)
    against this machine's fp32 matrix-product rate: the fastest each could run in fp32 here,
    beside what ``calls`` (:func:`time_whole_calls`' rows) measured with channels_last and the
    targets in :data:`TARGETS_S`."""
    rate = matmul_gflops()
    log(f"  fp32 matrix product (2048 x 2048): {rate:.0f} GFLOP/s")
    measured = {row["call"]: row["seconds"] for row in calls if row["layout"] == "channels_last"}
    photo = _sample_photo(size)
    work = {"xydeblur": lambda: xydeblur(photo, model, device="cpu")}
    if fidelity:
        models, image = bundled_denoiser(log=lambda *_: None)[:2], fidelity_image(size)
        work["fidelity"] = lambda: fidelity_refine(image, models, CPU)
    rows = []
    for call, fn in work.items():
        row = floor_row(call, count_gflop(fn), rate, measured.get(call), TARGETS_S[call])
        rows.append(row)
        log(
            f"  {call:<9} {row['gflop']:8.1f} GFLOP: at least {row['floor_s']:.2f} s in fp32 here "
            f"(target {row['target_s']:g} s)"
        )
    return {"size": f"{size[0]}x{size[1]}", "matmul_gflops": rate, "rows": rows}


def run_cpu_variants(model, *, size=(256, 256), repeats: int = 5, quick: bool = False, out=None, log=print) -> dict:
    """Both parts as one report (written as JSON to ``out`` when given): the forms of the
    network and the engine's whole calls; ``quick`` skips the Fidelity preset."""
    report = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "machine": machine_name(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "bf16_native": cpu_has_native_bf16(),
        "tolerance": TOLERANCE,
        "repeats": repeats,
    }
    # the whole calls first: once torch.compile has run in a process, eager NCHW convolutions
    # ran faster there than in a fresh process (seen on a 2-core Xeon), which would flatter NCHW
    log("The engine's whole calls, its channels_last switch off and on:")
    report["calls"] = time_whole_calls(model, size, repeats, fidelity=not quick, log=log)
    log(f"XYDeblur forms on the CPU at {size[0]}x{size[1]}, {torch.get_num_threads()} threads:")
    report["forms"] = time_forms(model, size, repeats, log)
    if not quick:
        log("Compiling, once per machine (two fresh processes, one on-disk cache):")
        report["compile_reuse"] = compile_reuse("cpu", size, log=log)
    log("The fp32 floor (operations at the rate of an fp32 matrix product):")
    report["floor"] = fp32_floor(model, size, report["calls"], fidelity=not quick, log=log)
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(json.dumps(report, indent=2) + "\n")
    return report


def cpu_variants_markdown(report: dict) -> str:
    """The report as the README's tables, with the machine named."""
    lines = [
        "# XYDeblur on the CPU: the candidates side by side",
        "",
        f"{report['date']}, {report['machine']}, torch {report['torch']}, {report['threads']} threads, "
        f"median of {report['repeats']}; native bf16: {'yes' if report['bf16_native'] else 'no'}. "
        f"A form is kept when its restored image is within {report['tolerance']:g} of fp32 NCHW eager.",
        "",
        "| form | size | ms per frame | speed-up | max diff | kept | first call (s) |",
        "|---|---|---:|---:|---:|---|---:|",
    ]
    for row in report["forms"]:
        if "error" in row:
            lines.append(f"| {row['form']} | {row['size']} | | | | not run: {row['error']} | |")
            continue
        note = f" ({row['note']})" if "note" in row else ""
        lines.append(
            f"| {row['form']}{note} | {row['size']} | {row['ms']:.1f} | {row['speedup']:.2f} | "
            f"{row['max_diff']:.1e} | {'yes' if row['kept'] else 'no'} | {row['first_call_s']:.1f} |"
        )
    lines += ["", "| whole call | size | NCHW (s) | channels_last (s) |", "|---|---|---:|---:|"]
    calls: dict = {}
    for row in report["calls"]:
        calls.setdefault((row["call"], row["size"]), {})[row["layout"]] = row["seconds"]
    for (call, size), seconds in calls.items():
        nchw, nhwc = seconds.get("NCHW", float("nan")), seconds.get("channels_last", float("nan"))
        lines.append(f"| {call} | {size} | {nchw:.3f} | {nhwc:.3f} |")
    if "compile_reuse" in report:
        lines += ["", "| torch.compile (engine copy, on-disk cache) | first compiled result (s) |", "|---|---:|"]
        for run in report["compile_reuse"]["runs"]:
            lines.append(f"| {run['process']}, {report['compile_reuse']['size']} | {run['first_call_s']:.1f} |")
    if "floor" in report:
        floor = report["floor"]
        lines += [
            "",
            f"The fp32 floor: each call's operations (convolutions and matrix products) at this machine's "
            f"fp32 matrix-product rate, {floor['matmul_gflops']:.0f} GFLOP/s (2048 x 2048).",
            "",
            "| call | size | GFLOP | fp32 floor (s) | measured, channels_last (s) | GFLOP/s reached | target (s) |",
            "|---|---|---:|---:|---:|---:|---:|",
        ]
        for row in floor["rows"]:
            measured = f"{row['measured_s']:.3f} | {row['reached_gflops']:.0f}" if "measured_s" in row else " | "
            lines.append(
                f"| {row['call']} | {floor['size']} | {row['gflop']:.1f} | {row['floor_s']:.3f} | {measured} | "
                f"{row['target_s']:g} |"
            )
    return "\n".join(lines) + "\n"
