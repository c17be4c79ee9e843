"""Continuous noise levels: what training draws and what inference steps through.

Notation: ``abar`` (alpha-bar) is the signal fraction of a noise level,
``z = sqrt(abar) * r0 + sqrt(1 - abar) * eps``; ``abar = 1`` is clean.

**Reference curve.** WaveGrad's and SR3's linear schedule: 1000 steps with betas
linearly spaced from 1e-6 to 1e-2, ``abar_t = prod_{s<=t} (1 - beta_s)``, ``abar_0 = 1``.
It ends at ``abar_1000`` of about 6.7e-3, where a residual (a few tenths at most in
[0, 1] units) is buried in unit noise.

**Training** (:func:`sample_alpha_bar`) draws a *continuous* level per sample, as WaveGrad
does: a step ``t`` uniform in 1..1000, then ``abar`` uniform between ``abar_t`` and
``abar_{t-1}``. The network thus sees every level in ``[abar_1000, 1)``, not 1000 of them.

**Inference** (:func:`make_schedule`) for any number of steps ``T`` from 1 to 1000 spaces
the reference curve evenly in ``t``: step ``i`` (1..T) has noise level
``abar(i * 1000 / T)``, read off the curve by linear interpolation in ``abar`` between
its integer points (the same law as the training draw). We chose spacing over rescaling
the betas because every level then lies inside the trained range, the last level is
always ``abar_1000`` (so ``z_T ~ N(0, I)`` is the same prior for every T), and T = 1000
reproduces the training curve exactly. Few steps take large noise jumps, many steps small
ones: the paper's perception-distortion knob (T = 500 for sharp samples, T = 10 plus
averaging for low distortion).
"""

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

TRAIN_STEPS = 1000
BETA_START = 1e-6
BETA_END = 1e-2


@lru_cache(maxsize=1)
def _reference() -> np.ndarray:
    betas = np.linspace(BETA_START, BETA_END, TRAIN_STEPS, dtype=np.float64)
    curve = np.concatenate([[1.0], np.cumprod(1.0 - betas)])
    curve.setflags(write=False)
    return curve


def training_alpha_bars() -> np.ndarray:
    """The reference curve ``abar_t`` for t = 0..1000 (float64, ``[0] == 1``, read-only)."""
    return _reference()


def alpha_bar_at(t) -> np.ndarray:
    """``abar`` at continuous step(s) ``t`` in [0, 1000] (linear interpolation of the curve)."""
    t = np.asarray(t, dtype=np.float64)
    if np.any(t < 0) or np.any(t > TRAIN_STEPS):
        raise ValueError(f"noise steps must lie in [0, {TRAIN_STEPS}]")
    return np.interp(t, np.arange(TRAIN_STEPS + 1, dtype=np.float64), _reference())


@lru_cache(maxsize=4)
def _reference_on(device: torch.device) -> torch.Tensor:
    return torch.tensor(np.array(_reference()), dtype=torch.float32, device=device)


def sample_alpha_bar(n: int, generator: torch.Generator | None = None, device="cpu") -> torch.Tensor:
    """``n`` continuous training noise levels (float32, on ``device``), drawn with ``generator``."""
    device = torch.device(device)
    curve = _reference_on(device)
    t = torch.randint(1, TRAIN_STEPS + 1, (n,), generator=generator, device=device)
    u = torch.rand(n, generator=generator, device=device, dtype=torch.float32)
    lo, hi = curve[t], curve[t - 1]
    return lo + u * (hi - lo)


@dataclass(frozen=True)
class Schedule:
    """An inference schedule of ``steps`` noise levels.

    ``alpha_bars[i]`` is the level of step ``i`` for i = 1..steps (decreasing in i) and
    ``alpha_bars[0] == 1``; sampling runs i = steps, ..., 1.
    """

    alpha_bars: np.ndarray  # (steps + 1,) float64

    @property
    def steps(self) -> int:
        return len(self.alpha_bars) - 1

    @property
    def betas(self) -> np.ndarray:
        """``beta_i = 1 - abar_i / abar_{i-1}`` (``betas[0] = 0``)."""
        a = self.alpha_bars
        return np.concatenate([[0.0], 1.0 - a[1:] / a[:-1]])

    @property
    def posterior_variances(self) -> np.ndarray:
        """``beta~_i = (1 - abar_{i-1}) / (1 - abar_i) * beta_i`` (0 for i = 1 and i = 0)."""
        a, b = self.alpha_bars, self.betas
        out = np.zeros_like(a)
        out[1:] = (1.0 - a[:-1]) / (1.0 - a[1:]) * b[1:]
        return out

    def describe(self) -> dict:
        return {
            "steps": self.steps,
            "reference": f"linear betas {BETA_START:g}..{BETA_END:g} over {TRAIN_STEPS} steps, spaced evenly",
            "alpha_bar_first": float(self.alpha_bars[1]),
            "alpha_bar_last": float(self.alpha_bars[-1]),
        }


def make_schedule(steps: int) -> Schedule:
    """The schedule for ``steps`` (1..1000) sampling steps (see the module docstring)."""
    if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)):
        raise TypeError(f"steps must be an integer from 1 to {TRAIN_STEPS}, got {steps!r}")
    if not 1 <= steps <= TRAIN_STEPS:
        raise ValueError(f"steps must be from 1 to {TRAIN_STEPS}, got {steps}")
    t = np.linspace(0.0, TRAIN_STEPS, steps + 1)
    levels = alpha_bar_at(t)
    levels[0] = 1.0
    return Schedule(levels)
