"""The sampling controls of the "Diffusion deblur" widget: steps, presets, samples, seed, sampler.

:class:`SamplingControls` builds the Qt controls that say how the reverse diffusion samples:
the number of steps (a labelled slider), two presets that set steps and samples together
(few steps and several samples for a low-distortion mean, many steps and one sample for a
sharper single image), the number of samples (chains), the seed with a dice button that
rolls a random one, and the sampler (DDPM or DDIM). The widget lays them out as rows of its
form (:meth:`SamplingControls.rows`) and reads them when it makes a job
(:meth:`SamplingControls.values`).
"""

import random

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QComboBox, QHBoxLayout, QPushButton, QSpinBox

SAMPLERS = ("DDPM", "DDIM")
PRESETS = {"Fidelity": (10, 8), "Perceptual": (500, 1)}  # (steps, samples)
MAX_STEPS = 1000
MAX_SAMPLES = 256
MAX_SEED = 2**31 - 1


class SamplingControls:
    """The steps slider, preset buttons, samples, seed (with its dice) and sampler controls.

    They start at the "Fidelity" preset, seed 0 and the DDPM sampler. The controls are plain
    attributes (``steps_slider``, ``preset_buttons``, ``samples_spin``, ``seed_spin``,
    ``dice_button``, ``sampler_combo``); the preset buttons and the seed spin box with its
    dice sit in the two row layouts :meth:`rows` gives.
    """

    def __init__(self):
        from superqt import QLabeledSlider

        self.steps_slider = QLabeledSlider(Qt.Orientation.Horizontal)
        self.steps_slider.setRange(1, MAX_STEPS)
        self.steps_slider.setValue(PRESETS["Fidelity"][0])
        self.steps_slider.setToolTip(
            "Diffusion steps: few steps and several samples give a low-distortion mean, "
            "many steps sharper single samples"
        )
        self.preset_buttons = {}
        self.preset_row = QHBoxLayout()
        for name, (steps, samples) in PRESETS.items():
            button = QPushButton(name)
            button.setToolTip(f"{steps} steps, {samples} sample(s)")
            button.clicked.connect(lambda *_, n=name: self.apply_preset(n))
            self.preset_buttons[name] = button
            self.preset_row.addWidget(button)
        self.samples_spin = QSpinBox()
        self.samples_spin.setRange(1, MAX_SAMPLES)
        self.samples_spin.setValue(PRESETS["Fidelity"][1])
        self.samples_spin.setToolTip("Chains: the mean and the std are over them")
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, MAX_SEED)
        self.dice_button = QPushButton("\N{GAME DIE}")
        self.dice_button.setToolTip("A random seed")
        self.dice_button.clicked.connect(self.roll_seed)
        self.seed_row = QHBoxLayout()
        self.seed_row.addWidget(self.seed_spin, 1)
        self.seed_row.addWidget(self.dice_button)
        self.sampler_combo = QComboBox()
        self.sampler_combo.addItems(SAMPLERS)
        self.sampler_combo.setToolTip("DDPM: ancestral, as in the paper; DDIM: deterministic given the seed")

    def rows(self) -> list:
        """The form rows, ``(label, widget or layout)``, in the order the widget shows them."""
        return [
            ("steps", self.steps_slider),
            ("presets", self.preset_row),
            ("samples", self.samples_spin),
            ("seed", self.seed_row),
            ("sampler", self.sampler_combo),
        ]

    def apply_preset(self, name: str) -> None:
        """Set the steps and samples of the preset ``name`` (a key of :data:`PRESETS`)."""
        steps, samples = PRESETS[name]
        self.steps_slider.setValue(steps)
        self.samples_spin.setValue(samples)

    def roll_seed(self, *_) -> None:
        """Set a random seed in ``[0, MAX_SEED]``."""
        self.seed_spin.setValue(random.randint(0, MAX_SEED))

    def values(self) -> dict:
        """The current ``steps``, ``samples``, ``seed`` (ints) and ``sampler`` (lower case, as the engine names it)."""
        return {
            "steps": int(self.steps_slider.value()),
            "samples": int(self.samples_spin.value()),
            "seed": int(self.seed_spin.value()),
            "sampler": self.sampler_combo.currentText().lower(),
        }
