import json

import numpy as np
import pytest
import torch
from factories import tiny_model

from napari_deblur import WeightsError, load_model
from napari_deblur.models.registry import available_models
from napari_deblur.models.weights import save_safetensors, sha256_of


def _same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def test_safetensors_round_trip_keeps_architecture(tmp_path):
    model = tiny_model(channels=3, width=8, blocks=2)
    path = save_safetensors(model, tmp_path / "m.safetensors")
    loaded = load_model(path)
    assert loaded.config == {"width": 8, "blocks": 2, "channels": 3}
    assert _same_weights(model, loaded)
    assert not loaded.training
    assert loaded.weights_info["path"] == str(path)


def test_the_same_weights_always_give_the_same_file(tmp_path):
    """A re-export of identical weights keeps its sha256 (a denoiser is pinned to it): safetensors
    alone writes the header's metadata in a different order from one save to the next."""
    from safetensors import safe_open

    model = tiny_model(channels=3)
    metadata = {f"key{i}": f"value {i}" for i in range(6)}
    paths = [save_safetensors(model, tmp_path / f"m{i}.safetensors", half=True, metadata=metadata) for i in range(8)]
    assert len({sha256_of(p) for p in paths}) == 1
    with safe_open(str(paths[0]), "pt") as f:
        assert {k: f.metadata()[k] for k in metadata} == metadata
    loaded = load_model(paths[0])
    assert all(torch.equal(v.half().float(), loaded.state_dict()[k]) for k, v in model.state_dict().items())


def test_fp16_safetensors_load_as_fp32(tmp_path):
    model = tiny_model()
    loaded = load_model(save_safetensors(model, tmp_path / "h.safetensors", half=True))
    assert next(loaded.parameters()).dtype == torch.float32
    w, w16 = model.Decoder1_4.main[0].weight, loaded.Decoder1_4.main[0].weight
    torch.testing.assert_close(w16, w.half().float())


@pytest.mark.parametrize(
    "wrap",
    [
        lambda sd: {"model": sd},  # official Best/Final
        lambda sd: {
            "model": sd,
            "optimizer": {"state": {}, "param_groups": []},
            "scheduler": {"last_epoch": 3},
            "epoch": 3,
        },
        lambda sd: sd,  # plain state_dict
        lambda sd: {f"module.{k}": v for k, v in sd.items()},  # saved from DataParallel
    ],
    ids=["official", "official-with-optimizer", "state-dict", "dataparallel"],
)
@pytest.mark.parametrize("suffix", [".pkl", ".pth"])
def test_pickle_formats(tmp_path, wrap, suffix):
    model = tiny_model(channels=3)
    path = tmp_path / f"w{suffix}"
    torch.save(wrap(model.state_dict()), path)
    assert _same_weights(model, load_model(path))


def test_arbitrary_pickles_are_refused(tmp_path):
    path = tmp_path / "whole_module.pth"
    torch.save(tiny_model(), path)  # a pickled nn.Module, not a state_dict
    with pytest.raises(WeightsError, match="cannot be read safely"):
        load_model(path)


def test_missing_unexpected_and_shape_errors(tmp_path):
    sd = tiny_model().state_dict()
    missing = dict(sd)
    missing.pop("Decoder1_3.layers.0.main.0.main.0.bias")
    torch.save(missing, tmp_path / "missing.pt")
    with pytest.raises(WeightsError, match=r"1 missing keys \(e.g. Decoder1_3.layers.0.main.0.main.0.bias\)"):
        load_model(tmp_path / "missing.pt")

    extra = dict(sd, **{"Decoder2_1.weight": torch.zeros(1)})
    torch.save(extra, tmp_path / "extra.pt")
    with pytest.raises(WeightsError, match="1 unexpected keys .*Decoder2_1.weight"):
        load_model(tmp_path / "extra.pt")

    wrong = dict(sd, **{"Convs1_1.main.0.weight": torch.zeros(8, 8, 3, 3)})
    torch.save(wrong, tmp_path / "wrong.pt")
    with pytest.raises(WeightsError, match=r"shape mismatch .*Convs1_1.main.0.weight is \(8, 8, 3, 3\)"):
        load_model(tmp_path / "wrong.pt")

    torch.save({"conv.weight": torch.zeros(3)}, tmp_path / "other.pt")
    with pytest.raises(WeightsError, match="does not match XYDeblur: 160 missing keys"):
        load_model(tmp_path / "other.pt")


def test_unreadable_files(tmp_path):
    with pytest.raises(WeightsError, match="not found"):
        load_model(tmp_path / "nope.safetensors")
    (tmp_path / "text.safetensors").write_text("hello")
    with pytest.raises(WeightsError, match="not a readable safetensors"):
        load_model(tmp_path / "text.safetensors")
    (tmp_path / "text.pkl").write_text("hello")
    with pytest.raises(WeightsError, match="text.pkl"):
        load_model(tmp_path / "text.pkl")
    (tmp_path / "w.h5").write_bytes(b"\x89HDF")
    with pytest.raises(WeightsError, match="unknown weights format '.h5'"):
        load_model(tmp_path / "w.h5")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    with pytest.raises(WeightsError, match="holds no state_dict"):
        load_model(tmp_path / "list.pt")


@pytest.fixture
def bundled(tmp_path, monkeypatch):
    """A resources folder with one bundled model and its manifest."""
    model = tiny_model(channels=1)
    path = save_safetensors(model, tmp_path / "xydeblur-test.safetensors", half=True)
    manifest = {
        "name": "xydeblur-test",
        "file": path.name,
        "sha256": sha256_of(path),
        "architecture": {"class": "XYDeblur", **model.config},
        "horizontal_branch": "first",
    }
    (tmp_path / "xydeblur-test.json").write_text(json.dumps(manifest))
    monkeypatch.setenv("NAPARI_DEBLUR_RESOURCES", str(tmp_path))
    return model, path


def test_bundled_name(bundled):
    model, _ = bundled
    assert available_models() == ["xydeblur-test"]
    loaded = load_model("xydeblur-test")
    assert loaded.weights_info["bundled"] and loaded.weights_info["name"] == "xydeblur-test"
    assert loaded.config == model.config


def test_bundled_checksum_mismatch(bundled):
    _, path = bundled
    data = bytearray(path.read_bytes())
    data[-1] ^= 0xFF  # flip bits in the last weight
    path.write_bytes(bytes(data))
    with pytest.raises(WeightsError, match="checksum mismatch for bundled model 'xydeblur-test'"):
        load_model("xydeblur-test")


def test_unknown_name_lists_bundled_models(bundled):
    with pytest.raises(WeightsError, match="bundled models: xydeblur-test"):
        load_model("xydeblur-nonexistent")


def test_loaded_model_runs_like_the_original(tmp_path):
    model = tiny_model(channels=3)
    loaded = load_model(save_safetensors(model, tmp_path / "m.safetensors"))
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        np.testing.assert_array_equal(model(x)[2].numpy(), loaded(x)[2].numpy())


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
@pytest.mark.parametrize("suffix", [".safetensors", ".pth"])
def test_non_finite_weights_are_refused_at_load_time(tmp_path, bad, suffix):
    model = tiny_model(channels=1)
    with torch.no_grad():
        model.Decoder1_4.main[0].bias[0] = bad
    path = tmp_path / f"broken{suffix}"
    if suffix == ".safetensors":
        save_safetensors(model, path)
    else:
        torch.save(model.state_dict(), path)
    with pytest.raises(WeightsError, match=r"broken.* non-finite .*Decoder1_4.main.0.bias"):
        load_model(path)


def _with_header(tmp_path, model, name, config_text):
    """``model``'s weights with ``config_text`` as the napari_deblur.config header."""
    from safetensors.torch import save_file

    path = tmp_path / name
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(
        state,
        str(path),
        metadata={"napari_deblur.architecture": type(model).__name__, "napari_deblur.config": config_text},
    )
    return path


@pytest.mark.parametrize(
    "config, match",
    [
        ({"width": 4096, "blocks": 1, "channels": 1}, r"width must be an integer from 1 to 1024, got 4096"),
        ({"width": 4, "blocks": 100000, "channels": 1}, r"blocks must be an integer from 0 to 64, got 100000"),
        ({"width": 512, "blocks": 1, "channels": 1}, r"config says width=512 but the tensors are width=4"),
        ({"width": "32", "blocks": 1, "channels": 1}, r"width must be an integer from 1 to 1024, got '32'"),
        ({"width": 4, "blocks": True, "channels": 1}, r"blocks must be an integer"),
    ],
)
def test_a_header_is_checked_against_the_tensors_before_anything_is_built(tmp_path, config, match):
    path = _with_header(tmp_path, tiny_model(channels=1), "lying.safetensors", json.dumps(config))
    with pytest.raises(WeightsError, match=r"^lying\.safetensors: .*" + match):
        load_model(path)


@pytest.mark.parametrize("text, match", [("{width: 4}", "not valid JSON"), ("[4, 1, 1]", "must be a JSON object")])
def test_a_broken_header_names_the_file(tmp_path, text, match):
    path = _with_header(tmp_path, tiny_model(channels=1), "broken-header.safetensors", text)
    with pytest.raises(WeightsError, match=r"^broken-header\.safetensors: .*" + match):
        load_model(path)


def test_tensor_shapes_are_checked_before_the_model_is_built(tmp_path):
    """One small tensor whose shape claims width 1024: refused from the shapes, no model built."""
    path = tmp_path / "one-tensor.pt"
    torch.save({"Encoder1.layers.0.main.0.weight": torch.zeros(1024, 3, 3, 3)}, path)
    with pytest.raises(WeightsError, match=r"one-tensor\.pt does not match XYDeblur: .*missing keys"):
        load_model(path)


def test_a_bundled_name_wins_over_a_file_of_that_name_in_the_current_folder(bundled, tmp_path, monkeypatch):
    from napari_deblur.models.registry import ShadowedFileWarning

    here = tmp_path / "work"
    here.mkdir()
    monkeypatch.chdir(here)
    (here / "xydeblur-test").write_text("not weights")
    with pytest.warns(ShadowedFileWarning, match=r"'xydeblur-test' .*bundled model.*\./xydeblur-test"):
        loaded = load_model("xydeblur-test")
    assert loaded.weights_info["bundled"]
    with pytest.raises(WeightsError, match="unknown weights format"):
        load_model("./xydeblur-test")  # a path: the file


def test_the_default_model_is_not_shadowed_by_a_local_file(tmp_path, monkeypatch):
    import warnings

    from factories import bundle_model

    from napari_deblur import xydeblur

    monkeypatch.setenv("NAPARI_DEBLUR_RESOURCES", str(tmp_path))
    bundle_model(tmp_path, "xydeblur-microscopy", tiny_model(channels=1))
    here = tmp_path / "work"
    here.mkdir()
    monkeypatch.chdir(here)
    (here / "xydeblur-microscopy").write_text("a user's notes")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # the caller named nothing: nothing to warn about
        result = xydeblur(np.zeros((16, 16), np.float32), device="cpu")
    assert result.info["model"] == "xydeblur-microscopy"


def test_weight_files_read_what_save_safetensors_writes_and_weights_re_exports_them(tmp_path):
    from napari_deblur.models import weight_files, weights

    model = tiny_model(channels=1, width=8, blocks=1)
    path = weight_files.save_safetensors(model, tmp_path / "m.safetensors", metadata={"note": 3})
    state, config = weight_files.read_state_dict(path)
    assert config == {"width": 8, "blocks": 1, "channels": 1}
    assert state.keys() == model.state_dict().keys()
    header = weight_files.read_header(path)
    assert header[weight_files.ARCH_KEY] == "XYDeblur" and header["note"] == "3"
    assert weight_files.header_config(header, path) == config
    assert not weight_files.is_denoiser(path)
    torch.save(model.state_dict(), tmp_path / "m.pt")
    assert weight_files.read_header(tmp_path / "m.pt") == {}
    assert weight_files.sha256_of(path) == sha256_of(path)
    for name in ("WeightsError", "save_safetensors", "read_state_dict", "is_denoiser", "PREDICTOR_KEY"):
        assert getattr(weights, name) is getattr(weight_files, name)
