"""The CPU time estimates the widgets show before a run (pure: no Qt, no torch)."""

import pytest

from napari_deblur.plugin.estimate import (
    CPU_SECONDS_PER_MP,
    DENOISER_SECONDS_PER_MP,
    cpu_seconds,
    diffusion_cpu_seconds,
    format_estimate,
    passes_per_plane,
    rate_from_run,
    run_size,
    speed_factor,
)


def test_seconds_grow_with_pixels_planes_passes_and_fall_with_threads():
    one = cpu_seconds(1000, 1000)
    assert one == pytest.approx(CPU_SECONDS_PER_MP)  # one megapixel at the measured rate
    assert cpu_seconds(2000, 1000) == pytest.approx(2 * one)
    assert cpu_seconds(1000, 1000, planes=32) == pytest.approx(32 * one)
    assert cpu_seconds(1000, 1000, passes=3) == pytest.approx(3 * one)
    assert cpu_seconds(1000, 1000, threads=4) == pytest.approx(one / 2)
    assert cpu_seconds(1000, 1000, seconds_per_mp=5.0) == pytest.approx(5.0)
    with pytest.raises(ValueError):
        cpu_seconds(0, 10)
    with pytest.raises(ValueError):
        cpu_seconds(10, 10, seconds_per_mp=0)


def test_a_finished_run_calibrates_the_rate():
    rate = rate_from_run(12.0, 1000, 500, planes=4, passes=1, threads=2)
    assert rate == pytest.approx(6.0)  # 12 s for 2 MP
    assert cpu_seconds(1000, 500, planes=4, seconds_per_mp=rate) == pytest.approx(12.0)
    assert rate_from_run(24.0, 1000, 500, planes=4, threads=1) == pytest.approx(6.0)  # per 2 threads
    assert rate_from_run(0.5, 1000, 1000) is None  # too short to tell


def test_a_finished_diffusion_run_gives_the_factor_of_the_next_estimates():
    assert speed_factor(60.0, 35.0) == pytest.approx(60 / 35)  # a slower CPU than the reference
    assert speed_factor(10.0, 20.0) == pytest.approx(0.5)
    assert speed_factor(0.4, 20.0) is None  # too short to tell
    assert speed_factor(30.0, None) is None and speed_factor(30.0, 0.0) is None  # nothing was estimated


def test_passes_and_run_size():
    assert passes_per_plane(3, 1) == 3  # a single-channel model restores RGB channel by channel
    assert passes_per_plane(3, 3) == passes_per_plane(1, 1) == passes_per_plane(3, None) == 1
    assert run_size("ZYX", (32, 256, 128)) == (256, 128, 32, 1)
    assert run_size("ZYX", (32, 256, 128), whole=False) == (256, 128, 1, 1)
    assert run_size("TZCYX", (2, 5, 3, 64, 64)) == (64, 64, 10, 3)
    assert run_size("YXC", (40, 50, 3)) == (40, 50, 1, 3)
    with pytest.raises(ValueError):
        run_size("ZY", (3, 4))


@pytest.mark.parametrize(
    "seconds, text",
    [
        (0.4, "under a second on the CPU"),
        (12.2, "about 12 s on the CPU"),
        (200, "about 3 min on the CPU"),
        (5400, "about 1.5 h on the CPU"),
    ],
)
def test_format(seconds, text):
    assert format_estimate(seconds) == text


def test_a_diffusion_run_is_its_predictor_plus_a_denoiser_pass_per_step_and_sample():
    fidelity = diffusion_cpu_seconds(256, 256, steps=10, samples=8)
    mp = 256 * 256 / 1e6
    assert fidelity == pytest.approx(mp * (CPU_SECONDS_PER_MP + 80 * DENOISER_SECONDS_PER_MP))
    assert 25 < fidelity < 45  # the Fidelity preset on a 256 x 256 photo measured 23-34 s on 2 threads
    assert diffusion_cpu_seconds(256, 256, 2, 3, steps=10, samples=8, threads=4) == pytest.approx(3 * fidelity)
    with pytest.raises(ValueError):
        diffusion_cpu_seconds(256, 256, steps=0, samples=8)
