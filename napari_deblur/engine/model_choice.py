"""Which bundled preset restores an image when the caller names no model. numpy only.

One policy for XYDeblur (``xydeblur-<preset>``) and the diffusion pair (``dvsr-<preset>``):

* not 3 or 4 colour channels: ``microscopy`` (its 1-channel model restores each channel on
  its own);
* the channel axis before Y and X (``CYX``, ``ZCYX``, ...): ``microscopy``, a fluorescence
  layout;
* uint8 with 3 or 4 channels last (``YXC``, also a ``TYXC`` video): ``photo``, an RGB(A)
  photograph;
* integers wider than 8 bits (uint16, int32, ...): ``microscopy``, a camera's range;
* axes given by the caller with a ``Z`` or ``T`` axis and channels: ``microscopy``;
* anything else with 3 or 4 channels last (a float RGB image): ``photo``.

Guessed axes (``axes=None``) never count as "given": a (N, H, W, 3) float stack is guessed
``ZYXC`` and stays a stack of photographs.
"""

from dataclasses import dataclass

import numpy as np

PRESETS = ("photo", "microscopy")


@dataclass(frozen=True)
class ModelChoice:
    """``preset``: "photo" or "microscopy"; ``reason``: why, in a few words."""

    preset: str
    reason: str
    per_channel: bool

    def describe(self, name: str) -> str:
        """E.g. ``"xydeblur-microscopy, per channel: CYX uint16 is a fluorescence layout"``."""
        return f"{name}{', per channel' if self.per_channel else ''}: {self.reason}"


def default_preset(channels: int, axes: str | None = None, dtype=None, *, axes_given: bool = False) -> ModelChoice:
    """The preset for an image with ``channels`` colour channels (alpha included), its
    normalized ``axes`` and ``dtype`` where known (see the module docstring)."""
    label = " ".join(str(part) for part in (axes, np.dtype(dtype).name if dtype is not None else None) if part)
    label = label or f"{channels} channel(s)"
    if channels not in (3, 4):
        what = "one channel" if channels == 1 else f"{channels} channels"
        return ModelChoice("microscopy", f"{label} has {what}, not RGB(A)", channels > 1)
    dtype = np.dtype(dtype) if dtype is not None else None
    channel_last = axes is None or axes.endswith("C")
    if not channel_last:
        return ModelChoice("microscopy", f"{label} is a fluorescence layout", True)
    if dtype is None or dtype == np.uint8:
        return ModelChoice("photo", f"{label} with {channels} channels last is an RGB(A) photograph", False)
    if dtype.kind in "ui":
        return ModelChoice("microscopy", f"{label} is a microscopy range (integers wider than 8 bits)", True)
    if axes_given and ("Z" in axes or "T" in axes):
        return ModelChoice("microscopy", f"{label} is a stack of channels, a microscopy layout", True)
    return ModelChoice("photo", f"{label} with {channels} channels last is an RGB(A) photograph", False)
