"""``napari-deblur eval``: oracle baselines and the bundled models on the fixed benchmark.

For every track (photo, microscopy) and noise level: the blurry input itself,
Wiener and Richardson-Lucy with the *true* kernel (their balance / iteration
count chosen by grid search for the best mean PSNR on the separate tuning
split) and every bundled XYDeblur that fits the track, scored by PSNR and SSIM
(data range 1, :func:`napari_deblur.metrics.score`) and timed per image. Every
diffusion denoiser (bundled or given) adds its predict-and-refine rows on a small
subset of its track's cases (:mod:`.diffusion`).
Writes ``benchmark.md`` and ``benchmark.json`` (:mod:`.report`) and ``clock_motion.png``
(scikit-image's real motion-blurred photo, input | restored).
"""

import datetime
import platform
import time
from pathlib import Path

import numpy as np

from ..diffusion.presets import FIDELITY
from ..metrics import linear_to_srgb, score, srgb_to_linear
from . import baselines
from .cases import MICROSCOPY_NOISE, PHOTO_NOISE, SEED_TAG, microscopy_cases, photo_cases, stardist_image
from .diffusion import evaluate_diffusion, select_denoisers
from .kernels import MICROSCOPY_PSFS, PHOTO_FAMILIES
from .report import checkout_commit, write_report

FULL = {
    "photo": {"crop": 256, "per_photo": 2, "all_families": True, "tune_per_photo": 1},
    "microscopy": {"size": 256, "scenes": 6, "all_psfs": True, "tune_scenes": 3},
    "noises": ["low", "high"],
    "wiener_balance": [float(b) for b in np.logspace(-4, 1, 16)],
    "rl_iterations": [2, 5, 10, 20, 40, 80, 160],
    "diffusion": {
        "cases": 4,
        "crop": 256,
        "fidelity": FIDELITY.as_dict(),
        "perceptual": [100, 500],
        "timing": {"size": 512, "steps": 5, "samples": 1},
    },
}
QUICK = {
    "photo": {"crop": 128, "per_photo": 1, "all_families": False, "tune_per_photo": 1},
    "microscopy": {"size": 128, "scenes": 2, "all_psfs": False, "tune_scenes": 2},
    "noises": ["low", "high"],
    "wiener_balance": [float(b) for b in np.logspace(-4, 1, 6)],
    "rl_iterations": [5, 10, 20, 40],
    # T=500 would dominate a quick run: its perceptual rows stop at T=200 (the JSON records the T used)
    "diffusion": {
        "cases": 1,
        "crop": 64,
        "fidelity": FIDELITY.as_dict(),
        "perceptual": [100, 200],
        "timing": {"size": 512, "steps": 3, "samples": 1},
    },
}
INPUT, WIENER, RL = "blurry input", "Wiener (true kernel)", "Richardson-Lucy (true kernel)"


# ---------------------------------------------------------------- baselines


def _deconvolve(case, method: str, value):
    """The baseline on one case: photos are deconvolved in linear light, like the blur was made."""
    image = srgb_to_linear(case.blurred) if case.track == "photo" else case.blurred
    if method == WIENER:
        out = baselines.wiener(image, case.kernel, value)
    else:
        out = baselines.richardson_lucy(image, case.kernel, value)
    return linear_to_srgb(out) if case.track == "photo" else out


def tune(cases, grid_balance, grid_iterations) -> dict:
    """Grid search on tuning cases: the balance and iteration count with the best mean PSNR."""
    wiener_scores = {b: [] for b in grid_balance}
    rl_scores = {n: [] for n in grid_iterations}
    for case in cases:
        image = srgb_to_linear(case.blurred) if case.track == "photo" else case.blurred
        back = linear_to_srgb if case.track == "photo" else (lambda x: x)
        for b in grid_balance:
            wiener_scores[b].append(score(case.sharp, back(baselines.wiener(image, case.kernel, b)))["psnr"])
        path = baselines.richardson_lucy_path(image, case.kernel, grid_iterations)
        for n in grid_iterations:
            rl_scores[n].append(score(case.sharp, back(path[n]))["psnr"])
    w_mean = {b: float(np.mean(v)) for b, v in wiener_scores.items()}
    r_mean = {n: float(np.mean(v)) for n, v in rl_scores.items()}
    return {
        "wiener_balance": max(w_mean, key=w_mean.get),
        "rl_iterations": int(max(r_mean, key=r_mean.get)),
        "tuning_cases": len(cases),
        "wiener_grid_psnr": {f"{b:.3g}": v for b, v in w_mean.items()},
        "rl_grid_psnr": {str(n): v for n, v in r_mean.items()},
    }


# ---------------------------------------------------------------- models


def select_models(names=None) -> list[dict]:
    """``[{'name', 'source', 'channels'}]``: the requested models, or all bundled XYDeblur models."""
    from ..models.registry import available_models
    from ..models.weights import load_model, model_manifest

    bundled = available_models()
    chosen = list(names) if names else bundled
    out = []
    for name in chosen:
        if name in bundled:
            channels = model_manifest(name).get("architecture", {}).get("channels")
            if channels is None:
                channels = load_model(name).channels
            out.append({"name": name, "source": name, "channels": int(channels)})
        else:
            model = load_model(name)  # a path; raises WeightsError with the reason otherwise
            out.append({"name": Path(str(name)).stem, "source": str(name), "channels": int(model.channels)})
    return out


def split_model_names(names) -> tuple[list | None, list | None]:
    """``(xydeblur_names, denoiser_names)`` from ``--models``; ``(None, None)`` (every bundled
    model of both kinds) when no names are given."""
    from ..models.weights import is_denoiser

    if not names:
        return None, None
    names = list(names)
    denoisers = [n for n in names if is_denoiser(n)]
    return [n for n in names if n not in denoisers], denoisers


def track_models(models: list[dict], track: str) -> list[dict]:
    """Models for a track: matching channel count; on microscopy without a 1-channel model, the RGB ones
    replicated (labelled as such)."""
    want = 3 if track == "photo" else 1
    fit = [
        dict(m, label=m["name"], mode="joint" if want == 3 else "per-channel") for m in models if m["channels"] == want
    ]
    if track == "microscopy" and not fit:
        fit = [
            dict(m, label=f"{m['name']} (replicated to RGB)", mode="replicated") for m in models if m["channels"] == 3
        ]
    return fit


def _run_model(model: dict, case, device: str):
    from ..engine.restore import xydeblur

    image = case.blurred.transpose(1, 2, 0) if case.track == "photo" else case.blurred
    axes = "YXC" if case.track == "photo" else "YX"
    started = time.perf_counter()
    result = xydeblur(image, model["source"], axes=axes, device=device, normalize="dtype", out_dtype="float32")
    seconds = time.perf_counter() - started
    out = result.restored.transpose(2, 0, 1) if case.track == "photo" else result.restored
    return out, seconds, result.info


# ---------------------------------------------------------------- the run


def _means(rows, methods) -> dict:
    means = {}
    for method in methods:
        vals = [r["methods"][method] for r in rows if method in r["methods"]]
        if vals:
            means[method] = {k: float(np.mean([v[k] for v in vals])) for k in ("psnr", "ssim", "seconds")}
            means[method]["n"] = len(vals)
    return means


def _by_kernel(rows, methods) -> dict:
    kernels = sorted({r["kernel"] for r in rows}, key=lambda k: (PHOTO_FAMILIES + MICROSCOPY_PSFS).index(k))
    return {
        m: {
            k: float(np.mean([r["methods"][m]["psnr"] for r in rows if r["kernel"] == k and m in r["methods"]]))
            for k in kernels
        }
        for m in methods
        if any(m in r["methods"] for r in rows)
    }


def evaluate_track(track, test_cases, tune_cases, cfg, models, device, log) -> dict:
    out, warmed = {}, set()
    for noise in cfg["noises"]:
        cases = [c for c in test_cases if c.noise == noise]
        started = time.perf_counter()
        tuned = tune([c for c in tune_cases if c.noise == noise], cfg["wiener_balance"], cfg["rl_iterations"])
        log(
            f"{track}/{noise}: tuned Wiener balance {tuned['wiener_balance']:.3g}, RL {tuned['rl_iterations']} "
            f"iterations on {tuned['tuning_cases']} tuning images ({time.perf_counter() - started:.1f} s)"
        )
        rows = []
        for case in cases:
            methods = {INPUT: {**score(case.sharp, case.blurred), "seconds": 0.0}}
            for method, value in ((WIENER, tuned["wiener_balance"]), (RL, tuned["rl_iterations"])):
                t0 = time.perf_counter()
                restored = _deconvolve(case, method, value)
                methods[method] = {**score(case.sharp, restored), "seconds": time.perf_counter() - t0}
            for model in models:
                if model["label"] not in warmed:  # first call loads weights and warms the device up: not timed
                    _run_model(model, case, device)
                    warmed.add(model["label"])
                restored, seconds, _info = _run_model(model, case, device)
                methods[model["label"]] = {**score(case.sharp, restored), "seconds": seconds}
            rows.append(
                {
                    "id": case.id,
                    "source": case.source,
                    "kernel": case.kernel_name,
                    "kernel_size": int(case.kernel.shape[0]),
                    "params": case.params,
                    "shape": list(case.blurred.shape),
                    "methods": methods,
                }
            )
        names = [INPUT, WIENER, RL] + [m["label"] for m in models]
        noise_desc = (PHOTO_NOISE if track == "photo" else MICROSCOPY_NOISE)[noise]["description"]
        out[noise] = {
            "noise": noise_desc,
            "tuned": tuned,
            "images": rows,
            "means": _means(rows, names),
            "psnr_by_kernel": _by_kernel(rows, names),
        }
        log(f"{track}/{noise}: {len(rows)} images done")
    return out


def restore_clock(out_dir: Path, models: list[dict], device: str) -> dict:
    """Run the photo model (replicated on gray) on scikit-image's real motion-blurred clock."""
    from PIL import Image
    from skimage.measure import blur_effect

    from ..data.sharp import photo_dir
    from ..engine.restore import xydeblur
    from ..models.registry import bundled_name

    folder = photo_dir()
    path = folder / "clock_motion.png" if folder is not None else None
    if path is None or not path.is_file():
        return {"skipped": "scikit-image's clock_motion.png is not available"}
    photo = [m for m in models if m["channels"] == 3]
    if not photo:
        return {"skipped": "no 3-channel (photo) model to run"}
    model = next((m for m in photo if m["name"] == bundled_name("photo")), photo[0])
    with Image.open(path) as im:
        gray = np.asarray(im.convert("L"), np.float32) / 255
    started = time.perf_counter()
    result = xydeblur(gray, model["source"], axes="YX", device=device, normalize="dtype", out_dtype="float32")
    seconds = time.perf_counter() - started
    restored = np.clip(result.restored, 0, 1)
    gap = np.ones((gray.shape[0], 8), np.float32)
    side = np.concatenate([gray, gap, restored], axis=1)
    target = out_dir / "clock_motion.png"
    Image.fromarray(np.round(side * 255).astype(np.uint8)).save(target)
    return {
        "file": target.name,
        "model": model["name"],
        "channel_mode": result.info.get("channel_mode"),
        "shape": list(gray.shape),
        "seconds": seconds,
        "layout": "input | restored (8 px white gap)",
        "blur_effect_input": float(blur_effect(gray)),
        "blur_effect_restored": float(blur_effect(restored)),
    }


def run_benchmark(out_dir, *, quick=False, models=None, device="auto", diffusion=None, log=print) -> dict:
    """Run the whole benchmark; writes benchmark.md, benchmark.json and clock_motion.png in ``out_dir``."""
    import torch

    from .. import __version__
    from ..engine.device import describe, pick_device

    started = time.perf_counter()
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    cfg = QUICK if quick else FULL
    if diffusion:  # e.g. {"cases": 2, "crop": 128}: a smaller diffusion subset for a slow device
        cfg = {**cfg, "diffusion": {**cfg["diffusion"], **diffusion}}
    dev = pick_device(device)
    xy_names, denoiser_names = split_model_names(models)
    chosen = select_models(xy_names) if xy_names is None or xy_names else []
    denoisers = select_denoisers(denoiser_names)
    log(
        f"napari-deblur eval ({'quick' if quick else 'full'}) on {describe(dev)}; models: "
        f"{', '.join(m['name'] for m in chosen + denoisers) or 'none bundled'}"
    )

    pc, mc = cfg["photo"], cfg["microscopy"]
    photo_test = photo_cases("test", pc["crop"], pc["per_photo"], cfg["noises"], pc["all_families"])
    photo_tune = photo_cases("tune", pc["crop"], pc["tune_per_photo"], cfg["noises"], pc["all_families"])
    micro_test = microscopy_cases("test", mc["size"], mc["scenes"], cfg["noises"], mc["all_psfs"], not quick)
    micro_tune = microscopy_cases("tune", mc["size"], mc["tune_scenes"], cfg["noises"], mc["all_psfs"], False)
    tracks = {}
    for track, test, tuning in (("photo", photo_test, photo_tune), ("microscopy", micro_test, micro_tune)):
        ms = track_models(chosen, track)
        tracks[track] = {
            "models": [{k: m[k] for k in ("label", "name", "channels", "mode")} for m in ms],
            "results": evaluate_track(track, test, tuning, cfg, ms, str(dev), log),
        }
    diffusion = evaluate_diffusion(
        denoisers, {"photo": photo_test, "microscopy": micro_test}, cfg["diffusion"], cfg["noises"], str(dev), log
    )
    settings = _settings(cfg, quick)
    report = {
        "benchmark": "napari-deblur eval",
        "mode": "quick" if quick else "full",
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "napari_deblur": __version__,
        "git_commit": checkout_commit(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": describe(dev),
        "device_requested": device,
        "torch_threads": torch.get_num_threads(),
        "settings": settings,
        "tracks": tracks,
        "diffusion": diffusion,
    }
    report["clock_motion"] = restore_clock(out_dir, chosen, str(dev))
    report["seconds_total"] = time.perf_counter() - started
    write_report(out_dir, report)
    return report


def _settings(cfg: dict, quick: bool) -> dict:
    """The report's ``settings``: the configuration used, the images, kernels and noise levels, and how
    methods are scored and timed."""
    has_stardist = stardist_image() is not None
    stardist_status = (
        ("used" if not quick else "skipped in --quick") if has_stardist else "skipped: stardist not installed"
    )
    return {
        "seed_tag": SEED_TAG,
        "seed_key": "numpy default_rng([seed_tag, split (test 0, tune 1), track (photo 0, microscopy 1), ...])",
        "photo": {
            **cfg["photo"],
            "photos": sorted(_heldout_names()),
            "kernel_families": list(PHOTO_FAMILIES),
            "noise": {k: PHOTO_NOISE[k]["description"] for k in cfg["noises"]},
            "blur": "linear light (sRGB decoded), valid region only; baselines deconvolve in linear light",
        },
        "microscopy": {
            **cfg["microscopy"],
            "psfs": list(MICROSCOPY_PSFS),
            "noise": {k: MICROSCOPY_NOISE[k]["description"] for k in cfg["noises"]},
            "stardist_img2d": stardist_status,
        },
        "wiener_balance_grid": cfg["wiener_balance"],
        "rl_iterations_grid": cfg["rl_iterations"],
        "metrics": "PSNR and SSIM (skimage.metrics, data_range 1, outputs clipped to [0, 1]; "
        "SSIM with channel_axis on RGB)",
        "timing": "seconds per image per method on the device above; a model's first call (weights, warm-up) "
        "is not timed",
        "model_call": "napari_deblur.xydeblur(float32 in [0, 1], normalize='dtype', out_dtype='float32')",
    }


def _heldout_names():
    from ..data.sharp import heldout_photos

    return list(heldout_photos())
