"""``napari-deblur eval --real DATA``: the bundled (or given) models on real data, and the gate.

Tracks (:mod:`.real_cases`): ``gopro`` (real camera blur pairs), ``photo_blur`` (held-out
real photos, out-of-family kernels), ``fluorescence`` (held-out real cells, the measured
PSF and unseen PSFs, camera noise), and the identity tracks (sharp real images in).
The photo model runs on the photo tracks, the microscopy model on the microscopy ones,
as a user would run them: the image as it comes (uint8 photo, uint16 counts), the
engine's own intensity scaling, ``out_dtype="float32"``. Scores are PSNR and SSIM
(data range 1) against the sharp reference, beside oracle Wiener and Richardson-Lucy
given the true kernel (their balance and iteration count picked per track for the best
mean PSNR on the track itself: an upper bound for those methods). On fluorescence,
``invented`` is the high-pass energy of (output - truth) over that of (input - truth),
inside the in-focus structure: below 1, the output adds less false detail than the input
error holds. ``contact_sheet.png`` puts the real blurry photos (no reference) beside the
photo model's output, to look at; it shows the development data's photos, so it stays out of git.

:func:`gate` is the do-no-harm rule a bundled model must pass (``napari-deblur export``).
"""

import datetime
import json
import platform
import time
from pathlib import Path

import numpy as np

from ..metrics import linear_to_srgb, score, sharpness, srgb_to_linear, uncertainty_correlation
from . import baselines
from .real_cases import (
    fluorescence_cases,
    gopro_cases,
    identity_cases,
    photo_blur_cases,
    real_blur_only_files,
)

PHOTO_TRACKS = ("gopro", "photo_blur", "identity_photo")
MICROSCOPY_TRACKS = ("fluorescence", "identity_microscopy")
IDENTITY_MIN_PSNR = 33.0
MAX_WORSE_SHARE = 0.1
WIENER_GRID = [float(b) for b in np.logspace(-4, 0, 9)]
RL_GRID = [5, 10, 20, 40, 80]
INPUT, WIENER, RL = "input", "Wiener (true kernel)", "Richardson-Lucy (true kernel)"


def gaussian(x: np.ndarray, sigma: float) -> np.ndarray:
    fy = np.fft.fftfreq(x.shape[-2])[:, None]
    fx = np.fft.rfftfreq(x.shape[-1])[None, :]
    t = np.exp(-2 * (np.pi * sigma) ** 2 * (fy * fy + fx * fx))
    return np.fft.irfft2(np.fft.rfft2(x) * t, s=x.shape[-2:])


def invented_structure(output: np.ndarray, blurred: np.ndarray, truth: np.ndarray, sigma: float = 1.5) -> float:
    """High-pass energy of (output - truth) / that of (input - truth), where the truth has structure
    (its smoothed intensity above its 60th percentile). Below 1: less false detail than the input error."""
    truth = np.asarray(truth, np.float64)
    mask = gaussian(truth, 3) > np.percentile(gaussian(truth, 3), 60)
    high = lambda e: e - gaussian(e, sigma)  # noqa: E731
    out_err = high(np.asarray(output, np.float64) - truth)[mask]
    in_err = high(np.asarray(blurred, np.float64) - truth)[mask]
    return float((out_err**2).sum() / max((in_err**2).sum(), 1e-12))


def _oracles(cases) -> dict:
    """Per-case Wiener and RL outputs with the balance / iterations best on the track's mean PSNR."""
    if not cases or cases[0].kernel is None:
        return {}
    photo = cases[0].sharp.ndim == 3
    to_lin = srgb_to_linear if photo else (lambda x: x)
    back = (lambda x: linear_to_srgb(x)) if photo else (lambda x: x)
    wiener, rl = {}, {}
    for i, c in enumerate(cases):
        image = to_lin(np.clip(c.blurred_unit, 0, None) if photo else c.blurred_unit)
        wiener[i] = {b: back(baselines.wiener(image, c.kernel, b)) for b in WIENER_GRID}
        rl[i] = {n: back(v) for n, v in baselines.richardson_lucy_path(image, c.kernel, RL_GRID).items()}
    out = {}
    for name, table in ((WIENER, wiener), (RL, rl)):
        keys = list(table[0])
        best = max(keys, key=lambda k: np.mean([score(c.sharp, table[i][k])["psnr"] for i, c in enumerate(cases)]))
        out[name] = ({i: table[i][best] for i in table}, best)
    return out


def _run(model, case, device):
    from ..engine.restore import xydeblur

    axes = "YXC" if case.image.ndim == 3 else "YX"
    started = time.perf_counter()
    result = xydeblur(case.image, model, axes=axes, device=device, out_dtype="float32")
    return case.to_unit(result.restored), time.perf_counter() - started


def evaluate_real_track(track: str, cases, models: list, device: str, log=print) -> dict:
    """Scores of the input, the oracles (when the kernel is known) and each model, per image and mean."""
    started = time.perf_counter()
    oracles = _oracles(cases) if not track.startswith("identity") else {}
    rows = []
    for i, c in enumerate(cases):
        blurred = c.blurred_unit
        methods = {INPUT: score(c.sharp, blurred)}
        for name, (outputs, setting) in oracles.items():
            methods[name] = {**score(c.sharp, outputs[i]), "setting": setting}
        for model in models:
            out, seconds = _run(model["source"], c, device)
            methods[model["name"]] = {**score(c.sharp, out), "seconds": seconds}
            if track == "fluorescence":
                methods[model["name"]]["invented"] = invented_structure(out, blurred, c.sharp)
        for name, (outputs, _) in oracles.items():
            if track == "fluorescence":
                methods[name]["invented"] = invented_structure(outputs[i], blurred, c.sharp)
        rows.append({"id": c.id, "shape": list(c.sharp.shape), "params": _jsonable(c.params), "methods": methods})
    names = list(rows[0]["methods"]) if rows else []
    means = {}
    for name in names:
        vals = [r["methods"][name] for r in rows]
        means[name] = {k: float(np.mean([v[k] for v in vals])) for k in ("psnr", "ssim", "invented") if k in vals[0]}
        means[name]["worse_than_input"] = int(sum(v["psnr"] < r["methods"][INPUT]["psnr"] for v, r in zip(vals, rows)))
        means[name]["n"] = len(vals)
    log(
        f"{track}: {len(rows)} images, {time.perf_counter() - started:.0f} s: "
        + ", ".join(f"{n} {m['psnr']:.2f} dB" for n, m in means.items())
    )
    return {"images": rows, "means": means, "oracle_settings": {n: s for n, (_, s) in oracles.items()}}


def refinement_scores(case, model, device: str, steps: int, samples: int, sampler: str = "ddpm") -> dict:
    """One real case refined by the denoiser ``model`` (seed 0): PSNR/SSIM against the sharp reference
    of the input (``"input"``), the predictor (``"predictor"``) and the mean of ``samples`` chains of
    ``steps`` steps (``"mean"``), and the std/error rank correlation (``"std_error_rho"``)."""
    from ..diffusion.refine import refine

    axes = "YXC" if case.image.ndim == 3 else "YX"
    result = refine(
        case.image, model, axes=axes, device=device, seed=0, out_dtype="float32",
        steps=steps, samples=samples, sampler=sampler,
    )  # fmt: skip
    mean, x_init = case.to_unit(result.mean), case.to_unit(result.x_init)
    std = result.std / case.gain
    std = std.transpose(2, 0, 1) if std.ndim == 3 else std
    return {
        "input": score(case.sharp, case.blurred_unit),
        "predictor": score(case.sharp, x_init),
        "mean": score(case.sharp, mean),
        "std_error_rho": uncertainty_correlation(std, mean, case.sharp),
    }


def evaluate_denoiser(cases, denoiser: dict, device: str, k: int) -> dict:
    """The Fidelity preset (:data:`~napari_deblur.diffusion.presets.FIDELITY`, the mean) of a denoiser
    and its predictor on the first ``k`` cases: PSNR/SSIM of the input, the predictor and the mean,
    and the std/error rank correlation."""
    from ..diffusion.presets import FIDELITY

    rows = []
    for c in cases[:k]:
        got = refinement_scores(c, denoiser["source"], device, FIDELITY.steps, FIDELITY.samples)
        rows.append(
            {
                "id": c.id,
                INPUT: got["input"],
                "predictor": got["predictor"],
                denoiser["name"]: got["mean"],
                "std_error_rho": got["std_error_rho"],
            }
        )
    means = {}
    for name in (INPUT, "predictor", denoiser["name"]):
        means[name] = {m: float(np.mean([r[name][m] for r in rows])) for m in ("psnr", "ssim")}
        means[name]["worse_than_input"] = int(sum(r[name]["psnr"] < r[INPUT]["psnr"] for r in rows))
        means[name]["n"] = len(rows)
    rhos = [r["std_error_rho"] for r in rows if r["std_error_rho"] is not None]
    rho = float(np.mean(rhos)) if rhos else None
    return {"preset": FIDELITY.as_dict(), "images": rows, "means": means, "std_error_rho": rho}


def _jsonable(d: dict) -> dict:
    return json.loads(json.dumps(d, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o)))


def contact_sheet(root: Path, model, device: str, out: Path, limit: int | None, side: int = 384) -> dict:
    """``contact_sheet.png``: each real blurry photo (a central crop of at most ``side`` px) beside the
    model's output, one pair per row; scikit-image's blur_effect (0 sharp .. 1 blurry) for both."""
    from PIL import Image

    files = real_blur_only_files(root)[:limit]
    rows, record = [], []
    for path in files:
        with Image.open(path) as im:
            arr = np.asarray(im.convert("RGB"))
        h, w = arr.shape[:2]
        y, x = max(0, (h - side) // 2), max(0, (w - side) // 2)
        arr = np.ascontiguousarray(arr[y : y + side, x : x + side])
        from ..engine.restore import xydeblur

        restored = xydeblur(arr, model, axes="YXC", device=device).restored
        pair = np.full((side, 2 * side + 8, 3), 255, np.uint8)
        pair[: arr.shape[0], : arr.shape[1]] = arr
        pair[: arr.shape[0], side + 8 : side + 8 + arr.shape[1]] = restored
        rows.append(pair)
        record.append(
            {
                "file": str(path.relative_to(root)),
                "crop": [y, x, side],
                "blur_effect_input": sharpness(arr.transpose(2, 0, 1) / 255),
                "blur_effect_output": sharpness(restored.transpose(2, 0, 1) / 255),
            }
        )
    if rows:
        Image.fromarray(np.concatenate(rows)).save(out)
    return {"file": out.name, "layout": "input | output, one real blurry photo per row", "images": record}


def gate(report: dict, name: str) -> dict:
    """The do-no-harm gate for model ``name`` over the tracks it was scored on: on every track its mean
    PSNR and SSIM are at least the input's and at most a tenth of the images lose PSNR; on an identity
    track (sharp input) its mean PSNR against the input is at least 33 dB."""
    checks = []
    entry = next((m for m in report.get("models", []) + report.get("denoisers", []) if m["name"] == name), None)
    if entry is not None:  # every real track of the model's kind must have been scored
        for track in PHOTO_TRACKS if entry["channels"] == 3 else MICROSCOPY_TRACKS:
            if track not in report["tracks"]:
                checks.append({"track": track, "check": "scored", "value": "missing", "passed": False})
    for track, data in report["tracks"].items():
        section = data.get("diffusion", {}).get(name, data)  # a denoiser is scored on its own subset
        m, base = section["means"].get(name), section["means"][INPUT]
        if m is None:
            continue
        if track.startswith("identity"):
            checks.append(
                {
                    "track": track,
                    "check": f"PSNR vs the sharp input >= {IDENTITY_MIN_PSNR} dB",
                    "value": round(m["psnr"], 2),
                    "passed": m["psnr"] >= IDENTITY_MIN_PSNR,
                }
            )
            continue
        share = m["worse_than_input"] / max(m["n"], 1)
        checks += [
            {
                "track": track,
                "check": "mean PSNR >= input",
                "value": round(m["psnr"] - base["psnr"], 3),
                "passed": m["psnr"] >= base["psnr"],
            },
            {
                "track": track,
                "check": "mean SSIM >= input",
                "value": round(m["ssim"] - base["ssim"], 4),
                "passed": m["ssim"] >= base["ssim"],
            },
            {
                "track": track,
                "check": f"images below the input's PSNR <= {MAX_WORSE_SHARE:.0%}",
                "value": f"{m['worse_than_input']}/{m['n']}",
                "passed": share <= MAX_WORSE_SHARE,
            },
        ]
    return {"model": name, "passed": bool(checks) and all(c["passed"] for c in checks), "checks": checks}


def run_real_benchmark(
    root, out_dir, *, models=None, denoisers=(), quick=False, device="auto", diffusion_cases: int = 3, log=print
) -> dict:
    """Score ``models`` (``[{'name', 'source', 'channels'}]``, default every bundled XYDeblur) and
    ``denoisers`` (Fidelity preset, on the first ``diffusion_cases`` images of each track) on the real
    tracks; writes ``real.json``, ``real.md`` and ``contact_sheet.png`` into ``out_dir``."""
    import torch

    from .. import __version__
    from ..engine.device import describe, pick_device
    from .benchmark import select_models
    from .report import checkout_commit

    root, out_dir = Path(root), Path(out_dir)
    if not (root / "photos").is_dir() or not (root / "fluorescence").is_dir():
        raise ValueError(f"--real {root}: expected the project's data folder (photos/, fluorescence/, ...)")
    out_dir.mkdir(parents=True, exist_ok=True)
    mode = "quick" if quick else "full"
    dev = pick_device(device)
    models = models if models is not None else select_models()
    started = time.perf_counter()
    log(f"napari-deblur eval --real ({mode}) on {describe(dev)}; models: {', '.join(m['name'] for m in models)}")
    makers = {"gopro": gopro_cases, "photo_blur": photo_blur_cases, "fluorescence": fluorescence_cases}
    identity = identity_cases(root, mode)
    tracks = {}
    for track in PHOTO_TRACKS + MICROSCOPY_TRACKS:
        channels = 3 if track in PHOTO_TRACKS else 1
        if not any(m["channels"] == channels for m in list(models) + list(denoisers)):
            continue  # nothing to score here
        cases = [c for c in identity if c.track == track] if track.startswith("identity") else makers[track](root, mode)
        if quick:
            cases = cases[:3]
        fit = [m for m in models if m["channels"] == channels]
        tracks[track] = evaluate_real_track(track, cases, fit, str(dev), log)
        for den in (d for d in denoisers if d["channels"] == channels):
            started_d = time.perf_counter()
            res = evaluate_denoiser(cases, den, str(dev), diffusion_cases)
            tracks[track].setdefault("diffusion", {})[den["name"]] = res
            log(
                f"{track}: {den['name']} Fidelity mean {res['means'][den['name']]['psnr']:.2f} dB, predictor "
                f"{res['means']['predictor']['psnr']:.2f} dB, input {res['means'][INPUT]['psnr']:.2f} dB "
                f"({res['means'][INPUT]['n']} images, {time.perf_counter() - started_d:.0f} s)"
            )
    photo = [m for m in models if m["channels"] == 3]
    sheet = (
        contact_sheet(root, photo[0]["source"], str(dev), out_dir / "contact_sheet.png", 3 if quick else None)
        if photo
        else {"skipped": "no photo model"}
    )
    report = {
        "benchmark": "napari-deblur eval --real",
        "mode": mode,
        "date": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "napari_deblur": __version__,
        "git_commit": checkout_commit(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "device": describe(dev),
        "torch_threads": torch.get_num_threads(),
        "data": str(root),
        "models": [{k: m[k] for k in ("name", "source", "channels")} for m in models],
        "denoisers": [{k: d[k] for k in ("name", "source", "channels", "predictor")} for d in denoisers],
        "tracks": tracks,
        "contact_sheet": sheet,
    }
    report["gate"] = {m["name"]: gate(report, m["name"]) for m in list(models) + list(denoisers)}
    report["seconds_total"] = time.perf_counter() - started
    (out_dir / "real.json").write_text(json.dumps(report, indent=1) + "\n")
    (out_dir / "real.md").write_text(to_markdown(report))
    return report


def to_markdown(report: dict) -> str:
    lines = [
        f"# napari-deblur real-data benchmark ({report['mode']})",
        "",
        f"- {report['date']}, commit {report['git_commit']}, device {report['device']}, torch {report['torch']}",
        "- PSNR (dB) / SSIM against the sharp reference, data range 1; oracles get the true kernel and "
        "their best setting on the track; `invented`: high-pass error energy of the output over the "
        "input's, in the in-focus structure (below 1 is better); `worse`: images below the input's PSNR.",
        "",
    ]
    for track, data in report["tracks"].items():
        n = next(iter(data["means"].values()), {}).get("n", 0)
        lines += [
            f"## {track} ({n} images)",
            "",
            "| method | PSNR | SSIM | invented | worse |",
            "|---|---:|---:|---:|---:|",
        ]
        for name, m in data["means"].items():
            inv = f"{m['invented']:.3f}" if "invented" in m else ""
            lines.append(f"| {name} | {m['psnr']:.2f} | {m['ssim']:.4f} | {inv} | {m['worse_than_input']} |")
        lines.append("")
        for den, res in data.get("diffusion", {}).items():
            rho = "n/a" if res["std_error_rho"] is None else f"{res['std_error_rho']:.3f}"
            lines += [
                f"Diffusion {den} (Fidelity: {res['preset']['steps']} steps x {res['preset']['samples']} "
                f"samples, mean) on the first {res['means'][INPUT]['n']} images; std/error rank "
                f"correlation {rho}:",
                "",
                "| | PSNR | SSIM | worse |",
                "|---|---:|---:|---:|",
            ]
            lines += [
                f"| {n} | {m['psnr']:.2f} | {m['ssim']:.4f} | {m['worse_than_input']} |"
                for n, m in res["means"].items()
            ]
            lines.append("")
    lines += ["## Gate (do no harm)", ""]
    for name, g in report["gate"].items():
        lines.append(f"- **{name}: {'passed' if g['passed'] else 'FAILED'}**")
        lines += [
            f"  - {c['track']}: {c['check']}: {c['value']} ({'ok' if c['passed'] else 'fails'})" for c in g["checks"]
        ]
    sheet = report["contact_sheet"]
    if "images" in sheet:
        be_in = np.mean([r["blur_effect_input"] for r in sheet["images"]])
        be_out = np.mean([r["blur_effect_output"] for r in sheet["images"]])
        lines += [
            "",
            f"`{sheet['file']}`: {len(sheet['images'])} real blurry photos, {sheet['layout']}; mean "
            f"blur_effect (0 sharp .. 1 blurry) input {be_in:.3f}, output {be_out:.3f}.",
        ]
    lines += ["", f"Total {report['seconds_total']:.0f} s.", ""]
    return "\n".join(lines)
