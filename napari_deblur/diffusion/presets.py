"""The two sampling presets of the diffusion refinement, shared by the widget, the command line,
the benchmarks and the do-no-harm gate.

- **Fidelity**: few steps and the mean of several samples, the low-distortion estimate. Its job is
  a mean at least as close to the truth as the predictor alone, with a per-pixel standard
  deviation that points at the errors.
- **Perceptual**: many steps and one sample: sharper, with more distortion (the paper's T = 500).

The paper's low-distortion setting is T = 10 with averaging; ours is T = 2 with 16 samples,
chosen by measurement with ``tools/fidelity_sweep.py`` on real-data crops the gate does not
score (the README's "Choosing the Fidelity preset" has the table). With the bundled
``dvsr-microscopy``, 10 steps put the mean 0.2-0.3 dB *below* its predictor, because every step
after the first two adds detail the mean of a few samples cannot average away; 2 steps bring
it level with the predictor, and 16 samples instead of 8 add about 0.02 dB and a steadier
uncertainty map. On photos 2 and 10 steps score the same. Two steps are also 5 times fewer
denoiser passes per sample.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class Preset:
    """A number of diffusion ``steps`` and of ``samples`` averaged."""

    steps: int
    samples: int

    def describe(self) -> str:
        return f"{self.steps} steps x {self.samples} samples"


DEFAULT_STEPS = 100  # a call that names neither steps nor a preset: one sample of 100 steps
FIDELITY = Preset(steps=2, samples=16)
PERCEPTUAL = Preset(steps=500, samples=1)
PRESETS = {"Fidelity": FIDELITY, "Perceptual": PERCEPTUAL}
