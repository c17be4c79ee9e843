"""How fast this machine's arithmetic allows a call to be: its operations against the rate of
an fp32 matrix product.

:func:`count_gflop` runs a call under PyTorch's FLOP counter (convolutions and matrix
products, the work that dominates both networks; elementwise work is not counted, so the
floor it gives is a lower bound). :func:`matmul_gflops` times a large fp32 matrix product,
the best rate the BLAS reaches on these cores. A convolution that does every multiplication
(direct, or as a matrix product) runs at most at about that rate, so their ratio is the
fastest the call could run in fp32 here: a target below it needs fewer operations (a narrower
network, fewer steps or samples, or a convolution that multiplies less, such as Winograd's) or
lower precision, not a faster code path. torch only.
"""

import time

import torch
from torch.utils.flop_counter import FlopCounterMode


def count_gflop(fn) -> float:
    """Billions of floating-point operations (a multiply-add counts two) that ``fn()`` runs in
    convolutions and matrix products."""
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        fn()
    return counter.get_total_flops() / 1e9


def matmul_gflops(size: int = 2048, repeats: int = 5) -> float:
    """The best fp32 rate (GFLOP/s) of a ``size`` x ``size`` matrix product on the CPU over
    ``repeats`` runs, after one warm-up, at torch's current thread count."""
    generator = torch.Generator().manual_seed(0)
    a = torch.rand(size, size, generator=generator)
    b = torch.rand(size, size, generator=generator)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def floor_row(call: str, gflop: float, rate: float, measured_s: float | None, target_s: float | None) -> dict:
    """One report row: the call's operations, the time they take at ``rate`` GFLOP/s, what was
    measured (the rate it reached) and the target, when given."""
    row = {"call": call, "gflop": gflop, "floor_s": gflop / rate, "target_s": target_s}
    if measured_s:
        row["measured_s"] = measured_s
        row["reached_gflops"] = gflop / measured_s
    return row
