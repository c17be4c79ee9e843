"""The whole speed benchmark (:func:`run_bench`) and its Markdown tables (:func:`to_markdown`).

:func:`run_bench` times XYDeblur per frame (:mod:`.xydeblur`), on CUDA also stacks and a
16384x16384 image under a memory cap, then the diffusion refinement (:mod:`.diffusion`). The
report goes to a JSON file after every section and to the log as a table; the README's
performance tables come from :func:`to_markdown`, with the machine named.
"""

import datetime
import json
from pathlib import Path

import torch

from ..engine.device import describe, pick_device, pick_dtype, precision_name
from ..engine.runtime import decoder_form
from ..models.registry import bundled_name
from ..models.weights import load_model
from .diffusion import bench_diffusion
from .timing import machine_name, short_error
from .xydeblur import bench_memory_cap, bench_stacks, bench_xydeblur

GPU_SIZES = [(256, 256), (720, 1280), (1024, 1024), (2048, 2048), (4096, 4096)]
CPU_SIZES = [(256, 256), (512, 512)]
GPU_DIFFUSION = {"step_sizes": [(512, 512), (720, 1280)], "fidelity_size": (720, 1280)}
CPU_DIFFUSION = {"step_sizes": [(256, 256), (512, 512)], "fidelity_size": (256, 256)}


def run_bench(device="auto", *, quick=False, repeats=None, compile_=False, out=None, log=print) -> dict:
    """The whole benchmark; returns the report and writes it as JSON to ``out`` if given."""
    dev = pick_device(device)
    repeats = repeats or (3 if quick else 10)
    gpu = dev.type in ("cuda", "mps")
    sizes = (GPU_SIZES[:2] if quick else GPU_SIZES) if gpu else (CPU_SIZES[:1] if quick else CPU_SIZES)
    name = bundled_name("photo")
    model = load_model(name)
    log(
        f"napari-deblur bench on {describe(dev)}, torch {torch.__version__}, "
        f"precision {precision_name(pick_dtype('auto', dev))}, decoder form {decoder_form(dev)}, "
        f"{'torch.compile, ' if compile_ else ''}{repeats} repeats"
    )
    log(f"XYDeblur ({name}) per frame:")
    report = {
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
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
        report["stacks"] = _reported(lambda: bench_stacks(dev, repeats, log=log), "stack", log, as_list=True)
        save()
        log("Memory cap:")
        report["memory_cap"] = _reported(lambda: bench_memory_cap(model, dev, log=log), "memory-cap", log)
        save()
    log("Diffusion refinement:")
    report["diffusion"] = bench_diffusion(dev, GPU_DIFFUSION if gpu else CPU_DIFFUSION, repeats, quick=quick, log=log)
    save()
    if out is not None:
        log(f"wrote {out}")
    return report


def _reported(section, what: str, log, *, as_list: bool = False):
    """``section()``, or its error as ``{"error": ...}`` (in a list with ``as_list``), logged:
    a failed section is reported and the sections after it still run."""
    try:
        return section()
    except Exception as err:
        failed = {"error": short_error(err)}
        log(f"  the {what} run failed: {failed['error']}")
        return [failed] if as_list else failed


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
        *_xydeblur_table(report),
    ]
    stacks = [row for row in report.get("stacks", []) if "error" not in row]
    if stacks:
        lines += [
            "",
            "| stack (whole engine call) | ms per frame, transfers overlapped | synchronous copies |",
            "|---|---:|---:|",
        ]
        for row in stacks:
            lines.append(
                f"| {row['frames']} x {row['size']} {row['dtype']} ({row['model']}) "
                f"| {_ms(row['overlapped_ms_per_frame'])} | {_ms(row['synchronous_ms_per_frame'])} |"
            )
    if "error" in report.get("memory_cap", {}):
        lines += ["", f"The memory-cap run failed: {report['memory_cap']['error']}"]
    elif "memory_cap" in report:
        cap = report["memory_cap"]
        lines += [
            "",
            f"A {cap['size']} RGB image under a {cap['cap_gib']:g} GiB device-memory cap: {cap['seconds']:.1f} s, "
            f"peak {cap['peak_gib']:.2f} GiB, tiles of {cap['tile']}, {cap['oom_retries']} out-of-memory "
            f"retries, largest difference from an untiled window across a tile seam "
            f"{cap['seam_max_diff']:.1e}.",
        ]
    diffusion = report["diffusion"]
    lines += [
        "",
        f"Diffusion refinement ({diffusion['denoiser']}):",
        "",
        "| size | denoiser step, 1 sample (ms) | per sample, 8 batched (ms) |",
        "|---|---:|---:|",
    ]
    for row in diffusion["steps"]:
        lines.append(f"| {row['size']} | {_ms(row['step_ms'])} | {_ms(row['step_ms_per_sample_batched8'])} |")
    if "fidelity" in diffusion:
        fid = diffusion["fidelity"]
        lines += [
            "",
            f"Fidelity preset ({fid['steps']} steps x {fid['samples']} samples) at {fid['size']}: "
            f"{fid['seconds']:.2f} s.",
        ]
    return "\n".join(lines) + "\n"


def _xydeblur_table(report: dict) -> list[str]:
    """The per-frame XYDeblur table's lines (a CUDA-graph column when the report has one)."""
    lines = [
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
        lines.append(
            f"| {row['size']} | {ref} | {_ms(row['optimised_ms'])} | {speedup} "
            f"| {_ms(row['engine_ms'])} | {peak} | {diff} |" + (f" {_ms(row.get('graph_ms'))} |" if graphs else "")
        )
    staged = [row for row in report["xydeblur"] if row.get("engine_stages_ms")]
    if staged:
        names = list(staged[0]["engine_stages_ms"])
        lines += [
            "",
            "Where a whole call's time goes (`info['stages']`, medians, ms):",
            "",
            "| XYDeblur frame | " + " | ".join(names) + " | outside the network |",
            "|---|" + "---:|" * (len(names) + 1),
        ]
        for row in staged:
            stages = row["engine_stages_ms"]
            outside = sum(v for k, v in stages.items() if k != "network")
            lines.append(f"| {row['size']} | " + " | ".join(f"{stages[k]:.1f}" for k in names) + f" | {outside:.1f} |")
    halves = [row for row in report["xydeblur"] if row.get("engine_fp16_residuals_ms")]
    if halves:
        lines += ["", "| XYDeblur frame | whole call (ms) | with float16 residuals (ms) |", "|---|---:|---:|"]
        lines += [f"| {r['size']} | {_ms(r['engine_ms'])} | {_ms(r['engine_fp16_residuals_ms'])} |" for r in halves]
    return lines
