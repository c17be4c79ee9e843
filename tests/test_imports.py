"""Import hygiene: the package and its scientific core must not drag in heavy or GUI modules.

napari imports ``napari_deblur`` at start-up to read the manifest, so that import must stay
cheap (no torch). The core (models, engine, io, cli, color_shift) must work on a server
without napari or Qt. Each check runs in a fresh interpreter, since this test process
has long since imported torch (conftest) and possibly Qt.
"""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]

GUI_MODULES = ("napari", "qtpy", "PyQt5", "PyQt6", "PySide2", "PySide6", "superqt", "magicgui", "vispy")

CORE_MODULES = (
    "napari_deblur.models.xydeblur",
    "napari_deblur.engine.restore",
    "napari_deblur.io",
    "napari_deblur.cli",
    "napari_deblur.color_shift",
)


def loaded_after_import(module: str) -> set[str]:
    """Top-level names in ``sys.modules`` after importing ``module`` in a new interpreter."""
    code = (
        "import importlib, json, sys\n"
        f"importlib.import_module({module!r})\n"
        "print(json.dumps(sorted({name.split('.')[0] for name in sys.modules})))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"importing {module} failed:\n{proc.stderr}"
    return set(json.loads(proc.stdout.strip().splitlines()[-1]))


def test_package_import_is_light():
    loaded = loaded_after_import("napari_deblur")
    heavy = loaded & {"torch", *GUI_MODULES}
    assert not heavy, f"`import napari_deblur` imported {sorted(heavy)}"


@pytest.mark.parametrize("module", CORE_MODULES)
def test_core_modules_need_no_gui(module):
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} does not exist yet")
    gui = loaded_after_import(module) & set(GUI_MODULES)
    assert not gui, f"`import {module}` imported GUI modules {sorted(gui)}"
