"""XYDeblur (Ji et al., CVPR 2022): one encoder, two weight-sharing decoders.

The decoder runs twice: once on the encoder features as they are, giving the
*horizontal* residual ``r_hor``, and once on the features rotated by 90 degrees,
its output rotated back, giving the *vertical* residual ``r_ver``. The restored
image is ``x + r_hor + r_ver``. Rotating the features is the same as rotating
every decoder kernel, so the two branches share all their weights and differ
only in the axis they look along (the paper's D_hor and D_ver = D_hor rotated).

Module and parameter names follow the official code exactly, so its GoPro
checkpoints load unchanged (160 tensors, 4,918,627 parameters at width 32 with
6 residual blocks per stage). Height and width must be multiples of 4; the
engine (``napari_deblur.engine``) pads any image for you.
"""

import torch
from torch import nn


def rot90(t: torch.Tensor) -> torch.Tensor:
    """Rotate (N, C, H, W) features by +90 degrees in the H-W plane."""
    return t.transpose(2, 3).flip(2)


def unrot90(t: torch.Tensor) -> torch.Tensor:
    """Undo :func:`rot90` (rotate by -90 degrees)."""
    return t.transpose(2, 3).flip(3)


def check_size(x: torch.Tensor) -> None:
    """XYDeblur's two downsamplings need height and width divisible by 4."""
    h, w = x.shape[-2:]
    if h % 4 or w % 4:
        raise ValueError(f"XYDeblur needs height and width divisible by 4, got {h}x{w}")


class BasicConv(nn.Module):
    """Convolution (or transposed convolution) with bias, optional ReLU, no norm."""

    def __init__(self, cin, cout, kernel, stride=1, relu=True, transpose=False):
        super().__init__()
        if transpose:
            conv = nn.ConvTranspose2d(cin, cout, kernel, stride, padding=kernel // 2 - 1)
        else:
            conv = nn.Conv2d(cin, cout, kernel, stride, padding=kernel // 2)
        layers = [conv, nn.ReLU(inplace=True)] if relu else [conv]
        self.main = nn.Sequential(*layers)

    def forward(self, x):
        return self.main(x)


class ResBlock(nn.Module):
    """conv3x3 + ReLU, conv3x3, plus the identity."""

    def __init__(self, channels):
        super().__init__()
        self.main = nn.Sequential(
            BasicConv(channels, channels, 3, relu=True),
            BasicConv(channels, channels, 3, relu=False),
        )

    def forward(self, x):
        return self.main(x) + x


class Stage(nn.Module):
    """A named list of layers run in order (the official EBlock / DBlock)."""

    def __init__(self, *layers):
        super().__init__()
        self.layers = nn.Sequential(*layers)

    def forward(self, x):
        return self.layers(x)


class XYDeblur(nn.Module):
    """The XYDeblur network.

    Args:
        width: channels at full resolution (the official model uses 32); the
            two lower stages have 2x and 4x as many.
        blocks: residual blocks per stage (official: 6).
        channels: image channels, 3 for RGB photographs, 1 for grayscale
            microscopy.

    ``forward(x)`` takes (N, channels, H, W) with H and W multiples of 4 and
    returns ``(r_hor, r_ver, restored)``, as the official code returns
    ``[r1, r2, y]``.
    """

    def __init__(self, width: int = 32, blocks: int = 6, channels: int = 3):
        super().__init__()
        if width < 1 or blocks < 0 or channels < 1:
            raise ValueError(f"invalid XYDeblur config width={width} blocks={blocks} channels={channels}")
        self.config = {"width": int(width), "blocks": int(blocks), "channels": int(channels)}
        w1, w2, w3 = width, width * 2, width * 4

        def res(c):
            return [ResBlock(c) for _ in range(blocks)]

        self.Encoder1 = Stage(BasicConv(channels, w1, 3), *res(w1))
        self.Encoder2 = Stage(BasicConv(w1, w2, 3, stride=2), *res(w2))
        self.Encoder3 = Stage(BasicConv(w2, w3, 3, stride=2), *res(w3))
        self.Decoder1_1 = Stage(*res(w3), BasicConv(w3, w2, 4, stride=2, transpose=True))
        self.Convs1_1 = BasicConv(w2 * 2, w2, 1)
        self.Decoder1_2 = Stage(*res(w2), BasicConv(w2, w1, 4, stride=2, transpose=True))
        self.Convs1_2 = BasicConv(w1 * 2, w1, 1)
        self.Decoder1_3 = Stage(*res(w1))
        self.Decoder1_4 = BasicConv(w1, channels, 3, relu=False)

    @property
    def channels(self) -> int:
        return self.config["channels"]

    def encode(self, x):
        """Shared encoder: features at full, 1/2 and 1/4 resolution."""
        e1 = self.Encoder1(x)
        e2 = self.Encoder2(e1)
        return e1, e2, self.Encoder3(e2)

    def decode(self, e1, e2, z):
        """The one decoder, along the axis the features are presented in."""
        d = self.Convs1_1(torch.cat([self.Decoder1_1(z), e2], dim=1))
        d = self.Convs1_2(torch.cat([self.Decoder1_2(d), e1], dim=1))
        return self.Decoder1_4(self.Decoder1_3(d))

    def residuals(self, x):
        """(r_hor, r_ver) for a batch whose H and W are multiples of 4."""
        check_size(x)
        e1, e2, z = self.encode(x)
        r_hor = self.decode(e1, e2, z)
        r_ver = unrot90(self.decode(rot90(e1), rot90(e2), rot90(z)))
        return r_hor, r_ver

    def receptive_radius(self) -> int:
        """How many input pixels away an output pixel can still be influenced (an upper bound).

        Every 3x3 convolution at 1/s resolution reaches s pixels further, a strided
        or transposed convolution into or out of 1/s resolution s more: 11 + 28 *
        blocks in all (179 for the official 6 blocks). A tile or dask block with this
        much context on every side gives exactly the whole image's result.
        """
        return 11 + 28 * self.config["blocks"]

    def forward(self, x):
        r_hor, r_ver = self.residuals(x)
        return r_hor, r_ver, x + r_hor + r_ver


def config_from_state_dict(state: dict) -> dict:
    """Read width, blocks and channels off an XYDeblur state_dict."""
    try:
        first = state["Encoder1.layers.0.main.0.weight"]
    except KeyError:
        raise KeyError("Encoder1.layers.0.main.0.weight") from None
    blocks = 0
    while f"Encoder1.layers.{blocks + 1}.main.0.main.0.weight" in state:
        blocks += 1
    return {"width": int(first.shape[0]), "blocks": blocks, "channels": int(first.shape[1])}
