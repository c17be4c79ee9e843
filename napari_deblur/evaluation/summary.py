"""One model's lines of a benchmark.json, for its manifest."""


def model_results(benchmark: dict, name: str) -> dict:
    """Mean PSNR/SSIM of ``name`` next to the blurry input and the oracle baselines, per
    track and noise level, plus the benchmark's date, device and commit.

    For a diffusion denoiser (a model of the benchmark's ``"diffusion"`` section) the same
    keys hold its diffusion rows instead (PSNR, SSIM, blur_effect, the std/error rank
    correlation, T, N and seconds per step), with its ``targets`` and, when it was the
    model timed, its 512x512 ``speed``.
    """
    out = {k: benchmark.get(k) for k in ("mode", "date", "device", "git_commit")}
    for track, data in benchmark.get("tracks", {}).items():
        for noise, result in data.get("results", {}).items():
            means = result.get("means", {})
            mine = {m: v for m, v in means.items() if m == name or m.startswith(f"{name} ")}
            if not mine:
                continue
            rows = {**{m: v for m, v in means.items() if m not in mine and "xydeblur" not in m}, **mine}
            out[f"{track}/{noise}"] = {
                m: {"psnr": round(v["psnr"], 2), "ssim": round(v["ssim"], 4)} for m, v in rows.items()
            }
    diffusion = benchmark.get("diffusion", {})
    entry = diffusion.get("models", {}).get(name)
    if entry is not None:
        out.update(_diffusion_results(entry))
        timing = diffusion.get("speed")
        if timing and timing.get("model") == name:
            out["speed"] = {
                k: timing[k]
                for k in (
                    "device",
                    "shape",
                    "steps",
                    "seconds_per_step",
                    "seconds_per_sample",
                    "seconds_per_sample_estimated",
                )
                if k in timing
            }
    return out


_DIGITS = {
    "psnr": 2,
    "ssim": 4,
    "blur_effect": 4,
    "std_error_spearman": 3,
    "edge_error_spearman": 3,
    "seconds_per_step": 4,
}


def _diffusion_results(entry: dict) -> dict:
    """A denoiser's mean rows per ``track/noise`` (rounded), and its targets."""
    out = {}
    for track, by_noise in entry.get("tracks", {}).items():
        for noise, result in by_noise.items():
            rows = {}
            for label, row in result.get("rows", {}).items():
                kept = {k: row[k] for k in ("steps", "samples") if k in row}
                kept.update({k: round(row[k], d) for k, d in _DIGITS.items() if row.get(k) is not None})
                rows[label] = kept
            out[f"{track}/{noise}"] = rows
    out["targets"] = dict(entry.get("targets", {}))
    return out
