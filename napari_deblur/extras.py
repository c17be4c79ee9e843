"""Optional packages: a missing one is named, with the extra that installs it, before anything is read.

Streaming (zarr stores, folders of TIFFs, ``--stream``), lazily opened TIFFs and
``dask.distributed`` clusters need packages the core does without. They come with
``pip install 'napari-deblur[dask]'`` (pyproject's ``dask`` extra: ``dask[array]``,
``distributed``, ``zarr``). :func:`require` checks for them up front and raises
:class:`MissingExtraError` with that advice, instead of a traceback from deep inside or a
MemoryError from reading into memory what should have been read lazily.
:func:`memory_available` tells how much memory an in-memory fallback could use.

The standard library only.
"""

import importlib

DASK_EXTRA = "napari-deblur[dask]"
# import name -> what to call it in a message (the name pip knows)
_PACKAGE_NAMES = {"dask.array": "dask[array]"}


class MissingExtraError(ImportError):
    """An optional package is needed and not installed; the message says what to install."""


def missing_packages(modules) -> list[str]:
    """The import names among ``modules`` that cannot be imported."""
    missing = []
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    return missing


def require(modules, purpose: str) -> None:
    """:class:`MissingExtraError` unless every module in ``modules`` (import names) imports.

    ``purpose`` says what needs them, e.g. ``"streaming cells.zarr"``.
    """
    missing = [_PACKAGE_NAMES.get(name, name) for name in missing_packages(modules)]
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        raise MissingExtraError(
            f"{purpose} needs {' and '.join(missing)}, which {verb} not installed: pip install '{DASK_EXTRA}'"
        )


def memory_available() -> int | None:
    """Bytes of memory available to a new allocation (Linux ``MemAvailable``, else psutil); None if unknown."""
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        import psutil

        return int(psutil.virtual_memory().available)
    except Exception:  # psutil missing, or unsupported here: unknown (free pages alone would undercount)  # noqa: BLE001
        return None
