"""The bundled models: which one restores an image when the caller names none (one policy for both engines)."""

import numpy as np
import pytest
from factories import bundle_model, tiny_model

from napari_deblur import xydeblur
from napari_deblur.models.registry import (
    DENOISER,
    available_models,
    bundled_name,
    default_denoiser_name,
    default_model_name,
    default_preset,
)


@pytest.mark.parametrize(
    "channels, axes, dtype, given, preset",
    [
        (1, "YX", np.uint16, False, "microscopy"),
        (3, "YXC", np.uint8, False, "photo"),
        (4, "YXC", np.uint8, True, "photo"),
        (3, "TYXC", np.uint8, True, "photo"),  # an RGB video
        (3, "YXC", np.float32, False, "photo"),  # a float photograph in [0, 1]
        (3, "ZYXC", np.float32, False, "photo"),  # guessed axes: a stack of photographs
        (3, "CYX", np.uint16, True, "microscopy"),  # the fluorescence layout of the issue
        (3, "CYX", np.uint8, True, "microscopy"),
        (3, "ZCYX", np.float32, True, "microscopy"),
        (3, "YXC", np.uint16, True, "microscopy"),  # integers beyond 8 bits
        (3, "YXC", np.int32, False, "microscopy"),
        (3, "ZYXC", np.float32, True, "microscopy"),  # an explicit z-stack with channels
        (3, "TYXC", np.float32, True, "microscopy"),
        (2, "CYX", np.float32, True, "microscopy"),
        (3, None, None, False, "photo"),  # only the channel count known (the widgets)
        (1, None, None, False, "microscopy"),
    ],
)
def test_default_preset(channels, axes, dtype, given, preset):
    choice = default_preset(channels, axes, dtype, axes_given=given)
    assert choice.preset == preset and choice.reason


@pytest.fixture
def presets(tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_DEBLUR_RESOURCES", str(tmp_path))
    bundle_model(tmp_path, "xydeblur-photo", tiny_model(channels=3))
    bundle_model(tmp_path, "xydeblur-microscopy", tiny_model(channels=1))


def test_a_fluorescence_stack_gets_the_microscopy_model_per_channel(presets):
    image = np.random.default_rng(0).integers(100, 4000, (3, 16, 20), dtype=np.uint16)
    result = xydeblur(image, axes="CYX", device="cpu")
    assert result.info["model"] == "xydeblur-microscopy" and result.info["channel_mode"] == "per-channel"
    assert result.info["model_choice"] == "xydeblur-microscopy, per channel: CYX uint16 is a fluorescence layout"


def test_an_rgb_photo_keeps_the_photo_model(presets):
    image = np.random.default_rng(0).integers(0, 255, (16, 20, 3), dtype=np.uint8)
    result = xydeblur(image, device="cpu")
    assert result.info["model"] == "xydeblur-photo" and result.info["channel_mode"] == "joint"
    assert result.info["model_choice"].startswith("xydeblur-photo: YXC uint8")


def test_a_named_model_is_reported_as_the_callers(presets):
    image = np.random.default_rng(0).integers(0, 255, (16, 20, 3), dtype=np.uint8)
    assert xydeblur(image, "xydeblur-microscopy", device="cpu").info["model_choice"] == "given by the caller"


@pytest.mark.parametrize(
    "channels, axes, dtype, given, name",
    [
        (1, "YX", np.uint16, False, "xydeblur-microscopy"),
        (3, "YXC", np.uint8, False, "xydeblur-photo"),
        (3, "CYX", np.uint16, True, "xydeblur-microscopy"),
        (3, None, None, False, "xydeblur-photo"),
    ],
)
def test_the_default_xydeblur_is_the_bundled_model_of_the_preset(channels, axes, dtype, given, name):
    assert default_model_name(channels, axes, dtype, axes_given=given) == name
    assert bundled_name(default_preset(channels, axes, dtype, axes_given=given).preset) == name


def test_bundled_names_follow_the_architecture_and_preset():
    assert bundled_name("photo") == "xydeblur-photo"
    assert bundled_name("microscopy", DENOISER) == "dvsr-microscopy"
    with pytest.raises(ValueError, match="preset must be one of"):
        bundled_name("astronomy")


@pytest.mark.parametrize(
    "channels, bundled, preset, name",
    [
        (3, ["dvsr-photo", "dvsr-microscopy"], None, "dvsr-photo"),
        (1, ["dvsr-photo", "dvsr-microscopy"], None, "dvsr-microscopy"),
        (3, ["dvsr-photo", "dvsr-microscopy"], "microscopy", "dvsr-microscopy"),  # the preset overrides the count
        (1, ["dvsr-photo"], None, "dvsr-photo"),  # the wanted one is missing: the other bundled one
        (1, ["my-denoiser"], None, "my-denoiser"),  # neither preset's: whatever is bundled
        (3, [], None, "dvsr-photo"),  # none bundled: the wanted name, for the loader's message
    ],
)
def test_the_default_denoiser(channels, bundled, preset, name):
    assert default_denoiser_name(channels, bundled, preset=preset) == name


def test_the_default_denoiser_reads_the_bundled_ones(tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_DEBLUR_RESOURCES", str(tmp_path))
    assert available_models(DENOISER) == []
    assert default_denoiser_name(3) == "dvsr-photo"


def test_only_bundled_models_without_a_passed_gate_are_warned_about(tmp_path, monkeypatch, capsys):
    import json

    from napari_deblur.cli.common import warn_ungated
    from napari_deblur.models.weights import gate_warning

    monkeypatch.setenv("NAPARI_DEBLUR_RESOURCES", str(tmp_path))
    bundle_model(tmp_path, "xydeblur-photo", tiny_model(channels=3))
    bundle_model(tmp_path, "xydeblur-microscopy", tiny_model(channels=1))
    manifest = json.loads((tmp_path / "xydeblur-microscopy.json").read_text())
    manifest["real_benchmark"] = {"gate": {"model": "xydeblur-microscopy", "passed": True, "checks": []}}
    (tmp_path / "xydeblur-microscopy.json").write_text(json.dumps(manifest))
    assert "has not passed the real-data do-no-harm gate" in gate_warning("xydeblur-photo")
    assert gate_warning("xydeblur-microscopy") is None  # passed
    assert gate_warning(str(tmp_path / "xydeblur-photo.safetensors")) is None  # a file: the user's to judge
    assert gate_warning(None) is None and gate_warning(tiny_model()) is None
    warn_ungated("xydeblur-photo", "xydeblur-microscopy", "xydeblur-photo")
    assert capsys.readouterr().err.count("warning: the bundled xydeblur-photo") == 1  # once per name


def test_a_users_file_named_like_an_ungated_bundled_model_is_not_warned_about(tmp_path, monkeypatch):
    resources, mine = tmp_path / "resources", tmp_path / "mine"
    resources.mkdir(), mine.mkdir()
    monkeypatch.setenv("NAPARI_DEBLUR_RESOURCES", str(resources))
    bundle_model(resources, "xydeblur-photo", tiny_model(channels=3))
    own = bundle_model(mine, "xydeblur-photo", tiny_model(channels=3, seed=1))  # same name, not bundled
    image = np.zeros((16, 16, 3), np.uint8)
    bundled = xydeblur(image, "xydeblur-photo", axes="YXC", device="cpu").info
    users = xydeblur(image, str(own), axes="YXC", device="cpu").info
    assert bundled["bundled_weights"] == ["xydeblur-photo"]
    assert users["model"] == "xydeblur-photo" and users["bundled_weights"] == []  # named alike, not the bundled one


def test_the_shipped_models_say_whether_they_passed_the_gate():
    from napari_deblur.models.registry import bundled_models
    from napari_deblur.models.weights import gate_warning

    shipped = bundled_models()
    for name in ("xydeblur-microscopy", "dvsr-microscopy", "xydeblur-photo"):  # exported through the gate
        if name in shipped:
            assert gate_warning(name) is None
