"""Training XYDeblur on synthetic (or the user's paired) data, resumable across commands.

Recipe: AdamW, linear warm-up then cosine decay, bf16 autocast where the hardware runs it
natively (CUDA, CPUs with AVX512-BF16 or AMX; :mod:`.precision`), an EMA of
the weights (the EMA is what gets exported), L1 on the restored image plus an
optional L1 on the Fourier amplitudes. Batches come from
:class:`napari_deblur.data.pairs.PairSampler` (flips and 90-degree rotations
included) or from a folder of the user's pairs.

A run lives in one folder: ``log.jsonl`` (loss, learning rate, validation PSNR),
``checkpoint/`` (sharded, see :mod:`.checkpoint`) and ``config.json``. Running
the same command again on the same folder resumes exactly where it stopped;
``time_limit`` stops cleanly (with a checkpoint) before a command's deadline.
"""

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..data.pairs import REFRESH_EVERY
from ..engine.device import pick_device
from ..metrics import psnr
from ..models.weights import load_model
from ..models.xydeblur import XYDeblur
from .checkpoint import load_checkpoint, save_checkpoint
from .precision import autocast, memory_format, training_precision
from .sources import DataOptions, make_training_pairs

PRESET_CHANNELS = {"photo": 3, "microscopy": 1}
# validation PSNR: the output clipped to [0, 1] as a saved result would be; a perfect batch logs 120 dB, not inf
VALIDATION_PSNR = {"clip": True, "mse_floor": 1e-12}


@dataclass
class TrainConfig(DataOptions):
    preset: str = "photo"
    iters: int = 10000
    batch: int = 16
    crop: int = 192
    lr: float = 3e-4
    warmup: int = 300
    min_lr_ratio: float = 0.02
    weight_decay: float = 1e-4
    ema: float = 0.999
    fft_weight: float = 0.05
    pixel_loss: str = "l1"  # "l1" or "mse" (the mean estimate: what PSNR scores)
    seed: int = 0
    width: int = 32
    blocks: int = 6
    init: str | None = None
    val_every: int = 500
    ckpt_every: int = 500
    val_crops: int = 8
    val_crop: int = 256
    zero_init: bool = True
    precision: str = "auto"  # "auto", "fp32" or "bf16" (autocast); config.json records the resolved one


def learning_rate(cfg: TrainConfig, it: int) -> float:
    warm = min(1.0, (it + 1) / max(1, cfg.warmup))
    progress = min(1.0, it / max(1, cfg.iters))
    cosine = cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))
    return cfg.lr * warm * cosine


PIXEL_LOSSES = {"l1": F.l1_loss, "mse": F.mse_loss}


def restoration_loss(restored, sharp, fft_weight: float, pixel_loss: str = "l1"):
    """The pixel loss (L1 or MSE) plus ``fft_weight`` times the L1 of the error's Fourier amplitude."""
    loss = PIXEL_LOSSES[pixel_loss](restored, sharp)
    if fft_weight:
        spec = torch.fft.rfft2(restored.float() - sharp.float(), norm="ortho")
        loss = loss + fft_weight * spec.abs().mean()
    return loss


FITTED = "fitted_iters.json"  # the schedule length --fit-iters chose, kept for a resumed run
# Iterations after the start that --fit-iters times: set-up and autotuning excluded, and one whole
# refresh period of the sampler's tile pool included (its tiles are renewed in a thread that shares
# the CPU). Timed over iterations 5-25 only, a 2-core CPU run measured 3.18 s/it and then ran at
# 3.6 s/it, so the time limit cut it before the end of its schedule.
FIT_WINDOW = (5, 5 + REFRESH_EVERY)


class Trainer:
    """One training run in ``out`` (created or resumed)."""

    config_class = TrainConfig  # what ``config.json`` of a run holds

    @classmethod
    def validate_run(cls, run_dir, device="auto") -> dict:
        """The validation of the EMA weights in ``run_dir``'s checkpoint, computed now on the run's
        own held-out batch (its config names the data, which must be where it was)."""
        cfg = cls.config_class(**json.loads((Path(run_dir) / "config.json").read_text()))
        return cls(cfg, run_dir, device=device, log=lambda line: None).validate()

    def __init__(self, cfg: TrainConfig, out, device="auto", log=print):
        self.cfg, self.out, self.log = cfg, Path(out), log
        self.out.mkdir(parents=True, exist_ok=True)
        self.device = pick_device(device)
        channels = PRESET_CHANNELS[cfg.preset]
        if cfg.init:
            self.model = load_model(cfg.init)
            if self.model.channels != channels:
                raise ValueError(
                    f"--init model has {self.model.channels} channels, preset {cfg.preset} needs {channels}"
                )
        else:
            torch.manual_seed(cfg.seed)
            self.model = XYDeblur(cfg.width, cfg.blocks, channels)
            if cfg.zero_init:  # start as the identity: no iterations spent unlearning random residuals
                torch.nn.init.zeros_(self.model.Decoder1_4.main[0].weight)
                torch.nn.init.zeros_(self.model.Decoder1_4.main[0].bias)
        self.start_optimising()
        self.pair_sampler, self.val = make_training_pairs(cfg, self.device, log)
        self.iteration, self.seconds = 0, 0.0
        if (self.out / "checkpoint" / "index.json").is_file():
            self._resume()
        self._write_config()

    def start_optimising(self) -> None:
        """The model in training mode on the device (in the layout and number format of
        :mod:`.precision`), its EMA (float32: what gets exported) and the AdamW optimiser; a
        resumed run then loads all three from its checkpoint."""
        self.cfg.precision = training_precision(self.cfg.precision, self.device)
        self.layout = memory_format(self.device)
        self.model.to(self.device, memory_format=self.layout).train()
        self.ema = {
            k: v.detach().float().clone(memory_format=torch.contiguous_format)
            for k, v in self.model.state_dict().items()
        }
        self.opt = torch.optim.AdamW(
            self.model.parameters(), lr=self.cfg.lr, betas=(0.9, 0.99), weight_decay=self.cfg.weight_decay
        )

    def _state(self) -> dict:
        return {
            "model": self.model.state_dict(),
            "ema": self.ema,
            "optimizer": self.opt.state_dict(),
            "sampler": self.pair_sampler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "iteration": self.iteration,
            "seconds": self.seconds,
            "config": {**self.model.config},
        }

    def _resume(self):
        state = load_checkpoint(self.out / "checkpoint")
        self.model.load_state_dict(state["model"])
        self.ema = {k: v.to(self.device) for k, v in state["ema"].items()}
        self.opt.load_state_dict(state["optimizer"])
        self.pair_sampler.load_state_dict(state["sampler"])
        torch.set_rng_state(state["torch_rng"])
        self.iteration, self.seconds = int(state["iteration"]), float(state["seconds"])
        self.log(f"resumed {self.out} at iteration {self.iteration}")

    def save(self):
        save_checkpoint(self._state(), self.out / "checkpoint")

    def ema_decay(self) -> float:
        """The EMA decay for this iteration: ``(1 + i) / (10 + i)``, capped at ``cfg.ema``.

        Without the warm-up a short run's EMA stays near the initial weights (with 0.999,
        37% of them are still in it after 1,000 iterations, and a mix of random and trained
        weights is no model at all); with it the EMA follows the model early on and
        averages over the last ~1/(1 - ema) iterations once the run is long enough.
        """
        return min(self.cfg.ema, (1 + self.iteration) / (10 + self.iteration))

    @torch.no_grad()
    def _update_ema(self):
        decay = self.ema_decay()
        for k, v in self.model.state_dict().items():
            if v.dtype.is_floating_point:
                self.ema[k].lerp_(v.float(), 1 - decay)
            else:
                self.ema[k].copy_(v)

    @torch.no_grad()
    def validate(self) -> dict:
        """PSNR of the blurred input and of the EMA model on the fixed held-out batch."""
        blurred, sharp = self.val
        model = XYDeblur(**self.model.config).to(self.device).eval()
        model.load_state_dict(self.ema)
        restored = torch.cat([model(blurred[i : i + 2])[2] for i in range(0, len(blurred), 2)])
        return {
            "val_psnr_input": psnr(sharp, blurred, **VALIDATION_PSNR),
            "val_psnr": psnr(sharp, restored, **VALIDATION_PSNR),
        }

    def step(self) -> float:
        cfg = self.cfg
        for group in self.opt.param_groups:
            group["lr"] = learning_rate(cfg, self.iteration)
        blurred, sharp = self.pair_sampler.sample()
        with autocast(self.device, cfg.precision):
            restored = self.model(blurred.contiguous(memory_format=self.layout))[2]
        loss = restoration_loss(restored.float(), sharp, cfg.fft_weight, cfg.pixel_loss)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.model.parameters(), 1.0)
        self.opt.step()
        self._update_ema()
        self.iteration += 1
        return loss.item()

    def _write_config(self) -> None:
        (self.out / "config.json").write_text(json.dumps(asdict(self.cfg), indent=1))

    def _fit_schedule(self, time_limit: float, elapsed: float, seconds_per_iter: float) -> None:
        """Shorten ``cfg.iters`` so the learning-rate schedule ends inside ``time_limit``
        (10% kept back for validation and checkpoints), and record it for a resumed run."""
        fitted = self.iteration + int(0.9 * (time_limit - elapsed) / seconds_per_iter)
        if fitted < self.cfg.iters:
            self.log(
                f"--fit-iters: {seconds_per_iter * 1000:.0f} ms per iteration, so the schedule ends at "
                f"iteration {fitted} instead of {self.cfg.iters}"
            )
            self.cfg.iters = max(self.iteration + 1, fitted)
            self._write_config()
        (self.out / FITTED).write_text(json.dumps({"iters": self.cfg.iters}) + "\n")

    def run(self, time_limit: float | None = None, log_every: int = 50, fit_iters: bool = False) -> dict:
        """Train until ``cfg.iters`` or ``time_limit`` seconds. With ``fit_iters`` (and a time
        limit) a fresh run times its iterations FIT_WINDOW and shortens ``cfg.iters`` so that
        the whole cosine schedule fits in the time limit; a resumed run keeps that length."""
        cfg, start, losses = self.cfg, time.perf_counter(), []
        last = {}
        fitting = fit_iters and time_limit is not None
        if fitting and (self.out / FITTED).is_file():
            cfg.iters = json.loads((self.out / FITTED).read_text())["iters"]
            self._write_config()  # __init__ wrote the command line's --iters
            fitting = False
        elif fitting and self.iteration > 0:  # refitting mid-schedule would make the learning rate jump
            self.log(f"--fit-iters: this run was not fitted when it started; it keeps --iters {cfg.iters}")
            fitting = False
        window = tuple(self.iteration + i for i in FIT_WINDOW)
        with open(self.out / "log.jsonl", "a") as logf:
            while self.iteration < cfg.iters:
                t0 = time.perf_counter()
                losses.append(self.step())
                self.seconds += time.perf_counter() - t0
                it = self.iteration
                if fitting and it == window[0]:
                    window_start = time.perf_counter()
                elif fitting and it == window[1]:
                    now = time.perf_counter()
                    self._fit_schedule(time_limit, now - start, (now - window_start) / (window[1] - window[0]))
                    fitting = False
                record = None
                if it % log_every == 0 or it == cfg.iters:
                    record = {
                        "iter": it,
                        "loss": float(np.mean(losses)),
                        "lr": learning_rate(cfg, it - 1),
                        "seconds": round(self.seconds, 1),
                    }
                    losses = []
                out_of_time = time_limit is not None and time.perf_counter() - start > time_limit
                # a run stopped by its time limit validates too, so the log's last validation (what
                # export records) is that of the weights it stopped with
                if it % cfg.val_every == 0 or it == cfg.iters or out_of_time:
                    last = self.validate()
                    record = {**(record or {"iter": it}), **last}
                if record:
                    logf.write(json.dumps(record) + "\n")
                    logf.flush()
                    self.log(json.dumps(record))
                if it % cfg.ckpt_every == 0 or it == cfg.iters or out_of_time:
                    self.save()
                if out_of_time:
                    self.log(f"time limit reached at iteration {it}; run the same command again to resume")
                    break
        return {"iteration": self.iteration, "seconds": self.seconds, **last}
