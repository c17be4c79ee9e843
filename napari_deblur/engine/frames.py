"""Frames that fit in one tile, restored where the network runs, from end to end.

The tiled path (:mod:`.tiling`) scales on the host, sends float32 tiles, then blends,
scales back and rounds in numpy: on a GPU that host work took several times as long as the
network (benchmarks/performance-cuda.md). A frame that fits in one tile needs none of the
blending, so this path sends each batch of frames in its own dtype (a uint8 photo is a
quarter of its float32 size) and does the scaling, the padding, the network, the residuals
in input units, the restored image and its rounding on the device; the three outputs come
back, integers in their own width. On CUDA a stack is pipelined (:class:`Transfers`): the
next batch is uploaded while the network runs, and results come back asynchronously, so the
copies hide behind the network instead of adding to it (``napari-deblur bench`` times a
stack both ways).

The arithmetic is the tiled path's, in the same order (float32; round half to even, then
clip to the dtype's range), so the two agree to float rounding.

Which images: uint8, uint16, int8, int16, float16 and float32 without NaN, no alpha
channel, and a model that sees the colour channels jointly or a single-channel image. The
engine sends everything else (float64, wide integers, RGBA, NaN, per-channel restoration
of multichannel images, frames larger than a tile) down the tiled path.
"""

from collections.abc import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F

RESIDUAL_DTYPES = (np.dtype(np.float32), np.dtype(np.float16))  # what the residuals can come back as
OVERLAP_TRANSFERS = True  # the default of frames_apply_iter's overlap_transfers (the bench times both)
FRAME_DTYPES = tuple(np.dtype(t) for t in (np.uint8, np.uint16, np.int8, np.int16, np.float16, np.float32))


def residuals_as(values: torch.Tensor, dtype) -> torch.Tensor:
    """Residuals in ``dtype`` (float32 or float16): float16 saturates finite values at its
    largest (65504) and keeps NaN and inf as they are, so that the engine's finite check still
    sees a broken network."""
    dtype = np.dtype(dtype)
    if dtype == np.float32:
        return values.to(torch.float32)
    if dtype != np.float16:
        raise ValueError(f"residuals come back as float32 or float16, not {dtype}")
    limit = float(np.finfo(np.float16).max)
    return torch.where(values.isinf(), values, values.clamp(-limit, limit)).to(torch.float16)


def frames_fit(array_dtype, rgba: bool, colour: int, model_channels: int) -> bool:
    """Whether :func:`frames_apply_iter` can take this image (the size is checked apart)."""
    return np.dtype(array_dtype) in FRAME_DTYPES and not rgba and (model_channels == colour or colour == 1)


def send(block: np.ndarray, device: torch.device, stream=None) -> torch.Tensor:
    """The raw block on ``device`` in its own dtype; uint16 travels as its int16 bit pattern
    (not every device converts uint16) and :func:`to_float` unwraps it there. With a CUDA
    ``stream`` the block is staged in page-locked memory and copied on that stream,
    asynchronously."""
    block = np.ascontiguousarray(block)
    if not block.flags.writeable:  # a read-only input: torch.from_numpy would warn on it; this batch copied
        block = block.copy()
    host = torch.from_numpy(block.view(np.int16) if block.dtype == np.uint16 else block)
    if stream is None:
        return host.to(device)
    with torch.cuda.stream(stream):
        return host.pin_memory().to(device, non_blocking=True)


def to_float(raw: torch.Tensor, dtype) -> torch.Tensor:
    """A block from :func:`send` as float32 in its input units (``dtype``: the host dtype)."""
    if np.dtype(dtype) == np.uint16:
        return (raw.to(torch.int32) & 0xFFFF).to(torch.float32)
    return raw.to(torch.float32)


class Transfers:
    """How batches move. On CUDA, pipelined: the next batch is uploaded on a side stream from
    page-locked memory while the network runs on this one, and the results come back into
    page-locked buffers asynchronously, collected one batch later. Elsewhere: plain copies."""

    def __init__(self, device: torch.device, overlap: bool):
        self.device = device
        self.cuda = device.type == "cuda" and overlap
        self.side = torch.cuda.Stream(device) if self.cuda else None

    def send(self, block: np.ndarray):
        raw = send(block, self.device, self.side)
        if not self.cuda:
            return raw, None
        ready = torch.cuda.Event()
        ready.record(self.side)
        return raw, ready

    def receive(self, raw: torch.Tensor, ready) -> torch.Tensor:
        """The uploaded block, once it has arrived, for use on the current stream."""
        if ready is not None:
            torch.cuda.current_stream(self.device).wait_event(ready)
            raw.record_stream(torch.cuda.current_stream(self.device))  # freed only after this stream's use
        return raw

    def fetch(self, tensors):
        """Start copying device tensors to the host; :meth:`collect` waits for them."""
        if not self.cuda:
            return [t.cpu() for t in tensors], None
        hosts = [torch.empty(t.shape, dtype=t.dtype, pin_memory=True) for t in tensors]
        for host, t in zip(hosts, tensors):
            host.copy_(t, non_blocking=True)
        done = torch.cuda.Event()
        done.record(torch.cuda.current_stream(self.device))
        return hosts, done

    @staticmethod
    def collect(hosts, done):
        if done is not None:
            done.synchronize()
        return hosts


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
    residual_dtype=np.float32,
    overlap_transfers: bool | None = None,
) -> Iterator[tuple[int, int]]:
    """Restore the frames of ``bcyx`` (N, C, H, W) ``batch`` at a time; yields ``(done, total)``
    after each batch and returns ``(restored, r_hor, r_ver)`` as numpy (N, C, H, W).

    ``fn`` maps a float32 device batch in [0, 1] units, padded by ``pad`` (rows, columns) to
    the network's multiple, to the two float32 residuals in the same units. ``offset`` and
    ``scale`` (per channel) map input units to [0, 1]. ``out_dtype`` is the restored image's:
    integers are rounded and clipped to their range, float16 clipped to its finite range. The
    residuals come back as ``residual_dtype`` (:func:`residuals_as`; float16 halves their
    copy to the host). On CUDA the transfers of a stack overlap the network
    (``overlap_transfers``, see :class:`Transfers`).
    """
    n, c, h, w = bcyx.shape
    out_dtype = np.dtype(out_dtype)
    ph, pw = pad
    off = torch.as_tensor(np.asarray(offset, np.float32).reshape(1, -1, 1, 1), device=device)
    sc = torch.as_tensor(np.asarray(scale, np.float32).reshape(1, -1, 1, 1), device=device)
    restored = np.empty((n, c, h, w), out_dtype)
    residual_dtype = np.dtype(residual_dtype)
    r_hor, r_ver = np.empty((n, c, h, w), residual_dtype), np.empty((n, c, h, w), residual_dtype)
    limits = np.iinfo(out_dtype) if out_dtype.kind in "ui" else None
    float_limit = float(np.finfo(out_dtype).max) if out_dtype == np.float16 else None  # saturate, never inf
    narrow = NARROW.get(out_dtype)  # None for wider integers: int32 comes back
    batch = max(1, int(batch))
    moves = Transfers(device, OVERLAP_TRANSFERS if overlap_transfers is None else overlap_transfers)
    starts = list(range(0, n, batch))
    incoming = moves.send(bcyx[:batch])
    outgoing = None  # the previous batch's results, on their way to the host
    for index, first in enumerate(starts):
        last = min(n, first + batch)
        x = to_float(moves.receive(*incoming), bcyx.dtype)
        unit = (x - off) / sc
        if ph or pw:
            unit = F.pad(unit, (0, pw, 0, ph), mode="reflect")
        r1, r2 = fn(unit)
        r1 = r1[..., :h, :w] * sc
        r2 = r2[..., :h, :w] * sc
        out = x + r1 + r2
        if limits is not None:  # rounded on the device; the host only narrows the integers
            out = out.round_().clamp_(limits.min, limits.max)
            out = out.to(torch.int32) if narrow is None else _narrow(out, out_dtype)
        elif float_limit is not None:
            out = out.clamp_(-float_limit, float_limit)
        if index + 1 < len(starts):  # the next upload runs while this batch computes
            incoming = moves.send(bcyx[last : last + batch])
        if outgoing is not None:
            yield _finish(moves, outgoing, restored, r_hor, r_ver), n
        outgoing = (
            first,
            last,
            *moves.fetch([out, residuals_as(r1, residual_dtype), residuals_as(r2, residual_dtype)]),
        )
    yield _finish(moves, outgoing, restored, r_hor, r_ver), n
    return restored, r_hor, r_ver


# integer outputs come back in their own width: uint16 as its int16 bit pattern
NARROW = {
    np.dtype(np.uint8): torch.uint8,
    np.dtype(np.int8): torch.int8,
    np.dtype(np.int16): torch.int16,
    np.dtype(np.uint16): torch.int16,
}


def _narrow(values: torch.Tensor, out_dtype: np.dtype) -> torch.Tensor:
    """Rounded, clipped float values -> the torch dtype of :data:`NARROW` exactly (uint16 above
    32767 as its int16 bit pattern)."""
    if out_dtype == np.uint16:
        values = torch.where(values > 32767, values - 65536, values)
    return values.to(NARROW[out_dtype])


def _finish(moves: Transfers, outgoing, restored, r_hor, r_ver) -> int:
    """Wait for one batch's results and put them in the output arrays; returns its end."""
    first, last, hosts, done = outgoing
    out, r1, r2 = moves.collect(hosts, done)
    _store(restored[first:last], out)
    _store(r_hor[first:last], r1)
    _store(r_ver[first:last], r2)
    return last


def _store(target: np.ndarray, values: torch.Tensor) -> None:
    """Copy a host tensor into a contiguous host array slice: a uint16 target takes its int16
    bit pattern as it is, another dtype is cast."""
    if target.dtype == np.uint16 and values.dtype == torch.int16:
        target.view(np.int16)[...] = values.numpy()
    else:
        np.copyto(target, values.numpy(), casting="unsafe")
