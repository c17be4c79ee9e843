"""Where the bundled files live, in a source checkout and in an installed wheel."""

import os
from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def resources_dir() -> Path:
    """The folder with the bundled weights, manifests and sample images.

    An installed wheel carries it inside the package (``napari_deblur/resources``);
    a source checkout or an editable install keeps it at the top of the
    repository. ``NAPARI_DEBLUR_RESOURCES`` overrides both (used by tests).
    """
    override = os.environ.get("NAPARI_DEBLUR_RESOURCES")
    if override:
        return Path(override)
    for candidate in (_PACKAGE / "resources", _PACKAGE.parent / "resources"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"napari-deblur's resources folder is missing (looked in {_PACKAGE / 'resources'} "
        f"and {_PACKAGE.parent / 'resources'}); reinstall the package"
    )
