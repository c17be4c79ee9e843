"""The bundled models: their manifests, how a name is told from a path, and which one is the default.

A bundled model is ``resources/<name>.safetensors`` plus ``resources/<name>.json``, its
manifest (sha256, architecture config, recipe, data, measured quality). Each architecture
has one bundled model per preset, named ``<family>-<preset>``: ``xydeblur-photo`` and
``xydeblur-microscopy`` (XYDeblur), ``dvsr-photo`` and ``dvsr-microscopy`` (the diffusion
denoiser of the refinement).

Which preset restores an image when the caller names no model (:func:`default_preset`), one
policy for XYDeblur and the diffusion pair:

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

numpy only: reading and checking the weights themselves is :mod:`.weights`' work.
"""

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..resources import resources_dir

PRESETS = ("photo", "microscopy")
XYDEBLUR = "XYDeblur"
DENOISER = "ResidualDenoiser"
FAMILIES = {XYDEBLUR: "xydeblur", DENOISER: "dvsr"}  # architecture class -> bundled name prefix
DENOISER_FOR = {preset: f"{FAMILIES[DENOISER]}-{preset}" for preset in PRESETS}


class ShadowedFileWarning(UserWarning):
    """A bundled model's name was given and a file of that name is in the current folder."""


# ---------------------------------------------------------------- the manifests


def bundled_models() -> dict:
    """``{name: (folder, manifest)}`` for every bundled model in the resources folder (empty
    when there is none); a JSON file without ``file`` and ``sha256`` is not a manifest."""
    try:
        folder = resources_dir()
    except FileNotFoundError:
        return {}
    found = {}
    for path in sorted(folder.glob("*.json")):
        try:
            manifest = json.loads(path.read_text())
        except (OSError, ValueError):
            continue
        if isinstance(manifest, dict) and "file" in manifest and "sha256" in manifest:
            found[manifest.get("name", path.stem)] = (path.parent, manifest)
    return found


def available_models(architecture: str | None = XYDEBLUR) -> list[str]:
    """Names of the bundled models (of one architecture, or all with ``None``)."""
    return [
        name
        for name, (_, manifest) in bundled_models().items()
        if architecture is None or manifest.get("architecture", {}).get("class") == architecture
    ]


def unknown_name_message(name) -> str:
    """What to say about a name that is neither a file nor a bundled model: the bundled ones."""
    names = available_models(None)
    listing = ", ".join(names) if names else "none are installed"
    return f"{name!r} is neither a weights file nor a bundled model (bundled models: {listing})"


# ---------------------------------------------------------------- names and paths


def is_bundled_name(name_or_path) -> bool:
    """Whether ``name_or_path`` is read as a bundled model's name: a string without a path
    separator or a suffix that names a bundled model (a :class:`~pathlib.Path` is a path)."""
    if not isinstance(name_or_path, str):
        return False
    bare = not (
        "/" in name_or_path or "\\" in name_or_path or Path(name_or_path).suffix or name_or_path.startswith("~")
    )
    return bare and name_or_path in bundled_models()


def weights_key(name_or_path) -> str:
    """A string that :func:`~.weights.resolve_weights` reads as the same weights (for caches
    keyed by strings): a bundled name as it is, a path as a path (``./name`` where the bare
    name would read as a bundled model)."""
    if is_bundled_name(name_or_path):
        return name_or_path
    text = str(name_or_path)
    return os.path.join(os.curdir, text) if is_bundled_name(text) else text


def warn_if_shadowed(name: str) -> None:
    """A :class:`ShadowedFileWarning` when the bundled ``name`` is also a file or folder here."""
    if Path(name).exists():
        warnings.warn(
            f"{name!r} is a bundled model and also a file in the current folder; using the bundled "
            f"model (write ./{name} for the file)",
            ShadowedFileWarning,
            stacklevel=4,
        )


# ---------------------------------------------------------------- the default model


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


def bundled_name(preset: str, architecture: str = XYDEBLUR) -> str:
    """The bundled model of ``architecture`` for ``preset``, e.g. ``"xydeblur-photo"``."""
    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {', '.join(PRESETS)}, got {preset!r}")
    return f"{FAMILIES[architecture]}-{preset}"


def default_model_name(channels: int, axes=None, dtype=None, *, axes_given: bool = False) -> str:
    """The bundled XYDeblur for an image (the policy of :func:`default_preset`)."""
    return bundled_name(default_preset(channels, axes, dtype, axes_given=axes_given).preset)


def default_denoiser_name(channels: int, bundled=None, preset: str | None = None) -> str:
    """The bundled denoiser for an image with ``channels`` colour channels: ``dvsr-<preset>``,
    the preset by :func:`default_preset` (from the channel count alone unless ``preset`` is
    given); the other bundled one when that one is missing. ``bundled``: the denoiser names
    to choose from (default: read from the resources)."""
    wanted = DENOISER_FOR[preset or default_preset(channels).preset]
    if bundled is None:
        bundled = available_models(DENOISER)
    if wanted in bundled or not bundled:
        return wanted  # a missing name fails in the loader with the list of bundled models
    other = [name for name in DENOISER_FOR.values() if name in bundled]
    return (other or bundled)[0]
