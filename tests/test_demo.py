"""The samples are deterministic and the headless demo (make run without a display) works end to end."""

import numpy as np
import tifffile

from napari_deblur import demo, samples
from napari_deblur.models.loading import save_safetensors
from factories import tiny_model


def test_photo_sample_is_blurred_and_reproducible():
    a, b = samples.blurred_photo(), samples.blurred_photo()
    assert a["blurred"].shape == a["sharp"].shape == (400, 600, 3) and a["blurred"].dtype == np.uint8
    np.testing.assert_array_equal(a["blurred"], b["blurred"])
    assert demo.psnr(a["sharp"], a["blurred"]) < 30  # visibly blurred
    assert abs(a["kernel"].sum() - 1) < 1e-5


def test_fluorescence_stack_gets_blurrier_out_of_focus():
    s = samples.blurred_fluorescence_stack(size=96)
    assert s["blurred"].shape == (5, 96, 96) and s["blurred"].dtype == np.uint16
    detail = [np.abs(np.diff(p.astype(float), axis=1)).mean() for p in s["blurred"]]
    assert detail[2] > detail[0] and detail[2] > detail[4]  # the in-focus plane is the sharpest


def test_headless_demo_runs_the_command_line(tmp_path, capsys):
    weights = save_safetensors(tiny_model(channels=3), tmp_path / "w.safetensors")
    assert demo.main(["--headless", "--out", str(tmp_path / "out"), "--model", str(weights)]) == 0
    restored = tifffile.imread(tmp_path / "out" / "coffee_blurred_deblurred.tif")
    assert restored.shape == (400, 600, 3) and restored.dtype == np.uint8
    assert (tmp_path / "out" / "coffee_blurred_r_hor.tif").is_file()
    assert "PSNR against the sharp reference" in capsys.readouterr().out
