"""tools/gopro_regions.py blur-space: tells frames averaged as stored (sRGB values) from frames
averaged in linear light, the measurement behind ``train --display-blur-prob``."""

from types import SimpleNamespace

import numpy as np
from factories import load_tool

from napari_deblur.metrics import linear_to_srgb, srgb_to_linear


def test_blur_space_finds_which_mean_the_averaging_kept(capsys):
    rng = np.random.default_rng(0)
    sharp = rng.uniform(0, 1, (3, 128, 128)) ** 3  # strong contrast, as in real frames
    frames = [np.roll(sharp, s, axis=2) for s in range(-4, 5)]  # a camera pan over 9 frames
    stored = np.mean(frames, axis=0)
    linear = linear_to_srgb(np.mean([srgb_to_linear(f) for f in frames], axis=0))
    cases = [SimpleNamespace(id="stored", blurred_unit=stored, sharp=sharp)]
    cases.append(SimpleNamespace(id="linear", blurred_unit=linear, sharp=sharp))
    assert load_tool("gopro_regions").blur_space(cases) == 0
    rows = {line.split("|")[1].strip(): line.split("|")[2:4] for line in capsys.readouterr().out.splitlines()[2:]}
    srgb_stored, lin_stored = (float(v) for v in rows["stored"])
    srgb_linear, lin_linear = (float(v) for v in rows["linear"])
    assert abs(srgb_stored) < 1e-3 < -lin_stored  # averaged as stored: the sRGB mean is kept
    assert abs(lin_linear) < 1e-3 < srgb_linear  # averaged in linear light: the linear mean is kept
