"""Overlapping tiles with smooth blending, batched. numpy only (the network is a callable).

Tiles are placed on a grid of multiples of 4, the networks' downsampling
factor, so every tile sees the same pixel phase as the whole image would, and
neighbouring tiles overlap by at least ``overlap`` pixels. Each tile's output is
weighted by a raised-cosine ramp across the overlap (weight 1 towards the
image's own borders) and the sums are divided by the summed weights: a smooth
partition of unity, so no seam shows where two tiles meet.
"""

from collections.abc import Callable, Iterator

import numpy as np

ALIGN = 4


def tile_starts(length: int, tile: int, overlap: int) -> list[int]:
    """Start offsets of tiles of size ``tile`` covering ``length`` (all multiples of 4)."""
    if length <= tile:
        return [0]
    step = tile - overlap
    if step < ALIGN:
        raise ValueError(f"overlap {overlap} leaves no room in tile {tile}")
    last = length - tile  # a multiple of 4 when both are
    starts = list(range(0, last, step))
    return starts + [last] if not starts or starts[-1] != last else starts


def balanced_tile(length: int, tile: int, overlap: int) -> int:
    """The tile side that covers ``length`` with as few tiles as ``tile`` would, spread evenly.

    Tiles of the largest size leave the last one overlapping its neighbour by far more than
    ``overlap`` (2048 pixels in tiles of 1024 with an overlap of 96: starts 0, 928, 1024, so
    2.25 times the pixels are computed); the same number of smaller tiles, each overlapping
    by about ``overlap``, computes hardly more than the image. A multiple of 4, at most ``tile``.
    """
    if length <= tile:
        return length
    count = -(-(length - overlap) // (tile - overlap))  # tiles of side ``tile`` needed
    side = -(-(length + (count - 1) * overlap) // count)
    return min(tile, -(-side // ALIGN) * ALIGN)


def ramp_window(start: int, size: int, length: int, overlap: int) -> np.ndarray:
    """1D weights of one tile, on each side that has a neighbour: zero over the outer quarter
    of the overlap (where the tile's border, padded with zeros inside the network, still
    shows), then a raised-cosine ramp across the middle half, then one."""
    w = np.ones(size, dtype=np.float32)
    n = min(overlap, size // 2)
    margin = n // 4
    ramp_len = n - 2 * margin
    if ramp_len > 0:
        ramp = np.zeros(n, dtype=np.float32)
        ramp[margin : margin + ramp_len] = np.sin(0.5 * np.pi * (np.arange(ramp_len) + 0.5) / ramp_len) ** 2
        ramp[margin + ramp_len :] = 1
        if start > 0:
            w[:n] = ramp
        if start + size < length:
            w[size - n :] = np.minimum(w[size - n :], ramp[::-1])
    return w


def round_tile(tile: int) -> int:
    return max(ALIGN, int(tile) // ALIGN * ALIGN)


def tile_apply_iter(
    fn: Callable[[np.ndarray], tuple[np.ndarray, ...]],
    x: np.ndarray,
    tile: int,
    overlap: int,
    batch: int = 1,
) -> Iterator[tuple[int, int]]:
    """Apply ``fn`` to ``x`` (N, C, H, W) tile by tile, a batch of tiles per call.

    ``fn`` maps (n, C, h, w) float32 to a tuple of arrays (n, C', h, w). The
    generator yields ``(done, total)`` after each call, so a caller can show
    progress or stop between calls; its return value is the tuple of full-size
    outputs (N, C', H, W) float32. H and W should be multiples of 4.
    """
    n_items, _, height, width = x.shape
    tile = round_tile(tile)
    overlap = min(round_tile(overlap) if overlap >= ALIGN else 0, tile // 2)
    th, tw = balanced_tile(height, tile, overlap), balanced_tile(width, tile, overlap)
    ys, xs = tile_starts(height, th, overlap), tile_starts(width, tw, overlap)
    wy = [ramp_window(y, th, height, overlap) for y in ys]
    wx = [ramp_window(x0, tw, width, overlap) for x0 in xs]
    patches = [(n, i, j) for n in range(n_items) for i in range(len(ys)) for j in range(len(xs))]
    whole = len(ys) == len(xs) == 1  # one tile per item: no blending, the item goes in as it is
    total = len(patches)
    outputs = None
    for first in range(0, total, max(1, batch)):
        group = patches[first : first + max(1, batch)]
        if whole:  # consecutive items: a view, copied only if not already contiguous float32
            inp = x[group[0][0] : group[-1][0] + 1]
        else:
            inp = np.stack([x[n, :, ys[i] : ys[i] + th, xs[j] : xs[j] + tw] for n, i, j in group])
        results = fn(np.ascontiguousarray(inp, dtype=np.float32))
        if outputs is None:
            make = np.empty if whole else np.zeros
            outputs = tuple(make((n_items, r.shape[1], height, width), np.float32) for r in results)
        for k, (n, i, j) in enumerate(group):
            if whole:
                for out, r in zip(outputs, results):
                    out[n] = r[k]
                continue
            w2 = wy[i][:, None] * wx[j][None, :]
            for out, r in zip(outputs, results):
                out[n, :, ys[i] : ys[i] + th, xs[j] : xs[j] + tw] += r[k] * w2
        yield first + len(group), total
    if not whole:  # the summed weights: a partition of unity
        weight = np.zeros((height, width), dtype=np.float32)
        for y, wyi in zip(ys, wy):
            for x0, wxi in zip(xs, wx):
                weight[y : y + th, x0 : x0 + tw] += wyi[:, None] * wxi[None, :]
        for out in outputs:
            out /= weight
    return outputs
