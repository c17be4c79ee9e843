"""How far tiled XYDeblur output is from the untiled one: the seams' size.

Restores the blurred photo sample (512x512) in one piece and in 256-pixel tiles with each
overlap given, in fp32 on the CPU, and prints the largest, 99.9th-percentile and mean
absolute difference in [0, 1] units. A difference under 1/255 (3.9e-3) cannot show in an
8-bit image.

    python tools/seam_check.py --overlaps 64 96 128
"""

import argparse

import numpy as np

from napari_deblur.engine.restore import xydeblur
from napari_deblur.models.weights import load_model
from napari_deblur.speed.timing import sample_frame


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--overlaps", type=int, nargs="+", default=[64, 96, 128])
    parser.add_argument("--model", default="xydeblur-photo")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--tile", type=int, default=256)
    args = parser.parse_args(argv)
    model = load_model(args.model)
    image = np.ascontiguousarray(sample_frame(args.size, args.size, model.channels).transpose(1, 2, 0))
    axes = "YXC" if model.channels == 3 else None
    image = image if axes else image[..., 0]
    common = dict(axes=axes, device="cpu", precision="fp32", normalize="dtype")
    whole = xydeblur(image, model, tile=2 * args.size, **common).restored
    for overlap in args.overlaps:
        tiled = xydeblur(image, model, tile=args.tile, overlap=overlap, **common).restored
        diff = np.abs(tiled - whole)
        print(
            f"overlap {overlap:4d}: max {diff.max():.2e}, 99.9th percentile {np.quantile(diff, 0.999):.2e}, "
            f"mean {diff.mean():.1e}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
