"""The written side of ``napari-deblur eval``: provenance, the Markdown report and the saved files.

:func:`checkout_commit` names the code a report came from (also used by :mod:`.real`);
:func:`to_markdown` renders a :func:`~napari_deblur.evaluation.benchmark.run_benchmark`
report as Markdown tables, one per track and noise level, followed by the diffusion rows
(:func:`napari_deblur.evaluation.diffusion.to_markdown`) and the real motion-blur photo;
:func:`write_report` saves it as ``benchmark.md`` and ``benchmark.json``.
"""

import json
import subprocess
from pathlib import Path

from .diffusion import to_markdown as diffusion_markdown


def checkout_commit() -> str | None:
    """The git commit of this checkout, ``-dirty`` appended when tracked files changed; ``None`` outside git."""
    repo = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=repo,
            capture_output=True,
            text=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("-dirty" if dirty else "") if commit else None


def to_markdown(report: dict) -> str:
    """The benchmark report as Markdown: settings, one table per track and noise level (means and PSNR per
    kernel), the diffusion rows when present, the clock_motion photo and the total time."""
    s = report["settings"]
    lines = [
        f"# napari-deblur benchmark ({report['mode']})",
        "",
        f"- date: {report['date']}; napari-deblur {report['napari_deblur']}, commit {report['git_commit']}",
        f"- device: {report['device']}; torch {report['torch']}, Python {report['python']}",
        f"- metrics: {s['metrics']}; timing: {s['timing']}",
        f"- oracle baselines get the true kernel; their parameters are tuned on a separate split "
        f"(Wiener balance grid {len(s['wiener_balance_grid'])} values in "
        f"[{min(s['wiener_balance_grid']):.0e}, {max(s['wiener_balance_grid']):.0e}], RL iterations "
        f"{s['rl_iterations_grid']})",
        "",
    ]
    about = {
        "photo": f"held-out photos {', '.join(s['photo']['photos'])}, crops of {s['photo']['crop']} px; "
        f"kernels: {', '.join(s['photo']['kernel_families'])} (outside the training families)",
        "microscopy": f"synthetic fluorescence scenes of {s['microscopy']['size']} px (seeds outside training), "
        f"stardist img2d: {s['microscopy']['stardist_img2d']}; "
        f"PSFs: {', '.join(s['microscopy']['psfs'])}",
    }
    for track, data in report["tracks"].items():
        lines += [f"## {track.capitalize()} track", "", about[track], ""]
        if not data["models"]:
            lines += ["No bundled model fits this track: baselines only.", ""]
        for noise, res in data["results"].items():
            kernels = list(next(iter(res["psnr_by_kernel"].values()), {}))
            lines += [
                f"### Noise: {noise} ({res['noise']})",
                "",
                f"Tuned: Wiener balance **{res['tuned']['wiener_balance']:.3g}**, Richardson-Lucy "
                f"**{res['tuned']['rl_iterations']}** iterations "
                f"({res['tuned']['tuning_cases']} tuning images). PSNR per kernel on the right.",
                "",
                "| method | images | PSNR (dB) | SSIM | s / image | " + " | ".join(kernels) + " |",
                "|---|---:|---:|---:|---:|" + "---:|" * len(kernels),
            ]
            for method, m in res["means"].items():
                per = " | ".join(f"{res['psnr_by_kernel'][method][k]:.2f}" for k in kernels)
                lines.append(
                    f"| {method} | {m['n']} | {m['psnr']:.2f} | {m['ssim']:.4f} | {m['seconds']:.3f} | {per} |"
                )
            lines.append("")
    if "diffusion" in report:
        lines += diffusion_markdown(report["diffusion"])
    clock = report.get("clock_motion", {})
    lines += ["## Real motion blur: scikit-image clock_motion.png", ""]
    if "skipped" in clock:
        lines.append(f"Skipped: {clock['skipped']}.")
    else:
        lines.append(
            f"`{clock['file']}`: {clock['layout']}, restored by {clock['model']} ({clock['channel_mode']}) "
            f"in {clock['seconds']:.2f} s. No ground truth; scikit-image blur_effect (0 sharp .. 1 blurry): "
            f"input {clock['blur_effect_input']:.3f}, restored {clock['blur_effect_restored']:.3f}."
        )
    lines += ["", f"Total time {report['seconds_total']:.1f} s.", ""]
    return "\n".join(lines)


def write_report(out_dir: Path, report: dict) -> None:
    """Save ``report`` in ``out_dir`` as ``benchmark.md`` (:func:`to_markdown`) and ``benchmark.json``."""
    (out_dir / "benchmark.md").write_text(to_markdown(report))
    (out_dir / "benchmark.json").write_text(json.dumps(report, indent=1))
