"""Where a "current slice" result lives: the plane alone, placed on the input by ``translate``.

A current-slice run restores the YX plane (all channels) at the viewer's dims point. Its
outputs are that plane only, with the input's other axes kept as length 1 (``(1, Y, X)``
for a ``ZYX`` stack, ``(1, 1, Y, X, 3)`` for an RGB ``TZYXC`` one), and they are shown
with the input's ``scale``, ``axis_labels`` and ``units`` and a ``translate`` moved onto
that plane. napari then draws them over the input on that plane, in 2D and in 3D, and
nothing on the other planes; a preview of a 200 x 2048 x 2048 stack costs one plane.

numpy-free and Qt-free: tuples in, tuples out.
"""


def keepdims_index(index: tuple) -> tuple:
    """:func:`~napari_deblur.plugin.axes.plane_index`'s tuple with every integer ``i`` made
    ``slice(i, i + 1)``: the plane keeps the input's dimensionality."""
    return tuple(item if isinstance(item, slice) else slice(item, item + 1) for item in index)


def part_shape(shape, index) -> tuple:
    """The shape of what a run restores: ``shape`` for the whole array (``index`` None), else
    the plane with its other axes kept as 1."""
    if index is None:
        return tuple(int(n) for n in shape)
    return tuple(int(n) if isinstance(item, slice) else 1 for n, item in zip(shape, index))


def part_translate(translate, scale, index, rgb: bool) -> tuple:
    """The ``translate`` of the plane at ``index``: the input's, moved to the plane along its other axes.

    ``translate`` and ``scale`` are the input layer's (an RGB layer's leave out the colour axis).
    """
    translate = [float(t) for t in translate]
    if index is None:
        return tuple(translate)
    dims = index[:-1] if rgb else index
    for axis, item in enumerate(dims):
        if not isinstance(item, slice):
            translate[axis] += item * float(scale[axis])
    return tuple(translate)
