"""The plugin's Qt-free parts: layer axes, current plane, a job end to end, limits, readout."""

import numpy as np
import pytest

pytest.importorskip("napari")
torch = pytest.importorskip("torch")


def image_layer(shape, **kwargs):
    from napari.layers import Image

    return Image(np.zeros(shape, dtype=np.uint8), **kwargs)


@pytest.mark.parametrize(
    ("shape", "kwargs", "axes"),
    [
        ((40, 48, 3), {"rgb": True}, "YXC"),
        ((5, 40, 48, 3), {"rgb": True}, "ZYXC"),
        ((2, 40, 48, 4), {"rgb": True, "axis_labels": ("t", "y", "x")}, "TYXC"),
        ((3, 40, 48), {}, "ZYX"),
        ((2, 3, 40, 48), {}, "TZYX"),
        ((40, 48, 3), {"rgb": False}, "ZYX"),  # not taken for colour: napari says it is not RGB
        ((2, 3, 40, 48), {"axis_labels": ("T", "C", "Y", "X")}, "TCYX"),
        ((3, 40, 48), {"axis_labels": ("c", "y", "x")}, "CYX"),
        ((3, 40, 48), {"axis_labels": ("S", "Y", "X")}, "CYX"),
        ((3, 40, 48), {"axis_labels": ("depth", "y", "x")}, "ZYX"),  # words: the default
        ((3, 40, 48), {"axis_labels": ("Z", "Z", "X")}, "ZYX"),  # not distinct: the default
    ],
)
def test_layer_axes(shape, kwargs, axes):
    from napari_deblur.plugin.axes import layer_axes

    assert layer_axes(image_layer(shape, **kwargs)) == axes


def test_six_unlabelled_dimensions_ask_for_labels():
    from napari_deblur.plugin.axes import layer_axes

    with pytest.raises(ValueError, match="axis_labels"):
        layer_axes(image_layer((2, 2, 2, 2, 8, 8)))


def typed_layer(shape, dtype, **kwargs):
    from napari.layers import Image

    return Image(np.zeros(shape, dtype=dtype), **kwargs)


@pytest.mark.parametrize(
    ("shape", "dtype", "kwargs", "name", "why"),
    [
        (
            (3, 40, 48),
            np.uint16,
            {"axis_labels": ("C", "Y", "X")},
            "xydeblur-microscopy",
            "xydeblur-microscopy, per channel: CYX uint16 is a fluorescence layout",
        ),
        (
            (40, 48, 3),
            np.uint16,
            {"rgb": True},
            "xydeblur-microscopy",  # the channel count alone said photo
            "xydeblur-microscopy, per channel: YXC uint16 is a microscopy range (integers wider than 8 bits)",
        ),
        (
            (40, 48, 3),
            np.uint8,
            {"rgb": True},
            "xydeblur-photo",
            "xydeblur-photo: YXC uint8 with 3 channels last is an RGB(A) photograph",
        ),
        (
            (4, 40, 48, 3),
            np.float32,
            {"rgb": True, "axis_labels": ("Z", "Y", "X")},
            "xydeblur-microscopy",
            "xydeblur-microscopy, per channel: ZYXC float32 is a stack of channels, a microscopy layout",
        ),
        (
            (4, 40, 48, 3),
            np.float32,
            {"rgb": True},
            "xydeblur-photo",  # guessed axes are not given ones
            "xydeblur-photo: ZYXC float32 with 3 channels last is an RGB(A) photograph",
        ),
        (
            (3, 40, 48),
            np.float32,
            {},
            "xydeblur-microscopy",
            "xydeblur-microscopy: ZYX float32 has one channel, not RGB(A)",
        ),
    ],
)
def test_the_widgets_suggest_the_engines_default_model_and_say_why(shape, dtype, kwargs, name, why):
    from napari_deblur.engine.axes import normalize_axes
    from napari_deblur.models.registry import default_model_name
    from napari_deblur.plugin.axes import labelled_axes, layer_axes
    from napari_deblur.plugin.model_default import suggest_predictor

    layer = typed_layer(shape, dtype, **kwargs)
    suggestion = suggest_predictor(layer)
    assert (suggestion.name, suggestion.why) == (name, why)
    axes = layer_axes(layer)  # what the engine picks for these axes, given as the labels give them
    channels = shape[axes.index("C")] if "C" in axes else 1
    given = labelled_axes(layer) is not None
    assert default_model_name(channels, normalize_axes(axes, shape), dtype, axes_given=given) == name


def test_denoiser_suggestion_and_what_a_run_reports():
    from napari_deblur.plugin.model_default import Suggestion, choice_text, suggest_denoiser

    cells = typed_layer((3, 40, 48), np.uint16, axis_labels=("C", "Y", "X"))
    both = ["dvsr-microscopy", "dvsr-photo"]
    assert suggest_denoiser(cells, both) == Suggestion(
        "dvsr-microscopy", "dvsr-microscopy, per channel: CYX uint16 is a fluorescence layout"
    )
    alone = suggest_denoiser(cells, ["dvsr-photo"])
    assert alone.name == "dvsr-photo" and alone.why.startswith("dvsr-photo: dvsr-microscopy is not bundled (CYX")
    assert choice_text("dvsr-microscopy", suggest_denoiser(cells, both)).endswith("a fluorescence layout")
    assert choice_text("mine.safetensors", suggest_denoiser(cells, both)) == "mine.safetensors (chosen in the widget)"
    assert choice_text("dvsr-photo", None) == "dvsr-photo (chosen in the widget)"


def test_no_suggestion_for_axes_the_plugin_cannot_tell():
    from napari_deblur.plugin.model_default import suggest_predictor

    with pytest.raises(ValueError, match="axis_labels"):
        suggest_predictor(typed_layer((2, 2, 2, 2, 8, 8), np.uint16))


def test_plane_index_follows_scale_translate_and_clips():
    from napari_deblur.plugin.axes import plane_index, sliced_axes

    layer = image_layer((4, 3, 8, 8), scale=(2.0, 0.5, 1, 1), translate=(10.0, 0, 0, 0))
    index = plane_index(layer, "TZYX", (14.0, 1.0, 3.0, 3.0))
    assert index == (2, 2, slice(None), slice(None)) and sliced_axes("TZYX", index) == "YX"
    assert plane_index(layer, "TZYX", (99.0, -5.0, 0, 0))[:2] == (3, 0)
    rgb = image_layer((5, 8, 8, 3), rgb=True)
    assert plane_index(rgb, "ZYXC", (3.0, 0, 0)) == (3, slice(None), slice(None), slice(None))


def test_a_plane_keeps_its_axes_and_is_placed_on_its_plane():
    from napari_deblur.plugin.plane import keepdims_index, part_shape, part_translate

    index = (2, 1, slice(None), slice(None))
    assert keepdims_index(index) == (slice(2, 3), slice(1, 2), slice(None), slice(None))
    assert part_shape((4, 3, 8, 9), index) == (1, 1, 8, 9) and part_shape((8, 9), None) == (8, 9)
    assert part_translate((10.0, 0, 5, 6), (2.0, 0.5, 1, 1), index, rgb=False) == (14.0, 0.5, 5.0, 6.0)
    rgb_index = (3, slice(None), slice(None), slice(None))  # ZYXC: the colour axis has no transform
    assert part_translate((0, 0, 0), (0.5, 1, 1), rgb_index, rgb=True) == (1.5, 0.0, 0.0)
    assert part_translate((1, 2), (1, 1), None, rgb=False) == (1.0, 2.0)


def test_live_layers_show_frames_and_are_removed():
    from types import SimpleNamespace

    from napari.components import ViewerModel

    from napari_deblur.plugin.layers import source_properties
    from napari_deblur.plugin.live import LiveLayers

    viewer = ViewerModel()
    data = np.full((3, 8, 10), 50, dtype=np.uint16)
    layer = viewer.add_image(data, name="cells", colormap="green", contrast_limits=(0, 100))
    ctx = {"name": "cells", "props": source_properties(layer), "rgb": False, "part_translate": (1.0, 0.0, 0.0)}
    live = LiveLayers(viewer)
    live.create(data[1:2], ctx, {"source_layer": "cells"})
    assert live.names() == ["cells z_t", "cells x0 estimate"] and live.count == 0
    x0, z_t = viewer.layers["cells x0 estimate"], viewer.layers["cells z_t"]
    assert viewer.layers[-1] is x0 and np.shares_memory(x0.data, data)
    assert x0.metadata["napari_deblur"] == {"source_layer": "cells", "output": "x0"}
    frame = np.ones((1, 8, 10), dtype=np.float32)
    live.show(SimpleNamespace(x0=frame, z_t=-frame, z_limit=2.0))
    assert live.count == 1 and x0.data is frame and z_t.colormap.name == "gray"
    assert tuple(z_t.contrast_limits) == (-2.0, 2.0) and x0.colormap.name == "green"
    viewer.layers.remove(x0)  # the user deleted one: the other still gets the frames
    live.show(SimpleNamespace(x0=frame, z_t=frame, z_limit=1.0))
    assert live.count == 2 and tuple(z_t.contrast_limits) == (-1.0, 1.0)
    live.remove()
    assert live.names() == [] and [lay.name for lay in viewer.layers] == ["cells"]


def test_job_on_an_rgb_stack_plane(monkeypatch):
    from napari_deblur.engine.restore import run_to_end
    from napari_deblur.models.xydeblur import XYDeblur
    from napari_deblur.plugin.xydeblur_job import Job, run_job

    torch.manual_seed(0)
    model = XYDeblur(width=4, blocks=1, channels=3).eval()
    data = np.random.default_rng(0).integers(0, 255, (3, 32, 40, 3), dtype=np.uint8)
    before = data.copy()
    region = np.zeros((32, 40), bool)
    region[4:20, 4:20] = True
    job = Job(
        data=data,
        axes="ZYXC",
        model=model,
        options={"device": "cpu"},
        index=(1, slice(None), slice(None), slice(None)),
        rgb=True,
        reference=data,
        region=region,
    )
    out = run_to_end(run_job(job))
    np.testing.assert_array_equal(data, before)
    # the plane alone, its Z axis kept as 1 (placed on plane 1 by the layer's translate)
    assert out.restored.shape == (1, 32, 40, 3) and out.restored.dtype == np.uint8
    assert out.r_hor.shape == (1, 32, 40, 3) and np.isfinite(out.r_hor).all()
    alone = run_to_end(run_job(Job(data=data[1], axes="YXC", model=model, options={"device": "cpu"}, rgb=True)))
    np.testing.assert_array_equal(out.restored[0], alone.restored)
    assert out.chroma.shape == (1, 32, 40) and np.isfinite(out.chroma).all()
    assert out.shift.n_pixels == 16 * 16 and out.shift_where == "region"
    assert out.metrics["input"]["psnr"] == np.inf or out.metrics["input"]["psnr"] > 90  # itself as reference
    assert out.limits["residual"] > 0 and out.limits["chroma"] > 0


def test_a_plane_of_a_dask_stack_reads_that_plane_only():
    da = pytest.importorskip("dask.array")
    from napari_deblur.engine.restore import run_to_end
    from napari_deblur.models.xydeblur import XYDeblur
    from napari_deblur.plugin.xydeblur_job import Job, run_job

    torch.manual_seed(0)
    model = XYDeblur(width=4, blocks=1, channels=3).eval()
    data = np.random.default_rng(0).integers(0, 255, (3, 32, 40, 3), dtype=np.uint8)
    reads = []

    class Counting:  # a stand-in for a file: records which planes are read
        shape, dtype, ndim = data.shape, data.dtype, data.ndim

        def __getitem__(self, key):
            reads.append(key)
            return data[key]

    lazy = da.from_array(Counting(), chunks=(1, 32, 40, 3))
    index = (1, slice(None), slice(None), slice(None))
    eager = run_to_end(
        run_job(Job(data=data, axes="ZYXC", model=model, options={"device": "cpu"}, index=index, rgb=True))
    )
    out = run_to_end(
        run_job(Job(data=lazy, axes="ZYXC", model=model, options={"device": "cpu"}, index=index, rgb=True))
    )
    assert all(key[0] == slice(1, 2) for key in reads)  # only plane 1 came off the "disk"
    for kind in ("restored", "r_hor", "r_ver", "chroma"):
        np.testing.assert_array_equal(getattr(out, kind), getattr(eager, kind))


def huge_stacks(plane):
    """The same plane as a numpy stack of 20,000 planes (a read-only view: one plane in memory) and
    as a dask stack of a million planes, whose float32 copy (5 GB) would not fit a small machine."""
    da = pytest.importorskip("dask.array")
    eager = np.broadcast_to(plane, (20_000, *plane.shape))
    lazy = da.from_array(np.broadcast_to(plane, (1_000_000, *plane.shape)), chunks=(1000, *plane.shape))
    return eager, lazy


@pytest.mark.parametrize("kind", ["numpy", "dask"])
def test_a_current_slice_run_costs_one_plane_of_a_huge_stack(kind):
    """Issue 19.14: the outputs of a current-slice run are the plane (as numpy), never the stack."""
    from factories import tiny_model

    from napari_deblur.engine.restore import run_to_end
    from napari_deblur.plugin.xydeblur_job import Job, run_job

    plane = np.random.default_rng(1).integers(100, 4000, (32, 40), dtype=np.uint16)
    stack = dict(zip(("numpy", "dask"), huge_stacks(plane)))[kind]
    index = (7, slice(None), slice(None))
    out = run_to_end(run_job(Job(data=stack, axes="ZYX", model=tiny_model(), options={"device": "cpu"}, index=index)))
    alone = run_to_end(run_job(Job(data=plane, axes="YX", model=tiny_model(), options={"device": "cpu"})))
    for name, dtype in (("restored", np.uint16), ("r_hor", np.float32), ("r_ver", np.float32)):
        data = getattr(out, name)
        assert type(data) is np.ndarray and data.shape == (1, 32, 40) and data.dtype == dtype, name
        assert data.nbytes == plane.size * dtype().itemsize, name
    np.testing.assert_array_equal(out.restored[0], alone.restored)


@pytest.mark.parametrize("kind", ["numpy", "dask"])
def test_a_current_slice_diffusion_costs_one_plane_of_a_huge_stack(kind):
    """Issue 19.14: the mean and std of a current-slice refinement are the plane, never the stack."""
    from factories import tiny_model

    from napari_deblur.engine.restore import run_to_end
    from napari_deblur.models.denoiser import ResidualDenoiser
    from napari_deblur.plugin.diffusion_job import DiffusionJob, run_diffusion

    plane = np.random.default_rng(1).integers(100, 4000, (24, 32), dtype=np.uint16)
    stack = dict(zip(("numpy", "dask"), huge_stacks(plane)))[kind]
    torch.manual_seed(0)
    pair = (tiny_model(), ResidualDenoiser(1, width=8).eval())
    job = DiffusionJob(
        data=stack,
        axes="ZYX",
        model=pair,
        steps=2,
        samples=2,
        options={"device": "cpu"},
        index=(7, slice(None), slice(None)),
    )
    out = run_to_end(run_diffusion(job))
    for name in ("mean", "std"):
        data = getattr(out, name)
        assert type(data) is np.ndarray and data.shape == (1, 24, 32) and data.dtype == np.float32, name
        assert np.isfinite(data).all(), name
    assert out.trajectory.shape == (2, 1, 24, 32)


def test_engine_runtime_errors_reach_the_widget(monkeypatch):
    import napari_deblur.engine.restore as restore
    from napari_deblur.plugin.running import RunError
    from napari_deblur.plugin.xydeblur_job import Job, run_job

    def broken(*args, **kwargs):
        yield restore.Progress(0, 1)
        raise RuntimeError("CUDA error: device-side assert\nmore lines")

    monkeypatch.setattr(restore, "xydeblur_iter", broken)
    with pytest.raises(RunError, match="device-side assert"):
        restore.run_to_end(run_job(Job(data=np.zeros((8, 8), np.float32), axes="YX", model="x")))


def test_job_generator_keeps_yields_and_result_and_raises_run_error_with_the_first_line():
    from napari_deblur.plugin.running import RunError, first_line, job_generator

    @job_generator
    def job(n):
        yield from range(n)
        if n < 0:
            raise RuntimeError("first\nsecond")
        return "done"

    gen = job(3)
    assert [next(gen) for _ in range(3)] == [0, 1, 2]
    with pytest.raises(StopIteration) as stop:
        next(gen)
    assert stop.value.value == "done"
    with pytest.raises(RunError, match="^first$") as info:
        next(job(-1))
    assert isinstance(info.value.__cause__, RuntimeError)
    assert first_line(RuntimeError("")) == "RuntimeError" and first_line(ValueError(" a\nb ")) == "a"
    with pytest.raises(ValueError):  # only RuntimeError is converted
        next(job_generator(lambda _: (_ for _ in ()).throw(ValueError("x")))(None))


def test_dock_text_helpers():
    from napari_deblur.plugin.dock import engine_info, notes_text, plane_text

    assert plane_text(None) == "" and plane_text({"Z": 2, "T": 0}) == " (plane Z=2, T=0)"
    assert notes_text([]) == "" and notes_text(["a", "b"]) == " Note: a; b"
    assert engine_info({"device": "cpu", "tile": 256, "seconds": 1.5, "shape": (2, 3), "x": None}) == {
        "device": "cpu",
        "tile": 256,
        "seconds": 1.5,
    }


def test_output_kwargs_styles_and_stacked_kwargs():
    from napari_deblur.plugin.layers import MAP_COLORMAP, output_kwargs, stacked_kwargs

    props = {
        "scale": (2.0, 1.0, 1.0),
        "translate": (0.0, 0.0, 0.0),
        "axis_labels": ("Z", "Y", "X"),
        "units": ("um", "um", "um"),
        "metadata": {"keep": 1},
        "contrast_limits": (0.0, 9.0),
        "colormap": "green",
    }
    mean = output_kwargs("mean", props, {"steps": 3}, rgb=False, translate=(4.0, 0.0, 0.0))
    assert mean["translate"] == (4.0, 0.0, 0.0) and mean["colormap"] == "green" and mean["contrast_limits"] == (0, 9)
    assert mean["metadata"] == {"keep": 1, "napari_deblur": {"steps": 3, "output": "mean"}}
    assert props["metadata"] == {"keep": 1}  # the input's metadata is copied, not changed
    std = output_kwargs("std", props, {}, rgb=True, limit=2.0)
    assert std["rgb"] is False and std["colormap"] == MAP_COLORMAP and std["contrast_limits"] == (0.0, 2.0)
    assert "visible" not in std and output_kwargs("chroma", props, {}, rgb=True, limit=1.0)["visible"] is False
    residual = output_kwargs("r_hor", props, {}, rgb=True, limit=3.0)
    assert residual["contrast_limits"] == (-3.0, 3.0) and "colormap" not in residual
    frames = stacked_kwargs(mean, "step")
    assert frames["scale"] == (1.0, 2.0, 1.0, 1.0) and frames["translate"] == (0.0, 4.0, 0.0, 0.0)
    assert frames["axis_labels"] == ("step", "Z", "Y", "X") and frames["units"] == ("pixel", "um", "um", "um")


def test_limits_ignore_nan_and_are_positive():
    from napari_deblur.plugin.layers import symmetric_limit, upper_limit

    a = np.full((10, 10), np.nan, np.float32)
    assert symmetric_limit(a) == 1.0
    a[0, :5] = [-3, 1, 2, 0, 0.5]
    assert 2.9 < symmetric_limit(a, np.zeros(3)) <= 3
    assert upper_limit(np.zeros((4, 4))) > 0


def test_region_mask_maps_shapes_between_pixel_grids():
    from napari.layers import Shapes

    from napari_deblur.plugin.readout import region_mask

    shapes = Shapes([np.array([[1, 1], [1, 3], [3, 3], [3, 1]])], shape_type="rectangle", scale=(2.0, 2.0))
    mask = region_mask(shapes, image_scale=(1.0, 1.0), image_translate=(0.0, 0.0), yx_shape=(10, 10))
    assert mask.shape == (10, 10) and mask[3, 3] and mask[5, 5] and not mask[8, 8] and not mask[0, 0]
    assert region_mask(None, (1, 1), (0, 0), (10, 10)) is None


@pytest.mark.parametrize("module", ["reader", "sample_data", "xydeblur_widget"])
def test_what_napari_loads_does_not_import_torch(module):
    """The manifest's modules import torch inside functions only (a fresh interpreter checks)."""
    import subprocess
    import sys

    code = f"import sys, napari_deblur.plugin.{module}; print('torch' in sys.modules)"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "False"
