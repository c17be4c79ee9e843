"""How long napari's event loop stalls during and at the end of a run of the dock widgets.

A QTimer ticks every 5 ms on the main thread while a widget runs; every interval between
two ticks longer than that is time the event loop could not answer (a click, a redraw).
The worst interval is reported for three phases of each run:

- ``start``: the click on Run (the widget's ``run()``: making the job, the live layers of
  the diffusion widget) and the turn after it
- ``during``: from then until the worker returns its output (progress and previews)
- ``end``: from the output's arrival until the widget is ready again and 0.5 s more
  (adding the result layers, removing the live ones, napari's slicing and drawing)

Cases: the XYDeblur widget on one 2048 x 2048 uint16 plane and on a 32-plane 256 x 256
uint16 stack, and the "Diffusion deblur" widget on a 256 x 256 plane with 4 steps x 2
samples. Each case runs twice: ``first`` adds the layers, ``rerun`` replaces them. The
models are tiny random-weight networks (XYDeblur width 4, one block; ResidualDenoiser width
8): what is measured is the GUI's work, which does not depend on the network's size, and a
bundled model would make the 2048^2 run minutes long on a CPU.

    xvfb-run -a python tools/gui_latency.py                  # a shown window under xvfb
    xvfb-run -a python tools/gui_latency.py --hidden         # napari.Viewer(show=False)
    xvfb-run -a python tools/gui_latency.py --out /tmp/gl    # writes /tmp/gl.json and /tmp/gl.md

It writes ``benchmarks/gui-latency.json`` and ``.md`` with the machine (CPU model, torch
version and threads, load average, the other processes that used the CPU in the second
before the run).
"""

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np

TICK_MS = 5
SETTLE_S = 0.5
CASES = ("xydeblur plane 2048x2048", "xydeblur stack 32x256x256", "diffusion plane 256x256")


def busy_processes(seconds: float = 1.0, threshold: float = 0.2) -> list:
    """``[(command, share of one core)]`` of the other processes busier than ``threshold``
    over ``seconds`` (Linux /proc; empty elsewhere)."""

    def sample():
        ticks = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) == os.getpid():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                ticks[entry.name] = int(fields[11]) + int(fields[12])
            except (OSError, IndexError, ValueError):
                continue
        return ticks

    if not Path("/proc/stat").exists():
        return []
    hz = os.sysconf("SC_CLK_TCK")
    before = sample()
    time.sleep(seconds)
    after = sample()
    busy = []
    for pid, end in after.items():
        share = (end - before.get(pid, end)) / hz / seconds
        if share >= threshold:
            try:
                command = (Path("/proc") / pid / "cmdline").read_bytes().replace(b"\0", b" ").decode()[:90]
            except OSError:
                command = pid
            busy.append((command.strip(), round(share, 2)))
    return sorted(busy, key=lambda item: -item[1])


class GapClock:
    """Ticks every :data:`TICK_MS` ms and keeps the tick times."""

    def __init__(self):
        from qtpy.QtCore import QTimer

        self.ticks = []
        self.timer = QTimer()
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(lambda: self.ticks.append(time.perf_counter()))

    def worst(self, start: float, end: float) -> float:
        """The longest interval between ticks that ends in ``(start, end]``, in ms."""
        times = np.asarray(self.ticks)
        gaps = np.diff(times)
        ends = times[1:]
        chosen = gaps[(ends > start) & (ends <= end)]
        return float(chosen.max() * 1000) if chosen.size else 0.0


def wait(app, condition, timeout: float) -> None:
    """Run the event loop (as napari's ``app.exec()`` would) until ``condition()`` holds."""
    from qtpy.QtCore import QEventLoop, QTimer

    if condition():
        return
    loop, poll = QEventLoop(), QTimer()
    deadline = time.perf_counter() + timeout
    state = {"late": False}

    def check():
        if condition() or time.perf_counter() > deadline:
            state["late"] = not condition()
            loop.quit()

    poll.setInterval(20)
    poll.timeout.connect(check)
    poll.start()
    loop.exec()
    poll.stop()
    if state["late"]:
        raise TimeoutError("the run did not finish in time")


def pump(app, seconds: float) -> None:
    """Run the event loop for ``seconds``."""
    end = time.perf_counter() + seconds
    wait(app, lambda: time.perf_counter() >= end, seconds + 10)


def measure_run(app, widget, model: str) -> dict:
    """Run ``widget`` with the ``model`` of its list once under the clock; the worst gaps of
    the phases and the run's length."""
    from qtpy.QtCore import QTimer

    widget.options.select_model(model)  # new layers make the widget suggest a bundled model again

    clock, marks = GapClock(), {}
    real_returned = widget.on_returned

    def returned(output):
        marks["returned"] = time.perf_counter()
        real_returned(output)

    widget.on_returned = returned  # start_worker connects the attribute it finds
    clock.timer.start()
    pump(app, 0.2)

    def click():
        marks["click"] = time.perf_counter()
        widget.run()
        marks["started"] = time.perf_counter()

    QTimer.singleShot(0, click)
    wait(app, lambda: "started" in marks, 10)
    if widget.worker is None:
        raise RuntimeError(widget.status_label.text())
    wait(app, lambda: widget.worker is None, 600)
    marks["ready"] = time.perf_counter()
    pump(app, SETTLE_S)
    clock.timer.stop()
    del widget.on_returned
    if "returned" not in marks:
        raise RuntimeError(widget.status_label.text())
    after_click = next(t for t in clock.ticks if t > marks["started"])
    return {
        "start_ms": round(clock.worst(marks["click"], after_click), 1),
        "during_ms": round(clock.worst(after_click, marks["returned"]), 1),
        "end_ms": round(clock.worst(marks["returned"], marks["ready"] + SETTLE_S), 1),
        "run_s": round(marks["returned"] - marks["click"], 2),
        "end_to_ready_s": round(marks["ready"] - marks["returned"], 3),
        "status": widget.status_label.text()[:120],
    }


def tiny_models():
    import torch

    from napari_deblur.models.denoiser import ResidualDenoiser
    from napari_deblur.models.xydeblur import XYDeblur

    torch.manual_seed(0)
    return XYDeblur(width=4, blocks=1, channels=1).eval(), ResidualDenoiser(1, width=8).eval()


def run_case(app, viewer, case: str) -> list:
    rng = np.random.default_rng(0)
    predictor, denoiser = tiny_models()
    if case.startswith("diffusion"):
        _, widget = viewer.window.add_plugin_dock_widget("napari-deblur", "Diffusion deblur")
        data = rng.integers(100, 4000, (256, 256), dtype=np.uint16)
        layer = viewer.add_image(data, name="diffusion input")
        widget.set_models(predictor=predictor, denoiser=denoiser)
        widget.input_combo.setCurrentText(layer.name)
        widget.steps_slider.setValue(4)
        widget.samples_spin.setValue(2)
    else:
        _, widget = viewer.window.add_plugin_dock_widget("napari-deblur", "XYDeblur")
        shape = (2048, 2048) if "plane" in case else (32, 256, 256)
        data = rng.integers(100, 4000, shape, dtype=np.uint16)
        layer = viewer.add_image(data, name="plane" if "plane" in case else "stack")
        widget.options.add_model("tiny (random weights)", predictor)
        widget.input_combo.setCurrentText(layer.name)
        widget.scope_combo.setCurrentText("whole stack")
    widget.options.device_combo.setCurrentText("cpu")
    model = widget.options.model_combo.currentText()  # the tiny predictor
    pump(app, 0.5)  # the input layer is drawn before the clock starts
    rows = []
    for attempt in ("first", "rerun"):
        result = measure_run(app, widget, model)
        rows.append({"case": case, "attempt": attempt, **result})
        print(json.dumps(rows[-1]), flush=True)
    for name in [lay.name for lay in viewer.layers]:
        viewer.layers.remove(name)
    viewer.window.remove_dock_widget("all")
    pump(app, 0.3)
    return rows


def machine(threads: int) -> dict:
    import torch

    from napari_deblur.speed.timing import machine_name

    others = busy_processes()
    return {
        "cpu": machine_name(),
        "cores": os.cpu_count(),
        "torch": torch.__version__,
        "torch_threads": threads,
        "load_average_1min": round(os.getloadavg()[0], 2),
        "other_busy_processes": [{"command": c, "cores": s} for c, s in others],
        "python": platform.python_version(),
    }


def markdown(report: dict) -> str:
    m = report["machine"]
    lines = [
        "# napari event-loop gaps during and at the end of a run",
        "",
        f"Made by `tools/gui_latency.py` ({report['viewer']}, revision {report['revision']}).",
        f"CPU {m['cpu']}, {m['cores']} cores; torch {m['torch']} with {m['torch_threads']} threads; "
        f"load average {m['load_average_1min']} before the run.",
    ]
    if m["other_busy_processes"]:
        others = "; ".join(f"`{p['command'][:60]}` ({p['cores']:.2f} core)" for p in m["other_busy_processes"])
        lines.append(f"Other processes loading the CPU: {others}.")
    else:
        lines.append("No other process was loading the CPU.")
    lines += [
        "",
        "Worst interval between two 5 ms timer ticks on the main thread, in ms. Target: under 100 ms.",
        "",
        "| case | run | start | during | end | run (s) | output to ready (s) |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in report["runs"]:
        lines.append(
            f"| {r['case']} | {r['attempt']} | {r['start_ms']:.0f} | {r['during_ms']:.0f} | {r['end_ms']:.0f} "
            f"| {r['run_s']:.2f} | {r['end_to_ready_s']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def revision() -> str:
    import subprocess

    try:
        out = subprocess.run(["git", "describe", "--always", "--dirty"], capture_output=True, text=True, check=True)
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", default="benchmarks/gui-latency", help="path of the .json and .md, no suffix")
    parser.add_argument("--hidden", action="store_true", help="napari.Viewer(show=False) instead of a shown window")
    parser.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    parser.add_argument("--cases", nargs="*", default=list(CASES), choices=CASES)
    args = parser.parse_args(argv)

    import napari
    import torch
    from qtpy.QtWidgets import QApplication

    torch.set_num_threads(args.threads)
    report = {"machine": machine(args.threads), "viewer": "show=False" if args.hidden else "shown window"}
    report["revision"] = revision()
    viewer = napari.Viewer(show=not args.hidden)
    app = QApplication.instance()
    runs = []
    for case in args.cases:
        runs += run_case(app, viewer, case)
    viewer.close()
    report["runs"] = runs
    report["worst_ms"] = max(max(r["start_ms"], r["during_ms"], r["end_ms"]) for r in runs)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(report, indent=2) + "\n")
    out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))
    return report


if __name__ == "__main__":
    main()
