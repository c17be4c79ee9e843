"""The end of a run in one event-loop turn per layer (issue 20.4): the XYDeblur widget adds
its result layers one per turn, with the contrast limits the worker chose (napari scans no
data on the main thread), in the same order and with the same names as before; Cancel or
closing the widget or the viewer while they are added leaves no half state.

Timing is not asserted here: ``tools/gui_latency.py`` measures the gaps.
"""

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("pytestqt")
torch = pytest.importorskip("torch")
pytestmark = pytest.mark.gui

NAMES = ["cells", "cells r_hor", "cells r_ver", "cells deblurred"]


def test_steps_run_one_per_turn_in_order_and_a_failure_ends_only_its_generator(qtbot):
    from qtpy.QtWidgets import QWidget

    from napari_deblur.plugin.turns import Turns

    parent, done, failures = QWidget(), [], []
    turns = Turns(parent, on_failure=failures.append)

    def steps(name, count, fail=False):
        for i in range(count):
            done.append(f"{name}{i}")
            yield
        if fail:
            raise ValueError(f"{name} refused")
        done.append(f"{name} end")

    turns.add(steps("a", 2, fail=True))
    turns.add(steps("b", 2))
    assert done == []  # nothing in the turn that queued them
    qtbot.waitUntil(lambda: len(turns) == 0, timeout=5000)
    assert done == ["a0", "a1", "b0", "b1", "b end"]
    assert [str(err) for err in failures] == ["a refused"]
    turns.add(steps("c", 3))
    turns.flush()  # all at once
    assert done[-4:] == ["c0", "c1", "c2", "c end"] and len(turns) == 0


@pytest.fixture
def dock(make_napari_viewer, qtbot):
    from napari_deblur.models.xydeblur import XYDeblur

    viewer = make_napari_viewer()
    _, widget = viewer.window.add_plugin_dock_widget("napari-deblur", "XYDeblur")
    data = np.random.default_rng(0).integers(100, 4000, (3, 40, 48), dtype=np.uint16)
    viewer.add_image(data, name="cells", contrast_limits=(100, 4000))
    torch.manual_seed(0)
    widget.options.add_model("tiny", XYDeblur(width=4, blocks=1, channels=1).eval())
    widget.input_combo.setCurrentText("cells")
    widget.scope_combo.setCurrentText("whole stack")
    widget.options.device_combo.setCurrentText("cpu")
    yield viewer, widget
    if widget.worker is not None:
        widget.cancel()
        qtbot.waitUntil(lambda: widget.worker is None, timeout=60000)


def test_result_layers_arrive_one_per_turn_with_the_workers_contrast_limits(dock, qtbot, monkeypatch):
    import napari.layers.image.image as image_module
    from qtpy.QtCore import QTimer

    viewer, widget = dock
    assert widget.estimate_label.text().endswith("on the CPU")  # the CPU time estimate, before the run
    scanned = []  # arrays napari chose contrast limits for by reading them
    real_range = image_module.calc_data_range
    monkeypatch.setattr(
        image_module, "calc_data_range", lambda data, *a, **k: scanned.append(data.shape) or real_range(data, *a, **k)
    )
    turn = {"n": 0}
    ticker = QTimer()  # counts event-loop turns
    ticker.setInterval(0)
    ticker.timeout.connect(lambda: turn.update(n=turn["n"] + 1))
    inserted = []
    viewer.layers.events.inserted.connect(
        lambda e: inserted.append((e.value.name, turn["n"], widget.worker is not None))
    )
    ticker.start()
    widget.run()
    qtbot.waitUntil(lambda: widget.worker is None, timeout=120000)
    ticker.stop()
    assert [name for name, _, _ in inserted] == NAMES[1:]
    assert len({n for _, n, _ in inserted}) == 3, inserted  # each layer in a turn of its own
    assert all(running for _, _, running in inserted)  # "running" until the last layer is in
    assert [layer.name for layer in viewer.layers] == NAMES
    assert scanned == []
    assert tuple(viewer.layers["cells deblurred"].contrast_limits) == (100, 4000)  # drawn like the input
    low, high = viewer.layers["cells r_hor"].contrast_limits
    assert low == -high and high > 0 and tuple(viewer.layers["cells r_ver"].contrast_limits) == (low, high)
    assert "Done" in widget.status_label.text(), widget.status_label.text()
    assert widget.run_button.isEnabled() and not widget.cancel_button.isEnabled()
    inserted.clear()
    widget.run()  # a rerun replaces the layers in place, in turns too
    qtbot.waitUntil(lambda: widget.worker is None, timeout=120000)
    assert inserted == [] and [layer.name for layer in viewer.layers] == NAMES and scanned == []


def test_cancel_or_closing_the_widget_while_the_layers_are_added_leaves_the_whole_result(dock, qtbot):
    viewer, widget = dock
    seen = {}

    def arrived(_):  # connected after the widget's own slot: its layers are queued, none added
        seen["queued"] = len(widget.turns)
        seen["layers"] = [layer.name for layer in viewer.layers]
        widget.cancel()  # nothing left to cancel
        seen["cancelled"] = widget.cancelled
        widget.close()  # adds the rest at once

    widget.run()
    widget.worker.returned.connect(arrived)
    qtbot.waitUntil(lambda: widget.worker is None, timeout=120000)
    # mid-queue: the result's layers are still going in (how many are in already depends on
    # how the worker thread's queued signal and the zero-delay turns interleave)
    assert seen["queued"] == 1 and not seen["cancelled"]
    assert seen["layers"] == NAMES[: len(seen["layers"])] and len(seen["layers"]) < len(NAMES)
    assert [layer.name for layer in viewer.layers] == NAMES
    assert "Done" in widget.status_label.text(), widget.status_label.text()
    assert widget.run_button.isEnabled() and not widget.cancel_button.isEnabled()


def test_closing_the_viewer_while_the_layers_are_added_raises_nothing(dock, qtbot):
    viewer, widget = dock
    closed = []

    def arrived(_):
        viewer.close()
        closed.append(True)

    widget.run()
    widget.worker.returned.connect(arrived)
    qtbot.waitUntil(lambda: bool(closed), timeout=120000)
    qtbot.wait(300)  # a turn left would run (and fail) here
    qtbot.waitUntil(lambda: widget.worker is None, timeout=5000)  # the widget is gone and its run with it
    assert len(widget.turns) == 0
