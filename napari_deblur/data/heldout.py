"""The fixed split of the real development data: what is held out from training, in code.

The project's real images (``../shared/data``; see its ``SOURCES.md``) serve both
training and the real-data benchmark (:mod:`napari_deblur.evaluation.real`). The
files named here are the benchmark's and are never trained on: every reader of
sharp training images (:func:`napari_deblur.data.real.find_images`) drops them,
whatever folder it is pointed at. Paths are relative to the data root, with ``/``,
and match the end of a file's path, so ``--sharp ../shared/data/photos`` and
``--sharp ../shared/data`` leave out the same files. A folder entry ends in ``/``
and holds out everything below it.

* Photos: McMaster (18 colour photos) and Set5 (5) are the held-out photos of track
  (b) and the identity track (d); ``set3c/butterfly.png`` is Set5's butterfly again.
* Real blur: the GoPro pairs (track a) and the real blurry photos without a
  reference (track e) are never sharp sources.
* Fluorescence: three of the five W2S fields (track c), the pollen volume (the
  microscopy identity track), and the raw/noisy inputs and blurry stacks that are no
  sharp references (W2S single frames, bacteria and FMD raw frames, flowdec's blurred
  bars, the DAPI widefield stack, C. elegans raw).
* PSFs: the measured lattice light-sheet bead PSF blurs track (c) and is never a
  training PSF.
"""

from pathlib import Path

HELDOUT_PHOTOS = ("photos/mcmaster/", "photos/set5/", "photos/set3c/butterfly.png")
HELDOUT_BLUR = ("real_blur_pairs/", "real_blur_only/")
W2S_HELDOUT_FIELDS = ("010_0", "044_0", "100_1")
HELDOUT_FLUORESCENCE = (
    *(f"fluorescence/w2s_widefield/target_avg400_{f}.tif" for f in W2S_HELDOUT_FIELDS),
    "fluorescence/sdeconv/pollen.tif",
)
NOT_SHARP = (
    "fluorescence/w2s_widefield/input_avg1_",  # a prefix: every single-frame input
    "fluorescence/bacteria_lowhigh_snr/noisy_avg1_16bit.png",
    "fluorescence/fmd_confocal_3d/BPAE_confocal_3ch_raw.tif",
    "fluorescence/flowdec_bars/data.tif",
    "fluorescence/flowdec_bars/kernel.tif",
    "fluorescence/deconwolf_dapi/",
    "fluorescence/sdeconv/celegans.tif",
)
HELDOUT_PSFS = ("psfs/lattice_lightsheet_bead/",)
HELDOUT = HELDOUT_PHOTOS + HELDOUT_BLUR + HELDOUT_FLUORESCENCE + NOT_SHARP + HELDOUT_PSFS


def _matches(posix: str, entry: str) -> bool:
    if entry.endswith("/"):
        return f"/{entry}" in f"/{posix}"
    if entry.endswith("_"):  # a file-name prefix
        folder, prefix = entry.rsplit("/", 1)
        parent, _, name = posix.rpartition("/")
        return f"/{parent}/".endswith(f"/{folder}/") and name.startswith(prefix)
    return f"/{posix}".endswith(f"/{entry}")


def is_heldout(path, entries=HELDOUT) -> bool:
    """True for a file the training data must not use as a sharp image (see the module docstring);
    ``entries=HELDOUT_PSFS`` asks the same of a training PSF."""
    posix = Path(path).resolve().as_posix() if Path(path).exists() else Path(path).as_posix()
    return any(_matches(posix, entry) for entry in entries)
