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
Compare shows input, restored and the two residuals side by side in a grid. Before a run on
the CPU, a label says about how long it will take (:mod:`napari_deblur.plugin.estimate`). What it shares
with the diffusion widget (layer lists, the run and its worker) is in
:mod:`napari_deblur.plugin.dock`.

torch and the engine are imported when the widget is built or runs, not at import.
"""

from qtpy.QtGui import QFontDatabase
from qtpy.QtWidgets import QCheckBox, QComboBox, QLabel, QPushButton

from .axes import layer_axes
from .compare import CompareView
from .dock import DockWidget, check_single_scale, gate_warnings, notes_text, refill_combo
from .estimate import CPU_SECONDS_PER_MP, cpu_seconds, format_estimate, rate_from_run, run_size
from .layers import add_in_steps, add_outputs, output_layers, output_name, source_properties
from .model_default import suggest_predictor
from .readout import compute_shift, format_shift, region_mask
from .xydeblur_job import Job, can_be_lazy, lazy_restored, run_job

WHOLE_IMAGE = "(whole image)"
NO_MODEL = "Pick a model, or load your weights with 'Load weights...'."


class XYDeblurWidget(DockWidget):
    title = "XYDeblur"
    cancelling_message = "Cancelling after the current batch of tiles..."
    job_function = staticmethod(run_job)

    def __init__(self, napari_viewer):
        super().__init__(napari_viewer)
        self._region_layer = None
        self._rates = {}  # model list text -> seconds per megapixel that model took in a finished CPU run
        self.compare_view = CompareView(napari_viewer)
        self._build()
        self.watch_layers()
        self.update_estimate()

    def _build(self) -> None:
        self.region_combo = QComboBox()
        self.lazy_check = QCheckBox("lazy (restore planes as you view them)")
        self.lazy_check.setToolTip(
            "For dask or very large layers: adds '<name> deblurred' at once, and each plane "
            "is restored when napari draws it (no residual layers)"
        )
        self.lazy_check.setEnabled(False)
        self.input_combo.currentIndexChanged.connect(self._update_lazy)
        self.compare_button = QPushButton("Compare")
        self.compare_button.setCheckable(True)
        self.compare_button.setToolTip("Input, restored, r_hor and r_ver side by side (grid view); again to go back")
        self.compare_button.clicked.connect(self.toggle_compare)
        self.region_combo.currentIndexChanged.connect(self._region_changed)
        self.estimate_label = QLabel()
        self.estimate_label.setToolTip(
            "How long the run will take on this machine's CPU (from the last CPU run once there is one)"
        )
        for combo in (self.input_combo, self.scope_combo, self.options.device_combo, self.options.model_combo):
            combo.currentIndexChanged.connect(self.update_estimate)
        self.readout_label = QLabel()
        self.readout_label.setFont(QFontDatabase.systemFont(QFontDatabase.SystemFont.FixedFont))
        rows = [
            ("image", self.input_combo),
            (self.options,),
            ("scope", self.scope_combo),
            ("", self.lazy_check),
            ("estimate", self.estimate_label),
            ("reference", self.reference_combo),
            ("colour region", self.region_combo),
        ]
        self.lay_out(
            rows,
            (self.run_button, self.cancel_button, self.compare_button),
            (self.progress_bar, self.status_label, self.metrics_label, self.readout_label),
        )

    # --- layer lists ---------------------------------------------------------------------
    def layers_changed(self) -> None:
        from napari.layers import Shapes

        shapes = [layer.name for layer in self.viewer.layers if isinstance(layer, Shapes)]
        refill_combo(self.region_combo, [WHOLE_IMAGE, *shapes])
        self._update_lazy()

    def _update_lazy(self, *_) -> None:
        """The lazy option is offered for dask layers and layers over xydeblur_job.LAZY_THRESHOLD; the
        bundled model follows the layer until the user picks one (see _suggest_model)."""
        layer = self.combo_layer(self.input_combo)
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

    # --- running -------------------------------------------------------------------------
    def make_job(self, layer):
        """The Job and its context for ``layer`` with the current settings (ValueError if none)."""
        check_single_scale(layer)
        model = self.options.model()
        if model is None:
            raise ValueError(NO_MODEL)
        axes, shape, index, reference, notes = self.run_target(layer)
        region = None
        if layer.rgb:
            yx = (shape[axes.index("Y")], shape[axes.index("X")])
            region = region_mask(self.combo_layer(self.region_combo), layer.scale, layer.translate, yx)
        job = Job(
            data=layer.data,
            axes=axes,
            model=model,
            options=self.options.engine_options(),
            index=index,
            rgb=bool(layer.rgb),
            reference=None if reference is None else reference.data,
            region=region,
        )
        context = self.run_context(layer, axes, index, reference, notes, model_choice=self.options.model_choice())
        return job, context

    def run(self) -> None:
        """Start a run; with "lazy" ticked, add the lazy layer instead (:meth:`run_lazy`)."""
        if self.worker is None and self.lazy_check.isEnabled() and self.lazy_check.isChecked():
            layer = self.combo_layer(self.input_combo)
            if layer is not None:
                self.run_lazy(layer)
                return
        super().run()

    def announce_run(self, layer) -> None:
        self.say(f"Deblurring {layer.name} ({self.context['scope']}, axes {self.context['axes']})...")

    def run_lazy(self, layer):
        """Add ``<name> deblurred`` as a lazy dask layer: napari restores the planes it shows."""
        try:
            check_single_scale(layer)
        except ValueError as err:
            self.say(str(err), error=True)
            return None
        model = self.options.model()
        if model is None:
            self.say(NO_MODEL, error=True)
            return None
        axes = layer_axes(layer)
        try:
            job = Job(
                data=layer.data, axes=axes, model=model, options=self.options.engine_options(), rgb=bool(layer.rgb)
            )
            data, scaling = lazy_restored(job)
        except (ValueError, TypeError, RuntimeError) as err:
            self.say(f"XYDeblur (lazy) failed: {err}", error=True)
            return None
        provenance = {
            "source_layer": layer.name,
            "scope": "lazy",
            "axes": axes,
            "normalize": scaling.mode,
            "model_choice": self.options.model_choice(),
            "scaling_offset": [float(v) for v in scaling.offset],
            "scaling_scale": [float(v) for v in scaling.scale],
            **self.options.engine_options(),
        }
        provenance = {k: v for k, v in provenance.items() if v is not None}
        try:
            added = add_outputs(
                self.viewer,
                layer.name,
                {"restored": data},
                source_properties(layer),
                provenance,
                rgb=bool(layer.rgb),
                limits={},
            )
        except (ValueError, TypeError) as err:
            self.say(f"XYDeblur (lazy) could not add the layer: {err}", error=True)
            return None
        self.say(
            f"Added {output_name(layer.name, 'restored')!r}: lazy, each plane is restored when it is shown "
            f"(intensity {scaling.mode}, the same for every plane)."
        )
        return added["restored"]

    # --- the CPU time estimate ----------------------------------------------------------
    def update_estimate(self, *_) -> None:
        """'about 12 s on the CPU' for a run with the current layer, scope, model and device
        (nothing on a GPU, for a lazy run, or when the layer cannot be run)."""
        self.estimate_label.setText(self.estimate_text())

    def estimate_text(self) -> str:
        import torch

        size = self.cpu_run_size()
        if size is None:
            return ""
        rate = self._rates.get(self.options.model_combo.currentText(), CPU_SECONDS_PER_MP)
        return format_estimate(cpu_seconds(*size, seconds_per_mp=rate, threads=torch.get_num_threads()))

    def remember_rate(self, info: dict, part_shape, part_axes: str) -> None:
        """Keep the per-megapixel rate a finished CPU run showed, for the next estimates."""
        import torch

        if not str(info.get("device", "")).startswith("cpu"):
            return
        try:
            height, width, planes, colour = run_size(part_axes, part_shape)
        except ValueError:
            return
        passes = colour if info.get("channel_mode") == "per-channel" else 1
        rate = rate_from_run(info.get("seconds", 0.0), height, width, planes, passes, torch.get_num_threads())
        if rate is not None:
            self._rates[self.options.model_combo.currentText()] = rate
            self.update_estimate()

    def on_yielded(self, step) -> None:
        """An engine Progress: the widget's bar and the activity dock follow it."""
        self.show_progress(step.done, step.total, step.message)
        self.update_activity(step.done, step.total, step.message)

    def show_result(self, output):
        """Add the output layers one per event-loop turn (a generator: see DockWidget.turns),
        then show the metrics, the colour shift and what the run did."""
        ctx = self.context
        name, info = ctx["name"], output.info
        outputs = {"restored": output.restored, "r_hor": output.r_hor, "r_ver": output.r_ver, "chroma": output.chroma}
        props = {**ctx["props"], "translate": ctx["part_translate"]}  # a plane sits on its plane
        planned = output_layers(outputs, props, self.provenance(ctx, info), rgb=ctx["rgb"], limits=output.limits)
        yield from add_in_steps(self.viewer, name, planned, {})
        self.last = (output, ctx)
        self.metrics_label.setText(self.metrics_text(output, ctx))
        self.readout_label.setText(format_shift(output.shift, output.shift_where) if output.shift else "")
        self.remember_rate(info, output.part.shape, output.part_axes)
        self.say(
            f"Done in {info.get('seconds', 0):.1f} s on {info.get('device')} ({info.get('precision')}, "
            f"tile {info.get('tile')}, {info.get('channel_mode')}). Model {ctx['model_choice']}."
            + notes_text(ctx["notes"] + gate_warnings(*info.get("bundled_weights", [])))
        )

    # --- colour region and compare ---------------------------------------------------------
    def _region_changed(self, *_) -> None:
        if self._region_layer is not None:
            self._region_layer.events.data.disconnect(self.update_readout)
        self._region_layer = self.combo_layer(self.region_combo)
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
