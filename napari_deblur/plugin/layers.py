"""Output layers: their names, what they inherit from the input, and add-or-replace.

A run on the layer ``cells`` produces ``cells deblurred`` (the restored image, the
input's dtype, RGB stays RGB), ``cells r_hor`` and ``cells r_ver`` (float32 residuals
in the input's units) and, for RGB input, ``cells chroma`` (the per-pixel chroma of
``r_hor + r_ver``). Each copies the input's ``scale``, ``translate``, ``axis_labels``,
``units`` and ``metadata`` (the restored layer also its contrast limits and colormap)
and adds ``metadata['napari_deblur']`` saying what made it. Running again replaces the
layers of the same name instead of piling up new ones. The chroma layer starts hidden.

Residuals are shown with a diverging colormap (``PiYG``: green is positive, pink
negative, white zero) and contrast limits symmetric around zero, shared by ``r_hor``
and ``r_ver`` so the two can be compared by eye. RGB residuals stay RGB layers, with
the same symmetric limits: zero is mid-grey and a colour cast shows as a tint.

The diffusion widget's outputs are named and built the same way: ``cells mean``,
``cells trajectory`` and ``cells samples`` (and the live ``cells x0 estimate`` and
``cells z_t``) are drawn like the input, ``cells std`` is a non-negative map like the
chroma. :func:`output_kwargs` is the one builder of ``add_image`` keyword arguments for
every output; :func:`stacked_kwargs` adapts them to data with one more leading axis.
"""

import copy

import numpy as np

RESIDUAL_COLORMAP = "PiYG"
MAP_COLORMAP = "magma"  # non-negative maps (chroma, std): dark is low, bright high
OUTPUTS = ("restored", "r_hor", "r_ver", "chroma")
_SUFFIX = {
    "restored": "deblurred",
    "r_hor": "r_hor",
    "r_ver": "r_ver",
    "chroma": "chroma",
    "x0": "x0 estimate",
    "z_t": "z_t",
    "mean": "mean",
    "std": "std",
    "trajectory": "trajectory",
    "samples": "samples",
}
# how each kind is drawn: 'input' like the input layer (its contrast limits and colormap),
# 'residual' symmetric around zero, 'map' a non-negative single-channel map
STYLES = {
    "restored": "input",
    "r_hor": "residual",
    "r_ver": "residual",
    "chroma": "map",
    "x0": "input",
    "z_t": "input",
    "mean": "input",
    "std": "map",
    "trajectory": "input",
    "samples": "input",
}
HIDDEN = ("chroma",)  # kinds added hidden
_SAMPLE = 1 << 20  # pixels looked at to choose contrast limits


def output_name(source_name: str, kind: str) -> str:
    """``'<source> deblurred'``, ``'<source> r_hor'``, ``'<source> mean'``, ``'<source> x0 estimate'``, ...
    for an output kind (a key of :data:`STYLES`)."""
    return f"{source_name} {_SUFFIX[kind]}"


def source_properties(layer) -> dict:
    """What the outputs inherit from an input layer (copies, safe to keep after it is gone)."""
    return {
        "scale": tuple(float(s) for s in layer.scale),
        "translate": tuple(float(t) for t in layer.translate),
        "axis_labels": tuple(layer.axis_labels),
        "units": tuple(str(u) for u in layer.units),
        "metadata": copy.deepcopy(dict(layer.metadata)),
        # the restored layer is drawn like the input, so the two compare at a glance
        "contrast_limits": tuple(float(c) for c in layer.contrast_limits),
        "colormap": None if layer.rgb else layer.colormap,
    }


def _sample(values: np.ndarray) -> np.ndarray:
    flat = np.asarray(values).reshape(-1)
    step = max(1, flat.size // _SAMPLE)
    return flat[::step]


def symmetric_limit(*arrays, percentile: float = 99.9) -> float:
    """A positive ``a`` for contrast limits ``(-a, a)`` covering nearly all of ``arrays``."""
    values = np.concatenate([np.abs(_sample(a)).astype(np.float32) for a in arrays])
    values = values[np.isfinite(values)]
    if values.size == 0:
        return 1.0
    limit = float(np.percentile(values, percentile))
    if not limit > 0:
        limit = float(values.max())
    return limit if limit > 0 else 1e-6


def upper_limit(array, percentile: float = 99.9) -> float:
    """A positive upper contrast limit for a non-negative map (the chroma)."""
    values = _sample(array)
    values = values[np.isfinite(values)]
    limit = float(np.percentile(values, percentile)) if values.size else 1.0
    return limit if limit > 0 else 1e-6


def output_kwargs(kind: str, props: dict, provenance: dict, *, rgb: bool, limit=None, translate=None) -> dict:
    """Keyword arguments of ``viewer.add_image`` for one output layer of ``kind``.

    ``props`` are the input's :func:`source_properties`; the metadata gets
    ``metadata['napari_deblur'] = {**provenance, 'output': kind}``. ``translate`` replaces the
    input's (a plane placed on its plane). The kind's :data:`STYLES` entry sets the rest:
    'input' gives ``rgb`` and the input's contrast limits and colormap, 'residual' gives
    ``rgb`` and limits ``(-limit, limit)`` (colormap :data:`RESIDUAL_COLORMAP` unless RGB),
    'map' gives ``rgb=False``, :data:`MAP_COLORMAP` and limits ``(0, limit)``; kinds in
    :data:`HIDDEN` start hidden.
    """
    metadata = copy.deepcopy(props["metadata"])
    metadata["napari_deblur"] = {**provenance, "output": kind}
    kwargs = {
        "scale": props["scale"],
        "translate": props["translate"] if translate is None else translate,
        "axis_labels": props["axis_labels"],
        "units": props["units"],
        "metadata": metadata,
    }
    style = STYLES[kind]
    if style == "input":
        kwargs["rgb"] = rgb
        kwargs["contrast_limits"] = props["contrast_limits"]
        if not rgb and props.get("colormap") is not None:
            kwargs["colormap"] = props["colormap"]
    elif style == "residual":
        kwargs["rgb"] = rgb
        kwargs["contrast_limits"] = (-limit, limit)
        if not rgb:
            kwargs["colormap"] = RESIDUAL_COLORMAP
    else:  # a map: one value per pixel, never RGB
        kwargs.update(rgb=False, colormap=MAP_COLORMAP, contrast_limits=(0.0, limit))
    if kind in HIDDEN:
        kwargs["visible"] = False
    return kwargs


def stacked_kwargs(kwargs: dict, label: str) -> dict:
    """``kwargs`` for data with one more leading axis (frames or samples): its own slider
    ``label``, unit scale, no offset, unit ``'pixel'``. The metadata is shared, not copied."""
    out = dict(kwargs)
    out["scale"] = (1.0, *kwargs["scale"])
    out["translate"] = (0.0, *kwargs["translate"])
    out["axis_labels"] = (label, *kwargs["axis_labels"])
    out["units"] = ("pixel", *kwargs["units"])
    return out


def same_value(layer, key: str, value) -> bool:
    """Whether ``layer``'s property ``key`` already is ``value`` (a colormap by its name)."""
    current = getattr(layer, key)
    if key == "colormap":
        return getattr(value, "name", value) == current.name
    if key == "units":
        return tuple(str(u) for u in current) == tuple(str(u) for u in value)
    try:
        return tuple(current) == tuple(value)
    except TypeError:
        return False


def add_or_replace(viewer, data, name: str, **kwargs):
    """Show ``data`` as the Image layer ``name``: a new layer, or the one already there.

    An existing Image layer of that name whose dimensionality and RGB-ness fit gets the
    new data and properties in place (it keeps its place in the layer list, its visibility,
    opacity and blending); any other layer of that name is removed and the new one
    inserted where it was.
    """
    from napari.layers import Image

    rgb = bool(kwargs.get("rgb", False))
    if name in viewer.layers:
        old = viewer.layers[name]
        fits = isinstance(old, Image) and not old.multiscale and old.rgb == rgb and old.data.ndim == data.ndim
        if fits:
            old.data = data
            for key in ("scale", "translate", "axis_labels", "units", "colormap", "contrast_limits"):
                if key in kwargs and not same_value(old, key, kwargs[key]):  # each change redraws
                    setattr(old, key, kwargs[key])
            old.metadata = kwargs.get("metadata", {})
            return old
        position = viewer.layers.index(old)
        viewer.layers.remove(old)
        layer = Image(data, name=name, **kwargs)
        viewer.layers.insert(position, layer)
        return layer
    return viewer.add_image(data, name=name, **kwargs)


def output_layers(outputs: dict, props: dict, provenance: dict, *, rgb: bool, limits: dict) -> list:
    """``[(kind, data, add_image kwargs)]`` of the output layers in the order they are added;
    ``outputs`` maps kind to data (None: skipped). Pure: the worker builds these, with their
    contrast limits, so the main thread only hands them to napari.

    Residuals and chroma go in first and the restored image last, so that a new run shows
    the restored image on top.
    """
    planned = []
    for kind in ("r_hor", "r_ver", "chroma", "restored"):
        if outputs.get(kind) is None:
            continue
        limit = limits.get("chroma" if kind == "chroma" else "residual")
        planned.append((kind, outputs[kind], output_kwargs(kind, props, provenance, rgb=rgb, limit=limit)))
    return planned


def add_in_steps(viewer, source_name: str, planned: list, added: dict):
    """A generator that adds or replaces the ``planned`` layers (:func:`output_layers`), a
    step per ``yield`` (the widgets run one step per event-loop turn); ``added`` gets kind ->
    layer. A new layer takes two steps: it is added hidden, then shown (its slice and first
    draw); a layer replaced in place takes one."""
    for kind, data, kwargs in planned:
        name = output_name(source_name, kind)
        if name in viewer.layers:  # replaced in place: one step
            added[kind] = add_or_replace(viewer, data, name, **kwargs)
            yield
            continue
        # a new layer in two steps: napari builds its controls and visual, then slices and draws it
        added[kind] = add_or_replace(viewer, data, name, **{**kwargs, "visible": False})
        yield
        added[kind].visible = kwargs.get("visible", True)
        yield


def add_outputs(viewer, source_name: str, outputs: dict, props: dict, provenance: dict, *, rgb: bool, limits: dict):
    """Add or replace the output layers at once (:func:`output_layers`); kind -> layer."""
    added = {}
    planned = output_layers(outputs, props, provenance, rgb=rgb, limits=limits)
    for _ in add_in_steps(viewer, source_name, planned, added):
        pass
    return added
