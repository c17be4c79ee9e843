"""Axis strings and the (batch, channel, Y, X) layout the networks work in. numpy only.

An axes string names every dimension of an array with one letter, e.g. ``"YX"``,
``"YXC"`` (RGB/RGBA), ``"CYX"``, ``"ZYX"``, ``"TZCYX"``. ``Y`` and ``X`` are the
spatial axes, ``C`` (or tifffile's ``S``) the channel axis, and every other
letter is a batch of independent 2D planes.

The default when no axes are given (:func:`default_axes`):

* 2 dimensions: ``YX``;
* last dimension of length 3 or 4 (and at least 3 dimensions): RGB/RGBA with
  the channel last, ``YXC``, ``ZYXC``, ``TZYXC``;
* otherwise the last two dimensions are ``YX`` and the ones before are planes,
  ``ZYX``, ``TZYX``, ``QTZYX``.

So a (3, 512, 512) array is three independent planes unless you say ``"CYX"``:
for a 1-channel model that is the same thing, and for microscopy channels it is
what you want.
"""

from dataclasses import dataclass

import numpy as np

_BATCH_LETTERS = "QTZ"


def default_axes(shape) -> str:
    """The axes string assumed for an array of this shape when none is given."""
    ndim = len(shape)
    if ndim < 2:
        raise ValueError(f"an image needs at least 2 dimensions, got shape {tuple(shape)}")
    rgb = ndim >= 3 and shape[-1] in (3, 4) and min(shape[-3], shape[-2]) >= 4
    spatial = "YXC" if rgb else "YX"
    leading = ndim - len(spatial)
    if leading > len(_BATCH_LETTERS):
        raise ValueError(f"cannot guess the axes of a {ndim}-dimensional array {tuple(shape)}; pass axes, e.g. 'TZCYX'")
    return _BATCH_LETTERS[len(_BATCH_LETTERS) - leading :] + spatial


def normalize_axes(axes: str | None, shape) -> str:
    """Validate an axes string for a shape (``None`` -> :func:`default_axes`).

    Upper-cases it and maps tifffile's samples axis ``S`` to ``C``.
    """
    if axes is None:
        return default_axes(shape)
    if not isinstance(axes, str):
        raise TypeError(f"axes must be a string such as 'YX' or 'TZCYX', got {type(axes).__name__}")
    axes = axes.upper()
    if "S" in axes and "C" not in axes:
        axes = axes.replace("S", "C")
    if len(axes) != len(shape):
        raise ValueError(
            f"axes {axes!r} has {len(axes)} letters but the image has {len(shape)} dimensions {tuple(shape)}"
        )
    if not axes.isalpha() or len(set(axes)) != len(axes):
        raise ValueError(f"axes {axes!r} must be distinct letters, one per dimension")
    if "Y" not in axes or "X" not in axes:
        raise ValueError(f"axes {axes!r} must contain Y and X")
    return axes


@dataclass(frozen=True)
class Layout:
    """How an array was rearranged to (B, C, Y, X), so it can be put back."""

    axes: str
    shape: tuple
    perm: tuple  # original dims in (batch..., C, Y, X) order
    batch_shape: tuple
    has_channel: bool

    @property
    def channels(self) -> int:
        return self.shape[self.axes.index("C")] if self.has_channel else 1

    @property
    def rgba(self) -> bool:
        """Channel axis last with 4 entries: RGBA, whose alpha passes through."""
        return self.has_channel and self.axes[-1] == "C" and self.shape[-1] == 4


def to_bcyx(array: np.ndarray, axes: str) -> tuple[np.ndarray, Layout]:
    """Rearrange to (B, C, Y, X) (a view where numpy allows); B = all batch axes."""
    batch = [i for i, a in enumerate(axes) if a not in "CYX"]
    has_channel = "C" in axes
    perm = tuple(batch + ([axes.index("C")] if has_channel else []) + [axes.index("Y"), axes.index("X")])
    moved = array.transpose(perm)
    batch_shape = moved.shape[: len(batch)]
    c = moved.shape[len(batch)] if has_channel else 1
    out = moved.reshape((int(np.prod(batch_shape, dtype=np.int64)), c) + moved.shape[-2:])
    return out, Layout(axes, tuple(array.shape), perm, tuple(batch_shape), has_channel)


def from_bcyx(array: np.ndarray, layout: Layout) -> np.ndarray:
    """Inverse of :func:`to_bcyx`: back to the original axes order and shape."""
    spatial = array.shape[-2:]
    shape = layout.batch_shape + ((array.shape[1],) if layout.has_channel else ()) + spatial
    moved = array.reshape(shape)
    return moved.transpose(np.argsort(layout.perm))
