"""Frames that fit in one tile, restored where the network runs, from end to end.

The tiled path (:mod:`.tiling`) scales on the host, sends float32 tiles, then blends,
scales back and rounds in numpy: on a GPU that host work took several times as long as the
network (benchmarks/performance-cuda.md). A frame that fits in one tile needs none of the
blending, so this path sends each batch of frames in its own dtype (a uint8 photo is a
quarter of its float32 size) and does the scaling, the padding, the network, the residuals
in input units, the restored image and its rounding on the device; the three outputs come
back. The arithmetic is the tiled path's, in the same order (float32; round half to even,
then clip to the dtype's range), so the two agree to float rounding.

Which images: uint8, uint16, int8, int16, float16 and float32 without NaN, no alpha
channel, and a model that sees the colour channels jointly or a single-channel image. The
engine sends everything else (float64, wide integers, RGBA, NaN, per-channel restoration
of multichannel images, frames larger than a tile) down the tiled path.
"""

from collections.abc import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

FRAME_DTYPES = tuple(np.dtype(t) for t in (np.uint8, np.uint16, np.int8, np.int16, np.float16, np.float32))


def frames_fit(array_dtype, rgba: bool, colour: int, model_channels: int) -> bool:
    """Whether :func:`frames_apply_iter` can take this image (the size is checked apart)."""
    return (np.dtype(array_dtype) in FRAME_DTYPES and not rgba
            and (model_channels == colour or colour == 1))


def upload(block: np.ndarray, device: torch.device) -> torch.Tensor:
    """A host block in its own dtype -> float32 on ``device``. uint16 travels as its int16 bit
    pattern (not every device converts uint16) and is unwrapped there."""
    block = np.ascontiguousarray(block)
    if block.dtype == np.uint16:
        return (torch.from_numpy(block.view(np.int16)).to(device).to(torch.int32) & 0xFFFF).to(torch.float32)
    return torch.from_numpy(block).to(device).to(torch.float32)


def frames_apply_iter(
    fn: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]],
    bcyx: np.ndarray,
    offset: np.ndarray,
    scale: np.ndarray,
    *,
    pad: tuple[int, int],
    batch: int,
    device: torch.device,
    out_dtype,
) -> Iterator[tuple[int, int]]:
    """Restore the frames of ``bcyx`` (N, C, H, W) ``batch`` at a time; yields ``(done, total)``
    after each batch and returns ``(restored, r_hor, r_ver)`` as numpy (N, C, H, W).

    ``fn`` maps a float32 device batch in [0, 1] units, padded by ``pad`` (rows, columns) to
    the network's multiple, to the two float32 residuals in the same units. ``offset`` and
    ``scale`` (per channel) map input units to [0, 1]. ``out_dtype`` is the restored image's:
    integers are rounded and clipped to their range, floats are not clipped.
    """
    n, c, h, w = bcyx.shape
    out_dtype = np.dtype(out_dtype)
    ph, pw = pad
    off = torch.as_tensor(np.asarray(offset, np.float32).reshape(1, -1, 1, 1), device=device)
    sc = torch.as_tensor(np.asarray(scale, np.float32).reshape(1, -1, 1, 1), device=device)
    restored = np.empty((n, c, h, w), out_dtype)
    r_hor, r_ver = np.empty((n, c, h, w), np.float32), np.empty((n, c, h, w), np.float32)
    limits = np.iinfo(out_dtype) if out_dtype.kind in "ui" else None
    batch = max(1, int(batch))
    for first in range(0, n, batch):
        last = min(n, first + batch)
        x = upload(bcyx[first:last], device)
        unit = (x - off) / sc
        if ph or pw:
            unit = F.pad(unit, (0, pw, 0, ph), mode="reflect")
        r1, r2 = fn(unit)
        r1 = r1[..., :h, :w] * sc
        r2 = r2[..., :h, :w] * sc
        out = x + r1 + r2
        if limits is not None:  # rounded on the device; the host only narrows the integers
            out = out.round_().clamp_(limits.min, limits.max).to(torch.int32)
        _store(restored[first:last], out)
        _store(r_hor[first:last], r1)
        _store(r_ver[first:last], r2)
        yield last, n
    return restored, r_hor, r_ver


def _store(target: np.ndarray, values: torch.Tensor) -> None:
    """Copy a device tensor into a contiguous host array slice: straight into it when the
    dtypes match, else through a host copy and a cast."""
    host = torch.from_numpy(target)
    if host.dtype == values.dtype:
        host.copy_(values)
    else:
        np.copyto(target, values.cpu().numpy(), casting="unsafe")
