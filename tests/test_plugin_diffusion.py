"""The "Diffusion deblur" dock widget: docking, the no-model state, presets, a streamed run
with its mean/std/trajectory layers, re-runs, cancel, keep-samples, reference metrics and
an event loop that keeps answering during a run.

Tiny random-weight models on the CPU: XYDeblur(width=4, blocks=1) and
ResidualDenoiser(width=8), saved as safetensors and loaded through the widget's
"Load weights..." code path (the denoiser's header names its predictor), or handed over
in memory with ``widget.set_models``.
"""

import time

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")
pytest.importorskip("superqt")
torch = pytest.importorskip("torch")


pytestmark = [pytest.mark.gui, pytest.mark.usefixtures("one_thread")]


def tiny_pair(channels=1, seed=0):
    from napari_deblur.models.denoiser import ResidualDenoiser
    from napari_deblur.models.xydeblur import XYDeblur

    torch.manual_seed(seed)
    return XYDeblur(width=4, blocks=1, channels=channels).eval(), ResidualDenoiser(channels, width=8).eval()


@pytest.fixture
def pair_files(tmp_path):
    """``pair_files(channels)`` -> (predictor path, denoiser path); the denoiser names its predictor."""
    from napari_deblur.models.weights import PREDICTOR_KEY, save_safetensors

    def make(channels=1):
        predictor, denoiser = tiny_pair(channels)
        p = save_safetensors(predictor, tmp_path / f"pred{channels}.safetensors")
        d = save_safetensors(
            denoiser, tmp_path / f"den{channels}.safetensors", metadata={PREDICTOR_KEY: p.name}
        )  # relative: found next to the denoiser
        return p, d

    return make


@pytest.fixture
def dock(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-deblur", "Diffusion deblur")
    yield viewer, widget
    if widget.worker is not None:
        widget.cancel()
        qtbot.waitUntil(lambda: widget.worker is None, timeout=60000)


def configure(widget, layer, steps=6, samples=2, scope="whole stack", keep=False):
    widget.input_combo.setCurrentText(layer.name)
    widget.steps_slider.setValue(steps)
    widget.samples_spin.setValue(samples)
    widget.scope_combo.setCurrentText(scope)
    widget.keep_samples_check.setChecked(keep)
    widget.options.device_combo.setCurrentText("cpu")


def run_and_wait(qtbot, widget, timeout=120000):
    widget.run()
    assert widget.worker is not None, widget.status_label.text()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=timeout)


def image(shape=(2, 40, 48), seed=0):
    return np.random.default_rng(seed).integers(100, 4000, shape, dtype=np.uint16)


def slow_steps(monkeypatch, delay):
    """Sleep after every diffusion step, so a run lasts a while."""
    import napari_deblur.diffusion.refine as refine

    real = refine.refine_iter

    def slow(*args, **kwargs):
        gen = real(*args, **kwargs)
        while True:
            try:
                step = next(gen)
            except StopIteration as stop:
                return stop.value
            time.sleep(delay)
            yield step

    monkeypatch.setattr(refine, "refine_iter", slow)


def test_docks_from_the_manifest_and_no_model_disables_run(make_napari_viewer, monkeypatch, tmp_path):
    from napari_deblur.plugin.diffusion_widget import DiffusionDeblurWidget
    from napari_deblur.plugin.options import LOAD_WEIGHTS

    monkeypatch.setenv("NAPARI_DEBLUR_RESOURCES", str(tmp_path))  # a resources folder without denoisers
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-deblur", "Diffusion deblur")
    assert isinstance(widget, DiffusionDeblurWidget)
    assert widget.denoiser_combo.currentText() == LOAD_WEIGHTS
    assert not widget.run_button.isEnabled()
    assert "No denoiser" in widget.model_label.text() and "Load weights" in widget.model_label.text()
    viewer.add_image(image(), name="cells")
    assert widget.input_combo.currentText() == "cells"
    widget.run()  # a programmatic run says why instead of starting
    assert widget.worker is None


def test_a_bundled_denoiser_is_preselected(dock):
    from napari_deblur.models.registry import available_models
    from napari_deblur.models.weights import model_manifest

    bundled = available_models("ResidualDenoiser")
    if not bundled:
        pytest.skip("no denoiser bundled in resources/")
    viewer, widget = dock
    assert widget.denoiser_combo.currentText() == bundled[0]
    predictor = model_manifest(bundled[0])["predictor"]
    assert widget.options.model_combo.currentText() == predictor  # its pair, not the first XYDeblur listed
    viewer.add_image(image(), name="cells")
    assert widget.run_button.isEnabled() and "No denoiser" not in widget.model_label.text()


def test_presets_and_dice(dock):
    from napari_deblur.diffusion.presets import FIDELITY

    _, widget = dock
    widget.preset_buttons["Perceptual"].click()
    assert widget.steps_slider.value() == 500 and widget.samples_spin.value() == 1
    widget.preset_buttons["Fidelity"].click()
    assert (widget.steps_slider.value(), widget.samples_spin.value()) == (FIDELITY.steps, FIDELITY.samples) == (2, 16)
    assert (widget.steps_slider.minimum(), widget.steps_slider.maximum()) == (1, 1000)
    seeds = set()
    for _ in range(4):
        widget.dice_button.click()
        seeds.add(widget.seed_spin.value())
    assert len(seeds) > 1


def test_sampling_controls_read_as_the_engine_names_them(qtbot):
    from napari_deblur.diffusion.presets import PRESETS
    from napari_deblur.plugin.sampling import SamplingControls

    controls = SamplingControls()
    assert controls.values() == {"steps": 2, "samples": 16, "seed": 0, "sampler": "ddpm"}
    assert [label for label, _ in controls.rows()] == ["steps", "presets", "samples", "seed", "sampler"]
    controls.apply_preset("Perceptual")
    controls.seed_spin.setValue(7)
    controls.sampler_combo.setCurrentText("DDIM")
    preset = PRESETS["Perceptual"]
    assert controls.values() == {"steps": preset.steps, "samples": preset.samples, "seed": 7, "sampler": "ddim"}


def test_steps_slider_is_logarithmic_and_reports_each_change_once(qtbot):
    from napari_deblur.plugin.sampling import SLIDER_POSITIONS, StepsSlider

    steps = StepsSlider(1000)
    seen = []
    steps.valueChanged.connect(seen.append)
    assert steps.value() == 1 and steps.slider.value() == 0
    steps.slider.setValue(SLIDER_POSITIONS // 2)  # the middle of the track: about sqrt(1000) steps
    assert 30 <= steps.value() <= 33
    steps.slider.setValue(SLIDER_POSITIONS)
    assert steps.value() == 1000
    steps.slider.setValue(0)
    assert steps.value() == 1
    assert seen == [steps.steps_at(SLIDER_POSITIONS // 2), 1000, 1]
    seen.clear()
    steps.setValue(10)  # typed or set by a preset: the handle follows, one change reported
    assert seen == [10] and steps.value() == 10
    assert steps.steps_at(steps.slider.value()) == 10
    assert steps.slider.value() < SLIDER_POSITIONS // 2  # 10 of 1000 steps sits left of the middle, not at 1 %
    steps.setValue(5000)  # clipped to the range, never past it
    assert steps.value() == 1000 == steps.maximum() and steps.minimum() == 1


def test_the_widget_exposes_its_sampling_controls(dock):
    _, widget = dock
    sampling = widget.sampling
    assert widget.steps_slider is sampling.steps_slider and widget.samples_spin is sampling.samples_spin
    assert widget.seed_spin is sampling.seed_spin and widget.sampler_combo is sampling.sampler_combo
    widget.apply_preset("Perceptual")
    assert sampling.values()["steps"] == 500


def test_load_weights_selects_the_named_predictor_and_bad_files_are_reported(dock, pair_files, tmp_path, monkeypatch):
    import napari_deblur.plugin.diffusion_widget as dw

    _, widget = dock
    before = widget.denoiser_combo.currentText()  # a bundled denoiser, or "Load weights..." if none
    bad = tmp_path / "broken.safetensors"
    bad.write_bytes(b"not a safetensors file")
    assert widget.load_denoiser(bad) is False
    assert "Cannot use broken.safetensors" in widget.status_label.text()
    assert widget.denoiser_combo.currentText() == before  # the choice is kept, not replaced
    assert widget.run_button.isEnabled() == (before != dw.LOAD_WEIGHTS)
    predictor, denoiser = pair_files(1)
    monkeypatch.setattr(dw.QFileDialog, "getOpenFileName", lambda *a, **k: (str(denoiser), ""))
    combo = widget.denoiser_combo
    load = combo.findText(dw.LOAD_WEIGHTS)
    combo.setCurrentIndex(load)
    combo.activated.emit(load)
    assert combo.currentText() == denoiser.name and widget.run_button.isEnabled()
    assert widget.options.model_combo.currentText() == predictor.name  # named in the denoiser's header
    assert "named by the denoiser" in widget.model_label.text()


def test_run_streams_previews_and_ends_with_mean_std_trajectory(dock, qtbot, pair_files):
    viewer, widget = dock
    data = image((2, 40, 48))
    layer = viewer.add_image(
        data.copy(), name="cells", scale=(2.0, 0.5, 0.5), translate=(0, 3, 4), axis_labels=("Z", "Y", "X")
    )
    predictor, denoiser = pair_files(1)
    assert widget.load_denoiser(denoiser)
    configure(widget, layer, steps=6, samples=2)
    widget.run()
    ticks = []
    widget.worker.yielded.connect(ticks.append)
    qtbot.waitUntil(lambda: widget.worker is None, timeout=120000)
    assert "Done" in widget.status_label.text(), widget.status_label.text()
    steps = [t for t in ticks if t.stage == "step"]
    assert len(steps) >= 5 and steps[-1].done == steps[-1].total == 6  # a tick per step (both samples in flight)
    assert widget.preview_count >= 1 and steps[-1].x0 is not None  # the last step is always drawn

    mean, std = viewer.layers["cells mean"], viewer.layers["cells std"]
    assert mean.data.shape == data.shape and mean.data.dtype == np.float32
    assert std.data.shape == data.shape and std.data.dtype == np.float32
    assert np.isfinite(std.data).all() and (std.data >= 0).all() and std.data.max() > 0
    assert std.colormap.name == "magma"
    for out in (mean, std):
        np.testing.assert_allclose(out.scale, (2.0, 0.5, 0.5))
        np.testing.assert_allclose(out.translate, (0, 3, 4))
        assert tuple(out.axis_labels) == ("Z", "Y", "X")
        assert out.metadata["napari_deblur"]["source_layer"] == "cells"
        assert out.metadata["napari_deblur"]["steps"] == 6
    trajectory = viewer.layers["cells trajectory"]
    assert trajectory.data.ndim == 4 and trajectory.data.shape[1:] == data.shape
    assert trajectory.data.shape[0] == 6  # every step of sample 0
    assert tuple(trajectory.axis_labels) == ("step", "Z", "Y", "X")
    np.testing.assert_allclose(trajectory.scale, (1.0, 2.0, 0.5, 0.5))
    assert trajectory.metadata["napari_deblur"]["trajectory_steps"] == [1, 2, 3, 4, 5, 6]
    # issue 19.16: the live previews are gone; what stays is the result
    assert [lay.name for lay in viewer.layers] == ["cells", "cells trajectory", "cells std", "cells mean"]
    np.testing.assert_array_equal(layer.data, data)  # the input is untouched

    count = len(viewer.layers)
    run_and_wait(qtbot, widget)
    assert len(viewer.layers) == count  # replaced, not piled up
    assert "Done" in widget.status_label.text()


def test_previews_are_throttled_and_update_the_live_layers(dock, qtbot, monkeypatch):
    viewer, widget = dock
    layer = viewer.add_image(image((32, 32)), name="img")
    widget.set_models(*tiny_pair(1))
    assert widget.run_button.isEnabled()
    configure(widget, layer, steps=20, samples=1)
    slow_steps(monkeypatch, 0.03)  # ~20 steps in ~0.6 s+: a preview every 0.1 s at most
    widget.run()
    changes = []
    qtbot.waitUntil(lambda: "img x0 estimate" in viewer.layers, timeout=60000)
    viewer.layers["img x0 estimate"].events.data.connect(lambda e: changes.append(time.perf_counter()))
    z_t = viewer.layers["img z_t"]
    qtbot.waitUntil(lambda: widget.worker is None, timeout=120000)
    assert len(changes) >= 2, "the x0 estimate should change several times during a run"
    assert widget.preview_count < 20  # not one redraw per step
    gaps = np.diff(changes[:-1])  # the last frame (final step) is not throttled
    assert gaps.size == 0 or gaps.min() > 0.05
    assert z_t.data.shape == (32, 32) and z_t.data.dtype == np.float32  # the last frame it showed
    assert viewer.layers["img trajectory"].data.shape == (20, 32, 32)  # a 2D image: (steps, Y, X)


def test_the_live_layers_start_from_the_input_not_black(dock, qtbot):
    """Issue 19.15: until the first preview frame the live layers show the input's plane, drawn like it."""
    viewer, widget = dock
    data = image((3, 32, 40))
    layer = viewer.add_image(data, name="cells", scale=(2.0, 1.0, 1.0), colormap="green", contrast_limits=(100, 3000))
    widget.set_models(*tiny_pair(1))
    configure(widget, layer, steps=2, samples=1, scope="current slice")
    viewer.dims.set_point(0, 2 * 2.0)  # plane 2
    widget.run()  # adds the live layers, starts the worker; no tick is handled before the event loop runs
    x0, z_t = viewer.layers["cells x0 estimate"], viewer.layers["cells z_t"]
    assert viewer.layers[-1] is x0 and x0.visible
    for live in (x0, z_t):
        np.testing.assert_array_equal(live.data, data[2:3])  # the input's plane, not zeros
        assert np.shares_memory(live.data, data)  # a view: nothing allocated for it
        assert tuple(live.contrast_limits) == (100, 3000) and live.colormap.name == "green"
        np.testing.assert_allclose(live.translate, (4.0, 0, 0))
    qtbot.waitUntil(lambda: widget.worker is None, timeout=120000)
    np.testing.assert_array_equal(layer.data, image((3, 32, 40)))  # the input is untouched


def test_cancel_removes_live_layers_adds_nothing_and_runs_again(dock, qtbot, monkeypatch):
    viewer, widget = dock
    layer = viewer.add_image(image((32, 32)), name="img")
    widget.set_models(*tiny_pair(1))
    configure(widget, layer, steps=200, samples=1)
    slow_steps(monkeypatch, 0.02)
    names = [lay.name for lay in viewer.layers]
    ticks = []
    widget.run()
    widget.worker.yielded.connect(ticks.append)
    qtbot.waitUntil(lambda: "img x0 estimate" in viewer.layers and len(ticks) >= 5, timeout=60000)
    widget.cancel()
    at_cancel = len(ticks)
    qtbot.waitUntil(lambda: widget.worker is None, timeout=60000)
    assert len(ticks) <= at_cancel + 2  # stopped within a step
    assert ticks[-1].done < ticks[-1].total
    assert [lay.name for lay in viewer.layers] == names  # no live layers, no mean/std
    assert "Cancelled" in widget.status_label.text()
    assert widget.run_button.isEnabled() and not widget.cancel_button.isEnabled()
    monkeypatch.undo()
    configure(widget, layer, steps=3, samples=1)
    run_and_wait(qtbot, widget)
    assert "img mean" in viewer.layers and "img std" in viewer.layers


def test_keep_samples_current_slice_and_reference_metrics(dock, qtbot):
    viewer, widget = dock
    sharp = image((3, 32, 40), seed=5)
    layer = viewer.add_image(sharp // 2 + 50, name="cells", scale=(2.0, 1.0, 1.0))
    viewer.add_image(sharp, name="cells reference", visible=False)
    widget.set_models(*tiny_pair(1))
    configure(widget, layer, steps=4, samples=3, scope="current slice", keep=True)
    widget.reference_combo.setCurrentText("cells reference")
    viewer.dims.set_point(0, 1 * 2.0)  # plane 1
    run_and_wait(qtbot, widget)
    assert "Done" in widget.status_label.text(), widget.status_label.text()
    samples = viewer.layers["cells samples"]
    assert samples.data.shape == (3, 1, 32, 40)  # N along the first axis, the plane kept as Z of 1
    np.testing.assert_allclose(samples.translate, (0, 2.0, 0, 0))  # on plane 1
    assert tuple(samples.axis_labels)[0] == "sample"
    # issue 19.14: the mean and std are the plane alone (one plane of memory), placed on plane 1
    for name in ("cells mean", "cells std"):
        out = viewer.layers[name]
        assert type(out.data) is np.ndarray and out.data.shape == (1, 32, 40) and out.data.dtype == np.float32
        np.testing.assert_allclose(out.translate, (2.0, 0, 0))
        np.testing.assert_allclose(out.data_to_world((0, 5, 7)), layer.data_to_world((1, 5, 7)))
    # the trajectory keeps the plane's place on Z: its step axis is a slider of its own, in front
    # of Z (napari lines layers up by their last axes: a (steps, Y, X) layer would put the steps on Z)
    trajectory = viewer.layers["cells trajectory"]
    assert trajectory.data.shape == (4, 1, 32, 40)
    np.testing.assert_allclose(trajectory.data_to_world((3, 0, 5, 7))[1:], layer.data_to_world((1, 5, 7)))
    assert "cells x0 estimate" not in viewer.layers and "cells z_t" not in viewer.layers
    mean, std = viewer.layers["cells mean"].data, viewer.layers["cells std"].data
    assert np.isfinite(std).all() and (std >= 0).all()
    np.testing.assert_allclose(samples.data.mean(0), mean, rtol=1e-4, atol=1e-2)
    metrics = widget.last[0].metrics
    assert set(metrics) == {"input", "result"}
    assert "PSNR" in widget.metrics_label.text() and "mean" in widget.metrics_label.text()


def test_rgb_run_gives_one_std_per_pixel(dock, qtbot):
    viewer, widget = dock
    rgb = np.random.default_rng(3).integers(0, 255, (32, 40, 3), dtype=np.uint8)
    layer = viewer.add_image(rgb, name="photo", rgb=True)
    widget.set_models(*tiny_pair(3))
    configure(widget, layer, steps=3, samples=2)
    run_and_wait(qtbot, widget)
    assert viewer.layers["photo mean"].rgb and viewer.layers["photo mean"].data.shape == rgb.shape
    std = viewer.layers["photo std"]
    assert not std.rgb and std.data.shape == (32, 40) and (std.data >= 0).all()


def test_a_failing_run_reports_and_removes_live_layers(dock, qtbot):
    viewer, widget = dock
    layer = viewer.add_image(image((32, 32)), name="img")
    widget.set_models(tiny_pair(1)[0], tiny_pair(3)[1])  # a 1-channel predictor with a 3-channel denoiser
    configure(widget, layer, steps=3, samples=1)
    count = len(viewer.layers)
    run_and_wait(qtbot, widget)
    assert "failed" in widget.status_label.text() and "channel" in widget.status_label.text()
    assert len(viewer.layers) == count and widget.run_button.isEnabled()


def test_event_loop_keeps_answering_during_a_run(dock, qtbot):
    from qtpy.QtCore import QTimer

    viewer, widget = dock
    layer = viewer.add_image(image((64, 64)), name="img")
    widget.set_models(*tiny_pair(1))
    configure(widget, layer, steps=40, samples=2)
    ticks, computing = [], {"yes": True}
    timer = QTimer()
    timer.setInterval(20)
    timer.timeout.connect(lambda: ticks.append((time.perf_counter(), computing["yes"] and widget.worker is not None)))
    # sampling (with its live previews) runs until the worker returns; adding the final layers
    # afterwards is napari's own work in the main thread and not what this test measures
    on_returned = widget.on_returned

    def returned(output):
        computing["yes"] = False
        on_returned(output)

    widget.on_returned = returned
    qtbot.wait(300)
    timer.start()
    widget.run()  # adds the two live layers (blank) before it starts the worker: not part of the run
    started = time.perf_counter()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=120000)
    timer.stop()
    during = [t for t, running in ticks if running and t > started]
    assert len(during) >= 5, f"the run took {time.perf_counter() - started:.2f} s: too short to measure"
    gaps = np.diff([started, *during])
    print(
        f"run {time.perf_counter() - started:.2f} s, {len(during)} ticks, worst gap {gaps.max() * 1000:.0f} ms, "
        f"{widget.preview_count} previews"
    )
    assert gaps.max() < 0.2, f"the event loop stalled for {gaps.max() * 1000:.0f} ms during the run"
    assert "img mean" in viewer.layers


@pytest.mark.parametrize(
    "steps, frames, max_bytes, expect",
    [
        (6, 100, 1 << 30, [1, 2, 3, 4, 5, 6]),
        (1000, 100, 1 << 30, list(range(11, 1000, 11)) + [1000]),  # every 11th step and the last: 91 frames
        (500, 100, 10 * 64 * 64 * 4, list(range(56, 500, 56)) + [500]),  # the memory budget: 10 frames of 64x64
        (50, 1, 1 << 30, [50]),
    ],
)
def test_trajectory_thins_evenly_within_its_budget(steps, frames, max_bytes, expect):
    from napari_deblur.plugin.diffusion_job import Trajectory

    trajectory = Trajectory(steps, (64, 64), max_frames=frames, max_bytes=max_bytes)
    for step in range(1, steps + 1):
        if trajectory.wants(step):
            trajectory.add(step, np.full((64, 64), step, np.float32))
    assert trajectory.at == expect
    assert len(trajectory.at) <= min(frames, max_bytes // (64 * 64 * 4))
    stacked = trajectory.stack()
    assert stacked.shape == (len(expect), 64, 64) and stacked[-1, 0, 0] == steps


def test_changing_the_denoiser_in_code_selects_its_predictor(dock, pair_files):
    from napari_deblur.plugin.options import LOAD_WEIGHTS

    _, widget = dock
    predictor, denoiser = pair_files(1)
    assert widget.load_denoiser(denoiser)
    combo, options = widget.denoiser_combo, widget.options.model_combo
    loaded = combo.currentIndex()
    options.setCurrentIndex(0)  # the user (or a script) picked another predictor meanwhile
    combo.setCurrentIndex(combo.findText(LOAD_WEIGHTS))  # in code: no "activated", no file dialog
    assert options.currentIndex() == 0
    combo.setCurrentIndex(loaded)  # back to the loaded denoiser
    assert options.currentText() == predictor.name


def test_the_bundled_denoiser_follows_the_layer_until_the_user_picks(make_napari_viewer, monkeypatch, tmp_path):
    from factories import bundle_presets

    monkeypatch.setenv("NAPARI_DEBLUR_RESOURCES", str(tmp_path))
    bundle_presets(tmp_path, tiny_pair)
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-deblur", "Diffusion deblur")
    combo, predictor = widget.denoiser_combo, widget.options.model_combo
    viewer.add_image(image(), name="cells")
    assert (combo.currentText(), predictor.currentText()) == ("dvsr-microscopy", "xydeblur-microscopy")
    viewer.add_image(np.random.default_rng(1).random((24, 32, 3)), name="photo", rgb=True)
    widget.input_combo.setCurrentText("photo")
    assert (combo.currentText(), predictor.currentText()) == ("dvsr-photo", "xydeblur-photo")
    widget.input_combo.setCurrentText("cells")
    assert combo.currentText() == "dvsr-microscopy"
    index = combo.findText("dvsr-photo")  # the user picks the photo denoiser for the gray layer
    combo.setCurrentIndex(index)
    combo.activated.emit(index)
    widget.input_combo.setCurrentText("photo")
    widget.input_combo.setCurrentText("cells")
    assert (combo.currentText(), predictor.currentText()) == ("dvsr-photo", "xydeblur-photo")


def test_the_denoiser_follows_the_engines_policy_and_says_why(make_napari_viewer, qtbot, monkeypatch, tmp_path):
    """A uint16 layer with 3 channels last is a camera's range, and one labelled C, Y, X a
    fluorescence layout: dvsr-microscopy either way (the channel count alone said photo for
    the first); the label under the denoiser and the status after a run say why."""
    from factories import bundle_presets

    monkeypatch.setenv("NAPARI_DEBLUR_RESOURCES", str(tmp_path))
    bundle_presets(tmp_path, tiny_pair)
    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-deblur", "Diffusion deblur")
    combo, predictor = widget.denoiser_combo, widget.options.model_combo
    viewer.add_image(image((40, 48, 3)), name="rgb16", rgb=True)
    assert (combo.currentText(), predictor.currentText()) == ("dvsr-microscopy", "xydeblur-microscopy")
    assert "YXC uint16 is a microscopy range" in widget.choice_label.text()
    viewer.add_image(image((3, 40, 48)), name="cells", axis_labels=("C", "Y", "X"))
    configure(widget, viewer.layers["cells"], steps=2, samples=1)
    why = "dvsr-microscopy, per channel: CYX uint16 is a fluorescence layout"
    assert widget.choice_label.text() == f"for this layer: {why}"
    run_and_wait(qtbot, widget)
    assert f"Denoiser {why}." in widget.status_label.text()
    assert viewer.layers["cells mean"].metadata["napari_deblur"]["model_choice"] == why


def test_the_cpu_estimate_follows_steps_samples_and_scope(dock):
    from napari_deblur.plugin.estimate import diffusion_cpu_seconds, format_estimate

    viewer, widget = dock
    layer = viewer.add_image(image(), name="cells")  # 2 planes of 40 x 48, one channel

    def expected(planes, steps, samples):
        seconds = diffusion_cpu_seconds(40, 48, planes, steps=steps, samples=samples, threads=torch.get_num_threads())
        return format_estimate(seconds)

    configure(widget, layer, steps=10, samples=8, scope="current slice")
    assert widget.estimate_label.text() == expected(1, 10, 8)
    widget.steps_slider.setValue(500)
    widget.samples_spin.setValue(1)
    assert widget.estimate_label.text() == expected(1, 500, 1) != expected(1, 10, 8)
    widget.scope_combo.setCurrentText("whole stack")
    assert widget.estimate_label.text() == expected(2, 500, 1) != expected(1, 500, 1)


def test_a_finished_cpu_run_rescales_the_next_estimates(dock):
    from napari_deblur.plugin.estimate import format_estimate

    viewer, widget = dock
    layer = viewer.add_image(image(), name="cells")
    configure(widget, layer, steps=10, samples=8, scope="current slice")
    before = widget.reference_estimate()
    assert widget.estimate_label.text() == format_estimate(before)
    widget.make_job(layer)  # what Run does first: the run's estimate is kept
    widget.remember_speed({"device": "cpu", "seconds": 3 * before})  # the run took three times as long
    assert widget.estimate_label.text() == format_estimate(3 * before) != format_estimate(before)
    widget.steps_slider.setValue(20)  # the factor holds for other settings of the same denoiser
    assert widget.estimate_label.text() == format_estimate(3 * widget.reference_estimate())
    widget.make_job(layer)
    widget.remember_speed({"device": "cuda:0", "seconds": 1000.0})  # a GPU run says nothing about the CPU
    assert widget.estimate_label.text() == format_estimate(3 * widget.reference_estimate())
