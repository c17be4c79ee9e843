"""What the XYDeblur engine costs around the network: the host work of one
:func:`napari_deblur.xydeblur` call (axes, intensity scaling, padding, tiling, blending,
residuals back to input units, rounding), with the network replaced by a stub that returns
zero residuals at once.

On a GPU the network is fast and this host work can be most of a whole call (compare the
network and whole-call columns of benchmarks/performance-cuda.md). On a CPU it is hidden
under the network, so ``napari-deblur bench`` cannot show it there; this script can, on any
machine.

    python tools/engine_overhead.py                       # 720p, 2048^2, 4096^2 RGB uint8
    python tools/engine_overhead.py --sizes 720x1280 --repeats 5 --out overhead.json

The tiles are those the engine picks on a GPU (``--tile``, default 2048: one tile up to
2048x2048, blended tiles above). On the CPU the "frames" path (a frame that fits in one tile)
runs its device-side work on the CPU, so what it prints there is an upper bound for a GPU.
"""

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import numpy as np
import torch

from napari_deblur.engine import restore, runtime
from napari_deblur.models.weights import load_model


def stub_network(model, device, dtype, replicate_to, swap):
    """Stands in for :func:`napari_deblur.engine.runtime.network_fn`: zero residuals, no arithmetic."""

    def fn(batch):
        zeros = torch.zeros_like if isinstance(batch, torch.Tensor) else np.zeros_like
        return zeros(batch), zeros(batch)

    return fn


def measure(sizes, tile: int, repeats: int) -> list[dict]:
    model = load_model("xydeblur-photo")
    real = runtime.network_fn
    runtime.network_fn = stub_network  # the engine looks the network up there at each call
    rows = []
    try:
        for height, width in sizes:
            image = (np.random.default_rng(0).random((height, width, 3)) * 255).astype(np.uint8)
            kwargs = dict(axes="YXC", device="cpu", normalize="dtype", tile=tile)
            restore.xydeblur(image, model, **kwargs)  # warm-up
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                restore.xydeblur(image, model, **kwargs)
                times.append(time.perf_counter() - start)
            path = restore.xydeblur(image, model, **kwargs).info.get("path", "tiles")
            rows.append(
                {"size": f"{height}x{width}", "tile": tile, "path": path, "host_ms": 1000 * statistics.median(times)}
            )
            print(f"{height:>6}x{width:<6} tile {tile} ({path}): {rows[-1]['host_ms']:8.1f} ms of host work per call")
    finally:
        runtime.network_fn = real
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["720x1280", "2048x2048", "4096x4096"])
    parser.add_argument("--tile", type=int, default=2048)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    sizes = [tuple(int(v) for v in s.lower().split("x")) for s in args.sizes]
    rows = measure(sizes, args.tile, args.repeats)
    if args.out:
        args.out.write_text(
            json.dumps({"machine": platform.processor() or platform.machine(), "rows": rows}, indent=1) + "\n"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
