"""The number format and memory layout a training step computes in.

``"auto"`` trains in bfloat16 autocast where the hardware runs bfloat16 natively: CUDA GPUs,
and CPUs with AVX512-BF16 or AMX instructions (recent Intel Xeons). The weights, the optimiser
state, the EMA and the loss stay float32; only the network's products run in bfloat16.
Elsewhere (an AVX2-only CPU, Apple MPS) it trains in float32: emulated bfloat16 is many times
slower than float32 there. On the CPU the network and its inputs are channels_last, the layout
oneDNN's convolutions are fastest in. ``tools/train_step_speed.py`` times one training step in
each form on the machine at hand.

The resolved name (``"bf16"`` or ``"fp32"``) is what a run's ``config.json`` and the exported
manifest record.
"""

import torch

from ..engine.device import cpu_has_native_bf16

TRAINING_PRECISIONS = ("auto", "fp32", "bf16")


def training_precision(precision: str, device: torch.device) -> str:
    """``"bf16"`` or ``"fp32"``: what ``precision`` (one of :data:`TRAINING_PRECISIONS`) means on
    ``device``."""
    if precision not in TRAINING_PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(TRAINING_PRECISIONS)}, got {precision!r}")
    if precision != "auto":
        return precision
    native = device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16())
    return "bf16" if native else "fp32"


def autocast(device: torch.device, precision: str):
    """The autocast context of a training step's forward pass (``precision`` resolved)."""
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")


def memory_format(device: torch.device) -> torch.memory_format:
    """channels_last on the CPU (oneDNN's NHWC convolutions), the default layout elsewhere."""
    return torch.channels_last if device.type == "cpu" else torch.contiguous_format
