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
def branch_energies(model, size: int = 128, count: int = 12, length: float = 15.0) -> dict:
    """Per image: mean squared r1 (first branch) and r2 under horizontal and vertical motion blur."""
    model = model.eval()
    device = next(model.parameters()).device
    sharp = _scenes(model.channels, size, count)
    out = {}
    for name, angle in (("horizontal", 0.0), ("vertical", 90.0)):
        kernel = torch.from_numpy(linear_motion(length, angle, size=31))[None].expand(count, -1, -1)
        blurred = blur(sharp, kernel).clamp(0, 1).to(device)
        r1, r2 = model.residuals(blurred.float())
        out[name] = {"first": r1.pow(2).mean((1, 2, 3)).tolist(), "second": r2.pow(2).mean((1, 2, 3)).tolist()}
    return out


def specialisation(energies: dict) -> np.ndarray:
    """Per image, how much more the first branch takes of horizontal than of vertical blur,
    relative to the second: > 1 means the first branch is the horizontal one, 1 no split."""
    h, v = energies["horizontal"], energies["vertical"]
    h1, h2, v1, v2 = (
        np.maximum(np.asarray(x, dtype=np.float64), 1e-12) for x in (h["first"], h["second"], v["first"], v["second"])
    )
    return (h1 / h2) * (v2 / v1)


def orientation(energies: dict) -> dict:
    """``horizontal_branch`` ('first' or 'second', by the geometric mean over images),
    ``branch_split`` (that mean as a factor >= 1) and ``branch_agreement`` (the fraction of
    images that agree): a model whose branches really split the blur by direction has a
    split well above 1 and an agreement near 1."""
    logs = np.log(specialisation(energies))
    mean = float(logs.mean())
    branch = "first" if mean >= 0 else "second"
    agree = float(np.mean(logs >= 0) if branch == "first" else np.mean(logs < 0))
    return {
        "horizontal_branch": branch,
        "branch_split": round(float(np.exp(abs(mean))), 3),
        "branch_agreement": round(agree, 3),
    }
