"""The residual diffusion denoiser of "Deblurring via Stochastic Refinement" (Whang et al., CVPR 2022).

The method pairs a deterministic predictor g (here a trained :class:`~.xydeblur.XYDeblur`)
with a conditional diffusion model of the *residual* ``x0 - g(y)``. This module is that
diffusion model: an SR3-style U-Net that predicts the noise ``eps`` in

    z_t = sqrt(abar) * r0 + sqrt(1 - abar) * eps,     r0 = x0 - g(y)

from ``concat(z_t, y, g(y))`` and the noise level ``abar``. As the paper prescribes, the
SR3 U-Net is stripped of self-attention, of any spatial position input and of group
normalisation, which leaves it fully convolutional: it runs on any image whose height and
width are multiples of ``2 ** (len(mults) - 1)`` (8 for the default four levels), so it can
be trained on small crops and used on tiles of any size.

The noise level is a continuous input (WaveGrad/SR3): sinusoidal features of the log
signal-to-noise ratio ``log(abar / (1 - abar))``, a two-layer MLP, then in every residual
block a per-channel scale and shift (FiLM) of the first convolution's output. Without a
normalisation layer, each residual block returns ``(branch + skip) / sqrt(2)`` to keep the
activations' scale from growing with depth.

This module holds the network alone; :func:`~.weights.load_denoiser` reads its weights
(safetensors with the architecture in the header, ``weights_only`` pickles, bundled names
with a checksum), and a bundled denoiser's manifest names the predictor it was trained with.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

_SQRT_HALF = 1 / math.sqrt(2)
_LOGSNR_SCALE = 50.0  # log-SNR spans about -5..16; scaled, it spans the usual sinusoid range
_MAX_PERIOD = 10_000.0


def log_snr(alpha_bar: torch.Tensor) -> torch.Tensor:
    """``log(abar / (1 - abar))`` in float32, clamped away from 0 and 1."""
    a = alpha_bar.float().clamp(1e-7, 1 - 1e-7)
    return torch.log(a) - torch.log1p(-a)


class NoiseEmbedding(nn.Module):
    """Sinusoidal features of the log-SNR, then Linear-SiLU-Linear."""

    def __init__(self, features: int, dim: int):
        super().__init__()
        self.half = max(1, features // 2)
        self.mlp = nn.Sequential(nn.Linear(2 * self.half, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, alpha_bar: torch.Tensor) -> torch.Tensor:
        lam = log_snr(alpha_bar) * _LOGSNR_SCALE  # computed in float32 whatever the network's dtype
        k = torch.arange(self.half, device=lam.device, dtype=torch.float32)
        angles = lam[:, None] * torch.exp(-math.log(_MAX_PERIOD) * k / self.half)[None]
        features = torch.cat([torch.sin(angles), torch.cos(angles)], dim=1)
        return self.mlp(features.to(self.mlp[0].weight.dtype))


class NoiseResBlock(nn.Module):
    """SiLU-conv3x3, FiLM by the noise embedding, SiLU-conv3x3, plus a (1x1 if needed) skip."""

    def __init__(self, cin: int, cout: int, emb_dim: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.film = nn.Linear(emb_dim, 2 * cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(x))
        scale, shift = self.film(emb)[:, :, None, None].chunk(2, dim=1)
        h = h * (1 + scale) + shift
        h = self.conv2(F.silu(h))
        return (h + self.skip(x)) * _SQRT_HALF


class ResidualDenoiser(nn.Module):
    """Conditional eps-predictor for the residual ``x0 - g(y)``.

    Args:
        channels: image channels (3 for RGB photographs, 1 for grayscale).
        width: channels at full resolution (paper: 32).
        mults: channel multiplier per resolution level (paper: 1, 2, 3, 4); every
            level but the last halves the resolution.
        blocks: residual blocks per level on the way down (one more on the way up,
            as in SR3).
        residual_scale: the diffusion runs on ``residual_scale * (x0 - g(y))``. Residuals
            of a good predictor are small (a standard deviation of about 0.08 in [0, 1]
            units), so unscaled they sit far below the unit noise at almost every level
            of the schedule and the eps-parameterised estimate
            ``x0_hat = (z - sqrt(1 - abar) eps_hat) / sqrt(abar)`` magnifies every error
            of ``eps_hat``; scaling them to about 0.4 gives the network a signal to
            learn at most levels (a fixed constant, kept in the config and manifest; the
            sampler divides it out). 1.0 = the residual as it is.
        sigma_data: if positive, the output is preconditioned as in EDM (Karras et al.
            2022), still an eps estimate: ``eps_hat = c_skip z_t + c_out F(...)`` with
            ``c_skip = sqrt(1 - abar) / v``, ``c_out = sqrt(abar sigma_data^2 / v)``,
            ``v = abar sigma_data^2 + 1 - abar``: the best linear guess of eps from z_t for a
            diffused signal of standard deviation ``sigma_data``, plus a learnt correction
            scaled to what that guess leaves. At high noise ``c_out`` is small (0.03 at the
            last level for ``sigma_data`` 0.4), so an error of the network no longer turns
            into a large error of ``x0_hat``. 0 = the network's output is eps_hat (plain SR3).

    ``forward(z_t, y, x_init, alpha_bar)`` takes three (N, channels, H, W) tensors
    (the noisy residual, the blurred image and the predictor's output, all in the
    [0, 1] units the networks use) and ``alpha_bar`` (N,) or a scalar, and returns
    the predicted noise, (N, channels, H, W). H and W must be multiples of
    :attr:`multiple`.
    """

    def __init__(
        self,
        channels: int = 3,
        width: int = 32,
        mults=(1, 2, 3, 4),
        blocks: int = 2,
        residual_scale: float = 1.0,
        sigma_data: float = 0.0,
    ):
        super().__init__()
        mults = tuple(int(m) for m in mults)
        if (
            channels < 1
            or width < 1
            or blocks < 1
            or not mults
            or min(mults) < 1
            or not residual_scale > 0
            or not sigma_data >= 0
        ):
            raise ValueError(
                f"invalid ResidualDenoiser config channels={channels} width={width} mults={mults} blocks={blocks} "
                f"residual_scale={residual_scale} sigma_data={sigma_data}"
            )
        self.config = {
            "channels": int(channels),
            "width": int(width),
            "mults": list(mults),
            "blocks": int(blocks),
            "residual_scale": float(residual_scale),
            "sigma_data": float(sigma_data),
        }
        emb_dim = 4 * width
        self.embed = NoiseEmbedding(width, emb_dim)
        self.input = nn.Conv2d(3 * channels, width, 3, padding=1)

        skips, ch = [width], width
        self.down, self.downsample = nn.ModuleList(), nn.ModuleList()
        for level, m in enumerate(mults):
            stage = nn.ModuleList()
            for _ in range(blocks):
                stage.append(NoiseResBlock(ch, width * m, emb_dim))
                ch = width * m
                skips.append(ch)
            self.down.append(stage)
            if level < len(mults) - 1:
                self.downsample.append(nn.Conv2d(ch, ch, 3, stride=2, padding=1))
                skips.append(ch)
        self.middle = nn.ModuleList([NoiseResBlock(ch, ch, emb_dim), NoiseResBlock(ch, ch, emb_dim)])
        self.up, self.upsample = nn.ModuleList(), nn.ModuleList()
        for level in reversed(range(len(mults))):
            stage = nn.ModuleList()
            for _ in range(blocks + 1):
                stage.append(NoiseResBlock(ch + skips.pop(), width * mults[level], emb_dim))
                ch = width * mults[level]
            self.up.append(stage)
            if level > 0:
                self.upsample.append(nn.Conv2d(ch, ch, 3, padding=1))
        self.output = nn.Conv2d(ch, channels, 3, padding=1)

    @property
    def channels(self) -> int:
        return self.config["channels"]

    @property
    def residual_scale(self) -> float:
        return self.config["residual_scale"]

    @property
    def multiple(self) -> int:
        """Height and width must be multiples of this (8 for four levels)."""
        return 2 ** (len(self.config["mults"]) - 1)

    def forward(self, z_t, y, x_init, alpha_bar):
        n, c, h, w = z_t.shape
        if c != self.channels or y.shape != z_t.shape or x_init.shape != z_t.shape:
            raise ValueError(
                f"ResidualDenoiser({self.channels} channels) needs z_t, y and x_init of one shape "
                f"(N, {self.channels}, H, W), got {tuple(z_t.shape)}, {tuple(y.shape)}, {tuple(x_init.shape)}"
            )
        if h % self.multiple or w % self.multiple:
            raise ValueError(f"ResidualDenoiser needs height and width divisible by {self.multiple}, got {h}x{w}")
        alpha_bar = torch.as_tensor(alpha_bar, device=z_t.device)
        if alpha_bar.ndim == 0:
            alpha_bar = alpha_bar.expand(n)
        emb = F.silu(self.embed(alpha_bar.reshape(n)))

        x = self.input(torch.cat([z_t, y, x_init], dim=1))
        kept = [x]
        for level, stage in enumerate(self.down):
            for block in stage:
                x = block(x, emb)
                kept.append(x)
            if level < len(self.downsample):
                x = self.downsample[level](x)
                kept.append(x)
        for block in self.middle:
            x = block(x, emb)
        for k, stage in enumerate(self.up):
            for block in stage:
                x = block(torch.cat([x, kept.pop()], dim=1), emb)
            if k < len(self.upsample):
                x = self.upsample[k](F.interpolate(x, scale_factor=2.0, mode="nearest"))
        out = self.output(F.silu(x))
        sigma = self.config["sigma_data"]
        if sigma > 0:
            a = alpha_bar.float().reshape(n, 1, 1, 1).clamp(0.0, 1.0)
            v = a * sigma**2 + 1 - a
            out = ((1 - a).sqrt() / v * z_t.float() + (a * sigma**2 / v).sqrt() * out.float()).to(out.dtype)
        return out


def denoiser_config_from_state_dict(state: dict) -> dict:
    """Read channels, width, mults and blocks off a ResidualDenoiser state_dict (plus the
    default residual_scale and sigma_data, which weights alone do not carry)."""
    width = int(state["input.weight"].shape[0])
    channels = int(state["output.weight"].shape[0])
    mults, level = [], 0
    while f"down.{level}.0.conv1.weight" in state:
        mults.append(int(state[f"down.{level}.0.conv1.weight"].shape[0]) // width)
        level += 1
    blocks = 0
    while f"down.0.{blocks}.conv1.weight" in state:
        blocks += 1
    if not mults:
        raise KeyError("down.0.0.conv1.weight")
    # the weights do not tell the diffusion's residual scale or preconditioning: the defaults
    return {
        "channels": channels,
        "width": width,
        "mults": mults,
        "blocks": blocks,
        "residual_scale": 1.0,
        "sigma_data": 0.0,
    }
