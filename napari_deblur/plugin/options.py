"""The run options of the XYDeblur widget: model, device, precision, tile size.

:class:`RunOptions` is a small form. The model list holds the bundled models
(``napari_deblur.available_models()``), the weights files loaded so far, and
"Load weights..." which opens a file dialog (``.safetensors``, the official ``.pkl``,
``.pt``/``.pth``); the label under it says which bundled model suits the input layer and
why (:mod:`napari_deblur.plugin.model_default`). A file that cannot be used raises
``WeightsError``; its message is passed to ``on_message`` (the widget shows it), never
raised as a traceback. The device list greys out what this machine does not have; the
label under it says what "auto" picks, the precision, and the free memory
(``napari_deblur.engine.device.describe``).
torch is imported when the form is built, not when this module is.
"""

from pathlib import Path

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QComboBox, QFileDialog, QFormLayout, QHBoxLayout, QLabel, QWidget

from .model_default import choice_text

LOAD_WEIGHTS = "Load weights..."
WEIGHTS_FILTER = "Weights (*.safetensors *.pkl *.pt *.pth);;All files (*)"
DEVICES = ("auto", "cuda", "mps", "cpu")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
TILES = ("auto", "256", "512", "1024", "2048")


def available_devices() -> dict:
    """``{device: usable}`` for the device combo."""
    import torch

    from ..engine.device import mps_available

    return {"auto": True, "cuda": torch.cuda.is_available(), "mps": mps_available(), "cpu": True}


class RunOptions(QWidget):
    def __init__(self, on_message=print, parent=None, model_label="model"):
        super().__init__(parent)
        from .. import available_models  # imports torch

        self._on_message = on_message
        self._files = {}  # combo text -> XYDeblur loaded from a file
        self._last_model = 0
        self._user_chose_model = False  # until then the model follows the input layer
        self._suggestion = None  # the model_default.Suggestion for the input layer

        self.model_combo = QComboBox()
        self.model_combo.addItems(available_models())
        self.model_combo.addItem(LOAD_WEIGHTS)
        self.model_combo.setToolTip("A bundled model, or your own weights (.safetensors, .pkl, .pt, .pth)")
        self.model_combo.activated.connect(self._model_activated)

        self.device_combo = QComboBox()
        for i, (name, usable) in enumerate(available_devices().items()):
            self.device_combo.addItem(name)
            if not usable:
                self.device_combo.model().item(i).setEnabled(False)
                self.device_combo.setItemData(i, "not available on this machine", Qt.ItemDataRole.ToolTipRole)
        self.precision_combo = QComboBox()
        self.precision_combo.addItems(PRECISIONS)
        self.model_note = QLabel()
        self.model_note.setWordWrap(True)
        self.device_label = QLabel()
        self.device_label.setWordWrap(True)
        self.device_combo.currentIndexChanged.connect(self.update_device_label)
        self.precision_combo.currentIndexChanged.connect(self.update_device_label)

        self.tile_combo = QComboBox()
        self.tile_combo.setEditable(True)
        self.tile_combo.addItems(TILES)
        self.tile_combo.setToolTip("Tile side in pixels (at least 64), or auto: from the device's free memory")

        row = QHBoxLayout()
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(self.device_combo)
        row.addWidget(QLabel("precision"))
        row.addWidget(self.precision_combo)
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow(model_label, self.model_combo)
        form.addRow("", self.model_note)
        form.addRow("device", row)
        form.addRow("", self.device_label)
        form.addRow("tile", self.tile_combo)
        self.update_device_label()

    # --- model -------------------------------------------------------------------------
    def _model_activated(self, index: int) -> None:
        self._user_chose_model = True
        if self.model_combo.itemText(index) != LOAD_WEIGHTS:
            self._last_model = index
            return
        path, _ = QFileDialog.getOpenFileName(self, "Load XYDeblur weights", "", WEIGHTS_FILTER)
        if not (path and self.load_weights(path)):
            self.model_combo.setCurrentIndex(self._last_model)

    def load_weights(self, path) -> bool:
        """Load a weights file and select it; False (and a message) when it cannot be used."""
        from ..models.weights import WeightsError, load_model

        path = Path(path)
        try:
            model = load_model(path)
        except (WeightsError, OSError) as err:
            self._on_message(f"Cannot use {path.name}: {err}", True)
            self.model_combo.setCurrentIndex(self._last_model)
            return False
        label = path.name
        index = self.model_combo.findText(label)
        if index < 0:
            index = self.model_combo.count() - 1  # just above "Load weights..."
            self.model_combo.insertItem(index, label)
        self.model_combo.setItemData(index, str(path), Qt.ItemDataRole.ToolTipRole)
        self._files[label] = model
        self.model_combo.setCurrentIndex(index)
        self._last_model = index
        config = model.config
        self._on_message(
            f"Loaded {label}: width {config['width']}, {config['blocks']} blocks, {config['channels']} channel(s).",
            False,
        )
        return True

    def add_model(self, label: str, model) -> None:
        """Offer an XYDeblur already in memory (or a weights path, loaded) as ``label`` and select it."""
        if not hasattr(model, "config"):
            self.load_weights(model)
            return
        index = self.model_combo.findText(label)
        if index < 0:
            index = self.model_combo.count() - 1  # just above "Load weights..."
            self.model_combo.insertItem(index, label)
        self._files[label] = model
        self.model_combo.setCurrentIndex(index)
        self._last_model = index

    def suggest_model(self, suggestion) -> None:
        """Say which bundled model suits the input layer and why (a model_default.Suggestion,
        or None: no suggestion), and select it unless the user has chosen a model."""
        self._suggestion = suggestion
        self.model_note.setText(f"for this layer: {suggestion.why}" if suggestion else "")
        index = self.model_combo.findText(suggestion.name) if suggestion else -1
        if not self._user_chose_model and index >= 0:
            self.model_combo.setCurrentIndex(index)
            self._last_model = index

    def model_choice(self) -> str:
        """Why the current model: the suggestion's reason, or that the user chose it."""
        return choice_text(self.model_combo.currentText(), self._suggestion)

    def select_model(self, name) -> bool:
        """Select a bundled name, or load a weights path; False when it is neither."""
        index = self.model_combo.findText(str(name))
        if index >= 0 and str(name) != LOAD_WEIGHTS:
            self.model_combo.setCurrentIndex(index)
            self._last_model = index
            return True
        return Path(str(name)).is_file() and self.load_weights(name)

    def model(self):
        """The chosen model: an XYDeblur loaded from a file, a bundled name, or None."""
        text = self.model_combo.currentText()
        if text == LOAD_WEIGHTS or not text:
            return None
        return self._files.get(text, text)

    # --- device, precision, tile -----------------------------------------------------------
    def device(self) -> str:
        return self.device_combo.currentText()

    def precision(self) -> str:
        return self.precision_combo.currentText()

    def update_device_label(self, *_) -> None:
        from ..engine.device import describe, pick_device, pick_dtype, precision_name

        try:
            device = pick_device(self.device())
            dtype = precision_name(pick_dtype(self.precision(), device))
            self.device_label.setText(f"{describe(device)}, {dtype}")
        except (ValueError, RuntimeError) as err:
            self.device_label.setText(str(err))

    def tile(self):
        """``'auto'`` or an int of at least 64; ValueError with a readable message otherwise."""
        text = self.tile_combo.currentText().strip().lower()
        if text in ("", "auto"):
            return "auto"
        try:
            value = int(text)
        except ValueError:
            raise ValueError(f"tile must be 'auto' or a number of pixels, not {text!r}") from None
        if value < 64:
            raise ValueError(f"tile must be at least 64 pixels, not {value}")
        return value

    def engine_options(self) -> dict:
        return {"device": self.device(), "precision": self.precision(), "tile": self.tile()}
