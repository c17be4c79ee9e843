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
trajectory's last frame is the final x0 estimate). A cancelled or failed run removes its
live layers and adds nothing else. What it shares with the XYDeblur widget (layer lists,
the run and its worker) is in :mod:`napari_deblur.plugin.dock`.

torch and the engine are imported when the widget is built or runs, not at import.
"""

import random
import time
from pathlib import Path

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSpinBox,
)

from .diffusion_job import DiffusionJob, run_diffusion
from .dock import ERROR_STYLE, DockWidget, check_single_scale, notes_text
from .layers import add_or_replace, output_kwargs, output_name, stacked_kwargs
from .model_default import choice_text, suggest_denoiser
from .options import LOAD_WEIGHTS, WEIGHTS_FILTER
from .plane import keepdims_index

SAMPLERS = ("DDPM", "DDIM")
PRESETS = {"Fidelity": (10, 8), "Perceptual": (500, 1)}  # (steps, samples)
MAX_STEPS = 1000
MAX_SEED = 2**31 - 1
LIVE = ("x0", "z_t")
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
        self.preview_count = 0  # preview frames drawn in the current/last run
        self._failed = False
        self._started = 0.0
        self._denoisers = {}  # combo text -> ResidualDenoiser loaded from a file or given in memory
        self._last_denoiser = 0
        self._user_chose_denoiser = False  # until then the bundled denoiser follows the input layer
        self._suggestion = None  # the model_default.Suggestion for the input layer
        self._live = {}  # kind -> layer of the running job
        self._build()
        self.input_combo.currentIndexChanged.connect(self._follow_layer)
        self.watch_layers()
        self._denoiser_chosen(self.denoiser())  # a preselected bundled denoiser brings its predictor
        self.update_ready()

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
        presets, seed_row = self._build_sampling()
        self.keep_samples_check = QCheckBox("keep samples")
        self.keep_samples_check.setToolTip("Also show every sample as one stack layer (N full images in memory)")
        rows = [
            ("image", self.input_combo),
            ("denoiser", self.denoiser_combo),
            ("", self.choice_label),
            ("", self.model_label),
            (self.options,),
            ("steps", self.steps_slider),
            ("presets", presets),
            ("samples", self.samples_spin),
            ("seed", seed_row),
            ("sampler", self.sampler_combo),
            ("", self.keep_samples_check),
            ("scope", self.scope_combo),
            ("reference", self.reference_combo),
        ]
        self.lay_out(
            rows, (self.run_button, self.cancel_button), (self.progress_bar, self.status_label, self.metrics_label)
        )

    def _build_sampling(self):
        """The steps slider, preset buttons, samples, seed (with its dice) and sampler controls;
        returns the preset and seed rows (layouts)."""
        from superqt import QLabeledSlider

        self.steps_slider = QLabeledSlider(Qt.Orientation.Horizontal)
        self.steps_slider.setRange(1, MAX_STEPS)
        self.steps_slider.setValue(PRESETS["Fidelity"][0])
        self.steps_slider.setToolTip(
            "Diffusion steps: few steps and several samples give a low-distortion mean, "
            "many steps sharper single samples"
        )
        self.preset_buttons = {}
        presets = QHBoxLayout()
        for name, (steps, samples) in PRESETS.items():
            button = QPushButton(name)
            button.setToolTip(f"{steps} steps, {samples} sample(s)")
            button.clicked.connect(lambda *_, n=name: self.apply_preset(n))
            self.preset_buttons[name] = button
            presets.addWidget(button)
        self.samples_spin = QSpinBox()
        self.samples_spin.setRange(1, 256)
        self.samples_spin.setValue(PRESETS["Fidelity"][1])
        self.samples_spin.setToolTip("Chains: the mean and the std are over them")
        self.seed_spin = QSpinBox()
        self.seed_spin.setRange(0, MAX_SEED)
        self.dice_button = QPushButton("\N{GAME DIE}")
        self.dice_button.setToolTip("A random seed")
        self.dice_button.clicked.connect(self.roll_seed)
        seed_row = QHBoxLayout()
        seed_row.addWidget(self.seed_spin, 1)
        seed_row.addWidget(self.dice_button)
        self.sampler_combo = QComboBox()
        self.sampler_combo.addItems(SAMPLERS)
        self.sampler_combo.setToolTip("DDPM: ancestral, as in the paper; DDIM: deterministic given the seed")
        return presets, seed_row

    # --- layer lists ---------------------------------------------------------------------
    def own_layer_names(self) -> list:
        """The live layers of the running job, which are no input."""
        return [layer.name for layer in self._live.values()]

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

    # --- settings ----------------------------------------------------------------------------
    def apply_preset(self, name: str) -> None:
        steps, samples = PRESETS[name]
        self.steps_slider.setValue(steps)
        self.samples_spin.setValue(samples)

    def roll_seed(self, *_) -> None:
        self.seed_spin.setValue(random.randint(0, MAX_SEED))

    # --- running -------------------------------------------------------------------------
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
        job = DiffusionJob(
            data=layer.data,
            axes=axes,
            model=model,
            steps=int(self.steps_slider.value()),
            samples=int(self.samples_spin.value()),
            seed=int(self.seed_spin.value()),
            sampler=self.sampler_combo.currentText().lower(),
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
        self._live = {}
        self.preview_count = 0
        try:
            self._create_live(layer.data if job.index is None else layer.data[keepdims_index(job.index)])
        except (ValueError, TypeError) as err:  # e.g. napari refusing an inherited property
            self._remove_live()
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
            self._show_live(tick)
        self.update_activity(tick.done, tick.total, tick.message)

    def _create_live(self, start) -> None:
        """Add (or take over) the live layers before the run starts, showing ``start`` (the part
        of the input the run refines, a view of it) drawn like the input until the first frame.

        The predictor runs before the first step (seconds on a CPU): meanwhile the canvas shows
        the input, not a black layer. Adding a layer is the expensive part of showing one in
        napari (layer controls, the vispy visual, a redraw: a few hundred ms on a slow
        machine), so it is done once, at the click, and the previews only replace the data.
        """
        ctx = self.context
        rgb, translate = ctx["rgb"], ctx["part_translate"]
        for kind in LIVE[::-1]:  # z_t below, the x0 estimate on top
            kwargs = output_kwargs(kind, ctx["props"], self.provenance(ctx), rgb=rgb, translate=translate)
            self._live[kind] = add_or_replace(self.viewer, start, output_name(ctx["name"], kind), **kwargs)
            self._live[kind].visible = True

    def _show_live(self, tick) -> None:
        """Draw a preview frame: new data for the live layers (z_t: grey, symmetric limits)."""
        for kind, data in (("z_t", tick.z_t), ("x0", tick.x0)):
            layer = self._live.get(kind)
            if layer is None or layer not in self.viewer.layers:  # the user deleted it: fine
                continue
            layer.data = data
            if kind == "z_t":
                if self.preview_count == 0 and not layer.rgb:
                    layer.colormap = "gray"
                layer.contrast_limits = (-tick.z_limit, tick.z_limit)
        self.preview_count += 1

    def _remove_live(self) -> None:
        for layer in self._live.values():
            if layer in self.viewer.layers:
                self.viewer.layers.remove(layer)
        self._live = {}

    def on_error(self, err) -> None:
        self._failed = True
        super().on_error(err)

    def run_ended(self) -> None:
        """Remove the live layers (previews only: the result is the mean, std and trajectory)."""
        self._remove_live()
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

    def show_result(self, output) -> None:
        ctx = self.context
        name, rgb, props, info = ctx["name"], ctx["rgb"], ctx["props"], output.info
        provenance, translate = self.provenance(ctx, info), ctx["part_translate"]

        def kwargs(kind, **extra):
            return output_kwargs(kind, props, provenance, rgb=rgb, translate=translate, **extra)

        try:
            std_kwargs = kwargs("std", limit=output.limits["std"][1])
            if output.trajectory.size:
                trajectory_kwargs = stacked_kwargs(kwargs("trajectory"), "step")
                trajectory_kwargs["metadata"]["napari_deblur"]["trajectory_steps"] = list(output.trajectory_steps)
                add_or_replace(self.viewer, output.trajectory, output_name(name, "trajectory"), **trajectory_kwargs)
            if output.samples is not None:
                add_or_replace(
                    self.viewer,
                    output.samples,
                    output_name(name, "samples"),
                    **stacked_kwargs(kwargs("samples"), "sample"),
                )
            add_or_replace(self.viewer, output.std, output_name(name, "std"), **std_kwargs)
            add_or_replace(self.viewer, output.mean, output_name(name, "mean"), **kwargs("mean"))
        except (ValueError, TypeError) as err:  # e.g. napari refusing an inherited property
            self.show_failure(err)
            return
        self.last = (output, ctx)
        self.metrics_label.setText(self.metrics_text(output, ctx).replace("result", "mean"))
        self.say(
            f"Done: {info.get('steps')} steps x {info.get('samples')} sample(s) in {info.get('seconds', 0):.1f} s "
            f"on {info.get('device')} ({info.get('precision')}, tile {info.get('tile')}). "
            f"Denoiser {ctx['model_choice']}." + notes_text(ctx["notes"])
        )


def _clock(seconds: float) -> str:
    seconds = int(round(max(0.0, seconds)))
    return (
        f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"
        if seconds >= 3600
        else f"{seconds // 60}:{seconds % 60:02d}"
    )
