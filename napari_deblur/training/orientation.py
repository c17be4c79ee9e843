"""Which XYDeblur branch learned horizontal blur? Measured, not assumed.

The two branches are the same decoder in two orientations; which one takes the
horizontal part of the blur is decided during training. We blur held-out
images with purely horizontal and purely vertical linear motion and compare
the energy of the two residuals: the branch that carries more of the
horizontal case is the horizontal one. ``napari-deblur export`` writes the
answer into the manifest (``horizontal_branch``), and the engine uses it so
that ``r_hor`` is always the horizontal residual.
"""

import numpy as np
import torch

from ..data import sharp as sources
from ..data.degrade import blur
from ..data.kernels import linear_motion


def _scenes(channels: int, size: int, count: int) -> torch.Tensor:
    rng = np.random.default_rng(1234)
    if channels == 3 and sources.heldout_photos():
        photos = list(sources.heldout_photos().values())
        crops = []
        for i in range(count):
            im = photos[i % len(photos)]
            y = rng.integers(0, im.shape[1] - size + 1)
            x = rng.integers(0, im.shape[2] - size + 1)
            crops.append(im[:, y : y + size, x : x + size])
        return torch.from_numpy(np.stack(crops))
    make = sources.dead_leaves if channels == 3 else (lambda r, s, c: sources.fluorescence(r, s))
    return torch.from_numpy(np.stack([make(rng, size, channels) for _ in range(count)]).astype(np.float32))


@torch.no_grad()
def branch_energies(model, size: int = 128, count: int = 4, length: float = 15.0) -> dict:
    """Mean squared r1 (first branch) and r2 for horizontal and vertical motion blur."""
    model = model.eval()
    device = next(model.parameters()).device
    sharp = _scenes(model.channels, size, count)
    out = {}
    for name, angle in (("horizontal", 0.0), ("vertical", 90.0)):
        kernel = torch.from_numpy(linear_motion(length, angle, size=31))[None].expand(count, -1, -1)
        blurred = blur(sharp, kernel).clamp(0, 1).to(device)
        r1, r2 = model.residuals(blurred.float())
        out[name] = {"first": float(r1.pow(2).mean()), "second": float(r2.pow(2).mean())}
    return out


def specialisation(energies: dict) -> float:
    """How much the first branch favours horizontal over vertical blur, relative to the
    second: > 1 means the first branch is the horizontal one, 1 means no split at all."""
    h, v = energies["horizontal"], energies["vertical"]
    return h["first"] / max(h["second"], 1e-12) * v["second"] / max(v["first"], 1e-12)


def horizontal_branch(energies: dict) -> str:
    """'first' or 'second': the branch with the larger share of the horizontal case,
    cross-checked against the vertical case."""
    return "first" if specialisation(energies) >= 1 else "second"
