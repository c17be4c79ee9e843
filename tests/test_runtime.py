"""The engines' shared runtime: the out-of-memory retry, device copies and the model cache."""

import numpy as np
import pytest
import torch
from factories import bundle_model, tiny_model

from napari_deblur.engine import runtime
from napari_deblur.engine.runtime import (
    cached_device_copies,
    device_copy,
    load_cached,
    release_prepared,
    retry_out_of_memory,
    retry_out_of_memory_iter,
    run_to_end,
)
from napari_deblur.models.denoiser import ResidualDenoiser
from napari_deblur.models.registry import DENOISER
from napari_deblur.models.xydeblur import XYDeblur

CPU = torch.device("cpu")


def halve(tile):
    return tile // 2


@pytest.fixture
def released(monkeypatch):
    """The devices whose cache the retry gave back, in order."""
    calls = []
    monkeypatch.setattr(runtime, "release_device_cache", lambda device, share=None: calls.append((device, share)))
    return calls


def fake_pass(limit, error):
    """An attempt that runs out of memory while ``batch * tile`` exceeds ``limit``; records its calls."""
    calls = []

    def attempt(batch, tile):
        calls.append((batch, tile))
        if batch * tile > limit:
            raise error
        return f"done at {batch}x{tile}"

    return attempt, calls


@pytest.mark.parametrize(
    "error",
    [
        torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB"),
        RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB"),
        RuntimeError("MPS backend out of memory"),
        MemoryError(),
    ],
)
def test_out_of_memory_halves_the_batch_then_the_tile(released, error):
    attempt, calls = fake_pass(300, error)
    value, batch, tile = retry_out_of_memory(attempt, 8, 512, min_tile=64, halve_tile=halve, device=CPU)
    assert calls == [(8, 512), (4, 512), (2, 512), (1, 512), (1, 256)]
    assert (value, batch, tile) == ("done at 1x256", 1, 256)
    assert released == [(CPU, None)] * 4  # the whole cache, after every failure


def test_other_errors_are_not_retried(released):
    attempt, calls = fake_pass(0, RuntimeError("shape mismatch"))
    with pytest.raises(RuntimeError, match="shape mismatch"):
        retry_out_of_memory(attempt, 8, 512, min_tile=64, halve_tile=halve, device=CPU)
    assert calls == [(8, 512)] and released == []


def test_out_of_memory_at_the_smallest_tile_and_batch_is_raised(released):
    attempt, calls = fake_pass(0, torch.OutOfMemoryError("CUDA out of memory"))
    with pytest.raises(torch.OutOfMemoryError):
        retry_out_of_memory(attempt, 2, 256, min_tile=128, halve_tile=halve, device=CPU)
    assert calls == [(2, 256), (1, 256), (1, 128)]  # 1 x 128: nothing smaller to try
    assert len(released) == 2


def test_the_tile_rule_is_the_callers(released):
    attempt, calls = fake_pass(90, torch.OutOfMemoryError("CUDA out of memory"))
    value, batch, tile = retry_out_of_memory(
        attempt, 1, 200, min_tile=64, halve_tile=lambda t: max(64, t // 2 // 24 * 24), device=CPU
    )
    assert calls == [(1, 200), (1, 96), (1, 64)] and (batch, tile) == (1, 64)


def test_the_generator_form_passes_progress_on_and_notices_each_retry(released):
    def attempt(batch, tile):
        yield f"pass {batch}"
        if batch > 2:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return batch * tile

    steps = retry_out_of_memory_iter(
        attempt, 8, 64, min_tile=64, halve_tile=halve, device=CPU, notice=lambda b, t: f"retry {b} {t}"
    )
    seen = []
    while True:
        try:
            seen.append(next(steps))
        except StopIteration as stop:
            result = stop.value
            break
    assert seen == ["pass 8", "retry 4 64", "pass 4", "retry 2 64", "pass 2"]
    assert result == (128, 2, 64)
    assert run_to_end(retry_out_of_memory_iter(attempt, 2, 64, min_tile=64, halve_tile=halve, device=CPU)) == (
        128,
        2,
        64,
    )


def test_releasing_the_device_cache_off_a_gpu_does_nothing():
    runtime.release_device_cache(CPU)
    runtime.release_device_cache(CPU, runtime.RELEASE_SHARE)
    runtime.synchronize(CPU)


def test_the_engine_copy_is_kept_and_the_reference_copy_is_plain():
    release_prepared()
    model = tiny_model(channels=3)
    work = device_copy(model, CPU, torch.float32)
    assert work is not model and device_copy(model, CPU, torch.float32) is work
    assert cached_device_copies() == [work]
    assert device_copy(model, CPU, torch.float64) is not work  # another precision: another copy
    reference = device_copy(model, CPU, reference=True)
    assert type(reference) is XYDeblur and reference not in cached_device_copies()
    assert next(reference.parameters()).dtype == torch.float32 and not reference.training
    x = torch.rand(1, 3, 16, 16)
    with torch.no_grad():
        np.testing.assert_array_equal(reference(x)[2].numpy(), model.eval()(x)[2].numpy())
    release_prepared()
    assert cached_device_copies() == []


def test_a_denoiser_copy_is_a_frozen_deep_copy():
    den = ResidualDenoiser(channels=1, width=8, mults=(1, 2), blocks=1).train()
    work = device_copy(den, CPU, torch.float64)
    assert work is not den and isinstance(work, ResidualDenoiser) and not work.training
    assert all(p.dtype == torch.float64 and not p.requires_grad for p in work.parameters())
    assert den.training and next(den.parameters()).dtype == torch.float32  # the caller's is untouched
    assert work not in cached_device_copies()


def test_one_cache_reads_each_architecture_once(tmp_path, monkeypatch):
    monkeypatch.setenv("NAPARI_DEBLUR_RESOURCES", str(tmp_path))
    bundle_model(tmp_path, "xydeblur-photo", tiny_model(channels=3))
    bundle_model(
        tmp_path,
        "dvsr-photo",
        ResidualDenoiser(channels=3, width=8, mults=(1, 2), blocks=1),
        predictor="xydeblur-photo",
    )
    net = load_cached("xydeblur-photo")
    den = load_cached("dvsr-photo", DENOISER)
    assert isinstance(net, XYDeblur) and isinstance(den, ResidualDenoiser)
    assert load_cached("xydeblur-photo") is net and load_cached("dvsr-photo", DENOISER) is den
    assert den.weights_info["predictor"] == "xydeblur-photo"


def test_the_cpu_copy_runs_in_channels_last_and_gives_the_nchw_result(monkeypatch):
    release_prepared()
    model = tiny_model(channels=3, seed=3)
    image = np.random.default_rng(0).random((1, 3, 24, 32), dtype=np.float32)
    outputs = {}
    for layout in ("0", "1"):
        monkeypatch.setenv("NAPARI_DEBLUR_CHANNELS_LAST", layout)
        work = device_copy(model, CPU, torch.float32)
        weight = next(p for p in work.parameters() if p.dim() == 4)
        assert weight.is_contiguous(memory_format=torch.channels_last) == (layout == "1")
        outputs[layout] = runtime.network_fn(work, CPU, torch.float32, 0, False)(image)
    assert len(cached_device_copies()) == 2  # the layout is part of what a kept copy is
    for nchw, nhwc in zip(outputs["0"], outputs["1"]):
        np.testing.assert_allclose(nhwc, nchw, atol=1e-5)
    release_prepared()


def test_channels_last_is_the_cpu_default_and_its_switch_is_checked(monkeypatch):
    monkeypatch.delenv("NAPARI_DEBLUR_CHANNELS_LAST", raising=False)
    assert runtime.channels_last(CPU) and runtime.channels_last(torch.device("cuda"))
    assert not runtime.channels_last(torch.device("mps"))
    monkeypatch.setenv("NAPARI_DEBLUR_CHANNELS_LAST", "yes")
    with pytest.raises(ValueError, match="NAPARI_DEBLUR_CHANNELS_LAST must be 0 or 1"):
        runtime.channels_last(CPU)
