"""Which engine axes string a napari Image layer stands for, and the plane on screen.

napari knows whether a layer is RGB(A) and, since 0.6, the name of every axis
(``layer.axis_labels``). The engine wants one letter per dimension (``"ZYX"``,
``"TZCYX"``, ``"YXC"``; see :mod:`napari_deblur.engine.axes`):

- an RGB(A) layer is ``...YXC``: its colour axis is the last dimension of the data,
  the one napari does not count in ``layer.ndim``;
- otherwise, axis labels that are single letters (``T``, ``Z``, ``C``, ``Y``, ``X``, ...,
  case-insensitive, tifffile's ``S`` read as ``C``) are used as they are, as long as they
  are distinct and name both ``Y`` and ``X``;
- anything else (napari's default labels ``-3``, ``-2``, ``-1``, or words) gets the
  engine's default: the last two dimensions are ``YX`` and those before them independent
  planes (``ZYX``, ``TZYX``, ``QTZYX``). A non-RGB layer is never taken as colour, even if
  its last dimension has 3 entries.

numpy and the engine's numpy-only axes module; no napari import needed.
"""

import numpy as np

from ..engine.axes import default_axes

_LEADING = "QTZ"


def layer_shape(layer) -> tuple:
    """Shape of the layer's (full-resolution) data, colour axis included."""
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    return tuple(int(n) for n in data.shape)


def _letters(labels) -> str | None:
    """The labels as one upper-case string if every one is a single letter, else None."""
    if labels is None:
        return None
    labels = [str(label).strip() for label in labels]
    if not labels or not all(len(label) == 1 and label.isalpha() for label in labels):
        return None
    return "".join(labels).upper()


def _valid(axes: str, allow_channel: bool) -> bool:
    if len(set(axes)) != len(axes) or "Y" not in axes or "X" not in axes:
        return False
    return allow_channel or "C" not in axes


def _planes(n_leading: int, spatial: str, shape) -> str:
    if n_leading > len(_LEADING):
        raise ValueError(
            f"cannot tell the axes of a {len(shape)}-dimensional layer {tuple(shape)}: give its axes "
            f"single-letter labels (layer.axis_labels = ('T', 'Z', 'C', 'Y', 'X'), for example)"
        )
    return _LEADING[len(_LEADING) - n_leading :] + spatial


def labelled_axes(layer) -> str | None:
    """The engine axes string the layer's axis labels name (see the module docstring), or
    None where they do not name every axis and :func:`layer_axes` guesses."""
    shape = layer_shape(layer)
    letters = _letters(getattr(layer, "axis_labels", None))
    if letters is None:
        return None
    letters = letters.replace("S", "C") if "C" not in letters else letters
    if getattr(layer, "rgb", False):
        named = len(letters) == len(shape) - 1 and _valid(letters, allow_channel=False)
        return letters + "C" if named else None
    return letters if len(letters) == len(shape) and _valid(letters, allow_channel=True) else None


def layer_axes(layer) -> str:
    """The engine axes string of an Image layer (see the module docstring)."""
    labelled = labelled_axes(layer)
    if labelled is not None:
        return labelled
    shape = layer_shape(layer)
    if getattr(layer, "rgb", False):
        return _planes(len(shape) - 3, "YXC", shape)
    if len(shape) < 2:
        raise ValueError(f"the layer is {len(shape)}-dimensional; deblurring needs at least Y and X")
    guess = default_axes(shape) if len(shape) <= 5 else _planes(len(shape) - 2, "YX", shape)
    if guess.endswith("C"):  # the engine took the last axis for colour; napari says it is not
        guess = _planes(len(shape) - 2, "YX", shape)
    return guess


def plane_index(layer, axes: str, world_point) -> tuple:
    """Index of the YX plane (all channels) at a world point, e.g. ``(2, 0, slice(None), ...)``.

    Every axis other than ``C``, ``Y`` and ``X`` gets the layer's data coordinate of the
    point, rounded and clipped to the data; ``C``, ``Y`` and ``X`` are kept whole.
    """
    shape = layer_shape(layer)
    coords = np.asarray(layer.world_to_data(np.asarray(world_point, dtype=float)), dtype=float)
    # an RGB layer's transforms cover layer.ndim dimensions: the colour axis has no coordinate
    coords = list(coords) + [0.0] * (len(shape) - len(coords))
    index = []
    for letter, size, value in zip(axes, shape, coords):
        if letter in "CYX":
            index.append(slice(None))
        else:
            position = int(np.round(value)) if np.isfinite(value) else 0
            index.append(min(max(position, 0), size - 1))
    return tuple(index)


def sliced_axes(axes: str, index: tuple) -> str:
    """The axes left after indexing with :func:`plane_index`'s tuple."""
    return "".join(letter for letter, item in zip(axes, index) if isinstance(item, slice))


def is_stack(axes: str) -> bool:
    """True when there is more than one YX plane (an axis other than C, Y, X)."""
    return any(letter not in "CYX" for letter in axes)
