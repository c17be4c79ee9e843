"""One reverse-diffusion step, ancestral (DDPM) or deterministic (DDIM, eta = 0).

Both start from the network's noise estimate ``eps_hat`` at step ``i`` of a
:class:`~.schedule.Schedule` and the clean-residual estimate

    x0_hat = (z_i - sqrt(1 - abar_i) * eps_hat) / sqrt(abar_i),

clipped to ``[-clip, clip]`` (a residual between two images in [0, 1] lies in [-1, 1];
clipping stops an early, very noisy estimate from throwing the chain off).

* DDPM (Ho et al. 2020; the paper's sampler): ``z_{i-1}`` is drawn from the posterior
  ``q(z_{i-1} | z_i, x0_hat)``, mean
  ``sqrt(abar_{i-1}) beta_i / (1 - abar_i) x0_hat + sqrt(alpha_i) (1 - abar_{i-1}) / (1 - abar_i) z_i``,
  variance ``beta~_i = (1 - abar_{i-1}) / (1 - abar_i) beta_i`` (zero at the last step).
* DDIM (Song et al. 2021) with eta = 0: ``z_{i-1} = sqrt(abar_{i-1}) x0_hat + sqrt(1 - abar_{i-1}) eps'``
  with ``eps'`` recomputed from the clipped ``x0_hat``, so no noise is added: a fixed
  ``z_T`` gives a fixed result.

At step 1 (``abar_0 = 1``) both return ``z_0 = x0_hat``.

The functions work on tensors of any shape and device; the schedule's coefficients are
Python floats, so the arithmetic runs in the tensors' dtype.
"""

import math

import torch

from .schedule import Schedule

SAMPLERS = ("ddpm", "ddim")


def check_sampler(name) -> str:
    if name not in SAMPLERS:
        raise ValueError(f"sampler must be 'ddpm' or 'ddim', got {name!r}")
    return name


def predict_x0(z: torch.Tensor, eps: torch.Tensor, alpha_bar: float, clip: float | None = 1.0) -> torch.Tensor:
    """The clean residual implied by ``z`` and a noise estimate at level ``alpha_bar``."""
    x0 = (z - math.sqrt(1.0 - alpha_bar) * eps) / math.sqrt(alpha_bar)
    return x0.clamp_(-clip, clip) if clip is not None else x0


def ddpm_step(z, eps_hat, schedule: Schedule, i: int, noise=None, clip: float | None = 1.0):
    """Ancestral step ``i -> i - 1``; returns ``(z_{i-1}, x0_hat)``.

    ``noise`` is a standard normal tensor shaped like ``z``; it is needed for every step
    but the last (``i == 1``), where the posterior variance is zero.
    """
    a, a_prev = float(schedule.alpha_bars[i]), float(schedule.alpha_bars[i - 1])
    beta = 1.0 - a / a_prev
    x0 = predict_x0(z, eps_hat, a, clip)
    c_x0 = math.sqrt(a_prev) * beta / (1.0 - a)
    c_z = math.sqrt(1.0 - beta) * (1.0 - a_prev) / (1.0 - a)
    z_prev = c_x0 * x0 + c_z * z
    variance = (1.0 - a_prev) / (1.0 - a) * beta
    if variance > 0:
        if noise is None:
            raise ValueError(f"DDPM step {i} needs noise")
        z_prev = z_prev + math.sqrt(variance) * noise
    return z_prev, x0


def ddim_step(z, eps_hat, schedule: Schedule, i: int, clip: float | None = 1.0):
    """Deterministic step ``i -> i - 1`` (eta = 0); returns ``(z_{i-1}, x0_hat)``."""
    a, a_prev = float(schedule.alpha_bars[i]), float(schedule.alpha_bars[i - 1])
    x0 = predict_x0(z, eps_hat, a, clip)
    if a_prev >= 1.0:
        return x0.clone(), x0
    eps = (z - math.sqrt(a) * x0) / math.sqrt(1.0 - a)
    return math.sqrt(a_prev) * x0 + math.sqrt(1.0 - a_prev) * eps, x0


def needs_noise(sampler: str, i: int) -> bool:
    """Whether step ``i`` of ``sampler`` consumes a fresh normal draw."""
    return sampler == "ddpm" and i > 1


def step(sampler: str, z, eps_hat, schedule: Schedule, i: int, noise=None, clip: float | None = 1.0):
    """One step of either sampler; returns ``(z_{i-1}, x0_hat)``."""
    if sampler == "ddpm":
        return ddpm_step(z, eps_hat, schedule, i, noise, clip)
    return ddim_step(z, eps_hat, schedule, i, clip)


@torch.no_grad()
def sample(
    eps_fn,
    z_T: torch.Tensor,
    schedule: Schedule,
    sampler: str = "ddpm",
    generator: torch.Generator | None = None,
    clip: float | None = 1.0,
) -> torch.Tensor:
    """Run the whole chain on one tensor: ``eps_fn(z, alpha_bar) -> eps_hat``; returns ``z_0``.

    The engine (:mod:`.refine`) does the same with tiles and per-sample seeds; this plain
    loop serves training-time validation and tests.
    """
    check_sampler(sampler)
    z = z_T
    for i in range(schedule.steps, 0, -1):
        eps_hat = eps_fn(z, float(schedule.alpha_bars[i]))
        noise = None
        if needs_noise(sampler, i):
            noise = torch.randn(z.shape, generator=generator, device=z.device, dtype=z.dtype)
        z, _ = step(sampler, z, eps_hat, schedule, i, noise, clip)
    return z
