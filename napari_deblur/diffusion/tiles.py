"""Overlapping tiles for the diffusion chain: the noise estimate of a whole state, tile by tile.

Unlike a one-pass network, a chain must not draw noise per tile: the state ``z`` (all
chains, the whole image) lives in one tensor, and every step's noise estimate is
predicted tile by tile on the grid of :mod:`napari_deblur.engine.tiling` and blended
with raised-cosine weights, so neighbouring tiles see the same noise and no seam appears.
"""

import torch

from ..engine.options import MIN_TILE
from ..engine.runtime import channels_last
from ..engine.tiling import ramp_window, tile_starts


class TileGrid:
    """The overlapping tiles of the engine's grid (:mod:`..engine.tiling`) as torch windows."""

    def __init__(self, height, width, tile, overlap, multiple, device):
        tile = max(multiple, tile // multiple * multiple)
        overlap = min(overlap // multiple * multiple, tile // 2)
        self.tile, self.overlap = tile, overlap
        self.th, self.tw = min(tile, height), min(tile, width)
        self.ys = tile_starts(height, self.th, overlap)
        self.xs = tile_starts(width, self.tw, overlap)
        self.single = len(self.ys) == 1 and len(self.xs) == 1
        wy = [torch.from_numpy(ramp_window(y, self.th, height, overlap)) for y in self.ys]
        wx = [torch.from_numpy(ramp_window(x, self.tw, width, overlap)) for x in self.xs]
        self.windows = [[(a[:, None] * b[None, :]).to(device) for b in wx] for a in wy]
        self.weight = torch.zeros(height, width, device=device)
        for i, y in enumerate(self.ys):
            for j, x in enumerate(self.xs):
                self.weight[y : y + self.th, x : x + self.tw] += self.windows[i][j]

    def region(self, i, j):
        return slice(self.ys[i], self.ys[i] + self.th), slice(self.xs[j], self.xs[j] + self.tw)


def halved_tile(tile: int, multiple: int) -> int:
    """The tile to try after running out of memory at a batch of 1: half of ``tile``, a
    multiple of ``multiple``, at least :data:`~napari_deblur.engine.options.MIN_TILE`."""
    return max(MIN_TILE, tile // 2 // multiple * multiple)


def denoiser_fn(work, device, dtype, channels, replicate_to):
    """(z, cond, abar) on the state device -> eps float32 on the state device."""

    nhwc = channels_last(device)

    def fn(z, cond, alpha_bar):
        x = torch.cat([z, cond], dim=1).to(device=device, dtype=dtype)
        if nhwc:
            x = x.contiguous(memory_format=torch.channels_last)
        zt, y, xi = x.split(channels, dim=1)
        if replicate_to:
            zt, y, xi = (t.expand(-1, replicate_to, -1, -1) for t in (zt, y, xi))
        level = torch.full((x.shape[0],), alpha_bar, device=device, dtype=torch.float32)
        with torch.no_grad():
            eps = work(zt, y, xi, level)
        if replicate_to:
            eps = eps.mean(1, keepdim=True)
        return eps.to(device=z.device, dtype=torch.float32)

    return fn


def predict_eps(fn, z, cond, n_items, alpha_bar, grid: TileGrid, per_batch: int) -> torch.Tensor:
    """The noise estimate for the whole state ``z`` (chains x items), tile by tile, blended."""
    m = z.shape[0]
    if grid.single:
        parts = []
        for first in range(0, m, per_batch):
            rows = torch.arange(first, min(m, first + per_batch), device=cond.device) % n_items
            parts.append(fn(z[first : first + per_batch], cond[rows], alpha_bar))
        return torch.cat(parts)
    acc = torch.zeros_like(z)
    patches = [(k, i, j) for k in range(m) for i in range(len(grid.ys)) for j in range(len(grid.xs))]
    for first in range(0, len(patches), per_batch):
        group = patches[first : first + per_batch]
        zc = torch.stack([z[(k, slice(None), *grid.region(i, j))] for k, i, j in group])
        cc = torch.stack([cond[(k % n_items, slice(None), *grid.region(i, j))] for k, i, j in group])
        eps = fn(zc, cc, alpha_bar)
        for q, (k, i, j) in enumerate(group):
            acc[(k, slice(None), *grid.region(i, j))] += eps[q] * grid.windows[i][j]
    return acc.div_(grid.weight)
