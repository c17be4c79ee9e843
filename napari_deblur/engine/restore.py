"""The XYDeblur engine: any image or stack in, restored image and residuals out.

``xydeblur_iter`` is a generator: it yields :class:`Progress` after every batch
of tiles (so a progress bar can move and a napari worker can be cancelled
between tiles) and *returns* the :class:`XYDeblurResult`. ``xydeblur`` runs it
to the end. The caller's array is never written to.

Channels: a model with as many channels as the image (RGB on RGB) sees them
jointly; a 1-channel model restores every channel on its own; a 3-channel model
on an image with another channel count sees each channel replicated to gray RGB
and its outputs are averaged back to one channel. The alpha of RGBA passes
through untouched.
"""

import time
from collections.abc import Generator
from dataclasses import dataclass, field

import numpy as np
import torch

from ..models.registry import bundled_name, default_preset
from ..models.weights import bundled_names
from ..models.xydeblur import XYDeblur
from . import runtime
from .axes import from_bcyx, normalize_axes, to_bcyx
from .compiled import CompiledResiduals
from .device import describe, free_memory, pick_device, pick_dtype, precision_name
from .frames import RESIDUAL_DTYPES, frames_apply_iter, frames_fit, residuals_as
from .intensity import add_rounded, cast_like
from .model_input import ModelInput
from .options import MIN_TILE, check_parameters
from .runtime import RELEASE_SHARE, decoder_form, load_cached, retry_out_of_memory_iter, run_to_end
from .tiling import ALIGN, round_tile, tile_apply_iter

# Finite float values beyond this magnitude are refused: scaled, restored and returned as float32
# residuals they would overflow (float32 ends at 3.4e38) and come back as NaN.
MAX_MAGNITUDE = 1e30
CPU_TILE_CAP = 1024
# A frame up to this side, with the memory for it, goes through the network in one piece (the
# frames path): blending the tiles of a large frame on the host costs far more than the network
# does on a GPU (benchmarks/performance-cuda.md).
GPU_TILE_CAP = 4096
GIVEN = "given by the caller"  # info["model_choice"] when the caller named the model
DEFAULT_OVERLAP = 96  # with the zero margin of ramp_window: seams below 1.1e-3 (tools/seam_check.py)
MAX_BATCH = 16


@dataclass(frozen=True)
class Progress:
    """One step of a running restoration: ``done`` of ``total`` units of work."""

    done: int
    total: int
    message: str = ""

    @property
    def fraction(self) -> float:
        return self.done / self.total if self.total else 1.0


@dataclass
class XYDeblurResult:
    """``restored`` has the input's shape (and dtype unless ``out_dtype='float32'``);
    ``r_hor`` and ``r_ver`` are residuals in input units, same shape, float32 (or float16 with
    ``residual_dtype='float16'``)."""

    restored: np.ndarray
    r_hor: np.ndarray
    r_ver: np.ndarray
    axes: str
    info: dict = field(default_factory=dict)


def check_image(image) -> np.ndarray:
    """The input as a numpy array, or a clear TypeError/ValueError."""
    array = np.asarray(image)
    kind = array.dtype.kind
    if kind == "b":
        raise TypeError("boolean images cannot be deblurred; convert the mask to uint8 or float first")
    if kind == "c":
        raise TypeError("complex images are not supported; pass the magnitude or the real part")
    if kind not in "uif":
        raise TypeError(f"unsupported image dtype {array.dtype}; use an integer or floating-point array")
    if array.size == 0:
        raise ValueError(f"the image is empty (shape {array.shape})")
    if array.ndim < 2:
        raise ValueError(f"an image needs at least 2 dimensions, got shape {array.shape}")
    if kind == "f":
        if np.isinf(array).any():
            raise ValueError("the image contains infinite values; replace them before deblurring")
        if np.isnan(array).all():
            raise ValueError("the image has no finite values (all NaN)")
        peak = max(abs(float(np.nanmin(array))), abs(float(np.nanmax(array))))
        if peak > MAX_MAGNITUDE:
            raise ValueError(
                f"the image has values of magnitude {peak:.3g}, beyond the {MAX_MAGNITUDE:.0e} the engine "
                f"handles (its residuals are float32, which ends at 3.4e38): divide the image by a constant first"
            )
    return array


class NonFiniteOutputError(ValueError):
    """A network returned NaN or infinite values for an image whose values were finite."""


def check_residual_dtype(residual_dtype) -> np.dtype:
    """``residual_dtype`` as a numpy dtype of :data:`~.frames.RESIDUAL_DTYPES`, or a ValueError."""
    try:
        checked = np.dtype(residual_dtype)
    except TypeError:
        checked = None
    if checked not in RESIDUAL_DTYPES:
        raise ValueError(f"residual_dtype must be 'float32' or 'float16', got {residual_dtype!r}")
    return checked


def _residuals_as(r: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """A host residual in ``dtype`` (as it is when it already is; see :func:`~.frames.residuals_as`)."""
    if r.dtype == dtype:
        return r
    if dtype == np.float32:
        return r.astype(np.float32)
    return residuals_as(torch.from_numpy(np.ascontiguousarray(r, np.float32)), dtype).numpy()


def check_finite_output(arrays, model_name: str, precision: str) -> None:
    """Raise :class:`NonFiniteOutputError` if any of ``arrays`` (outputs where the input was
    finite) holds NaN or inf, rather than returning them as a result."""
    if all(np.isfinite(a).all() for a in arrays):
        return
    raise NonFiniteOutputError(
        f"the network ({model_name}, {precision}) returned NaN or infinite values for a finite image: its "
        f"weights are damaged, or the scaled values overflow {precision} (try precision='fp32' or normalize='dtype')"
    )


def bytes_per_pixel(model: XYDeblur, dtype: torch.dtype) -> int:
    """Peak working memory of one forward pass per input pixel (measured ~10x width floats, doubled)."""
    return 16 * model.config["width"] * torch.tensor([], dtype=dtype).element_size() + 64


def plan_memory(model, device, dtype, height, width, tile="auto", batch="auto"):
    """Tile side and tiles per batch for this device's free memory."""
    budget = free_memory(device) * (0.5 if device.type != "cpu" else 0.25)
    if device.type == "cpu":
        budget = min(budget, 4 << 30)
    bpp = bytes_per_pixel(model, dtype)
    tile, _, batch, _ = check_parameters(tile, 0, batch)
    if tile == "auto":
        side = int((budget / bpp) ** 0.5)
        cap = CPU_TILE_CAP if device.type == "cpu" else GPU_TILE_CAP
        tile = max(MIN_TILE * 2, min(cap, side) // 32 * 32)
    else:
        tile = round_tile(tile)
    th, tw = min(tile, height), min(tile, width)
    if batch == "auto":
        batch = int(max(1, min(MAX_BATCH, budget // (bpp * th * tw))))
    return tile, int(batch)


def xydeblur_iter(
    image,
    model=None,
    *,
    axes=None,
    device="auto",
    precision="auto",
    tile="auto",
    overlap=DEFAULT_OVERLAP,
    batch="auto",
    normalize="auto",
    out_dtype="same",
    residual_dtype="float32",
    compile=False,  # noqa: A002 (the name users know from torch)
) -> Generator[Progress, None, XYDeblurResult]:
    """Restore ``image`` with XYDeblur, yielding progress; returns an :class:`XYDeblurResult`.

    Args:
        image: array-like, uint8/uint16/int/float32/float64, 2D or a stack.
        model: a bundled name, a weights path, or an :class:`XYDeblur`; ``None``
            picks ``xydeblur-photo`` for RGB(A) photographs and ``xydeblur-microscopy``
            (per channel) otherwise, e.g. for ``CYX`` or uint16 data; see
            :mod:`napari_deblur.models.registry`. ``info["model_choice"]`` says which and why.
        axes: e.g. ``"YX"``, ``"YXC"``, ``"CYX"``, ``"TZCYX"``; ``None`` guesses
            (see :mod:`napari_deblur.engine.axes`).
        device: ``"auto"`` (CUDA, then MPS, then CPU), ``"cpu"``, ``"cuda"``, ``"mps"``.
        precision: ``"auto"`` (fp16 on GPU, fp32 on CPU), ``"fp32"``, ``"fp16"``, ``"bf16"``.
        tile: tile side in pixels, or ``"auto"`` from free device memory.
        overlap: pixels shared by neighbouring tiles (blended).
        batch: tiles or planes per forward pass, or ``"auto"``.
        normalize: ``"auto"``, ``"dtype"``, ``"percentile"`` or ``(lo, hi)``
            percentiles (see :mod:`napari_deblur.engine.intensity`).
        out_dtype: ``"same"`` (integers rounded and clipped to their range,
            float16 clipped to its finite range, wider floats unclipped) or ``"float32"``.
            Wide integers are computed in float64 (64-bit ones added exactly) and saturate at
            their bounds; finite float values beyond :data:`MAX_MAGNITUDE` are refused.
        residual_dtype: ``"float32"`` or ``"float16"`` for ``r_hor`` and ``r_ver``: half the
            memory (and, on a GPU, half the copy back); float16 keeps about 3 significant
            digits and saturates at +-65504 (a NaN or inf still raises).
        compile: run the network through ``torch.compile`` (faster on a GPU after a
            compile of about 15 s per frame or tile shape; eager if it fails, which
            ``info["compile"]`` then says). See :mod:`napari_deblur.engine.compiled`.
    """
    started = time.perf_counter()
    array = check_image(image)
    axes_given = axes is not None
    axes = normalize_axes(axes, array.shape)
    if out_dtype not in ("same", "float32"):
        raise ValueError(f"out_dtype must be 'same' or 'float32', got {out_dtype!r}")
    residual_dtype = check_residual_dtype(residual_dtype)
    tile, overlap, batch, normalize = check_parameters(tile, overlap, batch, normalize)
    dev = pick_device(device)
    dtype = pick_dtype(precision, dev)
    bcyx, layout = to_bcyx(array, axes)
    _, c, h, w = bcyx.shape
    if h < 4 or w < 4:
        raise ValueError(f"the image is too small to deblur: {h}x{w} pixels in Y and X (at least 4x4)")
    net, model_choice = pick_model(model, c, axes, array.dtype, axes_given)
    view = NetworkView(bcyx, layout, array.dtype, net, normalize)
    clock = StageClock(started)
    clock.stage("prepare")
    frames_dtype = array.dtype if out_dtype == "same" else np.float32
    run = yield from _run_network(net, view, dev, dtype, tile, overlap, batch, compile, frames_dtype, residual_dtype)
    clock.stage("network")
    if run.path == "frames":
        restored, r_hor, r_ver = run.outputs
    else:
        restored, r_hor, r_ver = _assemble_tiles(run.outputs, bcyx, view, array.dtype, out_dtype)
    clock.stage("assemble")
    r_hor, r_ver = (_residuals_as(r, residual_dtype) for r in (r_hor, r_ver))
    model_name = net.weights_info["name"] if hasattr(net, "weights_info") else "XYDeblur"
    check_finite_output((r_hor, r_ver), model_name, precision_name(dtype))
    restored, r_hor, r_ver = (from_bcyx(a, layout) for a in (restored, r_hor, r_ver))
    clock.stage("finish")
    info = {
        "model": model_name,
        "bundled_weights": bundled_names(net),  # the names the do-no-harm gate warnings are for
        "model_choice": model_choice,  # why this model: the default policy's reason, or the caller's
        **_run_info(dev, dtype, run, overlap, view),
        "residual_dtype": residual_dtype.name,
        "stages": clock.stages,
        "seconds": time.perf_counter() - started,
    }
    return XYDeblurResult(restored=restored, r_hor=r_hor, r_ver=r_ver, axes=axes, info=info)


class StageClock:
    """Where a call's time went: :meth:`stage` closes the stage that ran since the last mark.

    ``info["stages"]`` of :func:`xydeblur_iter`: *prepare* (checks, axes, the model, scaling),
    *network* (every pass with its transfers and, on the tiles path, tiling and blending; on
    the frames path also the scaling and rounding done on the device), *assemble* (the tiles
    path's residuals back to input units and added), *finish* (the residuals in their dtype, the finite
    check, the caller's axis order). Seconds, in that order; the time the caller spends
    between progress steps counts in *network*."""

    def __init__(self, started: float):
        self.mark = started
        self.stages = {}

    def stage(self, name: str) -> None:
        now = time.perf_counter()
        self.stages[name] = now - self.mark
        self.mark = now


def pick_model(model, channels: int, axes: str, dtype, axes_given: bool) -> tuple:
    """``(network, why)``: the XYDeblur for ``model`` (a module as it is, a name or path read
    through the cache) and ``info["model_choice"]``; ``None`` is the bundled default for an
    image of ``channels`` channels (:func:`~napari_deblur.models.registry.default_preset`)."""
    model_choice = GIVEN
    if model is None:
        choice = default_preset(channels, axes, dtype, axes_given=axes_given)
        model = bundled_name(choice.preset)
        model_choice = choice.describe(model)
    net = model if isinstance(model, XYDeblur) else load_cached(model, warn=model_choice == GIVEN)
    return net, model_choice


class NetworkView:
    """The image as the network sees it (``model_input``, a :class:`~.model_input.ModelInput`),
    its padding to the network's grid and whether its frames can run on the device end to end."""

    def __init__(self, bcyx, layout, dtype, net, normalize):
        self.model_input = ModelInput.fit(bcyx, layout, dtype, net.channels, normalize)
        self.bcyx, self.layout = bcyx, layout
        h, w = bcyx.shape[-2:]
        self.pad = (-h % ALIGN, -w % ALIGN)  # padded by reflection to multiples of 4
        self.padded = (h + self.pad[0], w + self.pad[1])
        nan = self.model_input.nan
        self.on_device = frames_fit(dtype, layout.rgba, self.model_input.colour, net.channels) and (
            nan is None or not nan.any()
        )
        self.swap = getattr(net, "weights_info", {}).get("horizontal_branch", "first") == "second"
        self._items = None

    def items(self) -> np.ndarray:
        """Model-shaped items (items, mc or 1, H, W) in [0, 1] units, padded; made once."""
        if self._items is None:
            items = self.model_input.items()
            ph, pw = self.pad
            if ph or pw:
                items = np.pad(items, ((0, 0), (0, 0), (0, ph), (0, pw)), mode="reflect")
            self._items = items
        return self._items


@dataclass
class NetworkRun:
    """What :func:`_run_network` did: ``path`` "frames" (``outputs``: restored, r_hor, r_ver
    in input units) or "tiles" (``outputs``: the residuals in [0, 1] units, padded), the
    tile and batch that fitted, and whether ``torch.compile`` ran."""

    path: str
    outputs: tuple
    tile: int
    batch: int
    compile_status: str


def _run_network(net, view: NetworkView, dev, dtype, tile, overlap, batch, compile_, frames_dtype, residual_dtype):
    """The network over the whole image, yielding :class:`Progress`: one frame per pass on the
    device when a frame fits a tile, else blended tiles; out of memory, again with half the
    batch or tile (:func:`~.runtime.retry_out_of_memory_iter`). Returns a :class:`NetworkRun`."""
    scaling = view.model_input.scaling
    tile_side, per_batch = plan_memory(net, dev, dtype, *view.padded, tile, batch)
    work = runtime.device_copy(net, dev, dtype, compile=compile_)
    fn = runtime.network_fn(work, dev, dtype, view.model_input.replicate_to, view.swap)

    def attempt(per_batch, tile_side):
        if view.on_device and max(view.padded) <= tile_side:  # one tile per frame: on the device end to end
            outputs = yield from _progress(
                frames_apply_iter(
                    fn,
                    view.bcyx,
                    scaling.offset,
                    scaling.scale,
                    pad=view.pad,
                    batch=per_batch,
                    device=dev,
                    out_dtype=frames_dtype,
                    residual_dtype=residual_dtype,
                ),
                "frames",
            )
            return "frames", outputs
        outputs = yield from _progress(tile_apply_iter(fn, view.items(), tile_side, overlap, per_batch))
        return "tiles", outputs

    def notice(per_batch, tile_side):
        return Progress(0, 1, f"out of memory: retrying with tile {tile_side}, batch {per_batch}")

    try:
        (path, outputs), per_batch, tile_side = yield from retry_out_of_memory_iter(
            attempt,
            per_batch,
            tile_side,
            min_tile=MIN_TILE * 2,
            halve_tile=lambda side: round_tile(side // 2),
            device=dev,
            notice=notice,
        )
    finally:
        status = work.status if isinstance(work, CompiledResiduals) else "eager"
        work = fn = None
        runtime.release_device_cache(dev, RELEASE_SHARE)
    return NetworkRun(path, outputs, tile_side, per_batch, status)


def _run_info(dev, dtype, run: NetworkRun, overlap: int, view: NetworkView) -> dict:
    """The ``info`` entries that say where and how the network ran."""
    return {
        "device": str(dev),
        "device_info": describe(dev),
        "precision": precision_name(dtype),
        "decoder_form": decoder_form(dev),
        "compile": run.compile_status,
        "path": run.path,  # "frames": on the device from end to end; "tiles": tiled, blended on the host
        "tile": run.tile,
        "overlap": overlap,
        "batch": run.batch,
        "normalize": view.model_input.scaling.mode,
        "channel_mode": view.model_input.channel_mode,
    }


def _assemble_tiles(residuals, bcyx, view: NetworkView, dtype, out_dtype) -> tuple:
    """``(restored, r_hor, r_ver)`` from the tiles path's [0, 1]-unit residuals: cut to the
    image, in input units (zero where the input was NaN, zero alpha), added to the input."""
    n, _, h, w = bcyx.shape
    source = view.model_input
    compute, scaling, nan = source.compute, source.scaling, source.nan

    def to_units(r):  # in place where it can: r is this call's own buffer
        r = r[:, :, :h, :w].reshape(n, source.colour, h, w).astype(compute, copy=False)
        r *= scaling.scale.reshape(1, -1, 1, 1).astype(compute)
        if nan is not None:
            r[nan] = 0
        if view.layout.rgba:
            r = np.concatenate([r, np.zeros_like(r[:, :1])], axis=1)
        return r

    r_hor, r_ver = (to_units(r) for r in residuals)
    if out_dtype == "same" and dtype.kind in "ui" and dtype.itemsize == 8:
        restored = add_rounded(bcyx, r_hor + r_ver)  # float64 would lose the last digits
    else:
        restored = bcyx.astype(compute)  # a copy: the caller's array is never written to
        restored += r_hor
        restored += r_ver
        restored = cast_like(restored, dtype) if out_dtype == "same" else restored.astype(np.float32, copy=False)
    return restored, r_hor, r_ver


def _progress(tiles, unit: str = "tiles"):
    """Turn tile_apply_iter's (done, total) into Progress and pass its return value on."""
    while True:
        try:
            done, total = next(tiles)
        except StopIteration as stop:
            return stop.value
        yield Progress(done, total, f"{done}/{total} {unit}")


def xydeblur(image, model=None, **kwargs) -> XYDeblurResult:
    """Restore ``image``; the arguments are those of :func:`xydeblur_iter`."""
    return run_to_end(xydeblur_iter(image, model, **kwargs))
