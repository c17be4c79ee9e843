"""``python -m napari_deblur``: the same as the ``napari-deblur`` command."""

import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(main())
