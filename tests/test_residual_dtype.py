"""The residuals in the dtype the caller asks for: float32 (the default) or float16, on the
frames path and the tiles path, in memory, lazily and from the command line."""

import numpy as np
import pytest
import tifffile
import torch
from factories import constant_residual_model, tiny_model

from napari_deblur import xydeblur
from napari_deblur.engine.frames import residuals_as
from napari_deblur.lazy import xydeblur_lazy


def test_float16_saturates_finite_values_and_keeps_nan_and_inf():
    values = torch.tensor([1e5, -1e5, 1.5, float("inf"), float("-inf"), float("nan")])
    half = residuals_as(values, "float16")
    assert half.dtype == torch.float16
    assert half[:3].tolist() == [65504.0, -65504.0, 1.5]
    assert half[3] == float("inf") and half[4] == float("-inf") and torch.isnan(half[5])
    assert residuals_as(values, np.float32).dtype == torch.float32
    with pytest.raises(ValueError, match="float32 or float16"):
        residuals_as(values, "float64")


@pytest.mark.parametrize(
    "image, axes, path",
    [
        (np.random.default_rng(0).integers(0, 256, (2, 40, 48), dtype=np.uint8), "ZYX", "frames"),
        (np.random.default_rng(1).random((40, 48)), "YX", "tiles"),  # float64 goes the tiled way
    ],
)
def test_float16_residuals_match_float32_ones_to_their_precision(image, axes, path):
    model = tiny_model(1)
    wide = xydeblur(image, model, axes=axes, device="cpu")
    half = xydeblur(image, model, axes=axes, device="cpu", residual_dtype="float16")
    assert wide.info["path"] == half.info["path"] == path
    assert wide.r_hor.dtype == np.float32 and wide.info["residual_dtype"] == "float32"
    assert half.r_hor.dtype == half.r_ver.dtype == np.float16 and half.info["residual_dtype"] == "float16"
    np.testing.assert_array_equal(half.restored, wide.restored)  # the image is computed before the cast
    for h, w in ((half.r_hor, wide.r_hor), (half.r_ver, wide.r_ver)):
        np.testing.assert_allclose(h.astype(np.float32), w, rtol=1e-3, atol=1e-6 * max(1.0, np.abs(w).max()))


@pytest.mark.parametrize(
    "image, normalize, path",
    [
        (np.full((40, 48), 30000, np.uint16), "dtype", "frames"),
        (np.linspace(0, 1e5, 40 * 48).reshape(40, 48), (0, 100), "tiles"),  # float64, [0, 1e5] -> [0, 1]
    ],
)
def test_residuals_beyond_float16_saturate_on_both_paths(image, normalize, path):
    model = constant_residual_model(1, value=2.0)  # 2 in [0, 1] units: over 100,000 in the image's units
    result = xydeblur(image, model, axes="YX", device="cpu", normalize=normalize, residual_dtype="float16")
    assert result.r_hor.dtype == np.float16 and result.info["path"] == path
    assert np.isfinite(result.r_hor).all() and float(result.r_hor.max()) == 65504.0


def test_a_bad_residual_dtype_is_refused_before_any_work():
    for bad in ("float64", "int16", "half-ish", None):
        with pytest.raises(ValueError, match="residual_dtype must be 'float32' or 'float16'"):
            xydeblur(np.zeros((8, 8), np.uint8), tiny_model(1), device="cpu", residual_dtype=bad)
        with pytest.raises(ValueError, match="residual_dtype"):
            xydeblur_lazy(np.zeros((8, 8), np.uint8), tiny_model(1), out="r_hor", residual_dtype=bad)


def test_lazy_residuals_have_the_asked_dtype_and_the_in_memory_values():
    image = np.random.default_rng(2).integers(0, 4096, (3, 32, 40), dtype=np.uint16)
    model = tiny_model(1)
    lazy = xydeblur_lazy(image, model, axes="ZYX", device="cpu", out="r_ver", residual_dtype="float16")
    assert lazy.dtype == np.float16
    computed = lazy.compute()
    assert computed.dtype == np.float16
    in_memory = xydeblur(image, model, axes="ZYX", device="cpu", residual_dtype="float16").r_ver
    # one float16 step apart at most: the planes run one by one here, as a batch in memory
    np.testing.assert_allclose(computed.astype(np.float32), in_memory.astype(np.float32), rtol=2e-3, atol=1e-4)


def test_cli_writes_float16_residuals(tmp_path):
    from napari_deblur.cli import main
    from napari_deblur.models.weights import save_safetensors

    weights = tmp_path / "tiny.safetensors"
    save_safetensors(tiny_model(1), weights)
    stack = tmp_path / "cells.tif"
    tifffile.imwrite(stack, np.random.default_rng(3).integers(0, 4096, (2, 32, 40), dtype=np.uint16))
    out = tmp_path / "out"
    args = ["xy", str(stack), "-o", str(out), "--model", str(weights), "--device", "cpu", "--residuals", "-q"]
    assert main([*args, "--residual-dtype", "float16"]) == 0
    restored = tifffile.imread(out / "cells_deblurred.tif")
    r_hor = tifffile.imread(out / "cells_r_hor.tif")
    assert restored.dtype == np.uint16 and restored.shape == (2, 32, 40)
    assert r_hor.dtype == tifffile.imread(out / "cells_r_ver.tif").dtype == np.float16 and r_hor.shape == (2, 32, 40)
