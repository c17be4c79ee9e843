"""The "Diffusion deblur" dock widget (Plugins > Diffusion deblur, Layers > Filter).

Predict and refine: an XYDeblur predictor gives a first estimate and a ResidualDenoiser
samples the rest by reverse diffusion (:mod:`napari_deblur.diffusion.refine`). Pick an
image layer, a denoiser (a bundled one, or "Load weights..."; until the user picks one,
the bundled denoiser follows the layer by the engine's policy, and a label says which and
why: :mod:`napari_deblur.plugin.model_default`), the predictor it pairs with (chosen from
the denoiser's manifest or header when it names one), the number of steps, samples, seed
and sampler, and where to run it, then Run.

The run is a napari ``thread_worker`` generator
(:func:`napari_deblur.plugin.diffusion_job.run_diffusion`) that yields after every step,
so Cancel stops it within one step. While it runs, ``<name> x0 estimate`` and
``<name> z_t`` show the first sample in flight (at most ~10 redraws a second; the input
until the first frame) and the
progress bar shows steps/s and the time left. At the end the widget adds (or replaces)
``<name> mean``, ``<name> std`` (an uncertainty map, colormap magma), ``<name> trajectory``
(x0 of sample 0 every k-th step, its own slider axis) and, with "keep samples",
``<name> samples`` (a slider over the samples), and removes its live layers (the
trajectory's last frame is the final x0 estimate), one layer per event-loop turn so that
napari never stalls (:meth:`napari_deblur.plugin.dock.DockWidget.turns`). A cancelled or failed run removes its
live layers and adds nothing else. What it shares with the XYDeblur widget (layer lists,
the run and its worker) is in :mod:`napari_deblur.plugin.dock`; the sampling controls are
:class:`napari_deblur.plugin.sampling.SamplingControls` and the live layers
:class:`napari_deblur.plugin.live.LiveLayers`.

torch and the engine are imported when the widget is built or runs, not at import.
"""

import time
from pathlib import Path

from qtpy.QtCore import Qt
from qtpy.QtWidgets import QCheckBox, QComboBox, QFileDialog, QLabel

from .diffusion_job import DiffusionJob, run_diffusion
from .dock import ERROR_STYLE, DockWidget, check_single_scale, gate_warnings, notes_text
from .estimate import diffusion_cpu_seconds, format_estimate, speed_factor
from .layers import add_in_steps, output_kwargs, stacked_kwargs
from .live import LiveLayers
from .model_default import choice_text, suggest_denoiser
from .options import LOAD_WEIGHTS, WEIGHTS_FILTER
from .plane import keepdims_index
from .sampling import SamplingControls

NO_DENOISER = (
    "No denoiser weights are bundled yet: load a ResidualDenoiser file (.safetensors, .pt) with 'Load weights...'."
)


class DiffusionDeblurWidget(DockWidget):
    title = "Diffusion deblur"
    model_label = "predictor"
    cancelling_message = "Cancelling after the current step..."
    cancelled_message = "Cancelled: the live layers were removed; no mean or std was added."
    settings = ("steps", "samples", "seed", "sampler")
    job_function = staticmethod(run_diffusion)

    def __init__(self, napari_viewer):
        super().__init__(napari_viewer)
        self._failed = False
        self._started = 0.0
        self._denoisers = {}  # combo text -> ResidualDenoiser loaded from a file or given in memory
        self._last_denoiser = 0
        self._user_chose_denoiser = False  # until then the bundled denoiser follows the input layer
        self._suggestion = None  # the model_default.Suggestion for the input layer
        self._speed = {}  # denoiser list text -> measured / estimated seconds of its last finished CPU run
        self._run_estimate = (None, None)  # (denoiser list text, estimated seconds) of the run under way
        self.live = LiveLayers(napari_viewer)  # the x0 and z_t layers of the running job
        self._build()
        self.input_combo.currentIndexChanged.connect(self._follow_layer)
        self.watch_layers()
        self._denoiser_chosen(self.denoiser())  # a preselected bundled denoiser brings its predictor
        self.update_ready()
        self.update_estimate()

    # --- building --------------------------------------------------------------------------
    def _build(self) -> None:
        from ..models.registry import available_models  # imports torch

        self.denoiser_combo = QComboBox()
        self.denoiser_combo.addItems(available_models("ResidualDenoiser"))
        self.denoiser_combo.addItem(LOAD_WEIGHTS)
        self.denoiser_combo.setToolTip("A bundled diffusion denoiser, or your own ResidualDenoiser weights")
        self.denoiser_combo.activated.connect(self._denoiser_activated)
        self.denoiser_combo.currentIndexChanged.connect(self.update_ready)
        # however the denoiser changes (user, script, restore), its named predictor follows
        self.denoiser_combo.currentIndexChanged.connect(lambda _: self._denoiser_chosen(self.denoiser()))
        self.model_label, self.choice_label = QLabel(), QLabel()
        self.model_label.setWordWrap(True)
        self.choice_label.setWordWrap(True)
        self.options.model_combo.setToolTip("The XYDeblur the denoiser was trained with (its first estimate)")
        sampling = self.sampling = SamplingControls()
        # the sampling controls and actions are the widget's attributes too (scripts and tests use them)
        self.steps_slider, self.samples_spin = sampling.steps_slider, sampling.samples_spin
        self.seed_spin, self.dice_button = sampling.seed_spin, sampling.dice_button
        self.preset_buttons, self.sampler_combo = sampling.preset_buttons, sampling.sampler_combo
        self.apply_preset, self.roll_seed = sampling.apply_preset, sampling.roll_seed
        self.estimate_label = QLabel()
        self.estimate_label.setToolTip("About how long the run will take on this machine's CPU (a measured rate)")
        for combo in (self.input_combo, self.scope_combo, self.options.device_combo, self.options.model_combo):
            combo.currentIndexChanged.connect(self.update_estimate)
        self.steps_slider.valueChanged.connect(self.update_estimate)
        self.samples_spin.valueChanged.connect(self.update_estimate)
        self.keep_samples_check = QCheckBox("keep samples")
        self.keep_samples_check.setToolTip("Also show every sample as one stack layer (N full images in memory)")
        rows = [
            ("image", self.input_combo),
            ("denoiser", self.denoiser_combo),
            ("", self.choice_label),
            ("", self.model_label),
            (self.options,),
            *self.sampling.rows(),
            ("", self.keep_samples_check),
            ("scope", self.scope_combo),
            ("estimate", self.estimate_label),
            ("reference", self.reference_combo),
        ]
        self.lay_out(
            rows, (self.run_button, self.cancel_button), (self.progress_bar, self.status_label, self.metrics_label)
        )

    def update_estimate(self, *_) -> None:
        """'about 40 s on the CPU' for the current layer, scope, steps and samples (nothing on a
        GPU or without a layer), scaled by how the denoiser's last CPU run compared with its
        estimate on this machine."""
        seconds = self.reference_estimate()
        if seconds is not None:
            seconds *= self._speed.get(self.denoiser_combo.currentText(), 1.0)
        self.estimate_label.setText("" if seconds is None else format_estimate(seconds))

    def reference_estimate(self) -> float | None:
        """Seconds of a run with the current settings at the reference machine's rates (None
        when it would not run on the CPU)."""
        import torch

        size = self.cpu_run_size()
        if size is None:
            return None
        steps, samples = self.steps_slider.value(), self.samples_spin.value()
        return diffusion_cpu_seconds(*size, steps=steps, samples=samples, threads=torch.get_num_threads())

    def remember_speed(self, info: dict) -> None:
        """After a finished CPU run: keep how far off its estimate was, for the next estimates."""
        name, estimated = self._run_estimate
        self._run_estimate = (None, None)
        if name is None or not str(info.get("device", "")).startswith("cpu"):
            return
        factor = speed_factor(info.get("seconds", 0.0), estimated)
        if factor is not None:
            self._speed[name] = factor
            self.update_estimate()

    # --- layer lists ---------------------------------------------------------------------
    def own_layer_names(self) -> list:
        """The live layers of the running job, which are no input."""
        return self.live.names()

    def layers_changed(self) -> None:
        self._follow_layer()

    def _follow_layer(self, *_) -> None:
        """Say which bundled denoiser suits the input layer and why (the engine's policy), and
        select it until the user picks or loads one; its predictor follows."""
        layer, combo = self.combo_layer(self.input_combo), self.denoiser_combo
        listed = [combo.itemText(i) for i in range(combo.count()) if combo.itemText(i) != LOAD_WEIGHTS]
        try:
            self._suggestion = suggest_denoiser(layer, listed) if layer is not None and listed else None
        except ValueError:  # axes the plugin cannot tell: make_job says so at Run
            self._suggestion = None
        self.choice_label.setText(f"for this layer: {self._suggestion.why}" if self._suggestion else "")
        if self._suggestion is None or self._user_chose_denoiser:
            return
        index = combo.findText(self._suggestion.name)
        if index >= 0 and index != combo.currentIndex():
            combo.setCurrentIndex(index)
            self._last_denoiser = index

    # --- models ------------------------------------------------------------------------------
    def denoiser(self):
        """The chosen denoiser: a module loaded from a file or given in memory, a bundled name, or None."""
        text = self.denoiser_combo.currentText()
        if text == LOAD_WEIGHTS or not text:
            return None
        return self._denoisers.get(text, text)

    def _denoiser_activated(self, index: int) -> None:
        if self.denoiser_combo.itemText(index) != LOAD_WEIGHTS:
            self._last_denoiser = index
            self._user_chose_denoiser = True
            return
        path, _ = QFileDialog.getOpenFileName(self, "Load denoiser weights", "", WEIGHTS_FILTER)
        if not (path and self.load_denoiser(path)):
            self.denoiser_combo.setCurrentIndex(self._last_denoiser)
        self.update_ready()

    def load_denoiser(self, path) -> bool:
        """Load a ResidualDenoiser weights file and select it (and the predictor it names);
        False and a message when it cannot be used."""
        from ..models.weights import WeightsError, load_denoiser

        path = Path(path)
        try:
            model = load_denoiser(path)
        except (WeightsError, OSError) as err:
            self.say(f"Cannot use {path.name}: {err}", error=True)
            self.denoiser_combo.setCurrentIndex(self._last_denoiser)
            self.update_ready()
            return False
        self._add_denoiser(path.name, model, tooltip=str(path))
        config = model.config
        self.say(f"Loaded {path.name}: width {config['width']}, {config['channels']} channel(s).")
        return True

    def _add_denoiser(self, label: str, model, tooltip: str = "") -> None:
        index = self.denoiser_combo.findText(label)
        if index < 0:
            index = self.denoiser_combo.count() - 1  # just above "Load weights..."
            self.denoiser_combo.insertItem(index, label)
        if tooltip:
            self.denoiser_combo.setItemData(index, tooltip, Qt.ItemDataRole.ToolTipRole)
        self._denoisers[label] = model
        self._user_chose_denoiser = True
        self.denoiser_combo.setCurrentIndex(index)
        self._last_denoiser = index
        self._denoiser_chosen(model)
        self.update_ready()

    def _denoiser_chosen(self, model) -> None:
        """Select the predictor the denoiser names (bundled name or file), if it names one."""
        if model is None:
            return
        if isinstance(model, str):
            from ..models.weights import WeightsError, model_manifest

            try:
                predictor = model_manifest(model).get("predictor")
            except (WeightsError, KeyError, ValueError):
                predictor = None
        else:
            predictor = getattr(model, "weights_info", {}).get("predictor")
        if predictor and self.options.select_model(predictor):
            self.model_label.setText(f"predictor: {Path(str(predictor)).name} (named by the denoiser)")
        elif predictor:
            self.model_label.setText(f"the denoiser names the predictor {predictor!r}, which is not here: pick it")
        else:
            self.model_label.setText("the denoiser does not name its predictor: pick the XYDeblur it pairs with")

    def set_models(self, predictor=None, denoiser=None) -> None:
        """Use these models (modules in memory, or weights paths), e.g. from a script or a test."""
        if denoiser is not None:
            if hasattr(denoiser, "config"):
                name = getattr(denoiser, "weights_info", {}).get("name") or "ResidualDenoiser (in memory)"
                self._add_denoiser(name, denoiser)
            else:
                self.load_denoiser(denoiser)
        if predictor is not None:
            self.options.add_model(
                getattr(predictor, "weights_info", {}).get("name") or "XYDeblur (in memory)", predictor
            )

    # --- running -------------------------------------------------------------------------
    @property
    def preview_count(self) -> int:
        """The preview frames drawn in the current (or last) run."""
        return self.live.count

    def make_job(self, layer):
        """The DiffusionJob and its context for ``layer`` with the current settings (ValueError if none)."""
        check_single_scale(layer)
        denoiser = self.denoiser()
        if denoiser is None:
            raise ValueError(NO_DENOISER)
        predictor = self.options.model()
        if predictor is None and hasattr(denoiser, "weights_info"):
            predictor = denoiser.weights_info.get("predictor")
        if predictor is None and not isinstance(denoiser, str):
            raise ValueError("Pick the predictor (the XYDeblur the denoiser was trained with).")
        model = denoiser if predictor is None else (predictor, denoiser)  # a bundled denoiser names its own
        axes, _, index, reference, notes = self.run_target(layer)
        self._run_estimate = (self.denoiser_combo.currentText(), self.reference_estimate())
        job = DiffusionJob(
            data=layer.data,
            axes=axes,
            model=model,
            **self.sampling.values(),
            options=self.options.engine_options(),
            index=index,
            rgb=bool(layer.rgb),
            reference=None if reference is None else reference.data,
            keep_samples=self.keep_samples_check.isChecked(),
        )
        context = self.run_context(
            layer,
            axes,
            index,
            reference,
            notes,
            steps=job.steps,
            samples=job.samples,
            seed=job.seed,
            sampler=job.sampler,
            model_choice=choice_text(self.denoiser_combo.currentText(), self._suggestion),
        )
        return job, context

    def prepare_run(self, layer, job) -> bool:
        """Add the live layers (showing the input's part) before the worker starts."""
        self._failed = False
        try:
            start = layer.data if job.index is None else layer.data[keepdims_index(job.index)]
            self.live.create(start, self.context, self.provenance(self.context))
        except (ValueError, TypeError) as err:  # e.g. napari refusing an inherited property
            self.live.remove()
            self.say(f"Cannot show the live layers: {err}", error=True)
            return False
        return True

    def announce_run(self, layer) -> None:
        self.metrics_label.setText("")
        ctx = self.context
        self.say(
            f"Refining {layer.name} ({ctx['scope']}, {ctx['steps']} steps x {ctx['samples']} sample(s), "
            f"{ctx['sampler'].upper()}, seed {ctx['seed']})..."
        )
        self._started = time.perf_counter()

    def on_yielded(self, tick) -> None:
        """A DiffusionTick: progress with steps/s and the time left, and the preview frame if any."""
        if self.worker is None or self.cancelled:
            return
        elapsed = time.perf_counter() - self._started
        if tick.stage == "step":
            rate = tick.done / elapsed if elapsed > 0 else 0.0
            left = (tick.total - tick.done) / rate if rate > 0 else 0.0
            text = f"{tick.message}  {rate:.1f} steps/s, {_clock(left)} left"
        else:
            text = tick.message
        self.show_progress(tick.done, tick.total, text)
        if tick.x0 is not None:
            self.turns.add(self.live.show_in_steps(tick))  # one live layer per event-loop turn
        self.update_activity(tick.done, tick.total, tick.message)

    def on_error(self, err) -> None:
        self._failed = True
        super().on_error(err)

    def run_ended(self):
        """Remove the live layers one per turn (previews only: the result is the mean, std and
        trajectory)."""
        yield from self.live.remove_in_steps()
        if self._failed:
            self.progress_bar.setValue(0)

    def update_ready(self, *_) -> None:
        """Run is enabled only with a denoiser chosen and no run going; the label says why not."""
        has_model = self.denoiser() is not None
        if not has_model:
            bundled = self.denoiser_combo.count() > 1
            self.model_label.setText("Pick a denoiser, or load one with 'Load weights...'." if bundled else NO_DENOISER)
            self.model_label.setStyleSheet(ERROR_STYLE)
        elif self.model_label.styleSheet():
            self.model_label.setText("")
            self.model_label.setStyleSheet("")
        self.run_button.setEnabled(has_model and self.worker is None)

    def show_result(self, output):
        """Add the trajectory, samples, std and mean one per event-loop turn (a generator: see
        DockWidget.turns), then show the metrics and what the run did."""
        ctx = self.context
        name, rgb, props, info = ctx["name"], ctx["rgb"], ctx["props"], output.info
        provenance, translate = self.provenance(ctx, info), ctx["part_translate"]

        def kwargs(kind, **extra):
            return output_kwargs(kind, props, provenance, rgb=rgb, translate=translate, **extra)

        planned = []
        if output.trajectory.size:
            trajectory_kwargs = stacked_kwargs(kwargs("trajectory"), "step")
            trajectory_kwargs["metadata"]["napari_deblur"]["trajectory_steps"] = list(output.trajectory_steps)
            planned.append(("trajectory", output.trajectory, trajectory_kwargs))
        if output.samples is not None:
            planned.append(("samples", output.samples, stacked_kwargs(kwargs("samples"), "sample")))
        planned.append(("std", output.std, kwargs("std", limit=output.limits["std"][1])))
        planned.append(("mean", output.mean, kwargs("mean")))
        yield from add_in_steps(self.viewer, name, planned, {})
        self.last = (output, ctx)
        self.remember_speed(info)
        self.metrics_label.setText(self.metrics_text(output, ctx).replace("result", "mean"))
        self.say(
            f"Done: {info.get('steps')} steps x {info.get('samples')} sample(s) in {info.get('seconds', 0):.1f} s "
            f"on {info.get('device')} ({info.get('precision')}, tile {info.get('tile')}). "
            f"Denoiser {ctx['model_choice']}."
            + notes_text(ctx["notes"] + gate_warnings(*info.get("bundled_weights", [])))
        )


def _clock(seconds: float) -> str:
    seconds = int(round(max(0.0, seconds)))
    return (
        f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
        if seconds >= 3600
        else f"{seconds // 60}:{seconds % 60:02d}"
    )
