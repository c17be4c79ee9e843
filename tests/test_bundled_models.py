"""The bundled models: complete manifests, official architecture, seamless tiling, measured orientation."""

import json

import numpy as np
import pytest
import torch

from napari_deblur import available_models, load_model, xydeblur
from napari_deblur.data.degrade import blur
from napari_deblur.data.kernels import linear_motion
from napari_deblur.resources import resources_dir
from napari_deblur.samples import blurred_fluorescence_stack, blurred_photo

BUNDLED = available_models()
pytestmark = pytest.mark.skipif(not BUNDLED, reason="no bundled model in resources/")
REQUIRED = {
    "name",
    "file",
    "sha256",
    "architecture",
    "horizontal_branch",
    "recipe",
    "data",
    "iterations",
    "train_seconds",
    "device",
    "commit",
    "validation",
}


@pytest.mark.parametrize("name", BUNDLED)
def test_manifest_is_complete_and_weights_are_official_shape(name):
    manifest = json.loads((resources_dir() / f"{name}.json").read_text())
    assert REQUIRED <= set(manifest), REQUIRED - set(manifest)
    model = load_model(name)
    assert model.config["width"] == 32 and model.config["blocks"] == 6
    assert manifest["iterations"] > 0 and manifest["validation"]["val_psnr"] > 0


@pytest.mark.slow
@pytest.mark.parametrize("name", BUNDLED)
def test_tiles_do_not_show_with_a_trained_model(name):
    model = load_model(name)
    photo = blurred_photo()["blurred"][:320, :320]
    image = photo if model.channels == 3 else photo.mean(-1).astype(np.uint8)
    whole = xydeblur(image, model, tile=1024, out_dtype="float32")
    tiled = xydeblur(image, model, tile=192, out_dtype="float32")  # the default overlap
    assert tiled.info["tile"] == 192
    diff = np.abs(whole.restored - tiled.restored) / 255
    assert 10 * np.log10(1 / np.mean(diff**2)) > 60
    assert diff.max() < 1 / 255  # less than one 8-bit level anywhere, seams included


@pytest.mark.parametrize("name", BUNDLED)
def test_r_hor_carries_horizontal_blur(name):
    """Horizontal motion blur goes more to r_hor, vertical more to r_ver (after the manifest's mapping).

    Only for a model whose export measured a clear, consistent split (``branch_split`` >= 1.5
    on >= 90% of the images); a barely trained model whose branches have not specialised
    yet is skipped, saying so.
    """
    manifest = json.loads((resources_dir() / f"{name}.json").read_text())
    split, agreement = manifest.get("branch_split", 1.0), manifest.get("branch_agreement", 0.0)
    if split < 1.5 or agreement < 0.9:
        pytest.skip(
            f"{name}: its branches do not split the blur by direction yet "
            f"(measured x{split}, {agreement:.0%} of images agree)"
        )
    model = load_model(name)
    if model.channels == 1:  # a microscopy model is probed on fluorescence, the content it was made for
        plane = blurred_fluorescence_stack()["sharp"][0, :160, :160].astype(np.float32)
        sharp = ((plane - plane.min()) / np.ptp(plane))[..., None]
    else:
        sharp = blurred_photo()["sharp"][:160, 200:360].astype(np.float32) / 255
    energy = {}
    for direction, angle in (("horizontal", 0.0), ("vertical", 90.0)):
        kernel = torch.from_numpy(linear_motion(15.0, angle, size=31))[None]
        blurred = blur(torch.from_numpy(sharp).permute(2, 0, 1)[None], kernel)[0].permute(1, 2, 0).numpy()
        result = xydeblur(np.clip(blurred, 0, 1).squeeze(), model)
        energy[direction] = (np.mean(result.r_hor**2), np.mean(result.r_ver**2))
    # r_hor's share of the residual energy is larger under horizontal blur than under vertical blur
    share = {d: e[0] / (e[0] + e[1]) for d, e in energy.items()}
    assert share["horizontal"] > share["vertical"], share


@pytest.mark.parametrize("name", available_models("ResidualDenoiser"))
def test_bundled_denoiser_manifest_and_its_predictor(name):
    from napari_deblur.models.weights import load_denoiser

    manifest = json.loads((resources_dir() / f"{name}.json").read_text())
    assert (REQUIRED - {"horizontal_branch"}) <= set(manifest), REQUIRED - set(manifest)
    den = load_denoiser(name)  # checks the sha256
    assert den.config["width"] == 32 and den.config["mults"] == [1, 2, 3, 4]
    assert manifest["architecture"]["residual_scale"] == den.residual_scale
    predictor = manifest["predictor"]
    assert predictor in BUNDLED and load_model(predictor).channels == den.channels
    assert manifest["iterations"] > 0 and manifest["validation"]["val_psnr"] > 0
    # the bundled predictor is the very weights the denoiser was trained against: a predictor
    # replaced without retraining its denoiser fails here
    predictor_manifest = json.loads((resources_dir() / f"{predictor}.json").read_text())
    assert manifest["predictor_sha256"] == predictor_manifest["sha256"]
