"""How long an XYDeblur or a diffusion run will take on the CPU, said before it starts. Pure:
no Qt, no torch.

The cost of the network grows with the pixels it sees: megapixels per plane x planes x the
passes per plane (one for a model that sees all colour channels at once, one per channel
for a single-channel model on a multi-channel image) x a per-megapixel cost.

:data:`CPU_SECONDS_PER_MP` is measured: ``napari-deblur bench --device cpu`` with the
bundled XYDeblur (width 32, 6 blocks, channels_last) on the 2-core Intel Xeon machine, 2 torch
threads, whole call median of 10 (``benchmarks/performance-cpu.md``, 2026-12-06): 783 ms at
256 x 256 (11.9 s/MP) and 4253 ms at 512 x 512 (16.2 s/MP). The larger frame's 16 s/MP is
used: the runs worth an estimate are large ones, where the per-megapixel cost no longer falls.
More threads are assumed to divide the cost. Once a run has finished on the CPU, the widget
uses that run's own rate (:func:`rate_from_run`) for the same model: a one-time
calibration on the user's machine, with their model, for free.

A diffusion run is its predictor's XYDeblur pass plus one denoiser pass per step and sample
(on the CPU the chains of a plane run one after another). :data:`DENOISER_SECONDS_PER_MP` is
the bundled ``dvsr-photo`` denoiser's step at 256 x 256, one sample, 2 threads, on the same
machine and in the same bench run: 429 ms (6.5 s/MP); with it the then Fidelity preset (10 steps x
8 samples) on a 256 x 256 photo comes to 35 s, against 30.3 s measured in that run. Other
CPUs differ (the same bench on a 2-core AMD EPYC machine without AVX-512 is slower), so once a
diffusion run has finished on the CPU the widget scales its next estimates by how far off the
last one was (:func:`speed_factor`).
"""

CPU_SECONDS_PER_MP = 16.0  # bundled XYDeblur, 2 threads, 2-core Intel Xeon (see the module docstring)
DENOISER_SECONDS_PER_MP = 6.5  # one pass of the bundled denoiser, 2 threads, 2-core Intel Xeon (see above)
REFERENCE_THREADS = 2


def megapixels(height: int, width: int) -> float:
    return height * width / 1e6


def cpu_seconds(
    height: int,
    width: int,
    planes: int = 1,
    passes: int = 1,
    seconds_per_mp: float = CPU_SECONDS_PER_MP,
    threads: int = REFERENCE_THREADS,
) -> float:
    """Seconds of an XYDeblur run on the CPU: ``planes`` planes of ``height`` x ``width``,
    ``passes`` network passes per plane, at ``seconds_per_mp`` (per pass, for
    :data:`REFERENCE_THREADS` threads) on ``threads`` threads."""
    if min(height, width, planes, passes, threads) < 1 or seconds_per_mp <= 0:
        raise ValueError("sizes, planes, passes and threads must be at least 1, and the rate positive")
    scale = REFERENCE_THREADS / threads
    return megapixels(height, width) * planes * passes * seconds_per_mp * scale


def diffusion_cpu_seconds(
    height: int,
    width: int,
    planes: int = 1,
    passes: int = 1,
    *,
    steps: int,
    samples: int,
    threads: int = REFERENCE_THREADS,
    predictor_seconds_per_mp: float = CPU_SECONDS_PER_MP,
    denoiser_seconds_per_mp: float = DENOISER_SECONDS_PER_MP,
) -> float:
    """Seconds of a diffusion run on the CPU: per plane and pass, the predictor once and the
    denoiser ``steps`` x ``samples`` times."""
    if min(steps, samples) < 1:
        raise ValueError("steps and samples must be at least 1")
    per_mp = predictor_seconds_per_mp + steps * samples * denoiser_seconds_per_mp
    return cpu_seconds(height, width, planes, passes, seconds_per_mp=per_mp, threads=threads)


def rate_from_run(seconds: float, height: int, width: int, planes: int = 1, passes: int = 1, threads: int = 2):
    """The per-megapixel rate (for :data:`REFERENCE_THREADS` threads) a finished run shows, or
    None when it was too short to tell (under a second)."""
    if seconds < 1.0 or min(height, width, planes, passes, threads) < 1:
        return None
    return seconds / (megapixels(height, width) * planes * passes) * threads / REFERENCE_THREADS


def speed_factor(measured_seconds: float, estimated_seconds) -> float | None:
    """How much longer (> 1) or shorter a finished run took than estimated, or None when the
    run was too short to tell (under a second) or had no estimate."""
    if not estimated_seconds or estimated_seconds <= 0 or measured_seconds < 1.0:
        return None
    return measured_seconds / estimated_seconds


def passes_per_plane(colour_channels: int, model_channels) -> int:
    """Network passes per plane: 1 when the model sees the channels together (or there is one),
    the number of channels when a single-channel model restores them one by one."""
    if colour_channels > 1 and model_channels == 1:
        return colour_channels
    return 1


def format_estimate(seconds: float) -> str:
    """``'about 12 s on the CPU'``, ``'about 3 min on the CPU'``, ``'about 1.5 h on the CPU'``."""
    if seconds < 1.0:
        return "under a second on the CPU"
    if seconds < 90:
        return f"about {seconds:.0f} s on the CPU"
    if seconds < 90 * 60:
        return f"about {seconds / 60:.0f} min on the CPU"
    return f"about {seconds / 3600:.1f} h on the CPU"


def run_size(axes: str, shape, whole: bool = True) -> tuple:
    """``(height, width, planes, colour channels)`` of a run on a layer with engine ``axes``
    and ``shape``: every plane for the whole stack, one for a "current slice" run."""
    if "Y" not in axes or "X" not in axes or len(axes) != len(shape):
        raise ValueError(f"axes {axes!r} do not describe a shape {tuple(shape)}")
    sizes = dict(zip(axes, shape))
    planes = 1
    if whole:
        for axis, size in sizes.items():
            if axis not in "YXC":
                planes *= int(size)
    return int(sizes["Y"]), int(sizes["X"]), planes, int(sizes.get("C", 1))
