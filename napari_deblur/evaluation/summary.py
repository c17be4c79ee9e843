"""One model's lines of a benchmark.json, for its manifest."""


def model_results(benchmark: dict, name: str) -> dict:
    """Mean PSNR/SSIM of ``name`` next to the blurry input and the oracle baselines, per
    track and noise level, plus the benchmark's date, device and commit."""
    out = {k: benchmark.get(k) for k in ("mode", "date", "device", "git_commit")}
    for track, data in benchmark.get("tracks", {}).items():
        for noise, result in data.get("results", {}).items():
            means = result.get("means", {})
            mine = {m: v for m, v in means.items() if m == name or m.startswith(f"{name} ")}
            if not mine:
                continue
            rows = {**{m: v for m, v in means.items() if m not in mine and "xydeblur" not in m}, **mine}
            out[f"{track}/{noise}"] = {m: {"psnr": round(v["psnr"], 2), "ssim": round(v["ssim"], 4)}
                                       for m, v in rows.items()}
    return out
