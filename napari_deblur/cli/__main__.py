"""``python -m napari_deblur.cli``: the same as the ``napari-deblur`` command."""

import sys

from . import main

if __name__ == "__main__":
    sys.exit(main())
