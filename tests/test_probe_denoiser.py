"""tools/probe_denoiser.py's terminal check: the same chains from pure noise and from the
training marginal, scored against x_init."""

import pytest

torch = pytest.importorskip("torch")

from factories import load_tool  # noqa: E402


@pytest.fixture(scope="module")
def probe():
    return load_tool("probe_denoiser")


class Blur(torch.nn.Module):
    """A stand-in predictor: XYDeblur's output triple, the restored image last, ``offset`` too dark."""

    def __init__(self, offset=0.0):
        super().__init__()
        self.offset = offset

    def forward(self, y):
        return None, None, torch.nn.functional.avg_pool2d(y, 3, 1, 1, count_include_pad=False) - self.offset


class ZeroResidual(torch.nn.Module):
    """eps_hat = z / sqrt(1 - abar): x0_hat = 0, the denoiser that adds no residual."""

    residual_scale = 5.0

    def forward(self, z, y, x_init, alpha_bar):
        return z / (1 - alpha_bar[:, None, None, None]).sqrt()


class ReadsTheStart(torch.nn.Module):
    """A denoiser that reads the residual's mean out of z: x0_hat = mean(z) / sqrt(abar), the
    noise averaged away over the image. From the training marginal that recovers a constant
    residual; from pure noise there is nothing to read."""

    residual_scale = 5.0

    def forward(self, z, y, x_init, alpha_bar):
        return (z - z.mean(dim=(1, 2, 3), keepdim=True)) / (1 - alpha_bar[:, None, None, None]).sqrt()


def crops(n=3, size=64):
    gen = torch.Generator().manual_seed(0)
    coarse = 0.2 + 0.6 * torch.rand(n, 1, 4, 4, generator=gen)  # smooth scenes: blur changes little
    sharp = torch.nn.functional.interpolate(coarse, size=(size, size), mode="bilinear", align_corners=True)
    return Blur()(sharp)[2], sharp


def test_a_denoiser_that_adds_nothing_gives_x_init_from_either_start(probe):
    blurred, sharp = crops()
    res = probe.terminal_check(Blur(), ZeroResidual(), blurred, sharp, steps=4, samples=3, sampler="ddim")
    assert set(res) == {"x_init", "pure noise", "training marginal (oracle)"}
    assert res["pure noise"] == pytest.approx(res["x_init"], abs=1e-3)
    assert res["training marginal (oracle)"] == pytest.approx(res["x_init"], abs=1e-3)


def test_a_denoiser_that_reads_the_start_gains_only_from_the_oracle(probe):
    blurred, sharp = crops()
    predictor = Blur(offset=0.2)  # a residual of +0.2 everywhere
    res = probe.terminal_check(predictor, ReadsTheStart(), blurred, sharp, steps=1, samples=2, sampler="ddim")
    assert res["training marginal (oracle)"] > res["x_init"] + 3  # z_T holds the residual, buried in noise
    assert res["pure noise"] < res["x_init"] + 0.5
