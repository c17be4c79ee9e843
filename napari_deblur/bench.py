"""``napari-deblur bench``: how fast XYDeblur and the diffusion refinement run here.

XYDeblur, per frame at each size, two paths in the same process on the same input:

- *reference*: written as the official code runs it: fp32, NCHW, eager, the whole
  frame in one forward pass (no tiling), under ``torch.no_grad``; on CUDA timed in true
  fp32 (TF32 off: the speed-up is against this) and again with PyTorch's default, which
  lets cuDNN use TF32 (``reference_tf32_ms``);
- *optimised*: what the engine runs: its device copy of the model (fp16 on CUDA and
  MPS, fp32 on the CPU; channels_last and cuDNN autotuning on CUDA), under
  ``torch.inference_mode``; with ``compile=True`` the engine's ``torch.compile`` of it
  (:mod:`napari_deblur.engine.compiled`), falling back to eager (and saying so) where it
  fails; the compile time falls in the warm-up.

On CUDA the optimised forward is also captured once in a CUDA graph and replayed
(``graph_ms``, up to 2048x2048): what launch overhead costs at each size.

Both times are the network alone on a frame already on the device (median of
``repeats`` after warm-up, synchronised). ``engine_ms`` is the whole call
:func:`napari_deblur.xydeblur` on a numpy frame (transfers, padding, scaling, tiling
included). ``max_diff`` is the largest difference of the optimised output from the
reference's, in [0, 1] units, on the plugin's blurred photo sample (scikit-image's
coffee, camera shake and noise), resized. Peak device memory is reported on CUDA.

Diffusion: one denoiser step (one eps prediction and the sampler update) at batch 1 and
per sample when 8 samples run batched, and the whole "Fidelity" preset (10 steps x 8
samples) through :func:`napari_deblur.refine`. The denoiser is the bundled
``dvsr-photo`` when there is one, else an untrained one of the same architecture (the
speed is the same; the JSON says which).

The results go to a JSON file and a printed table; the README's performance table
comes from it, with the machine named.
"""

import datetime
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from .engine.device import describe, pick_device, pick_dtype, precision_name

GPU_SIZES = [(256, 256), (720, 1280), (1024, 1024), (2048, 2048), (4096, 4096)]
CPU_SIZES = [(256, 256), (512, 512)]
GRAPH_MAX_PIXELS = 2048 * 2048  # CUDA-graph replay is timed up to this frame size
GPU_DIFFUSION = {"step_sizes": [(512, 512), (720, 1280)], "fidelity_size": (720, 1280)}
CPU_DIFFUSION = {"step_sizes": [(256, 256), (512, 512)], "fidelity_size": (256, 256)}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


def median_seconds(fn, device, repeats: int, warmup: int = 2) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs after ``warmup`` runs, synchronised."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def test_frame(height: int, width: int, channels: int = 3) -> np.ndarray:
    """The blurred photo sample resized to ``height`` x ``width``, (C, H, W) in [0, 1]."""
    from PIL import Image

    from .samples import blurred_photo

    image = Image.fromarray(blurred_photo()["blurred"]).resize((width, height), Image.BICUBIC)
    frame = np.asarray(image, np.float32).transpose(2, 0, 1) / 255.0
    return frame[:channels] if channels <= 3 else np.repeat(frame[:1], channels, 0)


class PeakMemory:
    """Peak device memory (MiB) of the code inside ``with`` on CUDA; None elsewhere."""

    def __init__(self, device):
        self.device, self.mib = device, None

    def __enter__(self):
        if self.device.type == "cuda":
            torch.cuda.empty_cache()
            torch.cuda.reset_peak_memory_stats(self.device)
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            self.mib = torch.cuda.max_memory_allocated(self.device) / 2**20


def bench_xydeblur(model, device, sizes, repeats: int, *, compile_: bool = False, log=print) -> list[dict]:
    """One row per frame size: reference and optimised ms per frame, their ratio, memory, max_diff."""
    from .engine.restore import xydeblur
    from .engine.runtime import device_copy

    dtype = pick_dtype("auto", device)
    reference = device_copy(model, device, reference=True)  # fp32, NCHW, eager: as the official code runs it
    optimised = device_copy(model, device, dtype, compile=compile_)  # the engine's own (compiled) copy
    rows = []
    for height, width in sizes:
        frame = test_frame(height, width, model.channels)
        x32 = torch.from_numpy(frame[None]).to(device)
        xopt = x32.to(dtype)
        if device.type == "cuda":
            xopt = xopt.contiguous(memory_format=torch.channels_last)

        def run_reference():
            with torch.no_grad():
                return reference(x32)[2]

        def run_optimised():
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
            row["reference_ms"], row["reference_error"] = None, _short(err)
            expected = None
            if device.type == "cuda":
                torch.cuda.empty_cache()
        with PeakMemory(device) as peak:
            row["optimised_ms"] = 1000 * median_seconds(run_optimised, device, repeats)
            got = run_optimised().float()
        row["optimised_peak_mib"] = peak.mib
        row["speedup"] = row["reference_ms"] / row["optimised_ms"] if row["reference_ms"] else None
        row["max_diff"] = float((got - expected).abs().max()) if expected is not None else None
        if device.type == "cuda" and not compile_ and height * width <= GRAPH_MAX_PIXELS:
            row.update(_graph_row(run_optimised, device, repeats, got))
        image = np.ascontiguousarray(frame.transpose(1, 2, 0))
        row["engine_ms"] = 1000 * median_seconds(
            lambda: xydeblur(image, model, axes="YXC" if model.channels == 3 else None, device=str(device),
                             normalize="dtype", compile=compile_), device, max(1, repeats // 2), warmup=1)
        rows.append(row)
        log(_row_line(row))
    if compile_ and optimised.error:
        rows.append({"note": f"torch.compile failed, eager used: {optimised.error}"})
    return rows


class tf32:
    """``with tf32(False)``: true fp32 convolutions and matrix products on CUDA (cuDNN may
    otherwise use TF32, PyTorch's default for convolutions); the settings are restored after."""

    def __init__(self, allow: bool):
        self.allow = allow

    def __enter__(self):
        self.saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = self.allow
        return self

    def __exit__(self, *exc):
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = self.saved


def _graph_row(fn, device, repeats: int, eager) -> dict:
    """``fn`` captured once in a CUDA graph and replayed: ms per frame, and the largest
    difference of its output from the eager one (``eager``). An error is reported, not raised."""
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
        return {"graph_ms": None, "graph_error": _short(err)}
    finally:
        del graph
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()


def _short(err) -> str:
    return " ".join(f"{type(err).__name__}: {err}".split())[:160]


def _row_line(row) -> str:
    ref = f"{row['reference_ms']:8.1f}" if row.get("reference_ms") else "     n/a"
    if row.get("reference_tf32_ms"):
        ref += f" (TF32 {row['reference_tf32_ms']:.1f})"
    ratio = f"{row['speedup']:5.1f}x" if row.get("speedup") else "   n/a"
    diff = f"{row['max_diff']:.1e}" if row.get("max_diff") is not None else "n/a"
    graph = f"  CUDA graph {row['graph_ms']:8.1f} ms" if row.get("graph_ms") else ""
    graph += f"  CUDA graph failed: {row['graph_error']}" if row.get("graph_error") else ""
    return (f"  {row['size']:>10}  reference {ref} ms  optimised {row['optimised_ms']:8.1f} ms  {ratio}  "
            f"engine {row['engine_ms']:8.1f} ms  max diff {diff}{graph}")


def bundled_denoiser(log=print):
    """(predictor, denoiser, description): ``dvsr-photo`` with its predictor if bundled, else
    an untrained ResidualDenoiser (the timings do not depend on the weights), saying why."""
    from .models.denoiser import ResidualDenoiser
    from .models.registry import DENOISER, available_models
    from .models.weights import load_model

    if "dvsr-photo" in available_models(DENOISER):
        from .diffusion.refine import resolve_models

        predictor, denoiser = resolve_models("dvsr-photo")
        return predictor, denoiser, "dvsr-photo (bundled)"
    log("  dvsr-photo is not bundled: timing an untrained ResidualDenoiser of the same size")
    torch.manual_seed(0)
    return load_model("xydeblur-photo"), ResidualDenoiser(channels=3).eval(), "untrained ResidualDenoiser (timing only)"


def bench_diffusion(device, settings, repeats: int, *, quick: bool = False, log=print) -> dict:
    """Denoiser step times and the Fidelity preset's wall time; see the module docstring."""
    from .diffusion.refine import refine
    from .engine.runtime import device_copy

    predictor, denoiser, which = bundled_denoiser(log)
    dtype = pick_dtype("auto", device)
    work = device_copy(denoiser, device, dtype)
    out = {"denoiser": which, "steps": []}
    for height, width in settings["step_sizes"][: 1 if quick else None]:
        row = {"size": f"{height}x{width}"}
        for batch in (1, 8):
            z = torch.randn(batch, 3, height, width, device=device, dtype=dtype)
            y, x_init = torch.rand_like(z), torch.rand_like(z)
            level = torch.full((batch,), 0.5, device=device)

            def step():
                with torch.inference_mode():
                    eps = work(z, y, x_init, level)
                    return z - 0.1 * eps  # the sampler's update is one fused line next to the network

            seconds = median_seconds(step, device, repeats if batch == 1 else max(1, repeats // 2), warmup=1)
            row["step_ms" if batch == 1 else "step_ms_per_sample_batched8"] = 1000 * seconds / batch
        out["steps"].append(row)
        log(f"  {row['size']:>10}  denoiser step {row['step_ms']:8.1f} ms  "
            f"(per sample, 8 batched: {row['step_ms_per_sample_batched8']:8.1f} ms)")
    if not quick:
        height, width = settings["fidelity_size"]
        image = np.ascontiguousarray(test_frame(height, width).transpose(1, 2, 0))
        run = lambda: refine(image, (predictor, denoiser), steps=10, samples=8, axes="YXC",  # noqa: E731
                             device=str(device), normalize="dtype")
        run()  # warm-up (first-call set-up, cuDNN autotuning)
        start = time.perf_counter()
        run()
        synchronize(device)
        out["fidelity"] = {"size": f"{height}x{width}", "steps": 10, "samples": 8,
                           "seconds": time.perf_counter() - start}
        log(f"  Fidelity preset (10 steps x 8 samples) at {height}x{width}: {out['fidelity']['seconds']:.2f} s")
    return out


def machine_name() -> str:
    """The CPU's model name (and the GPU's, when there is one)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return f"{cpu}{gpu} ({platform.system()})"


def bench_memory_cap(model, device, side: int = 16384, cap_gib: float = 4.0, log=print) -> dict:
    """Restore a ``side`` x ``side`` RGB image with this process capped at ``cap_gib`` GiB of
    CUDA memory (``torch.cuda.set_per_process_memory_fraction``): tiles and retries as needed.

    Seams: a window around the first tile boundary is restored again in one piece with a
    receptive field of context on every side; ``seam_max_diff`` is the largest difference
    there between the tiled and the one-piece result, in [0, 1] units.
    """
    from .engine.restore import xydeblur, xydeblur_iter
    from .engine.runtime import release_prepared

    release_prepared()
    torch.cuda.empty_cache()
    total = torch.cuda.get_device_properties(device).total_memory
    torch.cuda.set_per_process_memory_fraction(min(1.0, cap_gib * 2**30 / total), device)
    try:
        frame = (test_frame(1024, 1024).transpose(1, 2, 0) * 255).round().astype(np.uint8)
        image = np.tile(frame, (side // 1024 + 1, side // 1024 + 1, 1))[:side, :side]
        torch.cuda.reset_peak_memory_stats(device)
        start = time.perf_counter()
        gen = xydeblur_iter(image, model, axes="YXC", device=str(device), normalize="dtype")
        retries = 0
        try:
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
        torch.cuda.empty_cache()
    row = {"size": f"{side}x{side}", "cap_gib": cap_gib, "seconds": seconds, "peak_gib": peak, "tile": tile,
           "batch": result.info["batch"], "oom_retries": retries, "seam_max_diff": seam_diff}
    log(f"  {side}x{side} under a {cap_gib:g} GiB cap: {seconds:.1f} s, peak {peak:.2f} GiB, tile {tile}, "
        f"{retries} out-of-memory retries, seam max diff {seam_diff:.1e}")
    return row


GPU_STACKS = [("xydeblur-photo", 48, (720, 1280), np.uint8), ("xydeblur-microscopy", 24, (2048, 2048), np.uint16)]


def bench_stacks(device, repeats: int, stacks=GPU_STACKS, log=print) -> list[dict]:
    """Whole engine calls on stacks: ms per frame with the frames path's transfers overlapping
    the network (the default on CUDA) and with plain synchronous copies."""
    from .engine import frames
    from .engine.restore import xydeblur
    from .models.weights import load_model

    rows = []
    for name, count, (height, width), dtype in stacks:
        model = load_model(name)
        frame = test_frame(height, width, model.channels)
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
                run = lambda: xydeblur(stack, model, axes=axes, device=str(device), normalize="dtype")  # noqa: E731
                seconds = median_seconds(run, device, max(1, repeats // 2), warmup=1)
                row["overlapped_ms_per_frame" if overlap else "synchronous_ms_per_frame"] = 1000 * seconds / count
                outputs.append(run())
            finally:
                frames.OVERLAP_TRANSFERS = True
        row["path"] = outputs[0].info["path"]
        row["same_output"] = all(np.array_equal(getattr(outputs[0], k), getattr(outputs[1], k))
                                 for k in ("restored", "r_hor", "r_ver"))
        rows.append(row)
        log(f"  {count} x {row['size']} {row['dtype']} ({name}, {row.get('path')} path): "
            f"{row['overlapped_ms_per_frame']:.1f} ms per frame with overlapped transfers, "
            f"{row['synchronous_ms_per_frame']:.1f} ms with synchronous copies; same output: {row['same_output']}")
    return rows


def run_bench(device="auto", *, quick=False, repeats=None, compile_=False, out=None, log=print) -> dict:
    """The whole benchmark; returns the report and writes it as JSON to ``out`` if given."""
    from .engine.runtime import decoder_form
    from .models.weights import load_model

    dev = pick_device(device)
    repeats = repeats or (3 if quick else 10)
    gpu = dev.type in ("cuda", "mps")
    sizes = (GPU_SIZES[:2] if quick else GPU_SIZES) if gpu else (CPU_SIZES[:1] if quick else CPU_SIZES)
    model = load_model("xydeblur-photo")
    log(f"napari-deblur bench on {describe(dev)}, torch {torch.__version__}, "
        f"precision {precision_name(pick_dtype('auto', dev))}, decoder form {decoder_form(dev)}, "
        f"{'torch.compile, ' if compile_ else ''}{repeats} repeats")
    log("XYDeblur (xydeblur-photo) per frame:")
    report = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "device": describe(dev),
        "machine": machine_name(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "precision": precision_name(pick_dtype("auto", dev)),
        "decoder_form": decoder_form(dev),
        "compile": bool(compile_),
        "quick": bool(quick),
        "repeats": repeats,
        "xydeblur": bench_xydeblur(model, dev, sizes, repeats, compile_=compile_, log=log),
    }

    def save():  # after every section: what was measured survives a later failure
        if out is not None:
            Path(out).parent.mkdir(parents=True, exist_ok=True)
            Path(out).write_text(json.dumps(report, indent=2) + "\n")

    save()
    if dev.type == "cuda" and not quick:
        log("Stacks (whole engine calls):")
        try:
            report["stacks"] = bench_stacks(dev, repeats, log=log)
        except Exception as err:  # reported; the sections after it still run
            report["stacks"] = [{"error": _short(err)}]
            log(f"  the stack run failed: {report['stacks'][0]['error']}")
        save()
        log("Memory cap:")
        try:
            report["memory_cap"] = bench_memory_cap(model, dev, log=log)
        except Exception as err:  # reported; the diffusion section still runs
            report["memory_cap"] = {"error": _short(err)}
            log(f"  the memory-cap run failed: {report['memory_cap']['error']}")
        save()
    log("Diffusion refinement:")
    report["diffusion"] = bench_diffusion(dev, GPU_DIFFUSION if gpu else CPU_DIFFUSION, repeats, quick=quick, log=log)
    save()
    if out is not None:
        log(f"wrote {out}")
    return report


def _ms(value) -> str:
    return "n/a" if value is None else (f"{value:.0f}" if value >= 100 else f"{value:.1f}")


def to_markdown(report: dict) -> str:
    """The report as the README's performance tables."""
    lines = [
        f"Measured by `napari-deblur bench{' --quick' if report['quick'] else ''}` on {report['device']}, "
        f"{report['machine']}, torch {report['torch']}, {report['date'][:10]}; median of {report['repeats']} "
        f"runs after warm-up; decoder form {report.get('decoder_form', 'two-pass')}"
        + ("; torch.compile (compile time not counted)." if report.get("compile") else "."),
        "",
        "| XYDeblur frame | reference fp32 (ms) | optimised " + report["precision"] + " (ms) | speed-up "
        "| whole call (ms) | peak memory ref / opt (MiB) | max difference |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    graphs = any("graph_ms" in row or "graph_error" in row for row in report["xydeblur"])
    if graphs:
        lines[-2] += " optimised as a CUDA graph (ms) |"
        lines[-1] += "---:|"
    for row in report["xydeblur"]:
        if "note" in row:
            continue
        peak = " / ".join(_ms(row.get(k)) for k in ("reference_peak_mib", "optimised_peak_mib"))
        speedup = f"{row['speedup']:.1f}x" if row.get("speedup") else "n/a"
        diff = f"{row['max_diff']:.1e}" if row.get("max_diff") is not None else "n/a"
        ref = _ms(row.get("reference_ms"))
        if row.get("reference_tf32_ms"):
            ref += f" (TF32: {_ms(row['reference_tf32_ms'])})"
        lines.append(f"| {row['size']} | {ref} | {_ms(row['optimised_ms'])} | {speedup} "
                     f"| {_ms(row['engine_ms'])} | {peak} | {diff} |" + (f" {_ms(row.get('graph_ms'))} |" if graphs else ""))
    stacks = [row for row in report.get("stacks", []) if "error" not in row]
    if stacks:
        lines += ["", "| stack (whole engine call) | ms per frame, transfers overlapped | synchronous copies |",
                  "|---|---:|---:|"]
        for row in stacks:
            lines.append(f"| {row['frames']} x {row['size']} {row['dtype']} ({row['model']}) "
                         f"| {_ms(row['overlapped_ms_per_frame'])} | {_ms(row['synchronous_ms_per_frame'])} |")
    if "error" in report.get("memory_cap", {}):
        lines += ["", f"The memory-cap run failed: {report['memory_cap']['error']}"]
    elif "memory_cap" in report:
        cap = report["memory_cap"]
        lines += ["", f"A {cap['size']} RGB image under a {cap['cap_gib']:g} GiB device-memory cap: {cap['seconds']:.1f} s, "
                      f"peak {cap['peak_gib']:.2f} GiB, tiles of {cap['tile']}, {cap['oom_retries']} out-of-memory "
                      f"retries, largest difference from an untiled window across a tile seam "
                      f"{cap['seam_max_diff']:.1e}."]
    diffusion = report["diffusion"]
    lines += ["", f"Diffusion refinement ({diffusion['denoiser']}):", "",
              "| size | denoiser step, 1 sample (ms) | per sample, 8 batched (ms) |", "|---|---:|---:|"]
    for row in diffusion["steps"]:
        lines.append(f"| {row['size']} | {_ms(row['step_ms'])} | {_ms(row['step_ms_per_sample_batched8'])} |")
    if "fidelity" in diffusion:
        fid = diffusion["fidelity"]
        lines += ["", f"Fidelity preset ({fid['steps']} steps x {fid['samples']} samples) at {fid['size']}: "
                      f"{fid['seconds']:.2f} s."]
    return "\n".join(lines) + "\n"
