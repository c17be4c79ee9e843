"""The predictor-denoiser pair of the diffusion refinement: which modules work together.

A denoiser is always used with the XYDeblur ``g`` it was trained against: its manifest (or
safetensors header) names that predictor, or the caller passes one. numpy and torch only.
"""

import warnings

import numpy as np
import torch

from ..engine.runtime import load_cached
from ..models.registry import DENOISER, default_denoiser_name
from ..models.weights import WeightsError, weights_sha256
from ..models.xydeblur import XYDeblur


def _channels(module) -> int:
    config = getattr(module, "config", None) or {}
    if "channels" in config:
        return int(config["channels"])
    if hasattr(module, "channels"):
        return int(module.channels)
    raise TypeError(f"cannot tell how many channels {type(module).__name__} works on (no config['channels'])")


def residual_scale(module) -> float:
    """The factor the denoiser's diffusion applies to the residual (1.0 when it does not say)."""
    return float((getattr(module, "config", None) or {}).get("residual_scale", 1.0))


def size_multiple(module) -> int:
    """The size multiple the denoiser needs, lifted to a multiple of the predictor's 4."""
    m = int(getattr(module, "multiple", 8))
    return int(np.lcm(m, 4))


def resolve_models(
    model, predictor=None, channels: int = 3, preset: str | None = None
) -> tuple[XYDeblur, torch.nn.Module]:
    """``(predictor, denoiser)`` from a denoiser name/path/module (plus ``predictor`` or the
    one its manifest names) or a ``(predictor, denoiser)`` tuple; ``None`` is the bundled
    denoiser of ``preset`` (default: the one for an image of ``channels`` colour channels)."""
    if isinstance(model, (tuple, list)):
        if len(model) != 2:
            raise TypeError(f"model as a tuple must be (predictor, denoiser), got {len(model)} items")
        if predictor is not None:
            raise ValueError("give the predictor either in the (predictor, denoiser) tuple or as predictor=, not both")
        pred, den = model
        pred_named = True  # by the caller
        if isinstance(den, (str, bytes)) or not isinstance(den, torch.nn.Module):
            den = load_cached(den, DENOISER)
    else:
        named = model is not None
        if model is None:
            model = default_denoiser_name(channels, preset=preset)
        den = model if isinstance(model, torch.nn.Module) else load_cached(model, DENOISER, warn=named)
        pred = predictor if predictor is not None else getattr(den, "weights_info", {}).get("predictor")
        pred_named = predictor is not None  # else the one the denoiser's manifest or header names
        if pred is None:
            name = getattr(den, "weights_info", {}).get("name", type(den).__name__)
            raise WeightsError(
                f"denoiser {name!r} does not name the predictor it was trained with; pass predictor= "
                f"(an XYDeblur name, weights file or module)"
            )
    if not isinstance(pred, XYDeblur):
        pred = load_cached(pred, warn=pred_named)
    if _channels(den) != pred.channels:
        raise ValueError(
            f"the predictor works on {pred.channels} channels but the denoiser on {_channels(den)}; "
            f"they must be a pair trained together"
        )
    _check_pair(pred, den)
    return pred, den


class PredictorMismatchWarning(UserWarning):
    """The predictor's weights are not the ones the denoiser was trained against."""


def _check_pair(pred, den) -> None:
    """Warn when the denoiser records the checksum of its predictor's weights and ``pred``
    has other weights: the denoiser then corrects residuals of a network it never saw."""
    info = getattr(den, "weights_info", None) or {}
    wanted = info.get("predictor_sha256")
    got = weights_sha256(pred) if wanted else None
    if wanted and got and got != wanted:
        pred_name = (getattr(pred, "weights_info", None) or {}).get("name", "the predictor")
        warnings.warn(
            f"denoiser {info.get('name', '?')!r} was trained against predictor weights with sha256 "
            f"{wanted[:12]}..., but {pred_name!r} has {got[:12]}...; its refinement may add the wrong "
            f"residual (retrain the denoiser with `napari-deblur train dvsr --init ...` for this predictor)",
            PredictorMismatchWarning,
            stacklevel=3,
        )
