import copy

import pytest
import torch
from factories import tiny_model

from napari_deblur import XYDeblur
from napari_deblur.models.xydeblur import config_from_state_dict


def test_official_layout_and_parameter_count():
    model = XYDeblur()
    state = model.state_dict()
    assert len(state) == 160
    assert sum(p.numel() for p in model.parameters()) == 4_918_627
    for key in (
        "Encoder1.layers.0.main.0.weight",
        "Encoder1.layers.1.main.0.main.0.weight",
        "Encoder3.layers.6.main.1.main.0.bias",
        "Decoder1_1.layers.6.main.0.weight",
        "Convs1_1.main.0.weight",
        "Convs1_2.main.0.weight",
        "Decoder1_3.layers.5.main.1.main.0.weight",
        "Decoder1_4.main.0.weight",
    ):
        assert key in state, key
    assert isinstance(model.Decoder1_1.layers[6].main[0], torch.nn.ConvTranspose2d)
    assert state["Decoder1_4.main.0.weight"].shape == (3, 32, 3, 3)
    assert config_from_state_dict(state) == {"width": 32, "blocks": 6, "channels": 3}


def test_grayscale_model_and_config():
    model = XYDeblur(channels=1)
    assert model.state_dict()["Encoder1.layers.0.main.0.weight"].shape == (32, 1, 3, 3)
    assert config_from_state_dict(XYDeblur(width=8, blocks=2, channels=1).state_dict()) == {
        "width": 8,
        "blocks": 2,
        "channels": 1,
    }


def test_forward_returns_residuals_and_their_sum():
    model = tiny_model(channels=3)
    x = torch.rand(2, 3, 16, 24)
    r_hor, r_ver, restored = model(x)
    assert r_hor.shape == r_ver.shape == restored.shape == x.shape
    torch.testing.assert_close(restored, x + r_hor + r_ver)
    assert not torch.allclose(r_hor, r_ver)


def test_size_must_be_multiple_of_four():
    with pytest.raises(ValueError, match="divisible by 4"):
        tiny_model()(torch.rand(1, 1, 18, 16))


def test_vertical_branch_is_the_horizontal_decoder_with_kernels_rotated():
    """r_ver == the decoder with every kernel rotated by -90 degrees, on unrotated features.

    So the branches differ only in orientation: r_hor is the decoder as stored
    (the paper's D_hor), r_ver the same decoder turned by 90 degrees (D_ver).
    """
    model = tiny_model(channels=1).double()
    x = torch.rand(1, 1, 16, 20, dtype=torch.double)
    r_hor, r_ver, _ = model(x)
    turned = copy.deepcopy(model)
    for name, module in turned.named_modules():
        if name.startswith(("Decoder", "Convs")) and isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):
            module.weight.data = torch.rot90(module.weight.data, -1, (2, 3))
    e1, e2, z = model.encode(x)
    torch.testing.assert_close(turned.decode(e1, e2, z), r_ver)
    torch.testing.assert_close(model.decode(e1, e2, z), r_hor)
