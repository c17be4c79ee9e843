"""Compile once per machine, not once per process: ``torch.compile``'s on-disk caches in a
folder of ours.

PyTorch keys its caches (Inductor's FX graph cache and AOTAutograd's) by the graph, the
input shapes (symbolic where compiled with dynamic shapes), the device, the PyTorch version
and the compiler settings. With PyTorch's default of lifting a module's parameters into
graph inputs, the weights are not part of the key, so other weights of the same architecture
and width should find the same code (measured here only with one model: ``napari-deblur
bench --cpu-variants`` times a first and a second process). torch only.
"""

import os
from pathlib import Path

CACHE_ENV = "NAPARI_DEBLUR_COMPILE_CACHE"


def compile_cache_dir() -> Path:
    """Where compiled code is kept: ``$NAPARI_DEBLUR_COMPILE_CACHE``, else
    ``~/.cache/napari-deblur/torch-compile`` (``$XDG_CACHE_HOME`` honoured)."""
    if os.environ.get(CACHE_ENV):
        return Path(os.environ[CACHE_ENV])
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "napari-deblur" / "torch-compile"


def enable_compile_cache() -> Path | None:
    """Point ``torch.compile``'s on-disk caches at :func:`compile_cache_dir` (unless the user
    set ``TORCHINDUCTOR_CACHE_DIR`` already) and switch them on. Returns the folder in use,
    or None when it cannot be created (the compiler then uses its own temporary folder)."""
    folder = Path(os.environ.get("TORCHINDUCTOR_CACHE_DIR") or compile_cache_dir())
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(folder)
    try:
        from torch._inductor import config as inductor_config

        inductor_config.fx_graph_cache = True
        if hasattr(inductor_config, "autotune_local_cache"):
            inductor_config.autotune_local_cache = True
        from torch._functorch import config as functorch_config

        if hasattr(functorch_config, "enable_autograd_cache"):
            functorch_config.enable_autograd_cache = True
    except ImportError:  # a PyTorch without Inductor: compiling falls back to eager anyway
        return None
    return folder
