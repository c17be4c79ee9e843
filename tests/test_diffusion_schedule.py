"""Noise schedules, the DDPM/DDIM steps with a perfect noise oracle, and the running statistics."""

import numpy as np
import pytest
import torch

from napari_deblur.diffusion.sampler import ddim_step, ddpm_step, predict_x0, sample
from napari_deblur.diffusion.schedule import (
    TRAIN_STEPS,
    alpha_bar_at,
    make_schedule,
    sample_alpha_bar,
    training_alpha_bars,
)
from napari_deblur.diffusion.stats import RunningStats


@pytest.mark.parametrize("steps", [1, 2, 7, 10, 333, 1000])
def test_schedule_properties(steps):
    s = make_schedule(steps)
    a = s.alpha_bars
    assert s.steps == steps and len(a) == steps + 1 and a[0] == 1.0
    assert np.all(np.diff(a) < 0), "abar must decrease with the step"
    assert np.all((a[1:] > 0) & (a[1:] < 1))
    assert a[-1] == pytest.approx(training_alpha_bars()[-1])  # every T ends at the same prior level
    assert np.all((s.betas[1:] > 0) & (s.betas[1:] < 1))
    np.testing.assert_allclose(np.cumprod(1 - s.betas[1:]), a[1:], rtol=1e-12)
    var = s.posterior_variances
    assert var[1] == 0 and np.all(var[2:] > 0) and np.all(var[1:] <= s.betas[1:])


def test_thousand_steps_is_the_training_curve():
    np.testing.assert_array_equal(make_schedule(TRAIN_STEPS).alpha_bars, training_alpha_bars())
    ref = training_alpha_bars()
    assert ref[-1] == pytest.approx(np.exp(np.sum(np.log1p(-np.linspace(1e-6, 1e-2, 1000)))))
    np.testing.assert_allclose(make_schedule(10).alpha_bars, ref[::100])


@pytest.mark.parametrize("bad", [0, 1001, -3])
def test_bad_step_counts(bad):
    with pytest.raises(ValueError, match="steps"):
        make_schedule(bad)
    with pytest.raises(TypeError):
        make_schedule(2.5)


def test_alpha_bar_at_interpolates():
    ref = training_alpha_bars()
    assert alpha_bar_at(10.5) == pytest.approx((ref[10] + ref[11]) / 2)
    with pytest.raises(ValueError):
        alpha_bar_at(1000.5)


def test_training_draws_are_continuous_and_cover_the_range():
    g = torch.Generator().manual_seed(0)
    levels = sample_alpha_bar(20000, g)
    ref = training_alpha_bars()
    assert levels.dtype == torch.float32 and levels.shape == (20000,)
    assert levels.min() >= ref[-1] - 1e-7 and levels.max() <= 1.0
    assert len(torch.unique(levels)) > 19000  # continuous, not 1000 values
    # about half of the draws lie below abar at t = 500 (t is uniform)
    assert abs((levels < ref[500]).float().mean().item() - 0.5) < 0.02
    again = sample_alpha_bar(20000, torch.Generator().manual_seed(0))
    assert torch.equal(levels, again)


def _oracle(r0):
    """The exact noise of z given the clean residual r0."""
    return lambda z, a: (z - np.sqrt(a) * r0) / np.sqrt(1 - a)


@pytest.mark.parametrize("steps", [1, 10, 1000])
@pytest.mark.parametrize("sampler", ["ddpm", "ddim"])
def test_oracle_recovers_the_residual(steps, sampler):
    g = torch.Generator().manual_seed(3)
    r0 = 0.4 * torch.rand(2, 3, 8, 8, generator=g) - 0.2
    z_T = torch.randn(r0.shape, generator=g, dtype=torch.float64)
    out = sample(_oracle(r0.double()), z_T, make_schedule(steps), sampler, generator=g)
    torch.testing.assert_close(out, r0.double(), atol=1e-9, rtol=0)


def test_steps_in_float32_and_clipping():
    sched = make_schedule(10)
    r0 = torch.full((1, 1, 4, 4), 0.25)
    eps = torch.randn(1, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    a = float(sched.alpha_bars[10])
    z = np.sqrt(a) * r0 + np.sqrt(1 - a) * eps
    torch.testing.assert_close(predict_x0(z, eps, a), r0, atol=1e-5, rtol=0)
    _, x0 = ddpm_step(z, eps, sched, 10, noise=torch.zeros_like(z))
    torch.testing.assert_close(x0, r0, atol=1e-5, rtol=0)
    # a wild noise estimate: x0_hat is clipped, and the DDIM step stays finite
    _, x0 = ddim_step(z, eps - 50, sched, 10, clip=1.0)
    assert x0.max() <= 1.0 and x0.min() >= -1.0
    with pytest.raises(ValueError, match="needs noise"):
        ddpm_step(z, eps, sched, 10)
    last, x0 = ddpm_step(z, eps, make_schedule(1), 1)  # the last step adds no noise
    torch.testing.assert_close(last, x0)


def test_ddpm_posterior_matches_the_forward_process():
    """With the oracle, z_{t-1} drawn by DDPM has the marginal law of q(z_{t-1} | r0)."""
    sched = make_schedule(10)
    g = torch.Generator().manual_seed(5)
    r0 = torch.full((40000,), 0.3, dtype=torch.float64)
    i = 6
    a, a_prev = sched.alpha_bars[i], sched.alpha_bars[i - 1]
    z = np.sqrt(a) * r0 + np.sqrt(1 - a) * torch.randn(r0.shape, generator=g, dtype=torch.float64)
    eps = (z - np.sqrt(a) * r0) / np.sqrt(1 - a)
    prev, _ = ddpm_step(z, eps, sched, i, noise=torch.randn(r0.shape, generator=g, dtype=torch.float64))
    assert prev.mean().item() == pytest.approx(np.sqrt(a_prev) * 0.3, abs=0.01)
    assert prev.std().item() == pytest.approx(np.sqrt(1 - a_prev), rel=0.02)


def test_running_stats_match_numpy():
    rng = np.random.default_rng(0)
    xs = (1000 + rng.normal(size=(9, 3, 5, 4))).astype(np.float32)  # large mean, small spread
    one = RunningStats((3, 5, 4))
    for x in xs:
        one.update(torch.from_numpy(x))
    merged = RunningStats((3, 5, 4), dtype=torch.float64)
    merged.update(torch.from_numpy(xs[0]))
    merged.update_batch(torch.from_numpy(xs[1:5]))
    merged.update_batch(torch.from_numpy(xs[5:]))
    ref = xs.astype(np.float64)
    for stats, tol in ((one, 1e-4), (merged, 1e-9)):
        assert stats.count == 9
        np.testing.assert_allclose(stats.mean.numpy(), ref.mean(0), rtol=tol)
        np.testing.assert_allclose(stats.std().numpy(), ref.std(0), rtol=1e-3 if tol > 1e-6 else 1e-7)
        np.testing.assert_allclose(stats.std(ddof=1).numpy(), ref.std(0, ddof=1), rtol=1e-3 if tol > 1e-6 else 1e-7)
        assert (stats.variance() >= 0).all()


def test_running_stats_of_identical_samples_is_zero():
    stats = RunningStats((4,))
    for _ in range(5):
        stats.update(torch.full((4,), 0.1))
    assert (stats.std() >= 0).all() and stats.std().max() < 1e-6
    assert RunningStats((2,)).std().sum() == 0
