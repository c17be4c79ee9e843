"""The XYDeblur dock widget (Plugins > XYDeblur, Layers > Filter > XYDeblur).

Pick an image layer, a model (the bundled one that suits the layer is preselected, and the
label under the list says why) and where to run it, then Run: the restoration runs in a
napari ``thread_worker`` generator (:func:`napari_deblur.plugin.xydeblur_job.run_job`), its
progress shows in the widget and in napari's activity dock, and Cancel stops it between
two batches of tiles without touching any layer. When it is done the widget adds (or
replaces) ``<name> deblurred``, ``<name> r_hor``, ``<name> r_ver`` and, for RGB input,
``<name> chroma`` (for "current slice", the plane alone, placed on it: see
:mod:`napari_deblur.plugin.plane`); it shows the colour shift of the residuals over the whole image or a
Shapes layer's region, and PSNR/SSIM against a reference layer when one is picked.
Compare shows input, restored and the two residuals side by side in a grid.

torch and the engine are imported when the widget is built or runs, not at import.
"""

from qtpy.QtGui import QFontDatabase
from qtpy.QtWidgets import QCheckBox, QComboBox, QFormLayout, QHBoxLayout, QLabel, QProgressBar, QPushButton, QVBoxLayout, QWidget

from .axes import is_stack, layer_axes, layer_shape, plane_index
from .compare import CompareView
from .xydeblur_job import Job, can_be_lazy, lazy_restored, run_job
from .running import start_worker
from .layers import add_outputs, output_name, source_properties
from .model_default import suggest_predictor
from .options import RunOptions
from .plane import part_translate
from .readout import compute_shift, format_metrics, format_shift, region_mask

NO_REFERENCE = "(none)"
WHOLE_IMAGE = "(whole image)"
SCOPES = ("current slice", "whole stack")


class XYDeblurWidget(QWidget):
    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.worker = None  # the running thread_worker, if any
        self.last = None  # (JobOutput, context) of the last finished run
        self._context = None  # what the running job was started with
        self._cancelled = False
        self._pbar = None
        self._region_layer = None
        self.compare_view = CompareView(napari_viewer)
        self._build()
        for event in ("inserted", "removed", "reordered", "renamed"):
            getattr(napari_viewer.layers.events, event).connect(self.refresh_layers)
        self.refresh_layers()

    def _build(self) -> None:
        self.input_combo, self.reference_combo, self.region_combo = QComboBox(), QComboBox(), QComboBox()
        self.scope_combo = QComboBox()
        self.scope_combo.addItems(SCOPES)
        self.scope_combo.setToolTip("current slice: the YX plane at the viewer's dims point (fast preview)")
        self.options = RunOptions(on_message=self.say)
        self.lazy_check = QCheckBox("lazy (restore planes as you view them)")
        self.lazy_check.setToolTip("For dask or very large layers: adds '<name> deblurred' at once, and each plane "
                                   "is restored when napari draws it (no residual layers)")
        self.lazy_check.setEnabled(False)
        self.input_combo.currentIndexChanged.connect(self._update_lazy)
        self.run_button, self.cancel_button = QPushButton("Run"), QPushButton("Cancel")
        self.compare_button = QPushButton("Compare")
        self.compare_button.setCheckable(True)
        self.compare_button.setToolTip("Input, restored, r_hor and r_ver side by side (grid view); again to go back")
        self.cancel_button.setEnabled(False)
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        self.compare_button.clicked.connect(self.toggle_compare)
        self.region_combo.currentIndexChanged.connect(self._region_changed)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self.status_label, self.metrics_label, self.readout_label = QLabel(), QLabel(), QLabel()
        self.status_label.setWordWrap(True)
        self.readout_label.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))

        form = QFormLayout()
        form.addRow("image", self.input_combo)
        form.addRow(self.options)
        form.addRow("scope", self.scope_combo)
        form.addRow("", self.lazy_check)
        form.addRow("reference", self.reference_combo)
        form.addRow("colour region", self.region_combo)
        buttons = QHBoxLayout()
        for button in (self.run_button, self.cancel_button, self.compare_button):
            buttons.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        for widget in (self.progress_bar, self.status_label, self.metrics_label, self.readout_label):
            layout.addWidget(widget)
        layout.addStretch(1)

    # --- layer lists ---------------------------------------------------------------------
    def refresh_layers(self, *_) -> None:
        from napari.layers import Image, Shapes

        images = [layer.name for layer in self.viewer.layers if isinstance(layer, Image)]
        shapes = [layer.name for layer in self.viewer.layers if isinstance(layer, Shapes)]
        refill_combo(self.input_combo, images)
        refill_combo(self.reference_combo, [NO_REFERENCE, *images])
        refill_combo(self.region_combo, [WHOLE_IMAGE, *shapes])
        self._update_lazy()

    def _update_lazy(self, *_) -> None:
        """The lazy option is offered for dask layers and layers over xydeblur_job.LAZY_THRESHOLD; the
        bundled model follows the layer until the user picks one (see _suggest_model)."""
        layer = self._layer(self.input_combo)
        if layer is not None:
            self._suggest_model(layer)
        usable = layer is not None and not layer.multiscale and can_be_lazy(layer.data)
        self.lazy_check.setEnabled(usable)
        if not usable:
            self.lazy_check.setChecked(False)

    def _suggest_model(self, layer) -> None:
        """The engine's default model for the layer's dtype, channels and axes, and why
        (:mod:`napari_deblur.plugin.model_default`), under the model list."""
        try:
            self.options.suggest_model(suggest_predictor(layer))
        except ValueError:  # axes the plugin cannot tell: make_job says so at Run
            self.options.suggest_model(None)

    def _layer(self, combo):
        name = combo.currentText()
        return self.viewer.layers[name] if name in self.viewer.layers else None

    def say(self, text: str, error: bool = False) -> None:
        self.status_label.setText(text)
        self.status_label.setStyleSheet("color: #e05050;" if error else "")

    # --- running -------------------------------------------------------------------------
    def make_job(self, layer):
        """The Job and its context for ``layer`` with the current settings (ValueError if none)."""
        if layer.multiscale:
            raise ValueError("multiscale (pyramid) layers are not supported: open the full-resolution image")
        model = self.options.model()
        if model is None:
            raise ValueError("Pick a model, or load your weights with 'Load weights...'.")
        axes, shape = layer_axes(layer), layer_shape(layer)
        whole = self.scope_combo.currentText() == "whole stack" or not is_stack(axes)
        index = None if whole else plane_index(layer, axes, self.viewer.dims.point)
        reference, notes = self._layer(self.reference_combo), []
        if reference is not None and layer_shape(reference) != shape:
            notes.append(f"reference {reference.name!r} skipped: shape {layer_shape(reference)} is not {shape}")
            reference = None
        region = None
        if layer.rgb:
            yx = (shape[axes.index("Y")], shape[axes.index("X")])
            region = region_mask(self._layer(self.region_combo), layer.scale, layer.translate, yx)
        job = Job(data=layer.data, axes=axes, model=model, options=self.options.engine_options(), index=index,
                  rgb=bool(layer.rgb), reference=None if reference is None else reference.data, region=region)
        plane = None if index is None else {a: i for a, i in zip(axes, index) if not isinstance(i, slice)}
        props = source_properties(layer)
        context = {"name": layer.name, "props": props, "rgb": bool(layer.rgb), "axes": axes,
                   "scope": "whole stack" if index is None else "current slice", "plane": plane,
                   "translate": part_translate(props["translate"], props["scale"], index, bool(layer.rgb)),
                   "reference": None if reference is None else reference.name, "notes": notes,
                   "model_choice": self.options.model_choice()}
        return job, context

    def run(self) -> None:
        if self.worker is not None:
            return
        layer = self._layer(self.input_combo)
        if layer is None:
            self.say("Pick an image layer to deblur.", error=True)
            return
        if self.lazy_check.isEnabled() and self.lazy_check.isChecked():
            self.run_lazy(layer)
            return
        try:
            job, self._context = self.make_job(layer)
        except (ValueError, TypeError) as err:
            self.say(str(err), error=True)
            return
        self.options.update_device_label()  # free memory as of now
        self._cancelled = False
        start_worker(self, run_job, job, desc=f"XYDeblur {layer.name}", on_yielded=self._on_progress)
        self.say(f"Deblurring {layer.name} ({self._context['scope']}, axes {self._context['axes']})...")
        self.worker.start()

    def run_lazy(self, layer):
        """Add ``<name> deblurred`` as a lazy dask layer: napari restores the planes it shows."""
        if layer.multiscale:
            self.say("multiscale (pyramid) layers are not supported: open the full-resolution image", error=True)
            return None
        model = self.options.model()
        if model is None:
            self.say("Pick a model, or load your weights with 'Load weights...'.", error=True)
            return None
        axes = layer_axes(layer)
        try:
            job = Job(data=layer.data, axes=axes, model=model, options=self.options.engine_options(),
                      rgb=bool(layer.rgb))
            data, scaling = lazy_restored(job)
        except (ValueError, TypeError, RuntimeError) as err:
            self.say(f"XYDeblur (lazy) failed: {err}", error=True)
            return None
        provenance = {"source_layer": layer.name, "scope": "lazy", "axes": axes, "normalize": scaling.mode,
                      "model_choice": self.options.model_choice(),
                      "scaling_offset": [float(v) for v in scaling.offset],
                      "scaling_scale": [float(v) for v in scaling.scale], **self.options.engine_options()}
        provenance = {k: v for k, v in provenance.items() if v is not None}
        try:
            added = add_outputs(self.viewer, layer.name, {"restored": data}, source_properties(layer), provenance,
                                rgb=bool(layer.rgb), limits={})
        except (ValueError, TypeError) as err:
            self.say(f"XYDeblur (lazy) could not add the layer: {err}", error=True)
            return None
        self.say(f"Added {output_name(layer.name, 'restored')!r}: lazy, each plane is restored when it is shown "
                 f"(intensity {scaling.mode}, the same for every plane).")
        return added["restored"]

    def cancel(self) -> None:
        if self.worker is not None:
            self._cancelled = True
            self.worker.quit()
            self.say("Cancelling after the current batch of tiles...")

    def _on_progress(self, step) -> None:
        self.progress_bar.setRange(0, max(1, step.total))
        self.progress_bar.setValue(step.done)
        self.progress_bar.setFormat(f"%p%  {step.message}")
        if self._pbar is not None:
            self._pbar.total = step.total
            self._pbar.set_description(f"XYDeblur: {step.message}")
        if self._pbar is not None:  # napari's progress processes events: the run may have ended meanwhile
            self._pbar.update(step.done - self._pbar.n)

    def _on_error(self, err) -> None:
        self.say(f"XYDeblur failed: {err}", error=True)

    def _on_finished(self) -> None:
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None
        self.worker = None
        self.run_button.setEnabled(True)
        self.cancel_button.setEnabled(False)
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setFormat("%p%")
        if self._cancelled:
            self.progress_bar.setValue(0)
            self.say("Cancelled: no layers were changed.")

    def _on_returned(self, output) -> None:
        if self._cancelled:  # quit() came after the last tile: drop the result
            return
        ctx = self._context
        name, rgb, info = ctx["name"], ctx["rgb"], output.info
        provenance = {"source_layer": name, "scope": ctx["scope"], "plane": ctx["plane"], "axes": ctx["axes"],
                      **{k: v for k, v in info.items() if isinstance(v, (str, int, float))},
                      "model_choice": ctx["model_choice"]}  # the engine was given the widget's model
        outputs = {"restored": output.restored, "r_hor": output.r_hor, "r_ver": output.r_ver, "chroma": output.chroma}
        try:
            props = {**ctx["props"], "translate": ctx["translate"]}  # a plane sits on its plane
            add_outputs(self.viewer, name, outputs, props, provenance, rgb=rgb, limits=output.limits)
        except (ValueError, TypeError) as err:  # e.g. napari refusing an inherited property
            self.say(f"XYDeblur ran but the result could not be shown: {err}", error=True)
            return
        self.last = (output, ctx)
        plane = ctx["plane"]
        where = "" if plane is None else " (plane " + ", ".join(f"{a}={i}" for a, i in plane.items()) + ")"
        self.metrics_label.setText(format_metrics(output.metrics, (ctx["reference"] or "reference") + where))
        self.readout_label.setText(format_shift(output.shift, output.shift_where) if output.shift else "")
        notes = "; ".join(ctx["notes"])
        self.say(f"Done in {info.get('seconds', 0):.1f} s on {info.get('device')} ({info.get('precision')}, "
                 f"tile {info.get('tile')}, {info.get('channel_mode')}). Model {ctx['model_choice']}."
                 + (f" Note: {notes}" if notes else ""))

    # --- colour region and compare ---------------------------------------------------------
    def _region_changed(self, *_) -> None:
        if self._region_layer is not None:
            self._region_layer.events.data.disconnect(self.update_readout)
        self._region_layer = self._layer(self.region_combo)
        if self._region_layer is not None:
            self._region_layer.events.data.connect(self.update_readout)
        self.update_readout()

    def update_readout(self, *_) -> None:
        """Recompute the colour shift of the last RGB run over the chosen region."""
        if self.last is None or not self.last[1]["rgb"]:
            return
        output, ctx = self.last
        yx = output.part.shape[-3:-1]
        mask = region_mask(self._region_layer, ctx["props"]["scale"], ctx["props"]["translate"], yx)
        shift, where = compute_shift(output.part, output.part_r_hor, output.part_r_ver, mask)
        output.shift, output.shift_where = shift, where
        self.readout_label.setText(format_shift(shift, where))

    def compare_layers(self) -> list:
        if self.last is None:
            return []
        name = self.last[1]["name"]
        names = [name] + [output_name(name, kind) for kind in ("restored", "r_hor", "r_ver")]
        return [self.viewer.layers[n] for n in names if n in self.viewer.layers]

    def toggle_compare(self, *_) -> None:
        try:
            active = self.compare_view.toggle(self.compare_layers())
        except ValueError as err:
            self.say(str(err), error=True)
            active = False
        self.compare_button.setChecked(active)

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        self.cancel()
        super().closeEvent(event)


def refill_combo(combo: QComboBox, names: list) -> None:
    """Replace a combo's items, keeping the current choice when it still exists."""
    current = combo.currentText()
    combo.blockSignals(True)
    combo.clear()
    combo.addItems(names)
    if current in names:
        combo.setCurrentIndex(names.index(current))
    combo.blockSignals(False)
    if combo.currentText() != current:
        combo.currentIndexChanged.emit(combo.currentIndex())
