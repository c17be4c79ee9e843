"""How a diffusion training run's EMA denoiser does on held-out synthetic crops: the mean
PSNR of the blurry input, of x_init = g(y) and of the mean of N samples after T steps
(default the Fidelity preset, T=10, N=8), and that mean's gain over x_init per crop. A quick
progress check between checkpoints, much cheaper than `napari-deblur eval` (which scores
shipped weights on the benchmark images).

It also reports how well the per-pixel std ranks the error of the mean (Spearman rho, the
benchmark's uncertainty measure), next to a baseline that needs no sampling at all: the
gradient magnitude of x_init (errors sit at edges). An uncertainty map that does not beat
that baseline tells the user little more than an edge map would.

With ``--terminal-check`` it asks instead whether the chain's starting point costs PSNR.
Training never shows the network pure noise: at the last level (abar about 6.7e-3) z still
holds sqrt(abar) times the scaled residual, whose low frequencies a U-Net can read. Sampling
starts from pure noise. The check runs the same chains (plain sampler loop, same noise) from
pure noise and from that training marginal (an oracle start that uses the ground truth, so a
diagnostic only) and prints both means. A gap says the network reads the residual out of the
last level, so pure noise is off its training distribution; the oracle also hands the chain
real information, so the gap is not what a fix of the schedule would gain.

    python tools/probe_denoiser.py runs/dvsr-microscopy --crops 4 --sampler ddpm
    python tools/probe_denoiser.py dvsr-photo          # a bundled denoiser (held-out seed 0)
    python tools/probe_denoiser.py dvsr-microscopy --terminal-check
"""

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from napari_deblur.data.pairs import make_sampler
from napari_deblur.diffusion.pair import resolve_models
from napari_deblur.diffusion.refine import refine
from napari_deblur.diffusion.sampler import sample
from napari_deblur.diffusion.schedule import make_schedule
from napari_deblur.metrics import edge_map, psnr, uncertainty_correlation
from napari_deblur.models.denoiser import ResidualDenoiser
from napari_deblur.models.weights import load_model
from napari_deblur.training.checkpoint import load_checkpoint

HELDOUT_SEED = 10_000  # added to the run's seed: crops the training never draws


@torch.no_grad()
def terminal_check(predictor, denoiser, blurred, sharp, steps, samples, sampler, device="cpu") -> dict:
    """Mean PSNR over crops of x_init and of the N-sample mean started from pure noise and from
    the training marginal at the last level (oracle: uses ``sharp``), with the same noise."""
    predictor, denoiser = predictor.to(device).eval(), denoiser.to(device).eval()
    blurred, sharp = blurred.to(device), sharp.to(device)
    scale, schedule = denoiser.residual_scale, make_schedule(steps)
    last = float(schedule.alpha_bars[steps])
    x_init = predictor(blurred)[2].float()
    n = len(blurred)
    y, xi = blurred.repeat(samples, 1, 1, 1), x_init.repeat(samples, 1, 1, 1)
    r0 = (sharp - x_init).repeat(samples, 1, 1, 1) * scale

    def eps_fn(z, level):
        return denoiser(z, y, xi, torch.full((len(z),), level, device=z.device))

    out = {"x_init": [psnr(b.cpu().numpy(), a.cpu().numpy(), clip=True) for a, b in zip(x_init, sharp)]}
    for start in ("pure noise", "training marginal (oracle)"):
        gen = torch.Generator(device=device).manual_seed(1)
        eps = torch.randn(r0.shape, generator=gen, device=device)
        z_T = eps if start == "pure noise" else last**0.5 * r0 + (1 - last) ** 0.5 * eps
        z0 = sample(eps_fn, z_T, schedule, sampler, generator=gen, clip=scale)
        mean = (xi + z0 / scale).reshape(samples, n, *x_init.shape[1:]).mean(0)
        out[start] = [psnr(b.cpu().numpy(), a.cpu().numpy(), clip=True) for a, b in zip(mean, sharp)]
    return {k: float(np.mean(v)) for k, v in out.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path, help="a `napari-deblur train dvsr` output folder, or a bundled denoiser")
    parser.add_argument("--crops", type=int, default=4)
    parser.add_argument("--crop", type=int, default=128)
    parser.add_argument("--sampler", choices=["ddpm", "ddim"], default="ddpm")
    parser.add_argument("--steps", type=int, default=10, help="T (default 10, the Fidelity preset's)")
    parser.add_argument("--samples", type=int, default=8, help="N (default 8, the Fidelity preset's)")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu", help="where the denoiser runs (cpu, cuda, mps)")
    parser.add_argument(
        "--terminal-check",
        action="store_true",
        help="compare chains started from pure noise and from the training marginal",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    if args.run.is_dir():
        cfg = json.loads((args.run / "config.json").read_text())
        state = load_checkpoint(args.run / "checkpoint")
        denoiser = ResidualDenoiser(**state["config"]).eval()
        denoiser.load_state_dict(state["ema"])
        predictor = load_model(cfg["predictor"]).eval()
        what = f"{args.run} iteration {state['iteration']}"
    else:
        predictor, denoiser = resolve_models(str(args.run))
        cfg = {"preset": "photo" if denoiser.channels == 3 else "microscopy", "seed": 0}
        what = f"{args.run} (bundled)"
    blurred, sharp = make_sampler(
        cfg["preset"], args.crop, args.crops, "cpu", HELDOUT_SEED + cfg["seed"], heldout=True
    ).sample()
    if args.terminal_check:
        res = terminal_check(predictor, denoiser, blurred, sharp, args.steps, args.samples, args.sampler, args.device)
        print(
            f"{what}, {args.crops} held-out {args.crop} px crops, {args.sampler}, T={args.steps}, "
            f"N={args.samples}: x_init {res.pop('x_init'):.2f} dB; mean started from "
            + ", from ".join(f"{k} {v:.2f} dB" for k, v in res.items())
        )
        return
    rows = []
    for y, x in zip(blurred, sharp):
        y, x = y.permute(1, 2, 0).numpy(), x.permute(1, 2, 0).numpy()
        if y.shape[2] == 1:
            y, x = y[..., 0], x[..., 0]
        result = refine(
            y,
            (predictor, denoiser),
            steps=args.steps,
            samples=args.samples,
            sampler=args.sampler,
            device=args.device,
            normalize="dtype",
            axes="YXC" if y.ndim == 3 else "YX",
        )
        channels_first = (lambda a: np.moveaxis(a, -1, 0)) if y.ndim == 3 else (lambda a: a)
        edges = edge_map(channels_first(result.x_init))
        mean, sharp_ = channels_first(result.mean), channels_first(x)
        rows.append(
            (
                psnr(x, y, clip=True),
                psnr(x, result.x_init, clip=True),
                psnr(x, result.mean, clip=True),
                uncertainty_correlation(channels_first(result.std), mean, sharp_),
                uncertainty_correlation(edges, mean, sharp_),
            )
        )
    rows = np.array(rows, dtype=float)
    print(
        f"{what}, {args.crops} held-out {args.crop} px crops, {args.sampler}, T={args.steps}, N={args.samples}: "
        "PSNR input %.2f, x_init %.2f, mean %.2f dB; std/error rho %.3f (edge-map baseline %.3f)"
        % tuple(np.nanmean(rows, 0)),
        "; gain per crop",
        np.round(rows[:, 2] - rows[:, 1], 2).tolist(),
    )


if __name__ == "__main__":
    main()
