"""Dynamic-scene motion blur: the mean of one sharp frame warped along smooth, varying flows.

A sensor that integrates while the camera or the scene moves records the mean of the
instantaneous frames of its exposure; dynamic-scene datasets such as GoPro make their
blurred images exactly so, from high-speed video, with the middle frame as the sharp
target. :func:`frame_average` imitates that from a single sharp image: each sample gets a
displacement field ``d(x, t) = t * v(x) + t**2 * a(x)`` for ``t`` in [-1/2, 1/2] and the
blurred image is the mean of the image resampled at ``x + d(x, t)`` over evenly spaced
``t``. :func:`random_flows` draws ``v`` as a global translation, a small rotation or zoom
about a random centre and a smooth random local field (objects moving on their own,
parallax), and ``a`` as a bend of the path. Unlike one kernel per image (or a blend of
three), the blur then changes direction and length everywhere, the way object motion does.

Runs in torch on any device; the caller applies it in linear light and crops the margin.
"""

import math

import torch
import torch.nn.functional as F


def random_flows(b: int, h: int, w: int, max_extent: float, generator=None, device="cpu"):
    """``(v, a)``, each (B, 2, H, W) in pixels (row, column), with ``|v| <= max_extent`` everywhere.

    Per sample: a path length drawn log-uniformly in [1, ``max_extent``] shared between a
    global translation (random direction), a rotation/zoom field and a random smooth local
    field (a 4 x 4 grid upsampled bicubically); ``a`` bends the path by up to half its length.
    """
    dev = torch.device(device)

    def rand(*shape):
        return torch.rand(*shape, generator=generator, device=dev)

    def randn(*shape):
        return torch.randn(*shape, generator=generator, device=dev)

    length = torch.exp(rand(b, 1, 1, 1) * math.log(max(max_extent, 1.0)))
    angle = rand(b, 1, 1, 1) * 2 * math.pi
    share = torch.softmax(randn(b, 3) * 1.5, dim=1).view(b, 3, 1, 1, 1)  # translation, rotation/zoom, local
    glob = torch.cat([torch.sin(angle), torch.cos(angle)], 1)
    ys = torch.linspace(-1, 1, h, device=dev).view(1, h, 1).expand(b, h, w)
    xs = torch.linspace(-1, 1, w, device=dev).view(1, 1, w).expand(b, h, w)
    centre = (rand(b, 2, 1, 1) * 2 - 1) * 0.5
    dy, dx = ys - centre[:, 0], xs - centre[:, 1]
    spin, zoom = randn(b, 1, 1), randn(b, 1, 1)
    affine = torch.stack([spin * dx + zoom * dy, -spin * dy + zoom * dx], 1)
    local = F.interpolate(randn(b, 2, 4, 4), size=(h, w), mode="bicubic", align_corners=True)
    v = sum(
        s * f / f.flatten(1).norm(dim=1).div(math.sqrt(h * w)).clamp_min(1e-6).view(b, 1, 1, 1)
        for s, f in zip(share.unbind(1), (glob.expand(b, 2, h, w), affine, local))
    )
    v = v * length
    a = randn(b, 2, 1, 1) * 0.5 * length / math.sqrt(2) * rand(b, 1, 1, 1)
    v = v * (max_extent / v.norm(dim=1, keepdim=True).amax(dim=(2, 3), keepdim=True).clamp_min(1e-6)).clamp(max=1)
    return v, a.expand(b, 2, h, w)


def frame_average(images: torch.Tensor, v: torch.Tensor, a: torch.Tensor, n_frames: int | None = None) -> torch.Tensor:
    """The mean of (B, C, H, W) ``images`` resampled at ``x + t v(x) + t^2 a(x)``, t evenly in [-1/2, 1/2].

    ``n_frames`` defaults to one frame per pixel of the longest path (at least 3, odd, so
    the sharp ``t = 0`` frame is one of them). Bilinear sampling, mirrored at the border.
    """
    b, _, h, w = images.shape
    if n_frames is None:
        longest = float((v.norm(dim=1) + 0.25 * a.norm(dim=1)).max())
        n_frames = max(3, 2 * math.ceil(longest / 2) + 1)
    ys = torch.arange(h, device=images.device, dtype=torch.float32).view(1, h, 1)
    xs = torch.arange(w, device=images.device, dtype=torch.float32).view(1, 1, w)
    out = torch.zeros_like(images, dtype=torch.float32)
    for t in torch.linspace(-0.5, 0.5, n_frames).tolist():
        d = t * v + t * t * a
        grid = torch.stack([(xs + d[:, 1]) * (2 / max(w - 1, 1)) - 1, (ys + d[:, 0]) * (2 / max(h - 1, 1)) - 1], -1)
        out += F.grid_sample(images.float(), grid, mode="bilinear", padding_mode="reflection", align_corners=True)
    return out / n_frames
