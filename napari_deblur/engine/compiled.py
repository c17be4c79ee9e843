"""``torch.compile`` for the engine's networks, with a fallback to eager execution.

Eager XYDeblur on a GPU spends much of its time launching small separate kernels (the
ReLUs and residual additions between convolutions); the compiler fuses them, which makes the
forward markedly faster (``tools/xydeblur_variants.py`` times both; the README gives the
figures). Compiling takes seconds for every new input shape, so it is an option
(``compile=True`` in :func:`napari_deblur.xydeblur`, ``--compile`` on the command line) for
long runs on frames of one size, not the default of an interactive plugin. The network is compiled
with dynamic shapes (one compiled form for every frame and tile size, after at most one
recompilation when the first new shape arrives), and the compiled code is kept on disk
(:mod:`.compile_cache`), so a second process loads it instead of compiling again. Nothing is
padded: the outputs are the eager ones up to float rounding.

Where the compiler is missing or fails (no C compiler, an unsupported platform or op), the
first call says why in :attr:`CompiledResiduals.error` and every call runs eagerly.
"""

import torch

from .compile_cache import enable_compile_cache
from .device import is_out_of_memory


class CompiledResiduals:
    """A network whose ``residuals`` run through ``torch.compile`` (eager if that fails)."""

    def __init__(self, net):
        self.net = net
        self.error = None
        self.cache_dir = enable_compile_cache()
        try:
            self._compiled = torch.compile(net.residuals, dynamic=True)
        except Exception as err:  # torch.compile itself unavailable  # noqa: BLE001
            self._compiled, self.error = None, _why(err)

    def residuals(self, x):
        if self._compiled is not None and self.error is None:
            try:
                return self._compiled(x)
            except Exception as err:
                if is_out_of_memory(err):
                    raise  # the engine retries with smaller tiles
                self.error = _why(err)
        return self.net.residuals(x)

    @property
    def status(self) -> str:
        """What ran: "compiled", or "eager (compile failed: ...)"."""
        return "compiled" if self.error is None else f"eager (compile failed: {self.error})"


def _why(err) -> str:
    return " ".join(f"{type(err).__name__}: {err}".split())[:200]
