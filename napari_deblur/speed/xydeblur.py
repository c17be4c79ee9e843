"""XYDeblur's speed: per frame (reference against optimised path), on stacks, and under a
device-memory cap.

Per frame, two paths run in the same process on the same input (:func:`bench_xydeblur`):

- *reference*: written as the official code runs it: fp32, NCHW, eager, the whole
  frame in one forward pass (no tiling), under ``torch.no_grad``; on CUDA timed in true
  fp32 (TF32 off: the speed-up is against this) and again with PyTorch's default, which
  lets cuDNN use TF32 (``reference_tf32_ms``);
- *optimised*: what the engine runs: its device copy of the model (fp16 on CUDA and
  MPS, fp32 on the CPU; channels_last and cuDNN autotuning on CUDA), under
  ``torch.inference_mode``; with ``compile_`` the engine's ``torch.compile`` of it
  (:mod:`napari_deblur.engine.compiled`), falling back to eager (and saying so) where it
  fails; the compile time falls in the warm-up.

On CUDA the optimised forward is also captured once in a CUDA graph and replayed
(``graph_ms``, up to :data:`GRAPH_MAX_PIXELS`): what launch overhead costs at each size.

Both times are the network alone on a frame already on the device (median of
``repeats`` after warm-up, synchronised). ``engine_ms`` is the whole call
:func:`napari_deblur.xydeblur` on a numpy frame (transfers, padding, scaling, tiling
included); on a GPU ``engine_fp16_residuals_ms`` is the same call with
``residual_dtype='float16'`` (half the bytes copied back). ``max_diff`` is the largest
difference of the optimised output from the reference's, in [0, 1] units, on
:func:`~.timing.sample_frame`. Peak device memory is reported on CUDA.
"""

import functools
import statistics
import time

import numpy as np
import torch

from ..engine import frames
from ..engine.device import pick_dtype
from ..engine.restore import xydeblur, xydeblur_iter
from ..engine.runtime import channels_last, device_copy, release_device_cache, release_prepared, synchronize
from ..models.registry import bundled_name
from ..models.weights import load_model
from .timing import PeakMemory, median_seconds, sample_frame, short_error, tf32

GRAPH_MAX_PIXELS = 2048 * 2048  # CUDA-graph replay is timed up to this frame size
# (bundled model, frames, frame size, dtype) of the stacks timed by bench_stacks
GPU_STACKS = [
    (bundled_name("photo"), 48, (720, 1280), np.uint8),
    (bundled_name("microscopy"), 24, (2048, 2048), np.uint16),
]


def bench_xydeblur(model, device, sizes, repeats: int, *, compile_: bool = False, log=print) -> list[dict]:
    """One row per frame size: reference and optimised ms per frame, their ratio, memory, max_diff."""
    dtype = pick_dtype("auto", device)
    reference = device_copy(model, device, reference=True)  # fp32, NCHW, eager: as the official code runs it
    optimised = device_copy(model, device, dtype, compile=compile_)  # the engine's own (compiled) copy
    rows = []
    for height, width in sizes:
        frame = sample_frame(height, width, model.channels)
        x32 = torch.from_numpy(frame[None]).to(device)
        xopt = x32.to(dtype)
        if channels_last(device):
            xopt = xopt.contiguous(memory_format=torch.channels_last)

        def run_reference(x32=x32):
            with torch.no_grad():
                return reference(x32)[2]

        def run_optimised(xopt=xopt):
            with torch.inference_mode():
                r_hor, r_ver = optimised.residuals(xopt)
                return xopt + r_hor + r_ver

        row = {"size": f"{height}x{width}", "height": height, "width": width}
        try:
            with PeakMemory(device) as peak, tf32(False):
                row["reference_ms"] = 1000 * median_seconds(run_reference, device, repeats)
                expected = run_reference().float()
            row["reference_peak_mib"] = peak.mib
            if device.type == "cuda" and not compile_:  # PyTorch's default lets cuDNN use TF32
                with tf32(True):
                    row["reference_tf32_ms"] = 1000 * median_seconds(run_reference, device, repeats)
        except Exception as err:  # the reference path has no tiling: it may not fit
            row["reference_ms"], row["reference_error"] = None, short_error(err)
            expected = None
            release_device_cache(device)
        with PeakMemory(device) as peak:
            row["optimised_ms"] = 1000 * median_seconds(run_optimised, device, repeats)
            got = run_optimised().float()
        row["optimised_peak_mib"] = peak.mib
        row["speedup"] = row["reference_ms"] / row["optimised_ms"] if row["reference_ms"] else None
        row["max_diff"] = float((got - expected).abs().max()) if expected is not None else None
        if device.type == "cuda" and not compile_ and height * width <= GRAPH_MAX_PIXELS:
            row.update(_graph_row(run_optimised, device, repeats, got))
        image = np.ascontiguousarray(frame.transpose(1, 2, 0))
        calls = []

        def whole_call(image=image, calls=calls, residual_dtype="float32"):
            calls.append(
                xydeblur(
                    image,
                    model,
                    axes="YXC" if model.channels == 3 else None,
                    device=str(device),
                    normalize="dtype",
                    compile=compile_,
                    residual_dtype=residual_dtype,
                ).info["stages"]
            )

        row["engine_ms"] = 1000 * median_seconds(whole_call, device, max(1, repeats // 2), warmup=1)
        timed = calls[1:]  # after the warm-up: each stage's median over the timed calls
        row["engine_stages_ms"] = {name: 1000 * statistics.median(c[name] for c in timed) for name in timed[0]}
        if device.type != "cpu":  # where the residuals cross to the host
            half = functools.partial(whole_call, residual_dtype="float16")
            row["engine_fp16_residuals_ms"] = 1000 * median_seconds(half, device, max(1, repeats // 2), warmup=1)
        rows.append(row)
        log(_row_line(row))
    if compile_ and optimised.error:
        rows.append({"note": f"torch.compile failed, eager used: {optimised.error}"})
    return rows


def _graph_row(fn, device, repeats: int, eager) -> dict:
    """``fn`` captured once in a CUDA graph and replayed: ms per frame (``graph_ms``), and the
    largest difference of its output from the eager one (``eager``). An error is reported
    (``graph_error``), not raised. CUDA only."""
    graph = None
    try:
        side = torch.cuda.Stream(device)
        side.wait_stream(torch.cuda.current_stream(device))
        with torch.cuda.stream(side):  # warm-up off the default stream, as capture requires
            for _ in range(3):
                fn()
        torch.cuda.current_stream(device).wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            static_out = fn()
        seconds = median_seconds(graph.replay, device, repeats)
        return {"graph_ms": 1000 * seconds, "graph_max_diff": float((static_out.float() - eager).abs().max())}
    except Exception as err:  # capture unsupported by an op or a driver: the eager numbers stand
        return {"graph_ms": None, "graph_error": short_error(err)}
    finally:
        del graph
        synchronize(device)
        release_device_cache(device)


def _row_line(row) -> str:
    ref = f"{row['reference_ms']:8.1f}" if row.get("reference_ms") else "     n/a"
    if row.get("reference_tf32_ms"):
        ref += f" (TF32 {row['reference_tf32_ms']:.1f})"
    ratio = f"{row['speedup']:5.1f}x" if row.get("speedup") else "   n/a"
    diff = f"{row['max_diff']:.1e}" if row.get("max_diff") is not None else "n/a"
    graph = f"  CUDA graph {row['graph_ms']:8.1f} ms" if row.get("graph_ms") else ""
    graph += f"  CUDA graph failed: {row['graph_error']}" if row.get("graph_error") else ""
    stages = ", ".join(f"{k} {v:.1f}" for k, v in row.get("engine_stages_ms", {}).items())
    return (
        f"  {row['size']:>10}  reference {ref} ms  optimised {row['optimised_ms']:8.1f} ms  {ratio}  "
        f"engine {row['engine_ms']:8.1f} ms ({stages})  max diff {diff}{graph}"
    )


def bench_memory_cap(model, device, side: int = 16384, cap_gib: float = 4.0, log=print) -> dict:
    """Restore a ``side`` x ``side`` RGB image with this process capped at ``cap_gib`` GiB of
    CUDA memory (``torch.cuda.set_per_process_memory_fraction``): tiles and retries as needed.

    Seams: a window around the first tile boundary is restored again in one piece with a
    receptive field of context on every side; ``seam_max_diff`` is the largest difference
    there between the tiled and the one-piece result, in [0, 1] units.
    """
    release_prepared()
    release_device_cache(device)
    total = torch.cuda.get_device_properties(device).total_memory
    torch.cuda.set_per_process_memory_fraction(min(1.0, cap_gib * 2**30 / total), device)
    try:
        frame = (sample_frame(1024, 1024).transpose(1, 2, 0) * 255).round().astype(np.uint8)
        image = np.tile(frame, (side // 1024 + 1, side // 1024 + 1, 1))[:side, :side]
        torch.cuda.reset_peak_memory_stats(device)
        start = time.perf_counter()
        gen = xydeblur_iter(image, model, axes="YXC", device=str(device), normalize="dtype")
        retries = 0
        try:  # counts the engine's out-of-memory notices on the way
            while True:
                retries += "out of memory" in next(gen).message
        except StopIteration as stop:
            result = stop.value
        synchronize(device)
        seconds = time.perf_counter() - start
        peak = torch.cuda.max_memory_allocated(device) / 2**30
        tile, overlap = result.info["tile"], result.info["overlap"]
        seam = tile - overlap // 2  # inside the first overlap, where two tiles are blended
        context = -(-model.receptive_radius() // 4) * 4
        y0 = x0 = max(0, (seam - 256 - context) // 4 * 4)
        window = image[y0 : y0 + 512 + 2 * context, x0 : x0 + 512 + 2 * context]
        piece = xydeblur(window, model, axes="YXC", device=str(device), normalize="dtype", tile=4096).restored
        inner = (slice(context, context + 512), slice(context, context + 512))
        tiled = result.restored[y0 : y0 + window.shape[0], x0 : x0 + window.shape[1]][inner]
        seam_diff = float(np.abs(tiled.astype(np.float32) - piece[inner].astype(np.float32)).max() / 255)
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, device)
        release_prepared()
        release_device_cache(device)
    row = {
        "size": f"{side}x{side}",
        "cap_gib": cap_gib,
        "seconds": seconds,
        "peak_gib": peak,
        "tile": tile,
        "batch": result.info["batch"],
        "oom_retries": retries,
        "seam_max_diff": seam_diff,
    }
    log(
        f"  {side}x{side} under a {cap_gib:g} GiB cap: {seconds:.1f} s, peak {peak:.2f} GiB, tile {tile}, "
        f"{retries} out-of-memory retries, seam max diff {seam_diff:.1e}"
    )
    return row


def bench_stacks(device, repeats: int, stacks=GPU_STACKS, log=print) -> list[dict]:
    """Whole engine calls on stacks: ms per frame with the frames path's transfers overlapping
    the network (the default on CUDA, :data:`napari_deblur.engine.frames.OVERLAP_TRANSFERS`)
    and with plain synchronous copies; whether both gave the same output."""
    rows = []
    for name, count, (height, width), dtype in stacks:
        model = load_model(name)
        frame = sample_frame(height, width, model.channels)
        top = np.iinfo(dtype).max
        stack = np.stack([np.roll(frame, 8 * i, axis=-1) for i in range(count)])
        stack = (stack * top).round().astype(dtype)
        stack = np.ascontiguousarray(stack.transpose(0, 2, 3, 1) if model.channels == 3 else stack[:, 0])
        axes = "TYXC" if model.channels == 3 else "TYX"
        row = {"model": name, "frames": count, "size": f"{height}x{width}", "dtype": np.dtype(dtype).name}
        outputs = []
        for overlap in (True, False):
            frames.OVERLAP_TRANSFERS = overlap
            try:

                def run(stack=stack, model=model, axes=axes):
                    return xydeblur(stack, model, axes=axes, device=str(device), normalize="dtype")

                seconds = median_seconds(run, device, max(1, repeats // 2), warmup=1)
                row["overlapped_ms_per_frame" if overlap else "synchronous_ms_per_frame"] = 1000 * seconds / count
                outputs.append(run())
            finally:
                frames.OVERLAP_TRANSFERS = True
        row["path"] = outputs[0].info["path"]
        row["same_output"] = all(
            np.array_equal(getattr(outputs[0], k), getattr(outputs[1], k)) for k in ("restored", "r_hor", "r_ver")
        )
        rows.append(row)
        log(
            f"  {count} x {row['size']} {row['dtype']} ({name}, {row.get('path')} path): "
            f"{row['overlapped_ms_per_frame']:.1f} ms per frame with overlapped transfers, "
            f"{row['synchronous_ms_per_frame']:.1f} ms with synchronous copies; same output: {row['same_output']}"
        )
    return rows
