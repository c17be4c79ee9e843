"""Small XYDeblur models for tests (random or with known residuals)."""

import torch

from napari_deblur.models.xydeblur import XYDeblur


def tiny_model(channels=1, seed=0, width=4, blocks=1) -> XYDeblur:
    """A small random-weight model: fast on the CPU, same structure as the real one."""
    torch.manual_seed(seed)
    return XYDeblur(width=width, blocks=blocks, channels=channels).eval()


def constant_residual_model(channels=1, value=0.0) -> XYDeblur:
    """A model whose two residuals are exactly ``value`` everywhere (in [0, 1] units)."""
    model = tiny_model(channels)
    last = model.Decoder1_4.main[0]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.fill_(value)
    return model
