"""XYDeblur's two decoder branches run as one pass: an inference form for speed.

The vertical branch of :class:`~napari_deblur.models.xydeblur.XYDeblur` rotates the
features, decodes and rotates back. That equals the decoder with every kernel turned by -90
degrees run on the features as they are (``tests/test_model.py`` checks it). So both
branches can read the *same* features: :class:`TwinDecoderXYDeblur` stacks the two branches
along the channel axis and runs every decoder layer once, for both, as a convolution with
two groups (``mode="grouped"``: each branch sees only its own channels) or as one dense
convolution whose weight is block-diagonal (``mode="dense"``: twice the multiplications, in
the wider layers that tensor cores run best). No feature map is rotated, and a decoder of
``3 * blocks + 4`` layers launches that many kernels instead of twice as many.

The results equal :meth:`XYDeblur.residuals` up to float rounding (the sums run in another
order). Build one from a model with trained weights; it holds copies, not references.
"""

import copy

import torch
from torch import nn

from .xydeblur import ResBlock, XYDeblur, check_size

MODES = ("grouped", "dense")


def _twin_layer(layer: nn.Module, mode: str, turn: bool = True) -> nn.Module:
    """``layer`` (a Conv2d or ConvTranspose2d) for both branches: channels [hor, ver] in and out.

    The vertical branch's kernel is the horizontal one rotated by -90 degrees (``turn``;
    a 1x1 kernel is the same either way)."""
    weight, bias = layer.weight.detach(), layer.bias.detach()
    turned = torch.rot90(weight, -1, (2, 3)) if turn else weight
    transpose = isinstance(layer, nn.ConvTranspose2d)
    cin = layer.in_channels
    cout = layer.out_channels
    kwargs = dict(kernel_size=layer.kernel_size, stride=layer.stride, padding=layer.padding)
    if mode == "grouped":
        twin = (nn.ConvTranspose2d if transpose else nn.Conv2d)(2 * cin, 2 * cout, groups=2, **kwargs)
        twin.weight.data = torch.cat([weight, turned], 0)  # (out, in/groups) or (in, out/groups): first dim
    elif mode == "dense":
        twin = (nn.ConvTranspose2d if transpose else nn.Conv2d)(2 * cin, 2 * cout, **kwargs)
        full = torch.zeros_like(twin.weight.data)
        if transpose:  # (in, out, k, k)
            full[:cin, :cout], full[cin:, cout:] = weight, turned
        else:  # (out, in, k, k)
            full[:cout, :cin], full[cout:, cin:] = weight, turned
        twin.weight.data = full
    else:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    twin.bias.data = torch.cat([bias, bias])
    return twin


def _twin_basic(basic: nn.Module, mode: str, turn: bool = True) -> nn.Sequential:
    """A :class:`BasicConv` (convolution, optional ReLU) for both branches."""
    conv, *rest = basic.main
    return nn.Sequential(_twin_layer(conv, mode, turn), *(nn.ReLU(inplace=True) for _ in rest))


class TwinResBlock(nn.Module):
    """A residual block for both branches at once."""

    def __init__(self, block: ResBlock, mode: str):
        super().__init__()
        self.main = nn.Sequential(*(_twin_basic(basic, mode) for basic in block.main))

    def forward(self, x):
        return self.main(x) + x


class TwinDecoderXYDeblur(nn.Module):
    """An XYDeblur whose two decoder branches run as one pass; ``residuals(x)`` as XYDeblur's."""

    def __init__(self, model: XYDeblur, mode: str = "grouped"):
        super().__init__()
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
        self.config, self.mode = dict(model.config), mode
        self.Encoder1, self.Encoder2, self.Encoder3 = (
            copy.deepcopy(s) for s in (model.Encoder1, model.Encoder2, model.Encoder3)
        )

        def stage(layers):
            return nn.Sequential(
                *(
                    TwinResBlock(layer, mode) if isinstance(layer, ResBlock) else _twin_basic(layer, mode)
                    for layer in layers
                )
            )

        self.decode3 = stage(model.Decoder1_1.layers)  # residual blocks at 1/4, then up to 1/2
        self.merge2 = _twin_basic(model.Convs1_1, mode, turn=False)
        self.decode2 = stage(model.Decoder1_2.layers)
        self.merge1 = _twin_basic(model.Convs1_2, mode, turn=False)
        self.decode1 = stage([*model.Decoder1_3.layers, model.Decoder1_4])

    def residuals(self, x):
        check_size(x)
        e1 = self.Encoder1(x)
        e2 = self.Encoder2(e1)
        z = self.Encoder3(e2)
        d = self.decode3(torch.cat([z, z], 1))
        d_hor, d_ver = d.chunk(2, 1)
        d = self.merge2(torch.cat([d_hor, e2, d_ver, e2], 1))
        d_hor, d_ver = self.decode2(d).chunk(2, 1)
        d = self.merge1(torch.cat([d_hor, e1, d_ver, e1], 1))
        r_hor, r_ver = self.decode1(d).chunk(2, 1)
        return r_hor, r_ver

    def forward(self, x):
        r_hor, r_ver = self.residuals(x)
        return r_hor, r_ver, x + r_hor + r_ver
