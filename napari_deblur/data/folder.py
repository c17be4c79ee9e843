"""A user's paired images as training batches: random aligned crops. numpy, tifffile, Pillow, torch.

The folder holds two sub-folders of images with matching names (matched by
name without extension, so ``blur/a.png`` pairs with ``sharp/a.tif``):
``blur/`` + ``sharp/``, ``blurred/`` + ``sharp/``, ``raw/`` + ``target/`` or
``input/`` + ``target/``. TIFFs are read with tifffile, PNG/JPEG/BMP with Pillow.
An image is a 2D plane, RGB(A) (channels last), or a stack of planes
(``ZYX`` or ``ZYXC``), each plane a pair. Each pair is scaled to [0, 1] the way
the engine scales an input at inference (:func:`napari_deblur.engine.intensity.fit_scaling`
on the blurred image, ``"auto"``), and the same map is applied to its target.
The last tenth of the names (at least one, when there are two or more) is held
out for validation.
"""

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..engine.intensity import fit_scaling

PAIR_DIRS = (("blur", "sharp"), ("blurred", "sharp"), ("raw", "target"), ("input", "target"))
SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp")


def dihedral(x: torch.Tensor, flags: torch.Tensor) -> torch.Tensor:
    """Per-item flips and transposition of square (..., N, N) data; ``flags`` (...leading, 3) bools."""
    shape = flags.shape[:-1] + (1,) * (x.ndim - flags.ndim + 1)
    x = torch.where(flags[..., 0].reshape(shape), x.flip(-1), x)
    x = torch.where(flags[..., 1].reshape(shape), x.flip(-2), x)
    return torch.where(flags[..., 2].reshape(shape), x.transpose(-1, -2), x)


def find_pairs(root) -> list[tuple[Path, Path]]:
    """(input, target) file pairs in ``root``, sorted by name."""
    root = Path(root)
    for inp, tgt in PAIR_DIRS:
        if (root / inp).is_dir() and (root / tgt).is_dir():

            def files(d):
                return {p.stem: p for p in sorted((root / d).iterdir()) if p.suffix.lower() in SUFFIXES}

            a, b = files(inp), files(tgt)
            names = sorted(set(a) & set(b))
            if not names:
                raise ValueError(f"no matching file names in {root / inp} and {root / tgt}")
            return [(a[n], b[n]) for n in names]
    choices = ", ".join(f"{i}/+{t}/" for i, t in PAIR_DIRS)
    raise ValueError(f"{root} has no paired sub-folders ({choices})")


def read_planes(path: Path) -> tuple[list[np.ndarray], np.dtype]:
    """The (C, H, W) planes of an image file and its dtype."""
    path = Path(path)
    if path.suffix.lower() in (".tif", ".tiff"):
        import tifffile

        arr = np.squeeze(tifffile.imread(path))
    else:
        from PIL import Image

        with Image.open(path) as im:
            if im.mode not in ("L", "RGB", "RGBA", "I;16", "I", "F"):
                im = im.convert("RGBA" if "A" in im.mode else "RGB")
            arr = np.asarray(im)
    if arr.ndim == 2:
        planes = [arr[None]]
    elif arr.ndim == 3 and arr.shape[-1] in (3, 4):
        planes = [arr[..., :3].transpose(2, 0, 1)]
    elif arr.ndim == 3:
        planes = [p[None] for p in arr]
    elif arr.ndim == 4 and arr.shape[-1] <= 4:
        planes = [p[..., :3].transpose(2, 0, 1) for p in arr]
    else:
        raise ValueError(f"{path}: cannot read an image of shape {arr.shape} as planes (YX, YXC, ZYX or ZYXC)")
    return planes, arr.dtype


def _to_channels(x: np.ndarray, channels: int) -> np.ndarray:
    if x.shape[0] == channels:
        return x
    if channels == 1:
        return x.mean(0, keepdims=True)
    if x.shape[0] == 1:
        return np.repeat(x, channels, 0)
    raise ValueError(f"cannot turn {x.shape[0]} channels into {channels}")


class FolderPairs:
    """Random aligned (blurred, sharp) crops (batch, C, crop, crop) from a paired folder, on ``device``."""

    def __init__(self, root, crop=192, batch=16, device="cpu", seed=0, channels=None, heldout=False):
        self.crop, self.batch, self.seed, self.heldout = int(crop), int(batch), int(seed), bool(heldout)
        self.device = torch.device(device)
        pairs = find_pairs(root)
        n_val = max(1, round(0.1 * len(pairs))) if len(pairs) >= 2 else 0
        if heldout:
            pairs = pairs[len(pairs) - n_val :] if n_val else pairs
        else:
            pairs = pairs[: len(pairs) - n_val]
        self.files = pairs
        self.items = []
        for inp, tgt in pairs:
            blurred, dtype = read_planes(inp)
            sharp, _ = read_planes(tgt)
            if len(blurred) != len(sharp) or any(a.shape != b.shape for a, b in zip(blurred, sharp)):
                raise ValueError(f"{inp.name} and {tgt.name} differ in shape")
            for b, s in zip(blurred, sharp):
                b, s = b.astype(np.float64), s.astype(np.float64)
                scaling = fit_scaling(b[None], dtype, "auto", per_channel=False)
                b, s = scaling.to_unit(b[None])[0], scaling.to_unit(s[None])[0]
                c = channels or b.shape[0]
                self.items.append(self._tensor(np.concatenate([_to_channels(b, c), _to_channels(s, c)])))
        self.channels = self.items[0].shape[0] // 2
        area = torch.tensor([float(t.shape[-2] * t.shape[-1]) for t in self.items])
        self._weights = area / area.sum()
        self.step = 0

    def _tensor(self, x: np.ndarray) -> torch.Tensor:
        t = torch.from_numpy(np.ascontiguousarray(x, np.float32))
        short = [max(0, self.crop - n) for n in t.shape[-2:]]
        if any(short):  # smaller than a crop: mirror (or repeat) the edges
            pad = (0, short[1], 0, short[0])
            mode = "reflect" if all(s < n for s, n in zip(short, t.shape[-2:])) else "replicate"
            t = F.pad(t[None], pad, mode=mode)[0]
        return t.to(self.device)

    def sample(self):
        """The next (blurred, sharp) batch, each (batch, C, crop, crop) float32."""
        seed = int(np.random.SeedSequence([self.seed, self.step, self.heldout, 11]).generate_state(1)[0])
        gen = torch.Generator().manual_seed(seed)
        pick = torch.multinomial(self._weights, self.batch, replacement=True, generator=gen)
        crops = []
        for i in pick.tolist():
            item = self.items[i]
            y = int(torch.randint(item.shape[-2] - self.crop + 1, (1,), generator=gen))
            x = int(torch.randint(item.shape[-1] - self.crop + 1, (1,), generator=gen))
            crops.append(item[:, y : y + self.crop, x : x + self.crop])
        flags = (torch.rand(self.batch, 3, generator=gen) < 0.5).to(self.device)
        batch = dihedral(torch.stack(crops), flags)
        self.step += 1
        c = self.channels
        return batch[:, :c].contiguous(), batch[:, c:].contiguous()

    def __iter__(self):
        while True:
            yield self.sample()

    def state_dict(self) -> dict:
        return {"step": self.step, "seed": self.seed}

    def load_state_dict(self, state: dict):
        self.step = int(state["step"])
