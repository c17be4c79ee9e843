"""Training PSFs read from files: measured or computed microscope PSFs given with ``--psf``.

:func:`load_psf_files` reads TIFF files (2D PSFs, or 3D Z stacks) and cuts each into
2D training kernels with :func:`napari_deblur.data.psf.psf_slices`. PSFs that the
benchmark holds out (:data:`napari_deblur.data.heldout.HELDOUT_PSFS`) are refused.
"""

from pathlib import Path

import numpy as np

from .heldout import HELDOUT_PSFS, is_heldout
from .psf import psf_slices


def load_psf_files(paths, size: int = 31) -> list[np.ndarray]:
    """2D training PSFs (float32, ``size`` x ``size``, sum 1) from TIFF files of measured or
    computed PSFs, in file order; a held-out or unreadable file raises ``ValueError``."""
    import tifffile

    kernels = []
    for path in map(Path, paths or []):
        if is_heldout(path, HELDOUT_PSFS):
            raise ValueError(f"--psf {path}: this PSF is held out for the benchmark (see napari_deblur.data.heldout)")
        try:
            kernels += psf_slices(tifffile.imread(path), size)
        except (OSError, ValueError) as err:
            raise ValueError(f"--psf {path}: {err}") from None
    return kernels
