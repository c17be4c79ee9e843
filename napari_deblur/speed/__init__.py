"""``napari-deblur bench``: how fast XYDeblur and the diffusion refinement run on this machine.

(How well they restore is :mod:`napari_deblur.evaluation`'s work, ``napari-deblur eval``.)

* :mod:`.timing`: what every measurement shares: :func:`~.timing.median_seconds`,
  :class:`~.timing.PeakMemory`, the :class:`~.timing.tf32` switch,
  :func:`~.timing.sample_frame` (the frame timed), :func:`~.timing.machine_name`;
* :mod:`.xydeblur`: XYDeblur per frame (reference against optimised path), on stacks and
  under a device-memory cap;
* :mod:`.diffusion`: one denoiser step and the Fidelity preset;
* :mod:`.cpu_variants`: the CPU path's candidates side by side (``--cpu-variants``), with
  :mod:`.compile_reuse` (what compiling costs a first and a second process);
* :mod:`.report`: the whole run, :func:`run_bench` (JSON), and :func:`to_markdown` (the
  README's tables).

torch and numpy only.
"""

from .report import run_bench, to_markdown

__all__ = ["run_bench", "to_markdown"]
