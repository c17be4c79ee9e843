"""The sampling controls of the "Diffusion deblur" widget: steps, presets, samples, seed, sampler.

:class:`SamplingControls` builds the Qt controls that say how the reverse diffusion samples:
the number of steps (a slider on a logarithmic scale, so that 1-50 steps get as much of its
length as 50-1000, beside a box for the exact number), two presets that set steps and samples together
(few steps and several samples for a low-distortion mean, many steps and one sample for a
sharper single image), the number of samples (chains), the seed with a dice button that
rolls a random one, and the sampler (DDPM or DDIM). The widget lays them out as rows of its
form (:meth:`SamplingControls.rows`) and reads them when it makes a job
(:meth:`SamplingControls.values`).
"""

import math
import random

from qtpy.QtCore import Qt, Signal
from qtpy.QtWidgets import QComboBox, QHBoxLayout, QPushButton, QSlider, QSpinBox, QWidget

from ..diffusion.presets import FIDELITY, PRESETS

SAMPLERS = ("DDPM", "DDIM")
MAX_STEPS = 1000
MAX_SAMPLES = 256
MAX_SEED = 2**31 - 1
SLIDER_POSITIONS = 240  # the steps slider's resolution: neighbouring positions differ by under 3 %


class StepsSlider(QWidget):
    """The number of diffusion steps, 1 to ``maximum``: a slider on a logarithmic scale (few
    steps, where each one matters, get as much room as many) and a spin box with the exact
    number. The spin box holds the value; ``valueChanged(int)`` fires once per change."""

    valueChanged = Signal(int)

    def __init__(self, maximum: int = MAX_STEPS, parent=None):
        super().__init__(parent)
        self._maximum = maximum
        self.slider = QSlider(Qt.Orientation.Horizontal)
        self.slider.setRange(0, SLIDER_POSITIONS)
        self.spin = QSpinBox()
        self.spin.setRange(1, maximum)
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.slider, 1)
        layout.addWidget(self.spin)
        self.slider.valueChanged.connect(lambda pos: self.spin.setValue(self.steps_at(pos)))
        self.spin.valueChanged.connect(self._spin_changed)
        self._spin_changed(self.spin.value())

    def steps_at(self, position: int) -> int:
        """The steps a slider position stands for (position 0: 1 step, the last: the maximum)."""
        return max(1, min(self._maximum, round(self._maximum ** (position / SLIDER_POSITIONS))))

    def position_of(self, steps: int) -> int:
        """The slider position nearest to ``steps`` on the logarithmic scale."""
        return round(SLIDER_POSITIONS * math.log(max(1, steps)) / math.log(self._maximum))

    def _spin_changed(self, steps: int) -> None:
        if self.steps_at(self.slider.value()) != steps:  # a typed value moves the handle without a second change
            self.slider.blockSignals(True)
            self.slider.setValue(self.position_of(steps))
            self.slider.blockSignals(False)
        self.valueChanged.emit(steps)

    def value(self) -> int:
        return self.spin.value()

    def setValue(self, steps: int) -> None:  # Qt's name, as on QSlider
        self.spin.setValue(int(steps))

    def minimum(self) -> int:
        return self.spin.minimum()

    def maximum(self) -> int:
        return self.spin.maximum()


class SamplingControls:
    """The steps slider, preset buttons, samples, seed (with its dice) and sampler controls.

    They start at the "Fidelity" preset, seed 0 and the DDPM sampler. The controls are plain
    attributes (``steps_slider``, ``preset_buttons``, ``samples_spin``, ``seed_spin``,
    ``dice_button``, ``sampler_combo``); the preset buttons and the seed spin box with its
    dice sit in the two row layouts :meth:`rows` gives.
    """

    def __init__(self):
        self.steps_slider = StepsSlider(MAX_STEPS)
        self.steps_slider.setValue(FIDELITY.steps)
        self.steps_slider.setToolTip(
            "Diffusion steps: few steps and several samples give a low-distortion mean, "
            "many steps sharper single samples"
        )
        self.preset_buttons = {}
        self.preset_row = QHBoxLayout()
        for name, preset in PRESETS.items():
            button = QPushButton(name)
            button.setToolTip(preset.describe())
            button.clicked.connect(lambda *_, n=name: self.apply_preset(n))
            self.preset_buttons[name] = button
            self.preset_row.addWidget(button)
        self.samples_spin = QSpinBox()
        self.samples_spin.setRange(1, MAX_SAMPLES)
        self.samples_spin.setValue(FIDELITY.samples)
        self.samples_spin.setToolTip("Chains: the mean and the std are over them")
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, MAX_SEED)
        self.dice_button = QPushButton("random")  # a word: the die emoji shows as a box without an emoji font
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
        """Set the steps and samples of the preset ``name`` (a key of
        :data:`napari_deblur.diffusion.presets.PRESETS`)."""
        preset = PRESETS[name]
        self.steps_slider.setValue(preset.steps)
        self.samples_spin.setValue(preset.samples)

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
