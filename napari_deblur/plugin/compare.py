"""Side by side: input, restored, r_hor and r_ver in napari's grid view, and back.

:class:`CompareView` remembers the grid settings and which layers were visible,
shows only the layers to compare in a grid (napari 0.9 leaves hidden layers out of
the grid), and puts everything back when it is toggled off. Layers removed in the
meantime are skipped; layers added in the meantime keep their visibility.
"""


def grid_of(viewer):
    """The viewer's grid settings (``viewer.canvas.grid`` since napari 0.9, ``viewer.grid`` before)."""
    canvas = getattr(viewer, "canvas", None)
    return canvas.grid if canvas is not None and hasattr(canvas, "grid") else viewer.grid


class CompareView:
    def __init__(self, viewer):
        self.viewer = viewer
        self._saved = None  # (grid enabled, grid stride, {layer: visible}) while comparing

    @property
    def active(self) -> bool:
        return self._saved is not None

    def show(self, layers) -> None:
        """Grid view of ``layers`` only (in layer-list order)."""
        layers = [layer for layer in layers if layer is not None and layer in self.viewer.layers]
        if not layers:
            raise ValueError("nothing to compare yet: run XYDeblur first")
        if not self.active:
            grid = grid_of(self.viewer)
            self._saved = (grid.enabled, grid.stride, {layer: layer.visible for layer in self.viewer.layers})
        for layer in self.viewer.layers:
            layer.visible = layer in layers
        grid_of(self.viewer).stride = 1
        grid_of(self.viewer).enabled = True
        self.viewer.reset_view()  # fit the whole grid in the canvas

    def restore(self) -> None:
        """Back to the grid settings and visibilities from before :meth:`show`."""
        if not self.active:
            return
        enabled, stride, visible = self._saved
        self._saved = None
        for layer in self.viewer.layers:
            if layer in visible:
                layer.visible = visible[layer]
        grid_of(self.viewer).stride = stride
        grid_of(self.viewer).enabled = enabled
        self.viewer.reset_view()

    def toggle(self, layers) -> bool:
        """Show if not comparing, else restore; True when comparing afterwards."""
        if self.active:
            self.restore()
        else:
            self.show(layers)
        return self.active
