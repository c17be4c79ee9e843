"""napari-deblur: XYDeblur and diffusion refinement for napari, Python and the shell.

The public names below are imported lazily, so ``import napari_deblur`` (which
napari does at start-up to read the plugin manifest) loads neither torch nor a
model. Everything under ``models``, ``engine``, ``io`` and ``cli`` needs only
torch and numpy; napari and Qt are used by the plugin layer alone.
"""

from importlib import import_module

__version__ = "0.1.0"

_EXPORTS = {
    "XYDeblur": "napari_deblur.models.xydeblur",
    "load_model": "napari_deblur.models.weights",
    "available_models": "napari_deblur.models.registry",
    "WeightsError": "napari_deblur.models.weights",
    "xydeblur": "napari_deblur.engine.restore",
    "xydeblur_iter": "napari_deblur.engine.restore",
    "XYDeblurResult": "napari_deblur.engine.restore",
    "Progress": "napari_deblur.engine.restore",
    "color_shift": "napari_deblur.color_shift",
    "ColorShift": "napari_deblur.color_shift",
    "ResidualDenoiser": "napari_deblur.models.denoiser",
    "refine": "napari_deblur.diffusion.refine",
    "refine_iter": "napari_deblur.diffusion.refine",
    "RefineStep": "napari_deblur.diffusion.refine",
    "RefineResult": "napari_deblur.diffusion.refine",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name):
    if name in _EXPORTS:
        value = getattr(import_module(_EXPORTS[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'napari_deblur' has no attribute {name!r}")


def __dir__():
    return sorted(__all__)
