"""What both dock widgets share: the layer lists, the run and its worker, progress and messages.

:class:`DockWidget` is the base of :class:`~napari_deblur.plugin.xydeblur_widget.XYDeblurWidget`
and :class:`~napari_deblur.plugin.diffusion_widget.DiffusionDeblurWidget`. It owns the
controls every run needs (the input and reference layer lists, the scope, the model
options, Run and Cancel, the progress bar, the status and metrics labels), keeps the layer
lists in step with the viewer, and runs a job: :meth:`DockWidget.run` makes the job
(:meth:`~DockWidget.make_job`, the subclass's), starts its generator in a napari
``thread_worker`` with a progress bar in the activity dock, and routes the worker's
signals to :meth:`~DockWidget.on_yielded`, :meth:`~DockWidget.on_returned`,
:meth:`~DockWidget.on_error` and :meth:`~DockWidget.on_finished`. Cancel asks the worker
to quit; a result that arrives after Cancel is dropped.

The end of a run is spread over event-loop turns, so that napari never stalls: the
worker hands over finished layer data with explicit contrast limits, and the widget adds
the result layers one per turn (and removes its live layers one per turn), through
:attr:`~DockWidget.turns` (:class:`~napari_deblur.plugin.turns.Turns`: a queue of
generators, each ``yield`` ending a turn, drained by a zero-delay QTimer). The run counts
as going (:attr:`~DockWidget.worker` set, Run disabled) until the queue is empty, so the
widget says "done" only with every layer in place. Once the output has arrived there is
nothing left to cancel: Cancel is disabled and the layers are added in full; closing the
widget adds the rest at once.

A subclass sets the class attributes (:attr:`~DockWidget.title`, the job generator,
messages), builds its own controls and layout (:meth:`~DockWidget.lay_out` puts the rows
in a form), calls :meth:`~DockWidget.watch_layers`, and implements ``make_job``,
``on_yielded``, ``show_result`` (a generator: one layer per ``yield``) and ``announce_run``;
the other hooks are optional (``run_ended`` is a generator too).

Nothing here imports torch; napari is imported inside the methods that need it.
"""

from qtpy.QtWidgets import (
    QComboBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QProgressBar,
    QPushButton,
    QVBoxLayout,
    QWidget,
)

from .axes import is_stack, layer_axes, layer_shape, plane_index
from .estimate import passes_per_plane, run_size
from .layers import source_properties
from .options import RunOptions
from .plane import part_translate
from .readout import format_metrics
from .turns import Turns

NO_REFERENCE = "(none)"
SCOPES = ("current slice", "whole stack")
MULTISCALE = "multiscale (pyramid) layers are not supported: open the full-resolution image"
ERROR_STYLE = "color: #e05050;"


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


def check_single_scale(layer) -> None:
    """ValueError for a multiscale (pyramid) layer: the widgets run on full-resolution data."""
    if layer.multiscale:
        raise ValueError(MULTISCALE)


def plane_text(plane) -> str:
    """``' (plane Z=2, T=0)'`` for a "current slice" run's plane, ``''`` for the whole stack."""
    return "" if plane is None else " (plane " + ", ".join(f"{a}={i}" for a, i in plane.items()) + ")"


def notes_text(notes) -> str:
    """``' Note: a; b'`` for a run's notes (e.g. a skipped reference), ``''`` for none."""
    joined = "; ".join(notes)
    return f" Note: {joined}" if joined else ""


def gate_warnings(*names) -> list:
    """The do-no-harm warnings of the bundled models among ``names`` (a run's model names)."""
    from ..models.weights import gate_warning

    return [w for w in (gate_warning(name) for name in names) if w]


def engine_info(info: dict) -> dict:
    """The entries of an engine's info dict that are plain scalars (for layer metadata)."""
    return {k: v for k, v in info.items() if isinstance(v, (str, int, float))}


class DockWidget(QWidget):
    """The shared half of a dock widget; see the module docstring for what a subclass adds."""

    title = "napari-deblur"  # names the run in messages and the activity dock
    model_label = "model"  # the label of the options' model list
    cancelling_message = "Cancelling..."
    cancelled_message = "Cancelled: no layers were changed."
    settings = ()  # context keys recorded in every output's provenance, after the axes
    job_function = None  # the job generator the worker runs (a staticmethod): yields progress, returns the output

    def __init__(self, napari_viewer):
        super().__init__()
        self.viewer = napari_viewer
        self.worker = None  # the running thread_worker, if any
        self.last = None  # (output, context) of the last finished run
        self.activity = None  # the activity dock's progress bar of the running job
        self.context = None  # what the running (or last started) job was started with: make_job's context
        self.cancelled = False  # Cancel was pressed during the current run
        self.input_combo, self.reference_combo = QComboBox(), QComboBox()
        self.scope_combo = QComboBox()
        self.scope_combo.addItems(SCOPES)
        self.scope_combo.setToolTip("current slice: the YX plane at the viewer's dims point (fast preview)")
        self.options = RunOptions(on_message=self.say, model_label=self.model_label)
        self.run_button, self.cancel_button = QPushButton("Run"), QPushButton("Cancel")
        self.cancel_button.setEnabled(False)
        self.run_button.clicked.connect(self.run)
        self.cancel_button.clicked.connect(self.cancel)
        self.progress_bar = QProgressBar()
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setValue(0)
        self.status_label, self.metrics_label = QLabel(), QLabel()
        self.status_label.setWordWrap(True)
        # the end of a run, one step per turn
        self.turns = Turns(self, on_failure=self.show_failure, on_abandon=self.forget_run)
        self.presenting = False  # the output arrived and its layers are being added

    def lay_out(self, rows, buttons, below) -> None:
        """The widget's layout: a form of ``rows`` (``addRow`` arguments: ``(label, widget or
        layout)`` or ``(widget,)``), a row of ``buttons``, then the ``below`` widgets."""
        form = QFormLayout()
        for row in rows:
            form.addRow(*row)
        button_row = QHBoxLayout()
        for button in buttons:
            button_row.addWidget(button)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addLayout(button_row)
        for widget in below:
            layout.addWidget(widget)
        layout.addStretch(1)

    # --- layer lists and messages --------------------------------------------------------
    def watch_layers(self) -> None:
        """Keep the layer lists in step with the viewer's layers, and fill them now."""
        for event in ("inserted", "removed", "reordered", "renamed"):
            getattr(self.viewer.layers.events, event).connect(self.refresh_layers)
        self.refresh_layers()

    def image_names(self) -> list:
        """The Image layers the widget offers as input and reference (all but its own)."""
        from napari.layers import Image

        own = set(self.own_layer_names())
        return [layer.name for layer in self.viewer.layers if isinstance(layer, Image) and layer.name not in own]

    def own_layer_names(self) -> list:
        """Layers the running job draws into, which are no input (none here)."""
        return []

    def refresh_layers(self, *_) -> None:
        images = self.image_names()
        refill_combo(self.input_combo, images)
        refill_combo(self.reference_combo, [NO_REFERENCE, *images])
        self.layers_changed()

    def layers_changed(self) -> None:
        """Called after the layer lists were refilled (other lists, choices that follow the input)."""

    def combo_layer(self, combo):
        """The layer named by ``combo``'s current text, or None."""
        name = combo.currentText()
        return self.viewer.layers[name] if name in self.viewer.layers else None

    def say(self, text: str, error: bool = False) -> None:
        self.status_label.setText(text)
        self.status_label.setStyleSheet(ERROR_STYLE if error else "")

    # --- the job -------------------------------------------------------------------------
    def make_job(self, layer):
        """(job, context) for ``layer`` with the current settings; ValueError/TypeError if none."""
        raise NotImplementedError

    def run_target(self, layer):
        """(axes, shape, index, reference layer or None, notes) for a run on ``layer``.

        ``index`` is the plane at the viewer's dims point for "current slice" on a stack, None
        for the whole image; a reference of another shape is skipped with a note.
        """
        axes, shape = layer_axes(layer), layer_shape(layer)
        whole = self.scope_combo.currentText() == "whole stack" or not is_stack(axes)
        index = None if whole else plane_index(layer, axes, self.viewer.dims.point)
        reference, notes = self.combo_layer(self.reference_combo), []
        if reference is not None and layer_shape(reference) != shape:
            notes.append(f"reference {reference.name!r} skipped: shape {layer_shape(reference)} is not {shape}")
            reference = None
        return axes, shape, index, reference, notes

    @staticmethod
    def run_context(layer, axes, index, reference, notes, **extra) -> dict:
        """What the output layers need from a run's start: the input's name, properties
        (copies), axes, scope, plane, the translate that places the part, the reference
        name, notes, and ``extra`` (the widget's settings, its model choice)."""
        props = source_properties(layer)
        plane = None if index is None else {a: i for a, i in zip(axes, index) if not isinstance(i, slice)}
        return {
            "name": layer.name,
            "props": props,
            "rgb": bool(layer.rgb),
            "axes": axes,
            "scope": "whole stack" if index is None else "current slice",
            "plane": plane,
            "part_translate": part_translate(props["translate"], props["scale"], index, bool(layer.rgb)),
            "reference": None if reference is None else reference.name,
            "notes": notes,
            **extra,
        }

    def provenance(self, ctx: dict, info=None) -> dict:
        """``metadata['napari_deblur']`` of a run's layers: source, scope, plane, axes and the
        :attr:`settings`; with the engine's ``info``, its scalars and the model choice too."""
        out = {
            "source_layer": ctx["name"],
            "scope": ctx["scope"],
            "plane": ctx["plane"],
            "axes": ctx["axes"],
            **{key: ctx[key] for key in self.settings},
        }
        if info is not None:
            out.update(engine_info(info))
            out["model_choice"] = ctx["model_choice"]  # the engine was given the widget's model
        return out

    # --- running -------------------------------------------------------------------------
    def run(self) -> None:
        """Start a run on the input layer with the current settings (nothing while one runs)."""
        if self.worker is not None:
            return
        layer = self.combo_layer(self.input_combo)
        if layer is None:
            self.say("Pick an image layer to deblur.", error=True)
            return
        try:
            job, self.context = self.make_job(layer)
        except (ValueError, TypeError) as err:
            self.say(str(err), error=True)
            return
        self.options.update_device_label()  # free memory as of now
        self.cancelled = False
        if not self.prepare_run(layer, job):
            return
        self.start_worker(job, desc=f"{self.title} {layer.name}")
        self.announce_run(layer)
        self.worker.start()

    def prepare_run(self, layer, job) -> bool:
        """Work before the worker starts; False (with a message) stops the run."""
        return True

    def announce_run(self, layer) -> None:
        """Say what the run that is about to start does."""

    def start_worker(self, job, desc: str):
        """Run :meth:`job_function` on ``job`` in a napari ``thread_worker``, not yet started.

        Its signals go to :meth:`on_yielded`, :meth:`on_returned`, :meth:`on_error` and
        :meth:`on_finished` (looked up now, so an instance may replace one). An
        activity-dock progress bar (:attr:`activity`) is opened, Run is disabled and Cancel
        enabled, the widget's bar shows "busy"; the worker is stored as :attr:`worker`.
        """
        from napari.qt.threading import thread_worker
        from napari.utils import progress

        self.activity = progress(total=0, desc=desc)
        worker = thread_worker(self.job_function, ignore_errors=True)(job)
        worker.yielded.connect(self.on_yielded)
        worker.returned.connect(self.on_returned)
        worker.errored.connect(self.on_error)
        worker.finished.connect(self.on_finished)
        self.run_button.setEnabled(False)
        self.cancel_button.setEnabled(True)
        self.progress_bar.setRange(0, 0)
        self.worker = worker
        return worker

    def cancel(self) -> None:
        """Ask the running worker to stop at its next yield; its result, if any, is dropped.
        Once the output is being shown there is nothing to stop (its layers are added in full)."""
        if self.worker is not None and not self.presenting:
            self.cancelled = True
            self.worker.quit()
            self.say(self.cancelling_message)

    def show_progress(self, done: int, total: int, text: str) -> None:
        """The widget's progress bar at ``done`` of ``total``, with ``text`` after the percentage."""
        self.progress_bar.setRange(0, max(1, total))
        self.progress_bar.setValue(done)
        self.progress_bar.setFormat(f"%p%  {text}")

    def update_activity(self, done: int, total: int, message: str) -> None:
        """The activity dock's progress bar at ``done`` of ``total``, described by ``message``."""
        if self.activity is not None:
            self.activity.total = total
            self.activity.set_description(f"{self.title}: {message}")
        if self.activity is not None:  # napari's progress processes events: the run may have ended meanwhile
            self.activity.update(done - self.activity.n)

    # --- the worker's signals ----------------------------------------------------------------
    def on_yielded(self, value) -> None:
        """A progress value the job yielded."""
        raise NotImplementedError

    def on_returned(self, output) -> None:
        """The job's output: shown unless the run was cancelled (quit() came after the last step)."""
        if self.cancelled:
            return
        self.presenting = True
        self.cancel_button.setEnabled(False)
        self.turns.add(self.show_result(output))

    def show_result(self, output):
        """A generator that adds the output layers, one per ``yield``, and says what the run did."""
        raise NotImplementedError

    def show_failure(self, err) -> None:
        """Say that the run finished but its layers could not be added (e.g. napari refusing
        an inherited property)."""
        self.say(f"{self.title} ran but the result could not be shown: {err}", error=True)

    @staticmethod
    def metrics_text(output, ctx: dict) -> str:
        """The metrics text against the reference (named with the plane of a "current slice" run)."""
        return format_metrics(output.metrics, (ctx["reference"] or "reference") + plane_text(ctx["plane"]))

    def on_error(self, err) -> None:
        self.say(f"{self.title} failed: {err}", error=True)

    def on_finished(self) -> None:
        """The worker is done (returned, failed or cancelled): back to ready once the queued
        turns (the result layers) are done."""
        if self.activity is not None:
            self.activity.close()
            self.activity = None
        self.turns.add(self.finish_run())

    def finish_run(self):
        """A generator: :meth:`run_ended`'s clean-up (one step per turn), then back to ready."""
        yield from self.run_ended()
        self.worker = None
        self.presenting = False
        self.cancel_button.setEnabled(False)
        self.progress_bar.setRange(0, 1)
        self.progress_bar.setFormat("%p%")
        if self.cancelled:
            self.progress_bar.setValue(0)
            self.say(self.cancelled_message)
        self.update_ready()

    def forget_run(self) -> None:
        """The widget is gone (its viewer closed) before its run ended: no run is going. Plain
        attributes only: its Qt objects are deleted."""
        self.worker = None
        self.activity = None
        self.presenting = False

    def run_ended(self):
        """A generator of the clean-up after every run (one step per ``yield``), before the
        cancel message."""
        yield from ()

    def update_ready(self, *_) -> None:
        """Run is enabled when no run is going."""
        self.run_button.setEnabled(self.worker is None)

    # --- what a CPU run will cost (the widgets' time estimates) ------------------------------
    def cpu_run_size(self):
        """``(height, width, planes, passes per plane)`` of a run of the chosen layer with the
        current scope and model, when it would run on the CPU; None on a GPU, without a layer
        or model, or for a layer that cannot be run (:mod:`.estimate` turns it into seconds)."""
        from ..engine.device import pick_device  # imports torch

        layer = self.combo_layer(self.input_combo)
        if layer is None or layer.multiscale or self.options.model() is None:
            return None
        try:
            if pick_device(self.options.device()).type != "cpu":
                return None
            whole = self.scope_combo.currentText() == "whole stack"
            height, width, planes, colour = run_size(layer_axes(layer), layer_shape(layer), whole)
        except (ValueError, RuntimeError):
            return None
        return height, width, planes, passes_per_plane(colour, self.model_channels())

    def model_channels(self):
        """The chosen XYDeblur's input channels (None when it cannot be told)."""
        model = self.options.model()
        if not isinstance(model, str):
            return getattr(model, "config", {}).get("channels")
        from ..models.weights import WeightsError, model_manifest

        try:
            return model_manifest(model)["architecture"]["channels"]
        except (WeightsError, KeyError, ValueError, TypeError):
            return None

    def closeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        self.cancel()
        self.turns.flush()
        super().closeEvent(event)
