"""The benchmark behind ``napari-deblur eval``: held-out images, out-of-training kernels, oracle baselines.

- :mod:`.benchmark`: the run on synthetic cases (baselines, XYDeblur models, the diffusion rows).
- :mod:`.report`: its Markdown report, the files it writes and the commit it came from.
- :mod:`.cases` and :mod:`.kernels`: the benchmark images and the blur kernels/PSFs they use.
- :mod:`.baselines`: Wiener and Richardson-Lucy deconvolution with the true kernel.
- :mod:`.diffusion` and :mod:`.timing`: predict-and-refine rows, timed per step.
- :mod:`.real` and :mod:`.real_cases`: the real-data tracks and the do-no-harm gate.
- :mod:`.summary`: one model's results picked out of a benchmark report.

Scores come from :mod:`napari_deblur.metrics`. torch, scikit-image and Pillow are imported by
the submodules; nothing here imports napari or Qt.
"""

from .benchmark import run_benchmark
from .kernels import MICROSCOPY_PSFS, PHOTO_FAMILIES

__all__ = ["run_benchmark", "PHOTO_FAMILIES", "MICROSCOPY_PSFS"]
