"""What every speed measurement shares: the clock, the peak memory, the TF32 switch, the
sample frame timed and the machine's name.

:func:`median_seconds` times a function after a warm-up with the device synchronised
(:func:`napari_deblur.engine.runtime.synchronize`) around each run, so the time covers the
queued device work and not only its launch. torch and numpy only (PIL for the sample frame).
"""

import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from ..engine.runtime import release_device_cache, synchronize


def median_seconds(fn, device: torch.device, repeats: int, warmup: int = 2) -> float:
    """Median wall time of ``fn()`` over ``repeats`` runs after ``warmup`` runs, synchronised."""
    for _ in range(warmup):
        fn()
    synchronize(device)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def sample_frame(height: int, width: int, channels: int = 3) -> np.ndarray:
    """The frame the speed benchmark times: the plugin's blurred photo sample (scikit-image's
    coffee, camera shake and noise) resized to ``height`` x ``width``, (C, H, W) float32 in
    [0, 1]; its first ``channels`` channels, or the first one repeated to ``channels`` > 3."""
    from PIL import Image

    from ..samples import blurred_photo

    image = Image.fromarray(blurred_photo()["blurred"]).resize((width, height), Image.BICUBIC)
    frame = np.asarray(image, np.float32).transpose(2, 0, 1) / 255.0
    return frame[:channels] if channels <= 3 else np.repeat(frame[:1], channels, 0)


class PeakMemory:
    """Peak device memory (MiB) of the code inside ``with`` on CUDA; None elsewhere.

    On entry the cached blocks go back and the peak counter restarts, so ``mib`` counts what
    the code inside allocated at most, not what an earlier measurement left behind.
    """

    def __init__(self, device: torch.device):
        self.device, self.mib = device, None

    def __enter__(self):
        if self.device.type == "cuda":
            release_device_cache(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        return self

    def __exit__(self, *exc):
        if self.device.type == "cuda":
            self.mib = torch.cuda.max_memory_allocated(self.device) / 2**20


class tf32:  # noqa: N801 (used like a function: ``with tf32(False)``)
    """``with tf32(False)``: true fp32 convolutions and matrix products on CUDA (cuDNN may
    otherwise use TF32, PyTorch's default for convolutions); the settings are restored after."""

    def __init__(self, allow: bool):
        self.allow = allow

    def __enter__(self):
        self.saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
        torch.backends.cudnn.allow_tf32 = torch.backends.cuda.matmul.allow_tf32 = self.allow
        return self

    def __exit__(self, *exc):
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = self.saved


def machine_name() -> str:
    """The CPU's model name (and the GPU's, when there is one)."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    gpu = f", {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ""
    return f"{cpu}{gpu} ({platform.system()})"


def short_error(err: BaseException) -> str:
    """An error as one line of at most 160 characters, for a report: ``"Type: message"``."""
    return " ".join(f"{type(err).__name__}: {err}".split())[:160]
