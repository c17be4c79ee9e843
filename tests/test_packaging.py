"""Packaging: the manifest is valid, npe2 finds the plugin, and the wheel is self-contained.

The slow test builds the wheel, installs it into a throwaway virtual environment (its
dependencies borrowed from this one through a ``.pth`` file, so nothing is downloaded) and
checks, from a directory outside the checkout, that the installed copy is the one in use.
"""

import json
import os
import site
import stat
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MANIFEST = REPO / "napari.yaml"
RESOURCES = REPO / "resources"
PICKLE_SUFFIXES = {".pt", ".pth", ".pkl", ".pickle", ".ckpt"}


def resource_files() -> list[str]:
    """Paths (relative, POSIX) of the files in the checkout's resources/ folder."""
    return sorted(
        p.relative_to(RESOURCES).as_posix()
        for p in RESOURCES.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts
    )


def test_manifest_validates():
    from npe2 import PluginManifest

    manifest = PluginManifest.from_file(MANIFEST)
    assert manifest.name == "napari-deblur"


def test_npe2_discovers_this_install():
    from importlib.metadata import PackageNotFoundError, distribution

    from npe2 import PluginManager

    try:
        distribution("napari-deblur")
    except PackageNotFoundError:
        pytest.fail("napari-deblur is not installed in this environment (make install, or pip install -e .)")
    pm = PluginManager()  # a private one: leave the global instance to napari
    pm.discover()
    assert "napari-deblur" in pm, f"npe2 found only {sorted(pm._manifests)}"
    found = pm.get_manifest("napari-deblur")
    assert found.package_metadata is not None and found.package_metadata.name == "napari-deblur"
    # Whether editable (a link to the top-level file) or not, it is the same manifest.
    assert Path(found._source_file).read_bytes() == MANIFEST.read_bytes()


def test_resources_folder_is_there():
    assert "README.md" in resource_files()
    pickles = [f for f in resource_files() if Path(f).suffix.lower() in PICKLE_SUFFIXES]
    assert not pickles, f"pickled files in resources/: {pickles}"


def build_wheel(outdir: Path) -> Path:
    proc = subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(outdir), str(REPO)],
        cwd=outdir,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0, f"wheel build failed:\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}"
    wheels = sorted(outdir.glob("napari_deblur-*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


def install_wheel_by_unpacking(wheel: Path, purelib: Path) -> None:
    """A pure-Python wheel installs by unzipping it into site-packages (no pip, no network)."""
    with zipfile.ZipFile(wheel) as zf:
        for info in zf.infolist():
            name = info.filename
            parts = name.split("/")
            if parts[0].endswith(".data"):
                # <dist>.data/purelib|platlib/... belongs in site-packages; scripts etc. are not needed here
                if len(parts) < 3 or parts[1] not in ("purelib", "platlib"):
                    continue
                name = "/".join(parts[2:])
            target = purelib / name
            if name.endswith("/"):
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(zf.read(info))


PROBE = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path

    import napari_deblur
    from napari_deblur.resources import resources_dir
    from npe2 import PluginManager

    pm = PluginManager.instance()
    pm.discover()
    found = pm.get_manifest("napari-deblur") if "napari-deblur" in pm else None
    res = resources_dir()
    print(json.dumps({
        "file": str(Path(napari_deblur.__file__).resolve()),
        "resources": str(res.resolve()),
        "resources_files": sorted(
            p.relative_to(res).as_posix() for p in res.rglob("*") if p.is_file()
        ),
        "plugins": sorted(pm._manifests),
        "manifest_file": str(found._source_file) if found else None,
        "torch_loaded": "torch" in sys.modules,
    }))
    """
)


@pytest.mark.slow
def test_wheel_contents_and_installed_plugin(tmp_path):
    wheel = build_wheel(tmp_path)

    with zipfile.ZipFile(wheel) as zf:
        infos = {info.filename: info for info in zf.infolist()}
        names = set(infos)

        yaml_info = infos.get("napari_deblur/napari.yaml")
        assert yaml_info is not None, "napari_deblur/napari.yaml is missing from the wheel"
        assert not stat.S_ISLNK(yaml_info.external_attr >> 16), "napari.yaml is a link in the wheel"
        assert zf.read(yaml_info) == MANIFEST.read_bytes()

        missing = [f for f in resource_files() if f"napari_deblur/resources/{f}" not in names]
        assert not missing, f"resources/ files missing from the wheel: {missing}"

        assert not [n for n in names if n.startswith("tests/") or "/tests/" in n], "tests in the wheel"
        pickles = [n for n in names if Path(n).suffix.lower() in PICKLE_SUFFIXES]
        assert not pickles, f"pickles in the wheel: {pickles}"

        (entry_points,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        text = zf.read(entry_points).decode()
        assert "[napari.manifest]" in text and "napari-deblur = napari_deblur:napari.yaml" in text

    # A throwaway venv without pip; the wheel unpacked into it; everything else borrowed.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=300)
    vpy = venv / "bin" / "python"
    purelib = Path(
        subprocess.run(
            [str(vpy), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    install_wheel_by_unpacking(wheel, purelib)
    borrowed = dict.fromkeys([sysconfig.get_paths()["purelib"], *site.getsitepackages()])
    # Lines of a .pth only extend sys.path; the .pth files inside those folders (among them
    # this checkout's editable-install hook) are not run, so the checkout stays invisible.
    (purelib / "zz_borrowed_site_packages.pth").write_text("".join(f"{p}\n" for p in borrowed))

    workdir = tmp_path / "elsewhere"
    workdir.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "NAPARI_DEBLUR_RESOURCES")}
    proc = subprocess.run([str(vpy), "-c", PROBE], cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"the installed wheel failed:\n{proc.stderr[-4000:]}"
    seen = json.loads(proc.stdout.strip().splitlines()[-1])

    root = venv.resolve()
    package = purelib.resolve() / "napari_deblur"
    assert Path(seen["file"]).is_relative_to(root), f"imported {seen['file']}, not the wheel's copy"
    assert Path(seen["resources"]) == package / "resources", seen["resources"]
    assert "README.md" in seen["resources_files"]
    assert set(resource_files()) <= set(seen["resources_files"])
    assert "napari-deblur" in seen["plugins"], f"npe2 found only {seen['plugins']}"
    assert seen["manifest_file"] and Path(seen["manifest_file"]).is_relative_to(root), seen["manifest_file"]
    assert not seen["torch_loaded"], "discovering the plugin imported torch"
