"""The benchmark behind ``napari-deblur eval``: held-out images, out-of-training kernels, oracle baselines.

torch, scikit-image and Pillow are imported by the submodules; nothing here imports napari or Qt.
"""

from .benchmark import run_benchmark
from .kernels import MICROSCOPY_PSFS, PHOTO_FAMILIES

__all__ = ["run_benchmark", "PHOTO_FAMILIES", "MICROSCOPY_PSFS"]
