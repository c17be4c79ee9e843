"""Lazy restoration with dask (napari_deblur.lazy): laziness, equality with the in-memory
engine, shapes and dtypes, Y/X blocks with a halo, schedulers, the fixed scaling.

Tiny random-weight models on small arrays, one torch thread.
"""

import pickle

import numpy as np
import pytest

torch = pytest.importorskip("torch")
da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")

pytestmark = pytest.mark.usefixtures("one_thread")

from factories import tiny_model  # noqa: E402

from napari_deblur.engine import restore  # noqa: E402
from napari_deblur.engine.intensity import Scaling, fit_scaling  # noqa: E402
from napari_deblur.lazy import ModelRef, aligned_chunks, lazy_scaling, receptive_halo, xydeblur_lazy  # noqa: E402
from napari_deblur.models.xydeblur import XYDeblur  # noqa: E402


@pytest.fixture
def calls(monkeypatch):
    """The blocks the engine restored (their shapes), in order."""
    seen = []
    original = restore.xydeblur

    def counting(image, *args, **kwargs):
        seen.append(np.shape(image))
        return original(image, *args, **kwargs)

    monkeypatch.setattr(restore, "xydeblur", counting)
    return seen


def psnr(a, b, peak):
    mse = float(np.mean((np.asarray(a, np.float64) - np.asarray(b, np.float64)) ** 2))
    return np.inf if mse == 0 else 10 * np.log10(peak**2 / mse)


def test_nothing_is_restored_until_computed(calls, rng):
    image = rng.integers(0, 256, (6, 32, 40), dtype=np.uint8)
    lazy = xydeblur_lazy(image, tiny_model(), normalize="dtype", device="cpu")
    assert isinstance(lazy, da.Array)
    assert lazy.shape == image.shape and lazy.dtype == np.uint8
    assert lazy.chunks == ((1,) * 6, (32,), (40,))
    assert calls == []
    plane = lazy[3].compute()
    assert calls == [(1, 32, 40)]  # one plane, one engine call
    expected = restore.xydeblur(image, tiny_model(), normalize="dtype", device="cpu").restored
    calls.clear()
    np.testing.assert_array_equal(plane, expected[3])


def test_a_lazy_plane_equals_the_in_memory_plane(rng):
    image = rng.integers(200, 3000, (4, 36, 44), dtype=np.uint16)
    model = tiny_model()
    whole = restore.xydeblur(image, model, normalize="dtype", device="cpu")
    for out in ("restored", "r_hor", "r_ver"):
        lazy = xydeblur_lazy(da.from_array(image, chunks=(2, 36, 44)), model, normalize="dtype", out=out, device="cpu")
        assert lazy.chunks[0] == (1, 1, 1, 1)  # batch axes one plane per chunk
        if out == "restored":  # rounded to uint16: equal but where float rounding crosses a half level
            got, expected = lazy[1].compute().astype(np.int64), whole.restored[1].astype(np.int64)
            assert np.abs(got - expected).max() <= 1 and np.mean(got != expected) < 0.01
        else:  # float32 residuals: one plane per pass instead of four, equal to float rounding
            np.testing.assert_allclose(lazy[1].compute(), getattr(whole, out)[1], rtol=1e-4, atol=0.05)
        assert lazy.dtype == getattr(whole, out).dtype


def test_percentile_scaling_is_fitted_once_and_shared(rng, calls):
    image = (rng.random((5, 32, 32)) * np.arange(1, 6)[:, None, None] * 1000).astype(np.float32)
    model = tiny_model()
    scaling = lazy_scaling(image, model, normalize=(1, 99), sample_planes=3)
    assert calls == []  # fitting reads input planes only, it runs no network
    # planes 0, 2, 4 sampled: the same as fitting on those planes
    expected = fit_scaling(image[[0, 2, 4], None], image.dtype, (1, 99), per_channel=False)
    np.testing.assert_allclose(scaling.offset, expected.offset)
    np.testing.assert_allclose(scaling.scale, expected.scale)
    lazy = xydeblur_lazy(image, model, normalize=(1, 99), sample_planes=3, device="cpu")
    one = restore.xydeblur(image[4], model, normalize=scaling, device="cpu").restored
    np.testing.assert_array_equal(lazy[4].compute(), one)
    # with the same Scaling, the in-memory run over the whole stack gives the same planes
    whole = restore.xydeblur(image, model, normalize=scaling, device="cpu").restored
    lazy = xydeblur_lazy(image, model, scaling=scaling, device="cpu").compute()
    np.testing.assert_allclose(lazy, whole, rtol=1e-4, atol=1e-2)  # float32: to rounding (batch of 1 vs 5)


def test_engine_accepts_a_fitted_scaling_and_checks_its_channels(rng):
    image = rng.integers(0, 4000, (2, 3, 16, 16), dtype=np.uint16)
    scaling = Scaling(np.full(3, 100.0), np.full(3, 3000.0), "fixed")
    result = restore.xydeblur(image, tiny_model(), axes="ZCYX", normalize=scaling, device="cpu")
    assert result.info["normalize"] == "fixed"
    with pytest.raises(ValueError, match="channel"):
        restore.xydeblur(image, tiny_model(), axes="ZCYX", normalize=Scaling(np.zeros(1), np.ones(1), "x"))


def test_tzcyx_shape_and_dtype_preserved(rng, calls):
    image = rng.integers(0, 4000, (2, 3, 2, 20, 24), dtype=np.uint16)
    lazy = xydeblur_lazy(image, tiny_model(), axes="TZCYX", normalize="dtype", device="cpu")
    assert lazy.shape == image.shape and lazy.dtype == np.uint16
    assert lazy.chunks[2] == (2,)  # channels stay whole in a chunk
    result = lazy.compute()
    assert len(calls) == 6 and calls[0] == (1, 1, 2, 20, 24)
    expected = restore.xydeblur(image, tiny_model(), axes="TZCYX", normalize="dtype", device="cpu").restored
    np.testing.assert_array_equal(result, expected)
    residual = xydeblur_lazy(image, tiny_model(), axes="TZCYX", normalize="dtype", out="r_ver")
    assert residual.dtype == np.float32 and residual.shape == image.shape


def test_rgb_photo_is_restored_jointly(rng):
    image = rng.integers(0, 256, (2, 24, 28, 3), dtype=np.uint8)
    model = tiny_model(channels=3)
    lazy = xydeblur_lazy(image, model, device="cpu")  # auto: uint8 -> dtype, no data read
    assert lazy.chunks[-1] == (3,)
    expected = restore.xydeblur(image, model, device="cpu").restored
    np.testing.assert_array_equal(lazy.compute(), expected)


def test_yx_chunks_use_a_halo_and_match_the_in_memory_result(rng, calls):
    image = rng.random((2, 200, 180)).astype(np.float32)
    model = tiny_model()
    data = da.from_array(image, chunks=(1, 100, 90))  # 90 is off the network's 4-pixel grid
    lazy = xydeblur_lazy(data, model, normalize="dtype", halo=64, device="cpu")
    assert lazy.shape == image.shape and lazy.dtype == np.float32
    assert calls == []
    result = lazy.compute()
    assert len(calls) == 8  # 2 planes x 2 x 2 blocks
    assert max(shape[1] for shape in calls) == 100 + 64 and all(shape[2] % 4 == 0 for shape in calls)
    expected = restore.xydeblur(image, model, normalize="dtype", device="cpu").restored
    assert psnr(result, expected, 1.0) > 45
    # the tiny network sees less than 64 pixels: here the blocks agree to float rounding
    np.testing.assert_allclose(result, expected, atol=1e-5)


@pytest.mark.parametrize("blocks", [0, 1, 2])
def test_receptive_radius_bounds_how_far_a_pixel_reaches(blocks):
    torch.manual_seed(blocks)
    model = XYDeblur(width=4, blocks=blocks, channels=1).eval()
    x = torch.rand(1, 1, 240, 240)
    poked = x.clone()
    poked[0, 0, 120, 120] += 1
    with torch.no_grad():
        changed = (model(x)[2] - model(poked)[2]).abs()[0, 0] > 0
    ys, xs = np.nonzero(changed.numpy())
    reach = max(np.abs(ys - 120).max(), np.abs(xs - 120).max())
    radius = model.receptive_radius()
    assert reach <= radius  # a bound ...
    assert reach >= radius - 8 * (blocks + 1)  # ... and not a loose one
    assert XYDeblur(width=4, blocks=6).receptive_radius() == 179 and receptive_halo(XYDeblur(4, 6)) == 180


def test_the_default_halo_is_the_receptive_field_and_blocks_are_exact(rng, calls):
    model = XYDeblur(width=4, blocks=2, channels=1).eval()  # reaches 67 pixels: more than a 64 halo
    image = rng.random((300, 296)).astype(np.float32)
    lazy = xydeblur_lazy(da.from_array(image, chunks=(100, 100)), model, normalize="dtype", tile=1024, device="cpu")
    result = lazy.compute(scheduler="synchronous")
    assert max(shape[0] for shape in calls) >= 100 + 2 * 68
    expected = restore.xydeblur(image, model, normalize="dtype", tile=1024, device="cpu").restored
    np.testing.assert_allclose(result, expected, atol=1e-5)
    short = xydeblur_lazy(
        da.from_array(image, chunks=(100, 100)), model, normalize="dtype", halo=8, tile=1024, device="cpu"
    ).compute(scheduler="synchronous")
    assert np.abs(short - expected).max() > 1e-4  # too little context shows: the test can fail


def test_aligned_chunks():
    assert aligned_chunks((100, 100), 64) == (100, 100)
    assert aligned_chunks((90, 90, 20), 64) == (92, 108)
    assert aligned_chunks((96, 96, 8), 64) == (96, 104)
    assert aligned_chunks((200,), 64) == (200,)


def test_threads_and_synchronous_schedulers_agree(rng):
    image = rng.integers(0, 4000, (4, 32, 36), dtype=np.uint16)
    lazy = xydeblur_lazy(
        da.from_array(image, chunks=(1, 16, 36)), tiny_model(), normalize="dtype", halo=8, device="cpu"
    )
    threaded = lazy.compute(scheduler="threads", num_workers=2)
    synchronous = lazy.compute(scheduler="synchronous")
    np.testing.assert_array_equal(threaded, synchronous)


def test_the_model_is_not_copied_into_the_graph(rng):
    model = tiny_model()
    lazy = xydeblur_lazy(rng.integers(0, 256, (3, 16, 16), dtype=np.uint8), model, device="cpu")
    refs = {id(task_arg) for task_arg in _model_refs(lazy)}
    assert len(refs) == 1  # one handle shared by every task
    ref = ModelRef(model)
    assert ref.get() is model
    again = pickle.loads(pickle.dumps(ref))  # another process: rebuilt once, then reused
    assert again.get() is model  # same process: the registered instance itself
    assert dask.base.tokenize(ref) == dask.base.tokenize(ref)
    named = ModelRef("xydeblur-photo")
    assert pickle.loads(pickle.dumps(named)).key == "xydeblur-photo"


def _model_refs(array):
    found = []

    def walk(obj):
        if isinstance(obj, ModelRef):
            found.append(obj)
        elif isinstance(obj, (tuple, list)):
            for item in obj:
                walk(item)
        elif isinstance(obj, dict):
            for item in obj.values():
                walk(item)
        else:
            for attr in ("args", "kwargs", "value"):  # dask's Task objects
                inner = getattr(obj, attr, None)
                if inner is not None and inner is not obj:
                    walk(inner)

    for task in dict(array.__dask_graph__()).values():
        walk(task)
    return found


def test_bad_input_is_refused_before_any_work():
    with pytest.raises(TypeError, match="boolean"):
        xydeblur_lazy(np.zeros((8, 8), bool), tiny_model())
    with pytest.raises(ValueError, match="out"):
        xydeblur_lazy(np.zeros((8, 8), np.uint8), tiny_model(), out="chroma")
    with pytest.raises(ValueError, match="too small"):
        xydeblur_lazy(np.zeros((2, 3), np.uint8), tiny_model())
    with pytest.raises(ValueError, match="channel"):
        xydeblur_lazy(np.zeros((3, 16, 16), np.uint8), tiny_model(channels=2), axes="CYX")


def _instances_in_this_process():
    return ModelRef.instances_in_process()


@pytest.mark.slow
def test_a_local_cluster_of_two_worker_processes_gives_the_local_result(rng):
    distributed = pytest.importorskip("distributed")
    image = rng.integers(0, 4000, (6, 40, 44), dtype=np.uint16)
    model = tiny_model()
    lazy = xydeblur_lazy(da.from_array(image, chunks=(1, 20, 44)), model, normalize="dtype", halo=8, device="cpu")
    local = lazy.compute(scheduler="synchronous")
    with (
        distributed.LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, worker_dashboard_address=None
        ) as cluster,
        distributed.Client(cluster) as client,
    ):
        remote = lazy.compute(scheduler=client)
        per_worker = client.run(_instances_in_this_process)
    np.testing.assert_array_equal(remote, local)
    assert len(per_worker) == 2
    assert all(count == 1 for count in per_worker.values())  # the model was rebuilt once per worker process


def test_the_lazy_default_model_follows_the_same_policy(tmp_path, monkeypatch, rng):
    from factories import bundle_model

    monkeypatch.setenv("NAPARI_DEBLUR_RESOURCES", str(tmp_path))
    bundle_model(tmp_path, "xydeblur-photo", tiny_model(channels=3))
    bundle_model(tmp_path, "xydeblur-microscopy", tiny_model(channels=1))
    stack = rng.integers(100, 4000, (3, 16, 16), dtype=np.uint16)
    lazy = xydeblur_lazy(stack, axes="CYX", device="cpu", normalize="dtype")
    eager = restore.xydeblur(stack, axes="CYX", device="cpu", normalize="dtype")
    assert eager.info["model"] == "xydeblur-microscopy"
    np.testing.assert_array_equal(lazy.compute(), eager.restored)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"tile": "abc"}, "tile must be"),
        ({"normalize": None}, "normalize must be"),
        ({"normalize": (0.1,)}, "two numbers"),
        ({"device": "meta"}, "device must be"),
    ],
)
def test_bad_parameters_are_refused_before_any_work(kwargs, match):
    with pytest.raises((TypeError, ValueError), match=match):
        xydeblur_lazy(np.zeros((8, 8), np.uint16), tiny_model(), **kwargs)
