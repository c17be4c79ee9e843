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
live layers and adds nothing else.

torch and the engine are imported when the widget is built or runs, not at import.
"""

import copy
import random
import time
from pathlib import Path

from qtpy.QtCore import Qt
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from .axes import is_stack, layer_axes, layer_shape, plane_index
from .diffusion_job import DiffusionJob, run_diffusion
from .running import start_worker
from .layers import CHROMA_COLORMAP, add_or_replace, source_properties
from .model_default import choice_text, suggest_denoiser
from .options import LOAD_WEIGHTS, WEIGHTS_FILTER, RunOptions
from .plane import keepdims_index, part_translate
from .readout import format_metrics
from .xydeblur_widget import NO_REFERENCE, SCOPES, refill_combo

STD_COLORMAP = CHROMA_COLORMAP  # magma: dark is certain, bright uncertain
SAMPLERS = ("DDPM", "DDIM")
PRESETS = {"Fidelity": (10, 8), "Perceptual": (500, 1)}  # (steps, samples)
MAX_STEPS = 1000
MAX_SEED = 2**31 - 1
LIVE = ("x0", "z_t")
_SUFFIX = {"x0": "x0 estimate", "z_t": "z_t", "mean": "mean", "std": "std",
           "trajectory": "trajectory", "samples": "samples"}
NO_DENOISER = ("No denoiser weights are bundled yet: load a ResidualDenoiser file "
               "(.safetensors, .pt) with 'Load weights...'.")


def diffusion_name(source_name: str, kind: str) -> str:
    """``'<source> mean'``, ``'<source> std'``, ``'<source> x0 estimate'``, ... for a kind."""
    return f"{source_name} {_SUFFIX[kind]}"


def _kwargs(props: dict, provenance: dict, kind: str, *, rgb: bool, translate=None) -> dict:
    """``add_image`` keyword arguments for a same-dimensional output (the input's grid)."""
    metadata = copy.deepcopy(props["metadata"])
    metadata["napari_deblur"] = {**provenance, "output": kind}
    return {"scale": props["scale"], "translate": props["translate"] if translate is None else translate,
            "axis_labels": props["axis_labels"], "units": props["units"], "metadata": metadata, "rgb": rgb}


def _image_kwargs(props, provenance, kind, *, rgb, translate=None) -> dict:
    """Drawn like the input: its contrast limits and colormap."""
    kwargs = _kwargs(props, provenance, kind, rgb=rgb, translate=translate)
    kwargs["contrast_limits"] = props["contrast_limits"]
    if not rgb and props.get("colormap") is not None:
        kwargs["colormap"] = props["colormap"]
    return kwargs


def _stacked(kwargs: dict, label: str) -> dict:
    """The same kwargs for data with one more leading axis (frames or samples): its own slider."""
    out = dict(kwargs)
    out["scale"] = (1.0, *kwargs["scale"])
    out["translate"] = (0.0, *kwargs["translate"])
    out["axis_labels"] = (label, *kwargs["axis_labels"])
    out["units"] = ("pixel", *kwargs["units"])
    return out


class DiffusionDeblurWidget(QWidget):
    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.worker = None  # the running thread_worker, if any
        self.last = None  # (DiffusionOutput, context) of the last finished run
        self.preview_count = 0  # preview frames drawn in the current/last run
        self._context = None
        self._cancelled = False
        self._failed = False
        self._pbar = None
        self._started = 0.0
        self._denoisers = {}  # combo text -> ResidualDenoiser loaded from a file or given in memory
        self._last_denoiser = 0
        self._user_chose_denoiser = False  # until then the bundled denoiser follows the input layer
        self._suggestion = None  # the model_default.Suggestion for the input layer
        self._live = {}  # kind -> layer of the running job
        self._build()
        for event in ("inserted", "removed", "reordered", "renamed"):
            getattr(napari_viewer.layers.events, event).connect(self.refresh_layers)
        self.input_combo.currentIndexChanged.connect(self._follow_layer)
        self.refresh_layers()
        self._denoiser_chosen(self.denoiser())  # a preselected bundled denoiser brings its predictor
        self.update_ready()

    # --- building --------------------------------------------------------------------------
    def _build(self) -> None:
        from superqt import QLabeledSlider

        from ..models.registry import available_models  # imports torch

        self.input_combo, self.reference_combo = QComboBox(), QComboBox()
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
        self.options = RunOptions(on_message=self.say, model_label="predictor")
        self.options.model_combo.setToolTip("The XYDeblur the denoiser was trained with (its first estimate)")

        self.steps_slider = QLabeledSlider(Qt.Orientation.Horizontal)
        self.steps_slider.setRange(1, MAX_STEPS)
        self.steps_slider.setValue(PRESETS["Fidelity"][0])
        self.steps_slider.setToolTip("Diffusion steps: few steps and several samples give a low-distortion mean, "
                                     "many steps sharper single samples")
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
        self.keep_samples_check = QCheckBox("keep samples")
        self.keep_samples_check.setToolTip("Also show every sample as one stack layer (N full images in memory)")
        self.scope_combo = QComboBox()
        self.scope_combo.addItems(SCOPES)
        self.scope_combo.setToolTip("current slice: the YX plane at the viewer's dims point (fast preview)")

        self.run_button, self.cancel_button = QPushButton("Run"), QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self.status_label, self.metrics_label = QLabel(), QLabel()
        self.status_label.setWordWrap(True)

        form = QFormLayout()
        form.addRow("image", self.input_combo)
        form.addRow("denoiser", self.denoiser_combo)
        form.addRow("", self.choice_label)
        form.addRow("", self.model_label)
        form.addRow(self.options)
        form.addRow("steps", self.steps_slider)
        form.addRow("presets", presets)
        form.addRow("samples", self.samples_spin)
        form.addRow("seed", seed_row)
        form.addRow("sampler", self.sampler_combo)
        form.addRow("", self.keep_samples_check)
        form.addRow("scope", self.scope_combo)
        form.addRow("reference", self.reference_combo)
        buttons = QHBoxLayout()
        buttons.addWidget(self.run_button)
        buttons.addWidget(self.cancel_button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(buttons)
        for widget in (self.progress_bar, self.status_label, self.metrics_label):
            layout.addWidget(widget)
        layout.addStretch(1)

    # --- layer lists and messages --------------------------------------------------------
    def refresh_layers(self, *_) -> None:
        from napari.layers import Image

        own = set(self._live_names())
        images = [layer.name for layer in self.viewer.layers if isinstance(layer, Image) and layer.name not in own]
        refill_combo(self.input_combo, images)
        refill_combo(self.reference_combo, [NO_REFERENCE, *images])
        self._follow_layer()

    def _follow_layer(self, *_) -> None:
        """Say which bundled denoiser suits the input layer and why (the engine's policy), and
        select it until the user picks or loads one; its predictor follows."""
        layer, combo = self._layer(self.input_combo), self.denoiser_combo
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

    def _live_names(self) -> list:
        return [layer.name for layer in self._live.values()]

    def _layer(self, combo):
        name = combo.currentText()
        return self.viewer.layers[name] if name in self.viewer.layers else None

    def say(self, text: str, error: bool = False) -> None:
        self.status_label.setText(text)
        self.status_label.setStyleSheet("color: #e05050;" if error else "")

    # --- models ------------------------------------------------------------------------------
    def denoiser(self):
        """The chosen denoiser: a module loaded from a file or given in memory, a bundled name, or None."""
        text = self.denoiser_combo.currentText()
        if text == LOAD_WEIGHTS or not text:
            return None
        return self._denoisers.get(text, text)

    def update_ready(self, *_) -> None:
        """Run is enabled only with a denoiser chosen and no run going; the label says why not."""
        has_model = self.denoiser() is not None
        if not has_model:
            bundled = self.denoiser_combo.count() > 1
            self.model_label.setText("Pick a denoiser, or load one with 'Load weights...'." if bundled else NO_DENOISER)
            self.model_label.setStyleSheet("color: #e05050;")
        elif self.model_label.styleSheet():
            self.model_label.setText("")
            self.model_label.setStyleSheet("")
        self.run_button.setEnabled(has_model and self.worker is None)

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
            self.options.add_model(getattr(predictor, "weights_info", {}).get("name") or "XYDeblur (in memory)",
                                   predictor)

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
        if layer.multiscale:
            raise ValueError("multiscale (pyramid) layers are not supported: open the full-resolution image")
        denoiser = self.denoiser()
        if denoiser is None:
            raise ValueError(NO_DENOISER)
        predictor = self.options.model()
        if predictor is None and hasattr(denoiser, "weights_info"):
            predictor = denoiser.weights_info.get("predictor")
        if predictor is None and not isinstance(denoiser, str):
            raise ValueError("Pick the predictor (the XYDeblur the denoiser was trained with).")
        model = denoiser if predictor is None else (predictor, denoiser)  # a bundled denoiser names its own
        axes, shape = layer_axes(layer), layer_shape(layer)
        whole = self.scope_combo.currentText() == "whole stack" or not is_stack(axes)
        index = None if whole else plane_index(layer, axes, self.viewer.dims.point)
        reference, notes = self._layer(self.reference_combo), []
        if reference is not None and layer_shape(reference) != shape:
            notes.append(f"reference {reference.name!r} skipped: shape {layer_shape(reference)} is not {shape}")
            reference = None
        job = DiffusionJob(
            data=layer.data, axes=axes, model=model, steps=int(self.steps_slider.value()),
            samples=int(self.samples_spin.value()), seed=int(self.seed_spin.value()),
            sampler=self.sampler_combo.currentText().lower(), options=self.options.engine_options(), index=index,
            rgb=bool(layer.rgb), reference=None if reference is None else reference.data,
            keep_samples=self.keep_samples_check.isChecked(),
        )
        props = source_properties(layer)
        plane = None if index is None else {a: i for a, i in zip(axes, index) if not isinstance(i, slice)}
        context = {
            "name": layer.name, "props": props, "rgb": bool(layer.rgb), "axes": axes,
            "scope": "whole stack" if index is None else "current slice", "plane": plane,
            "part_translate": part_translate(props["translate"], props["scale"], index, bool(layer.rgb)),
            "reference": None if reference is None else reference.name, "notes": notes,
            "steps": job.steps, "samples": job.samples, "seed": job.seed, "sampler": job.sampler,
            "model_choice": choice_text(self.denoiser_combo.currentText(), self._suggestion),
        }
        return job, context

    def run(self) -> None:
        if self.worker is not None:
            return
        layer = self._layer(self.input_combo)
        if layer is None:
            self.say("Pick an image layer to deblur.", error=True)
            return
        try:
            job, self._context = self.make_job(layer)
        except (ValueError, TypeError) as err:
            self.say(str(err), error=True)
            return
        self.options.update_device_label()
        self._cancelled = self._failed = False
        self._live = {}
        self.preview_count = 0
        try:
            self._create_live(layer.data if job.index is None else layer.data[keepdims_index(job.index)])
        except (ValueError, TypeError) as err:  # e.g. napari refusing an inherited property
            self._remove_live()
            self.say(f"Cannot show the live layers: {err}", error=True)
            return
        start_worker(self, run_diffusion, job, desc=f"Diffusion deblur {layer.name}", on_yielded=self._on_tick)
        self.metrics_label.setText("")
        ctx = self._context
        self.say(f"Refining {layer.name} ({ctx['scope']}, {ctx['steps']} steps x {ctx['samples']} sample(s), "
                 f"{ctx['sampler'].upper()}, seed {ctx['seed']})...")
        self._started = time.perf_counter()
        self.worker.start()

    def cancel(self) -> None:
        if self.worker is not None:
            self._cancelled = True
            self.worker.quit()
            self.say("Cancelling after the current step...")

    def _provenance(self) -> dict:
        ctx = self._context
        return {"source_layer": ctx["name"], "scope": ctx["scope"], "plane": ctx["plane"], "axes": ctx["axes"],
                "steps": ctx["steps"], "samples": ctx["samples"], "seed": ctx["seed"], "sampler": ctx["sampler"]}

    def _on_tick(self, tick) -> None:
        if self.worker is None or self._cancelled:
            return
        elapsed = time.perf_counter() - self._started
        if tick.stage == "step":
            rate = tick.done / elapsed if elapsed > 0 else 0.0
            left = (tick.total - tick.done) / rate if rate > 0 else 0.0
            text = f"{tick.message}  {rate:.1f} steps/s, {_clock(left)} left"
        else:
            text = tick.message
        self.progress_bar.setRange(0, max(1, tick.total))
        self.progress_bar.setValue(tick.done)
        self.progress_bar.setFormat(f"%p%  {text}")
        if tick.x0 is not None:
            self._show_live(tick)
        if self._pbar is not None:
            self._pbar.total = tick.total
            self._pbar.set_description(f"Diffusion deblur: {tick.message}")
        if self._pbar is not None:  # napari's progress processes events: the run may have ended meanwhile
            self._pbar.update(tick.done - self._pbar.n)

    def _create_live(self, start) -> None:
        """Add (or take over) the live layers before the run starts, showing ``start`` (the part
        of the input the run refines, a view of it) drawn like the input until the first frame.

        The predictor runs before the first step (seconds on a CPU): meanwhile the canvas shows
        the input, not a black layer. Adding a layer is the expensive part of showing one in
        napari (layer controls, the vispy visual, a redraw: a few hundred ms on a slow
        machine), so it is done once, at the click, and the previews only replace the data.
        """
        ctx = self._context
        rgb, translate = ctx["rgb"], ctx["part_translate"]
        for kind in LIVE[::-1]:  # z_t below, the x0 estimate on top
            kwargs = _image_kwargs(ctx["props"], self._provenance(), kind, rgb=rgb, translate=translate)
            self._live[kind] = add_or_replace(self.viewer, start, diffusion_name(ctx["name"], kind), **kwargs)
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

    def _on_error(self, err) -> None:
        self._failed = True
        self.say(f"Diffusion deblur failed: {err}", error=True)

    def _on_finished(self) -> None:
        if self._pbar is not None:
            self._pbar.close()
            self._pbar = None
        self.worker = None
        self.cancel_button.setEnabled(False)
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setFormat("%p%")
        self._remove_live()  # previews only: the result is the mean, std and trajectory
        if self._cancelled or self._failed:
            self.progress_bar.setValue(0)
            if self._cancelled:
                self.say("Cancelled: the live layers were removed; no mean or std was added.")
        self.update_ready()

    def _on_returned(self, output) -> None:
        if self._cancelled:  # quit() came after the last step: drop the result
            return
        ctx = self._context
        name, rgb, props, info = ctx["name"], ctx["rgb"], ctx["props"], output.info
        provenance = {**self._provenance(), **{k: v for k, v in info.items() if isinstance(v, (str, int, float))},
                      "model_choice": ctx["model_choice"]}  # the engine was given the widget's denoiser
        translate = ctx["part_translate"]
        try:
            std_kwargs = _kwargs(props, provenance, "std", rgb=False, translate=translate)
            std_kwargs.update(colormap=STD_COLORMAP, contrast_limits=output.limits["std"])
            if output.trajectory.size:
                kwargs = _stacked(_image_kwargs(props, provenance, "trajectory", rgb=rgb, translate=translate), "step")
                kwargs["metadata"]["napari_deblur"]["trajectory_steps"] = list(output.trajectory_steps)
                add_or_replace(self.viewer, output.trajectory, diffusion_name(name, "trajectory"), **kwargs)
            if output.samples is not None:
                kwargs = _stacked(_image_kwargs(props, provenance, "samples", rgb=rgb, translate=translate), "sample")
                add_or_replace(self.viewer, output.samples, diffusion_name(name, "samples"), **kwargs)
            add_or_replace(self.viewer, output.std, diffusion_name(name, "std"), **std_kwargs)
            add_or_replace(self.viewer, output.mean, diffusion_name(name, "mean"),
                           **_image_kwargs(props, provenance, "mean", rgb=rgb, translate=translate))
        except (ValueError, TypeError) as err:  # e.g. napari refusing an inherited property
            self.say(f"Diffusion deblur ran but the result could not be shown: {err}", error=True)
            return
        self.last = (output, ctx)
        plane = ctx["plane"]
        where = "" if plane is None else " (plane " + ", ".join(f"{a}={i}" for a, i in plane.items()) + ")"
        self.metrics_label.setText(
            format_metrics(output.metrics, (ctx["reference"] or "reference") + where).replace("result", "mean"))
        notes = "; ".join(ctx["notes"])
        self.say(f"Done: {info.get('steps')} steps x {info.get('samples')} sample(s) in {info.get('seconds', 0):.1f} s "
                 f"on {info.get('device')} ({info.get('precision')}, tile {info.get('tile')}). "
                 f"Denoiser {ctx['model_choice']}." + (f" Note: {notes}" if notes else ""))

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        self.cancel()
        super().closeEvent(event)


def _clock(seconds: float) -> str:
    seconds = int(round(max(0.0, seconds)))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"
