"""The two sampling presets of the diffusion refinement, shared by the widget, the command line,
the benchmarks and the do-no-harm gate.

- **Fidelity**: few steps and the mean of several samples, the low-distortion estimate. Its job is
  a mean at least as close to the truth as the predictor alone, with a per-pixel standard
  deviation that points at the errors.
- **Perceptual**: many steps and one sample: sharper, with more distortion (the paper's T = 500).

The paper's low-distortion setting is T = 10 with averaging; ours is T = 2 with 16 samples,
chosen by measurement with ``tools/fidelity_sweep.py`` on real-data crops the do-no-harm gate
does not score (the README's "The Fidelity preset" has the table): with the ``dvsr-microscopy``
bundled on 2026-12-07, on real fluorescence, the mean of 10 x 8 came out 0.27 dB below its
predictor, 2 x 8 0.035 dB below and 2 x 16 0.016 dB below (and 0.13 dB above on the gate's
images); one step ties too, but its standard deviation stops following the error. On photos
the number of steps made no difference. Two steps x 16 samples are 32 denoiser passes per
image instead of 80.
"""

from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class Preset:
    """A number of diffusion ``steps`` and of ``samples`` averaged."""

    steps: int
    samples: int

    def describe(self) -> str:
        return f"{self.steps} steps x {self.samples} samples"

    def as_dict(self) -> dict:
        """``{"steps": ..., "samples": ...}``: keyword arguments of ``refine`` and a report's record."""
        return asdict(self)


DEFAULT_STEPS = 100  # a call that names neither steps nor a preset: one sample of 100 steps
FIDELITY = Preset(steps=2, samples=16)
PERCEPTUAL = Preset(steps=500, samples=1)
PRESETS = {"Fidelity": FIDELITY, "Perceptual": PERCEPTUAL}
