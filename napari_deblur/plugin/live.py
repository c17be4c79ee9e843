"""The live layers of a diffusion run: ``<name> x0 estimate`` and ``<name> z_t`` in flight.

While the "Diffusion deblur" widget runs, :class:`LiveLayers` shows the first sample as it
is refined: the current estimate of the clean image (x0) and the noisy state (z_t). They are
added once, when the run starts, showing the part of the input the run refines; each preview
frame only replaces their data. The widget removes them when the run ends, whatever the
outcome (the result layers are the mean, std and trajectory), one per event-loop turn
(:meth:`LiveLayers.remove_in_steps`).
"""

import gc

from .layers import add_or_replace, output_kwargs, output_name

LIVE = ("x0", "z_t")  # the output kinds of the live layers


def remove_without_full_collection(viewer, layer) -> None:
    """Remove ``layer`` from ``viewer`` without the full garbage collection napari runs for it.

    napari's canvas calls ``gc.collect()`` after removing a layer's visual; in a process that
    holds torch and napari that walks millions of objects: 0.1-0.2 s on the main thread per
    layer (measured with tools/gui_latency.py on the 2-core machine). The objects alive before
    the removal are frozen for that call (:func:`gc.freeze`) and thawed after it, so the
    collection only looks at the few made since; the removed layer's cycles are collected by
    Python's own collector later, like any other garbage.
    """
    gc.freeze()
    try:
        viewer.layers.remove(layer)
    finally:
        gc.unfreeze()


class LiveLayers:
    """The live layers of one viewer's running diffusion job, and how many frames they drew."""

    def __init__(self, viewer):
        self.viewer = viewer
        self.layers = {}  # kind -> layer of the running job
        self.count = 0  # preview frames drawn since the last :meth:`create`

    def names(self) -> list:
        """The names of the live layers (none when no run is going)."""
        return [layer.name for layer in self.layers.values()]

    def create(self, start, ctx: dict, provenance: dict) -> None:
        """Add (or take over) the live layers, showing ``start`` (the part of the input the run
        refines, a view of it) drawn like the input until the first frame.

        ``ctx`` is the widget's run context (``name``, ``props``, ``rgb``, ``part_translate``)
        and ``provenance`` the layers' ``metadata['napari_deblur']``. The predictor runs before
        the first step (seconds on a CPU): meanwhile the canvas shows the input, not a black
        layer. Adding a layer is the expensive part of showing one in napari (layer controls,
        the vispy visual, a redraw: a few hundred ms on a slow machine), so it is done once, at
        the click, and the previews only replace the data. A layer added before a failure stays
        listed, so :meth:`remove` takes it away.
        """
        self.layers, self.count = {}, 0
        rgb, translate = ctx["rgb"], ctx["part_translate"]
        for kind in LIVE[::-1]:  # z_t below, the x0 estimate on top
            kwargs = output_kwargs(kind, ctx["props"], provenance, rgb=rgb, translate=translate)
            self.layers[kind] = add_or_replace(self.viewer, start, output_name(ctx["name"], kind), **kwargs)
            self.layers[kind].visible = True

    def show_in_steps(self, tick):
        """A generator that draws a preview frame of a DiffusionTick, one live layer per step
        (``yield`` after each): new data for the live layers (z_t: grey, symmetric limits
        ``±tick.z_limit``). A live layer the user deleted is skipped."""
        for kind, data in (("x0", tick.x0), ("z_t", tick.z_t)):
            layer = self.layers.get(kind)
            if layer is None or layer not in self.viewer.layers:
                continue
            if kind == "z_t":
                if self.count == 0 and not layer.rgb:
                    layer.colormap = "gray"
                layer.contrast_limits = (-tick.z_limit, tick.z_limit)
            layer.data = data
            yield
        self.count += 1

    def show(self, tick) -> None:
        """Draw a preview frame at once (:meth:`show_in_steps`)."""
        for _ in self.show_in_steps(tick):
            pass

    def remove_in_steps(self):
        """A generator that removes the live layers still in the viewer one per step (``yield``
        after each: the widget runs one step per event-loop turn) and forgets them."""
        while self.layers:
            _, layer = self.layers.popitem()
            if layer in self.viewer.layers:
                remove_without_full_collection(self.viewer, layer)
                yield

    def remove(self) -> None:
        """Remove the live layers still in the viewer and forget them, at once."""
        for _ in self.remove_in_steps():
            pass
