"""What the engines share to run a network on a device.

* the model cache: :func:`load_cached` reads a bundled model or weights file once per file
  version, for both architectures;
* device copies: :func:`device_copy` makes the copy a run uses (the caller's module is never
  changed), keeps the engine's XYDeblur copies for the next call and drops them with
  :func:`release_prepared`;
* the network as the XYDeblur engine calls it: :func:`network_fn`;
* device memory and time: :func:`release_device_cache` and :func:`synchronize`;
* running out of device memory: :func:`retry_out_of_memory` (and its generator form) runs a
  pass again with half the batch, or half the tile, until it fits.

torch and numpy only.
"""

import copy
import functools
import os
import weakref
from collections.abc import Callable, Generator

import torch

from ..models.registry import XYDEBLUR, is_bundled_name, warn_if_shadowed, weights_key
from ..models.twin import TwinDecoderXYDeblur
from ..models.weights import WeightsError, load_weights, model_manifest
from ..models.xydeblur import XYDeblur
from .compiled import CompiledResiduals
from .device import is_out_of_memory

# How the two decoder branches run on each device type: "two-pass" (XYDeblur as it is:
# the decoder twice, the second time on rotated features) or one pass for both,
# "twin-grouped" / "twin-dense" (models/twin.py). Measured by tools/xydeblur_variants.py;
# the environment variable NAPARI_DEBLUR_DECODER overrides it.
DECODER_FORMS = ("two-pass", "twin-grouped", "twin-dense")
# The default per device type is the form that tool found fastest there: on CUDA one dense
# pass for both branches beats running the decoder twice; on the CPU the two-pass form is
# fastest, and MPS keeps it (benchmarks/xydeblur-variants-*).
DEFAULT_DECODER_FORM = {"cpu": "two-pass", "cuda": "twin-dense", "mps": "two-pass"}
# Memory layout of the networks and their inputs per device type: channels_last (NHWC) lets
# cuDNN and, on the CPU, oneDNN pick their fastest convolutions; the outputs match NCHW to
# float rounding (`napari-deblur bench --cpu-variants` measures both on the CPU).
CHANNELS_LAST = {"cpu": True, "cuda": True, "mps": False}
RELEASE_SHARE = 0.25  # after a run, cached CUDA blocks above this share of the device go back
CACHED_MODELS = 8  # models read from files, kept by load_cached
DEVICE_COPIES = 2  # engine copies of XYDeblur modules kept by device_copy


def decoder_form(device: torch.device) -> str:
    """Which of :data:`DECODER_FORMS` the engine runs on ``device``."""
    form = os.environ.get("NAPARI_DEBLUR_DECODER") or DEFAULT_DECODER_FORM.get(device.type, "two-pass")
    if form not in DECODER_FORMS:
        raise ValueError(f"NAPARI_DEBLUR_DECODER must be one of {', '.join(DECODER_FORMS)}, got {form!r}")
    return form


def channels_last(device: torch.device) -> bool:
    """Whether the engine runs networks on ``device`` in channels_last; the environment
    variable NAPARI_DEBLUR_CHANNELS_LAST (0 or 1) overrides :data:`CHANNELS_LAST`."""
    value = os.environ.get("NAPARI_DEBLUR_CHANNELS_LAST")
    if value is None or value == "":
        return CHANNELS_LAST.get(device.type, False)
    if value not in ("0", "1"):
        raise ValueError(f"NAPARI_DEBLUR_CHANNELS_LAST must be 0 or 1, got {value!r}")
    return value == "1"


# ---------------------------------------------------------------- the model cache


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


@functools.lru_cache(maxsize=CACHED_MODELS)
def _read_once(key: str, version: str, architecture: str):
    return load_weights(key, architecture, warn=False)


def load_cached(name_or_path, architecture: str = XYDEBLUR, *, warn: bool = True):
    """A model of ``architecture`` (``"XYDeblur"`` or ``"ResidualDenoiser"``) from a bundled
    name or weights path (names and paths as :func:`~napari_deblur.models.weights.resolve_weights`
    reads them), read once per file version, so a batch of files or chunks does not reload
    it; ``warn``: warn when a bundled name is also a file here."""
    key = weights_key(name_or_path)
    if warn and is_bundled_name(key):
        warn_if_shadowed(key)
    return _read_once(key, weights_version(key), architecture)


# ---------------------------------------------------------------- device copies


_COPIES: list = []  # [(weakref to the caller's model, its version, device, dtype, copy)], newest last


def _module_version(model) -> tuple:
    """Changes whenever a parameter or buffer of ``model`` is modified in place (or replaced).

    It reads each tensor's ``_version``, the counter autograd increments on every in-place
    change. PyTorch offers no public equivalent; hashing the values instead would cost a pass
    over all weights on every call.
    """
    return tuple((id(t), t._version) for t in (*model.parameters(), *model.buffers()))


def device_copy(
    model, device: torch.device, dtype: torch.dtype = torch.float32, *, reference: bool = False, compile: bool = False
):  # noqa: A002 (torch's word)
    """A copy of ``model`` for inference on ``device`` in ``dtype``, in eval mode; the
    caller's module is left as it is.

    An :class:`~napari_deblur.models.xydeblur.XYDeblur` becomes what the engine runs: the
    :func:`decoder_form` of that device, in the :func:`channels_last` layout of that device
    (on CUDA with cuDNN picking the fastest convolution per shape), and with ``compile`` its
    forward through ``torch.compile``
    (:class:`~.compiled.CompiledResiduals`). That copy is kept for the next call with the
    same model, device, precision and form (a per-frame or per-chunk caller would otherwise
    copy and upload the weights every time); editing the caller's weights in place makes a
    new copy. With ``reference`` it is the network as the official code runs it instead:
    the two-pass decoder, NCHW, eager, not kept.

    Any other module (the diffusion denoiser) is deep-copied, in the device's
    :func:`channels_last` layout unless ``reference``.
    """
    if not isinstance(model, XYDeblur):
        work = copy.deepcopy(model).eval().requires_grad_(False).to(device=device, dtype=dtype)
        if channels_last(device) and not reference:
            work = work.to(memory_format=torch.channels_last)
        return work
    if reference:
        work = XYDeblur(**model.config)
        work.load_state_dict(model.state_dict())
        return work.eval().to(device=device, dtype=dtype)
    form = decoder_form(device)
    version = (_module_version(model), form, bool(compile), channels_last(device))
    for ref, seen, dev, dt, work in _COPIES:
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
    if channels_last(device):
        work = work.to(memory_format=torch.channels_last)
    if compile:
        work = CompiledResiduals(work)
    _COPIES.append((weakref.ref(model), version, device, dtype, work))
    del _COPIES[:-DEVICE_COPIES]
    return work


def cached_device_copies() -> list:
    """The engine copies :func:`device_copy` keeps now, oldest first."""
    return [entry[-1] for entry in _COPIES]


def release_prepared() -> None:
    """Forget the kept device copies of models (frees their device memory)."""
    _COPIES.clear()


# ---------------------------------------------------------------- the network


def network_fn(model, device: torch.device, dtype: torch.dtype, replicate_to: int, swap: bool):
    """The XYDeblur engine's network call for a device copy ``model``: (n, c, h, w) float32 in
    [0, 1] units -> (r_hor, r_ver) float32. Numpy in, numpy out (uploaded and brought back),
    or a tensor on the device in, tensors on the device out. ``replicate_to``: the channels a
    gray item is repeated to (0: none; the outputs are averaged back); ``swap``: the second
    branch learned horizontal blur.

    The engine looks this function up in this module at each call, so a tool that measures
    the engine's own work can stand a stub in for the network here.
    """

    layout_nhwc = channels_last(device)

    def forward(x: torch.Tensor):
        x = x.to(dtype)
        if replicate_to:
            x = x.expand(-1, replicate_to, -1, -1)
        if layout_nhwc:
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


# ---------------------------------------------------------------- device memory and time


def release_device_cache(device: torch.device, share: float | None = None) -> None:
    """Give PyTorch's cached blocks on ``device`` back to the driver (nothing to do on the CPU).

    With ``share`` (after a run: :data:`RELEASE_SHARE`), CUDA's cache goes back only when it
    holds more than that share of the device, so a large run does not keep its memory from
    other programs while smaller caches stay and the next call skips allocating them again.
    On MPS, whose memory is the system's, the cache always goes back.
    """
    if device.type == "cuda":
        if share is not None:
            total = torch.cuda.get_device_properties(device).total_memory
            if torch.cuda.memory_reserved(device) <= share * total:
                return
        torch.cuda.empty_cache()
    elif device.type == "mps":
        torch.mps.empty_cache()


def synchronize(device: torch.device) -> None:
    """Wait for the work queued on ``device`` (for timing; nothing to do on the CPU)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


# ---------------------------------------------------------------- running out of memory


def retry_out_of_memory_iter(
    attempt: Callable[[int, int], Generator],
    batch: int,
    tile: int,
    *,
    min_tile: int,
    halve_tile: Callable[[int], int],
    device: torch.device,
    notice: Callable[[int, int], object] | None = None,
) -> Generator:
    """Run the generator ``attempt(batch, tile)`` to its end, passing on what it yields, and
    return ``(its return value, batch, tile)`` with the batch and tile that fitted.

    When it fails for lack of memory (:func:`~.device.is_out_of_memory`), the device's cached
    blocks go back (:func:`release_device_cache`), the batch is halved, or at a batch of 1
    the tile (``halve_tile(tile)``), ``notice(batch, tile)`` is yielded when given, and the
    attempt starts again. Any other error, and running out of memory at a batch of 1 with a
    tile of at most ``min_tile``, is raised.
    """
    while True:
        try:
            value = yield from attempt(batch, tile)
            return value, batch, tile
        except Exception as err:
            if not is_out_of_memory(err) or (batch == 1 and tile <= min_tile):
                raise
            release_device_cache(device)
            if batch > 1:
                batch //= 2
            else:
                tile = halve_tile(tile)
            if notice is not None:
                yield notice(batch, tile)


def retry_out_of_memory(
    attempt: Callable[[int, int], object],
    batch: int,
    tile: int,
    *,
    min_tile: int,
    halve_tile: Callable[[int], int],
    device: torch.device,
) -> tuple:
    """:func:`retry_out_of_memory_iter` for a plain function ``attempt(batch, tile)``:
    ``(its value, batch, tile)``."""

    def as_generator(b, t):
        yield from ()
        return attempt(b, t)

    return run_to_end(
        retry_out_of_memory_iter(as_generator, batch, tile, min_tile=min_tile, halve_tile=halve_tile, device=device)
    )


def run_to_end(generator):
    """Exhaust a progress generator and return its return value."""
    while True:
        try:
            next(generator)
        except StopIteration as stop:
            return stop.value
