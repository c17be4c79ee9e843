"""Extreme values through the whole pipeline: wide integers saturate, huge floats are refused."""

import numpy as np
import pytest
import tifffile
from factories import constant_residual_model

from napari_deblur.cli import main
from napari_deblur.models.weights import save_safetensors


@pytest.mark.parametrize("dtype", [np.uint32, np.int32])
def test_cli_saturates_wide_integers(tmp_path, dtype):
    model = save_safetensors(constant_residual_model(value=0.1), tmp_path / "up.safetensors")
    image = np.full((16, 16), np.iinfo(dtype).max, dtype)
    tifffile.imwrite(tmp_path / "top.tif", image)
    assert (
        main(
            [
                "xy",
                str(tmp_path / "top.tif"),
                "-o",
                str(tmp_path / "out"),
                "--model",
                str(model),
                "--device",
                "cpu",
                "-q",
            ]
        )
        == 0
    )
    restored = tifffile.imread(tmp_path / "out" / "top_deblurred.tif")
    assert restored.dtype == dtype and np.all(restored == np.iinfo(dtype).max)
