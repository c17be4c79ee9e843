"""Small XYDeblur models for tests (random or with known residuals), a bundler that
puts any model into a resources folder with its manifest, and a loader for the scripts in
``tools/``."""

import importlib.util
import json
from pathlib import Path

import torch

from napari_deblur.models.weights import save_safetensors, sha256_of
from napari_deblur.models.xydeblur import XYDeblur


def load_tool(name: str):
    """The module of ``tools/<name>.py`` (the tools are scripts, not a package)."""
    path = Path(__file__).resolve().parents[1] / "tools" / f"{name}.py"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


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


def bundle_model(folder, name, model, predictor=None, predictor_sha256=None):
    """Save ``model`` as ``folder/name.safetensors`` (fp16) with a minimal manifest, as a
    bundled model of that resources folder; a denoiser's manifest names its ``predictor``
    (and the checksum of that predictor's weights, where given)."""
    weights = save_safetensors(model, folder / f"{name}.safetensors", half=True)
    manifest = {
        "name": name,
        "file": weights.name,
        "sha256": sha256_of(weights),
        "architecture": {"class": type(model).__name__, **model.config},
        "predictor": predictor,
        "predictor_sha256": predictor_sha256,
    }
    (folder / f"{name}.json").write_text(json.dumps(manifest))
    return weights


def bundle_presets(folder, make_pair):
    """Bundle ``xydeblur-photo`` + ``dvsr-photo`` (3 channels) and ``xydeblur-microscopy`` +
    ``dvsr-microscopy`` (1 channel) in ``folder``, from ``make_pair(channels)`` -> (predictor, denoiser)."""
    for preset, channels in (("photo", 3), ("microscopy", 1)):
        predictor, denoiser = make_pair(channels)
        weights = bundle_model(folder, f"xydeblur-{preset}", predictor)
        bundle_model(
            folder, f"dvsr-{preset}", denoiser, predictor=f"xydeblur-{preset}", predictor_sha256=sha256_of(weights)
        )
