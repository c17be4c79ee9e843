"""The residual diffusion denoiser: shapes, structure, noise conditioning, weights in and out."""

import pytest
import torch
from factories import bundle_model, tiny_model

from napari_deblur import ResidualDenoiser, WeightsError
from napari_deblur.models.denoiser import denoiser_config_from_state_dict
from napari_deblur.models.registry import available_models
from napari_deblur.models.weights import PREDICTOR_KEY, load_denoiser, save_safetensors

pytestmark = pytest.mark.usefixtures("one_thread")


def tiny_denoiser(channels=3, seed=0, **kw):
    torch.manual_seed(seed)
    return ResidualDenoiser(channels, width=8, **kw).eval()


def _inputs(n, c, h, w, seed=1):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, c, h, w, generator=g) for _ in range(3)]


@pytest.mark.parametrize("size", [(8, 8), (24, 40), (40, 24), (56, 8)])
@pytest.mark.parametrize("channels", [1, 3])
def test_output_shape_for_odd_multiples_of_8(size, channels):
    model = tiny_denoiser(channels)
    z, y, xi = _inputs(2, channels, *size)
    with torch.no_grad():
        eps = model(z, y, xi, torch.tensor([0.3, 0.9]))
    assert eps.shape == (2, channels, *size)
    assert torch.isfinite(eps).all()


def test_sizes_that_are_not_multiples_of_8_are_refused():
    model = tiny_denoiser()
    z, y, xi = _inputs(1, 3, 20, 24)
    with pytest.raises(ValueError, match="divisible by 8"):
        model(z, y, xi, 0.5)
    with pytest.raises(ValueError, match="one shape"):
        model(z, y[:, :1], xi, 0.5)


def test_multiple_follows_the_levels():
    assert ResidualDenoiser(1, 8, mults=(1, 2)).multiple == 2
    assert ResidualDenoiser(1, 8).multiple == 8


def test_fully_convolutional_no_attention_no_norm():
    model = ResidualDenoiser()  # the paper's configuration
    kinds = {type(m).__name__ for m in model.modules()}
    assert not any("Attention" in k or "Norm" in k for k in kinds), kinds
    assert not any(
        isinstance(
            m,
            (
                torch.nn.MultiheadAttention,
                torch.nn.GroupNorm,
                torch.nn.BatchNorm2d,
                torch.nn.LayerNorm,
                torch.nn.InstanceNorm2d,
            ),
        )
        for m in model.modules()
    )
    assert model.config == {
        "channels": 3,
        "width": 32,
        "mults": [1, 2, 3, 4],
        "blocks": 2,
        "residual_scale": 1.0,
        "sigma_data": 0.0,
    }
    first = model.input.weight
    assert first.shape == (32, 9, 3, 3)  # concat(z_t, y, g(y))
    assert 4e6 < sum(p.numel() for p in model.parameters()) < 8e6


def test_noise_level_changes_the_output():
    model = tiny_denoiser()
    z, y, xi = _inputs(1, 3, 16, 16)
    with torch.no_grad():
        outs = [model(z, y, xi, torch.tensor([a])) for a in (0.01, 0.5, 0.999)]
        scalar = model(z, y, xi, 0.5)
    assert not torch.allclose(outs[0], outs[1]) and not torch.allclose(outs[1], outs[2])
    torch.testing.assert_close(scalar, outs[1])


def test_per_sample_noise_levels_in_a_batch():
    model = tiny_denoiser()
    z, y, xi = _inputs(1, 3, 16, 16)
    levels = torch.tensor([0.2, 0.8])
    with torch.no_grad():
        both = model(z.repeat(2, 1, 1, 1), y.repeat(2, 1, 1, 1), xi.repeat(2, 1, 1, 1), levels)
        one = model(z, y, xi, levels[1:])
    torch.testing.assert_close(both[1:], one, atol=1e-5, rtol=1e-5)


def test_safetensors_round_trip_with_predictor(tmp_path):
    model = tiny_denoiser(channels=1, mults=(1, 2), blocks=1)
    path = save_safetensors(model, tmp_path / "d.safetensors", metadata={PREDICTOR_KEY: "xydeblur-photo"})
    loaded = load_denoiser(path)
    assert loaded.config == model.config and not loaded.training
    for k, v in model.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k
    assert loaded.weights_info["predictor"] == "xydeblur-photo"
    assert loaded.weights_info["name"] == "d" and not loaded.weights_info["bundled"]


def test_state_dict_file_reads_its_config(tmp_path):
    model = tiny_denoiser(channels=3, mults=(1, 2, 4), blocks=3)
    assert denoiser_config_from_state_dict(model.state_dict()) == model.config
    torch.save({"model": model.state_dict()}, tmp_path / "d.pth")
    loaded = load_denoiser(tmp_path / "d.pth")
    assert loaded.config == model.config
    assert loaded.weights_info["predictor"] is None


def test_clear_errors(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        load_denoiser(tmp_path / "missing.safetensors")
    with pytest.raises(WeightsError, match="neither a weights file nor a bundled model"):
        load_denoiser("no-such-denoiser")
    xy = save_safetensors(tiny_model(channels=3), tmp_path / "xy.safetensors")
    with pytest.raises(WeightsError, match="XYDeblur, not a diffusion denoiser"):
        load_denoiser(xy)
    torch.save(tiny_model(channels=3).state_dict(), tmp_path / "xy.pth")
    with pytest.raises(WeightsError, match="does not match ResidualDenoiser"):
        load_denoiser(tmp_path / "xy.pth")


def test_bundled_denoiser_names_its_predictor(tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_DEBLUR_RESOURCES", str(tmp_path))
    model = tiny_denoiser()
    weights = bundle_model(tmp_path, "dvsr-tiny", model, "xydeblur-tiny")
    bundle_model(tmp_path, "xydeblur-tiny", tiny_model(channels=3))
    assert available_models("ResidualDenoiser") == ["dvsr-tiny"]
    loaded = load_denoiser("dvsr-tiny")
    assert loaded.weights_info["bundled"] and loaded.weights_info["predictor"] == "xydeblur-tiny"
    torch.testing.assert_close(loaded.input.weight, model.input.weight.half().float())
    with pytest.raises(WeightsError, match="is a XYDeblur, not a diffusion denoiser"):
        load_denoiser("xydeblur-tiny")
    weights.write_bytes(weights.read_bytes()[:-4] + b"\0\0\0\0")
    with pytest.raises(WeightsError, match="checksum mismatch"):
        load_denoiser("dvsr-tiny")


def test_preconditioned_output_is_the_linear_guess_plus_a_scaled_correction():
    model = tiny_denoiser(channels=1, mults=(1, 2), blocks=1, residual_scale=5.0, sigma_data=0.4)
    plain = tiny_denoiser(channels=1, mults=(1, 2), blocks=1)
    plain.load_state_dict(model.state_dict())
    z, y, xi = _inputs(3, 1, 16, 16)
    a = torch.tensor([0.0066, 0.5, 0.99])
    v = a * 0.16 + 1 - a
    c_skip, c_out = ((1 - a).sqrt() / v)[:, None, None, None], ((a * 0.16 / v).sqrt())[:, None, None, None]
    with torch.no_grad():
        expected = c_skip * z + c_out * plain(z, y, xi, a)
        torch.testing.assert_close(model(z, y, xi, a), expected, atol=1e-5, rtol=1e-5)
        model.output.weight.zero_()
        model.output.bias.zero_()
        torch.testing.assert_close(model(z, y, xi, a), c_skip * z, atol=1e-6, rtol=1e-6)
    # at the noisiest level the correction's weight is small: an error there barely moves x0_hat
    assert float(c_out[0]) < 0.04 and float(c_out[2]) > 0.9


def test_residual_scale_and_preconditioning_travel_with_the_weights(tmp_path):
    model = tiny_denoiser(channels=3, mults=(1, 2), blocks=1, residual_scale=5.0, sigma_data=0.4)
    loaded = load_denoiser(save_safetensors(model, tmp_path / "d.safetensors"))
    assert loaded.config["residual_scale"] == 5.0 and loaded.config["sigma_data"] == 0.4
    assert loaded.residual_scale == 5.0
    bare = denoiser_config_from_state_dict(model.state_dict())
    assert bare["residual_scale"] == 1.0 and bare["sigma_data"] == 0.0
    for bad in (dict(residual_scale=0.0), dict(residual_scale=-1.0), dict(sigma_data=-0.1)):
        with pytest.raises(ValueError, match="invalid ResidualDenoiser"):
            ResidualDenoiser(1, width=8, **bad)


def test_non_finite_weights_are_refused_at_load_time(tmp_path):
    model = tiny_denoiser(channels=1, mults=(1, 2), blocks=1)
    with torch.no_grad():
        model.output.weight[0, 0, 0, 0] = float("nan")
    path = save_safetensors(model, tmp_path / "nan-denoiser.safetensors")
    with pytest.raises(WeightsError, match=r"nan-denoiser.* non-finite .*output.weight"):
        load_denoiser(path)


@pytest.mark.parametrize(
    "config, match",
    [
        ({"width": 4096}, r"width must be an integer from 1 to 1024, got 4096"),
        ({"blocks": 100000}, r"blocks must be an integer from 1 to 64, got 100000"),
        ({"width": "8"}, r"width must be an integer from 1 to 1024, got '8'"),
        ({"mults": [1, 2, 3]}, r"config says mults=\[1, 2, 3\] but the tensors are mults=\[1, 2\]"),
        ({"residual_scale": float("nan")}, r"residual_scale must be a number"),
        ({"sigma_data": -1}, r"sigma_data must be a number from 0.0"),
    ],
)
def test_a_header_is_checked_against_the_tensors_before_anything_is_built(tmp_path, config, match):
    import json

    from safetensors.torch import save_file

    model = tiny_denoiser(channels=1, mults=(1, 2), blocks=1)
    header = json.dumps({**model.config, **config})
    path = tmp_path / "lying-denoiser.safetensors"
    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()},
        str(path),
        metadata={"napari_deblur.architecture": "ResidualDenoiser", "napari_deblur.config": header},
    )
    with pytest.raises(WeightsError, match=r"^lying-denoiser\.safetensors: .*" + match):
        load_denoiser(path)


def test_a_broken_header_names_the_file(tmp_path):
    from safetensors.torch import save_file

    model = tiny_denoiser(channels=1, mults=(1, 2), blocks=1)
    path = tmp_path / "bad-json.safetensors"
    save_file(
        {k: v.contiguous() for k, v in model.state_dict().items()},
        str(path),
        metadata={"napari_deblur.architecture": "ResidualDenoiser", "napari_deblur.config": "{oops"},
    )
    with pytest.raises(WeightsError, match=r"^bad-json\.safetensors: .*not valid JSON"):
        load_denoiser(path)


def test_a_bundled_denoiser_name_wins_over_a_local_file(tmp_path, monkeypatch):
    from napari_deblur.models.registry import ShadowedFileWarning

    monkeypatch.setenv("NAPARI_DEBLUR_RESOURCES", str(tmp_path))
    bundle_model(tmp_path, "dvsr-tiny", tiny_denoiser(), "xydeblur-tiny")
    here = tmp_path / "work"
    here.mkdir()
    monkeypatch.chdir(here)
    (here / "dvsr-tiny").write_text("not weights")
    with pytest.warns(ShadowedFileWarning, match="dvsr-tiny"):
        assert load_denoiser("dvsr-tiny").weights_info["bundled"]
