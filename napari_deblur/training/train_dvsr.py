"""Training the residual diffusion denoiser (Whang et al., CVPR 2022), resumable across commands.

The predictor ``g`` (a trained XYDeblur, ``predictor=``) is frozen. For every batch of
(blurred ``y``, sharp ``x0``) pairs from :func:`napari_deblur.data.pairs.make_sampler`
(flips and 90-degree rotations included):

    x_init = g(y);  r0 = s * (x0 - x_init)      (s = residual_scale, see ResidualDenoiser)
    abar ~ continuous level per sample (:func:`..diffusion.schedule.sample_alpha_bar`)
    z = sqrt(abar) r0 + sqrt(1 - abar) eps,  eps ~ N(0, I)
    loss = L1(f(z, y, x_init, abar), eps)

with AdamW, linear warm-up then cosine decay and an EMA of the weights (the EMA is what gets
exported), bf16 autocast for the denoiser where the hardware runs it natively (CUDA, CPUs with
AVX512-BF16 or AMX; :mod:`.precision`) and the predictor as the engine runs it (fp16 on CUDA,
float32 on the CPU). The noise levels and noises come from one generator whose state is checkpointed,
so a resumed run continues exactly.

A run lives in one folder, like an XYDeblur run (:mod:`.train_xydeblur`, whose loop this reuses):
``log.jsonl``, ``checkpoint/`` (shards under 16 MiB) and ``config.json``; the same command
on the same folder resumes. Validation reports the PSNR of ``g(y)`` and of ``g(y)`` plus a
deterministic DDIM sample of ``val_steps`` steps (EMA weights) on a fixed held-out batch.
Export with :mod:`.export_dvsr`.
"""

from dataclasses import dataclass, field
from pathlib import Path

import torch
import torch.nn.functional as F

from ..data.pairs import PRESETS
from ..diffusion.sampler import sample
from ..diffusion.schedule import make_schedule, sample_alpha_bar
from ..engine.device import pick_device
from ..metrics import psnr
from ..models.denoiser import ResidualDenoiser
from ..models.registry import bundled_name
from ..models.weights import load_denoiser, load_model, weights_sha256
from .checkpoint import load_checkpoint
from .precision import autocast
from .sources import DataOptions, make_training_pairs
from .train_xydeblur import VALIDATION_PSNR, Trainer, learning_rate


@dataclass
class DVSRConfig(DataOptions):
    preset: str = "photo"
    predictor: str | None = None  # default: the bundled XYDeblur of the preset
    iters: int = 20000
    batch: int = 16
    crop: int = 128  # the paper trains on 128x128 crops
    lr: float = 2e-4
    warmup: int = 500
    min_lr_ratio: float = 0.05
    weight_decay: float = 1e-4
    ema: float = 0.999
    seed: int = 0
    width: int = 32
    mults: list = field(default_factory=lambda: [1, 2, 3, 4])
    blocks: int = 2
    residual_scale: float = 5.0  # measured residual std about 0.08 -> about 0.4 diffused
    sigma_data: float = 0.4  # the output preconditioning (ResidualDenoiser), for that std
    init: str | None = None  # denoiser weights to start from
    val_every: int = 500
    ckpt_every: int = 500
    val_crops: int = 8
    val_crop: int = 128
    val_steps: int = 10
    precision: str = "auto"  # of the denoiser's step (the predictor runs as the engine does)


class DVSRTrainer(Trainer):
    """One denoiser training run in ``out`` (created or resumed).

    Reuses :class:`.train_xydeblur.Trainer`'s loop (``run``), checkpoint writing (``save``) and EMA
    update; the model, the step, the validation and the state differ.
    """

    config_class = DVSRConfig

    def __init__(self, cfg: DVSRConfig, out, device="auto", log=print):
        if cfg.preset not in PRESETS:
            raise ValueError(f"preset must be one of {sorted(PRESETS)}, got {cfg.preset!r}")
        if cfg.predictor is None:
            cfg.predictor = bundled_name(cfg.preset)  # the bundled XYDeblur of the preset
        channels = PRESETS[cfg.preset]
        self.cfg, self.out, self.log = cfg, Path(out), log
        self.out.mkdir(parents=True, exist_ok=True)
        self.device = pick_device(device)
        multiple = 2 ** (len(cfg.mults) - 1)
        for name in ("crop", "val_crop"):
            if getattr(cfg, name) % max(4, multiple):
                raise ValueError(f"{name} must be a multiple of {max(4, multiple)}, got {getattr(cfg, name)}")

        self.predictor = load_model(cfg.predictor)
        if self.predictor.channels != channels:
            raise ValueError(
                f"predictor {cfg.predictor!r} has {self.predictor.channels} channels, "
                f"preset {cfg.preset} needs {channels}"
            )
        self.predictor_sha256 = weights_sha256(self.predictor)
        self.predictor.to(self.device).eval().requires_grad_(False)
        if cfg.init:
            self.model = load_denoiser(cfg.init)
            if self.model.channels != channels:
                raise ValueError(
                    f"--init denoiser has {self.model.channels} channels, preset {cfg.preset} needs {channels}"
                )
        else:
            torch.manual_seed(cfg.seed)
            self.model = ResidualDenoiser(
                channels, cfg.width, tuple(cfg.mults), cfg.blocks, cfg.residual_scale, cfg.sigma_data
            )
        self.start_optimising()
        self.noise = torch.Generator(device=self.device).manual_seed(20_000 + cfg.seed)
        self.pair_sampler, (blurred, sharp) = make_training_pairs(cfg, self.device, log)
        self.val = (blurred, sharp, self._predict(blurred))
        self.iteration, self.seconds = 0, 0.0
        if (self.out / "checkpoint" / "index.json").is_file():
            self._resume()
        self._write_config()

    def _predict(self, blurred):
        """x_init = g(y), in fp16 on CUDA as the engine runs it, float32 out."""
        autocast = torch.autocast("cuda", dtype=torch.float16, enabled=self.device.type == "cuda")
        with torch.no_grad(), autocast:
            return self.predictor(blurred)[2].float()

    def _state(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "ema": self.ema,
            "optimizer": self.opt.state_dict(),
            "sampler": self.pair_sampler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "noise_rng": self.noise.get_state(),
            "iteration": self.iteration,
            "seconds": self.seconds,
            "config": {**self.model.config},
            "architecture": "ResidualDenoiser",
            "predictor": str(self.cfg.predictor),
            "predictor_sha256": self.predictor_sha256,
        }

    def _resume(self):
        state = load_checkpoint(self.out / "checkpoint")
        if state.get("architecture") != "ResidualDenoiser":
            raise ValueError(f"{self.out} holds a checkpoint of another architecture; use a new folder")
        if state.get("predictor") != str(self.cfg.predictor):
            self.log(
                f"warning: this run was trained with predictor {state.get('predictor')!r}, now {self.cfg.predictor!r}"
            )
        elif state.get("predictor_sha256") not in (None, self.predictor_sha256):
            self.log(
                f"warning: predictor {self.cfg.predictor!r} has other weights than when this run "
                f"began (sha256 {str(state['predictor_sha256'])[:12]}..., now "
                f"{str(self.predictor_sha256)[:12]}...)"
            )
        for key, default in (("residual_scale", 1.0), ("sigma_data", 0.0)):
            saved = state.get("config", {}).get(key, default)
            if saved != self.model.config[key]:
                raise ValueError(
                    f"{self.out} was trained with {key} {saved}, not "
                    f"{self.model.config[key]}; use the same value or a new folder"
                )
        self.model.load_state_dict(state["model"])
        self.ema = {k: v.to(self.device) for k, v in state["ema"].items()}
        self.opt.load_state_dict(state["optimizer"])
        self.pair_sampler.load_state_dict(state["sampler"])
        torch.set_rng_state(state["torch_rng"])
        self.noise.set_state(state["noise_rng"])
        self.iteration, self.seconds = int(state["iteration"]), float(state["seconds"])
        self.log(f"resumed {self.out} at iteration {self.iteration}")

    def step(self) -> float:
        cfg = self.cfg
        for group in self.opt.param_groups:
            group["lr"] = learning_rate(cfg, self.iteration)
        blurred, sharp = self.pair_sampler.sample()
        x_init = self._predict(blurred)
        r0 = (sharp - x_init) * self.model.residual_scale
        alpha_bar = sample_alpha_bar(len(r0), self.noise, self.device)
        eps = torch.randn(r0.shape, generator=self.noise, device=self.device)
        a = alpha_bar[:, None, None, None]
        z = a.sqrt() * r0 + (1 - a).sqrt() * eps
        with autocast(self.device, cfg.precision):
            z, blurred, x_init = (t.contiguous(memory_format=self.layout) for t in (z, blurred, x_init))
            eps_hat = self.model(z, blurred, x_init, alpha_bar)
        loss = F.l1_loss(eps_hat.float(), eps)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        self._update_ema()
        self.iteration += 1
        return loss.item()

    @torch.no_grad()
    def validate(self) -> dict:
        """PSNR of g(y) and of g(y) + a DDIM sample (EMA weights, fixed z_T) on the held-out batch."""
        blurred, sharp, x_init = self.val
        model = ResidualDenoiser(**self.model.config).to(self.device).eval()
        model.load_state_dict(self.ema)
        schedule = make_schedule(self.cfg.val_steps)
        gen = torch.Generator(device=self.device).manual_seed(4321)
        z_T = torch.randn(sharp.shape, generator=gen, device=self.device)
        scale = model.residual_scale
        refined = []
        for i in range(0, len(sharp), 2):
            y, xi = blurred[i : i + 2], x_init[i : i + 2]

            def eps_fn(z, level, y=y, xi=xi):
                return model(z, y, xi, torch.full((len(z),), level, device=z.device))

            refined.append(xi + sample(eps_fn, z_T[i : i + 2], schedule, "ddim", clip=scale) / scale)
        refined = torch.cat(refined)
        return {
            "val_psnr_input": psnr(sharp, blurred, **VALIDATION_PSNR),
            "val_psnr_init": psnr(sharp, x_init, **VALIDATION_PSNR),
            "val_psnr": psnr(sharp, refined, **VALIDATION_PSNR),
        }


def run_from_args(args, data_options: dict) -> int:
    """``napari-deblur train dvsr ...`` (called by :func:`napari_deblur.cli.train.run_train`, which parses the
    :class:`.sources.DataOptions` fields into ``data_options``)."""
    import sys

    cfg = DVSRConfig(
        preset=args.preset,
        predictor=getattr(args, "predictor", None),
        iters=args.iters,
        batch=args.batch,
        crop=args.crop if args.crop is not None else DVSRConfig.crop,
        lr=args.lr,
        warmup=args.warmup,
        ema=args.ema,
        seed=args.seed,
        width=args.width,
        residual_scale=getattr(args, "residual_scale", None) or DVSRConfig.residual_scale,
        sigma_data=DVSRConfig.sigma_data if getattr(args, "sigma_data", None) is None else args.sigma_data,
        blocks=args.blocks if args.blocks is not None else DVSRConfig.blocks,
        init=args.init,
        val_every=args.val_every,
        ckpt_every=args.ckpt_every,
        precision=getattr(args, "precision", "auto"),
        **data_options,
    )
    trainer = DVSRTrainer(cfg, args.out, device=args.device, log=lambda line: print(line, file=sys.stderr))
    print(trainer.run(time_limit=args.time_limit, fit_iters=getattr(args, "fit_iters", False)))
    return 0
