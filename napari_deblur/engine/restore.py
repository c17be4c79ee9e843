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

import functools
import os
import time
from collections.abc import Generator
from dataclasses import dataclass, field

import numpy as np
import torch

from ..models.loading import (
    WeightsError,
    is_bundled_name,
    load_model,
    model_manifest,
    warn_if_shadowed,
    weights_key,
)
from ..models.twin import TwinDecoderXYDeblur
from ..models.xydeblur import XYDeblur
from .axes import from_bcyx, normalize_axes, to_bcyx
from .compiled import CompiledResiduals
from .device import describe, free_memory, is_out_of_memory, pick_device, pick_dtype, precision_name
from .frames import frames_apply_iter, frames_fit
from .intensity import add_rounded, cast_like, fit_scaling, work_dtype
from .model_choice import default_preset
from .options import MIN_TILE, check_parameters
from .tiling import ALIGN, round_tile, tile_apply_iter

# Finite float values beyond this magnitude are refused: scaled, restored and returned as float32
# residuals they would overflow (float32 ends at 3.4e38) and come back as NaN.
MAX_MAGNITUDE = 1e30
CPU_TILE_CAP = 1024
# A frame up to this side, with the memory for it, goes through the network in one piece (the
# frames path). At 2048 a 4096x4096 frame was tiled: the H200 whole call took 4.1 s, nearly all
# of it host blending, for a network time of 0.26 s and 12.6 GB peak (benchmarks/performance-cuda.md).
GPU_TILE_CAP = 4096
GIVEN = "given by the caller"  # info["model_choice"] when the caller named the model
DEFAULT_OVERLAP = 96  # with the zero margin of ramp_window: seams below 1.1e-3 (tools/seam_check.py)
MAX_BATCH = 16
# How the two decoder branches run on each device type: "two-pass" (XYDeblur as it is:
# the decoder twice, the second time on rotated features) or one pass for both,
# "twin-grouped" / "twin-dense" (models/twin.py). Measured by tools/xydeblur_variants.py;
# the environment variable NAPARI_DEBLUR_DECODER overrides it.
DECODER_FORMS = ("two-pass", "twin-grouped", "twin-dense")
# On the H200, twin-dense ran 15.1 ms at 720p and 65.4 ms at 2048x2048 against 16.7 and 73.8
# for two-pass (benchmarks/xydeblur-variants-cuda.md); on 2 CPU cores two-pass is fastest
# (benchmarks/xydeblur-variants-cpu.json).
DEFAULT_DECODER_FORM = {"cpu": "two-pass", "cuda": "twin-dense", "mps": "two-pass"}


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
    ``r_hor`` and ``r_ver`` are float32 residuals in input units, same shape."""

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


def _network_fn(model, device, dtype, replicate_to, swap):
    """(n, c, h, w) float32 in [0, 1] units -> (r_hor, r_ver) float32: numpy in, numpy out
    (uploaded and brought back), or a tensor on the device in, tensors on the device out."""

    def forward(x: torch.Tensor):
        x = x.to(dtype)
        if replicate_to:
            x = x.expand(-1, replicate_to, -1, -1)
        if device.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with torch.inference_mode():
            r1, r2 = model.residuals(x)
        if replicate_to:
            r1, r2 = r1.mean(1, keepdim=True), r2.mean(1, keepdim=True)
        return (r2.float(), r1.float()) if swap else (r1.float(), r2.float())

    def fn(batch):
        if isinstance(batch, torch.Tensor):
            return forward(batch)
        x = torch.from_numpy(batch)
        if device.type == "cuda":  # page-locked: the copy runs asynchronously, overlapping the launch
            x = x.pin_memory()
        r1, r2 = forward(x.to(device=device, non_blocking=True))
        return r1.cpu().numpy(), r2.cpu().numpy()

    return fn


_PREPARED: list = []  # [(weakref to the caller's model, its weights' versions, device, dtype, copy)], newest last
_PREPARED_MAX = 2


def _weights_version(model) -> tuple:
    """Changes whenever a parameter or buffer of ``model`` is modified in place (or replaced)."""
    return tuple((id(t), t._version) for t in (*model.parameters(), *model.buffers()))


def decoder_form(device: torch.device) -> str:
    """Which of :data:`DECODER_FORMS` the engine runs on ``device``."""
    form = os.environ.get("NAPARI_DEBLUR_DECODER") or DEFAULT_DECODER_FORM.get(device.type, "two-pass")
    if form not in DECODER_FORMS:
        raise ValueError(f"NAPARI_DEBLUR_DECODER must be one of {', '.join(DECODER_FORMS)}, got {form!r}")
    return form


def _prepare_model(model, device, dtype, compile_: bool = False):
    """A private copy on the device (the caller's module is left as it is), in the
    :func:`decoder_form` of that device; with ``compile_`` its forward goes through
    ``torch.compile`` (:class:`~.compiled.CompiledResiduals`).

    The copy is kept for the next call with the same model, device and precision (a
    per-frame or per-chunk caller would otherwise copy and upload the weights every
    time); editing the caller's weights in place makes a new copy. On CUDA it is in
    channels_last and cuDNN picks the fastest convolution per shape.
    """
    import weakref

    form = decoder_form(device)
    version = (_weights_version(model), form, bool(compile_))
    for ref, seen, dev, dt, work in _PREPARED:
        if ref() is model and seen == version and dev == device and dt == dtype:
            return work
    work = XYDeblur(**model.config)
    work.load_state_dict(model.state_dict())
    if form != "two-pass":
        work = TwinDecoderXYDeblur(work, form.split("-", 1)[1])
    work.eval().requires_grad_(False)
    work = work.to(device=device, dtype=dtype)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        work = work.to(memory_format=torch.channels_last)
    if compile_:
        work = CompiledResiduals(work)
    _PREPARED.append((weakref.ref(model), version, device, dtype, work))
    del _PREPARED[:-_PREPARED_MAX]
    return work


def release_cached_memory(device: torch.device, share: float = 0.25) -> None:
    """After a run: give PyTorch's cached CUDA blocks back to the driver when they hold more
    than ``share`` of the device (so a large run does not keep its memory from other
    programs); smaller caches stay, and the next call skips allocating them again. On MPS,
    whose memory is the system's, the cache is always given back."""
    if device.type == "cuda":
        total = torch.cuda.get_device_properties(device).total_memory
        if torch.cuda.memory_reserved(device) > share * total:
            torch.cuda.empty_cache()
    elif device.type == "mps":
        torch.mps.empty_cache()


def release_prepared() -> None:
    """Forget the device copies of models (frees their device memory)."""
    _PREPARED.clear()


def weights_version(name_or_path) -> str:
    """What identifies the weights behind a path or bundled name, for the cache: a file's
    modification time, a bundled model's resources folder and checksum."""
    if not is_bundled_name(name_or_path):
        try:
            return str(os.stat(name_or_path).st_mtime_ns)
        except (OSError, TypeError, ValueError):
            pass
    try:
        sha = model_manifest(str(name_or_path)).get("sha256", "")
    except WeightsError:
        sha = ""  # not bundled: the loader says so
    return f"{os.environ.get('NAPARI_DEBLUR_RESOURCES', '')}:{sha}"


@functools.lru_cache(maxsize=4)
def _load_cached(key: str, version: str) -> XYDeblur:
    """Weights read once per file version: a batch of files does not reload them."""
    return load_model(key, warn=False)


def load_cached(name_or_path, warn: bool = True) -> XYDeblur:
    """An XYDeblur from a bundled name or weights path (names and paths as
    :func:`~napari_deblur.models.loading.resolve_weights` reads them), read once per file
    version; ``warn``: warn when a bundled name is also a file here."""
    key = weights_key(name_or_path)
    if warn and is_bundled_name(key):
        warn_if_shadowed(key)
    return _load_cached(key, weights_version(key))


def default_model_name(channels: int, axes=None, dtype=None, *, axes_given: bool = False) -> str:
    """The bundled XYDeblur for an image (the policy of :func:`.model_choice.default_preset`)."""
    return f"xydeblur-{default_preset(channels, axes, dtype, axes_given=axes_given).preset}"


def model_items(bcyx, layout, dtype, mc: int, normalize, verb: str = "restore"):
    """The image as the network sees it, shared by XYDeblur and the diffusion refinement.

    Returns ``(colour, replicate_to, compute, nan, scaling, items)``: the colour channel
    count (RGBA's alpha left out), 3 when a 3-channel model sees replicated gray (else 0),
    the float dtype of the arithmetic, the NaN mask (or None), the intensity scaling, and
    the items (B, mc, H, W) for a joint model or (B*C, 1, H, W) per channel, in [0, 1] units
    with NaN filled. The values are a copy: the caller's array is never touched.
    """
    colour, replicate_to, compute, values, nan, scaling = model_scaling(bcyx, layout, dtype, mc, normalize, verb)
    return colour, replicate_to, compute, nan, scaling, unit_items(values, nan, scaling, mc)


def unit_items(values, nan, scaling, mc: int) -> np.ndarray:
    """:func:`model_items`' items from :func:`model_scaling`'s values (a new array)."""
    n, colour, h, w = values.shape
    unit = scaling.to_unit(values)
    if nan is not None and nan.any():
        unit[nan] = np.nanmedian(unit)
    return unit if mc == colour else unit.reshape(n * colour, 1, h, w)


def model_scaling(bcyx, layout, dtype, mc: int, normalize, verb: str = "restore"):
    """``(colour, replicate_to, compute, values, nan, scaling)`` (see :func:`model_items`);
    ``values`` are the colour channels in input units (a view for integers, a float copy
    for floats)."""
    n, c, h, w = bcyx.shape
    colour = c - 1 if layout.rgba else c
    if mc == colour:
        replicate_to = 0
    elif mc in (1, 3):
        replicate_to = 3 if mc == 3 else 0
    else:
        raise ValueError(f"a {mc}-channel model cannot {verb} an image with {colour} colour channels")
    compute = work_dtype(dtype)
    floating = np.dtype(dtype).kind == "f"
    values = bcyx[:, :colour].astype(compute) if floating else bcyx[:, :colour]  # to_unit copies integers
    nan = np.isnan(values) if floating else None
    scaling = fit_scaling(values, dtype, normalize, per_channel=(mc != colour))
    return colour, replicate_to, compute, values, nan, scaling


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
    compile=False,  # noqa: A002 (the name users know from torch)
) -> Generator[Progress, None, XYDeblurResult]:
    """Restore ``image`` with XYDeblur, yielding progress; returns an :class:`XYDeblurResult`.

    Args:
        image: array-like, uint8/uint16/int/float32/float64, 2D or a stack.
        model: a bundled name, a weights path, or an :class:`XYDeblur`; ``None``
            picks ``xydeblur-photo`` for RGB(A) photographs and ``xydeblur-microscopy``
            (per channel) otherwise, e.g. for ``CYX`` or uint16 data; see
            :mod:`napari_deblur.engine.model_choice`. ``info["model_choice"]`` says which and why.
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
    tile, overlap, batch, normalize = check_parameters(tile, overlap, batch, normalize)
    dev = pick_device(device)
    dtype = pick_dtype(precision, dev)
    bcyx, layout = to_bcyx(array, axes)
    n, c, h, w = bcyx.shape
    if h < 4 or w < 4:
        raise ValueError(f"the image is too small to deblur: {h}x{w} pixels in Y and X (at least 4x4)")

    model_choice = GIVEN
    if model is None:
        choice = default_preset(c, axes, array.dtype, axes_given=axes_given)
        model = f"xydeblur-{choice.preset}"
        model_choice = choice.describe(model)
    net = model if isinstance(model, XYDeblur) else load_cached(model, warn=model_choice == GIVEN)
    swap = getattr(net, "weights_info", {}).get("horizontal_branch", "first") == "second"
    mc = net.channels
    colour, replicate_to, compute, values, nan, scaling = model_scaling(bcyx, layout, array.dtype, mc, normalize)
    ph, pw = -h % ALIGN, -w % ALIGN  # padded by reflection to multiples of 4
    on_device = frames_fit(array.dtype, layout.rgba, colour, mc) and (nan is None or not nan.any())
    items = None

    tile_side, per_batch = plan_memory(net, dev, dtype, h + ph, w + pw, tile, batch)
    work = _prepare_model(net, dev, dtype, compile)
    fn = _network_fn(work, dev, dtype, replicate_to, swap)
    try:
        while True:
            try:
                path = "frames" if on_device and max(h + ph, w + pw) <= tile_side else "tiles"
                if path == "frames":  # one tile per frame: restored on the device from end to end
                    frames_out = yield from _progress(frames_apply_iter(
                        fn, bcyx, scaling.offset, scaling.scale, pad=(ph, pw), batch=per_batch, device=dev,
                        out_dtype=array.dtype if out_dtype == "same" else np.float32), "frames")
                    break
                if items is None:  # model-shaped: (items, mc or 1, H, W) in [0, 1] units
                    items = unit_items(values, nan, scaling, mc)
                    if ph or pw:
                        items = np.pad(items, ((0, 0), (0, 0), (0, ph), (0, pw)), mode="reflect")
                r_hor, r_ver = yield from _progress(tile_apply_iter(fn, items, tile_side, overlap, per_batch))
                break
            except Exception as err:
                if not is_out_of_memory(err) or (per_batch == 1 and tile_side <= MIN_TILE * 2):
                    raise
                if dev.type == "cuda":
                    torch.cuda.empty_cache()
                if per_batch > 1:
                    per_batch //= 2
                else:
                    tile_side = round_tile(tile_side // 2)
                yield Progress(0, 1, f"out of memory: retrying with tile {tile_side}, batch {per_batch}")
    finally:
        work_status = work.status if isinstance(work, CompiledResiduals) else "eager"
        del work, fn
        release_cached_memory(dev)

    def to_units(r):  # in place where it can: r is this call's own buffer
        r = r[:, :, :h, :w].reshape(n, colour, h, w).astype(compute, copy=False)
        r *= scaling.scale.reshape(1, -1, 1, 1).astype(compute)
        if nan is not None:
            r[nan] = 0
        if layout.rgba:
            r = np.concatenate([r, np.zeros_like(r[:, :1])], axis=1)
        return r

    if path == "frames":
        restored, r_hor, r_ver = frames_out
    else:
        r_hor, r_ver = to_units(r_hor), to_units(r_ver)
        if out_dtype == "same" and array.dtype.kind in "ui" and array.dtype.itemsize == 8:
            restored = add_rounded(bcyx, r_hor + r_ver)  # float64 would lose the last digits
        else:
            restored = bcyx.astype(compute)  # a copy: the caller's array is never written to
            restored += r_hor
            restored += r_ver
            same = out_dtype == "same"
            restored = cast_like(restored, array.dtype) if same else restored.astype(np.float32, copy=False)
    r_hor, r_ver = r_hor.astype(np.float32, copy=False), r_ver.astype(np.float32, copy=False)
    model_name = net.weights_info["name"] if hasattr(net, "weights_info") else "XYDeblur"
    check_finite_output((r_hor, r_ver), model_name, precision_name(dtype))
    info = {
        "model": model_name,
        "model_choice": model_choice,  # why this model: the default policy's reason, or the caller's
        "device": str(dev),
        "device_info": describe(dev),
        "precision": precision_name(dtype),
        "decoder_form": decoder_form(dev),
        "compile": work_status,
        "path": path,  # "frames": on the device from end to end; "tiles": tiled, blended on the host
        "tile": tile_side,
        "overlap": overlap,
        "batch": per_batch,
        "normalize": scaling.mode,
        "channel_mode": "joint" if mc == colour else ("replicated" if replicate_to else "per-channel"),
        "seconds": time.perf_counter() - started,
    }
    return XYDeblurResult(
        restored=from_bcyx(restored, layout),
        r_hor=from_bcyx(r_hor, layout),
        r_ver=from_bcyx(r_ver, layout),
        axes=axes,
        info=info,
    )


def _progress(tiles, unit: str = "tiles"):
    """Turn tile_apply_iter's (done, total) into Progress and pass its return value on."""
    while True:
        try:
            done, total = next(tiles)
        except StopIteration as stop:
            return stop.value
        yield Progress(done, total, f"{done}/{total} {unit}")


def run_to_end(generator):
    """Exhaust a progress generator and return its return value."""
    while True:
        try:
            next(generator)
        except StopIteration as stop:
            return stop.value


def xydeblur(image, model=None, **kwargs) -> XYDeblurResult:
    """Restore ``image``; the arguments are those of :func:`xydeblur_iter`."""
    return run_to_end(xydeblur_iter(image, model, **kwargs))
