"""How much colour do the XYDeblur residuals add, and which way does it pull?

Each residual r (r_hor, r_ver, their sum) is split into luminance a = mean(R, G, B)
and chroma c = r - a; the chroma's size and direction are read on the opponent
plane o1 = (R-G)/sqrt(2), o2 = (R+G-2B)/sqrt(6) (an orthonormal basis of that plane).
The region's mean colour of image, image+r_hor, image+r_ver and image+both is
averaged in linear light, taken to CIE XYZ (sRGB, D65) and xy, and its correlated
colour temperature comes from McCamy's cubic formula. numpy only.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .metrics import srgb_to_linear

__all__ = [
    "ColorShift",
    "color_shift",
    "opponent",
    "linear_srgb_to_xyz",
    "cct_mccamy",
    "correlated_color_temperature",
]

# linear sRGB (D65 white) -> CIE XYZ, IEC 61966-2-1
_SRGB_TO_XYZ = np.array([[0.4124, 0.3576, 0.1805], [0.2126, 0.7152, 0.0722], [0.0193, 0.1192, 0.9505]])


def linear_srgb_to_xyz(rgb):
    """Linear sRGB (..., 3) -> CIE XYZ (..., 3), Y = 1 for white."""
    return np.asarray(rgb, dtype=np.float64) @ _SRGB_TO_XYZ.T


def cct_mccamy(x, y):
    """Correlated colour temperature (K) from xy chromaticity, McCamy (1992).

    Only meaningful near the Planckian locus (roughly 2000-12500 K)."""
    n = (x - 0.3320) / (0.1858 - y)
    return 449.0 * n**3 + 3525.0 * n**2 + 6823.3 * n + 5520.33


def correlated_color_temperature(rgb_mean_linear) -> float:
    """CCT (K) of one linear-sRGB colour; nan for black (Y = 0)."""
    X, Y, Z = linear_srgb_to_xyz(np.asarray(rgb_mean_linear, dtype=np.float64)[:3])
    total = X + Y + Z
    if not (Y > 0 and total > 0):
        return float("nan")
    return float(cct_mccamy(X / total, Y / total))


def opponent(rgb, channel_axis=-1):
    """Opponent coordinates (o1, o2) = ((R-G)/sqrt(2), (R+G-2B)/sqrt(6))."""
    rgb = np.moveaxis(np.asarray(rgb, dtype=np.float64), channel_axis, -1)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    return (r - g) / np.sqrt(2.0), (r + g - 2.0 * b) / np.sqrt(6.0)


@dataclass(frozen=True, eq=False)
class ColorShift:
    """Colour statistics of the two XYDeblur residuals over one region."""

    mean_hor: np.ndarray
    mean_ver: np.ndarray
    mean_sum: np.ndarray
    chroma_hor: np.ndarray
    chroma_ver: np.ndarray
    chroma_sum: np.ndarray
    hue_hor: np.ndarray
    hue_ver: np.ndarray
    hue_sum: np.ndarray
    cct: dict
    n_pixels: int = 0

    def summary(self) -> str:
        fmt = lambda m: "R {:+.4g}  G {:+.4g}  B {:+.4g}".format(*m)  # noqa: E731
        lines = [
            f"colour shift over {self.n_pixels} pixels (image units)",
            f"  mean r_hor : {fmt(self.mean_hor)}",
            f"  mean r_ver : {fmt(self.mean_ver)}",
            f"  mean sum   : {fmt(self.mean_sum)}",
            "  CCT: " + ", ".join(f"{k} {v:.0f} K" for k, v in self.cct.items()),
        ]
        return "\n".join(lines)

    def as_dict(self) -> dict:
        num = lambda v: None if not np.isfinite(v) else float(v)  # noqa: E731
        return {
            "mean_hor": [float(v) for v in self.mean_hor],
            "mean_ver": [float(v) for v in self.mean_ver],
            "mean_sum": [float(v) for v in self.mean_sum],
            "cct": {k: num(v) for k, v in self.cct.items()},
            "n_pixels": int(self.n_pixels),
        }


def _full_white(dtype, value_range):
    if value_range is not None:
        value_range = float(value_range)
        if not value_range > 0:
            raise ValueError(f"value_range must be positive, got {value_range}")
        return value_range
    if np.issubdtype(dtype, np.integer):
        return float(np.iinfo(dtype).max)
    if np.issubdtype(dtype, np.floating) or dtype == np.bool_:
        return 1.0
    raise TypeError(f"color_shift cannot infer full white for dtype {dtype}; pass value_range")


def _region_mask(region, spatial_shape):
    if region is None:
        return np.ones(spatial_shape, dtype=bool)
    if isinstance(region, tuple) and all(isinstance(s, slice) for s in region):
        if len(region) > 2:
            raise ValueError(f"region slices are (y, x), got {len(region)} slices")
        mask = np.zeros(spatial_shape, dtype=bool)
        mask[(Ellipsis, *region)] = True
        return mask
    region = np.asarray(region)
    if region.dtype != np.bool_:
        raise TypeError(f"region mask must be boolean, got dtype {region.dtype}")
    try:
        return np.broadcast_to(region, spatial_shape)
    except ValueError:
        raise ValueError(
            f"region mask of shape {region.shape} does not fit the image's spatial shape {spatial_shape}"
        ) from None


def _as_real(name, a):
    a = np.asarray(a)
    if not (np.issubdtype(a.dtype, np.number) or a.dtype == np.bool_) or np.issubdtype(a.dtype, np.complexfloating):
        raise TypeError(f"color_shift needs a real numeric {name}, got dtype {a.dtype}")
    return a


def color_shift(image, r_hor, r_ver, region=None, *, channel_axis=-1, value_range=None) -> ColorShift:
    """Per-channel means, chroma/hue maps and CCTs of the XYDeblur residuals.

    ``image`` is RGB(A) with channels on ``channel_axis`` (last by default);
    ``r_hor``/``r_ver`` have its shape and units. ``region`` is None, a boolean
    mask over the spatial axes, or a (y, x) tuple of slices.
    """
    image, r_hor, r_ver = (_as_real(n, a) for n, a in (("image", image), ("r_hor", r_hor), ("r_ver", r_ver)))
    if image.ndim < 3:
        raise ValueError(f"color_shift needs an image (..., Y, X, C), got shape {image.shape}")
    if not -image.ndim <= int(channel_axis) < image.ndim:
        raise ValueError(f"channel_axis {channel_axis} out of range for shape {image.shape}")
    ax = int(channel_axis) % image.ndim
    if image.shape[ax] not in (3, 4):
        raise ValueError(
            f"color_shift needs 3 colour channels (RGB or RGBA), got shape "
            f"{image.shape} with {image.shape[ax]} on axis {channel_axis}"
        )
    for name, r in (("r_hor", r_hor), ("r_ver", r_ver)):
        if r.shape != image.shape:
            raise ValueError(f"{name} must have the image's shape {image.shape}, got {r.shape}")
    white = _full_white(image.dtype, value_range)

    # channels last, RGB only, float64 copies (inputs are never written to)
    img, rh, rv = (np.moveaxis(a, ax, -1)[..., :3].astype(np.float64) for a in (image, r_hor, r_ver))
    rs = rh + rv
    mask = _region_mask(region, img.shape[:-1])
    n = int(np.count_nonzero(mask))
    if n == 0:
        raise ValueError("color_shift: the region selects no pixels")

    def chroma_hue(r):
        c = r - r.mean(axis=-1, keepdims=True)
        o1, o2 = opponent(r)
        return (np.sqrt((c * c).sum(axis=-1)).astype(np.float32), np.arctan2(o2, o1).astype(np.float32))

    def cct_of(rgb):
        lin = srgb_to_linear(rgb[mask] / white)  # clipped to [0, 1]: full white at most
        return correlated_color_temperature(lin.mean(axis=0))

    (ch, hh), (cv, hv), (cs, hs) = chroma_hue(rh), chroma_hue(rv), chroma_hue(rs)
    return ColorShift(
        mean_hor=rh[mask].mean(axis=0),
        mean_ver=rv[mask].mean(axis=0),
        mean_sum=rs[mask].mean(axis=0),
        chroma_hor=ch,
        chroma_ver=cv,
        chroma_sum=cs,
        hue_hor=hh,
        hue_ver=hv,
        hue_sum=hs,
        cct={
            "image": cct_of(img),
            "image+r_hor": cct_of(img + rh),
            "image+r_ver": cct_of(img + rv),
            "restored": cct_of(img + rs),
        },
        n_pixels=n,
    )
