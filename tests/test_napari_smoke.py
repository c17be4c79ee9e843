"""napari opens under Xvfb with the plugin registered, and restored layers keep their scale."""

import numpy as np
import pytest

pytest.importorskip("napari")
pytestmark = pytest.mark.gui


def test_viewer_sees_the_plugin_and_shows_a_restoration(make_napari_viewer):
    from factories import tiny_model
    from npe2 import PluginManager

    from napari_deblur import xydeblur

    viewer = make_napari_viewer()
    assert "napari-deblur" in PluginManager.instance()
    image = np.random.default_rng(0).integers(0, 4000, (3, 40, 48), dtype=np.uint16)
    layer = viewer.add_image(image, scale=(2.0, 0.1, 0.1), name="cells")
    result = xydeblur(layer.data, tiny_model())
    restored = viewer.add_image(result.restored, scale=layer.scale, name="cells deblurred")
    viewer.dims.set_point(0, 2 * 2.0)
    screenshot = viewer.screenshot(canvas_only=True, flash=False)
    assert screenshot.ndim == 3 and screenshot.std() > 0  # something was drawn (a GL canvas exists)
    assert restored.data.shape == image.shape and tuple(restored.scale) == (2.0, 0.1, 0.1)
