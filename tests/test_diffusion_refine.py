"""The refinement engine: steps, seeds, statistics, tiles with shared noise, layouts, cancel."""

import numpy as np
import pytest
import torch
from factories import constant_residual_model, tiny_model

import napari_deblur as nd
from napari_deblur.diffusion.refine import RefineResult, RefineStep, refine, refine_iter, sample_seeds
from napari_deblur.models.denoiser import ResidualDenoiser

pytestmark = pytest.mark.usefixtures("one_thread")


def known_residual(y):
    """The residual the oracle knows: a pointwise function of the blurred image, within [-1, 1]."""
    return 0.3 * torch.sin(6 * y)


class Oracle(torch.nn.Module):
    """A perfect eps-predictor for the residual ``known_residual(y)``: pointwise, so tiles are exact."""

    def __init__(self, channels=3):
        super().__init__()
        self.config = {"channels": channels}
        self.calls = 0

    def forward(self, z, y, x_init, alpha_bar):
        self.calls += 1
        a = alpha_bar.float()[:, None, None, None]
        return (z - a.sqrt() * known_residual(y)) / (1 - a).sqrt()


class ScaledOracle(Oracle):
    """The oracle of a denoiser whose chains run on ``residual_scale`` times the residual."""

    def __init__(self, scale, channels=3):
        super().__init__(channels)
        self.config = {"channels": channels, "residual_scale": scale}

    def forward(self, z, y, x_init, alpha_bar):
        a = alpha_bar.float()[:, None, None, None]
        return (z - a.sqrt() * self.config["residual_scale"] * known_residual(y)) / (1 - a).sqrt()


def pair(channels=3, seed=0):
    torch.manual_seed(seed)
    return tiny_model(channels=channels, seed=seed), ResidualDenoiser(channels, width=8).eval()


@pytest.fixture(scope="module")
def rgb():
    return np.random.default_rng(0).random((24, 20, 3)).astype(np.float32)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_oracle_residual_is_recovered(rgb, sampler):
    res = refine(
        rgb, (tiny_model(channels=3), Oracle()), steps=10, samples=3, sampler=sampler, device="cpu", keep_samples=True
    )
    expected = res.x_init + 0.3 * np.sin(6 * rgb)
    np.testing.assert_allclose(res.mean, expected, atol=2e-5)
    assert res.std.max() < 2e-5 and res.std.min() >= 0
    np.testing.assert_allclose(res.samples, np.broadcast_to(expected, res.samples.shape), atol=2e-5)


def test_residual_scale_is_divided_out_of_every_output(rgb):
    gen = refine_iter(
        rgb,
        (tiny_model(channels=3), ScaledOracle(4.0)),
        steps=5,
        samples=2,
        sampler="ddim",
        device="cpu",
        keep_samples=True,
        clip=0.5,
    )
    *steps, res = run_all(gen)
    expected = res.x_init + 0.3 * np.sin(6 * rgb)
    np.testing.assert_allclose(res.mean, expected, atol=2e-5)
    np.testing.assert_allclose(res.samples[0], expected, atol=2e-5)
    np.testing.assert_allclose(steps[-1].x0[0], expected, atol=2e-5)  # the preview is in image units too
    assert res.info["residual_scale"] == 4.0
    # clip is in residual units: with the scale, a residual of 0.3 is not clipped by 0.5 ...
    clipped = refine(rgb, (tiny_model(channels=3), ScaledOracle(4.0)), steps=5, sampler="ddim", device="cpu", clip=0.2)
    # ... but by 0.2 it is
    np.testing.assert_allclose(clipped.mean - clipped.x_init, np.clip(0.3 * np.sin(6 * rgb), -0.2, 0.2), atol=2e-5)


def run_all(gen):
    out = []
    try:
        while True:
            out.append(next(gen))
    except StopIteration as stop:
        out.append(stop.value)
    return out


def test_generator_yields_each_step_and_returns_the_result(rgb):
    gen = refine_iter(rgb, pair(), steps=4, samples=2, seed=1, device="cpu", keep_samples=True)
    steps = []
    while True:
        try:
            steps.append(next(gen))
        except StopIteration as stop:
            result = stop.value
            break
    assert [s.step for s in steps] == [1, 2, 3, 4] and all(isinstance(s, RefineStep) for s in steps)
    assert all(s.steps == 4 and s.samples == (0, 1) and s.total == 4 for s in steps)
    assert steps[-1].fraction == 1.0 and "step 4/4" in steps[-1].message
    assert isinstance(result, RefineResult) and result.axes == "YXC"
    for s in steps:
        assert s.x0.shape == (2, *rgb.shape) and s.x0.dtype == np.float32
        assert s.z_t.shape == (2, *rgb.shape) and s.z_t.dtype == np.float32
    # after the last step z_0 is the residual and x0 the final sample
    np.testing.assert_allclose(steps[-1].x0, result.samples, atol=1e-5)
    np.testing.assert_allclose(steps[-1].z_t, result.samples - result.x_init, atol=1e-5)
    assert not np.allclose(steps[0].x0, steps[-1].x0)


def test_groups_of_samples_in_flight(rgb):
    models = pair()
    together = list_steps(refine_iter(rgb, models, steps=3, samples=3, seed=2, device="cpu", keep_samples=True))
    apart = list_steps(
        refine_iter(rgb, models, steps=3, samples=3, seed=2, device="cpu", keep_samples=True, in_flight=1)
    )
    assert len(together[0]) == 3 and len(apart[0]) == 9
    assert [s.samples for s in apart[0][::3]] == [(0,), (1,), (2,)]
    assert [s.done for s in apart[0]] == list(range(1, 10)) and apart[0][0].total == 9
    # a sample depends on its own seed only, not on which samples ran beside it
    np.testing.assert_allclose(together[1].samples, apart[1].samples, atol=1e-5)
    assert together[1].seeds == apart[1].seeds == sample_seeds(2, 3)


def list_steps(gen):
    out = []
    while True:
        try:
            out.append(next(gen))
        except StopIteration as stop:
            return out, stop.value


def test_mean_and_std_are_those_of_the_samples(rgb):
    res = refine(rgb, pair(), steps=3, samples=5, seed=4, device="cpu", keep_samples=True)
    assert res.samples.shape == (5, *rgb.shape) and res.samples.dtype == np.float32
    np.testing.assert_allclose(res.mean, res.samples.astype(np.float64).mean(0), atol=1e-5)
    np.testing.assert_allclose(res.std, res.samples.astype(np.float64).std(0), atol=1e-5)
    assert res.std.min() >= 0 and res.std.max() > 1e-3  # random weights: the samples differ
    assert len(set(res.seeds)) == 5


def test_same_seed_same_result_other_seed_differs(rgb):
    models = pair()
    a = refine(rgb, models, steps=3, samples=2, seed=7, device="cpu")
    b = refine(rgb, models, steps=3, samples=2, seed=7, device="cpu")
    c = refine(rgb, models, steps=3, samples=2, seed=8, device="cpu")
    assert np.array_equal(a.mean, b.mean) and np.array_equal(a.std, b.std) and a.seeds == b.seeds
    assert not np.allclose(a.mean, c.mean) and a.seeds != c.seeds
    np.testing.assert_array_equal(a.x_init, c.x_init)


def test_ddim_with_one_sample_is_deterministic_given_the_seed(rgb):
    models = pair()
    a = refine(rgb, models, steps=4, sampler="ddim", seed=3, device="cpu")
    b = refine(rgb, models, steps=4, sampler="ddim", seed=3, device="cpu")
    assert np.array_equal(a.mean, b.mean)


@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_tiles_share_the_noise(sampler):
    """Tiled and untiled runs agree: z_T and every step's noise are drawn for the whole image."""
    image = np.random.default_rng(1).random((96, 88, 3)).astype(np.float32)
    models = (constant_residual_model(channels=3, value=0.02), Oracle())
    whole = refine(image, models, steps=6, samples=2, seed=5, sampler=sampler, device="cpu", keep_samples=True)
    tiled = refine(
        image,
        models,
        steps=6,
        samples=2,
        seed=5,
        sampler=sampler,
        device="cpu",
        tile=64,
        overlap=32,
        batch=3,
        keep_samples=True,
    )
    assert whole.info["tiles"] == 1 and tiled.info["tiles"] == 4
    np.testing.assert_allclose(tiled.samples, whole.samples, atol=1e-5)
    np.testing.assert_allclose(tiled.mean, whole.mean, atol=1e-5)
    assert tiled.info["batch"] == 3


def test_tiles_share_the_noise_with_a_real_denoiser():
    """With a convolutional denoiser the tiles' borders differ a little, but the noise is shared:
    the tiled result stays close to the untiled one everywhere (no seam of independent noise)."""
    image = np.random.default_rng(2).random((96, 96, 3)).astype(np.float32)
    pred, den = pair()
    models = (constant_residual_model(channels=3, value=0.0), den)
    whole = refine(image, models, steps=3, seed=1, device="cpu")
    tiled = refine(image, models, steps=3, seed=1, device="cpu", tile=64, overlap=32)
    other = refine(image, models, steps=3, seed=2, device="cpu")
    gap = np.abs(tiled.mean - whole.mean)
    assert gap.max() < 0.02 and gap.mean() < 1e-3, (gap.max(), gap.mean())
    assert np.abs(other.mean - whole.mean).mean() > 0.1  # what independent noise would look like


def test_closing_midway_cancels(rgb):
    den = Oracle()
    gen = refine_iter(rgb, (tiny_model(channels=3), den), steps=50, device="cpu")
    first = next(gen)
    next(gen)
    gen.close()
    assert gen.gi_frame is None
    assert den.calls == 0  # the engine worked on a private copy
    assert first.step == 1 and first.x0.shape == (1, *rgb.shape)
    with pytest.raises(StopIteration):
        next(gen)


def test_uint16_stack_per_channel_and_out_dtype():
    stack = np.random.default_rng(3).integers(100, 4000, (2, 20, 28), dtype=np.uint16)
    models = pair(channels=1)
    res = refine(stack, models, steps=2, samples=2, device="cpu")
    assert res.axes == "ZYX" and res.mean.shape == stack.shape and res.mean.dtype == np.float32
    assert res.std.dtype == np.float32 and res.x_init.shape == stack.shape
    assert res.info["channel_mode"] == "joint" and res.info["normalize"].startswith("percentile")
    same = refine(stack, models, steps=2, samples=2, device="cpu", out_dtype="same")
    assert same.mean.dtype == np.uint16
    np.testing.assert_array_equal(same.mean, np.clip(np.rint(res.mean), 0, 65535).astype(np.uint16))
    cyx = refine(stack, models, steps=2, device="cpu", axes="CYX")
    assert cyx.axes == "CYX" and cyx.info["channel_mode"] == "per-channel" and cyx.mean.shape == stack.shape


def test_gray_image_with_rgb_models_is_replicated():
    gray = np.random.default_rng(4).random((16, 24)).astype(np.float64)
    res = refine(gray, pair(channels=3), steps=2, device="cpu")
    assert res.axes == "YX" and res.mean.shape == gray.shape and res.info["channel_mode"] == "replicated"
    assert res.mean.dtype == np.float32
    assert refine(gray, pair(channels=3), steps=2, device="cpu", out_dtype="same").mean.dtype == np.float64


def test_rgba_alpha_passes_through_and_nan_stays_nan():
    rgba = np.random.default_rng(5).integers(0, 255, (16, 20, 4), dtype=np.uint8)
    res = refine(rgba, pair(), steps=2, samples=2, device="cpu", out_dtype="same")
    assert res.mean.dtype == np.uint8 and res.mean.shape == rgba.shape
    np.testing.assert_array_equal(res.mean[..., 3], rgba[..., 3])
    assert np.all(res.std[..., 3] == 0)
    image = np.random.default_rng(6).random((16, 16, 3)).astype(np.float32)
    image[3, 4, :] = np.nan
    res = refine(image, pair(), steps=2, samples=2, device="cpu")
    assert np.isnan(res.mean[3, 4]).all() and np.isfinite(np.delete(res.mean.reshape(-1, 3), 3 * 16 + 4, 0)).all()
    assert np.all(res.std[3, 4] == 0) and np.isfinite(res.std).all()


def test_input_is_not_modified_and_sizes_are_padded(rgb):
    before = rgb.copy()
    res = refine(rgb[:21, :19], pair(), steps=2, device="cpu")  # not multiples of 8
    assert res.mean.shape == (21, 19, 3)
    np.testing.assert_array_equal(rgb, before)


def test_bad_arguments(rgb):
    models = pair()
    with pytest.raises(ValueError, match="sampler"):
        refine(rgb, models, steps=2, sampler="euler")
    with pytest.raises(ValueError, match="steps"):
        refine(rgb, models, steps=0)
    with pytest.raises(ValueError, match="samples"):
        refine(rgb, models, samples=0)
    with pytest.raises(ValueError, match="seed"):
        refine(rgb, models, seed=-1)
    with pytest.raises(TypeError, match="boolean"):
        refine(rgb > 0.5, models)
    with pytest.raises(ValueError, match="predictor works on 1 channels"):
        refine(rgb, (tiny_model(channels=1), models[1]), steps=2)
    with pytest.raises(nd.WeightsError, match="does not name the predictor"):
        refine(rgb, models[1], steps=2)
    with pytest.raises(ValueError, match="either in the"):
        refine(rgb, models, predictor=models[0], steps=2)


def test_denoiser_module_with_predictor_argument(rgb):
    pred, den = pair()
    a = refine(rgb, den, predictor=pred, steps=2, seed=1, device="cpu")
    b = refine(rgb, (pred, den), steps=2, seed=1, device="cpu")
    assert np.array_equal(a.mean, b.mean)


def test_lazy_public_names():
    assert nd.refine is refine and nd.refine_iter is refine_iter
    assert nd.RefineStep is RefineStep and nd.RefineResult is RefineResult
    assert nd.ResidualDenoiser is ResidualDenoiser


def test_large_chains_run_one_at_a_time_on_the_cpu(monkeypatch, rgb):
    from napari_deblur.diffusion import refine as module

    monkeypatch.setattr(module, "CPU_SERIAL_PIXELS", 1)  # every chain counts as large
    steps = list_steps(refine_iter(rgb, pair(), steps=2, samples=3, seed=0, device="cpu"))[0]
    assert len(steps) == 6 and all(len(s.samples) == 1 for s in steps)


@pytest.fixture
def bundled_pairs(tmp_path, monkeypatch):
    """A resources folder with tiny ``dvsr-photo`` (RGB) and ``dvsr-microscopy`` (gray) pairs."""
    from factories import bundle_presets

    monkeypatch.setenv("NAPARI_DEBLUR_RESOURCES", str(tmp_path))
    bundle_presets(tmp_path, pair)
    return tmp_path


def test_default_denoiser_follows_the_channels(bundled_pairs, rgb):
    gray = rgb[..., 0].copy()
    assert refine(rgb, steps=1, device="cpu").info["model"] == "dvsr-photo"
    res = refine(gray, steps=1, device="cpu")
    assert res.info["model"] == "dvsr-microscopy" and res.info["predictor"] == "xydeblur-microscopy"
    assert refine(gray, "dvsr-photo", steps=1, device="cpu").info["model"] == "dvsr-photo"  # asked by name
    for path in bundled_pairs.glob("dvsr-microscopy.*"):
        path.unlink()
    assert refine(gray, steps=1, device="cpu").info["model"] == "dvsr-photo"  # the one bundled, on replicated gray


def test_a_replaced_predictor_warns_and_the_trained_one_does_not(bundled_pairs, rgb):
    import warnings

    from factories import bundle_model

    from napari_deblur.diffusion.pair import PredictorMismatchWarning

    with warnings.catch_warnings():
        warnings.simplefilter("error", PredictorMismatchWarning)
        refine(rgb, "dvsr-photo", steps=1, device="cpu")  # the weights it was trained against
        refine(rgb, ("xydeblur-photo", "dvsr-photo"), steps=1, device="cpu")
        refine(rgb, (pair()[0], "dvsr-photo"), steps=1, device="cpu")  # a module in memory: nothing to compare
    bundle_model(bundled_pairs, "xydeblur-photo", tiny_model(channels=3, seed=7))  # new weights, same name
    with pytest.warns(PredictorMismatchWarning, match="dvsr-photo.*trained against predictor weights"):
        refine(rgb, "dvsr-photo", steps=1, device="cpu")


@pytest.mark.parametrize("dtype", [np.uint32, np.int64, np.uint64])
def test_same_dtype_saturates_wide_integers_instead_of_wrapping(dtype):
    top = np.full((16, 16), np.iinfo(dtype).max, dtype)
    res = refine(
        top,
        (constant_residual_model(value=0.1), ResidualDenoiser(1, width=8).eval()),
        steps=1,
        device="cpu",
        out_dtype="same",
        clip=None,
    )
    assert res.mean.dtype == dtype and np.all(res.x_init == np.iinfo(dtype).max)


def test_huge_floats_are_refused(rgb):
    with pytest.raises(ValueError, match="magnitude"):
        refine(rgb * np.float32(3e38), pair(), steps=1, device="cpu")


def test_a_non_finite_predictor_output_is_an_error(rgb):
    from napari_deblur.engine.restore import NonFiniteOutputError

    predictor, denoiser = pair()
    with torch.no_grad():
        predictor.Decoder1_4.main[0].bias.fill_(float("inf"))
    with pytest.raises(NonFiniteOutputError, match="NaN or infinite"):
        refine(rgb, (predictor, denoiser), steps=1, device="cpu")


def test_a_fluorescence_stack_gets_the_microscopy_pair(bundled_pairs):
    image = np.random.default_rng(0).integers(100, 4000, (3, 16, 16), dtype=np.uint16)
    res = refine(image, axes="CYX", steps=1, device="cpu")
    assert res.info["model"] == "dvsr-microscopy" and res.info["channel_mode"] == "per-channel"
    assert res.info["model_choice"] == "dvsr-microscopy, per channel: CYX uint16 is a fluorescence layout"


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"tile": "abc"}, "tile must be"),
        ({"overlap": "x"}, "overlap must be"),
        ({"normalize": 5}, "normalize must be"),
        ({"normalize": (0.1,)}, "two numbers"),
        ({"device": "meta"}, "device must be"),
    ],
)
def test_bad_parameters_say_what_is_allowed(rgb, kwargs, match):
    with pytest.raises((TypeError, ValueError), match=match):
        refine(rgb, pair(), steps=1, **kwargs)


def test_a_read_only_array_reaches_torch_only_as_a_copy(monkeypatch, rgb):
    real = torch.from_numpy

    def strict(array):
        assert array.flags.writeable, "torch.from_numpy on read-only memory (torch warns about it)"
        return real(array)

    monkeypatch.setattr(torch, "from_numpy", strict)
    image = rgb.copy()
    image.flags.writeable = False
    refine(image, pair(), steps=1, device="cpu")
