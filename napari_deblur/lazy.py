"""Lazy, larger-than-memory XYDeblur with dask: nothing is restored until it is computed.

:func:`xydeblur_lazy` takes a dask array (or any array-like, wrapped one plane per
chunk) and returns a dask array of the same shape whose chunks are restored by the
engine (:func:`napari_deblur.engine.restore.xydeblur`) only when they are computed, by
``.compute()``, by ``dask.array.store`` into a file, or by napari drawing the plane on
screen. numpy, torch and dask only: no napari, no Qt.

Chunks. The channel axis (``C``) is always kept whole in a chunk (an RGB model sees
the colours jointly); every batch axis (``T``, ``Z``, ...) is cut to one plane per
chunk, so showing a plane restores that plane only. When ``Y`` or ``X`` is split into
several chunks, each block is restored with a ``halo`` of neighbouring pixels on each
side that has a neighbour (:func:`dask.array.map_overlap`; nothing is added at the
image border, where the network pads as it does for the whole image) and the halo is
cut off again. Y/X chunk boundaries are moved to multiples of 4 (the network's grid) if
they are not. The default halo, ``"auto"``, is the network's receptive field
(:meth:`~napari_deblur.models.xydeblur.XYDeblur.receptive_radius`, 180 pixels for the
official architecture), so every pixel sees all the context it would see in the whole
image and the result equals the in-memory one (to float rounding, as long as the engine
does not tile inside a block either: ``tile`` at least the block plus its halo). A
smaller ``halo`` trades that exactness for speed.

Intensity scaling. The network wants [0, 1]; every chunk must use the *same* map,
or planes would come out with different contrast. The map is fitted once, when the
lazy array is built, by :func:`lazy_scaling`:

- ``normalize="dtype"`` (or ``"auto"`` on uint8, or on floats whose sampled values lie
  in [0, 1]) needs no data at all;
- ``"percentile"``, ``(lo, hi)`` or ``"auto"`` on other dtypes reads ``sample_planes``
  planes spread evenly over the stack (the input only, no network) and takes the
  percentiles of those;
- ``scaling=`` an already fitted :class:`~napari_deblur.engine.intensity.Scaling`
  skips fitting.

A lazily restored plane equals ``xydeblur(plane, normalize=<the same Scaling>)``
(and, with ``normalize="dtype"``, ``xydeblur(plane, normalize="dtype")``), which is
also what the in-memory run on the whole stack gives for that plane with that scaling.
With percentiles the in-memory run fits them on the whole stack instead of a sample, so
pass ``scaling=lazy_scaling(...)`` to both when you need them identical.

The model. A bundled name or weights path is loaded once per process (the engine's
cache); an :class:`~napari_deblur.models.xydeblur.XYDeblur` instance is referenced,
not copied into every task, and is rebuilt at most once per process when a
multi-process scheduler unpickles it.
"""

import threading
import uuid

import numpy as np

from .engine.axes import normalize_axes, to_bcyx
from .engine.intensity import Scaling, check_normalize, fit_scaling

OUTPUTS = ("restored", "r_hor", "r_ver")
DEFAULT_HALO = "auto"
DEFAULT_SAMPLE_PLANES = 5


class ModelRef:
    """A picklable handle on a model, resolved to the model once per process.

    Holds a bundled name or a weights path (loaded through the engine's cache), or an
    XYDeblur instance. Pickling an instance carries its config and weights with a token;
    a process that unpickles the same token twice builds the model once.
    """

    _instances: dict = {}
    _lock = threading.Lock()

    def __init__(self, model):
        from .models.xydeblur import XYDeblur

        if isinstance(model, ModelRef):
            model = model.get()
        if isinstance(model, XYDeblur):
            self.key, self._model = None, model
            self.token = uuid.uuid4().hex
            with ModelRef._lock:
                ModelRef._instances[self.token] = model
        else:
            self.key, self._model, self.token = str(model), None, None

    def get(self):
        """The XYDeblur (an instance as given, or the cached load of a name or path)."""
        if self._model is not None:
            return self._model
        from .engine.runtime import load_cached

        return load_cached(self.key)

    @classmethod
    def instances_in_process(cls) -> int:
        """How many XYDeblur instances this process holds for handles (one per token)."""
        with cls._lock:
            return len(cls._instances)

    def __getstate__(self):
        if self._model is None:
            return {"key": self.key}
        model = self._model
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        return {
            "token": self.token,
            "config": dict(model.config),
            "state": state,
            "weights_info": getattr(model, "weights_info", None),
        }

    def __setstate__(self, state):
        self.key, self._model, self.token = state.get("key"), None, state.get("token")
        if self.token is None:
            return
        with ModelRef._lock:
            model = ModelRef._instances.get(self.token)
            if model is None:
                from .models.xydeblur import XYDeblur

                model = XYDeblur(**state["config"])
                model.load_state_dict(state["state"])
                model.eval().requires_grad_(False)
                if state.get("weights_info") is not None:
                    model.weights_info = state["weights_info"]
                ModelRef._instances[self.token] = model
        self._model = model

    def __dask_tokenize__(self):  # what dask hashes for the graph's keys: never the weights
        return ("napari_deblur.lazy.ModelRef", self.key, self.token)

    def __repr__(self):
        return f"ModelRef({self.key!r})" if self.key is not None else f"ModelRef(<XYDeblur {self.token[:8]}>)"


def as_dask(array, axes=None):
    """``array`` as a dask array; anything else is wrapped one plane per chunk (C, Y, X whole)."""
    import dask.array as da

    if isinstance(array, da.Array):
        return array
    axes = normalize_axes(axes, np.shape(array))
    chunks = tuple(-1 if letter in "CYX" else 1 for letter in axes)
    return da.from_array(array, chunks=chunks, asarray=True)


def plane_chunks(array, axes: str):
    """Rechunk: one plane per chunk in every batch axis, the channel axis whole; Y/X kept."""
    chunks = {}
    for i, letter in enumerate(axes):
        if letter == "C":
            chunks[i] = -1
        elif letter not in "YX":
            chunks[i] = 1
    return array.rechunk(chunks)


def _check_dtype(dtype) -> np.dtype:
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        raise TypeError("boolean images cannot be deblurred; convert the mask to uint8 or float first")
    if dtype.kind == "c":
        raise TypeError("complex images are not supported; pass the magnitude or the real part")
    if dtype.kind not in "uif":
        raise TypeError(f"unsupported image dtype {dtype}; use an integer or floating-point array")
    return dtype


def _colour_and_mode(model, array_shape, axes):
    """(colour channels, per_channel) as the engine decides them for this model and image."""
    c = array_shape[axes.index("C")] if "C" in axes else 1
    rgba = "C" in axes and axes[-1] == "C" and array_shape[-1] == 4
    colour = c - 1 if rgba else c
    mc = model.channels
    if mc != colour and mc not in (1, 3):
        raise ValueError(f"a {mc}-channel model cannot restore an image with {colour} colour channels")
    return colour, mc != colour


def sample_indices(n_planes: int, count: int) -> list:
    """``count`` plane numbers spread evenly over ``n_planes`` (all of them when fewer)."""
    if count >= n_planes:
        return list(range(n_planes))
    return sorted({int(round(i)) for i in np.linspace(0, n_planes - 1, max(1, count))})


def lazy_scaling(array, model=None, *, axes=None, normalize="auto", sample_planes=DEFAULT_SAMPLE_PLANES) -> Scaling:
    """The one intensity scaling for a whole (lazy) stack; see the module docstring.

    ``"dtype"`` reads nothing; percentiles (and ``"auto"`` where it may mean them) read
    ``sample_planes`` planes of the input.
    """
    from .models.registry import default_model_name

    normalize = check_normalize(normalize)
    if isinstance(normalize, Scaling):
        return normalize
    array = as_dask(array, axes)
    axes_given, axes = axes is not None, normalize_axes(axes, array.shape)
    dtype = _check_dtype(array.dtype)
    c = array.shape[axes.index("C")] if "C" in axes else 1
    net = ModelRef(model if model is not None else default_model_name(c, axes, dtype, axes_given=axes_given)).get()
    colour, per_channel = _colour_and_mode(net, array.shape, axes)
    if normalize == "dtype" or (normalize == "auto" and dtype == np.uint8):
        return fit_scaling(np.zeros((1, colour, 1, 1), np.float32), dtype, "dtype", per_channel)
    batch = [i for i, letter in enumerate(axes) if letter not in "CYX"]
    batch_shape = tuple(array.shape[i] for i in batch)
    n_planes = int(np.prod(batch_shape, dtype=np.int64))
    planes = []
    for flat in sample_indices(n_planes, sample_planes):
        where = dict(zip(batch, np.unravel_index(flat, batch_shape))) if batch else {}
        index = tuple(int(where[i]) if i in where else slice(None) for i in range(array.ndim))
        plane_axes = "".join(letter for i, letter in enumerate(axes) if i not in where)
        bcyx, _ = to_bcyx(np.asarray(array[index]), plane_axes)
        planes.append(bcyx[:, :colour])
    values = np.concatenate(planes).astype(np.float64 if dtype == np.float64 else np.float32)
    return fit_scaling(values, dtype, normalize, per_channel)


def receptive_halo(model) -> int:
    """The halo that makes blocks exact: the model's receptive radius, rounded up to 4."""
    return -(-int(model.receptive_radius()) // 4) * 4


def aligned_chunks(chunks: tuple, halo: int) -> tuple:
    """Y or X chunks whose boundaries are multiples of 4 (the network's grid) and no
    smaller than ``halo`` (dask borrows a halo from one neighbour only): ``chunks`` if
    they already are, else regular chunks of the first size rounded up."""
    bounds = np.cumsum(chunks)[:-1]
    if all(b % 4 == 0 for b in bounds) and (len(chunks) == 1 or min(chunks) >= halo):
        return tuple(chunks)
    length = int(sum(chunks))
    size = max(halo, 4, -(-int(chunks[0]) // 4) * 4)
    out = [size] * (length // size)
    rest = length - size * len(out)
    if rest and out and rest < halo:
        out[-1] += rest
    elif rest:
        out.append(rest)
    return tuple(out)


def _restore_block(block, *, model_ref, axes, scaling, out, options):
    """One chunk (or one chunk with its halo) through the in-memory engine."""
    from .engine import restore  # looked up per call: tests count restore.xydeblur calls

    result = restore.xydeblur(block, model_ref.get(), axes=axes, normalize=scaling, **options)
    return getattr(result, out)


def xydeblur_lazy(
    array,
    model=None,
    *,
    axes=None,
    device="auto",
    precision="auto",
    tile="auto",
    normalize="auto",
    out="restored",
    scaling=None,
    out_dtype="same",
    residual_dtype="float32",
    halo=DEFAULT_HALO,
    sample_planes=DEFAULT_SAMPLE_PLANES,
    compile=False,  # noqa: A002
):
    """A lazy dask array of ``array`` restored by XYDeblur (``out``: 'restored', 'r_hor', 'r_ver').

    Same shape as ``array``; dtype as the engine's: ``restored`` keeps the input's dtype
    (``out_dtype='float32'`` for floats), the residuals are float32 (or ``residual_dtype``). Arguments as in
    :func:`napari_deblur.engine.restore.xydeblur_iter`, plus ``scaling`` (a fitted
    :class:`~napari_deblur.engine.intensity.Scaling`, overriding ``normalize``), ``halo``
    (pixels of context around a Y/X block, rounded up to a multiple of 4; ``"auto"``: the
    network's receptive field, so blocks equal the in-memory result) and
    ``sample_planes`` (planes read to fit percentile scaling). Nothing is restored here.
    """
    import dask.array as da

    from .engine.device import pick_device
    from .engine.options import check_parameters
    from .engine.restore import check_residual_dtype

    if out not in OUTPUTS:
        raise ValueError(f"out must be one of {OUTPUTS}, got {out!r}")
    if out_dtype not in ("same", "float32"):
        raise ValueError(f"out_dtype must be 'same' or 'float32', got {out_dtype!r}")
    residual_dtype = check_residual_dtype(residual_dtype)
    tile, _, _, normalize = check_parameters(tile, 0, "auto", normalize)  # the engine's own checks, before any work
    pick_device(device)
    data = as_dask(array, axes)
    axes_given, axes = axes is not None, normalize_axes(axes, data.shape)
    dtype = _check_dtype(data.dtype)
    if data.size == 0:
        raise ValueError(f"the image is empty (shape {data.shape})")
    h, w = data.shape[axes.index("Y")], data.shape[axes.index("X")]
    if h < 4 or w < 4:
        raise ValueError(f"the image is too small to deblur: {h}x{w} pixels in Y and X (at least 4x4)")
    from .models.registry import default_model_name

    c = data.shape[axes.index("C")] if "C" in axes else 1
    model_ref = ModelRef(model if model is not None else default_model_name(c, axes, dtype, axes_given=axes_given))
    _colour_and_mode(model_ref.get(), data.shape, axes)  # a model that cannot fit fails now, not per chunk
    if scaling is None:
        scaling = lazy_scaling(data, model_ref, axes=axes, normalize=normalize, sample_planes=sample_planes)
    elif not isinstance(scaling, Scaling):
        raise TypeError(f"scaling must be a napari_deblur.engine.intensity.Scaling, got {type(scaling).__name__}")

    if out == "restored":
        result_dtype = dtype if out_dtype == "same" else np.dtype(np.float32)
    else:
        result_dtype = residual_dtype
    data = plane_chunks(data, axes)
    options = {"device": device, "precision": precision, "tile": tile, "out_dtype": out_dtype, "compile": compile}
    options["residual_dtype"] = residual_dtype.name
    kwargs = {"model_ref": model_ref, "axes": axes, "scaling": scaling, "out": out, "options": options}
    meta = np.empty((0,) * data.ndim, dtype=result_dtype)
    yi, xi = axes.index("Y"), axes.index("X")
    split = len(data.chunks[yi]) > 1 or len(data.chunks[xi]) > 1
    name = f"xydeblur-{out}"
    if not split:
        return da.map_blocks(_restore_block, data, dtype=result_dtype, meta=meta, token=name, **kwargs)
    if halo == "auto":
        halo = receptive_halo(model_ref.get())
    elif isinstance(halo, str) or int(halo) < 0:
        raise ValueError(f"halo must be 'auto' or a number of pixels >= 0, got {halo!r}")
    halo = int(-(-int(halo) // 4) * 4)
    data = data.rechunk({yi: aligned_chunks(data.chunks[yi], halo), xi: aligned_chunks(data.chunks[xi], halo)})
    depth = {i: (halo if i in (yi, xi) else 0) for i in range(data.ndim)}
    boundary = "none"  # at the image border the block is cut as the whole image is: same network padding
    return da.map_overlap(
        _restore_block,
        data,
        depth=depth,
        boundary=boundary,
        trim=True,
        dtype=result_dtype,
        meta=meta,
        token=name,
        **kwargs,
    )
