"""The one-pass form of XYDeblur's two decoder branches (models/twin.py) and the engine's
choice of form."""

import numpy as np
import pytest
import torch
from factories import tiny_model

from napari_deblur import xydeblur
from napari_deblur.engine import runtime
from napari_deblur.models.twin import TwinDecoderXYDeblur


@pytest.mark.parametrize("mode", ["grouped", "dense"])
@pytest.mark.parametrize("channels, shape", [(1, (16, 24)), (3, (20, 12))])
def test_twin_decoder_gives_the_two_branches(mode, channels, shape):
    model = tiny_model(channels, seed=2, width=4, blocks=2).double()
    twin = TwinDecoderXYDeblur(model, mode).double().eval()
    x = torch.rand(2, channels, *shape, dtype=torch.double)
    with torch.no_grad():
        want_hor, want_ver = model.residuals(x)
        got_hor, got_ver = twin.residuals(x)
        restored = twin(x)[2]
    assert not torch.allclose(want_hor, want_ver)  # the branches differ, so a swap would show
    torch.testing.assert_close(got_hor, want_hor)
    torch.testing.assert_close(got_ver, want_ver)
    torch.testing.assert_close(restored, x + want_hor + want_ver)


def test_twin_holds_copies_and_checks_sizes():
    model = tiny_model(1)
    twin = TwinDecoderXYDeblur(model)
    with torch.no_grad():
        model.Encoder1.layers[0].main[0].weight.zero_()
    assert twin.Encoder1.layers[0].main[0].weight.abs().sum() > 0
    with pytest.raises(ValueError, match="divisible by 4"):
        twin.residuals(torch.rand(1, 1, 18, 16))
    with pytest.raises(ValueError, match="mode"):
        TwinDecoderXYDeblur(model, "sideways")


@pytest.mark.parametrize("form", ["twin-grouped", "twin-dense"])
def test_engine_runs_the_form_it_is_told(monkeypatch, form):
    image = np.random.default_rng(0).integers(0, 256, (40, 36, 3)).astype(np.uint8)
    model = tiny_model(3, seed=5)
    with torch.no_grad():
        model.Decoder1_4.main[0].bias.add_(0.02)
    plain = xydeblur(image, model, axes="YXC", out_dtype="float32")
    monkeypatch.setenv("NAPARI_DEBLUR_DECODER", form)
    assert runtime.decoder_form(torch.device("cpu")) == form
    assert isinstance(runtime.device_copy(model, torch.device("cpu"), torch.float32), TwinDecoderXYDeblur)
    twin = xydeblur(image, model, axes="YXC", out_dtype="float32")
    for name in ("restored", "r_hor", "r_ver"):
        np.testing.assert_allclose(getattr(twin, name), getattr(plain, name), atol=1e-3)


def test_a_wrong_decoder_form_is_named(monkeypatch):
    monkeypatch.setenv("NAPARI_DEBLUR_DECODER", "three-pass")
    with pytest.raises(ValueError, match="NAPARI_DEBLUR_DECODER must be one of"):
        xydeblur(np.zeros((16, 16), np.uint8), tiny_model())
