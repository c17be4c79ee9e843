"""What the XYDeblur widget reports besides layers: colour shift and reference metrics.

- :func:`region_mask` rasterises a Shapes layer into a boolean (Y, X) mask on an
  image's pixel grid (scale and translate of both layers respected; rotation, shear
  and affine transforms are not). Shapes drawn on a stack count with their Y and X
  outline on every plane.
- :func:`compute_shift` is :func:`napari_deblur.color_shift.color_shift` over the
  region, falling back to the whole image when the region selects no pixel.
- :func:`quality` gives PSNR and SSIM (:mod:`napari_deblur.metrics`) of an image against a reference,
  averaged over the YX planes (RGB planes as colour images).
- :func:`format_shift` and :func:`format_metrics` make the compact text the widget shows.
"""

import numpy as np

from ..color_shift import color_shift
from ..engine.axes import to_bcyx
from ..metrics import psnr, ssim


def _yx_to_pixels(vertices, source_scale, source_translate, target_scale, target_translate):
    """Shape vertices (last two coordinates) from one layer's data grid to another's."""
    yx = np.asarray(vertices, dtype=float)[:, -2:]
    world = yx * np.asarray(source_scale[-2:]) + np.asarray(source_translate[-2:])
    return (world - np.asarray(target_translate[-2:])) / np.asarray(target_scale[-2:])


def region_mask(shapes_layer, image_scale, image_translate, yx_shape) -> np.ndarray | None:
    """Boolean (Y, X) mask of the shapes on the image's grid; None when there are no shapes."""
    if shapes_layer is None or len(shapes_layer.data) == 0:
        return None
    from napari.layers import Shapes

    moved = [
        _yx_to_pixels(v, shapes_layer.scale, shapes_layer.translate, image_scale, image_translate)
        for v in shapes_layer.data
    ]
    flat = Shapes(moved, shape_type=list(shapes_layer.shape_type))
    masks = flat.to_masks(mask_shape=tuple(int(n) for n in yx_shape))
    return np.asarray(masks).any(axis=0)


def compute_shift(image, r_hor, r_ver, mask):
    """(ColorShift, where) with ``where`` 'region', 'whole image', or a note on an empty region."""
    where = "whole image" if mask is None else "region"
    if mask is not None and not mask.any():
        mask, where = None, "whole image (the region is outside the image)"
    return color_shift(image, r_hor, r_ver, region=mask), where


def data_range(reference) -> float:
    """Dynamic range for PSNR/SSIM: 255 for uint8, the reference's own range otherwise."""
    reference = np.asarray(reference)
    if reference.dtype == np.uint8:
        return 255.0
    finite = reference[np.isfinite(reference)] if reference.dtype.kind == "f" else reference
    span = float(finite.max() - finite.min()) if finite.size else 0.0
    return span if span > 0 else 1.0


def _ssim_planes(reference, image, axes, rgb, value_range) -> float:
    ref, _ = to_bcyx(np.asarray(reference, dtype=np.float64), axes)
    img, _ = to_bcyx(np.asarray(image, dtype=np.float64), axes)
    side = min(ref.shape[-2:])
    win = min(7, side if side % 2 else side - 1)
    if win < 3:
        return float("nan")
    scores = []
    for n in range(ref.shape[0]):
        if rgb:
            scores.append(ssim(ref[n, :3], img[n, :3], data_range=value_range, channel_axis=0, win_size=win))
        else:
            scores.extend(ssim(ref[n, c], img[n, c], data_range=value_range, win_size=win) for c in range(ref.shape[1]))
    return float(np.mean(scores))


def quality(reference, image, axes: str, rgb: bool) -> dict:
    """``{'psnr': dB, 'ssim': ...}`` of ``image`` against ``reference`` (same shape); PSNR over the
    pixels finite in both, infinite for identical images."""
    reference, image = np.asarray(reference), np.asarray(image)
    if reference.shape != image.shape:
        raise ValueError(f"the reference has shape {reference.shape}, the image {image.shape}")
    value_range = data_range(reference)
    ok = np.isfinite(reference) & np.isfinite(image) if "f" in reference.dtype.kind + image.dtype.kind else None
    ref64, img64 = reference.astype(np.float64), image.astype(np.float64)
    if ok is not None:
        ref64, img64 = ref64[ok], img64[ok]
    return {
        "psnr": psnr(ref64, img64, data_range=value_range),
        "ssim": _ssim_planes(reference, image, axes, rgb, value_range),
    }


def reference_metrics(reference, image, restored, axes: str, rgb: bool) -> dict:
    """Metrics of the input and of the result against the reference, or ``{'error': why}``."""
    try:
        return {"input": quality(reference, image, axes, rgb), "result": quality(reference, restored, axes, rgb)}
    except ImportError:
        return {"error": "install scikit-image for PSNR/SSIM"}
    except ValueError as err:
        return {"error": str(err)}


def format_shift(shift, where: str) -> str:
    """Per-channel means of r_hor, r_ver and their sum, and the four colour temperatures."""
    rows = [f"colour shift, {where} ({shift.n_pixels} px)", f"{'':7}{'R':>9}{'G':>9}{'B':>9}"]
    for label, mean in (("r_hor", shift.mean_hor), ("r_ver", shift.mean_ver), ("sum", shift.mean_sum)):
        rows.append(f"{label:7}" + "".join(f"{float(v):>+9.3g}" for v in mean[:3]))
    names = {"image": "image", "image+r_hor": "+r_hor", "image+r_ver": "+r_ver", "restored": "restored"}
    temps = [
        f"{names.get(k, k)} {v:.0f} K" if np.isfinite(v) else f"{names.get(k, k)} n/a" for k, v in shift.cct.items()
    ]
    rows.append("CCT " + temps[0] + ", " + temps[1])
    rows.append("    " + ", ".join(temps[2:]))
    return "\n".join(rows)


def format_metrics(metrics: dict | None, reference_name: str = "reference") -> str:
    """'PSNR input 21.30 dB -> result 23.10 dB' and the same for SSIM."""
    if not metrics:
        return ""
    if "error" in metrics:
        return f"metrics: {metrics['error']}"
    before, after = metrics["input"], metrics["result"]
    return (
        f"against {reference_name}:\n"
        f"PSNR  input {before['psnr']:.2f} dB -> result {after['psnr']:.2f} dB\n"
        f"SSIM  input {before['ssim']:.4f} -> result {after['ssim']:.4f}"
    )
