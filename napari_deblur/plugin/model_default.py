"""The bundled model the dock widgets suggest for a layer, and why.

The engine's one policy (:func:`napari_deblur.models.registry.default_preset`) applied
to the layer as the plugin knows it: its dtype, its axes (:func:`~.axes.layer_axes`) and
their colour channel count. The axes count as given where the layer's axis labels name
them (a reader or the user set them: :func:`~.axes.labelled_axes`), as when a caller passes
``axes`` to the engine, and not where the plugin guessed them. So a uint16 layer labelled
``C, Y, X`` gets ``xydeblur-microscopy`` per channel, "CYX uint16 is a fluorescence layout".

No napari or Qt; torch only inside :func:`suggest_denoiser` (through the diffusion pair).
"""

from dataclasses import dataclass

import numpy as np

from ..models.registry import ModelChoice, default_preset
from .axes import labelled_axes, layer_axes, layer_shape


@dataclass(frozen=True)
class Suggestion:
    """``name``: the bundled model to select; ``why``: the name and the policy's reason, e.g.
    ``"xydeblur-microscopy, per channel: CYX uint16 is a fluorescence layout"``."""

    name: str
    why: str


def layer_dtype(layer) -> np.dtype:
    data = layer.data[0] if getattr(layer, "multiscale", False) else layer.data
    return np.dtype(data.dtype)


def layer_choice(layer) -> ModelChoice:
    """The policy's preset for ``layer``; ValueError where the plugin cannot tell its axes."""
    axes, shape = layer_axes(layer), layer_shape(layer)
    channels = shape[axes.index("C")] if "C" in axes else 1
    return default_preset(channels, axes, layer_dtype(layer), axes_given=labelled_axes(layer) is not None)


def suggest_predictor(layer) -> Suggestion:
    """The bundled XYDeblur for ``layer`` (``xydeblur-<preset>``, as the engine names it)."""
    choice = layer_choice(layer)
    name = f"xydeblur-{choice.preset}"
    return Suggestion(name, choice.describe(name))


def suggest_denoiser(layer, bundled) -> Suggestion:
    """The bundled diffusion denoiser for ``layer`` among ``bundled`` (``dvsr-<preset>``, or
    the other one when that is missing, which ``why`` then says)."""
    from ..models.registry import DENOISER_FOR, default_denoiser_name

    choice = layer_choice(layer)
    wanted = DENOISER_FOR[choice.preset]
    name = default_denoiser_name(1, list(bundled), preset=choice.preset)
    if name == wanted:
        return Suggestion(name, choice.describe(name))
    return Suggestion(name, f"{name}: {wanted} is not bundled ({choice.reason})")


def choice_text(current: str, suggestion: Suggestion | None) -> str:
    """What a run's model choice was: the suggestion's reason when ``current`` is the suggested
    model, else ``"<current> (chosen in the widget)"``."""
    if suggestion is not None and current == suggestion.name:
        return suggestion.why
    return f"{current} (chosen in the widget)"
