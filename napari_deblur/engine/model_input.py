"""The image as a network sees it: channel mode, intensity scaling, NaN mask and [0, 1]-unit items.

Shared by the XYDeblur engine (:mod:`.restore`) and the diffusion refinement
(:mod:`napari_deblur.diffusion.refine`). Channels: a model with as many channels as the
image's colour channels sees them jointly; a 1-channel model sees each channel on its own;
a 3-channel model sees each channel replicated to gray RGB. RGBA's alpha is never shown
to the network. numpy only.
"""

from dataclasses import dataclass

import numpy as np

from .intensity import Scaling, fit_scaling, work_dtype


@dataclass(frozen=True, eq=False)
class ModelInput:
    """An image in the (B, C, Y, X) layout prepared for a network of ``channels`` channels.

    ``colour``: the image's colour channel count (RGBA's alpha left out); ``replicate_to``:
    3 when a 3-channel model sees replicated gray, else 0; ``compute``: the float dtype of the
    arithmetic (:func:`~.intensity.work_dtype`); ``values``: the colour channels in input
    units (a view of the image for integers, a float copy for floats); ``nan``: the NaN mask
    of ``values`` (None for integers); ``scaling``: the fitted intensity scaling.
    """

    colour: int
    replicate_to: int
    compute: np.dtype
    values: np.ndarray
    nan: np.ndarray | None
    scaling: Scaling
    channels: int

    @classmethod
    def fit(cls, bcyx: np.ndarray, layout, dtype, channels: int, normalize, verb: str = "restore") -> "ModelInput":
        """Prepare ``bcyx`` (with its :class:`~.axes.Layout` and original ``dtype``) for a
        ``channels``-channel model, fitting the intensity scaling by ``normalize``. A model
        that can see the image neither jointly nor channel by channel is a ValueError that
        says what it cannot ``verb``. The caller's array is never written to."""
        colour = bcyx.shape[1] - 1 if layout.rgba else bcyx.shape[1]
        if channels == colour:
            replicate_to = 0
        elif channels in (1, 3):
            replicate_to = 3 if channels == 3 else 0
        else:
            raise ValueError(f"a {channels}-channel model cannot {verb} an image with {colour} colour channels")
        compute = work_dtype(dtype)
        floating = np.dtype(dtype).kind == "f"
        values = bcyx[:, :colour].astype(compute) if floating else bcyx[:, :colour]  # to_unit copies integers
        nan = np.isnan(values) if floating else None
        scaling = fit_scaling(values, dtype, normalize, per_channel=(channels != colour))
        return cls(colour, replicate_to, compute, values, nan, scaling, int(channels))

    @property
    def channel_mode(self) -> str:
        """``"joint"``, ``"replicated"`` (gray to a 3-channel model) or ``"per-channel"``."""
        if self.channels == self.colour:
            return "joint"
        return "replicated" if self.replicate_to else "per-channel"

    def items(self) -> np.ndarray:
        """A new float32 array of the network's items in [0, 1] units, NaN pixels filled with
        the median: (B, channels, H, W) for a joint model, else (B * colour, 1, H, W)."""
        n, colour, h, w = self.values.shape
        unit = self.scaling.to_unit(self.values)
        if self.nan is not None and self.nan.any():
            unit[self.nan] = np.nanmedian(unit)
        return unit if self.channels == colour else unit.reshape(n * colour, 1, h, w)
