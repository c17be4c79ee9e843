"""The diffusion rows of ``napari-deblur eval``: predict-and-refine (DvSR) on the benchmark cases.

For every diffusion denoiser (a bundled or given :class:`~napari_deblur.models.denoiser.ResidualDenoiser`,
paired with the frozen XYDeblur predictor ``g`` it names) on the track its channel count fits
(3: photo, 1: microscopy), and every noise level, a few benchmark cases are refined by
:func:`napari_deblur.diffusion.refine.refine_iter` in the paper's two settings:

- ``x_init = g(y)``, the predictor's output (a by-product of the fidelity run);
- *fidelity*: the mean of N samples after T steps, the Fidelity preset
  (:data:`napari_deblur.diffusion.presets.FIDELITY`; low distortion);
- *perceptual*: one sample after T = 100 and after T = 500 steps (sharp, more distortion).

Next to them, the sharp ground truth and the blurry input are reference rows. Every row is
scored by PSNR and SSIM (:func:`napari_deblur.metrics.score`) and by scikit-image's no-reference
``blur_effect`` (0 sharp .. 1 blurry, on grayscale: colour channels averaged); the fidelity
row also by the Spearman rank correlation between its per-pixel standard deviation and its
absolute error (does the uncertainty map point at the errors?), next to the same correlation for
a map that needs no sampling: the gradient magnitude of x_init
(:func:`~napari_deblur.metrics.edge_map`; errors sit at edges), the baseline an uncertainty map
has to beat to tell a user more. Runs are timed per denoiser step and per sample
(:mod:`.timing`), and one separate run (``"speed"``) times the photo model on a 512x512 input.

Diffusion is slow on a CPU, so these rows use their own small subset of the cases (the
``"diffusion"`` entry of the benchmark's FULL/QUICK settings): ``cases`` per noise level,
centre-cropped to ``crop`` pixels, and the step counts to run; the JSON records the T and
N each row really used.
"""

import time
from pathlib import Path

import numpy as np

from ..metrics import edge_map, score, sharpness, uncertainty_correlation
from ..models.registry import DENOISER, available_models, bundled_name
from .timing import extrapolate, time_speed, timed_refine

SHARP, INPUT, X_INIT = "sharp (ground truth)", "blurry input", "x_init = g(y)"
TRACK_CHANNELS = {"photo": 3, "microscopy": 1}
TARGET_CORRELATION = 0.3
METRICS = (
    "psnr",
    "ssim",
    "blur_effect",
    "std_error_spearman",
    "edge_error_spearman",
    "seconds",
    "seconds_per_step",
    "seconds_per_sample",
)


# ---------------------------------------------------------------- models


def select_denoisers(names=None) -> list[dict]:
    """``[{'name', 'source', 'channels', 'predictor'}]``: the given denoisers, or every bundled one.

    Each is resolved with its predictor now (:func:`~napari_deblur.diffusion.pair.resolve_models`),
    so a file that does not name its predictor, or a pair whose channels disagree, fails here
    with a :class:`~napari_deblur.models.weights.WeightsError` before any work.
    """
    from ..diffusion.pair import resolve_models

    bundled = available_models(DENOISER)
    chosen = list(names) if names is not None else bundled
    out = []
    for name in chosen:
        predictor, denoiser = resolve_models(str(name))
        info = getattr(denoiser, "weights_info", {})
        out.append(
            {
                "name": str(name) if str(name) in bundled else Path(str(name)).stem,
                "source": str(name),
                "channels": int(denoiser.config["channels"]),
                "predictor": info.get("predictor") or getattr(predictor, "weights_info", {}).get("name"),
            }
        )
    return out


# ---------------------------------------------------------------- running


def pick_cases(cases: list, k: int) -> list:
    """``k`` cases spread over the sources: evenly spaced sources (crops or scenes), the
    i-th pick taking the source's (i mod n)-th kernel, so both images and kernels vary.
    With more picks than sources, the cases in round-robin order over the sources."""
    if k >= len(cases):
        return list(cases)
    sources = list(dict.fromkeys(c.source for c in cases))
    by_source = {s: [c for c in cases if c.source == s] for s in sources}
    if k <= len(sources):
        chosen = [sources[int(i)] for i in np.linspace(0, len(sources) - 1, k).round()]
        return [by_source[s][i % len(by_source[s])] for i, s in enumerate(chosen)]
    rounds = max(len(v) for v in by_source.values())
    order = [by_source[s][r] for r in range(rounds) for s in sources if r < len(by_source[s])]
    return order[:k]


def center_crop(array: np.ndarray, size) -> np.ndarray:
    """The central ``size`` x ``size`` pixels of an (..., H, W) array (all of it if smaller)."""
    if size is None:
        return array
    h, w = array.shape[-2:]
    th, tw = min(int(size), h), min(int(size), w)
    y, x = (h - th) // 2, (w - tw) // 2
    return array[..., y : y + th, x : x + tw]


def _rows_for_case(case, model: dict, cfg: dict, device: str) -> dict:
    """Every row's metrics on one case: {label: {kind, steps, samples, psnr, ssim, ...}}."""
    sharp = center_crop(case.sharp, cfg["crop"])
    blurred = center_crop(case.blurred, cfg["crop"])
    seed, sampler = cfg.get("seed", 0), cfg.get("sampler", "ddpm")
    fid = cfg["fidelity"]
    rows = {
        SHARP: {"kind": "reference", "blur_effect": sharpness(sharp)},
        INPUT: {"kind": "reference", **score(sharp, blurred), "blur_effect": sharpness(blurred)},
    }
    result, timing = timed_refine(
        blurred, model["source"], steps=fid["steps"], samples=fid["samples"], device=device, seed=seed, sampler=sampler
    )
    rows[X_INIT] = {
        "kind": "x_init",
        "steps": 0,
        "samples": 1,
        **score(sharp, result.x_init),
        "blur_effect": sharpness(result.x_init),
    }
    rows[fidelity_label(fid["steps"], fid["samples"])] = {
        "kind": "fidelity",
        "steps": fid["steps"],
        "samples": fid["samples"],
        **score(sharp, result.mean),
        "blur_effect": sharpness(result.mean),
        "std_error_spearman": uncertainty_correlation(result.std, result.mean, sharp),
        "edge_error_spearman": uncertainty_correlation(edge_map(result.x_init), result.mean, sharp),
        **timing,
    }
    for steps in cfg["perceptual"]:
        result, timing = timed_refine(
            blurred, model["source"], steps=steps, samples=1, device=device, seed=seed, sampler=sampler
        )
        rows[perceptual_label(steps)] = {
            "kind": "perceptual",
            "steps": steps,
            "samples": 1,
            **score(sharp, result.mean),
            "blur_effect": sharpness(result.mean),
            **timing,
        }
    return rows


def fidelity_label(steps: int, samples: int) -> str:
    return f"fidelity: mean of {samples} samples, T={steps}"


def perceptual_label(steps: int) -> str:
    return f"perceptual: 1 sample, T={steps}"


def _mean_rows(per_case: list[dict]) -> dict:
    """Per row: the mean of each metric over the cases (None where no case has a value)."""
    out = {}
    for label, first in per_case[0].items():
        row = {k: first[k] for k in ("kind", "steps", "samples", "in_flight") if k in first}
        for metric in METRICS:
            values = [c[label][metric] for c in per_case if c[label].get(metric) is not None]
            if any(metric in c[label] for c in per_case):
                row[metric] = float(np.mean(values)) if values else None
        row["n"] = len(per_case)
        out[label] = row
    return out


def check_targets(rows: dict) -> dict:
    """What refinement should achieve, checked on one noise level's mean rows (booleans; False where
    a value is missing): fidelity PSNR above x_init's, the perceptual sample with the most steps
    sharper (lower blur_effect) than x_init, and the std/error rank correlation above
    ``TARGET_CORRELATION``."""
    x_init = rows[X_INIT]
    fid = next(r for r in rows.values() if r["kind"] == "fidelity")
    perceptual = [r for r in rows.values() if r["kind"] == "perceptual"]
    sharpest = max(perceptual, key=lambda r: r["steps"]) if perceptual else None
    rho = fid.get("std_error_spearman")
    return {
        "fidelity_psnr_above_x_init": bool(fid["psnr"] > x_init["psnr"]),
        "perceptual_sharper_than_x_init": bool(
            sharpest is not None and sharpest["blur_effect"] < x_init["blur_effect"]
        ),
        "uncertainty_tracks_error": bool(rho is not None and rho > TARGET_CORRELATION),
    }


SETTINGS_NOTES = {
    "tracks": "a denoiser runs on the track its channels fit: 3 photo, 1 microscopy",
    "case_selection": "per noise level: evenly spaced sources (crops/scenes), kernels in turn; centre crop",
    "blur_effect": "skimage.measure.blur_effect on the output clipped to [0, 1] (photos: mean of RGB); "
    "0 sharp .. 1 blurry",
    "std_error_spearman": "Spearman rank correlation of the per-pixel std and |mean - sharp| (both averaged "
    "over colour channels), per image, then averaged",
    "edge_error_spearman": "the same correlation for the gradient magnitude of x_init instead of the std (a "
    "baseline that needs no sampling)",
    "time_note": "seconds per image per row (predictor, set-up and all steps); s / step: one denoiser pass "
    "over the chains in flight; s / sample = seconds / N; the first call per model is a warm-up",
    "refine_call": "napari_deblur.diffusion.refine.refine_iter(float32 in [0, 1], normalize='dtype', seed)",
}


def _evaluate_noise(model: dict, track: str, noise: str, cases: list, cfg: dict, device: str, log) -> dict:
    """One model on one track's picked cases at one noise level: per-image rows, mean rows, targets."""
    t0 = time.perf_counter()
    per_case = [_rows_for_case(case, model, cfg, device) for case in cases]
    rows = _mean_rows(per_case)
    result = {
        "images": [
            {"id": c.id, "kernel": c.kernel_name, "shape": list(center_crop(c.blurred, cfg["crop"]).shape), "rows": r}
            for c, r in zip(cases, per_case)
        ],
        "rows": rows,
        "targets": check_targets(rows),
        "seconds": time.perf_counter() - t0,
    }
    fid_row = rows[fidelity_label(cfg["fidelity"]["steps"], cfg["fidelity"]["samples"])]
    log(
        f"diffusion {model['name']} {track}/{noise}: {len(cases)} images in "
        f"{time.perf_counter() - t0:.1f} s; PSNR x_init {rows[X_INIT]['psnr']:.2f}, fidelity "
        f"{fid_row['psnr']:.2f} dB; std/error rho {_fmt(fid_row.get('std_error_spearman'), 3)} "
        f"(edge map {_fmt(fid_row.get('edge_error_spearman'), 3)})"
    )
    return result


def _evaluate_model(model: dict, track_cases: dict, cfg: dict, noises, device: str, log) -> dict:
    """A model's entry: its rows on every track its channels fit and every noise level, and its
    targets (met on all of them). The first refinement loads the weights and warms the device up,
    untimed."""
    tracks = [t for t, c in TRACK_CHANNELS.items() if c == model["channels"] and track_cases.get(t)]
    entry = {**model, "tracks": {}, "targets": {}}
    started = time.perf_counter()
    warmed = False
    for track in tracks:
        entry["tracks"][track] = {}
        for noise in noises:
            cases = pick_cases([c for c in track_cases[track] if c.noise == noise], cfg["cases"])
            if not cases:
                continue
            if not warmed:
                timed_refine(
                    center_crop(cases[0].blurred, cfg["crop"]), model["source"], steps=1, samples=1, device=device
                )
                warmed = True
            entry["tracks"][track][noise] = _evaluate_noise(model, track, noise, cases, cfg, device, log)
    per_noise = [res["targets"] for by_noise in entry["tracks"].values() for res in by_noise.values()]
    if per_noise:
        entry["targets"] = {k: all(t[k] for t in per_noise) for k in per_noise[0]}
    entry["seconds"] = time.perf_counter() - started
    return entry


def _speed(denoisers: list[dict], models: dict, cfg: dict, device: str, log) -> dict:
    """The ``"speed"`` entry: the photo model (else the first) among those that ran, timed by
    :func:`~.timing.time_speed`, with per-sample estimates at the benchmark's step counts."""
    ran = [m for m in denoisers if models[m["name"]]["tracks"]] or denoisers
    photo = [m for m in ran if m["channels"] == 3]
    model = next((m for m in photo if m["name"] == bundled_name("photo", DENOISER)), (photo or ran)[0])
    timing = time_speed(model, cfg["timing"], device)
    timing["seconds_per_sample_estimated"] = extrapolate(timing, [cfg["fidelity"]["steps"], *cfg["perceptual"]])
    log(
        f"diffusion {model['name']} at {timing['shape']}: {timing['seconds_per_step']:.3f} s / step, "
        f"{timing['seconds_per_sample']:.2f} s / sample at T={timing['steps']}"
    )
    return timing


def evaluate_diffusion(denoisers: list[dict], track_cases: dict, cfg: dict, noises, device: str, log=print) -> dict:
    """The ``"diffusion"`` section of benchmark.json.

    Args:
        denoisers: from :func:`select_denoisers`.
        track_cases: ``{"photo": [Case, ...], "microscopy": [...]}``, the benchmark's test cases.
        cfg: ``{"cases": k, "crop": px, "fidelity": {"steps", "samples"}, "perceptual": [T, ...],
            "timing": {"size", "steps", "samples"}}`` (optionally ``"seed"``, ``"sampler"``).
        noises: the noise levels to run.
    """
    from ..engine.device import describe, pick_device

    started = time.perf_counter()
    settings = {
        **{k: cfg[k] for k in ("cases", "crop", "fidelity", "perceptual", "timing")},
        "seed": cfg.get("seed", 0),
        "sampler": cfg.get("sampler", "ddpm"),
        **SETTINGS_NOTES,
    }
    section = {"settings": settings, "device": describe(pick_device(device)), "models": {}}
    if not denoisers:
        section["skipped"] = "no diffusion denoiser (ResidualDenoiser) bundled or given"
        return section
    for model in denoisers:
        section["models"][model["name"]] = _evaluate_model(model, track_cases, cfg, noises, device, log)
    if cfg.get("timing"):
        section["speed"] = _speed(denoisers, section["models"], cfg, device, log)
    section["seconds"] = time.perf_counter() - started
    return section


# ---------------------------------------------------------------- Markdown


def _fmt(value, digits: int) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def to_markdown(section: dict) -> list[str]:
    """The diffusion section of benchmark.md, as lines (same table style as the other tracks)."""
    lines = ["## Diffusion refinement (predict and refine)", ""]
    if not section.get("models"):
        return lines + [f"No diffusion rows: {section.get('skipped', 'no denoiser')}.", ""]
    s = section["settings"]
    lines += [
        f"Rows: the sharp ground truth and the blurry input (references), x_init = g(y) (the frozen XYDeblur "
        f"predictor's output), **fidelity** = the average of {s['fidelity']['samples']} samples after "
        f"{s['fidelity']['steps']} diffusion steps, **perceptual** = one sample after T steps. blur_effect is "
        f"scikit-image's no-reference blur measure (lower is sharper). std/error ρ is the Spearman rank "
        f"correlation between the fidelity row's per-pixel standard deviation and its absolute error: does the "
        f"uncertainty point at the errors? edge ρ is the same for the gradient magnitude of x_init, a map "
        f"that needs no sampling: the baseline the std has to beat. {s['cases']} image(s) per noise level, "
        f"centre crops of {s['crop']} px; seed {s['seed']}, {s['sampler']} sampler; s / step is one denoiser "
        f"pass over the chains in flight, s / sample the whole call divided by N.",
        "",
    ]
    names = {
        "fidelity_psnr_above_x_init": "fidelity PSNR > x_init PSNR",
        "perceptual_sharper_than_x_init": "perceptual (most steps) blur_effect < x_init's",
        "uncertainty_tracks_error": f"std/error ρ > {TARGET_CORRELATION}",
    }
    for name, entry in section["models"].items():
        lines += [f"### {name} (predictor {entry.get('predictor')})", ""]
        if not entry["tracks"]:
            lines += ["No track fits this model's channel count.", ""]
            continue
        for track, noises in entry["tracks"].items():
            for noise, res in noises.items():
                lines += [
                    f"{track.capitalize()} track, noise {noise} ({res['rows'][INPUT].get('n', 0)} image(s), "
                    f"{res['seconds']:.1f} s):",
                    "",
                    "| row | T | N | PSNR (dB) | SSIM | blur_effect | std/error ρ | edge ρ | s / image "
                    "| s / step | s / sample |",
                    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
                ]
                for label, r in res["rows"].items():
                    lines.append(
                        f"| {label} | {r.get('steps', '—')} | {r.get('samples', '—')} | {_fmt(r.get('psnr'), 2)} "
                        f"| {_fmt(r.get('ssim'), 4)} | {_fmt(r.get('blur_effect'), 3)} "
                        f"| {_fmt(r.get('std_error_spearman'), 3)} | {_fmt(r.get('edge_error_spearman'), 3)} "
                        f"| {_fmt(r.get('seconds'), 2)} "
                        f"| {_fmt(r.get('seconds_per_step'), 3)} | {_fmt(r.get('seconds_per_sample'), 2)} |"
                    )
                lines.append("")
        met = ", ".join(f"{label}: **{'yes' if entry['targets'].get(k) else 'no'}**" for k, label in names.items())
        lines += [f"Targets (all noise levels): {met}. {entry['seconds']:.1f} s in all.", ""]
    timing = section.get("speed")
    if timing:
        est = ", ".join(f"T={t}: {v:.1f} s" for t, v in timing["seconds_per_sample_estimated"].items())
        lines += [
            f"Speed at {'x'.join(str(v) for v in timing['shape'][-2:])} px ({timing['model']} on "
            f"{timing['device']}, {timing['precision']}, {timing['tiles']} tile(s), after a warm-up): "
            f"**{timing['seconds_per_step']:.3f} s per step**, {timing['seconds_per_sample']:.2f} s per sample "
            f"at T={timing['steps']} (predictor and set-up {timing['overhead_seconds']:.2f} s); estimated per "
            f"sample: {est}.",
            "",
        ]
    return lines
