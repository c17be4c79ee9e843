"""napari sample data: blurred images with their sharp references.

Each entry gives two layers: the blurred image, which is what you deblur, and the
sharp reference, hidden, which the XYDeblur widget can measure the result against
(PSNR, SSIM). The images are made by :mod:`napari_deblur.samples` (imported here
inside the functions: it needs torch, which napari must not load at start-up).
"""


def blurred_photo() -> list:
    """``coffee`` (scikit-image) shaken by a camera-shake kernel, uint8 RGB, and its reference."""
    from ..samples import blurred_photo as make

    sample = make()
    meta = {"napari_deblur": {"sample": "blurred_photo", "kernel_size": int(sample["kernel"].shape[0])}}
    return [
        (sample["blurred"], {"name": "coffee blurred", "rgb": True, "metadata": meta}, "image"),
        (
            sample["sharp"],
            {"name": "coffee reference", "rgb": True, "visible": False, "metadata": {**meta, "reference": True}},
            "image",
        ),
    ]


def blurred_fluorescence_stack() -> list:
    """A synthetic cell scene in a widefield microscope at 5 focus depths, uint16 ZYX, and its reference."""
    from ..samples import blurred_fluorescence_stack as make

    sample = make()
    common = {
        "scale": tuple(float(s) for s in sample["scale"]),
        "axis_labels": ("Z", "Y", "X"),
        "units": ("um", "um", "um"),
    }
    meta = {"napari_deblur": {"sample": "blurred_fluorescence_stack"}}
    # one display range for both, so blurred and sharp compare at a glance
    low = float(min(sample["blurred"].min(), sample["sharp"].min()))
    high = float(max(sample["blurred"].max(), sample["sharp"].max()))
    return [
        (
            sample["blurred"],
            {**common, "name": "cells blurred", "colormap": "green", "contrast_limits": (low, high), "metadata": meta},
            "image",
        ),
        (
            sample["sharp"],
            {
                **common,
                "name": "cells reference",
                "colormap": "green",
                "visible": False,
                "contrast_limits": (low, high),
                "metadata": {**meta, "reference": True},
            },
            "image",
        ),
    ]
