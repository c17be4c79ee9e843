"""From the refinement's [0, 1]-unit residuals back to images in the input's units and layout.

The diffusion chains work on the network's items (see
:meth:`~napari_deblur.engine.model_input.ModelInput.items`), padded to the denoiser's size
multiple and in [0, 1] units. :class:`ResidualImages` cuts such an array back to the image,
scales it to input units and puts it in the input's layout (RGBA's alpha appended). numpy only.
"""

import numpy as np

from ..engine.axes import from_bcyx
from ..engine.model_input import ModelInput


class ResidualImages:
    """Images of the input ``bcyx`` (with its ``layout``, prepared as ``source``) from residuals
    of ``x_init``: ``base`` is the predictor's residual ``g(y) - y`` of the padded items."""

    def __init__(self, bcyx: np.ndarray, layout, source: ModelInput, base: np.ndarray):
        n, _, h, w = bcyx.shape
        self.shape = (n, source.colour, h, w)
        self.layout, self.base = layout, base
        self.compute, self.scaling = source.compute, source.scaling
        self.values = bcyx[:, : source.colour].astype(source.compute)  # the colour channels in input units
        self.alpha = bcyx[:, source.colour :] if layout.rgba else None
        self.no_alpha = np.zeros((n, 1, h, w), source.compute) if layout.rgba else None

    def cut(self, r) -> np.ndarray:
        """(items, channels, H, W) padded -> (B, colour, Y, X), the image's own pixels."""
        return np.asarray(r)[:, :, : self.shape[2], : self.shape[3]].reshape(self.shape)

    def to_units(self, r) -> np.ndarray:
        """A padded [0, 1]-unit residual in input units, (B, colour, Y, X) in the compute dtype."""
        return self.scaling.residual_to_units(self.cut(r).astype(self.compute))

    def in_layout(self, bc: np.ndarray, alpha: np.ndarray | None) -> np.ndarray:
        """(B, colour, Y, X) in the input's layout, with ``alpha`` appended to RGBA."""
        if self.layout.rgba:
            bc = np.concatenate([bc, alpha.astype(bc.dtype)], axis=1)
        return np.ascontiguousarray(from_bcyx(bc, self.layout))

    def image(self, r) -> np.ndarray:
        """The image ``x_init + r`` (``r`` a padded [0, 1]-unit residual of ``x_init``) in input
        units and layout, in the compute dtype, the input's alpha kept."""
        return self.in_layout(self.values + self.to_units(self.base + r), self.alpha)

    def plain(self, bc: np.ndarray) -> np.ndarray:
        """A (B, colour, Y, X) map that is not an image (a state, a standard deviation) in the
        input's layout as float32, with a zero alpha for RGBA."""
        return self.in_layout(bc, self.no_alpha).astype(np.float32)
