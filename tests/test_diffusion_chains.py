"""The chains of the refinement: their plan, their run, and the images made of their residuals."""

import numpy as np
import pytest
import torch

from napari_deblur.diffusion.chains import Chains, RefineStep, plan_chains, run_chains
from napari_deblur.diffusion.images import ResidualImages
from napari_deblur.diffusion.schedule import make_schedule
from napari_deblur.diffusion.tiles import halved_tile
from napari_deblur.engine.axes import to_bcyx
from napari_deblur.engine.model_input import ModelInput
from napari_deblur.models.denoiser import ResidualDenoiser

pytestmark = pytest.mark.usefixtures("one_thread")
CPU = torch.device("cpu")


def plan(shape=(1, 3, 16, 16), samples=3, in_flight="auto", compute=np.float32, serial_pixels=1 << 30):
    return plan_chains(
        ResidualDenoiser(3, width=8),
        shape,
        np.dtype(compute),
        CPU,
        torch.float32,
        tile="auto",
        batch="auto",
        overlap=8,
        multiple=8,
        in_flight=in_flight,
        seeds=tuple(range(samples)),
        serial_pixels=serial_pixels,
    )


def test_the_plan_on_the_cpu():
    p = plan()
    assert (p.in_flight, p.samples, p.seeds, p.state_device) == (3, 3, (0, 1, 2), CPU)
    assert p.acc_dtype == torch.float32 and plan(compute=np.float64).acc_dtype == torch.float64
    assert plan(serial_pixels=16 * 16).in_flight == 1  # large chains run one at a time on the CPU
    assert plan(in_flight=5).in_flight == 3  # never more than the samples
    assert plan(in_flight=2).in_flight == 2


def test_halved_tile_keeps_the_multiple_and_the_minimum():
    assert halved_tile(256, 8) == 128 and halved_tile(200, 24) == 96 and halved_tile(100, 8) == 64


@pytest.fixture
def rgba_images():
    image = np.random.default_rng(0).integers(0, 256, (10, 12, 4), dtype=np.uint8)
    bcyx, layout = to_bcyx(image, "YXC")
    source = ModelInput.fit(bcyx, layout, image.dtype, 3, "dtype")
    items = np.pad(source.items(), ((0, 0), (0, 0), (0, 6), (0, 4)), mode="reflect")  # to 16 x 16
    return image, items, ResidualImages(bcyx, layout, source, np.zeros_like(items))


def test_residual_images_keep_the_layout_units_and_alpha(rgba_images):
    image, items, images = rgba_images
    np.testing.assert_array_equal(images.image(np.zeros_like(items)), image)
    shifted = images.image(np.full_like(items, 0.5))
    np.testing.assert_allclose(shifted[..., :3], image[..., :3] + 127.5)
    assert (shifted[..., 3] == image[..., 3]).all()
    plain = images.plain(images.cut(np.ones_like(items)))
    assert plain.shape == image.shape and plain.dtype == np.float32
    assert (plain[..., :3] == 1).all() and (plain[..., 3] == 0).all()


def test_chains_yield_every_step_and_do_not_depend_on_the_chains_beside_them(rgba_images):
    _, items, images = rgba_images
    torch.manual_seed(0)
    den = ResidualDenoiser(3, width=8).eval()
    runs = {}
    for in_flight in (1, 3):
        steps, gen = (
            [],
            run_chains(
                den,
                plan(items.shape, in_flight=in_flight),
                items,
                images,
                schedule=make_schedule(2),
                sampler="ddpm",
                clip=1.0,
                keep_samples=True,
                replicate_to=0,
            ),
        )
        while True:
            try:
                steps.append(next(gen))
            except StopIteration as stop:
                runs[in_flight] = (steps, stop.value)
                break
    steps, chains = runs[1]
    assert all(isinstance(s, RefineStep) for s in steps) and isinstance(chains, Chains)
    assert [s.done for s in steps] == list(range(1, 7)) and {s.total for s in steps} == {6}
    assert [s.samples for s in steps] == [(0,), (0,), (1,), (1,), (2,), (2,)]
    assert steps[0].x0.shape == (1, 10, 12, 4) and runs[3][0][0].z_t.shape == (3, 10, 12, 4)
    assert chains.stats.count == 3 and len(chains.kept) == 3 and chains.grid.single
    for a, b in zip(chains.kept, runs[3][1].kept, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-3)  # batched convolutions round differently
